"""Filter-bubble behaviour the model promises, statistically over seeds (Jiang et al. 2019).

Under strong preference amplification (the ``filter_bubble`` preset) a greedy learner
narrows users' topic interests more than the random policy, and exploration raises
catalog coverage. Homogenisation is reported both ways (cosine of interests, Jaccard of
consumption) without presuming its direction. Every agent meets the same users under a
seed (common random numbers), so the comparisons are paired by seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from agents import make_agent
from experiments.metrics import run_summary
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec

SEEDS = (0, 1, 2, 3)
ARMS = {"random": ("random", {}), "greedy": ("linucb", {}), "explore": ("linear_egreedy", {"epsilon": 0.5})}


def _summaries(seed: int) -> dict[str, dict[str, float]]:
    out = {}
    for arm, (name, params) in ARMS.items():
        env = RecVectorEnv(64, preset="filter_bubble")
        agent = make_agent(name, WorldSpec.from_config(env.config), **params)
        trajectory = rollout(agent, env, 150, np.random.default_rng(100 + seed), seed=seed)
        out[arm] = run_summary(trajectory, catalog_size=env.config.catalog.n_items, choice_beta=env.config.choice.beta)
    return out


@pytest.fixture(scope="module")
def summaries() -> list[dict[str, dict[str, float]]]:
    return [_summaries(seed) for seed in SEEDS]


def _paired(summaries: list, metric: str, a: str, b: str) -> np.ndarray:
    return np.array([s[a][metric] - s[b][metric] for s in summaries])


@pytest.mark.slow
def test_greedy_learner_narrows_interests_more_than_random(summaries) -> None:
    decline = _paired(summaries, "interest_entropy_decline_final", "greedy", "random")
    assert decline.mean() > 0.02, decline
    assert (decline > 0).sum() >= 3, decline
    # ... while engaging users more: the narrowing is the price of greedy personalisation.
    assert (_paired(summaries, "reward_per_user_step", "greedy", "random") > 0.3).all()


@pytest.mark.slow
def test_exploration_raises_coverage(summaries) -> None:
    coverage = _paired(summaries, "catalog_coverage", "explore", "greedy")
    assert (coverage > 0.05).all(), coverage


@pytest.mark.slow
def test_homogenization_is_reported_both_ways(summaries) -> None:
    for s in summaries:
        for arm in ARMS:
            cosine, jaccard = s[arm]["homogenization_cosine_final"], s[arm]["homogenization_jaccard"]
            assert -1.0 <= cosine <= 1.0 and 0.0 <= jaccard <= 1.0
    # Personalisation concentrates consumption on fewer items than random exposure does.
    assert (_paired(summaries, "homogenization_jaccard", "greedy", "random") > 0).all()
