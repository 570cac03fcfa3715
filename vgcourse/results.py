"""Results files: what a chapter measured, with the device, profile and code that measured it.

A run writes ``<results dir>/<chapter>.json``. The build command sets the folder (``--out``); in JupyterLab it
defaults to ``build/<profile>/results/`` so that a laptop run never overwrites the committed GPU results in
``notebooks/results/``. The README's table and the capstone read these files; numbers in a notebook's text
come from them or from cells above, never typed in.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from vgcourse.paths import REPO_ROOT, build_dir
from vgcourse.profiles import current_profile

ENV_VAR = "VGCOURSE_RESULTS_DIR"
COMMITTED = REPO_ROOT / "notebooks" / "results"


def results_dir(profile: str | None = None) -> Path:
    """``$VGCOURSE_RESULTS_DIR`` or ``build/<profile>/results``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return build_dir(profile or current_profile()) / "results"


def git_commit() -> str | None:
    """The commit of the code that ran: ``$VGCOURSE_COMMIT`` (set where the tree travels without .git) or git's."""
    if os.environ.get("VGCOURSE_COMMIT"):
        return os.environ["VGCOURSE_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _plain(value: Any) -> Any:
    """JSON-friendly copy: tensors to numbers/lists, NaN/inf to None, dataclass-like objects to dicts."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "as_dict"):
        return _plain(value.as_dict())
    return value


class PartTimer:
    """Minutes spent in each part of a chapter, printed as it goes and kept for the results file.

        timer = PartTimer(STARTED)
        ...train...
        timer.lap("main DiT")     # prints "main DiT: 3.52 min (chapter so far 4.1 min)"
        results.record(..., minutes=timer.minutes)
    """

    def __init__(self, started: float | None = None):
        self.started = started if started is not None else time.time()
        self.since = time.time()
        self.minutes: dict[str, float] = {}

    def start(self) -> None:
        """Start timing a part here (time since the last lap that belongs to no part is left out)."""
        self.since = time.time()

    def lap(self, part: str) -> float:
        """Close ``part`` (the time since the last lap or start) and return its minutes."""
        now = time.time()
        self.minutes[part] = round((now - self.since) / 60, 2)
        self.since = now
        print(f"{part}: {self.minutes[part]:.2f} min (chapter so far {(now - self.started) / 60:.1f} min)")
        return self.minutes[part]


def record(chapter: str, metrics: dict[str, Any], started: float | None = None, **extra: Any) -> Path:
    """Write ``<results dir>/<chapter>.json`` with ``metrics`` and the provenance of the run.

    ``started`` is a ``time.time()`` taken at the top of the notebook, for the wall time.
    """
    path = results_dir() / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"chapter": chapter, "metrics": _plain(metrics), "profile": current_profile(),
               "device": device_name(), "torch": torch.__version__, "commit": git_commit(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "wall_time_s": None if started is None else round(time.time() - started, 1)} | _plain(extra)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {path}")
    return path


def load(chapter: str, directory: str | Path | None = None) -> dict[str, Any]:
    """Read a chapter's results (default: the committed GPU results in ``notebooks/results``)."""
    path = Path(directory or COMMITTED) / f"{chapter}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results for {chapter!r} at {path}; run `python -m vgcourse build {chapter}`")
    return json.loads(path.read_text())


HEADLINE_KEYS = ("fd", "frame_quality", "identity_consistency", "motion_consistency", "attribute_accuracy",
                 "bits_per_dim", "psnr", "mfu", "samples_per_s")


def headline(payload: dict[str, Any]) -> dict[str, Any]:
    """The numbers a chapter leads with: its ``headline`` entry, else the top-level metrics named above."""
    metrics = payload.get("metrics", {})
    if isinstance(metrics.get("headline"), dict):
        return metrics["headline"]
    return {k: v for k, v in metrics.items() if k in HEADLINE_KEYS and isinstance(v, (int, float))}


def markdown_table(directory: str | Path | None = None) -> str:
    """The README's results table, built from the committed results files (never typed in)."""
    directory = Path(directory or COMMITTED)
    rows = ["| chapter | headline (course metrics on generated samples) | device | profile | wall time |",
            "|---|---|---|---|---|"]
    for path in sorted(directory.glob("*.json")):
        payload = json.loads(path.read_text())
        numbers = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in headline(payload).items())
        wall = payload.get("wall_time_s")
        rows.append(f"| {payload['chapter']} | {numbers or '—'} | {payload['device']} | {payload['profile']} | "
                    f"{'—' if wall is None else f'{wall / 60:.1f} min'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
