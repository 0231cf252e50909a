"""Tests of the numpy contextual bandits (agents/bandits/).

Exact numbers: every model's estimate against a direct least-squares solve built by hand
from the documented feature map. Sampling laws: reported propensities against empirical
frequencies. Plumbing: Decision validity, determinism, save/load, bad parameters. Slow
statistical tests: LinUCB and LinTS beat random and popularity; privacy costs engagement.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from agents import AgentError, Decision, Feedback, make_agent
from agents.bandits import (
    FeatureMap,
    PrivateRidge,
    Projected,
    deterministic_decision,
    prefix_propensities,
    sherman_morrison,
    slate_propensities,
    top_k,
    zcdp_rho,
)
from agents.bandits.hybrid_kernels import _hybrid_slates
from agents.slates import epsilon_greedy_slates, greedy_slates
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec

BANDITS = ("linear_egreedy", "linucb", "linucb_hybrid", "lints", "discounted_linucb", "dp_linucb")
SMALL = {"n_candidates": 8, "slate_size": 3}


def small_env(n: int = 12, preset: str = "default") -> RecVectorEnv:
    return RecVectorEnv(n, preset=preset, overrides=SMALL)


def spec_of(env: RecVectorEnv) -> WorldSpec:
    return WorldSpec.from_config(env.config)


def hand_features(user: np.ndarray, items: np.ndarray, observed: int) -> np.ndarray:
    """The documented map [u[:o] * e[:o], item features, 1], built independently."""
    user = user.astype(np.float64)
    items = items.astype(np.float64)
    cross = user[:, None, :observed] * items[:, :, :observed]
    return np.concatenate([cross, items, np.ones((*items.shape[:2], 1))], axis=2)


def random_steps(env: RecVectorEnv, steps: int, seed: int):
    """(obs copy, decision, feedback) triples from uniformly random slates."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    c, k = env.config.n_candidates, env.config.slate_size
    out = []
    for _ in range(steps):
        b = obs["user"].shape[0]
        slates = np.argsort(rng.random((b, c)), axis=1)[:, :k]
        decision = Decision(slates=slates, propensities=np.ones((b, k)), explored=np.zeros(b, dtype=bool))
        kept = {key: value.copy() for key, value in obs.items()}
        obs, reward, _, _, info = env.step(slates)
        out.append((kept, decision, Feedback(clicks=info["click"].copy(), rewards=reward.copy())))
    return out


