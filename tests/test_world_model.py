"""The rebuilt world's mechanisms: catalog geometry, appeal against value, users as topic
mixtures, item arrivals, relevance retrieval, and the true oracle's optimality.

Each mechanism is checked on its own numbers (hand computations or exact properties), and
the oracle against enumeration and against every agent on every preset.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from agents import agent_names, make_agent
from experiments.rollout import rollout
from simenv import PRESETS, RecVectorEnv, WorldSpec
from simenv.catalog import Catalog, appeal_and_value, embed_around, retrieve_relevant, topic_centroids
from simenv.choice import optimal_slate, slate_expected_reward
from simenv.config import CatalogConfig, RetrievalConfig, UserConfig
from simenv.population import initial_interests

# ---------------------------------------------------------------------- catalog geometry


@pytest.mark.parametrize(("n_topics", "dim"), [(10, 16), (16, 16), (40, 16), (2, 5)])
def test_topic_centroids_are_unit_and_centred(n_topics: int, dim: int) -> None:
    mu = topic_centroids(n_topics, dim, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(mu, axis=1), 1.0, rtol=1e-6)
    # exactly centred for a simplex; about centred for K > d (renormalising moves the mean)
    assert np.linalg.norm(mu.mean(axis=0)) < (1e-6 if n_topics <= dim else 0.1)
    if n_topics <= dim:  # a regular simplex: every pair at cosine -1 / (K - 1)
        cos = mu @ mu.T
        off = cos[~np.eye(n_topics, dtype=bool)]
        np.testing.assert_allclose(off, -1.0 / (n_topics - 1), atol=1e-6)


def test_items_sit_at_the_set_cosine_and_the_catalog_is_centred() -> None:
    for kappa in (0.0, 0.5, 0.8, 1.0):
        cat = Catalog.generate(CatalogConfig(n_items=5000, topic_concentration=kappa), np.random.default_rng(1))
        np.testing.assert_allclose(np.linalg.norm(cat.embedding, axis=1), 1.0, rtol=1e-5)
        cosine = np.sum(cat.embedding * cat.centroids[cat.topic], axis=1)
        np.testing.assert_allclose(cosine, kappa, atol=1e-5)
        # Centred: balanced topics and off-centroid parts centred per topic.
        assert np.linalg.norm(cat.embedding.mean(axis=0)) < 0.01, kappa
        np.testing.assert_array_equal(np.bincount(cat.topic), 500)  # 5000 items, 10 topics


def test_embed_around_hand_computed() -> None:
    mu = np.array([[1.0, 0.0, 0.0]])
    normal = np.array([[5.0, 0.0, 2.0]])  # orthogonal part (0, 0, 2) -> (0, 0, 1)
    np.testing.assert_allclose(embed_around(mu, 0.6, normal), [[0.6, 0.0, 0.8]])


def test_topics_are_distinct_by_default() -> None:
    """Items of one topic are far closer to each other than to other topics' items."""
    cat = Catalog.generate(CatalogConfig(), np.random.default_rng(2))
    e, t = cat.embedding[:600].astype(np.float64), cat.topic[:600]
    cos = e @ e.T
    same = t[:, None] == t[None, :]
    np.fill_diagonal(same, False)
    other = t[:, None] != t[None, :]
    assert cos[same].mean() > 0.6 > 0.0 > cos[other].mean() - 0.05


# ---------------------------------------------------------------------- appeal and value


def test_appeal_and_value_follow_their_correlation_and_clickbait_shift() -> None:
    rng = np.random.default_rng(3)
    for rho in (-0.5, 0.0, 0.8):
        appeal, value = appeal_and_value(CatalogConfig(appeal_value_correlation=rho), 200_000, rng)
        assert np.corrcoef(appeal, value)[0, 1] == pytest.approx(rho, abs=0.01)
        assert appeal.std() == pytest.approx(0.5, rel=0.01) and value.std() == pytest.approx(0.5, rel=0.01)
    cfg = CatalogConfig(appeal_value_correlation=0.0, clickbait_share=0.25, clickbait_gap=2.0)
    appeal, value = appeal_and_value(cfg, 200_000, rng)
    # a quarter of the items: appeal +2, value -2; means shift by +-0.5
    assert appeal.mean() == pytest.approx(0.5, abs=0.01) and value.mean() == pytest.approx(-0.5, abs=0.01)
    inside = stats.norm.cdf(1.0 / 0.5)  # a clickbait item's appeal > 1 (and, alike, its value < -1)
    assert ((appeal > 1.0) & (value < -1.0)).mean() == pytest.approx(0.25 * inside**2, abs=0.01)


