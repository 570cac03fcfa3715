"""The set-up of ``python3 -m vgcourse build|test``: a prepared virtual environment is used at once, with no pip call
and no network; what is missing is installed alone; a failed install ends with one message, not a traceback.

The commands run for real, in a Python without site-packages (``-S``: torch and the rest do not import, as in a
fresh system Python), against a fake environment whose ``python`` records every call: it answers the set-up's probe
as told, fails every ``pip`` call as an unreachable index would, and stands in for the command's re-run.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vgcourse import bootstrap
from vgcourse.paths import REPO_ROOT

STUB = """#!{python} -S
import json, os, sys
args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["-c"]:  # the set-up's probe: which modules are missing, where vgcourse comes from
    print(json.dumps({{"missing": json.loads(os.environ["STUB_MISSING"]), "vgcourse": os.environ["STUB_ORIGIN"]}}))
elif args[:2] == ["-m", "pip"]:  # no index reachable
    print("ERROR: No matching distribution found for " + args[-1], file=sys.stderr)
    sys.exit(1)
elif args[:2] == ["-m", "vgcourse"]:  # the command itself
    print("ran: " + " ".join(args[2:]) + " bootstrapped=" + os.environ.get("VGCOURSE_BOOTSTRAPPED", ""))
"""
OURS = str(REPO_ROOT / "vgcourse" / "__init__.py")


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    if os.name != "posix":
        pytest.skip("the fake environment's python is a script with a #! line (POSIX only)")
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB.format(python=sys.executable))
    python.chmod(0o755)
    return python.parents[1]


def command(venv: Path, *args: str, missing: list[str] = (), origin: str = OURS) -> tuple[subprocess.CompletedProcess,
                                                                                            list[list[str]]]:
    """Run ``python -S -m vgcourse *args`` against ``venv``; return the process and the calls its python got."""
    log = venv / "calls.jsonl"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "VGCOURSE_BOOTSTRAPPED"}
    env |= {"PYTHONPATH": str(REPO_ROOT), "VGCOURSE_VENV": str(venv), "STUB_LOG": str(log), "PIP_NO_INDEX": "1",
            "STUB_MISSING": json.dumps(list(missing)), "STUB_ORIGIN": origin}
    proc = subprocess.run([sys.executable, "-S", "-m", "vgcourse", *args], cwd=venv.parent, env=env,
                          capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def test_second_run_uses_the_prepared_venv_with_no_pip_call(venv):
    for _ in range(2):
        proc, calls = command(venv, "test", "--unit")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == "ran: test --unit bootstrapped=1"
        assert "setting up" not in proc.stdout and "pip" not in proc.stdout + proc.stderr
        assert [c[:2] for c in calls] == [["-c", bootstrap.PROBE], ["-m", "vgcourse"]]  # a probe, the run: no pip
        assert set(calls[0][2:]) == set(bootstrap.NEEDS["test"])


def test_missing_dependency_is_installed_alone_and_a_failure_says_what_to_do(venv):
    proc, calls = command(venv, "build", "00", missing=["ruff", "nbval"])  # e.g. a pull added a test dependency
    pip = [c for c in calls if c[:2] == ["-m", "pip"]]
    reqs = bootstrap.requirements()
    assert len(pip) == 1 and pip[0][-2:] == [reqs["ruff"], reqs["nbval"]], pip  # not `pip install -e .[test]`
    assert "lacks ruff, nbval; installing only that" in proc.stdout
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "vgcourse: set-up failed while installing ruff, nbval: `" in proc.stderr
    assert "What to do:" in proc.stderr and "then run `python3 -m vgcourse build` again" in proc.stderr
    assert not any(c[:2] == ["-m", "vgcourse"] for c in calls)  # the command never ran half set up


def test_venv_of_another_clone_gets_this_one_installed(venv, tmp_path):
    proc, calls = command(venv, "test", origin=str(tmp_path / "elsewhere" / "vgcourse" / "__init__.py"))
    pip = [c for c in calls if c[:2] == ["-m", "pip"]]
    assert pip and pip[0][-2:] == ["-e", f"{REPO_ROOT}[test]"]
    assert "lacks vgcourse (this clone, editable)" in proc.stdout and "Traceback" not in proc.stderr
    assert "set-up failed while installing the course and its dependencies" in proc.stderr


def test_probe_reads_a_real_python_and_every_needed_module_has_a_requirement():
    state = bootstrap.venv_state(Path(sys.executable), "test")
    assert state is not None and state.missing == []
    assert bootstrap.venv_state(Path("/nonexistent/python"), "test") is None
    reqs = bootstrap.requirements()
    assert all(m in reqs for m in bootstrap.NEEDS["test"]), sorted(set(bootstrap.NEEDS["test"]) - set(reqs))
    assert reqs["ruff"].startswith("ruff>=")
