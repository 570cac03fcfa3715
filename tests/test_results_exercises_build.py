import json
import sys

import nbformat
import pytest
import torch

from vgcourse import bootstrap, results
from vgcourse.build import find_chapters
from vgcourse.exercises import FAIL, NOT_ATTEMPTED, PASS, all_exercises, check, solution


def test_record_and_load(tmp_path, monkeypatch):
    monkeypatch.setenv("VGCOURSE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("VGCOURSE_PROFILE", "smoke")
    assert results.record("99_test", {"fd": torch.tensor(1.5), "bad": float("nan"), "nested": {"a": (1, 2)}},
                          started=0.0, note="x") is None
    data = json.loads((tmp_path / "99_test.json").read_text())
    assert data["metrics"] == {"fd": 1.5, "bad": None, "nested": {"a": [1, 2]}}
    assert data["profile"] == "smoke" and data["torch"] == torch.__version__ and data["note"] == "x"
    assert results.load("99_test", tmp_path)["chapter"] == "99_test"
    with pytest.raises(FileNotFoundError, match="vgcourse build"):
        results.load("98_missing", tmp_path)


def test_default_results_dir_never_touches_committed(monkeypatch):
    monkeypatch.delenv("VGCOURSE_RESULTS_DIR", raising=False)
    monkeypatch.setenv("VGCOURSE_PROFILE", "gpu")
    assert results.results_dir("gpu") != results.COMMITTED


def stub(*args, **kwargs):
    raise NotImplementedError


WRONG = {
    "to_display": lambda clip: ((clip + 1) * 127.5).round().to(torch.uint8),  # forgot the layout change
    "shuffle_frames": lambda video, g: video.flip(2),  # the same permutation for every clip
    "centroid": lambda frame: solution("centroid")(frame).flip(0),  # (x, y) instead of (y, x)
}


@pytest.mark.parametrize("name", sorted(all_exercises()))
def test_every_solution_passes_its_check_and_stubs_are_not_attempted(name):
    assert check(name, solution(name)).status == PASS, check(name, solution(name))
    assert check(name, stub).status == NOT_ATTEMPTED


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_answers_fail_with_a_message(name):
    result = check(name, WRONG[name])
    assert result.status == FAIL and result.message


def test_a_reshape_instead_of_a_permute_fails_on_a_colour_clip():
    """With one channel a reshape happens to give the right bytes; the check's colour clip tells them apart."""
    reshaped = lambda clip: ((clip.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).reshape(  # noqa: E731
        *clip.shape[1:], clip.shape[0])
    result = check("to_display", reshaped)
    assert result.status == FAIL and "permute(1, 2, 3, 0)" in result.message, str(result)


def test_crashing_answer_is_reported():
    result = check("centroid", lambda frame: frame.nonexistent)
    assert result.status == FAIL and "AttributeError" in result.message


def test_find_chapters():
    chapters = find_chapters([])
    assert chapters and all(p.suffix == ".ipynb" for p in chapters)
    assert find_chapters(["00"]) == find_chapters(["00_video_as_data"]) == find_chapters(["video_as_data"])
    with pytest.raises(SystemExit, match="no chapter"):
        find_chapters(["77"])


def test_bootstrap_sees_what_is_installed():
    assert bootstrap.missing_modules("build") == []
    assert bootstrap.missing_modules("nothing") == []


def test_build_executes_a_notebook(tmp_path, monkeypatch):
    """A tiny notebook through the real nbclient path: outputs kept, results written, failure is loud."""
    from vgcourse import build

    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    ok = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from vgcourse import results\nresults.record('01_tiny', {'x': 1})\nprint('hello')")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('boom')")])
    nbformat.write(ok, nbdir / "01_tiny.ipynb")
    nbformat.write(bad, nbdir / "02_bad.ipynb")
    monkeypatch.setattr(build, "NOTEBOOKS", nbdir)
    monkeypatch.setenv("PYTHONPATH", str(results.REPO_ROOT))
    out = tmp_path / "out"
    assert build.main(["01", "--profile", "smoke", "--out", str(out), "--timeout", "120"]) == 0
    executed = nbformat.read(out / "01_tiny.ipynb", as_version=4)
    assert "hello" in executed.cells[0].outputs[-1]["text"]
    assert json.loads((out / "results" / "01_tiny.json").read_text())["profile"] == "smoke"
    with pytest.raises(SystemExit, match="boom"):
        build.main(["02", "--profile", "smoke", "--out", str(out), "--timeout", "120"])
    assert (out / "02_bad.ipynb").exists()


def test_cli_usage_lint_first_and_pytest_exit_5(monkeypatch):
    from vgcourse import __main__ as cli

    assert cli.main(["--help"]) == 0
    assert cli.main(["frobnicate"]) == 2
    calls, codes = [], {"ruff": 0, "pytest": 5}

    def run(cmd, **kwargs):
        tool = cmd[2]  # [python, "-m", tool, ...]
        calls.append(tool)
        return type("R", (), {"returncode": codes[tool]})()

    monkeypatch.setattr(cli.subprocess, "run", run)
    assert cli.test(["--unit"]) == 1 and calls == ["ruff", "pytest"]  # pytest's "no tests" is a failure
    calls.clear()
    codes["ruff"] = 1
    assert cli.test(["--unit"]) == 1 and calls == ["ruff"]  # lint findings: fail before pytest


def test_build_keeps_the_partial_notebook_when_stopped(tmp_path):
    """A time limit sends SIGTERM: the build must still write what ran, so a GPU run that overran can be read."""
    import os
    import signal
    import subprocess
    import time

    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    marker = tmp_path / "started"
    cells = [nbformat.v4.new_code_cell("print('first cell ran')"),
             nbformat.v4.new_code_cell(f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(120)")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), nbdir / "01_slow.ipynb")
    code = ("import sys, pathlib, vgcourse.build as b; b.NOTEBOOKS = pathlib.Path(sys.argv[1]); "
            "sys.exit(b.main(['01', '--profile', 'smoke', '--out', sys.argv[2]]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(nbdir), str(tmp_path / "out")],
                            env=dict(os.environ, PYTHONPATH=str(results.REPO_ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 90
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()[1][-2000:]
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "was stopped" in err
    partial = nbformat.read(tmp_path / "out" / "01_slow.ipynb", as_version=4)
    assert partial.cells[0].outputs[0]["text"] == "first cell ran\n"


def test_part_timer(capsys):
    import time as _time

    timer = results.PartTimer()
    _time.sleep(0.05)
    minutes = timer.lap("first part")
    assert timer.minutes == {"first part": minutes} and 0 <= minutes < 0.1
    assert "first part:" in capsys.readouterr().out


def test_part_timer_minutes_left_counts_from_the_chapter_start():
    import time as _time

    timer = results.PartTimer(started=_time.time() - 6 * 60)             # the chapter began 6 minutes ago
    assert timer.minutes_left(None) is None                                # no budget (smoke, cpu): no cap
    assert abs(timer.minutes_left(9.0, reserve=1.0) - 2.0) < 0.01          # 9 − 1 − 6
    assert timer.minutes_left(9.0, reserve=4.0, floor=0.25) == 0.25        # late: the floor, never negative


def test_headline_text_joins_standard_errors_and_drops_bookkeeping():
    text = results.headline_text({"fd": 16.73, "fd_se": 0.764, "n_gen": 384, "seed": 0, "frame_quality": 0.634,
                                  "fd_latent": None, "recipe": "WGAN + SVC", "orphan_se": 0.1})
    assert text == "fd 16.7 ± 0.76, frame_quality 0.634, recipe WGAN + SVC, orphan_se 0.1"