def design(history, observed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per step: rows (B k, D) of served-item features and targets (B k,) by hand."""
    xs, rs = [], []
    for obs, decision, feedback in history:
        b, k = decision.slates.shape
        items = np.take_along_axis(obs["candidates"], decision.slates[:, :, None], axis=1)
        target = np.zeros((b, k))
        for row in range(b):  # plain loop on purpose: an independent construction
            if feedback.clicks[row] >= 0:
                target[row, feedback.clicks[row]] = feedback.rewards[row]
        xs.append(hand_features(obs["user"], items, observed).reshape(b * k, -1))
        rs.append(target.reshape(-1))
    return xs, rs


# ---------------------------------------------------------------------------- exact numbers


def test_feature_map_layout() -> None:
    env = small_env()
    obs, _ = env.reset(seed=3)
    fmap = FeatureMap.from_spec(spec_of(env))
    assert fmap.observed_dims == env.config.users.observed_dims
    assert fmap.dim == fmap.observed_dims + spec_of(env).item_dim + 1
    np.testing.assert_allclose(
        fmap(obs["user"], obs["candidates"]), hand_features(obs["user"], obs["candidates"], fmap.observed_dims)
    )


def test_projected_scores_equal_direct_contexts() -> None:
    """Scores computed in item space (T_b [v, 1]) equal those on the full contexts."""
    env = small_env()
    obs, _ = env.reset(seed=4)
    fmap = FeatureMap.from_spec(spec_of(env))
    x = hand_features(obs["user"], obs["candidates"], fmap.observed_dims)
    proj = Projected.of(fmap, obs)
    rng = np.random.default_rng(0)
    theta, half = rng.standard_normal(fmap.dim), rng.standard_normal((fmap.dim, fmap.dim))
    matrix = half @ half.T
    np.testing.assert_allclose(proj.linear(theta), x @ theta, rtol=1e-4, atol=1e-4)
    draws = rng.standard_normal((x.shape[0], 3, fmap.dim))
    np.testing.assert_allclose(proj.linear(draws), draws @ x.transpose(0, 2, 1), rtol=1e-4, atol=1e-4)
    quad = np.einsum("bcd,de,bce->bc", x, matrix, x)
    np.testing.assert_allclose(proj.quadratic(proj.gram(matrix)), quad, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(proj.squared_norm(), (x**2).sum(axis=2), rtol=1e-5)
    v1 = np.concatenate([obs["candidates"], np.ones((*obs["candidates"].shape[:2], 1))], axis=2)
    np.testing.assert_allclose(np.einsum("bdf,bcf->bcd", proj.jacobian(), v1), x, rtol=1e-6)


@pytest.mark.parametrize("name", ["linucb", "lints", "linear_egreedy"])
def test_ridge_update_matches_least_squares(name: str) -> None:
    env = small_env()
    agent = make_agent(name, spec_of(env), lam=0.7)
    history = random_steps(env, 6, seed=1)
    for obs, decision, feedback in history:
        agent.update(obs, decision, feedback)
    xs, rs = design(history, agent.features.observed_dims)
    x, r = np.concatenate(xs), np.concatenate(rs)
    gram = 0.7 * np.eye(x.shape[1]) + x.T @ x
    np.testing.assert_allclose(agent.model.theta, np.linalg.solve(gram, x.T @ r), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(agent.model.A_inv, np.linalg.inv(gram), rtol=1e-6, atol=1e-9)


def test_linucb_scores_and_slates_by_hand() -> None:
    env = small_env()
    agent = make_agent("linucb", spec_of(env), alpha=0.8, lam=1.0)
    history = random_steps(env, 5, seed=2)
    for obs, decision, feedback in history:
        agent.update(obs, decision, feedback)
    xs, rs = design(history, agent.features.observed_dims)
    x, r = np.concatenate(xs), np.concatenate(rs)
    a_inv = np.linalg.inv(np.eye(x.shape[1]) + x.T @ x)
    obs = history[-1][0]
    cand = hand_features(obs["user"], obs["candidates"], agent.features.observed_dims)
    mean = cand @ (a_inv @ (x.T @ r))
    ucb = mean + 0.8 * np.sqrt(np.einsum("bcd,de,bce->bc", cand, a_inv, cand))
    decision = agent.act(obs, np.random.default_rng(0))
    np.testing.assert_array_equal(decision.slates, np.argsort(-ucb, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(decision.predicted, np.take_along_axis(mean, decision.slates, axis=1), atol=1e-4)
    greedy = np.argsort(-mean, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(decision.explored, (decision.slates != greedy).any(axis=1))
    np.testing.assert_array_equal(decision.propensities, 1.0)


def test_discounted_update_matches_weighted_least_squares() -> None:
    env = small_env()
    gamma, lam = 0.8, 0.5
    agent = make_agent("discounted_linucb", spec_of(env), gamma=gamma, lam=lam)
    history = random_steps(env, 5, seed=4)
    for obs, decision, feedback in history:
        agent.update(obs, decision, feedback)
    xs, rs = design(history, agent.features.observed_dims)
    t_end, dim = len(xs) - 1, xs[0].shape[1]
    v = lam * np.eye(dim) + sum(gamma ** (t_end - t) * x.T @ x for t, x in enumerate(xs))
    w = lam * np.eye(dim) + sum(gamma ** (2 * (t_end - t)) * x.T @ x for t, x in enumerate(xs))
    b = sum(gamma ** (t_end - t) * x.T @ r for t, (x, r) in enumerate(zip(xs, rs, strict=True)))
    np.testing.assert_allclose(agent.model.theta, np.linalg.solve(v, b), rtol=1e-6, atol=1e-7)
    v_inv = np.linalg.inv(v)
    np.testing.assert_allclose(agent.model.width_matrix(), v_inv @ w @ v_inv, rtol=1e-6, atol=1e-9)


def joint_rows(obs, items: np.ndarray, slots: int, observed: int, d: int) -> np.ndarray:
    """(B, n, D + slots d) hybrid rows ``[z, e (x) onehot(arm)]`` of items (B, n, F_i), by hand
    (e: the first d item features)."""
    z = hand_features(obs["user"], items, observed)
    onehot = np.eye(slots)[obs["user_id"] % slots]  # (B, slots)
    arm = onehot[:, None, :, None] * items[:, :, None, :d].astype(np.float64)
    return np.concatenate([z, arm.reshape(*items.shape[:2], slots * d)], axis=2)


def joint_ridge(history, slots: int, lam: float, observed: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``(A^-1, theta)`` of ridge regression on the hybrid rows of every served item, by hand."""
    xs, rs = [], []
    for obs, decision, feedback in history:
        items = np.take_along_axis(obs["candidates"], decision.slates[:, :, None], axis=1)
        rows = joint_rows(obs, items, slots, observed, d)
        xs.append(rows.reshape(-1, rows.shape[2]))
        target = np.zeros(decision.slates.shape)
        clicked = feedback.clicks >= 0
        target[clicked, feedback.clicks[clicked]] = feedback.rewards[clicked]
        rs.append(target.reshape(-1))
    x, r = np.concatenate(xs), np.concatenate(rs)
    a_inv = np.linalg.inv(lam * np.eye(x.shape[1]) + x.T @ x)
    return a_inv, a_inv @ (x.T @ r)


def test_hybrid_matches_joint_ridge_with_shared_arms() -> None:
    """Li et al.'s hybrid estimator = ridge on [z, e (x) onehot(arm)]; 3 slots for 12 users
    makes users share arms within a batch (a repeated arm is updated row after row)."""
    env = small_env()
    slots, lam = 3, 0.9
    agent = make_agent("linucb_hybrid", spec_of(env), user_slots=slots, lam=lam)
    history = random_steps(env, 5, seed=5)
    for obs, decision, feedback in history:
        agent.update(obs, decision, feedback)
    d = spec_of(env).embedding_dim
    zs, rs = design(history, agent.features.observed_dims)
    arm_rows = []
    for obs, decision, _ in history:
        items = np.take_along_axis(obs["candidates"], decision.slates[:, :, None], axis=1).astype(np.float64)
        onehot = np.eye(slots)[obs["user_id"] % slots]  # (B, slots)
        arm_rows.append((onehot[:, None, :, None] * items[:, :, None, :d]).reshape(-1, slots * d))
    x = np.concatenate([np.concatenate(zs), np.concatenate(arm_rows)], axis=1)
    r = np.concatenate(rs)
    joint = np.linalg.solve(lam * np.eye(x.shape[1]) + x.T @ x, x.T @ r)
    big = zs[0].shape[1]
    np.testing.assert_allclose(agent.shared.theta, joint[:big], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(agent.arm_theta(np.arange(slots)), joint[big:].reshape(slots, d), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "overrides",
    [SMALL, {"n_candidates": 70, "slate_size": 4, "catalog": {"dim": 7}, "users": {"observed_dims": 3}}],
    ids=["small", "odd_dims"],
)
def test_hybrid_scores_and_slates_by_hand(overrides: dict) -> None:
    """Mean = joint ridge prediction, UCB width = sqrt(x^T A_joint^-1 x) (Li et al.'s s is the
    Schur-complement form of it), slates = top-k of the UCB, explored = differs from top-k of the mean.
    Odd dimensions and C > 64 exercise the padded rows and candidate lanes of the compiled loops."""
    env = RecVectorEnv(12, preset="default", overrides=overrides)
    k = env.config.slate_size
    slots, lam, alpha = 3, 0.9, 0.7
    agent = make_agent("linucb_hybrid", spec_of(env), user_slots=slots, lam=lam, alpha=alpha)
    history = random_steps(env, 6, seed=8)
    for obs, decision, feedback in history[:-1]:
        agent.update(obs, decision, feedback)
    o = agent.features.observed_dims
    d = spec_of(env).embedding_dim
    a_inv, theta = joint_ridge(history[:-1], slots, lam, o, d)
    obs = history[-1][0]
    x = joint_rows(obs, obs["candidates"], slots, o, d)  # (B, C, D + slots d)
    mean = x @ theta
    ucb = mean + alpha * np.sqrt(np.einsum("bci,ij,bcj->bc", x, a_inv, x))
    got_mean, got_ucb = agent.mean_and_ucb(obs)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(got_ucb, ucb, rtol=1e-6, atol=1e-6)  # widths in float32
    decision = agent.act(obs, np.random.default_rng(0))
    np.testing.assert_array_equal(decision.slates, np.argsort(-ucb, axis=1, kind="stable")[:, :k])
    np.testing.assert_allclose(decision.predicted, np.take_along_axis(mean, decision.slates, axis=1), atol=1e-5)
    greedy = np.argsort(-mean, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(decision.explored, (decision.slates != greedy).any(axis=1))
    np.testing.assert_array_equal(decision.propensities, 1.0)


def test_hybrid_delayed_feedback_equals_immediate() -> None:
    """act keeps nothing for update: feedback applied after later act calls gives the same
    statistics, and a returned decision is not changed by later calls."""
    env = small_env()
    spec = spec_of(env)
    history = random_steps(env, 4, seed=9)
    now, later = (make_agent("linucb_hybrid", spec, user_slots=5) for _ in range(2))
    rng = np.random.default_rng(0)
    for (obs, decision, feedback), (next_obs, _, _) in itertools.pairwise(history):
        now.act(obs, rng)
        now.update(obs, decision, feedback)
        kept = later.act(obs, rng)
        copies = [kept.slates.copy(), kept.predicted.copy(), kept.explored.copy()]
        later.act(next_obs, rng)  # a decision for the next batch before this one's feedback
        later.update(obs, decision, feedback)
        for before, after in zip(copies, [kept.slates, kept.predicted, kept.explored], strict=True):
            np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(now.arm_state, later.arm_state)
    np.testing.assert_array_equal(now.shared.A, later.shared.A)
    np.testing.assert_array_equal(now.shared.b, later.shared.b)


def test_hybrid_slates_kernel_equals_deterministic_decision() -> None:
    """The compiled top-k (ties to the lowest index) equals deterministic_decision; a
    non-finite score makes it decline (the agent then falls back to deterministic_decision)."""
    rng = np.random.default_rng(4)
    mean = rng.integers(0, 4, (300, 12)).astype(np.float64)  # many ties
    ucb = mean + rng.integers(0, 3, (300, 12))
    for k in (1, 3, 12):
        slates, explored, predicted = np.empty((300, k), np.int64), np.empty(300, bool), np.empty((300, k))
        assert _hybrid_slates(ucb, mean, slates, explored, predicted)
        expected = deterministic_decision(ucb, mean, k)
        np.testing.assert_array_equal(slates, expected.slates)
        np.testing.assert_array_equal(explored, expected.explored)
        np.testing.assert_array_equal(predicted, np.take_along_axis(mean, slates, axis=1))
    ucb[7, 3] = np.inf
    assert not _hybrid_slates(ucb, mean, np.empty((300, 2), np.int64), np.empty(300, bool), np.empty((300, 2)))


def test_sherman_morrison_by_hand() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 3, 3))
    a = a @ a.transpose(0, 2, 1) + np.eye(3)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(
        sherman_morrison(np.linalg.inv(a), x), np.linalg.inv(a + x[:, :, None] * x[:, None, :]), rtol=1e-10
    )


def test_prefix_propensities_by_hand() -> None:
    # one user, the served draw then 4 independent draws over C = 3; served slate (2, 0, 1)
    scores = np.array([[[1.0, 0.0, 3.0], [1.0, 0.0, 3.0], [2.0, 0.0, 3.0], [0.0, 1.0, 3.0], [0.0, 0.5, -1.0]]])
    props = prefix_propensities(scores, np.array([[2, 0, 1]]))
    # item 2 tops 3 of 4 copies; item 0 is next in 2 of those 3; item 1 then follows in both
    np.testing.assert_allclose(props, [[3 / 4, 2 / 3, 1.0]])
    # no copy agrees on slot 0: the floor 1 / (m + 1)
    np.testing.assert_allclose(prefix_propensities(scores, np.array([[0, 2, 1]]))[0, 0], 1 / 5)


def loop_prefix_propensities(scores: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """The estimator written slot by slot (masking each served item in turn), for comparison."""
    b, n, _ = scores.shape
    rows = np.arange(b)
    masked = scores[:, 1:].copy()
    agree = np.ones((b, n - 1), dtype=bool)
    count_prev = np.full(b, float(n - 1))
    props = np.empty(slates.shape)
    for j in range(slates.shape[1]):
        item = slates[:, j]
        agree &= masked[rows, :, item] >= masked.max(axis=2)
        count = agree.sum(axis=1).astype(np.float64)
        props[:, j] = np.where(count > 0, count / np.maximum(count_prev, 1.0), 1.0 / (count_prev + 1.0))
        count_prev = count
        masked[rows, :, item] = -np.inf
    return props


def test_one_pass_propensities_equal_slot_by_slot_masking() -> None:
    """slate_propensities (one masked max, candidate-major copies) = the slot-by-slot estimator,
    including served slates that are not any copy's top-k and coarse scores with ties."""
    rng = np.random.default_rng(3)
    for scores in (rng.standard_normal((300, 9, 12)), rng.integers(0, 4, (300, 9, 12)).astype(np.float64)):
        slates = greedy_slates(scores[:, 0], 4)
        slates[::3] = np.argsort(rng.random((100, 12)), axis=1)[:, :4]  # arbitrary slates too
        expected = loop_prefix_propensities(scores, slates)
        np.testing.assert_array_equal(prefix_propensities(scores, slates), expected)
        copies = scores[:, 1:].transpose(0, 2, 1).copy()
        np.testing.assert_array_equal(slate_propensities(copies, slates), expected)


def test_top_k_equals_greedy_slates() -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 3, (500, 10)).astype(np.float32)  # many ties: lowest index first
    for k in (1, 3, 5, 10):
        np.testing.assert_array_equal(top_k(scores, k), greedy_slates(scores, k))
    scores[0, 2] = -np.inf  # non-finite: delegated
    np.testing.assert_array_equal(top_k(scores, 4), greedy_slates(scores, 4))


def test_lints_group_shares_propensity_draws() -> None:
    """Users of one propensity group share their Monte Carlo copies: identical users in one
    group that were served the same slate get the same propensity estimates."""
    env = small_env()
    agent = trained("lints", env, v=0.5, propensity_draws=20, propensity_group=64)
    decision = agent.act(repeated_obs(env, 64), np.random.default_rng(2))
    slates, counts = np.unique(decision.slates, axis=0, return_counts=True)
    rows = (decision.slates == slates[counts.argmax()]).all(axis=1)
    assert rows.sum() >= 2
    np.testing.assert_array_equal(
        decision.propensities[rows], np.broadcast_to(decision.propensities[rows][0], (rows.sum(), 3))
    )


def test_lints_with_zero_scale_is_greedy() -> None:
    env = small_env()
    agent = make_agent("lints", spec_of(env), v=0.0, propensity_draws=4)
    for obs, decision, feedback in random_steps(env, 3, seed=6):
        agent.update(obs, decision, feedback)
    decision = agent.act(env.sim.obs, np.random.default_rng(0))
    np.testing.assert_array_equal(decision.propensities, 1.0)
    assert not decision.explored.any()


def test_private_ridge_calibration_and_tree() -> None:
    eps, delta = 0.5, 1e-6
    rho = zcdp_rho(eps, delta)
    assert rho + 2 * math.sqrt(rho * math.log(1 / delta)) == pytest.approx(eps, rel=1e-12)
    model = PrivateRidge(
        4, 1.0, epsilon=eps, delta=delta, horizon=7, rows_per_record=3, feature_bound=2.0, reward_bound=5.0, seed=0
    )
    assert model.levels == 3
    assert model.sigma == pytest.approx(math.sqrt(3) * 6 / math.sqrt(2 * rho))
    rng = np.random.default_rng(1)
    for t in range(1, 7):
        model.add(rng.standard_normal((6, 4)), rng.random(6))
        # the release adds one noise node per set bit of t (binary mechanism)
        assert (np.abs(model._noise).sum(axis=(1, 2)) > 0).sum() == bin(t).count("1")


def test_private_linucb_with_huge_budget_is_scaled_least_squares() -> None:
    """epsilon -> infinity: the release is the true scaled Gram (also across tree blocks)."""
    env = small_env()
    agent = make_agent("dp_linucb", spec_of(env), epsilon=1e20, horizon=2, feature_bound=2.5, reward_bound=4.0)
    history = random_steps(env, 5, seed=7)
    for obs, decision, feedback in history:
        agent.update(obs, decision, feedback)
    xs, rs = design(history, agent.features.observed_dims)
    x, r = np.concatenate(xs), np.concatenate(rs)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 2.5)
    r = np.clip(r / 4.0, 0.0, 1.0)
    expected = np.linalg.solve(np.eye(x.shape[1]) + x.T @ x, x.T @ r)
    np.testing.assert_allclose(agent.model.theta, expected, rtol=1e-5, atol=1e-7)
    # serving: predictions back in reward units, reward_bound * (clipped x / bound) . theta
    obs = history[-1][0]
    cand = hand_features(obs["user"], obs["candidates"], agent.features.observed_dims)
    cand = cand / np.maximum(np.linalg.norm(cand, axis=2, keepdims=True), 2.5)
    decision = agent.act(obs, np.random.default_rng(0))
    served = np.take_along_axis(cand, decision.slates[:, :, None], axis=1)
    np.testing.assert_allclose(decision.predicted, 4.0 * served @ expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- sampling laws


def repeated_obs(env: RecVectorEnv, n: int) -> dict[str, np.ndarray]:
    """One user's observation repeated n times (to sample one decision law many times)."""
    obs, _ = env.reset(seed=11)
    return {key: np.repeat(value[:1], n, axis=0) for key, value in obs.items()}


def trained(name: str, env: RecVectorEnv, **params):
    agent = make_agent(name, spec_of(env), **params)
    for obs, decision, feedback in random_steps(env, 4, seed=8):
        agent.update(obs, decision, feedback)
    return agent


def assert_propensities_match_frequencies(decision: Decision, slack: float, min_rows: int = 1000) -> None:
    """Slot 0: P(item) against its frequency; slot 1: P(item | slot-0 item) against the
    conditional frequency where the slot-0 item was served at least ``min_rows`` times. Tolerance:
    4.5 binomial standard errors of the frequency, plus ``slack`` for estimated propensities."""
    first, second = decision.slates[:, 0], decision.slates[:, 1]

    def check(rows: np.ndarray, reported: np.ndarray, hits: np.ndarray) -> None:
        freq = hits.sum() / rows.sum()
        tol = 4.5 * math.sqrt(max(freq * (1 - freq), 0.01) / rows.sum()) + slack
        assert reported.mean() == pytest.approx(freq, abs=tol)

    checked = 0
    for item in np.unique(first):
        rows = first == item
        check(np.ones_like(rows), decision.propensities[rows, 0], rows)
        if rows.sum() < min_rows:
            continue
        for nxt in np.unique(second[rows]):
            pair = rows & (second == nxt)
            check(rows, decision.propensities[pair, 1], pair)
            checked += 1
    assert checked >= 2


def test_egreedy_propensities_equal_sampling_frequencies() -> None:
    env = small_env()
    agent = trained("linear_egreedy", env, epsilon=0.4)
    decision = agent.act(repeated_obs(env, 20_000), np.random.default_rng(3))
    assert_propensities_match_frequencies(decision, slack=0.0)


def test_slate_egreedy_propensities_equal_sampling_frequencies() -> None:
    """Whole-slate exploration: slot-wise conditional propensities match frequencies, and
    their product is each slate's probability (greedy: 1 - eps + eps / (C (C-1) (C-2)))."""
    env = small_env()
    agent = trained("linear_egreedy", env, epsilon=0.4, exploration="slate")
    decision = agent.act(repeated_obs(env, 20_000), np.random.default_rng(3))
    assert_propensities_match_frequencies(decision, slack=0.0)
    c = env.config.n_candidates
    greedy = (decision.slates == decision.slates[~decision.explored][0]).all(axis=1)
    p_greedy = 0.6 + 0.4 / (c * (c - 1) * (c - 2))
    np.testing.assert_allclose(decision.propensities[greedy].prod(axis=1), p_greedy)
    assert greedy.mean() == pytest.approx(p_greedy, abs=4.5 * math.sqrt(p_greedy * (1 - p_greedy) / 20_000))
    np.testing.assert_allclose(decision.propensities[~greedy].prod(axis=1), 0.4 / (c * (c - 1) * (c - 2)))


def test_lints_propensities_estimate_sampling_frequencies() -> None:
    env = small_env()
    agent = trained("lints", env, v=0.3, propensity_draws=150)
    decision = agent.act(repeated_obs(env, 4_000), np.random.default_rng(4))
    assert_propensities_match_frequencies(decision, slack=0.02)


def test_slate_samplers_with_ties_and_minus_inf() -> None:
    """agents.slates (sped up for the bandits): greedy = stable argsort top-k, ties and -inf
    included; epsilon-greedy never repeats an item even when scores hold -inf."""
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, (400, 9)).astype(np.float64)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    for k in (1, 4, 9):
        np.testing.assert_array_equal(greedy_slates(scores, k), np.argsort(-scores, axis=1, kind="stable")[:, :k])
        decision = epsilon_greedy_slates(scores, k, 0.5, rng)
        assert (np.sort(decision.slates, axis=1)[:, 1:] != np.sort(decision.slates, axis=1)[:, :-1]).all()
        np.testing.assert_array_equal(decision.explored, (decision.slates != greedy_slates(scores, k)).any(axis=1))


