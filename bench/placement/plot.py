"""Plot GPU utilisation over time of one trace, one line per policy (matplotlib, Agg).

Imported by bench.placement.__main__ only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: the benchmark runs headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.placement.outcome import Outcome  # noqa: E402
from bench.placement.traces import Trace  # noqa: E402


def utilisation_curve(outcome: Outcome, *, gpus: int, grid: np.ndarray) -> np.ndarray:
    """Return the fraction of GPUs reserved at each time of `grid`."""
    index = np.searchsorted(outcome.use_times, grid, side="right") - 1
    use = np.where(index >= 0, outcome.use_gpus[np.clip(index, 0, None)], 0.0)
    return use / gpus


def plot_utilisation(
    *, trace: Trace, outcomes: Mapping[str, Outcome], path: Path, title: str, smooth_h: float = 6.0
) -> Path:
    """Write a PNG of utilisation over time for each policy and return its path."""
    start, end = float(trace.arrival[0]), float(trace.arrival[-1])
    grid = np.linspace(start, end, 2000)
    hours = (grid - start) / 3600.0
    # A moving average over `smooth_h` hours: the raw step function is too busy to compare.
    width = max(1, int(len(grid) * smooth_h * 3600.0 / (end - start)))
    kernel = np.ones(width) / width
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=120)
    for name, outcome in outcomes.items():
        curve = np.convolve(utilisation_curve(outcome, gpus=trace.gpus, grid=grid), kernel, mode="same")
        ax.plot(hours, curve, label=name, linewidth=1.2)
    if trace.mix == "shifting":
        middle = (float(trace.arrival[len(trace) // 2]) - start) / 3600.0
        ax.axvline(middle, color="grey", linestyle="--", linewidth=0.8, label="mix changes")
    ax.axhline(trace.load, color="black", linestyle=":", linewidth=0.8, label=f"offered load {trace.load}")
    ax.set_xlabel("hours")
    ax.set_ylabel("GPUs reserved / GPUs")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
