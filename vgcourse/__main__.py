"""The course's two commands.

    python -m vgcourse build [CHAPTER ...] [--profile smoke|cpu|gpu] [--out DIR]   # execute the chapters
    python -m vgcourse test  [--unit] [PYTEST ARGS ...]                           # every test

Both set up a fresh machine first (see :mod:`vgcourse.bootstrap`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from vgcourse.bootstrap import REPO_ROOT, ensure

PYTEST_NO_TESTS = 5


def test(argv: list[str]) -> int:
    """Unit tests, then every notebook under nbval (``--nbval-lax``) in the smoke profile."""
    parser = argparse.ArgumentParser(prog="python -m vgcourse test", description=test.__doc__)
    parser.add_argument("--unit", action="store_true", help="unit tests only (skip the notebooks)")
    args, rest = parser.parse_known_args(argv)
    env = dict(os.environ, VGCOURSE_PROFILE="smoke", MPLBACKEND="Agg")
    targets = ["tests"] if args.unit else ["tests", "--nbval-lax", "notebooks"]
    cmd = [sys.executable, "-m", "pytest", *targets, "-p", "no:cacheprovider", "--durations=10", *rest]
    print("+", " ".join(cmd), flush=True)
    code = subprocess.run(cmd, cwd=REPO_ROOT, env=env).returncode
    if code == PYTEST_NO_TESTS:
        print("pytest collected no tests: that is a failure here (the suite must never be empty)", file=sys.stderr)
        return 1
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