def test_value_is_hidden_and_appeal_is_observed() -> None:
    env = RecVectorEnv(32, overrides={"catalog": {"clickbait_share": 0.3}})
    obs, _ = env.reset(seed=0)
    cat, d = env.sim.catalog, env.config.catalog.dim
    slot_of = {int(i): s for s, i in enumerate(cat.item_id)}
    slots = np.vectorize(slot_of.get)(obs["item_ids"])
    np.testing.assert_array_equal(obs["candidates"][:, :, d], cat.appeal[slots])
    assert obs["candidates"].shape[2] == d + 3  # embedding, appeal, length, fresh: no value column


def test_clickbait_tempts_and_disappoints() -> None:
    """In the clickbait world a clickbait item is clicked more often, and a click on it
    lowers the user's lasting satisfaction where a click on another item raises it."""
    env = RecVectorEnv(4096, preset="clickbait", overrides={"dynamics": {"amplification": 0.0}})
    env.reset(seed=1)
    cat = env.sim.catalog
    bait = cat.appeal - cat.value > env.config.catalog.clickbait_gap  # almost only clickbait items
    rng = np.random.default_rng(0)
    c, k = env.config.n_candidates, env.config.slate_size
    clicks, change = {True: [], False: []}, {True: [], False: []}
    for _ in range(20):
        before = env.sim.population.satisfaction[env.sim.session_user].copy()
        slate = rng.permuted(np.tile(np.arange(c), (4096, 1)), axis=1)[:, :k]
        _, _, _, _, info = env.step(slate)
        slot_of = np.full(cat.next_id, -1)
        slot_of[cat.item_id] = np.arange(cat.n_items)
        is_bait = bait[slot_of[info["slate_items"]]]
        shown_click = info["click"][:, None] == np.arange(k)
        for flag in (True, False):
            clicks[flag].append(shown_click[is_bait == flag].mean())
            hit = (shown_click & (is_bait == flag)).any(axis=1)
            change[flag].append((info["satisfaction"][hit] - before[hit]).mean())
    assert np.mean(clicks[True]) > 1.5 * np.mean(clicks[False])
    assert np.mean(change[True]) < 0 < np.mean(change[False])


# ---------------------------------------------------------------------- users


def test_users_are_topic_mixtures_and_the_population_starts_diverse() -> None:
    rng = np.random.default_rng(4)
    mu = topic_centroids(10, 16, rng)
    theta = initial_interests(UserConfig(), mu, 5000, rng)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=1), 1.0, rtol=1e-9)
    assert np.linalg.norm(theta.mean(axis=0)) < 0.05  # no common direction
    favourite = np.argmax(theta @ mu.T, axis=1)
    shares = np.bincount(favourite, minlength=10) / 5000
    assert shares.min() > 0.07  # every topic has its fans
    # concentration: small alpha -> one dominant topic; large alpha -> mixed users
    peaked = initial_interests(UserConfig(interest_concentration=0.05, interest_noise=0.0), mu, 2000, rng)
    mixed = initial_interests(UserConfig(interest_concentration=50.0, interest_noise=0.0), mu, 2000, rng)
    peaked_top, mixed_top = np.max(peaked @ mu.T, axis=1).mean(), np.max(mixed @ mu.T, axis=1).mean()
    assert peaked_top > 0.9 and mixed_top < peaked_top - 0.25, (peaked_top, mixed_top)


# ---------------------------------------------------------------------- arrivals


@pytest.mark.parametrize(("pool", "arrivals"), [(100, 7), (5, 7), (30, 0)])
def test_arrivals_flag_exactly_the_newest_items_as_fresh(pool: int, arrivals: int) -> None:
    cfg = CatalogConfig(n_items=200, fresh_pool=pool, arrival_rate=3.0)
    rng = np.random.default_rng(5)
    cat = Catalog.generate(cfg, rng)
    for step in range(1, 40):
        cat.arrive(arrivals + step % 3, step, rng)
        newest = cat.age_order_slots(np.arange(200 - pool, 200))
        expected = np.zeros(200)
        expected[newest] = 1.0
        np.testing.assert_array_equal(cat.features[:, -1], expected)


# ---------------------------------------------------------------------- relevance retrieval


def test_relevance_retrieval_returns_the_best_of_the_pool_then_explores() -> None:
    cat = Catalog.generate(CatalogConfig(n_items=500), np.random.default_rng(6))
    theta = cat.centroids[[0, 3]].astype(np.float64)
    cfg = RetrievalConfig(method="relevance", pool=100, interest_noise=0.0, explore_share=0.25)
    slots = retrieve_relevant(cat, theta, 20, 0, cfg, np.random.default_rng(7))
    assert slots.shape == (2, 20)
    assert all(len(set(row)) == 20 for row in slots.tolist())
    score = np.einsum("bcd,bd->bc", cat.embedding[slots].astype(np.float64), theta)
    top, explore = score[:, :15], score[:, 15:]
    assert (np.diff(top, axis=1) <= 1e-6).all()  # best first
    assert (explore.max(axis=1) <= top.min(axis=1) + 1e-6).all()  # the explore share comes from the rest
    # a user's own topic (a tenth of the catalog) fills much of the top
    assert (cat.topic[slots[:, :15]] == [[0], [3]]).mean() > 0.4


