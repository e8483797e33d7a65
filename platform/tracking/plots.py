"""Training-curve PNGs for MLflow runs and reports.

Drawn on a bare matplotlib ``Figure`` with the Agg canvas: no pyplot state, no
display, safe in Ray workers and threads, and it leaves the process's
matplotlib backend alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# Log-scale the y axis when every value is positive and they span this factor or more.
LOG_SCALE_SPAN = 20.0


def smooth(values: Sequence[float], weight: float | None = None) -> np.ndarray:
    """Bias-corrected exponential moving average, as TensorBoard's smoothing slider.

    Args:
        values: the raw series.
        weight: EMA weight in [0, 1); default grows with the series length
            (0 for a handful of points, about 0.9 for a few hundred).
    """
    x = np.asarray(values, dtype=np.float64)
    if weight is None:
        weight = float(np.clip(1.0 - 10.0 / max(len(x), 1), 0.0, 0.9))
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out = np.empty_like(x)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(x):
        if not math.isfinite(v):  # a NaN loss shows as a gap, not a poisoned average
            out[i] = np.nan
            continue
        acc = weight * acc + (1.0 - weight) * v
        norm = weight * norm + (1.0 - weight)
        out[i] = acc / norm
    return out


def _use_log_scale(histories: Mapping[str, Sequence[tuple[int, float]]]) -> bool:
    values = np.array([v for h in histories.values() for _, v in h], dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2 or (values <= 0).any():
        return False
    return values.max() / values.min() >= LOG_SCALE_SPAN


def loss_curve_png(
    histories: Mapping[str, Sequence[tuple[int, float]]],
    path: str | os.PathLike,
    title: str = "",
    *,
    xlabel: str = "step",
    log_y: bool | None = None,
    dpi: int = 100,
) -> Path:
    """Plot one or more ``[(step, value), ...]`` series: raw points faint, smoothed line on top.

    Args:
        histories: series name -> history (e.g. ``RunLogger.metric_history(key)``).
        path: PNG destination (parent folders are created).
        title: figure title.
        xlabel: x axis label.
        log_y: force the y scale; default logs it when all values are positive
            and span at least a factor of 20 (a loss falling over decades).
        dpi: resolution of the PNG.

    Returns:
        The written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not histories or all(len(h) == 0 for h in histories.values()):
        raise ValueError("loss_curve_png needs at least one non-empty history")
    fig = Figure(figsize=(7, 4), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, history) in enumerate(histories.items()):
        if not history:
            continue
        steps = np.array([s for s, _ in history], dtype=np.float64)
        values = np.array([v for _, v in history], dtype=np.float64)
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        color = f"C{i % 10}"
        ax.plot(steps, values, ".", color=color, alpha=0.3, markersize=3)
        ax.plot(steps, smooth(values), "-", color=color, linewidth=1.6, label=name)
    if log_y if log_y is not None else _use_log_scale(histories):
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