# ---------------------------------------------------------------------------- plumbing


@pytest.mark.parametrize("name", BANDITS)
def test_decisions_are_valid(name: str) -> None:
    env = small_env()
    agent = make_agent(name, spec_of(env))
    trajectory = rollout(agent, env, 6, np.random.default_rng(0), seed=0)
    rec = trajectory.records
    slates, c, k = rec["slate"], env.config.n_candidates, env.config.slate_size
    assert slates.shape == (6, 12, k) and slates.dtype == np.int64
    assert ((slates >= 0) & (slates < c)).all()
    assert (np.sort(slates, axis=2)[..., 1:] != np.sort(slates, axis=2)[..., :-1]).all()
    assert ((rec["propensity"] > 0) & (rec["propensity"] <= 1)).all()
    assert rec["explored"].dtype == bool
    assert np.isfinite(rec["predicted"]).all()


@pytest.mark.parametrize("name", BANDITS)
def test_same_seed_same_result(name: str) -> None:
    runs = []
    for _ in range(2):
        env = small_env()
        agent = make_agent(name, spec_of(env))
        runs.append(rollout(agent, env, 8, np.random.default_rng(5), seed=2).records)
    for key in ("slate", "propensity", "explored", "predicted", "reward"):
        np.testing.assert_array_equal(runs[0][key], runs[1][key], err_msg=key)