def test_relevance_retrieval_offers_more_relevant_candidates_than_stratified() -> None:
    utility = {}
    for method in ("stratified", "relevance"):
        env = RecVectorEnv(512, overrides={"retrieval": {"method": method}})
        _, info = env.reset(seed=8)
        utility[method] = info["candidate_utility"].mean()
    assert utility["relevance"] > utility["stratified"] + 0.2


# ---------------------------------------------------------------------- the true oracle


@pytest.mark.parametrize(("cascade", "bias"), [(False, 0.0), (False, 0.7), (True, 0.0)])
def test_optimal_slate_matches_enumeration(cascade: bool, bias: float) -> None:
    rng = np.random.default_rng(9)
    c, k, beta = 7, 3, 4.0
    penalty = bias * np.log2(1 + np.arange(k))
    utility, reward = rng.normal(0, 0.6, (300, c)), rng.uniform(0, 6, (300, c))
    u0 = rng.normal(0.5, 0.3, 300)
    best = optimal_slate(utility, reward, beta, u0, penalty, cascade)
    assert (np.sort(best, axis=1)[:, 1:] != np.sort(best, axis=1)[:, :-1]).all()
    value = slate_expected_reward(
        np.take_along_axis(utility, best, 1), np.take_along_axis(reward, best, 1), beta, u0, penalty, cascade
    )
    slates = np.array(list(itertools.permutations(range(c), k)))
    every = np.stack(
        [slate_expected_reward(utility[:, s], reward[:, s], beta, u0, penalty, cascade) for s in slates], axis=1
    )
    np.testing.assert_allclose(value, every.max(axis=1), rtol=1e-12, atol=1e-12)


def test_the_oracle_beats_ranking_by_utility_when_value_disagrees() -> None:
    """A tempting, short-watched item ranks first by utility but not by expected reward."""
    utility = np.array([[2.0, 1.0, 0.9, 0.0]])
    reward = np.array([[0.1, 4.0, 4.0, 4.0]])
    best = optimal_slate(utility, reward, 2.0, np.array([0.5]), np.zeros(2))
    np.testing.assert_array_equal(best, [[1, 2]])


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_agent_has_non_negative_regret_on_every_preset(preset: str) -> None:
    """Per user-step expected regret (oracle minus served slate's expected reward, under the
    same state) is >= 0 up to rounding for every registered agent."""
    for name in agent_names():
        overrides = {"slate_size": 1} if name == "dqn" else None
        env = RecVectorEnv(16, preset=preset, overrides=overrides)
        agent = make_agent(name, WorldSpec.from_config(env.config))
        records = rollout(agent, env, 4, np.random.default_rng(0), seed=0).records
        regret = records["oracle_expected_reward"] - records["expected_reward"]
        assert regret.min() >= -1e-9, (name, regret.min())


# ---------------------------------------------------------------------- common random numbers


@pytest.mark.parametrize("preset", ["default", "churn_prone"])
def test_two_policies_meet_the_same_candidates_and_noise_step_for_step(preset: str) -> None:
    """Sessions end at different steps under different policies (and users churn), yet
    every step draws the same numbers: candidates (stratified retrieval) and the uniforms
    behind clicks stay identical, and the j-th newcomer is the same person."""
    overrides = {"users": {"budget_mean": 6.0, "budget_std": 3.0}}
    if preset == "churn_prone":  # a harsh hazard, so that both policies lose users early
        overrides["dynamics"] = {"churn_threshold": 0.9, "churn_hazard": 0.2}
    candidates, newcomers = {}, {}
    for name in ("random", "oracle"):
        env = RecVectorEnv(128, preset=preset, overrides=overrides)
        agent = make_agent(name, WorldSpec.from_config(env.config))
        obs, info = env.reset(seed=3)
        ids, ended = [], 0
        for _ in range(40):
            ids.append(obs["item_ids"].copy())
            decision = agent.act({**obs, "best_slate": info["best_slate"]}, np.random.default_rng(0))
            obs, _, terminated, truncated, info = env.step(decision.slates)
            ended += int((terminated | truncated).sum())
        assert ended > 100  # plenty of restarts
        candidates[name] = np.stack(ids)
        pop = env.sim.population
        fresh = pop.user_id >= 128
        newcomers[name] = dict(zip(pop.user_id[fresh].tolist(), pop.initial_interest[fresh].tolist(), strict=True))
    np.testing.assert_array_equal(candidates["random"], candidates["oracle"])
    shared = set(newcomers["random"]) & set(newcomers["oracle"])
    if preset == "churn_prone":
        assert shared  # both lost users, and their first replacements are the same people
    for user in shared:
        np.testing.assert_array_equal(newcomers["random"][user], newcomers["oracle"][user])
