"""Published findings reproduced in the simulator, one module per finding.

Each module measures its finding over seeds with common random numbers (every arm of one
seed meets the same users, candidates and noise), returns per-seed numbers, and, run as
``python -m experiments.reproductions.NAME``, prints the table of ``docs/reproductions/``
and draws its figure into ``docs/figures/``. The slow tests in ``tests/`` assert each
finding's direction with :func:`paired_effect` over the same seeds.

The reporting plumbing the modules share lives here too: :func:`fmt_interval`,
:func:`fmt_effect`, :func:`fmt_percent` and :func:`md_table` for the tables;
:func:`pyplot`, :func:`plot_band` (mean and 95% t-band over seeds) and
:func:`save_figure` (dpi 100, 256 colours) for the figures in :data:`FIGURES`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from experiments.report import t_interval


@dataclass(frozen=True)
class PairedEffect:
    """A seed-paired difference ``treatment - control``.

    Attributes:
        diff: mean of the per-seed differences. low, high: its 95% Student-t interval.
        p_value: two-sided paired t-test p-value (NaN with fewer than 2 pairs or no spread).
        n: number of pairs (seeds).
    """

    diff: float
    low: float
    high: float
    p_value: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the 95% interval lies strictly on one side of zero."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.diff:+.4g} [{self.low:+.4g}, {self.high:+.4g}] (p = {self.p_value:.2g}, {self.n} seeds)"


def paired_effect(treatment: np.ndarray, control: np.ndarray) -> PairedEffect:
    """The paired effect of two (S,) per-seed measurements taken under the same seeds."""
    treatment, control = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    if treatment.shape != control.shape or treatment.ndim != 1:
        raise ValueError(f"need two per-seed arrays of one shape; got {treatment.shape} and {control.shape}")
    diff, low, high = t_interval(treatment - control)
    delta = treatment - control
    p = float(stats.ttest_rel(treatment, control).pvalue) if len(delta) > 1 and np.ptp(delta) > 0 else float("nan")
    return PairedEffect(diff, low, high, p, len(delta))


# ---------------------------------------------------------------------------- reporting helpers

FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"
"""Where the reproductions' figures go (``docs/figures/<name>.png``)."""


def fmt_interval(values: np.ndarray, digits: int = 3) -> str:
    """``mean [low, high]``: the mean of per-seed ``values`` and its 95% t-interval."""
    mean, low, high = t_interval(values)
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def fmt_effect(effect: PairedEffect, digits: int = 3) -> str:
    """``+diff [+low, +high] (p = p)``: a paired effect with signed numbers."""
    d = digits
    return f"{effect.diff:+.{d}f} [{effect.low:+.{d}f}, {effect.high:+.{d}f}] (p = {effect.p_value:.2g})"


def fmt_percent(interval: tuple[float, float, float]) -> str:
    """``+m% [+low, +high]`` of a ``(mean, low, high)`` interval already in percent."""
    return "{:+.1f}% [{:+.1f}, {:+.1f}]".format(*interval)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a markdown table (header, rule, one line per row) and a blank line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def t_bands(curves: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise mean and Student-t interval over seeds of (S, T) ``curves``.

    The same interval as :func:`experiments.report.t_interval`, column by column; with one
    seed the band collapses onto the mean.

    Returns:
        ``(mean, low, high)``, each (T,).
    """
    curves = np.asarray(curves, dtype=float)
    mean = curves.mean(axis=0)
    n = curves.shape[0]
    if n < 2:
        return mean, mean.copy(), mean.copy()
    half = stats.t.ppf((1 + level) / 2, n - 1) * curves.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def plot_band(ax: Any, x: np.ndarray, curves: np.ndarray, color: Any, label: str | None = None, **line: Any) -> None:
    """Draw the mean over seeds of (S, len(x)) ``curves`` as a line and its 95% t-interval
    as a shaded band (``line``: extra keyword arguments of the line, e.g. ``marker``)."""
    mean, low, high = t_bands(curves)
    ax.plot(x, mean, color=color, label=label, **line)
    ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)


def pyplot(font_scale: float = 1.0) -> Any:
    """matplotlib's pyplot on the Agg backend with the reproductions' seaborn theme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", font_scale=font_scale)
    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` as a PNG at dpi 100 with an adaptive 256-colour palette (about a third
    of the RGBA size, so the committed figures stay small), close it, return the path."""
    import matplotlib.pyplot as plt
    from PIL import Image  # matplotlib's own dependency

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    Image.open(buffer).convert("RGB").quantize(colors=256).save(path, optimize=True)
    return path
