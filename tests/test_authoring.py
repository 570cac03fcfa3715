"""Notebook sources (notebooks/src/*.py, percent format) and their notebooks hold the same cells."""

from pathlib import Path

import nbformat
import pytest

from vgcourse.authoring import cell_sources, parse_source, write_notebook

SOURCES = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "src").glob("*.py"))


def test_parse_source_reads_markdown_and_code():
    text = "# %% [markdown]\n# # Title\n#\n# Prose.\n\n# %%\nx = 1\n\nprint(x)\n"
    assert parse_source(text) == [("markdown", "# Title\n\nProse."), ("code", "x = 1\n\nprint(x)")]
    with pytest.raises(ValueError, match="before the first"):
        parse_source("x = 1\n# %%\n")
    with pytest.raises(ValueError, match="must start with '# '"):
        parse_source("# %% [markdown]\nnot a comment\n")


def test_write_keeps_outputs_of_unchanged_cells(tmp_path):
    src = tmp_path / "src" / "99_demo.py"
    src.parent.mkdir()
    src.write_text("# %%\nprint(1)\n\n# %%\nprint(2)\n")
    target = write_notebook(src)
    nb = nbformat.read(target, as_version=4)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nbformat.write(nb, target)
    src.write_text("# %%\nprint(1)\n\n# %%\nprint(3)\n")
    nb = nbformat.read(write_notebook(src), as_version=4)
    assert nb.cells[0].outputs[0].text == "1\n" and nb.cells[1].source == "print(3)" and not nb.cells[1].outputs


def test_write_keeps_the_executed_notebooks_widget_state(tmp_path):
    """The widget state of an executed notebook lives in its metadata: regenerating it from an edited source must
    not drop it, or the kept widget outputs show as text even in a trusted notebook."""
    src = tmp_path / "src" / "99_demo.py"
    src.parent.mkdir()
    src.write_text("# %% [markdown]\n# Prose.\n\n# %%\nshow()\n")
    nb = nbformat.read(write_notebook(src), as_version=4)
    state = {"application/vnd.jupyter.widget-state+json": {"state": {"abc": {"model_name": "IntSliderModel"}},
                                                          "version_major": 2, "version_minor": 0}}
    nb.metadata["widgets"] = state
    nbformat.write(nb, tmp_path / "99_demo.ipynb")
    src.write_text("# %% [markdown]\n# Edited prose.\n\n# %%\nshow()\n")
    nb = nbformat.read(write_notebook(src), as_version=4)
    assert nb.metadata["widgets"] == state and nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].source == "Edited prose."


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_every_source_matches_its_notebook(source):
    notebook = source.parent.parent / f"{source.stem}.ipynb"
    assert notebook.is_file(), f"{source} has no notebook: run python -m vgcourse.authoring {source}"
    assert cell_sources(nbformat.read(notebook, as_version=4)) == parse_source(source.read_text()), (
        f"{notebook.name} differs from its source: run python -m vgcourse.authoring {source}")


PENDING = Path(__file__).resolve().parents[1] / "notebooks" / "src" / "next_gpu_run.patch"


@pytest.mark.skipif(not PENDING.exists(), reason="no pending GPU patch")
def test_the_pending_gpu_patch_applies_to_the_sources_as_they_are():
    """The README's queue applies notebooks/src/next_gpu_run.patch before the next gpu build: a source edited
    without the patch being rebuilt would make that step fail on the GPU machine, so it fails here first."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = PENDING.parents[2]
    done = subprocess.run(["git", "apply", "--check", str(PENDING)], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    touched = {line.split(" b/")[-1] for line in PENDING.read_text().splitlines() if line.startswith("diff --git ")}
    assert touched and all(path.startswith("notebooks/src/") and path.endswith(".py") for path in touched), touched
