"""Plots of the course: training curves, metric tables as bars, and trade-off curves.

Each function returns a matplotlib ``Figure`` and never calls ``plt.show()``: a notebook shows the figure
when it ends a cell. Without ``ax`` the figure is a plain ``matplotlib.figure.Figure``, not registered with
pyplot, so it is shown exactly once and never piles up in pyplot's figure list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter


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
    # On a log x axis spanning about a decade matplotlib labels minor ticks too, and these wide labels overlap
    # (2×10^16 3×10^16 4×10^16 ...): keep x labels on the decades; the y axis keeps its minor labels.
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax.figure


def filmstrip(rows: Mapping[str, torch.Tensor], every: int = 2, height: float = 0.6) -> Figure:
    """A static picture of clips, for wherever a GIF or a widget does not play (an untrusted notebook, a PDF).

    Inputs:
        rows: {label: clip (C, T, H, W)}, C = 1 (grey) or 3 (colour), values in [-1, 1]; one row per label, clips
            of any T, H and W.
        every: show every ``every``-th frame.
        height: inches per row.
    Returns a Figure: each row the clip's frames side by side with a white line after each, its label on the left,
    drawn with nearest-neighbour pixels (no smoothing).
    """
    if not isinstance(rows, Mapping) or not rows:
        raise ValueError(f"expected a non-empty dict {{label: clip (C, T, H, W)}}, got {rows!r:.80}")
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int, got {every!r}")
    for label, clip in rows.items():
        if not isinstance(clip, torch.Tensor) or clip.dim() != 4 or clip.shape[0] not in (1, 3):
            shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
            raise ValueError(f"rows[{label!r}]: expected one clip (C, T, H, W) with C = 1 or 3, got {shape}")
        if not clip.is_floating_point():
            raise TypeError(f"rows[{label!r}]: expected a float clip in [-1, 1], got dtype {clip.dtype}")
    shown = max(len(range(0, clip.shape[1], every)) for clip in rows.values())
    aspect = max(clip.shape[-1] / clip.shape[-2] for clip in rows.values())
    fig = Figure(figsize=(height * aspect * shown + 2.2, height * len(rows) + 0.2), layout="constrained")
    for ax, (label, clip) in zip(fig.subplots(len(rows), 1, squeeze=False)[:, 0], rows.items()):
        frames = (clip[:, ::every].detach().float().cpu().clamp(-1, 1) + 1) / 2      # (C, T', H, W) in [0, 1]
        gap = torch.ones(*frames.shape[:3], 1)                                      # (C, T', H, 1): a white line
        strip = torch.cat([frames, gap], -1).permute(2, 1, 3, 0).flatten(1, 2)       # (H, T'·(W + 1), C)
        ax.imshow(strip.expand(-1, -1, 3).numpy(), interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    return fig
