"""SlateQ with the shared candidate scorer as its item-value network (Ie et al. 2019)."""

from __future__ import annotations

import numpy as np
import pytest

from agents import make_agent
from agents.slateq import conditional_logit
from experiments.reproductions import paired_effect
from simenv import RecVectorEnv, WorldSpec, get_preset

SPEC = WorldSpec.from_config(get_preset("clickbait"))


def _trained(seed: int = 0, **params: object):
    agent = make_agent("slateq_neural", SPEC, discount=0.9, n_step=2, seed=seed, **params)
    return agent.train("clickbait", 16 * 6, seed=seed, n_envs=16)


def _obs(seed: int = 4) -> dict[str, np.ndarray]:
    obs, _ = RecVectorEnv(16, preset="clickbait").reset(seed=seed)
    return obs


def test_permuting_the_candidates_permutes_the_item_values() -> None:
    agent, obs = _trained(), _obs()
    order = np.random.default_rng(0).permutation(SPEC.n_candidates)
    shuffled = {**obs, "candidates": obs["candidates"][:, order], "item_ids": obs["item_ids"][:, order]}
    logits, values = agent.item_values(obs)
    logits_p, values_p = agent.item_values(shuffled)
    np.testing.assert_allclose(values_p, values[:, order], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(logits_p, logits[:, order], rtol=1e-12)


def test_the_slate_value_decomposes_and_the_ranking_key_is_its_top_k_key() -> None:
    """Q(s, A) = sum_i P(i|s,A) Qbar(s,i) + P(null|s,A) Qbar(s,null), and the ranking key
    v(s,i) (Qbar(s,i) - Qbar(s,null)) orders items by what they add to it: with P from the
    agent's own conditional logit, Q(A) - Qbar(null) = sum_i v_i (Qbar_i - Qbar_null) / (v_0 + sum_j v_j)."""
    agent, obs = _trained(), _obs()
    logits, values = agent.item_values(obs)
    null = agent.null_values(agent.state_features(obs))
    slate = np.argsort(-agent.scores(obs), axis=1)[:, : SPEC.slate_size]
    probs = conditional_logit(np.take_along_axis(logits, slate, axis=1), agent.no_click_score)
    q = (probs[:, :-1] * np.take_along_axis(values, slate, axis=1)).sum(axis=1) + probs[:, -1] * null
    v = np.exp(np.take_along_axis(logits, slate, axis=1))
    key = np.take_along_axis(agent.scores(obs), slate, axis=1)
    np.testing.assert_allclose(key, v * (np.take_along_axis(values, slate, axis=1) - null[:, None]), rtol=1e-9)
    np.testing.assert_allclose(q - null, key.sum(axis=1) / (np.exp(agent.no_click_score) + v.sum(axis=1)), rtol=1e-9)


def test_same_seed_same_networks_and_a_curve() -> None:
    first, second = _trained(seed=2), _trained(seed=2)
    a, b = first.get_state(), second.get_state()
    for key, value in a.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, b[key], err_msg=key)
    rows = first.training_curve.rows
    assert len(rows) == 6 and rows[-1]["step"] == 96.0 and np.isfinite(rows[-1]["td_loss"])


USERS, TRAIN_STEPS, STEPS, SEEDS = 128, 150, 150, (0, 1, 2)
"""The clickbait test's budget: each SlateQ arm trains TRAIN_STEPS steps of USERS sessions
on a separately seeded world, then serves (and keeps learning) STEPS steps of USERS users."""


def _cohort_engagement(agent, seed: int) -> float:
    from experiments import metrics
    from experiments.rollout import rollout

    env = RecVectorEnv(USERS, preset="clickbait")
    r = rollout(agent, env, STEPS, np.random.default_rng(seed), seed=seed).records
    cohort = metrics.starting_cohort(r["user_id"])
    return metrics.cohort_engagement(metrics.cohort_reward(r["reward"], r["user_id"], cohort), len(cohort))


def _slateq_arm(discount: float, seed: int) -> float:
    agent = make_agent(
        "slateq_neural", SPEC, discount=discount, n_step=5, minibatch=16, value_learning_rate=1e-2, seed=seed
    )
    agent.train("clickbait", TRAIN_STEPS * USERS, seed=seed + 10_000, n_envs=USERS)
    return _cohort_engagement(agent, seed)


@pytest.fixture(scope="module")
def clickbait() -> dict[str, np.ndarray]:
    from experiments.reproductions.ie2019 import ClickMaximiser

    arms: dict[str, list[float]] = {"g09": [], "g0": [], "clickmax": []}
    for seed in SEEDS:
        arms["g09"].append(_slateq_arm(0.9, seed))
        arms["g0"].append(_slateq_arm(0.0, seed))
        arms["clickmax"].append(_cohort_engagement(ClickMaximiser(SPEC), seed))
    return {arm: np.array(values) for arm, values in arms.items()}


@pytest.mark.slow
def test_neural_slateq_discount_09_beats_discount_0_on_cohort_engagement(clickbait: dict[str, np.ndarray]) -> None:
    """Ie et al. 2019 on the clickbait preset: the long-horizon SlateQ (discount 0.9) keeps
    the users a myopic SlateQ (discount 0) burns with clickbait. Cohort engagement (reward
    per starting-cohort user-step, churned users count 0), common random numbers, paired
    over 3 seeds: the 95% interval of the difference lies above zero."""
    effect = paired_effect(clickbait["g09"], clickbait["g0"])
    assert effect.low > 0, (effect, clickbait)
