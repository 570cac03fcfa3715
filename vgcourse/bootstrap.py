"""Set-up for a fresh machine, with the standard library only (it runs before torch exists).

``python3 -m vgcourse build|test`` needs some modules: torch and the Jupyter stack, and pytest, nbval and ruff to
test. Where they are found decides what happens, in this order:

1. they import in the Python that runs the command: it runs there;
2. ``.venv`` exists, and its Python imports them and this clone's ``vgcourse``: the command runs there at once,
   with no pip call and no network (this is every command after the first);
3. otherwise ``.venv`` is created if needed and what is missing is installed into it (torch: a CUDA build where
   ``nvidia-smi`` finds a GPU, the CPU build ``torch==2.13.0`` otherwise; the course itself: ``pip install -e
   .[test]``; a dependency added since: that one requirement), then the command runs there. A failed install ends
   with one message, what failed and what to do; what was installed before it is kept.

``VGCOURSE_TORCH_INDEX`` names a package index for torch (for example pytorch.org's CPU wheels, which avoid a
multi-GB CUDA download on a Linux laptop); ``VGCOURSE_VENV`` another place for the environment than ``.venv``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("VGCOURSE_VENV") or REPO_ROOT / ".venv")
CPU_TORCH = "torch==2.13.0"
NEEDS = {
    "build": ["torch", "einops", "matplotlib", "ipywidgets", "moviepy", "nbclient", "ipykernel", "nbformat", "tqdm"],
    "test": ["torch", "einops", "matplotlib", "ipywidgets", "moviepy", "nbclient", "ipykernel", "nbformat", "tqdm",
             "pytest", "nbval", "ruff"],
}
# Which modules a Python has, and where its ``vgcourse`` comes from; run in the virtual environment's Python with
# the module names as arguments (finding a module does not import it: this takes a fraction of a second).
PROBE = ("import importlib.util, json, sys; spec = importlib.util.find_spec('vgcourse'); "
         "print(json.dumps({'missing': [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None], "
         "'vgcourse': spec.origin if spec else None}))")


class SetupError(Exception):
    """A set-up step failed; the message says which and what to do."""


class VenvState(NamedTuple):
    missing: list[str]  # modules the command needs that do not import there
    ours: bool  # its ``vgcourse`` is this clone's


def missing_modules(command: str) -> list[str]:
    """The modules ``command`` needs that this Python cannot find."""
    return [m for m in NEEDS.get(command, []) if importlib.util.find_spec(m) is None]


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True).returncode == 0


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def venv_state(python: Path, command: str) -> VenvState | None:
    """What ``python`` lacks for ``command``, and whether its ``vgcourse`` is this clone's; None if it does not run."""
    try:
        out = subprocess.run([str(python), "-c", PROBE, *NEEDS.get(command, [])], capture_output=True, text=True,
                             cwd=python.parent, timeout=120)  # not the repository's folder: it would find vgcourse
        found = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        found = None
    if not isinstance(found, dict):
        return None
    origin = found.get("vgcourse")
    ours = origin is not None and Path(origin).resolve() == (REPO_ROOT / "vgcourse" / "__init__.py").resolve()
    return VenvState(list(found.get("missing", [])), ours)


def requirements() -> dict[str, str]:
    """{distribution name: requirement} of the course and its test extras, read from pyproject.toml."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project.get("optional-dependencies", {}).get("test", [])
    return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("_", "-"): r for r in reqs}


def _run(cmd: list[str], what: str, command: str) -> None:
    print("+", shlex.join(cmd), flush=True)
    try:
        code = subprocess.run(cmd).returncode
    except OSError as err:
        code = f"an error ({err})"
    if code != 0:
        raise SetupError(
            f"vgcourse: set-up failed while {what}: `{shlex.join(cmd)}` exited with status {code} (its message is "
            f"above).\nWhat to do: this step needs the package index (PyPI, or $VGCOURSE_TORCH_INDEX for torch); "
            f"check the network or proxy (pip reads HTTPS_PROXY and PIP_INDEX_URL), then run `python3 -m vgcourse "
            f"{command}` again: what is already in {VENV} is kept, and only what is missing is installed. Or set up "
            f"by hand: `{venv_python()} -m pip install -e '{REPO_ROOT}[test]'`, or with conda: "
            "`conda env create -f environment.yml`.")


def install(command: str, state: VenvState | None) -> Path:
    """Install what ``command`` lacks into the virtual environment (created if needed); return its Python."""
    if sys.version_info < (3, 11):
        raise SetupError(f"vgcourse needs Python 3.11 or newer, this is {sys.version.split()[0]} ({sys.executable})")
    py = venv_python()
    if not py.exists():
        _run([sys.executable, "-m", "venv", str(VENV)], f"creating the virtual environment {VENV} (on Debian and "
             "Ubuntu this needs the python3-venv package)", command)
        state = None
    missing = NEEDS[command] if state is None else state.missing
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    if "torch" in missing:
        torch_req = "torch" if has_gpu() else CPU_TORCH
        index = os.environ.get("VGCOURSE_TORCH_INDEX")
        _run(pip + [torch_req] + (["--index-url", index] if index else []), f"installing {torch_req}", command)
    rest = [m for m in missing if m != "torch"]
    if state is None or not state.ours:
        _run(pip + ["-e", f"{REPO_ROOT}[test]"], "installing the course and its dependencies", command)
    elif rest:
        reqs = requirements()
        _run(pip + [reqs.get(m, m) for m in rest], f"installing {', '.join(rest)}", command)
    return py


def _rerun(python: Path, command: str, argv: list[str]) -> None:
    """Run ``python -m vgcourse command argv`` in place of this process (does not return)."""
    args = [str(python), "-m", "vgcourse", command, *argv]
    env = dict(os.environ, VGCOURSE_BOOTSTRAPPED="1")
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(args[0], args, env)
    try:
        sys.exit(subprocess.run(args, env=env).returncode)
    except KeyboardInterrupt:
        sys.exit(130)


def ensure(command: str, argv: list[str]) -> None:
    """Return if ``command`` can run here; otherwise run it in the virtual environment, set up first if it lacks
    something (does not return)."""
    missing = missing_modules(command)
    if not missing:
        return
    if os.environ.get("VGCOURSE_BOOTSTRAPPED"):  # this is the re-run, and something still does not import
        sys.exit(f"vgcourse: set-up finished, but {', '.join(missing)} still do not import in {sys.executable}; "
                 f"remove {VENV} and run `python3 -m vgcourse {command}` again to set up afresh")
    py = venv_python()
    in_venv = Path(sys.prefix).resolve() == VENV.resolve()
    state = venv_state(py, command) if py.exists() else None
    if state is not None and not state.missing and state.ours and not in_venv:
        _rerun(py, command, argv)  # every command after the first: no pip, no network
    if state is None:
        print(f"vgcourse: {', '.join(missing)} do not import here; setting up {VENV} "
              "(once: a few minutes, and the network)", flush=True)
    else:
        lacking = state.missing + ([] if state.ours else ["vgcourse (this clone, editable)"])
        print(f"vgcourse: {VENV} lacks {', '.join(lacking)}; installing only that", flush=True)
    try:
        py = install(command, state)
    except SetupError as err:
        sys.exit(str(err))
    _rerun(py, command, argv)
