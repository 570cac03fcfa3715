"""Set-up for a fresh machine, with the standard library only (it runs before torch exists).

``python -m vgcourse build|test`` first checks that the modules it needs import. If not, it makes a virtual
environment ``.venv`` in the repository, installs torch (a CUDA build where ``nvidia-smi`` finds a GPU, the
CPU build ``torch==2.13.0`` otherwise) and the course with its dependencies, then runs itself again there.
Set ``VGCOURSE_TORCH_INDEX`` to a package index URL to choose where torch comes from (for example the CPU
wheel index of pytorch.org, which avoids a multi-GB CUDA download on a Linux laptop).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV = REPO_ROOT / ".venv"
CPU_TORCH = "torch==2.13.0"
NEEDS = {
    "build": ["torch", "einops", "matplotlib", "ipywidgets", "moviepy", "nbclient", "ipykernel", "nbformat", "tqdm"],
    "test": ["torch", "einops", "matplotlib", "ipywidgets", "moviepy", "nbclient", "ipykernel", "nbformat", "tqdm",
             "pytest", "nbval"],
}


def missing_modules(command: str) -> list[str]:
    return [m for m in NEEDS.get(command, []) if importlib.util.find_spec(m) is None]


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True).returncode == 0


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def install() -> Path:
    """Create .venv with torch and the course installed (editable); return its python."""
    if sys.version_info < (3, 11):
        sys.exit(f"vgcourse needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    py = venv_python()
    if not py.exists():
        run([sys.executable, "-m", "venv", str(VENV)])
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    probe = subprocess.run([str(py), "-c", "import torch"], capture_output=True)
    if probe.returncode != 0:
        torch_req = "torch" if has_gpu() else CPU_TORCH
        index = os.environ.get("VGCOURSE_TORCH_INDEX")
        run(pip + [torch_req] + (["--index-url", index] if index else []))
    run(pip + ["-e", f"{REPO_ROOT}[test]"])
    return py


def ensure(command: str, argv: list[str]) -> None:
    """Return if ``command`` can run here; otherwise install into .venv and re-run there (does not return)."""
    missing = missing_modules(command)
    if not missing:
        return
    in_venv = Path(sys.prefix).resolve() == VENV.resolve()
    if in_venv and os.environ.get("VGCOURSE_BOOTSTRAPPED"):
        sys.exit(f"set-up finished but these modules still do not import: {', '.join(missing)}")
    print(f"vgcourse: {', '.join(missing)} missing here; setting up {VENV} (once, a few minutes)", flush=True)
    py = install()
    env = dict(os.environ, VGCOURSE_BOOTSTRAPPED="1")
    result = subprocess.run([str(py), "-m", "vgcourse", command, *argv], env=env)
    sys.exit(result.returncode)
