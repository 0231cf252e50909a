"""The paired statistics every reproduction reports."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from experiments.reproductions import paired_effect


def test_paired_effect_hand_computed() -> None:
    treatment, control = np.array([3.0, 5.0, 4.0]), np.array([1.0, 2.0, 2.0])
    effect = paired_effect(treatment, control)
    diffs = np.array([2.0, 3.0, 2.0])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
    assert effect.diff == pytest.approx(7 / 3)
    assert (effect.low, effect.high) == pytest.approx((7 / 3 - half, 7 / 3 + half))
    assert effect.p_value == pytest.approx(stats.ttest_rel(treatment, control).pvalue)
    assert effect.n == 3 and effect.excludes_zero


def test_paired_effect_refuses_unpaired_shapes() -> None:
    with pytest.raises(ValueError, match="per-seed"):
        paired_effect(np.ones(3), np.ones(4))
