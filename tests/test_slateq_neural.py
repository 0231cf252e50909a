"""SlateQ with the shared candidate scorer as its item-value network (Ie et al. 2019)."""

from __future__ import annotations

import numpy as np

from agents import make_agent
from agents.slateq import conditional_logit
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
