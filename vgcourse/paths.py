"""Where the course's files live: the repository's ``data/`` (shipped files) and ``build/`` (outputs)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """``$VGCOURSE_DATA`` or the repository's ``data/`` folder."""
    path = Path(os.environ.get("VGCOURSE_DATA", REPO_ROOT / "data"))
    if not path.is_dir():
        raise FileNotFoundError(f"the course data folder {path} does not exist: run from a clone of the course "
                                "repository (pip install -e .) or set VGCOURSE_DATA to its data/ folder")
    return path


def data_path(name: str) -> Path:
    """A shipped file in ``data/``; a missing file is an error that says what to do."""
    path = data_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with the course repository; restore it with "
                                f"`git checkout -- data/{name}`")
    return path


def build_dir(profile: str) -> Path:
    """Outputs of runs in ``profile`` that are not committed: ``build/<profile>/`` (git-ignored)."""
    return REPO_ROOT / "build" / profile
