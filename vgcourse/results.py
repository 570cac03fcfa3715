"""Results files: what a chapter measured, with the device, profile and code that measured it.

A run writes ``<results dir>/<chapter>.json``. The build command sets the folder (``--out``); in JupyterLab it
defaults to ``build/<profile>/results/`` so that a laptop run never overwrites the committed GPU results in
``notebooks/results/``. The README's table and the capstone read these files; numbers in a notebook's text
come from them or from cells above, never typed in. Measuring and printing: :class:`PartTimer` (minutes per part),
:func:`timed` (seconds of one call), :func:`num` (a number, or 'n/a' where none was measured).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from vgcourse.paths import REPO_ROOT, build_dir
from vgcourse.profiles import cpu_threads, current_profile

T = TypeVar("T")
ENV_VAR = "VGCOURSE_RESULTS_DIR"
COMMITTED = REPO_ROOT / "notebooks" / "results"


def results_dir(profile: str | None = None) -> Path:
    """``$VGCOURSE_RESULTS_DIR`` or ``build/<profile>/results``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return build_dir(profile or current_profile()) / "results"


RUN_INPUTS = ("vgcourse", "notebooks/src", "data")   # what a run executes and reads; notebooks/ is what it writes


def git_commit() -> str | None:
    """The commit of the code that ran: ``$VGCOURSE_COMMIT`` (set where the tree travels without .git) or git's,
    with ``-dirty`` appended when the package, a notebook source or the shipped data differs from that commit
    (uncommitted edits ran, so the commit alone does not name them)."""
    if os.environ.get("VGCOURSE_COMMIT"):
        return os.environ["VGCOURSE_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=5).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *RUN_INPUTS],
                                 cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    return head + "-dirty" if changed else head


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

    def minutes_left(self, budget: float | None, reserve: float = 0.0, floor: float = 0.0) -> float | None:
        """The minutes a part may still take so that the chapter, counted from ``started``, ends within ``budget``
        minutes with ``reserve`` minutes kept for what follows it; at least ``floor``. None without a budget."""
        if budget is None:
            return None
        return max(floor, budget - reserve - (time.time() - self.started) / 60)

    def lap(self, part: str) -> float:
        """Close ``part`` (the time since the last lap or start) and return its minutes."""
        now = time.time()
        self.minutes[part] = round((now - self.since) / 60, 2)
        self.since = now
        print(f"{part}: {self.minutes[part]:.2f} min (chapter so far {(now - self.started) / 60:.1f} min)")
        return self.minutes[part]


def timed(fn: Callable[[], T], device: torch.device | str | None = None) -> tuple[T, float]:
    """Run ``fn()``; return its result and its wall time in seconds.

    On CUDA the clock is read after ``torch.cuda.synchronize()`` on both sides, so that the time is the GPU's work
    and not only its queueing. ``device``: where fn runs (None: CUDA whenever it is in use in this process).
    """
    sync = (torch.cuda.is_available() and torch.cuda.is_initialized()) if device is None \
        else torch.device(device).type == "cuda"
    if sync:
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if sync:
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def seconds_per_call(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1,
                     device: torch.device | str | None = None) -> float:
    """The median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls that are not timed
    (the first call of a layer or a compiled function pays for kernels being chosen, loaded or compiled). Each call
    is timed as :func:`timed` times it, synchronised on CUDA; the median is robust to one call interrupted by
    something else on the machine.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, device)[1] for _ in range(repeats))


def num(value: float | torch.Tensor | None, spec: str = ".3g") -> str:
    """A measured number formatted with ``spec`` (``format(value, spec)``), or 'n/a' where it could not be measured
    (a loop too short to time, an unknown CPU peak, no CUDA memory counter), as wide as the spec asks, so that a
    table's columns stay aligned.

    num(0.1234) -> '0.123'; num(0.1234, '.1%') -> '12.3%'; num(None, '8.0f') -> '     n/a'.
    """
    if value is None:
        spec_ = re.match(r"(?P<align>.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)", spec)
        align = (spec_["align"] or ">").replace("=", ">")  # numbers align right; '=' (after the sign) is theirs only
        return format("n/a", f"{align}{spec_['width']}")
    return format(value, spec)


def record(chapter: str, metrics: dict[str, Any], started: float | None = None, **extra: Any) -> None:
    """Write ``<results dir>/<chapter>.json`` with ``metrics`` and the provenance of the run.

    ``started`` is a ``time.time()`` taken at the top of the notebook, for the wall time. Returns nothing, so a
    notebook's last line shows no machine-specific path; it prints the file's name within the results folder
    (read it back with :func:`load`).
    """
    path = results_dir() / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"chapter": chapter, "metrics": _plain(metrics), "profile": current_profile(),
               "device": device_name(), "torch": torch.__version__, "commit": git_commit(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "wall_time_s": None if started is None else round(time.time() - started, 1)} | _plain(extra)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {path.parent.name}/{path.name}")


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


BOOKKEEPING_KEYS = ("n_gen", "n_real", "units", "seed", "steps")


def headline_text(numbers: dict[str, Any]) -> str:
    """``fd 16.7 ± 0.764, frame_quality 0.634, ...``: each ``<key>_se`` joins its number, counts and labels that
    only say how a number was made (``n_gen``, ``seed``, ...) and missing values are left out."""
    parts = []
    for key, value in numbers.items():
        if key in BOOKKEEPING_KEYS or value is None or (key.endswith("_se") and key[:-3] in numbers):
            continue
        text = f"{value:.3g}" if isinstance(value, float) else f"{value}"
        se = numbers.get(f"{key}_se")
        if isinstance(se, (int, float)):
            text += f" ± {se:.2g}"
        parts.append(f"{key} {text}")
    return ", ".join(parts)


def markdown_table(directory: str | Path | None = None) -> str:
    """The README's results table, built from the committed results files (never typed in)."""
    directory = Path(directory or COMMITTED)
    rows = ["| chapter | headline (course metrics on generated samples) | device | profile | wall time |",
            "|---|---|---|---|---|"]
    for path in sorted(directory.glob("[0-9][0-9]_*.json")):  # chapters' files (not times.json)
        payload = json.loads(path.read_text())
        numbers = headline_text(headline(payload))
        wall = payload.get("wall_time_s")
        rows.append(f"| {payload['chapter']} | {numbers or '—'} | {payload['device']} | {payload['profile']} | "
                    f"{'—' if wall is None else f'{wall / 60:.1f} min'} |")
    return "\n".join(rows)


# ---- measured times -------------------------------------------------------------------------------------------
TIMES = COMMITTED / "times.json"


def machine_name(profile: str | None = None) -> str:
    """What a time was measured on: the GPU's name in the ``gpu`` profile, else the CPU cores and model."""
    if (profile or current_profile()) == "gpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu_threads()} CPU cores ({model})"


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the system has none): a measured time is honest only at low
    load, and the times file says what the load was."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _provenance() -> dict[str, Any]:
    return {"date": time.strftime("%Y-%m-%d"), "commit": git_commit(), "torch": torch.__version__}


