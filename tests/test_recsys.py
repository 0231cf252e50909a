"""Recommender families: mf, content, hybrid (agents.recsys) and slateq (agents.slateq)."""

from __future__ import annotations

import numpy as np
import pytest

from agents import Decision, Feedback, agent_names, make_agent
from agents.recsys import (
    ContentAgent,
    Embeddings,
    HybridAgent,
    IdIndex,
    MatrixFactorizationAgent,
    row_standardize,
)
from agents.slateq import SlateQAgent, conditional_logit, normalised_outer_mean
from agents.slates import greedy_slates
from experiments.rollout import rollout
from simenv import PRESETS, RecVectorEnv, WorldSpec

FAMILIES = ("mf", "content", "hybrid", "slateq")

# A tiny world shape for hand computations: d = 2 embedding dims, K = 1 topic, so the
# user features are [observed theta (2), topic share (1), log1p consumed (1)] and the
# item features [embedding (2), quality, length, fresh].
TINY = WorldSpec(n_candidates=3, slate_size=2, user_dim=4, item_dim=5, embedding_dim=2, n_topics=1)


def tiny_obs(user_id: int = 7) -> dict[str, np.ndarray]:
    """One user, three candidates with embeddings (0.6, 0.8), (1, 0), (0, 1)."""
    candidates = np.array(
        [[[0.6, 0.8, 0.2, 1.0, 0.0], [1.0, 0.0, 0.4, 1.0, 0.0], [0.0, 1.0, -0.1, 1.0, 1.0]]], dtype=np.float32
    )
    return {
        "user": np.array([[0.3, -0.1, 1.0, 0.0]], dtype=np.float32),
        "candidates": candidates,
        "item_ids": np.array([[10, 11, 12]], dtype=np.int64),
        "user_id": np.array([user_id], dtype=np.int64),
    }


def served(slate: list[int]) -> Decision:
    """A one-user Decision serving ``slate`` (propensities are irrelevant to learning)."""
    s = np.array([slate], dtype=np.int64)
    return Decision(slates=s, propensities=np.ones(s.shape), explored=np.zeros(1, dtype=bool))


def epsilon_greedy_propensities(scores: np.ndarray, slates: np.ndarray, epsilon: float) -> np.ndarray:
    """Propensities of per-slot epsilon-greedy recomputed from the scores (reference)."""
    b, c = scores.shape
    masked = scores.astype(np.float64, copy=True)
    props = np.empty(slates.shape)
    for j in range(slates.shape[1]):
        best = np.argmax(masked, axis=1)
        props[:, j] = (1 - epsilon) * (slates[:, j] == best) + epsilon / (c - j)
        masked[np.arange(b), slates[:, j]] = -np.inf
    return props


def test_families_are_registered() -> None:
    assert set(FAMILIES) <= set(agent_names())


# ---------------------------------------------------------------------------- valid decisions
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_decisions_are_valid_on_every_preset(preset: str) -> None:
    env = RecVectorEnv(6, preset=preset)
    spec = WorldSpec.from_config(env.config)
    agents = {name: make_agent(name, spec) for name in FAMILIES}
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=1)
    c, k = spec.n_candidates, spec.slate_size
    for _ in range(4):
        for name, agent in agents.items():
            decision = agent.act(obs, rng)
            scores = agent.scores(obs)
            s = decision.slates
            assert s.shape == (6, k) and s.min() >= 0 and s.max() < c, name
            assert (np.sort(s, axis=1)[:, 1:] != np.sort(s, axis=1)[:, :-1]).all(), f"{name}: repeated item"
            assert ((decision.propensities > 0) & (decision.propensities <= 1)).all(), name
            expected = epsilon_greedy_propensities(scores, s, agent.params["epsilon"])
            np.testing.assert_allclose(decision.propensities, expected)
            np.testing.assert_array_equal(decision.explored, (s != greedy_slates(scores, k)).any(axis=1), name)
            next_obs, reward, _, _, info = env.step(s)
            agent.update(obs, decision, Feedback(clicks=info["click"], rewards=reward))
            obs = next_obs


