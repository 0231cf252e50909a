"""The agent contract, for every registered agent on every world preset.

Each agent runs a few steps; every Decision must hold k distinct candidates in range,
propensities in (0, 1] and a boolean explored flag per user, and twin runs under one
seed must make the same decisions.
"""

from __future__ import annotations

import numpy as np
import pytest

from agents import agent_names, make_agent
from experiments.rollout import rollout
from simenv import PRESETS, RecVectorEnv, WorldSpec

USERS, STEPS = 8, 3
SINGLE_ITEM_ONLY = {"dqn"}


def _env(name: str, preset: str) -> RecVectorEnv:
    overrides = {"slate_size": 1} if name in SINGLE_ITEM_ONLY else None
    return RecVectorEnv(USERS, preset=preset, overrides=overrides)


def _run(name: str, preset: str, seed: int = 0):
    env = _env(name, preset)
    agent = make_agent(name, WorldSpec.from_config(env.config))
    return rollout(agent, env, STEPS, np.random.default_rng(seed), seed=seed), env.config


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("name", agent_names())
def test_every_agent_makes_valid_decisions_on_every_preset(name: str, preset: str) -> None:
    trajectory, config = _run(name, preset)
    slates, props = trajectory.records["slate"], trajectory.records["propensity"]
    k, c = config.slate_size, config.n_candidates
    assert slates.shape == (STEPS, USERS, k)
    assert slates.min() >= 0 and slates.max() < c
    assert (np.sort(slates, axis=2)[..., 1:] != np.sort(slates, axis=2)[..., :-1]).all(), "repeated candidates"
    assert ((props > 0) & (props <= 1 + 1e-9)).all(), props
    assert trajectory.records["explored"].dtype == bool


@pytest.mark.parametrize("name", agent_names())
def test_every_agent_is_reproducible_under_one_seed(name: str) -> None:
    first, _ = _run(name, "default", seed=3)
    second, _ = _run(name, "default", seed=3)
    for key in ("slate", "propensity", "explored", "reward"):
        np.testing.assert_array_equal(first.records[key], second.records[key], err_msg=f"{name}: {key}")