def _update_times(update: Callable[[dict], None], path: Path | None = None) -> Path:
    path = Path(path or TIMES)
    times = json.loads(path.read_text()) if path.is_file() else {}
    update(times)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(times, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def record_build_times(seconds: dict[str, float], profile: str, machine: str | None = None,
                       path: Path | None = None, load: dict[str, float | None] | None = None) -> Path:
    """Add each chapter's build wall time (seconds, a whole notebook in a fresh kernel) to ``times.json``, under
    ``build/<profile>/<machine>``, with the load average at its start (``load``); entries of other chapters,
    profiles and machines are kept."""
    machine = machine or machine_name(profile)

    def update(times: dict) -> None:
        chapters = times.setdefault("build", {}).setdefault(profile, {}).setdefault(machine, {})
        for chapter, s in seconds.items():
            chapters[chapter] = {"seconds": round(float(s), 1), "load": (load or {}).get(chapter)} | _provenance()

    return _update_times(update, path)


def record_test_time(command: str, seconds: float, counts: dict[str, int], machine: str | None = None,
                     path: Path | None = None, load: float | None = None, scope: str | None = None) -> Path:
    """Add one timed run of the test command (``command``, e.g. ``python3 -m vgcourse test``) to ``times.json``:
    its wall time (ruff and pytest), pytest's counts (``tests``, ``skipped``, ``failures``, ``errors``) and the load
    average at its start; ``scope`` says what the time covers when it is more than ruff and pytest."""
    machine = machine or machine_name("cpu")

    def update(times: dict) -> None:
        times.setdefault("test", {}).setdefault(command, {})[machine] = (
            {"seconds": round(float(seconds), 1), "load": load} | {k: int(v) for k, v in counts.items()}
            | ({"scope": scope} if scope else {}) | _provenance())

    return _update_times(update, path)


def _span(values: list[float]) -> str:
    return f"{values[0]:g}" if values[0] == values[-1] else f"{values[0]:g}–{values[-1]:g}"


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def times_table(path: Path | None = None) -> str:
    """The README's table of measured times, built from ``times.json`` (never typed in): each chapter's build time
    per profile and machine, the build of all of them, and the test command."""
    path = Path(path or TIMES)
    times = json.loads(path.read_text()) if path.is_file() else {}
    columns = [(profile, machine) for profile in ("smoke", "cpu", "gpu")
               for machine in sorted(times.get("build", {}).get(profile, {}))]
    lines = []
    if columns:
        build = times["build"]
        chapters = sorted({c for profile, machine in columns for c in build[profile][machine]})
        lines += ["| chapter | " + " | ".join(f"`{p}` on {m}" for p, m in columns) + " |",
                  "|---|" + "---|" * len(columns)]
        for chapter in chapters:
            cells = [_minutes(build[p][m].get(chapter, {}).get("seconds")) for p, m in columns]
            lines.append(f"| {chapter} | " + " | ".join(cells) + " |")
        totals = []
        for p, m in columns:
            got = [build[p][m].get(c, {}).get("seconds") for c in chapters]
            totals.append(_minutes(sum(got)) if None not in got else "—")
        lines.append("| all of the above | " + " | ".join(totals) + " |")
        entries = [e for p, m in columns for e in build[p][m].values()]
        dates = sorted({e["date"] for e in entries})
        loads = sorted(e["load"] for e in entries if e.get("load") is not None)
        lines.append("")
        lines.append("Wall time of each notebook in a fresh kernel (`python3 -m vgcourse build --profile P "
                     "--record-times`), measured " + (dates[0] + (f" to {dates[-1]}" if len(dates) > 1 else ""))
                     + (f"; load average at the chapters' starts {_span(loads)}" if loads else "") + ".")
    for command, machines in sorted(times.get("test", {}).items()):
        for machine, e in sorted(machines.items()):
            skipped = f", {e['skipped']} skipped" if e.get("skipped") else ""
            load = f" (load average {e['load']:g} at its start)" if e.get("load") is not None else ""
            lines += ["", f"`{command}` on {machine}, measured {e['date']}{load}: {e['tests']} tests{skipped}, "
                          f"{_minutes(e['seconds'])} ({e.get('scope', 'ruff, then pytest; set-up excluded')})."]
    return "\n".join(lines).strip()


README = REPO_ROOT / "README.md"
README_SECTIONS = {"results-table": markdown_table, "times-table": times_table}


def update_readme(path: Path | None = None) -> list[str]:
    """Rewrite the README's generated sections (between ``<!-- name -->`` and ``<!-- /name -->``) from the committed
    files; return the names of the sections that changed."""
    path = Path(path or README)
    text = path.read_text()
    changed = []
    for name, make in README_SECTIONS.items():
        start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
        if start not in text or end not in text:
            raise ValueError(f"expected the markers {start} and {end} in {path}")
        head, rest = text.split(start, 1)
        old, tail = rest.split(end, 1)
        new = f"\n{make()}\n"
        changed += [name] if old != new else []
        text = head + start + new + end + tail
    path.write_text(text)
    return changed


if __name__ == "__main__":
    import sys

    if "--readme" in sys.argv[1:]:
        print(f"README sections rewritten: {', '.join(update_readme()) or 'none (already current)'}")
    else:
        print(times_table() if "--times" in sys.argv[1:] else markdown_table())
