"""vgcourse.progress: a live bar where someone watches, whole finished lines where a notebook is saved headlessly."""

import io
import time

import pytest
import torch
from tqdm.auto import tqdm as auto_tqdm

from vgcourse import progress
from vgcourse.progress import LineBar, progress_bar, set_total
from vgcourse.train import TrainConfig, Trainer


def test_lines_mode_leaves_one_finished_line_and_no_carriage_return(monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "lines")
    out = io.StringIO()
    bar = progress_bar(range(50), desc="train", file=out)
    assert isinstance(bar, LineBar)
    assert sum(1 for _ in bar) == 50
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n") and text.count("\n") == 1, repr(text)
    assert text.startswith("train: 100%|") and "50/50" in text


def test_lines_mode_writes_at_most_one_line_per_interval(monkeypatch):
    """set_postfix refreshes on every call (the loop calls it at every log point): lines still come by the clock."""
    monkeypatch.setenv(progress.ENV_VAR, "lines")
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    bar = progress_bar(total=1000, desc="train", file=out, interval=10.0)
    for step in range(1000):
        clock[0] = step * 0.1  # 100 s in all: 10 lines at most, then the final one
        bar.update(1)
        bar.set_postfix({"loss": f"{1 / (step + 1):.3g}"})
    bar.close()
    lines = out.getvalue().splitlines()
    assert 5 <= len(lines) <= 11, lines
    assert lines[-1].startswith("train: 100%|") and "1000/1000" in lines[-1] and "loss=" in lines[-1]
    assert all("100%" not in line for line in lines[:-1])


def test_lines_mode_short_transient_bar_leaves_nothing_and_a_long_one_ends_finished(monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "lines")
    out = io.StringIO()
    for _ in progress_bar(range(20), desc="DDIM", leave=False, file=out):
        pass
    assert out.getvalue() == ""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    bar = progress_bar(range(20), desc="DDIM", leave=False, file=out, interval=1.0, mininterval=0)
    for i in bar:
        clock[0] = i * 0.5
    assert out.getvalue().splitlines()[-1].startswith("DDIM: 100%|")  # a line went out, so the bar ends finished


def test_auto_mode_is_tqdm_auto_and_a_bad_mode_names_the_choices(monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    bar = progress_bar(range(3), file=io.StringIO())
    assert isinstance(bar, auto_tqdm) and not isinstance(bar, LineBar)
    bar.close()
    monkeypatch.setenv(progress.ENV_VAR, "widgets")
    with pytest.raises(ValueError, match="VGCOURSE_PROGRESS to be one of auto, lines, got 'widgets'"):
        progress_bar(range(3))


def test_training_loop_bar_goes_through_progress_bar(monkeypatch, capsys):
    monkeypatch.setenv(progress.ENV_VAR, "lines")
    model = torch.nn.Linear(2, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda step: torch.randn(4, 2),
                      TrainConfig(steps=20, log_every=5, measure_flops=False, desc="fit"),
                      loss_fn=lambda m, x: m(x).pow(2).mean())
    trainer.fit()
    err = capsys.readouterr().err
    assert "\r" not in err and err.strip().splitlines()[-1].startswith("fit: 100%|") and "20/20" in err


def budgeted_trainer(steps: int, max_minutes: float, sleep_s: float = 0.0) -> Trainer:
    """A one-layer model under a time budget, each step sleeping ``sleep_s`` and logging (and so planning)."""
    model = torch.nn.Linear(2, 1)

    def loss_fn(m, x):
        time.sleep(sleep_s)
        return m(x).pow(2).mean()

    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda step: torch.randn(4, 2),
                   TrainConfig(steps=steps, max_minutes=max_minutes, log_every=1, measure_flops=False, desc="fit"),
                   loss_fn=loss_fn)


def lines_of_a_budgeted_run(monkeypatch, capsys, steps: int, max_minutes: float, sleep_s: float = 0.0) -> list[str]:
    """Every line the training loop's bar writes (one per refresh) for a run under a time budget."""
    monkeypatch.setenv(progress.ENV_VAR, "lines")
    monkeypatch.setattr(LineBar.__init__, "__kwdefaults__", {"interval": 0.0})
    budgeted_trainer(steps, max_minutes, sleep_s).fit()
    return capsys.readouterr().err.strip().splitlines()


def test_a_budgeted_run_shows_no_total_until_its_steps_are_timed(monkeypatch, capsys):
    """Before the loop has timed a step (compile, warm-up) the end is unknown: no total, no percentage, no estimate
    of time left from a slow first step; once planned, n/30; finished, 30/30."""
    lines = lines_of_a_budgeted_run(monkeypatch, capsys, steps=30, max_minutes=1.0)
    early = [line for line in lines if line.startswith(("fit: 1it", "fit: 2it", "fit: 3it"))]
    assert early and all("%" not in line and "/30" not in line for line in early), lines[:5]
    assert any("/30 [" in line and "100%" not in line for line in lines), lines
    assert lines[-1].startswith("fit: 100%|") and "30/30" in lines[-1]


def test_a_run_stopped_by_its_budget_ends_on_a_finished_bar(monkeypatch, capsys):
    lines = lines_of_a_budgeted_run(monkeypatch, capsys, steps=100_000, max_minutes=0.3 / 60, sleep_s=0.005)
    last = lines[-1]
    n = int(last.split("|")[2].split("/")[0])
    assert 10 < n < 100_000 and last.startswith("fit: 100%|") and f"{n}/{n} [" in last, last


def test_set_total_resizes_a_notebook_widget():
    """A JupyterLab bar keeps the length it was drawn with unless told: set_total moves its widget's end too."""
    notebook = pytest.importorskip("tqdm.notebook")
    pytest.importorskip("ipywidgets")
    bar = notebook.tqdm(total=50_000, display=False)
    bar.update(10)
    set_total(bar, 3_500)
    assert bar.total == 3_500 and bar.container.children[1].max == 3_500
    unknown = notebook.tqdm(total=None, display=False)
    widget = unknown.container.children[1]
    assert widget.bar_style == "info" and widget.max == 1  # drawn without a total: a short full bar
    unknown.update(7)
    set_total(unknown, 20)
    assert (widget.max, widget.value, widget.bar_style, widget.layout.width) == (20, 7, "", None)
    bar.close()
    unknown.close()


def test_a_budgeted_run_shorter_than_its_warm_up_still_ends_n_of_n(monkeypatch, capsys):
    """Two steps never reach the timed steps, so no plan ever gives the bar a total: the loop's last set_total does."""
    lines = lines_of_a_budgeted_run(monkeypatch, capsys, steps=2, max_minutes=1.0)
    assert lines[-1].startswith("fit: 100%|") and "2/2 [" in lines[-1], lines


def test_the_loop_resizes_a_notebook_widget_to_where_the_run_ended(monkeypatch):
    """In JupyterLab the bar is a widget: under a time budget it starts without a length and ends full at n/n."""
    notebook = pytest.importorskip("tqdm.notebook")
    pytest.importorskip("ipywidgets")
    bars = []

    def widget_bar(iterable=None, **kwargs):
        bars.append(notebook.tqdm(iterable, display=False, **kwargs))
        return bars[-1]

    monkeypatch.setattr("vgcourse.train.loop.progress_bar", widget_bar)
    trainer = budgeted_trainer(steps=100_000, max_minutes=0.3 / 60, sleep_s=0.005)
    trainer.fit()
    widget = bars[0].container.children[1]
    assert 10 < trainer.step < 100_000  # stopped by its budget
    assert widget.max == widget.value == trainer.step and widget.bar_style == "success", (widget.max, widget.value)
