"""Published findings reproduced in the simulator, one module per finding.

Each module measures its finding over seeds with common random numbers (every arm of one
seed meets the same users, candidates and noise), returns per-seed numbers, and, run as
``python -m experiments.reproductions.NAME``, prints the table of ``docs/reproductions/``
and draws its figure into ``docs/figures/``. The slow tests in ``tests/`` assert each
finding's direction with :func:`paired_effect` over the same seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

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