# ---------------------------------------------------------------------------- id tables
def test_id_index_maps_unbounded_ids_to_dense_rows() -> None:
    index = IdIndex()
    rows, new = index.add(np.array([[2**40, 5], [5, 3]]))
    np.testing.assert_array_equal(new, [0, 1, 2])  # new rows in id order: 3, 5, 2**40
    np.testing.assert_array_equal(rows, [[2, 1], [1, 0]])
    rows, new = index.add(np.array([4, 3, 2**40]))
    np.testing.assert_array_equal(new, [3])
    np.testing.assert_array_equal(rows, [3, 0, 2])
    np.testing.assert_array_equal(index.lookup(np.array([99, 4, 5])), [-1, 3, 1])


def test_embeddings_grow_and_keep_values() -> None:
    table = Embeddings(dim=2, capacity=2)
    rows, _ = table.add(np.array([10, 20]))
    table.vectors[rows] = [[1.0, 2.0], [3.0, 4.0]]
    table.add(np.arange(100, 110))
    assert table.vectors.shape[0] >= 12
    vectors, bias, count = table.gather(np.array([20, 10, 999]))
    np.testing.assert_array_equal(vectors, [[3.0, 4.0], [1.0, 2.0], [0.0, 0.0]])
    np.testing.assert_array_equal(bias, 0.0)
    np.testing.assert_array_equal(count, 0.0)


# ---------------------------------------------------------------------------- hand computations
def test_mf_sgd_update_matches_hand_computation() -> None:
    agent = MatrixFactorizationAgent(TINY, n_factors=2, learning_rate=0.1, regularization=0.01)
    (u,), _ = agent.users.add(np.array([7]))
    items, _ = agent.items.add(np.array([10, 11, 12]))
    agent.users.vectors[u], agent.users.bias[u] = [0.1, 0.2], 0.3
    agent.items.vectors[items] = [[0.5, -0.5], [9.0, 9.0], [1.0, 0.0]]
    agent.items.bias[items] = [0.1, 5.0, -0.2]
    agent.mu, agent.n_labels = 0.5, 2
    obs = tiny_obs()
    # before: r_hat(item 12) = 0.5 + 0.3 - 0.2 + 0.1 = 0.7; r_hat(item 10) = 0.5 + 0.3 + 0.1 - 0.05 = 0.85
    np.testing.assert_allclose(agent.scores(obs)[0, [0, 2]], [0.85, 0.7])
    # serve items 12 then 10; the user clicks position 1 (item 10) and watches 3 minutes:
    # errors e_12 = 0 - 0.7 = -0.7, e_10 = 3 - 0.85 = 2.15
    agent.update(obs, served([2, 0]), Feedback(clicks=np.array([1]), rewards=np.array([3.0])))
    # b_u += 0.1 (mean(e) - 0.01 b_u) = 0.3 + 0.1 (0.725 - 0.003)
    assert agent.users.bias[u] == pytest.approx(0.3722)
    # p_u += 0.1 (mean(e q) - 0.01 p_u), mean(e q) = (-0.7 (1, 0) + 2.15 (0.5, -0.5)) / 2 = (0.1875, -0.5375)
    np.testing.assert_allclose(agent.users.vectors[u], [0.11865, 0.14605])
    # item 10: b += 0.1 (2.15 - 0.001); q += 0.1 (2.15 p_u - 0.01 q)
    assert agent.items.bias[items[0]] == pytest.approx(0.3149)
    np.testing.assert_allclose(agent.items.vectors[items[0]], [0.521, -0.4565])
    # item 12: b += 0.1 (-0.7 + 0.002); q += 0.1 (-0.7 p_u - 0.01 q)
    assert agent.items.bias[items[2]] == pytest.approx(-0.2698)
    np.testing.assert_allclose(agent.items.vectors[items[2]], [0.992, -0.014])
    # item 11 was not served: untouched
    np.testing.assert_array_equal(agent.items.vectors[items[1]], [9.0, 9.0])
    assert agent.items.bias[items[1]] == 5.0
    # mu is the running mean of the labels: (0.5 * 2 + 3 + 0) / 4
    assert agent.mu == pytest.approx(1.0)
    np.testing.assert_array_equal(agent.items.count[items], [1, 0, 1])
    assert agent.users.count[u] == 2