@pytest.mark.parametrize("name", BANDITS)
def test_save_load_gives_same_decisions(name: str, tmp_path) -> None:
    env = small_env()
    agent = make_agent(name, spec_of(env))
    rollout(agent, env, 5, np.random.default_rng(1), seed=3)
    path = tmp_path / f"{name}.pkl"
    agent.save(path)
    loaded = type(agent).load(path)
    assert loaded.params == agent.params
    obs = env.sim.obs
    a, b = agent.act(obs, np.random.default_rng(9)), loaded.act(obs, np.random.default_rng(9))
    for field in ("slates", "propensities", "explored", "predicted"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


BAD_PARAMS = [
    ("linear_egreedy", {"exploration": "item"}, r"exploration must be one of \['slot', 'slate'\]; got 'item'"),
    ("linear_egreedy", {"epsilon": 1.5}, r"linear_egreedy.epsilon must be a number in \[0.0, 1.0\]; got 1.5"),
    ("linear_egreedy", {"lam": 0.0}, "linear_egreedy.lam"),
    ("linucb", {"alpha": -1.0}, "linucb.alpha"),
    ("linucb", {"lam": float("nan")}, "linucb.lam"),
    ("linucb_hybrid", {"user_slots": 0}, "linucb_hybrid.user_slots must be an integer"),
    ("linucb_hybrid", {"user_slots": 2.5}, "linucb_hybrid.user_slots"),
    ("lints", {"v": -0.1}, "lints.v"),
    ("lints", {"propensity_draws": 0}, "lints.propensity_draws"),
    ("lints", {"propensity_group": 0}, "lints.propensity_group"),
    ("discounted_linucb", {"gamma": 0.0}, r"discounted_linucb.gamma must be a number in \(0.0, 1.0\]"),
    ("discounted_linucb", {"gamma": 1.2}, "discounted_linucb.gamma"),
    ("dp_linucb", {"epsilon": 0.0}, "dp_linucb.epsilon"),
    ("dp_linucb", {"delta": 1.0}, "dp_linucb.delta"),
    ("dp_linucb", {"horizon": 0}, "dp_linucb.horizon"),
    ("dp_linucb", {"feature_bound": -1.0}, "dp_linucb.feature_bound"),
    ("dp_linucb", {"reward_bound": 0.0}, "dp_linucb.reward_bound"),
    ("linucb", {"epsilon": 0.1}, "unknown argument"),
]


@pytest.mark.parametrize(("name", "params", "message"), BAD_PARAMS)
def test_bad_params_raise(name: str, params: dict, message: str) -> None:
    with pytest.raises(AgentError, match=message):
        make_agent(name, spec_of(small_env()), **params)


# ---------------------------------------------------------------------------- statistics


def engagement_and_regret(name: str, seeds: range, **params) -> np.ndarray:
    """(seeds, 2): mean reward per user-step and mean regret against the myopic oracle,
    64 users x 150 steps on the default preset."""
    out = []
    for seed in seeds:
        env = RecVectorEnv(64, preset="default")
        agent = make_agent(name, spec_of(env), **params)
        rec = rollout(agent, env, 150, np.random.default_rng(1000 + seed), seed=seed).records
        out.append((rec["reward"].mean(), (rec["oracle_expected_reward"] - rec["expected_reward"]).mean()))
    return np.array(out)


@pytest.mark.slow
def test_linucb_and_lints_beat_random_and_popularity() -> None:
    seeds = range(3)
    baselines = {name: engagement_and_regret(name, seeds) for name in ("random", "popularity")}
    for learner in ("linucb", "lints"):
        result = engagement_and_regret(learner, seeds)
        for name, base in baselines.items():
            # paired by seed (common random numbers): better in every seed, and on average
            assert (result[:, 0] > base[:, 0]).all(), (learner, name, result[:, 0], base[:, 0])
            assert (result[:, 1] < base[:, 1]).all(), (learner, name, result[:, 1], base[:, 1])
            assert result[:, 0].mean() > base[:, 0].mean() + 0.2


@pytest.mark.slow
def test_privacy_costs_engagement() -> None:
    seeds = range(3)
    tiny = engagement_and_regret("dp_linucb", seeds, epsilon=0.1)[:, 0]
    loose = engagement_and_regret("dp_linucb", seeds, epsilon=100.0)[:, 0]
    public = engagement_and_regret("linucb", seeds)[:, 0]
    assert tiny.mean() < loose.mean() < public.mean(), (tiny, loose, public)
    assert (tiny < public).all()
