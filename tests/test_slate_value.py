"""simenv.slate_value: the numpy twin of the step's slate law equals the kernel's expected reward."""

from __future__ import annotations

import numpy as np
import pytest

from simenv import Simulator
from simenv.config import get_preset, with_overrides
from simenv.slate_value import slate_value


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("default", {}),
        ("default", {"choice": {"model": "cascade"}}),
        ("boredom", {"slate_size": 1}),
        ("clickbait", {"response": {"reward": "click"}}),
    ],
)
def test_slate_value_equals_the_served_expected_reward(preset: str, overrides: dict) -> None:
    config = with_overrides(get_preset(preset), overrides)
    sim = Simulator(config, 64, seed=3, oracle=False)
    rng = np.random.default_rng(0)
    k, c = config.slate_size, config.n_candidates
    for _ in range(5):  # a few steps, so satiation and satisfaction have moved
        slates = np.argsort(rng.random((64, c)), axis=1)[:, :k]
        others = np.argsort(rng.random((64, 4, c)), axis=2)[..., :k]
        both = slate_value(sim, np.concatenate([slates[:, None], others], axis=1))
        alone = slate_value(sim, slates)
        _, _, _, _, info = sim.step(slates)
        np.testing.assert_allclose(alone, info["expected_reward"], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(both[:, 0], alone, rtol=1e-12)


def test_slate_value_refuses_bad_shapes() -> None:
    sim = Simulator(get_preset("default"), 4, seed=0, oracle=False)
    with pytest.raises(ValueError, match="slates must be"):
        slate_value(sim, np.zeros((3, sim.config.slate_size), dtype=int))
