"""Tests of the popularity baseline (agents/baselines.py: PopularityAgent).

Exact numbers: smoothed CTR scores against a hand tally of a short synthetic history.
Sampling law: ties broken uniformly at random, propensities (marginal over the tie-break)
against empirical slate frequencies. Exposure without clicks does not buy rank. Plumbing:
bad parameters, save/load, and a run on the default world.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from agents import Decision, Feedback, make_agent
from agents.baselines import PopularityAgent
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec


def spec(c: int, k: int) -> WorldSpec:
    """A world shape with C candidates and slates of k (popularity reads nothing else)."""
    return WorldSpec(n_candidates=c, slate_size=k, user_dim=4, item_dim=4, embedding_dim=1, n_topics=1)


def obs_of(item_ids: list[list[int]]) -> dict[str, np.ndarray]:
    """An observation of B users with (B, C) candidate ids."""
    ids = np.asarray(item_ids, dtype=np.int64)
    return {"item_ids": ids, "user": np.zeros((ids.shape[0], 4), dtype=np.float32)}


def served(slates: list[list[int]], clicks: list[int]) -> tuple[Decision, Feedback]:
    """A Decision serving (B, k) ``slates`` and the Feedback clicking slot ``clicks`` (B,)."""
    s = np.asarray(slates, dtype=np.int64)
    b = s.shape[0]
    decision = Decision(slates=s, propensities=np.ones(s.shape), explored=np.zeros(b, dtype=bool))
    c = np.asarray(clicks, dtype=np.int64)
    return decision, Feedback(clicks=c, rewards=(c >= 0).astype(np.float64))


def teach(agent: PopularityAgent, history: list[tuple[list[list[int]], list[list[int]], list[int]]]) -> None:
    """Feed (item_ids, slates, clicks) steps to ``agent.update``."""
    for ids, slates, clicks in history:
        agent.update(obs_of(ids), *served(slates, clicks))


HISTORY = [
    # candidates             slates          clicked slot
    ([[10, 11, 12, 13], [12, 13, 14, 10]], [[0, 1], [2, 0]], [1, -1]),  # shown 10 11 | 14 12; click 11
    ([[10, 11, 12, 13], [11, 12, 13, 14]], [[3, 0], [0, 1]], [0, 1]),  # shown 13 10 | 11 12; click 13, 12
]


def test_smoothed_ctr_matches_a_hand_tally() -> None:
    # impressions: 10: 2, 11: 2, 12: 2, 13: 1, 14: 1 (8 in all); clicks: 11, 12, 13 (3 in all)
    agent = PopularityAgent(spec(4, 2), prior_strength=2.0)
    np.testing.assert_array_equal(agent.scores(obs_of([[10, 11, 99, 5]])), [[0.0, 0.0, 0.0, 0.0]])  # no data
    teach(agent, HISTORY)
    prior = 3 / 8  # global CTR; prior_strength * prior = 0.75 pseudo-clicks
    assert agent.prior == prior
    want = {10: 0.75 / 4, 11: 1.75 / 4, 12: 1.75 / 4, 13: 1.75 / 3, 14: 0.75 / 3, 99: prior}
    ids = [[10, 11, 12, 13, 14, 99]]
    np.testing.assert_allclose(agent.scores(obs_of(ids)), [[want[i] for i in ids[0]]], rtol=1e-15)
    np.testing.assert_array_equal(agent._ids, [10, 11, 12, 13, 14])
    np.testing.assert_array_equal(agent._impressions, [2, 2, 2, 1, 1])
    np.testing.assert_array_equal(agent._clicks, [0, 1, 1, 1, 0])

    fixed = PopularityAgent(spec(4, 2), prior_strength=2.0, prior_ctr=0.5)  # 1 pseudo-click in 2
    teach(fixed, HISTORY)
    np.testing.assert_allclose(fixed.scores(obs_of([[10, 13, 14, 99]])), [[1 / 4, 2 / 3, 1 / 3, 1 / 2]], rtol=1e-15)


def test_ties_are_broken_uniformly_at_random_and_seeded() -> None:
    c, k, calls, users = 8, 3, 500, 8
    agent = PopularityAgent(spec(c, k), epsilon=0.0)  # no data: every candidate ties
    ids = obs_of([list(range(100, 100 + c))] * users)
    first = np.concatenate([agent.act(ids, np.random.default_rng(seed)).slates[:, 0] for seed in range(calls)])
    counts = np.bincount(first, minlength=c)
    assert stats.chisquare(counts).pvalue > 1e-3, counts  # each candidate about calls * users / C times
    assert (np.abs(counts - calls * users / c) < 5 * math.sqrt(calls * users / c)).all(), counts
    # greedy among C - j tied candidates: propensity 1 / (C - j), nothing explored
    decision = agent.act(ids, np.random.default_rng(0))
    np.testing.assert_allclose(decision.propensities, np.broadcast_to(1 / (c - np.arange(k)), (users, k)))
    assert not decision.explored.any()
    again = agent.act(ids, np.random.default_rng(0))
    np.testing.assert_array_equal(decision.slates, again.slates)
    np.testing.assert_array_equal(decision.propensities, again.propensities)


def test_propensities_match_frequencies_with_ties() -> None:
    c, k, eps, users = 5, 2, 0.3, 40_000
    agent = PopularityAgent(spec(c, k), epsilon=eps, prior_ctr=0.5)
    # ids 0, 1: one click in one impression (6/11); 2, 3 unseen (1/2); 4: ten impressions, no click (5/20)
    teach(agent, [([[0, 1, 2, 3, 4]] * 12, [[0], [1]] + [[4]] * 10, [0, 0] + [-1] * 10)])
    np.testing.assert_allclose(agent.scores(obs_of([[0, 1, 2, 3, 4]])), [[6 / 11, 6 / 11, 0.5, 0.5, 0.25]])
    decision = agent.act(obs_of([[0, 1, 2, 3, 4]] * users), np.random.default_rng(5))
    slates, inverse, counts = np.unique(decision.slates, axis=0, return_inverse=True, return_counts=True)
    law = decision.propensities.prod(axis=1)
    for row, (slate, n) in enumerate(zip(slates, counts, strict=True)):
        p = law[inverse.ravel() == row]
        np.testing.assert_allclose(p, p[0], rtol=1e-12)  # one probability per slate
        assert abs(n / users - p[0]) < 5 * math.sqrt(p[0] * (1 - p[0]) / users), (slate, n / users, p[0])
    # the law by hand for two slates: greedy top pair (tie broken either way), and an explored one
    top = ((1 - eps) / 2 + eps / 5) * ((1 - eps) + eps / 4)  # slot 0 one of {0, 1}, slot 1 the other
    mid = ((1 - eps) / 2 + eps / 5) * (eps / 4)  # slot 0 one of {0, 1}, slot 1 explored to 4
    by_slate = {tuple(s): law[inverse.ravel() == r][0] for r, s in enumerate(slates)}
    assert by_slate[(0, 1)] == pytest.approx(top) and by_slate[(1, 0)] == pytest.approx(top)
    assert by_slate[(0, 4)] == pytest.approx(mid)
    # every ordered pair of distinct candidates is possible; their probabilities sum to 1
    assert len(by_slate) == c * (c - 1)
    assert sum(by_slate.values()) == pytest.approx(1.0)
    assert set(by_slate) == set(itertools.permutations(range(c), 2))


def test_exposure_without_clicks_does_not_buy_rank() -> None:
    agent = PopularityAgent(spec(3, 3), epsilon=0.0)
    shown = [[[0]]] * 50 + [[[1]]] * 5  # item 7 shown 50 times, never clicked; item 8 shown 5, clicked once
    teach(agent, [([[7, 8, 9]], slate, [0 if i == 50 else -1]) for i, slate in enumerate(shown)])
    scores = agent.scores(obs_of([[7, 8, 9]]))[0]
    assert scores[0] < scores[2] < scores[1], scores  # below a fresh item (9, the prior), far below 8
    decision = agent.act(obs_of([[7, 8, 9]] * 16), np.random.default_rng(0))
    np.testing.assert_array_equal(decision.slates, np.tile([1, 2, 0], (16, 1)))
    np.testing.assert_array_equal(decision.propensities, np.ones((16, 3)))


BAD_PARAMS = [
    ({"epsilon": 1.5}, r"popularity.epsilon must be a number in \[0.0, 1.0\]; got 1.5"),
    ({"epsilon": float("nan")}, "popularity.epsilon"),
    ({"prior_strength": 0.0}, r"popularity.prior_strength must be a number in \(0.0, inf\]; got 0.0"),
    ({"prior_strength": -1}, "popularity.prior_strength"),
    ({"prior_strength": math.inf}, "popularity.prior_strength"),
    ({"prior_ctr": 1.2}, r"popularity.prior_ctr must be a number in \[0.0, 1.0\] or None; got 1.2"),
    ({"prior_ctr": True}, "popularity.prior_ctr"),
    ({"prior": 0.1}, "unknown argument"),
]


@pytest.mark.parametrize(("params", "message"), BAD_PARAMS)
def test_bad_params_raise(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_agent("popularity", spec(4, 2), **params)


def test_popularity_on_the_default_world(tmp_path) -> None:
    steps = 40
    env = RecVectorEnv(256, preset="default")
    world = WorldSpec.from_config(env.config)
    agent = make_agent("popularity", world)
    r = rollout(agent, env, steps, np.random.default_rng(1), seed=0).records
    slates, props = r["slate"], r["propensity"]
    k, c = world.slate_size, world.n_candidates
    assert slates.shape == (steps, 256, k) and slates.min() >= 0 and slates.max() < c
    assert (np.diff(np.sort(slates, axis=2), axis=2) > 0).all(), "repeated candidates"
    assert ((props > 0) & (props <= 1)).all()
    assert agent._impressions.sum() == steps * 256 * k
    assert agent._clicks.sum() == (r["click"] >= 0).sum()
    assert agent.prior == pytest.approx((r["click"] >= 0).sum() / (steps * 256 * k))
    # save / load keeps the counts: same decisions under one seed
    agent.save(tmp_path / "popularity.pkl")
    loaded = PopularityAgent.load(tmp_path / "popularity.pkl")
    obs = {key: value.copy() for key, value in env.sim.obs.items()}
    a, b = agent.act(obs, np.random.default_rng(9)), loaded.act(obs, np.random.default_rng(9))
    for field in ("slates", "propensities", "explored"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


@pytest.mark.slow
def test_popularity_beats_random_on_the_default_world() -> None:
    for seed in range(3):
        reward = {}
        for name in ("random", "popularity"):
            env = RecVectorEnv(64, preset="default")
            agent = make_agent(name, WorldSpec.from_config(env.config))
            reward[name] = rollout(agent, env, 150, np.random.default_rng(1000 + seed), seed=seed).records["reward"]
        assert reward["popularity"].mean() > reward["random"].mean(), (seed, {n: v.mean() for n, v in reward.items()})
