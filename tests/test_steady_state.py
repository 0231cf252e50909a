"""The steady-state table of ``docs/model.md`` (experiments.steady_state), at tiny sizes.

Not a finding: it checks that :func:`experiments.steady_state.steady_state` returns one row
per seed with the documented columns, each inside its range (shares in [0, 1], churn per
1,000 user-steps in [0, 1000], minutes >= 0, an entropy change within +-log2 K bits, a
cosine in [-1, 1]). A churning preset, so the churn column is exercised; presets are
retuned from time to time, so no number of the table is asserted here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.steady_state import COLUMNS, steady_state, to_markdown
from simenv import get_preset


def test_steady_state_columns_and_ranges() -> None:
    frame = steady_state("clickbait", "random", seeds=(0, 1), users=16, steps=30, window=10)
    assert list(frame.columns) == ["preset", "policy", "seed", *COLUMNS]
    assert frame["seed"].tolist() == [0, 1]
    assert set(frame["preset"]) == {"clickbait"} and set(frame["policy"]) == {"random"}
    assert np.isfinite(frame[list(COLUMNS)].to_numpy()).all()
    bits = math.log2(get_preset("clickbait").catalog.n_topics)
    assert frame["satisfaction"].between(0.0, 1.0).all()
    assert frame["churn_per_1k"].between(0.0, 1000.0).all()
    assert frame["ctr"].between(0.0, 1.0).all()
    assert (frame["reward"] >= 0.0).all()
    assert frame["entropy_decline"].between(-bits, bits).all()
    assert frame["cosine_end"].between(-1.0, 1.0).all()
    assert to_markdown(frame.groupby(["preset", "policy"])[list(COLUMNS)].mean().reset_index()).count("\n") == 2


def test_steady_state_rejects_an_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        steady_state("nope", "random", seeds=(0,), users=4, steps=2)
