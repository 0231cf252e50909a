"""experiments.training_budget: the steps to a share of the final engagement."""

from __future__ import annotations

import pytest

from experiments.training_budget import steps_to_share


def test_steps_to_share_counts_the_gain_over_the_baseline():
    steps = [10, 20, 30, 40]
    # gains over 1.0: 0.5, 0.92, 0.96, 1.0 -> the first >= 0.95 is at 30 steps
    assert steps_to_share(steps, [1.5, 1.92, 1.96, 2.0], baseline=1.0) == 30
    assert steps_to_share(steps, [1.5, 1.92, 1.96, 2.0], baseline=1.0, share=0.9) == 20
    # a curve that overshoots and settles: the first checkpoint reaching the share counts
    assert steps_to_share(steps, [1.2, 2.1, 1.9, 2.0], baseline=1.0) == 20


def test_steps_to_share_rejects_no_gain_and_bad_inputs():
    with pytest.raises(ValueError, match="does not beat the baseline"):
        steps_to_share([10, 20], [1.0, 0.9], baseline=1.0)
    with pytest.raises(ValueError, match="0 < share <= 1"):
        steps_to_share([10], [2.0], baseline=1.0, share=0.0)
    with pytest.raises(ValueError, match="equal non-empty"):
        steps_to_share([10, 20], [2.0], baseline=1.0)