def test_mf_scores_unknown_ids_by_biases_only() -> None:
    agent = MatrixFactorizationAgent(TINY, n_factors=2)
    (u,), _ = agent.users.add(np.array([7]))
    agent.users.bias[u], agent.users.vectors[u], agent.mu = 0.4, [1.0, 1.0], 0.25
    np.testing.assert_allclose(agent.scores(tiny_obs()), [[0.65, 0.65, 0.65]])
    np.testing.assert_allclose(agent.scores(tiny_obs(user_id=8)), [[0.25, 0.25, 0.25]])


def test_content_profile_update_matches_hand_computation() -> None:
    agent = ContentAgent(TINY, profile_rate=0.25, prior_weight=2.0, quality_weight=0.5)
    obs = tiny_obs()
    # new user: prior profile 2 * (0.3, -0.1) = (0.6, -0.2); score = p . e + 0.5 quality
    np.testing.assert_allclose(agent.scores(obs), [[0.36 - 0.16 + 0.1, 0.6 + 0.2, -0.2 - 0.05]], rtol=1e-6)
    # click on position 1 = candidate 0, e = (0.6, 0.8): p <- 0.75 (0.6, -0.2) + 0.25 (0.6, 0.8)
    agent.update(obs, served([1, 0]), Feedback(clicks=np.array([1]), rewards=np.array([2.0])))
    np.testing.assert_allclose(agent.user_profiles(obs), [[0.6, 0.05]], rtol=1e-6)
    # no click: the profile stays
    agent.update(obs, served([2, 1]), Feedback(clicks=np.array([-1]), rewards=np.array([0.0])))
    np.testing.assert_allclose(agent.user_profiles(obs), [[0.6, 0.05]], rtol=1e-6)
    np.testing.assert_allclose(agent.scores(obs), [[0.36 + 0.04 + 0.1, 0.6 + 0.2, 0.05 - 0.05]], rtol=1e-6, atol=1e-7)
    # another user still gets its own prior
    np.testing.assert_allclose(agent.user_profiles(tiny_obs(user_id=8)), [[0.6, -0.2]], rtol=1e-6)


def test_hybrid_weight_switches_from_content_to_mf() -> None:
    agent = HybridAgent(TINY, user_threshold=4.0, item_threshold=2.0, max_mf_weight=0.8)
    obs = tiny_obs()
    np.testing.assert_allclose(agent.scores(obs), row_standardize(agent.content.scores(obs)))
    (u,), _ = agent.mf.users.add(np.array([7]))
    items, _ = agent.mf.items.add(np.array([10, 11, 12]))
    agent.mf.users.count[u] = 2.0
    agent.mf.items.count[items] = [0.0, 1.0, 5.0]
    # w = 0.8 min(1, 2 / 4) min(1, n_i / 2)
    np.testing.assert_allclose(agent.mf_weight(obs), [[0.0, 0.2, 0.4]])
    agent.mf.users.count[u] = 10.0
    np.testing.assert_allclose(agent.mf_weight(obs), [[0.0, 0.4, 0.8]])
    w = agent.mf_weight(obs)
    blend = w * row_standardize(agent.mf.scores(obs)) + (1 - w) * row_standardize(agent.content.scores(obs))
    np.testing.assert_allclose(agent.scores(obs), blend)


def test_slateq_choice_model_and_gradient_by_hand() -> None:
    # v = exp(logit); P(j) = v_j / (exp(0) + sum v)
    probs = conditional_logit(np.array([[np.log(2.0), np.log(3.0)]]), 0.0)
    np.testing.assert_allclose(probs, [[2 / 6, 3 / 6, 1 / 6]])
    x, z = np.array([[1.0, 2.0]]), np.array([[[1.0, 0.0], [0.0, 1.0]]])
    # sum_j c_j x z_j^T / (1 + |x|^2 mean_j |z_j|^2) = [[1, -1], [2, -2]] / 6
    grad = normalised_outer_mean(x, np.array([[1.0, -1.0]]), z)
    np.testing.assert_allclose(grad, [[1 / 6, -1 / 6], [2 / 6, -2 / 6]])


