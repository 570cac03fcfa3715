"""Execute the course's notebooks headlessly with nbclient and write them, with their results files.

    python -m vgcourse build                       # every chapter, the profile that fits this machine
    python -m vgcourse build 00 08 --profile smoke # some chapters
    python -m vgcourse build 08 --out notebooks    # refresh the committed notebooks (maintainers, on a GPU)

Executed notebooks go to ``--out`` (default ``build/<profile>/``) and results to ``<out>/results/``. A failing
cell stops the build with the cell's source and error, and the partial notebook is saved for inspection.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MAX_NOTEBOOK_BYTES = 2 * 1024 * 1024


def find_chapters(names: list[str]) -> list[Path]:
    """Notebook paths for chapter names: '08', '08_ddpm_video', 'ddpm_video' or a path; none means all."""
    available = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return available
    chosen = []
    for name in names:
        stem = Path(name).stem
        hits = [p for p in available if p.stem == stem or p.stem.split("_", 1)[0] == stem
                or p.stem.split("_", 1)[1] == stem]
        if not hits:
            known = ", ".join(p.stem for p in available)
            raise SystemExit(f"no chapter {name!r}; the chapters are: {known}")
        chosen.extend(hits)
    return chosen


def execute(path: Path, out_dir: Path, profile: str, timeout: int) -> float:
    """Run one notebook in a fresh kernel; write it to ``out_dir``; return its wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm.auto import tqdm

    nb = nbformat.read(path, as_version=4)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    bar = tqdm(total=code_cells, desc=path.stem, unit="cell")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}},
                            on_cell_complete=lambda cell, cell_index: bar.update(1))
    target = out_dir / path.name
    started = time.time()
    # A time limit (`timeout`, a batch system) sends SIGTERM: turn it into KeyboardInterrupt so that the partial
    # notebook, with nbclient's per-cell timings in each cell's metadata, is still written for inspection.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        client.execute()
    except BaseException as err:  # a failing cell, or a stop (nbclient's clean-up may re-raise it as another error)
        bar.close()
        nbformat.write(nb, target)
        reason = "failed" if isinstance(err, CellExecutionError) else "was stopped"
        raise SystemExit(f"\n{path.name} {reason} in the {profile} profile after {time.time() - started:.0f} s; "
                         f"partial notebook saved to {target}\n{err}")
    finally:
        signal.signal(signal.SIGTERM, previous)
    bar.close()
    nbformat.write(nb, target)
    size = target.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        print(f"warning: {target.name} is {size / 1e6:.1f} MB; keep notebooks under 2 MB (fewer, smaller videos)")
    return time.time() - started


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vgcourse build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapters to build (default: all)")
    parser.add_argument("--profile", choices=("smoke", "cpu", "gpu"), default=None,
                        help="default: gpu with CUDA, cpu otherwise")
    parser.add_argument("--out", type=Path, default=None, help="default: build/<profile>/")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args(argv)

    if args.profile:
        os.environ["VGCOURSE_PROFILE"] = args.profile
    from vgcourse.paths import build_dir
    from vgcourse.profiles import current_profile

    profile = current_profile()
    out = (args.out or build_dir(profile)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["VGCOURSE_PROFILE"] = profile  # the kernels inherit these
    os.environ["VGCOURSE_RESULTS_DIR"] = str(out / "results")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    chapters = find_chapters(args.chapters)
    print(f"building {len(chapters)} chapter(s) in the {profile} profile into {out}", flush=True)
    times = {}
    for path in chapters:
        times[path.stem] = execute(path, out, profile, args.timeout)
    print("\nchapter                          minutes")
    for name, seconds in times.items():
        print(f"{name:32s} {seconds / 60:6.1f}")
    print(f"results: {out / 'results'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
