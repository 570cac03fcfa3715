"""Notebook sources: a chapter written as a plain Python file in the "percent" format, turned into its notebook.

A source ``notebooks/src/01_vae_and_gan.py`` holds the cells in order::

    # %% [markdown]
    # # 01 · VAE and GAN on frames
    # Prose, one "# " per line.

    # %%
    import torch

Plain text diffs and reviews well, and ruff lints it; the notebook is what learners open and what the build
executes. ``python -m vgcourse.authoring notebooks/src/01_vae_and_gan.py`` writes ``notebooks/01_vae_and_gan.ipynb``
(unexecuted; a GPU build fills in the outputs), keeping the outputs of any cell whose source did not change and the
notebook's metadata (the widget state an executed notebook carries, so that its kept widgets still render).
A test checks that every source and its notebook hold the same cells.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

MARKER = re.compile(r"^# %%(?P<kind> \[markdown\])?\s*$")


def parse_source(text: str) -> list[tuple[str, str]]:
    """[(cell_type, source)] from a percent-format file; text before the first marker is refused."""
    cells: list[tuple[str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        m = MARKER.match(line)
        if m:
            cells.append(("markdown" if m.group("kind") else "code", []))
            continue
        if not cells:
            if line.strip():
                raise ValueError(f"line {number}: text before the first '# %%' marker: {line!r}")
            continue
        kind, lines = cells[-1]
        if kind == "markdown":
            if line and not (line == "#" or line.startswith("# ")):
                raise ValueError(f"line {number}: a markdown line must start with '# ' (or be '#'), got {line!r}")
            line = line[2:]
        lines.append(line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]


def cell_sources(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in notebook.cells]


def write_notebook(source: Path, target: Path | None = None) -> Path:
    """Write the notebook of ``source`` (default: ``notebooks/<stem>.ipynb`` beside ``src/``), keeping the outputs of
    cells whose source is unchanged."""
    source = Path(source)
    target = target or source.parent.parent / f"{source.stem}.ipynb"
    old, metadata = {}, {}
    if target.is_file():
        previous = nbformat.read(target, as_version=4)
        metadata = dict(previous.metadata)    # an executed notebook's widget state and language_info stay with it
        for c in previous.cells:
            old.setdefault((c.cell_type, c.source), c)
    cells = []
    for kind, text in parse_source(source.read_text()):
        if (kind, text) in old:
            cells.append(old.pop((kind, text)))
        elif kind == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            cells.append(nbformat.v4.new_code_cell(text))
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"language_info": {"name": "python"}} | metadata | {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})
    nbformat.write(nb, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vgcourse.authoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path, help="percent-format chapter sources")
    args = parser.parse_args(argv)
    for source in args.sources:
        print(f"{source} -> {write_notebook(source)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
