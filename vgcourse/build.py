"""Execute the course's notebooks headlessly with nbclient and write them, with their results files.

    python -m vgcourse build                       # every chapter, the profile that fits this machine
    python -m vgcourse build 00 08 --profile smoke # some chapters
    python -m vgcourse build 08 --out notebooks    # refresh the committed notebooks (maintainers, on a GPU)
    python -m vgcourse build --profile smoke --record-times   # also note each chapter's minutes in times.json

Executed notebooks go to ``--out`` (default ``build/<profile>/``) and results to ``<out>/results/``. A failing
cell stops the build with the cell's source and error, and the partial notebook is saved for inspection.
``--record-times`` adds each chapter's wall time, with the profile and the machine, to the committed
``notebooks/results/times.json``, from which the README's table of times is made (``python -m vgcourse.results
--times``). Kernels talk to the build over IPC sockets in a private folder (no TCP port, nothing in plain text on
the network), and their progress bars are whole lines of text (:mod:`vgcourse.progress`), so a saved notebook shows
each bar finished.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
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


def kernel_env() -> dict[str, str]:
    """The environment of the notebooks' kernels: this process's, with progress bars as lines of text."""
    from vgcourse.progress import ENV_VAR

    return dict(os.environ, **{ENV_VAR: os.environ.get(ENV_VAR) or "lines"})


def notebook_client(nb, timeout: int, ipc_dir: str, **kwargs):
    """An nbclient ``NotebookClient`` whose kernel listens on IPC sockets in ``ipc_dir`` (not TCP: ipykernel warns
    that TCP without keys is plain text, and there is no port to find or to collide on)."""
    from nbclient import NotebookClient
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = os.path.join(ipc_dir, "kernel")  # sockets kernel-<n>, removed at shutdown
    return NotebookClient(nb, timeout=timeout, kernel_name="python3", config=config,
                          resources={"metadata": {"path": str(NOTEBOOKS)}}, **kwargs)


def execute(path: Path, out_dir: Path, profile: str, timeout: int) -> float:
    """Run one notebook in a fresh kernel; write it to ``out_dir``; return its wall time in seconds."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    from vgcourse.progress import progress_bar

    nb = nbformat.read(path, as_version=4)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    bar = progress_bar(total=code_cells, desc=path.stem, unit="cell")
    target = out_dir / path.name
    started = time.time()
    # A time limit (`timeout`, a batch system) sends SIGTERM: turn it into KeyboardInterrupt so that the partial
    # notebook, with nbclient's per-cell timings in each cell's metadata, is still written for inspection.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="vgcourse-kernel-") as ipc_dir:
            client = notebook_client(nb, timeout, ipc_dir, on_cell_complete=lambda cell, cell_index: bar.update(1))
            client.execute(env=kernel_env())
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
    parser.add_argument("--record-times", action="store_true",
                        help="add each chapter's wall time (profile, machine) to notebooks/results/times.json")
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
    from vgcourse.results import load_average

    times, loads = {}, {}
    for path in chapters:
        loads[path.stem] = load_average()
        times[path.stem] = execute(path, out, profile, args.timeout)
    print("\nchapter                          minutes")
    for name, seconds in times.items():
        print(f"{name:32s} {seconds / 60:6.1f}")
    print(f"{'all':32s} {sum(times.values()) / 60:6.1f}")
    print(f"results: {out / 'results'}")
    if args.record_times:
        from vgcourse import results

        machine = results.machine_name(profile)
        path = results.record_build_times(times, profile, machine, load=loads)
        print(f"times recorded in {path} ({profile} on {machine}); "
              f"refresh the README's tables with `{sys.executable} -m vgcourse.results --readme`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
