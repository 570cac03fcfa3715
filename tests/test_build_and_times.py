"""The build's kernels (IPC, progress as lines) and the measured times behind the README's table."""

import json

import nbformat

from vgcourse import build, results
from vgcourse.paths import REPO_ROOT


def test_build_kernel_is_quiet_its_bars_end_finished_and_times_are_recorded(tmp_path, monkeypatch, capfd):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    train = ("import torch\nfrom vgcourse.train import TrainConfig, Trainer\n"
             "model = torch.nn.Linear(2, 1)\n"
             "trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda step: torch.randn(4, 2),\n"
             "                  TrainConfig(steps=20, log_every=5, measure_flops=False, desc='fit'),\n"
             "                  loss_fn=lambda m, x: m(x).pow(2).mean())\n"
             "summary = trainer.fit()")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(train)]), nbdir / "01_bars.ipynb")
    monkeypatch.setattr(build, "NOTEBOOKS", nbdir)
    monkeypatch.setattr(results, "TIMES", tmp_path / "times.json")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.delenv("VGCOURSE_PROGRESS", raising=False)
    assert build.main(["01", "--profile", "smoke", "--out", str(tmp_path / "out"), "--record-times",
                       "--timeout", "120"]) == 0

    outputs = nbformat.read(tmp_path / "out" / "01_bars.ipynb", as_version=4).cells[0].outputs
    assert all("application/vnd.jupyter.widget-view+json" not in o.get("data", {}) for o in outputs), outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "\r" not in text and text.strip().splitlines()[-1].startswith("fit: 100%|") and "20/20" in text, text
    assert "without encryption" not in capfd.readouterr().err  # ipykernel's warning for a TCP kernel

    times = json.loads((tmp_path / "times.json").read_text())
    [(machine, chapters)] = times["build"]["smoke"].items()
    assert machine == results.machine_name("smoke") and "CPU cores" in machine
    assert 0 < chapters["01_bars"]["seconds"] < 120 and chapters["01_bars"]["date"]


def test_times_table_lists_chapters_by_profile_and_machine_and_the_test_command(tmp_path):
    path = tmp_path / "times.json"
    results.record_build_times({"00_a": 30.0, "08_b": 90.0}, "smoke", "2 CPU cores (X)", path=path,
                               load={"00_a": 3.0, "08_b": 1.25})
    results.record_build_times({"08_b": 420.0}, "gpu", "NVIDIA H200", path=path)
    results.record_build_times({"00_a": 36.0}, "smoke", "2 CPU cores (X)", path=path,
                               load={"00_a": 0.3})  # a re-measurement replaces the entry
    results.record_test_time("python3 -m vgcourse test", 210.0, {"tests": 563, "skipped": 1, "failures": 0},
                             machine="2 CPU cores (X)", path=path, load=0.7)
    table = results.times_table(path)
    lines = table.splitlines()
    assert lines[0] == "| chapter | `smoke` on 2 CPU cores (X) | `gpu` on NVIDIA H200 |"
    assert "| 00_a | 0.6 min | — |" in lines and "| 08_b | 1.5 min | 7.0 min |" in lines
    assert "| all of the above | 2.1 min | — |" in lines  # the gpu column lacks a chapter: no total
    assert "load average at the chapters' starts 0.3–1.25." in table
    assert "`python3 -m vgcourse test` on 2 CPU cores (X), measured" in table
    assert "(load average 0.7 at its start): 563 tests, 1 skipped, 3.5 min (ruff, then pytest" in table
    results.record_test_time(".ci/run", 400.0, {"tests": 563}, machine="2 CPU cores (X)", path=path,
                             scope="a fresh clone, set-up included")
    assert "`.ci/run` on 2 CPU cores (X), measured" in results.times_table(path)
    assert "563 tests, 6.7 min (a fresh clone, set-up included)." in results.times_table(path)


def test_readme_times_table_matches_times_file():
    readme = (REPO_ROOT / "README.md").read_text()
    start, end = readme.index("<!-- times-table -->"), readme.index("<!-- /times-table -->")
    assert readme[start:end].split("\n", 1)[1].strip() == results.times_table().strip(), \
        "regenerate the README's table of times with `python3 -m vgcourse.results --readme`"
    assert results.TIMES.is_file(), "the README's times come from notebooks/results/times.json"


def test_update_readme_rewrites_only_the_generated_sections(tmp_path, monkeypatch):
    times = tmp_path / "times.json"
    results.record_build_times({"00_a": 30.0}, "smoke", "2 CPU cores (X)", path=times)
    monkeypatch.setattr(results, "TIMES", times)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results-table -->\nstale\n<!-- /results-table -->\nmiddle\n"
                      "<!-- times-table -->\n<!-- /times-table -->\nend\n")
    assert results.update_readme(readme) == ["results-table", "times-table"]
    text = readme.read_text()
    assert text.startswith("intro\n<!-- results-table -->\n| chapter | headline") and text.endswith("end\n")
    assert "stale" not in text and "| 00_a | 0.5 min |" in text and "\nmiddle\n" in text
    assert results.update_readme(readme) == [] and readme.read_text() == text  # already current
