"""Metrics: hand-computed values for every pure function, edge cases, bad input, and
integration on real rollouts (random vs oracle)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents import make_agent
from experiments import metrics as m
from experiments.rollout import STEP_SUMMARIES, Trajectory, rollout, slate_diversity
from simenv import RecVectorEnv, WorldSpec, topic_interest

NAN = float("nan")


# ---------------------------------------------------------------------------- engagement
def test_reward_ctr_watch_time_regret_by_hand() -> None:
    assert m.reward_per_user_step(np.array([[1.0, 2.0], [3.0, 0.0]])) == 1.5
    assert m.click_through_rate(np.array([[0, -1], [2, -1]])) == 0.5
    assert m.total_watch_time(np.array([[1.5, 0.0], [2.0, 0.5]], dtype=np.float32)) == 4.0
    assert m.regret(np.array([[1.0, 0.5]]), np.array([[1.5, 0.5]])) == 0.25


def test_session_lengths_by_hand() -> None:
    # column 0 ends at steps 1 and 4 (lengths 2 and 3); column 1 ends at step 2 (length 3)
    ended = np.zeros((5, 2), dtype=bool)
    ended[[1, 4], 0] = True
    ended[2, 1] = True
    end_step, length = m.session_lengths(ended)
    np.testing.assert_array_equal(end_step, [1, 4, 2])
    np.testing.assert_array_equal(length, [2, 3, 3])
    empty_end, empty_length = m.session_lengths(np.zeros((3, 2), dtype=bool))
    assert empty_end.size == 0 and empty_length.size == 0


# ---------------------------------------------------------------------------- exploration
def test_exploration_rate_and_entropy_estimators_by_hand() -> None:
    assert m.exploration_rate(np.array([[True, False], [False, False]])) == 0.25
    props = np.array([[0.5, 0.5], [0.25, 1.0]])
    assert m.policy_entropy(props) == pytest.approx((1.0 + 2.0) / 2)  # -log2 0.5, -log2 0.25
    assert m.slate_entropy(props) == pytest.approx((2.0 + 2.0) / 2)
    assert m.policy_entropy(np.ones((3, 4, 2))) == 0.0


# ---------------------------------------------------------------------------- diversity
def test_intra_list_diversity_by_hand_and_identity_in_rollout() -> None:
    # pairs of [e1, e2, e1]: cos 0, 1, 0 -> mean cos 1/3 -> ILD 2/3
    slate = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    assert m.intra_list_diversity(slate) == pytest.approx(2 / 3)
    assert m.intra_list_diversity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(2.0)
    embeddings = np.random.default_rng(0).standard_normal((4, 3, 5, 8))
    np.testing.assert_allclose(slate_diversity(embeddings), m.intra_list_diversity(embeddings), atol=1e-6)
    with pytest.raises(ValueError, match="k >= 2"):
        m.intra_list_diversity(np.ones((3, 1, 4)))


def test_coverage_and_gini_by_hand() -> None:
    assert m.catalog_coverage(np.array([[3, 3], [5, 7]]), 10) == pytest.approx(0.3)
    np.testing.assert_array_equal(m.exposure_counts(np.array([9, 5, 5, 5])), [3, 1])
    assert m.gini(np.array([4]), 4) == pytest.approx(0.75)  # one item of 4 gets everything: (n-1)/n
    assert m.gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    # [1, 3]: 2 (1*1 + 2*3) / (2 * 4) - 3/2 = 0.25 (= mean |xi - xj| / (2 mean))
    assert m.gini(np.array([3, 1])) == pytest.approx(0.25)
    assert m.exposure_gini(np.array([5, 5, 5, 9]), 2) == pytest.approx(0.25)
    assert math.isnan(m.gini(np.array([], dtype=np.int64), 5))


def test_topic_entropy_by_hand() -> None:
    assert m.topic_entropy(np.array([0, 0, 1, 1]), 3) == pytest.approx(1.0)
    assert m.topic_entropy(np.array([2, 2]), 3) == 0.0
    assert m.topic_entropy(np.array([0, 1, 2, 3]), 4) == pytest.approx(2.0)
    assert math.isnan(m.topic_entropy(np.array([], dtype=np.int64), 3))


def test_slate_topic_entropy_and_coverage_by_hand() -> None:
    slates = np.array([[0, 0, 0], [0, 1, 2], [3, 1, 3]])
    # one topic -> 0; three distinct -> log2 3; shares [2/3, 1/3] -> log2 3 - 2/3
    np.testing.assert_allclose(
        m.slate_topic_entropy(slates, 4), [0.0, math.log2(3), math.log2(3) - 2 / 3], rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(m.slate_topic_coverage(slates, 4), [1 / 3, 1.0, 2 / 3])  # / min(k=3, K=4)
    np.testing.assert_allclose(m.slate_topic_coverage(np.array([[0, 0, 0], [0, 1, 1]]), 2), [0.5, 1.0])  # / K=2
    assert m.slate_topic_entropy(slates.reshape(1, 3, 3), 4).shape == (1, 3)  # leading axes kept


def test_user_topic_entropy_by_hand() -> None:
    # user 5: topics 0, 0, 1, 1 -> 1 bit; user 7: 2 -> 0; user 9: 0, 1, 2, 3 -> 2 bits; mean 1
    users = np.array([5, 7, 5, 9, 5, 9, 9, 5, 9])
    topics = np.array([0, 2, 0, 0, 1, 1, 2, 1, 3])
    assert m.user_topic_entropy(users, topics, 4) == pytest.approx(1.0)
    # pooled over the population the same events have a different (higher) entropy
    assert m.topic_entropy(topics, 4) > 1.0
    # every user narrow but users differ: pooled entropy 1 bit, per-user 0
    assert m.user_topic_entropy(np.array([1, 1, 2, 2]), np.array([0, 0, 1, 1]), 2) == 0.0
    assert m.topic_entropy(np.array([0, 0, 1, 1]), 2) == pytest.approx(1.0)
    assert math.isnan(m.user_topic_entropy(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 4))


def test_novelty_by_hand() -> None:
    # step 0: items 7 and 8, 1 of 2 consumptions each -> 1 bit; step 1: item 7 again,
    # 2 of 3 so far -> log2(3/2)
    novelty = m.novelty_per_event(np.array([0, 0, 1]), np.array([7, 8, 7]))
    np.testing.assert_allclose(novelty, [1.0, 1.0, math.log2(1.5)])
    # events out of item order, a repeat within a step: after step 0 item 5 has 2 of 3
    # consumptions, item 3 has 1 of 3; at step 2 item 3 has 2 of 4
    novelty = m.novelty_per_event(np.array([0, 0, 0, 2]), np.array([5, 3, 5, 3]))
    np.testing.assert_allclose(novelty, [math.log2(1.5), math.log2(3.0), math.log2(1.5), 1.0])
    assert m.novelty_per_event(np.array([], dtype=np.int64), np.array([], dtype=np.int64)).size == 0


# ---------------------------------------------------------------------------- filter bubble
def test_interest_entropy_by_hand() -> None:
    centroids = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # theta = e1, beta = ln 3: p = softmax([ln 3, 0]) = [3/4, 1/4]
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    interest = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])  # (1, 2, d); e3 is orthogonal -> uniform
    np.testing.assert_allclose(m.interest_entropy(interest, centroids, math.log(3.0)), [[h, 1.0]])


def test_topic_log_interest_matches_simenv() -> None:
    rng = np.random.default_rng(1)
    interest = rng.standard_normal((50, 6))
    interest /= np.linalg.norm(interest, axis=1, keepdims=True)
    centroids = rng.standard_normal((4, 6))
    np.testing.assert_allclose(
        np.exp(m.topic_log_interest(interest, centroids, 4.0)), topic_interest(interest, centroids, 4.0), atol=1e-12
    )


def test_preference_shift_and_cosine_homogenization_by_hand() -> None:
    assert m.preference_shift(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[0] == pytest.approx(math.sqrt(2))
    # [e1, e2, e1] (scaled): pairwise cos 0, 1, 0 -> 1/3
    assert m.mean_pairwise_cosine(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])) == pytest.approx(1 / 3)
    v = np.random.default_rng(2).standard_normal((3, 7, 5))
    u = v / np.linalg.norm(v, axis=-1, keepdims=True)
    cos = np.einsum("tid,tjd->tij", u, u)
    brute = (cos.sum(axis=(1, 2)) - 7) / (7 * 6)
    np.testing.assert_allclose(m.mean_pairwise_cosine(v), brute, atol=1e-6)
    assert np.isnan(m.mean_pairwise_cosine(np.ones((1, 4))))  # a single user


def test_jaccard_overlap_by_hand() -> None:
    # user 0 {1, 2} (2 consumed twice), user 1 {2, 3}, user 2 {4}: J = 1/3, 0, 0 -> 1/9
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([1, 2, 2, 2, 3, 4])
    assert m.jaccard_overlap(users, items) == pytest.approx(1 / 9)
    assert math.isnan(m.jaccard_overlap(np.array([4, 4]), np.array([1, 2])))  # one user
    # sampled pairs (more pairs than n_pairs): identical sets -> 1, disjoint sets -> 0
    many = np.repeat(np.arange(50), 2)
    assert m.jaccard_overlap(many, np.tile([1, 2], 50), n_pairs=10) == 1.0
    assert m.jaccard_overlap(many, np.arange(100), n_pairs=10) == 0.0


def test_calibration_kl_by_hand() -> None:
    np.testing.assert_allclose(m.topic_distribution(np.array([[0, 0, 1]]), 3), [[2 / 3, 1 / 3, 0.0]])
    p = np.array([[0.5, 0.5]])
    q = np.array([[1.0, 0.0]])
    # q~ = 0.99 q + 0.01 p = [0.995, 0.005]
    expected = 0.5 * math.log2(0.5 / 0.995) + 0.5 * math.log2(0.5 / 0.005)
    assert m.calibration_kl(p, q)[0] == pytest.approx(expected)
    assert m.calibration_kl(p, p)[0] == pytest.approx(0.0)
    assert m.calibration_kl(p.T, q.T, axis=0)[0] == pytest.approx(expected)
    assert m.calibration_kl(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[0] == pytest.approx(math.log2(100))


# ---------------------------------------------------------------------------- retention
def test_retention_churn_and_lifetime_by_hand() -> None:
    user_id = np.array([[10, 11], [10, 12], [10, 12]])
    churned = np.array([[False, True], [False, False], [True, False]])
    step = m.first_churn_step(user_id, churned, np.array([10, 11]))
    np.testing.assert_array_equal(step, [2, 0])
    assert m.retention(step, 1) == 0.5  # user 11 left at step 0
    assert m.retention(step, 3) == 0.0  # user 10 left at step 2
    no_churn = m.first_churn_step(user_id, np.zeros_like(churned), np.array([10, 11]))
    np.testing.assert_array_equal(no_churn, [3, 3])
    assert m.churn_rate(churned) == pytest.approx(2 / 6)
    np.testing.assert_array_equal(m.users_seen(user_id), [2, 3, 3])
    assert m.lifetime_engagement(10.0, 4) == 2.5
    assert math.isnan(m.lifetime_engagement(0.0, 0))


def test_cohort_survival_and_engagement_by_hand() -> None:
    # 4 users (ids 0-3) over 4 steps; user 2 churns at step 2 and user 4 takes its row
    user_id = np.array([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 4, 3]])
    churned = np.zeros((4, 4), dtype=bool)
    churned[2, 2] = True
    reward = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 1.0, 1.0], [1.0, 1.0, 3.0, 1.0], [1.0, 1.0, 5.0, 1.0]])
    cohort = m.starting_cohort(user_id)
    np.testing.assert_array_equal(cohort, [0, 1, 2, 3])
    step = m.first_churn_step(user_id, churned, cohort)
    np.testing.assert_array_equal(step, [4, 4, 2, 4])
    survival = m.cohort_survival(step, 4)
    np.testing.assert_allclose(survival, [1.0, 1.0, 0.75, 0.75])
    assert [m.retention(step, end) for end in range(1, 5)] == survival.tolist()
    # the newcomer's 5 does not count; the churned user counts 0 at step 3
    step_reward = m.cohort_reward(reward, user_id, cohort)
    np.testing.assert_allclose(step_reward, [4.0, 5.0, 6.0, 3.0])
    assert m.cohort_engagement(step_reward, 4) == pytest.approx(18 / 16)
    assert m.cohort_engagement(step_reward[2:], 4) == pytest.approx(9 / 8)  # a window of steps 2-3
    assert math.isnan(m.cohort_engagement(np.zeros(0), 4))
    assert np.isnan(m.cohort_survival(np.zeros(0, dtype=np.int64), 3)).all()


# ---------------------------------------------------------------------------- prediction, latency
def test_prediction_errors_by_hand() -> None:
    predicted = np.array([[1.0, NAN], [3.0, NAN]])
    truth = np.array([[2.0, 5.0], [3.0, 0.0]])
    rmse, mae = m.prediction_errors(predicted, truth)  # errors -1, 0
    assert rmse == pytest.approx(math.sqrt(0.5))
    assert mae == pytest.approx(0.5)
    assert all(math.isnan(x) for x in m.prediction_errors(np.full((2, 2), NAN), truth))


def test_latency_percentiles_by_hand() -> None:
    lat = m.latency_percentiles(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), batch_size=10)
    # p50 = 3 s; p95 at rank 0.95 * 4 = 3.8 -> 4 + 0.8 = 4.8 s (linear interpolation)
    assert lat["batch_p50"] == pytest.approx(3000.0)
    assert lat["batch_p95"] == pytest.approx(4800.0)
    assert lat["decision_p50"] == pytest.approx(300.0)
    assert lat["decision_p95"] == pytest.approx(480.0)


# ---------------------------------------------------------------------------- serendipity
def test_serendipity_by_hand() -> None:
    rank = np.array([0, 3, 5, 4])  # unexpected: ranks >= 3
    share = np.array([0.9, 0.6, 0.4, 0.5])  # liked: >= 0.5
    assert m.serendipity(rank, share) == 0.5  # events 1 and 3
    assert m.serendipity(rank, share, top_topics=1) == 0.5
    assert math.isnan(m.serendipity(np.array([], dtype=np.int16), np.array([])))


# ---------------------------------------------------------------------------- window_metrics on hand-built records
def _tiny_trajectory(t: int = 4, b: int = 2, clicks: bool = True) -> Trajectory:
    """T steps of B users (ids 0..B-1 throughout), k = 2, K = 2 topics, d = 2."""
    k = 2
    click = np.tile(np.array([0, -1] * b)[:b], (t, 1)) if clicks else np.full((t, b), -1)
    items = np.broadcast_to(np.arange(b * k).reshape(1, b, k), (t, b, k)).copy()
    interest = np.broadcast_to(np.eye(2)[np.arange(b) % 2], (t, b, 2)).astype(np.float32).copy()
    clicked = click >= 0
    records = {
        "slate": np.broadcast_to(np.arange(k), (t, b, k)).copy(),
        "propensity": np.ones((t, b, k)),
        "explored": np.zeros((t, b), dtype=bool),
        "predicted": np.full((t, b, k), NAN),
        "reward": np.where(clicked, 2.0, 0.0).astype(np.float32),
        "terminated": np.zeros((t, b), dtype=bool),
        "truncated": np.zeros((t, b), dtype=bool),
        "interest": interest,
        "user_features": np.zeros((t, b, 3), dtype=np.float32),
        "user_id": np.broadcast_to(np.arange(b), (t, b)).copy(),
        "slate_items": items,
        "slate_topics": items % 2,
        "choice_probs": np.full((t, b, k + 1), 1 / 3),
        "click": click,
        "engagement": np.where(clicked, 2.0, 0.0).astype(np.float32),
        "expected_reward": np.ones((t, b)),
        "oracle_expected_reward": np.ones((t, b)),
        "expected_item_reward": np.ones((t, b, k)),
        "consumed_topic": np.where(clicked, items[:, :, 0] % 2, -1),
        "satisfaction": np.full((t, b), 0.5, dtype=np.float32),
        "churned": np.zeros((t, b), dtype=bool),
        "ild": np.ones((t, b), dtype=np.float32),
        "engaged_share": np.where(clicked, 0.5, 0.0).astype(np.float32),
        "consumed_topic_rank": np.where(clicked, 3, -1).astype(np.int16),
        "preference_shift": np.zeros((t, b), dtype=np.float32),
    }
    return Trajectory(
        records=records,
        latency=np.full(t, 1e-3),
        initial_interest=interest[0],
        centroids=np.eye(2),
        catalog_size=10,
        arrivals=np.zeros(t, dtype=np.int64),
    )


def test_window_metrics_on_hand_built_records() -> None:
    frame = m.window_metrics(_tiny_trajectory(t=4, b=2), window=3, catalog_size=10, choice_beta=1.0)
    assert list(frame.columns) == ["window", "step_start", "step_end", *m.METRICS]
    assert frame["window"].tolist() == [0, 1]
    assert frame["step_start"].tolist() == [0, 3]
    assert frame["step_end"].tolist() == [3, 4]
    first = frame.iloc[0]
    assert first["user_steps"] == 6
    assert first["ctr"] == 0.5  # user 0 clicks slot 0 (item 0, topic 0) every step, user 1 never
    assert first["reward_per_user_step"] == 1.0
    assert first["watch_time_total"] == 6.0
    assert first["regret"] == 0.0
    assert first["catalog_coverage"] == pytest.approx(4 / 10)
    assert first["exposure_gini"] == pytest.approx(2 * (7 + 8 + 9 + 10) * 3 / (10 * 12) - 11 / 10)
    assert first["topic_entropy"] == 0.0
    assert first["novelty"] == 0.0  # only item 0 is ever consumed
    assert first["serendipity"] == 1.0  # rank 3 and share 0.5: unexpected and liked
    assert first["homogenization_cosine"] == pytest.approx(0.0)  # e1 vs e2
    assert math.isnan(first["homogenization_jaccard"])  # only one user consumed anything
    assert first["retention"] == 1.0
    assert first["lifetime_engagement"] == pytest.approx(6.0 / 2)
    assert first["cohort_engagement"] == pytest.approx(6.0 / (2 * 3))
    assert first["slate_topic_entropy"] == pytest.approx(1.0)  # topics [0, 1] in every slate
    assert first["slate_topic_coverage"] == 1.0
    assert first["user_topic_entropy"] == 0.0  # user 0 only ever consumes topic 0
    assert first["latency_decision_p50_ms"] == pytest.approx(0.5)
    assert first["interest_entropy_decline"] == pytest.approx(0.0)
    assert math.isnan(first["session_length"])  # no session ended
    assert math.isnan(first["prediction_rmse"])


def test_window_metrics_without_clicks() -> None:
    row = m.window_metrics(_tiny_trajectory(t=3, clicks=False), 3, 10, 1.0).iloc[0]
    assert row["ctr"] == 0.0
    assert row["reward_per_user_step"] == 0.0
    for name in ("topic_entropy", "user_topic_entropy", "novelty", "serendipity", "homogenization_jaccard"):
        assert math.isnan(row[name]), name
    assert row["catalog_coverage"] == pytest.approx(4 / 10)  # shown, though not consumed


def test_window_metrics_single_user() -> None:
    frame = m.window_metrics(_tiny_trajectory(t=4, b=1), 2, 10, 1.0)
    assert frame["homogenization_cosine"].isna().all()
    assert frame["homogenization_jaccard"].isna().all()
    assert (frame["ctr"] == 1.0).all()
    assert (frame["catalog_coverage"] == 0.2).all()


def test_window_metrics_follow_the_starting_cohort() -> None:
    # user 1 churns at step 1; user 2 takes its row from step 2 on. User 0 earns 2 a step
    # (clicks), row 1 earns 1 a step throughout. Row 1 is served a one-topic slate.
    traj = _tiny_trajectory(t=4, b=2)
    r = traj.records
    r["churned"][1, 1] = True
    r["user_id"][2:, 1] = 2
    r["reward"][:, 1] = 1.0
    r["slate_topics"][:, 1] = 1
    frame = m.window_metrics(traj, 2, 10, 1.0)
    assert frame["cohort_engagement"].tolist() == pytest.approx([(3 + 3) / 4, (2 + 2) / 4])
    assert frame["retention"].tolist() == [0.5, 0.5]
    np.testing.assert_allclose(m.survival_curve(traj), [1.0, 0.5, 0.5, 0.5])
    assert frame["slate_topic_entropy"].tolist() == pytest.approx([0.5, 0.5])  # (1 + 0) / 2
    assert frame["slate_topic_coverage"].tolist() == pytest.approx([0.75, 0.75])  # (1 + 1/2) / 2
    summary = m.run_summary(traj, 10, 1.0)
    assert summary["cohort_engagement"] == pytest.approx(10 / 8)
    assert summary["reward_per_user_step"] == pytest.approx(12 / 8)  # counts the newcomer


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window"),
        ({"window": True}, "window"),
        ({"window": 2.5}, "window"),
        ({"catalog_size": 0}, "catalog_size"),
        ({"choice_beta": 0.0}, "choice_beta"),
        ({"choice_beta": float("nan")}, "choice_beta"),
        ({"choice_beta": "4"}, "choice_beta"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs: dict, message: str) -> None:
    args = {"window": 2, "catalog_size": 10, "choice_beta": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        m.window_metrics(_tiny_trajectory(), **args)


def test_missing_records_are_named() -> None:
    traj = _tiny_trajectory()
    del traj.records["ild"]
    with pytest.raises(KeyError, match="ild"):
        m.run_summary(traj, 10, 1.0)


# ---------------------------------------------------------------------------- real rollouts
STEPS = 30
OVERRIDES = {"catalog": {"n_items": 300}, "users": {"budget_mean": 8.0, "budget_std": 2.0}}


def _run(
    agent_name: str, seed: int = 0, users: int = 16, preset: str = "default", dynamics: dict | None = None
) -> tuple[RecVectorEnv, Trajectory]:
    env = RecVectorEnv(users, preset=preset, overrides={**OVERRIDES, "dynamics": dynamics or {}})
    agent = make_agent(agent_name, WorldSpec.from_config(env.config))
    traj = rollout(agent, env, STEPS, np.random.default_rng(seed), seed=seed)
    return env, traj


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[RecVectorEnv, Trajectory]]:
    return {name: _run(name) for name in ("random", "oracle")}


def _tables(env: RecVectorEnv, traj: Trajectory, window: int = 10):
    return m.metrics_tables(traj, window, env.config.catalog.n_items, env.config.choice.beta)


def test_oracle_has_zero_regret_and_random_explores(runs) -> None:
    oracle_windows, oracle = _tables(*runs["oracle"])
    random_windows, random = _tables(*runs["random"])
    assert (oracle_windows["regret"] == 0.0).all()
    assert (oracle_windows["exploration_rate"] == 0.0).all()
    assert (oracle_windows["policy_entropy"] == 0.0).all()
    assert (random_windows["exploration_rate"] == 1.0).all()
    c = runs["random"][0].config.n_candidates
    np.testing.assert_allclose(random_windows["policy_entropy"], math.log2(c))
    assert random["regret"] > 0.1
    assert oracle["reward_per_user_step"] > random["reward_per_user_step"]
    assert oracle["ctr"] > random["ctr"]


def test_tables_shape_and_summary_keys(runs) -> None:
    windows, summary = _tables(*runs["random"], window=7)
    assert len(windows) == 5  # 30 steps: 7, 7, 7, 7, 2
    assert windows["step_end"].iloc[-1] == STEPS
    assert set(summary) == set(m.METRICS) | {f"{name}_final" for name in m.FINAL_STATE_METRICS}
    env, traj = runs["random"]
    assert summary == pytest.approx(
        m.run_summary(traj, env.config.catalog.n_items, env.config.choice.beta), nan_ok=True
    )
    assert summary["user_steps"] == STEPS * 16
    assert windows["user_steps"].sum() == STEPS * 16
    # values that must lie in their ranges
    for name in ("ctr", "catalog_coverage", "exposure_gini", "retention", "serendipity", "homogenization_jaccard"):
        assert ((windows[name] >= 0) & (windows[name] <= 1)).all(), name
    assert (windows["calibration_kl"] >= 0).all()
    assert (windows["session_length"].dropna() >= 1).all()


def test_recorded_step_summaries_match_the_world(runs) -> None:
    env, traj = runs["random"]
    r = traj.records
    assert set(STEP_SUMMARIES) <= set(r)
    clicked = r["click"] >= 0
    # engaged share = engagement / item length (static catalog: item id = slot)
    items = np.take_along_axis(r["slate_items"], np.maximum(r["click"], 0)[..., None], axis=2)[..., 0]
    length = env.sim.catalog.length[items]
    np.testing.assert_allclose(r["engaged_share"][clicked] * length[clicked], r["engagement"][clicked], rtol=1e-5)
    assert (r["engaged_share"][~clicked] == 0).all()
    # first step: the first users are fresh arrivals, so theta_0 = initial_interest
    np.testing.assert_allclose(
        r["preference_shift"][0], m.preference_shift(r["interest"][0], traj.initial_interest), atol=1e-6
    )
    # consumed topic rank against the interests before the first step, by brute force
    affinity = traj.initial_interest @ traj.centroids.T
    order = np.argsort(-affinity, axis=1)
    topic = r["consumed_topic"][0]
    rank = np.argmax(order == topic[:, None], axis=1)
    np.testing.assert_array_equal(r["consumed_topic_rank"][0], np.where(topic >= 0, rank, -1))
    # ILD of the served slates from the catalog embeddings
    emb = env.sim.catalog.embedding[r["slate_items"][0]]
    np.testing.assert_allclose(r["ild"][0], m.intra_list_diversity(emb), atol=1e-5)


def test_same_seed_same_metrics_except_latency() -> None:
    (env, a), (_, b) = _run("popularity", seed=3, users=8), _run("popularity", seed=3, users=8)
    latency = [name for name in m.METRICS if name.startswith("latency")]
    wa = _tables(env, a)[0].drop(columns=latency)
    wb = _tables(env, b)[0].drop(columns=latency)
    assert wa.equals(wb)


def test_topic_and_cohort_metrics_on_a_churning_rollout() -> None:
    # a harsh hazard, so that 30 steps see churn
    env, traj = _run("random", users=16, preset="churn_prone", dynamics={"churn_threshold": 0.9, "churn_hazard": 0.2})
    r = traj.records
    assert r["churned"].any()  # the cohort metrics have something to measure
    windows, summary = _tables(env, traj)
    k, n_topics = env.config.slate_size, env.config.catalog.n_topics
    names = ("slate_topic_entropy", "slate_topic_coverage", "user_topic_entropy", "cohort_engagement")
    for name in names:
        assert np.isfinite(windows[name]).all() and math.isfinite(summary[name]), name
    assert windows["slate_topic_entropy"].between(0, math.log2(min(k, n_topics))).all()
    assert windows["slate_topic_coverage"].between(0, 1).all()
    assert windows["user_topic_entropy"].between(0, math.log2(n_topics)).all()
    assert (windows["cohort_engagement"] >= 0).all()
    # survival: non-increasing shares that match retention at the window ends
    survival = m.survival_curve(traj)
    assert survival.shape == (STEPS,)
    assert ((survival >= 0) & (survival <= 1)).all() and (np.diff(survival) <= 0).all()
    np.testing.assert_allclose(survival[windows["step_end"] - 1], windows["retention"])
    # cohort engagement by brute force: the first users' rewards, over all of them and T
    cohort = set(r["user_id"][0].tolist())
    mine = np.array([[u in cohort for u in row] for row in r["user_id"].tolist()])
    assert summary["cohort_engagement"] == pytest.approx(r["reward"][mine].sum() / (16 * STEPS), rel=1e-6)
    assert summary["cohort_engagement"] < summary["reward_per_user_step"]  # churned users count 0
    # slate topic entropy by brute force on the first step
    counts = [np.unique(row, return_counts=True)[1] for row in r["slate_topics"][0]]
    first = [-sum(c / k * math.log2(c / k) for c in row) for row in counts]
    np.testing.assert_allclose(m.slate_topic_entropy(r["slate_topics"][0], n_topics), first, rtol=1e-5)


def test_coverage_counts_arriving_items() -> None:
    env, traj = _run("random", users=8, preset="cold_start")
    assert traj.arrivals.sum() == env.sim.catalog.next_id - env.config.catalog.n_items > 0
    windows, _ = _tables(env, traj)
    assert (windows["catalog_coverage"] <= 1).all()
    assert windows["retention"].is_monotonic_decreasing
