"""Progress bars: the one home of every bar the course draws (the training loop, the samplers, the build).

Two kinds, chosen by ``$VGCOURSE_PROGRESS``:

- ``auto`` (the default): ``tqdm.auto``, a live widget in JupyterLab and a live text bar in a terminal.
- ``lines``: whole lines of text on stderr, at most one every :data:`LINE_INTERVAL_S` seconds, and the finished bar
  when it closes. ``python -m vgcourse build`` and ``python -m vgcourse test`` set it for the notebooks they
  execute: nobody watches a headless kernel, and a widget saved in a notebook shows the state it was created in
  (``0%| | 0/20000``), where a line of text shows the bar as it ended (``100%|██████████| 20000/20000 [05:00<...]``).
  No carriage returns, so the saved output reads the same in every viewer and stays small.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable

from tqdm.std import tqdm as _text_tqdm

ENV_VAR = "VGCOURSE_PROGRESS"
MODES = ("auto", "lines")
LINE_INTERVAL_S = 60.0


def progress_mode() -> str:
    """``$VGCOURSE_PROGRESS`` (``auto`` or ``lines``); anything else is an error that names the choices."""
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"expected {ENV_VAR} to be one of {', '.join(MODES)}, got {mode!r}")
    return mode


class LineBar(_text_tqdm):
    """A tqdm bar that writes whole lines: one at most every ``interval`` seconds, and the finished bar at close.

    A bar that closes before its first line (``leave=False``, as the samplers' bars) leaves nothing; one that
    wrote a line leaves its finished state too, so a saved output never ends on an unfinished bar.
    """

    def __init__(self, *args: Any, interval: float = LINE_INTERVAL_S, **kwargs: Any):
        self._interval = float(interval)
        self._last_line = time.monotonic()
        self._wrote = False
        self._closing = False
        kwargs.setdefault("file", sys.stderr)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing a bar drawn in place: lines are never drawn in place
            return False
        now = time.monotonic()
        if not self._closing and now - self._last_line < self._interval:
            return True  # no line before the interval is up (no "0%" line at the start; set_postfix refreshes)
        self.fp.write(("\n" if self._wrote else "") + (self.__str__() if msg is None else msg))
        self.fp.flush()
        self._wrote, self._last_line = True, now
        return True

    def close(self) -> None:
        if self.disable:
            return
        if self._wrote:
            self.leave = True  # once a line is out, end it finished
        self._closing = True
        super().close()  # leave: the final line, then tqdm's newline


def progress_bar(iterable: Iterable | None = None, *, desc: str | None = None, total: float | None = None,
                 disable: bool = False, leave: bool | None = True, **kwargs: Any) -> _text_tqdm:
    """A tqdm progress bar of the kind ``$VGCOURSE_PROGRESS`` asks for (see the module's docstring).

    Takes tqdm's arguments; iterate over it (``for x in progress_bar(items)``) or ``update``/``close`` it by hand.
    """
    if progress_mode() == "lines":
        return LineBar(iterable, desc=desc, total=total, disable=disable, leave=leave, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=leave, **kwargs)


def set_total(bar: _text_tqdm, total: int | None) -> None:
    """Give a running bar a new ``total``, in its text and, in JupyterLab, its widget (``None``, not known yet: the
    text drops its percentage, a widget keeps its length).

    A time budget moves a run's end while it trains. tqdm's text reads ``bar.total``, but a notebook widget keeps
    the length it was drawn with (a bar started with 50,000 steps that end at 3,500 would stop at 7%); this sets
    both. The new total shows at the bar's next refresh.
    """
    bar.total = total
    container = getattr(bar, "container", None)  # tqdm.notebook's widget: (description, bar, counts)
    if container is not None and total:
        widget = container.children[1]
        widget.max = total
        if widget.bar_style == "info":  # drawn without a total: a short full bar; now a real one
            widget.bar_style = ""
            widget.value = bar.n
            if bar.ncols is None:
                widget.layout.width = None
