"""The course's two commands.

    python -m vgcourse build [CHAPTER ...] [--profile smoke|cpu|gpu] [--out DIR]   # execute the chapters
    python -m vgcourse test  [--unit] [--record-time] [PYTEST ARGS ...]           # lint, then every test

Both set up a fresh machine first (see :mod:`vgcourse.bootstrap`); after that, they run with no network.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from vgcourse.bootstrap import REPO_ROOT, ensure

PYTEST_NO_TESTS = 5
LINTED = ["."]  # the package, tests, conftest.py, the notebooks (code cells) and notebooks/src (pyproject.toml)


def lint() -> int:
    """ruff over the package, the tests and the notebooks (rules in pyproject.toml); its exit status."""
    cmd = [sys.executable, "-m", "ruff", "check", *LINTED]
    print("+", " ".join(cmd), flush=True)
    code = subprocess.run(cmd, cwd=REPO_ROOT).returncode
    if code != 0:
        print(f"ruff found the problems above (exit status {code}); fix them (many with `{sys.executable} -m ruff "
              "check --fix`) and run the tests again", file=sys.stderr)
    return code


def junit_counts(path: Path) -> dict[str, int]:
    """tests, skipped, failures, errors of a pytest ``--junitxml`` report."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "skipped", "failures", "errors")}


def test(argv: list[str]) -> int:
    """Lint (ruff), then the unit tests, then every notebook under nbval (``--nbval-lax``) in the smoke profile."""
    parser = argparse.ArgumentParser(prog="python -m vgcourse test", description=test.__doc__)
    parser.add_argument("--unit", action="store_true", help="unit tests only (skip the notebooks)")
    parser.add_argument("--record-time", action="store_true",
                        help="on success, add this run's time and counts to notebooks/results/times.json")
    args, rest = parser.parse_known_args(argv)
    started, load = time.time(), (os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
    if lint() != 0:
        return 1
    env = dict(os.environ, VGCOURSE_PROFILE="smoke", MPLBACKEND="Agg", VGCOURSE_PROGRESS="lines")
    targets = ["tests"] if args.unit else ["tests", "--nbval-lax", "notebooks"]
    with tempfile.TemporaryDirectory(prefix="vgcourse-test-") as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", *targets, "-p", "no:cacheprovider", "--durations=10",
               *([f"--junitxml={report}"] if args.record_time else []), *rest]
        print("+", " ".join(cmd), flush=True)
        code = subprocess.run(cmd, cwd=REPO_ROOT, env=env).returncode
        seconds = time.time() - started
        if code == PYTEST_NO_TESTS:
            print("pytest collected no tests: that is a failure here (the suite must never be empty)", file=sys.stderr)
            return 1
        print(f"vgcourse test: {seconds / 60:.1f} min (ruff, then pytest)", flush=True)
        if args.record_time:
            if code != 0 or not report.is_file():
                print("--record-time: not recorded (the run did not pass)", file=sys.stderr)
            else:
                from vgcourse import results

                name = " ".join(["python3 -m vgcourse test", *(["--unit"] if args.unit else []), *rest])
                path = results.record_test_time(name, seconds, junit_counts(report),
                                                load=None if load is None else round(load, 2))
                print(f"time recorded in {path}; refresh the README with "
                      f"`{sys.executable} -m vgcourse.results --readme`")
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in ("build", "test"):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    ensure(command, rest)
    if command == "test":
        return test(rest)
    from vgcourse.build import main as build_main  # needs torch and the Jupyter stack

    return build_main(rest)


if __name__ == "__main__":
    sys.exit(main())
