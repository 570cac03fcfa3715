"""Plots of the course: training curves, metric tables as bars, and trade-off curves.

Each function returns a matplotlib ``Figure`` and never calls ``plt.show()``: a notebook shows the figure
when it ends a cell. Without ``ax`` the figure is a plain ``matplotlib.figure.Figure``, not registered with
pyplot, so it is shown exactly once and never piles up in pyplot's figure list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def register_inline_figures() -> bool:
    """Show a returned ``Figure`` as a PNG in IPython, with or without ``%matplotlib inline``.

    The plot functions build plain ``matplotlib.figure.Figure`` objects (no pyplot state, so figures never pile
    up). IPython draws those only once a PNG formatter is registered for them; a headless kernel (nbclient, nbval)
    registers none until pyplot is imported, so we register one here. Returns whether IPython was found.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["image/png"].for_type(Figure, lambda fig: print_figure(fig, "png", dpi=90))
    return True


register_inline_figures()


def ema(values: Sequence[float], smooth: float) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing); smooth in [0, 1).

    s_i = smooth * s_{i-1} + (1 - smooth) * x_i, s_{-1} = 0, shown as s_i / (1 - smooth^(i+1)).
    """
    if not 0 <= smooth < 1:
        raise ValueError(f"expected smooth in [0, 1), got {smooth}")
    x = np.asarray(values, dtype=float)
    out, s = np.empty_like(x), 0.0
    for i, v in enumerate(x):
        s = smooth * s + (1 - smooth) * v
        out[i] = s / (1 - smooth ** (i + 1))  # bias correction: an average of the values seen so far
    return out


def _series(history, keys: Sequence[str] | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """history (list of row dicts, or dict of lists) -> {key: (steps, values)}, skipping missing values."""
    if isinstance(history, Mapping):
        steps = list(history.get("step", []))
        for k, v in history.items():
            if k != "step" and "step" in history and len(v) != len(steps):
                raise ValueError(f"expected history[{k!r}] as long as history['step'] ({len(steps)}), got {len(v)}")
        rows = [{"step": steps[i] if steps else i} | {k: v[i] for k, v in history.items() if i < len(v)}
                for i in range(max(map(len, history.values()), default=0))]
    elif isinstance(history, Sequence) and all(isinstance(r, Mapping) for r in history):
        rows = [dict(r) | ({} if "step" in r else {"step": i}) for i, r in enumerate(history)]
    else:
        raise TypeError("expected history as a list of dict rows or a dict of lists, "
                        f"got {type(history).__name__}")
    available = [k for r in rows for k in r if k != "step"]
    available = list(dict.fromkeys(available))  # first-seen order, no repeats
    keys = available if keys is None else list(keys)
    missing = [k for k in keys if k not in available]
    if missing:
        raise KeyError(f"no {missing} in history; available keys: {available}")
    series = {}
    for k in keys:
        pairs = [(r["step"], r[k]) for r in rows
                 if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
        series[k] = (np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs], float))
    return series


def plot_curves(history, keys: Sequence[str] | None = None, smooth: float = 0.0, logy: bool = False,
                ax: Axes | None = None, title: str | None = None) -> Figure:
    """Training curves: one line per key against 'step' (or the row index).

    Inputs:
        history: the training loop's rows [{'step': 0, 'loss': ...}, ...], or a dict {key: [values]}
            (its 'step' list, if any, is the x axis); rows may lack a key (e.g. metrics every N steps).
        keys: which keys to draw (default: all but 'step').
        smooth: EMA factor in [0, 1); when > 0 each raw curve is also drawn faintly behind its smoothed one.
    """
    series = _series(history, keys)
    if ax is None:
        fig = Figure(figsize=(6, 3.5), layout="constrained")
        ax = fig.add_subplot()
    for k, (x, y) in series.items():
        if smooth > 0:
            (raw,) = ax.plot(x, y, alpha=0.25, linewidth=1)
            ax.plot(x, ema(y, smooth), color=raw.get_color(), label=k)
        else:
            ax.plot(x, y, label=k)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if series:
        ax.legend()
    ax.grid(alpha=0.3)
    return ax.figure


def plot_metric_bars(table: Mapping[str, Mapping[str, float]], metrics: Sequence[str] | None = None,
                     ax: Axes | Sequence[Axes] | None = None, title: str | None = None) -> Figure:
    """A comparison table as bars: one subplot per metric, one bar per row label, values written on bars.

    Inputs:
        table: {row label (e.g. 'real', 'shuffled frames', 'model'): {metric: value}}; a missing value is
            left as a gap.
        metrics: the columns to draw (default: every metric, in first-seen order).
        ax: one Axes per metric, if drawing into an existing figure.
    """
    if not isinstance(table, Mapping) or not table:
        raise ValueError(f"expected a non-empty dict {{row: {{metric: value}}}}, got {table!r:.80}")
    seen = list(dict.fromkeys(m for row in table.values() for m in row))
    metrics = seen if metrics is None else list(metrics)
    missing = [m for m in metrics if m not in seen]
    if missing:
        raise KeyError(f"no metric {missing} in the table; available metrics: {seen}")
    if ax is None:
        fig = Figure(figsize=(max(3.0, 2.2 * len(metrics) + 0.3 * len(table)), 3.2), layout="constrained")
        axes = list(np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)[0]))
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != len(metrics):
            raise ValueError(f"expected {len(metrics)} axes (one per metric), got {len(axes)}")
        fig = axes[0].figure
    labels = list(table)
    colors = [f"C{i % 10}" for i in range(len(labels))]
    for a, metric in zip(axes, metrics):
        values = [float(table[row].get(metric, np.nan)) for row in labels]
        bars = a.bar(range(len(labels)), values, color=colors)
        a.bar_label(bars, labels=["" if math.isnan(v) else f"{v:.3g}" for v in values], fontsize=8)
        a.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        a.set_title(metric)
        a.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_xy(points: Mapping[str, tuple[Sequence[float], Sequence[float]]], xlabel: str = "", ylabel: str = "",
            logx: bool = False, logy: bool = False, annotate: Mapping[str, Sequence[str]] | None = None,
            ax: Axes | None = None, title: str | None = None) -> Figure:
    """Trade-off curves (quality vs sampling steps, FD vs FLOPs): one marked line per label.

    Inputs:
        points: {label: (xs, ys)} of equal lengths.
        annotate: {label: one text per point} written beside the points (e.g. the number of steps).
    """
    if not isinstance(points, Mapping) or not points:
        raise ValueError(f"expected a non-empty dict {{label: (xs, ys)}}, got {points!r:.80}")
    if ax is None:
        fig = Figure(figsize=(5.5, 3.8), layout="constrained")
        ax = fig.add_subplot()
    for label, xy in points.items():
        if len(xy) != 2 or len(xy[0]) != len(xy[1]):
            raise ValueError(f"expected points[{label!r}] as (xs, ys) of equal lengths, got "
                             + (f"{len(xy[0])} xs and {len(xy[1])} ys" if len(xy) == 2 else f"{len(xy)} items"))
        xs, ys = np.asarray(xy[0], float), np.asarray(xy[1], float)
        ax.plot(xs, ys, "o-", label=label)
        notes = (annotate or {}).get(label)
        if notes is not None:
            if len(notes) != len(xs):
                raise ValueError(f"expected {len(xs)} annotations for {label!r}, got {len(notes)}")
            for x, y, note in zip(xs, ys, notes):
                ax.annotate(str(note), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax.figure