def test_slateq_td_target_bootstraps_only_for_the_same_user() -> None:
    obs = tiny_obs()
    click = Feedback(clicks=np.array([0]), rewards=np.array([2.0]))
    values = {}
    for next_user in (7, 8):
        agent = SlateQAgent(TINY, discount=0.5, q_learning_rate=1.0)
        agent.q_weights[0, 0] = 1.0  # Qbar = 1 for every (user, item)
        agent.update(obs, served([1, 2]), click)
        agent.click_weights[:] = 0.0  # P(j) = 1 / 3 for both items and no click
        before = agent.q_weights.copy()
        agent.update(tiny_obs(user_id=next_user), served([0, 1]), Feedback(np.array([-1]), np.array([0.0])))
        values[next_user] = (agent.q_weights - before)[0, 0]
    # TD error: same user 2 + 0.5 * (2/3 * 1) - 1 = 4/3; another user 2 - 1 = 1; same normaliser
    assert values[7] / values[8] == pytest.approx(4 / 3)
    assert values[8] > 0


# ---------------------------------------------------------------------------- determinism, save/load
def short_run(name: str, seed: int, steps: int = 8) -> tuple[object, dict[str, np.ndarray]]:
    env = RecVectorEnv(8, preset="cold_start")
    agent = make_agent(name, WorldSpec.from_config(env.config))
    traj = rollout(agent, env, steps, np.random.default_rng(seed), seed=seed)
    return agent, traj.records


@pytest.mark.parametrize("name", FAMILIES)
def test_same_seed_same_result(name: str) -> None:
    _, a = short_run(name, 3)
    _, b = short_run(name, 3)
    for key in ("slate", "propensity", "reward", "predicted"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    _, c = short_run(name, 4)
    assert not np.array_equal(a["slate"], c["slate"])


@pytest.mark.parametrize("name", FAMILIES)
def test_save_load_gives_same_decisions(name: str, tmp_path) -> None:
    agent, _ = short_run(name, 5)
    path = tmp_path / f"{name}.pkl"
    agent.save(path)
    loaded = type(agent).load(path)
    assert loaded.params == agent.params
    env = RecVectorEnv(8, preset="cold_start")
    obs, _ = env.reset(seed=9)
    mine, theirs = agent.act(obs, np.random.default_rng(1)), loaded.act(obs, np.random.default_rng(1))
    np.testing.assert_array_equal(mine.slates, theirs.slates)
    np.testing.assert_array_equal(mine.propensities, theirs.propensities)
    np.testing.assert_array_equal(agent.scores(obs), loaded.scores(obs))


@pytest.mark.parametrize(
    ("name", "param", "value"),
    [
        ("mf", "n_factors", 0),
        ("mf", "learning_rate", 0.0),
        ("mf", "epsilon", 1.5),
        ("content", "profile_rate", -0.1),
        ("hybrid", "user_threshold", -1.0),
        ("slateq", "discount", 1.0),
        ("slateq", "q_learning_rate", 2.0),
    ],
)
def test_bad_hyper_parameters_raise_naming_the_field(name: str, param: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"{name}\.{param} must be .*got {value}"):
        make_agent(name, TINY, **{param: value})


# ---------------------------------------------------------------------------- statistical
def mean_reward(name: str, preset: str, seed: int, users: int = 64, steps: int = 100) -> float:
    env = RecVectorEnv(users, preset=preset)
    agent = make_agent(name, WorldSpec.from_config(env.config))
    return float(rollout(agent, env, steps, np.random.default_rng(1000 + seed), seed=seed).records["reward"].mean())


@pytest.mark.slow
def test_hybrid_beats_mf_under_cold_start() -> None:
    """Same worlds (common random numbers per seed): the content fallback for new users
    and new items earns more engagement than pure MF."""
    gaps = [mean_reward("hybrid", "cold_start", s) - mean_reward("mf", "cold_start", s) for s in range(3)]
    assert min(gaps) > 0, gaps


@pytest.mark.slow
def test_mf_and_content_beat_random_on_default() -> None:
    rand = np.array([mean_reward("random", "default", s) for s in range(3)])
    content = np.array([mean_reward("content", "default", s) for s in range(3)])
    mf = np.array([mean_reward("mf", "default", s) for s in range(3)])
    assert (content > rand).all(), (content, rand)
    assert mf.mean() > rand.mean(), (mf, rand)
