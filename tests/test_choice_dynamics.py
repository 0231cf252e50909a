"""Hand-computed numbers for the pure functions of the world.

Covers :mod:`simenv.choice` (MNL, cascade, the sampler, engagement), :mod:`simenv.dynamics`
(amplification, exposure, satiation, drift, budget, satisfaction, churn) and the helpers
of the simulator and catalog (slate repair, top-k, topic interest, candidate retrieval).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simenv import RecVectorEnv, repair_slate, topic_interest
from simenv.catalog import Catalog, retrieve_candidates
from simenv.choice import (
    NO_CLICK,
    cascade_probs,
    engagement_share,
    expected_engagement,
    mnl_probs,
    no_click_utility,
    position_penalty,
    sample_choice,
    sample_engagement,
)
from simenv.config import CatalogConfig
from simenv.dynamics import (
    amplify,
    churn_hazard,
    churned,
    drift,
    expose,
    normalize_rows,
    repel,
    satiate,
    satisfaction_signal,
    spend_budget,
    update_satisfaction,
    watch_scaled,
)

E = math.e
SQRT_HALF = math.sqrt(0.5)

# ---------------------------------------------------------------------- choice


def test_mnl_probs_hand_computed() -> None:
    # beta = 2, u = (0, 1), u0 = 0.5: logits (0, 2, 1) -> (1, e^2, e) / (1 + e^2 + e).
    probs = mnl_probs(np.array([[0.0, 1.0]]), beta=2.0, no_click_utility=0.5)
    z = 1 + E**2 + E
    np.testing.assert_allclose(probs, [[1 / z, E**2 / z, E / z]], rtol=1e-12)
    np.testing.assert_allclose(probs, [[0.0900306, 0.6652410, 0.2447285]], atol=1e-7)


def test_mnl_probs_is_stable_for_large_utilities() -> None:
    probs = mnl_probs(np.array([[1000.0, 1000.0], [-1000.0, -1000.0]]), beta=4.0, no_click_utility=0.0)
    np.testing.assert_allclose(probs, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], atol=1e-12)


def test_cascade_probs_hand_computed() -> None:
    # r_j = sigmoid(2 (u_j - 0.5)): r0 = sigmoid(1), r1 = sigmoid(-1) = 1 - r0.
    r0 = 1 / (1 + math.exp(-1))
    r1 = 1 - r0
    probs = cascade_probs(np.array([[1.0, 0.0]]), beta=2.0, no_click_utility=0.5)
    np.testing.assert_allclose(probs, [[r0, (1 - r0) * r1, (1 - r0) * (1 - r1)]], rtol=1e-12)
    np.testing.assert_allclose(probs, [[0.7310586, 0.0723295, 0.1966119]], atol=1e-7)


def test_cascade_earlier_position_wins_ties() -> None:
    probs = cascade_probs(np.full((1, 3), 0.7), beta=3.0, no_click_utility=0.5)
    assert probs[0, 0] > probs[0, 1] > probs[0, 2]


@pytest.mark.parametrize("model", [mnl_probs, cascade_probs])
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (64, 12)])
def test_choice_probabilities_sum_to_one(model, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    utility = rng.normal(0.0, 2.0, shape).astype(np.float32)
    probs = model(utility, beta=float(rng.uniform(0.5, 8.0)), no_click_utility=float(rng.normal()))
    assert probs.shape == (shape[0], shape[1] + 1)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


def test_mnl_higher_utility_is_chosen_more() -> None:
    probs = mnl_probs(np.array([[0.1, 0.9, 0.5]]), beta=4.0, no_click_utility=0.0)
    assert probs[0, 1] > probs[0, 2] > probs[0, 0]


def test_position_penalty_hand_computed() -> None:
    np.testing.assert_allclose(position_penalty(4, 1.0), [0.0, 1.0, math.log2(3), 2.0], rtol=1e-6)
    np.testing.assert_array_equal(position_penalty(3, 0.0), np.zeros(3))


def test_sample_choice_inverse_cdf_boundaries() -> None:
    # CDF over positions: [0.2, 0.5]; no click on [0.5, 1).
    probs = np.tile([0.2, 0.3, 0.5], (6, 1))
    uniforms = np.array([0.0, 0.1999, 0.2, 0.4999, 0.5, 0.9999])
    np.testing.assert_array_equal(sample_choice(probs, uniforms), [0, 0, 1, 1, NO_CLICK, NO_CLICK])


def test_sample_choice_frequencies_match_probabilities() -> None:
    rng = np.random.default_rng(3)
    p = np.array([0.1, 0.25, 0.05, 0.6])
    n = 50_000
    drawn = sample_choice(np.tile(p, (n, 1)), rng.random(n))
    counts = np.bincount(np.where(drawn == NO_CLICK, 3, drawn), minlength=4)
    assert stats.chisquare(counts, n * p).pvalue > 1e-3


def test_engagement_share_hand_computed() -> None:
    # sigmoid(3 * 0.5 + 0.5 * 0.2 - 1) = sigmoid(0.6)
    share = engagement_share(np.array([0.5]), np.array([0.2]), 3.0, 0.5, -1.0)
    np.testing.assert_allclose(share, [1 / (1 + math.exp(-0.6))], rtol=1e-12)
    np.testing.assert_allclose(share, [0.6456563], atol=1e-7)


def test_sample_engagement_hand_computed_and_clipped_to_length() -> None:
    # v = sqrt(3) (2 u - 1): u = 0.5 -> v = 0; u -> 1 -> v = sqrt(3); u = 0 -> v = -sqrt(3).
    length = np.full(4, 4.0)
    share = np.array([0.5, 0.9, 0.1, 0.5])
    watch = sample_engagement(length, share, 0.2, np.array([0.5, 0.999999, 0.0, 0.0]))
    np.testing.assert_allclose(watch, [2.0, 4.0, 0.0, 4.0 * (0.5 - 0.2 * math.sqrt(3))], rtol=1e-6)


def test_engagement_noise_has_the_configured_std() -> None:
    u = np.random.default_rng(6).random(100_000)
    watch = sample_engagement(np.ones_like(u), np.full_like(u, 0.5), 0.1, u)  # no clipping at 0.5 +- 0.17
    assert watch.mean() == pytest.approx(0.5, abs=2e-3)
    assert watch.std() == pytest.approx(0.1, rel=0.02)


def test_expected_engagement_hand_computed() -> None:
    # Uniform noise of half-width h = sqrt(3) * 0.2 around f = 0.8, l = 2:
    # E / l = (F(f + h) - F(f - h)) / (2 h), F(x) = clip(x, 0, 1)^2 / 2 + max(x - 1, 0)
    #       = (0.5 + 0.146410 - 0.453590^2 / 2) / 0.692820 = 0.784530
    np.testing.assert_allclose(expected_engagement(np.array([2.0]), np.array([0.8]), 0.2), [1.569060], rtol=1e-6)
    # Symmetric censoring around 0.5 leaves the mean at 0.5.
    np.testing.assert_allclose(expected_engagement(np.array([1.0]), np.array([0.5]), 0.5), [0.5], rtol=1e-12)
    # No noise: l * f.
    np.testing.assert_allclose(expected_engagement(np.array([3.0]), np.array([0.3]), 0.0), [0.9], rtol=1e-12)
    # Noise too small to reach a bound: l * f.
    np.testing.assert_allclose(expected_engagement(np.array([3.0]), np.array([0.3]), 0.05), [0.9], rtol=1e-12)


def test_expected_engagement_matches_monte_carlo() -> None:
    rng = np.random.default_rng(11)
    length = np.array([3.0, 3.0, 3.0, 5.0])
    share = np.array([0.05, 0.5, 0.95, 0.7])
    noise = 0.3
    n = 200_000
    draws = sample_engagement(length, share, noise, rng.random((n, 1)))
    mc_mean = draws.mean(axis=0)
    mc_se = draws.std(axis=0) / math.sqrt(n)
    exact = expected_engagement(length, share, noise)
    assert (np.abs(mc_mean - exact) < 5 * mc_se + 1e-9).all(), (mc_mean, exact, mc_se)


# ---------------------------------------------------------------------- dynamics


def test_amplify_hand_computed() -> None:
    theta = np.array([[1.0, 0.0], [1.0, 0.0]])
    consumed = np.array([[0.0, 1.0], [0.0, 1.0]])
    before = theta.copy()
    out = amplify(theta, consumed, np.array([True, False]), strength=0.5)
    np.testing.assert_allclose(out, [[SQRT_HALF, SQRT_HALF], [1.0, 0.0]])
    np.testing.assert_array_equal(theta, before)  # input untouched
    # eta = 0.2: normalize(0.8, 0.2)
    out = amplify(theta[:1], consumed[:1], np.array([True]), strength=0.2)
    np.testing.assert_allclose(out, [[0.8 / math.hypot(0.8, 0.2), 0.2 / math.hypot(0.8, 0.2)]])


def test_amplify_off_is_identity() -> None:
    theta = normalize_rows(np.random.default_rng(0).normal(size=(4, 3)))
    out = amplify(theta, np.ones((4, 3)), np.ones(4, dtype=bool), strength=0.0)
    np.testing.assert_array_equal(out, theta)
    out = amplify(theta, np.ones((4, 3)), np.zeros(4, dtype=bool), strength=0.7)
    np.testing.assert_array_equal(out, theta)


def test_expose_hand_computed() -> None:
    theta = np.array([[1.0, 0.0], [1.0, 0.0]])
    slate_mean = np.array([[0.0, 1.0], [-1.0, 0.0]])
    out = expose(theta, slate_mean, strength=0.5)
    # (0.5, 0.5) normalised; (0, 0) stays zero.
    np.testing.assert_allclose(out, [[SQRT_HALF, SQRT_HALF], [0.0, 0.0]])
    np.testing.assert_array_equal(expose(theta, slate_mean, 0.0), theta)


def test_repel_hand_computed() -> None:
    theta = np.array([[1.0, 0.0], [1.0, 0.0]])
    skipped = np.array([[0.0, 1.0], [0.0, 1.0]])
    out = repel(theta, skipped, np.array([True, False]), strength=1.0)
    np.testing.assert_allclose(out, [[SQRT_HALF, -SQRT_HALF], [1.0, 0.0]])  # (1, -1) normalised
    np.testing.assert_array_equal(repel(theta, skipped, np.array([True, True]), 0.0), theta)


def test_watch_scaled_amplification_hand_computed() -> None:
    share = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(watch_scaled(0.1, share, 1.0), [0.0, 0.05, 0.1])
    np.testing.assert_allclose(watch_scaled(0.1, share, 0.5), [0.05, 0.075, 0.1])
    np.testing.assert_array_equal(watch_scaled(0.1, share, 0.0), [0.1, 0.1, 0.1])  # off: eta for all
    theta, consumed = np.array([[1.0, 0.0]] * 2), np.array([[0.0, 1.0]] * 2)
    out = amplify(theta, consumed, np.array([True, True]), np.array([0.5, 0.0]))
    np.testing.assert_allclose(out, [[SQRT_HALF, SQRT_HALF], [1.0, 0.0]])


def test_satiate_hand_computed() -> None:
    s = np.array([[0.5, 0.0, 0.2], [0.5, 0.0, 0.2]])
    before = s.copy()
    out = satiate(s, np.array([1, -1]), decay=0.8)
    np.testing.assert_allclose(out, [[0.4, 0.2, 0.16], [0.4, 0.0, 0.16]])
    np.testing.assert_array_equal(s, before)


def test_satiation_stays_in_unit_interval_under_repetition() -> None:
    s = np.zeros((1, 2))
    for _ in range(200):
        s = satiate(s, np.array([0]), decay=0.7)
    np.testing.assert_allclose(s, [[1.0, 0.0]], atol=1e-12)


def test_drift_hand_computed() -> None:
    theta = np.array([[1.0, 0.0]])
    noise = np.array([[0.0, 2.0]])
    np.testing.assert_allclose(drift(theta, noise, 0.5), [[SQRT_HALF, SQRT_HALF]])
    np.testing.assert_array_equal(drift(theta, noise, 0.0), theta)


def test_spend_budget_and_satisfaction_hand_computed() -> None:
    np.testing.assert_allclose(spend_budget(np.array([10.0, 1.0]), np.array([0.4, 0.0]), 1.0, 0.5), [9.2, 0.0])
    np.testing.assert_allclose(update_satisfaction(np.array([0.5, 0.5]), np.array([0.8, 0.0]), 0.1), [0.53, 0.45])


def test_churn_hazard_hand_computed_and_off_at_zero() -> None:
    sat = np.array([0.0, 0.1, 0.2, 0.3])
    np.testing.assert_allclose(churn_hazard(sat, 0.2, 0.1), [0.1, 0.05, 0.0, 0.0])
    np.testing.assert_array_equal(churn_hazard(sat, 0.0, 0.1), 0.0)
    np.testing.assert_array_equal(churn_hazard(sat, 0.2, 0.0), 0.0)
    uniform = np.array([0.09, 0.06, 0.0, 0.0])
    np.testing.assert_array_equal(churned(sat, 0.2, 0.1, uniform), [True, False, False, False])
    assert not churned(sat, 0.0, 1.0, np.zeros(4)).any()


def test_lasting_satisfaction_hand_computed() -> None:
    value = np.array([0.5, -1.0, 3.0])
    clicked = np.array([True, True, False])
    signal = satisfaction_signal(value, clicked, value_weight=2.0, idle=0.3)
    np.testing.assert_allclose(signal, [1 / (1 + E**-1.0), 1 / (1 + E**2.0), 0.3])
    np.testing.assert_allclose(update_satisfaction(np.array([0.5, 0.5, 0.5]), signal, 0.1), 0.9 * 0.5 + 0.1 * signal)
    np.testing.assert_allclose(satisfaction_signal(value, clicked, 0.0, 0.3), [0.5, 0.5, 0.3])


def test_no_click_utility_moves_with_satisfaction() -> None:
    np.testing.assert_allclose(no_click_utility(0.5, 2.0, np.array([0.5, 1.0, 0.0])), [0.5, -0.5, 1.5])
    np.testing.assert_array_equal(no_click_utility(0.5, 0.0, np.array([0.0, 1.0])), [0.5, 0.5])


def test_topic_interest_hand_computed() -> None:
    # theta on centroid 0 of two orthogonal centroids, beta 2: softmax(2, 0).
    p = topic_interest(np.array([[1.0, 0.0]]), np.eye(2), beta=2.0)
    np.testing.assert_allclose(p, [[E**2 / (E**2 + 1), 1 / (E**2 + 1)]], rtol=1e-12)
    rng = np.random.default_rng(1)
    p = topic_interest(normalize_rows(rng.normal(size=(9, 4))), normalize_rows(rng.normal(size=(6, 4))), 4.0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


def test_interests_stay_unit_norm_after_many_steps(make_slates) -> None:
    overrides = {"dynamics": {"amplification": 0.3, "exposure": 0.1, "drift": 0.2}}
    env = RecVectorEnv(16, overrides=overrides)
    env.reset(seed=5)
    rng = np.random.default_rng(5)
    c, k = env.config.n_candidates, env.config.slate_size
    for _ in range(300):
        _, _, _, _, info = env.step(make_slates(rng, 16, c, k))
        np.testing.assert_allclose(np.linalg.norm(info["interest"], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(env.sim.population.interest, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------- slates


@pytest.mark.parametrize(
    ("action", "expected", "repaired"),
    [
        ([3, 1, 2], [3, 1, 2], False),  # distinct: untouched
        ([2, 2, 2], [2, 0, 1], True),  # repeats take the lowest indices not in the slate
        ([0, 0, 1], [0, 2, 1], True),  # first occurrences keep their positions
        ([4, 0, 4, 1], [4, 0, 2, 1], True),
        ([1, 1, 0], [1, 2, 0], True),
    ],
)
def test_repair_slate_documented_rule(action: list[int], expected: list[int], repaired: bool) -> None:
    slate, flags = repair_slate(np.array([action]), n_candidates=5)
    np.testing.assert_array_equal(slate, [expected])
    np.testing.assert_array_equal(flags, [repaired])


def test_repair_slate_properties_on_random_actions() -> None:
    rng = np.random.default_rng(2)
    action = rng.integers(0, 6, (500, 4))
    slate, flags = repair_slate(action, n_candidates=6)
    has_repeat = np.array([len(set(row)) < len(row) for row in action])
    np.testing.assert_array_equal(flags, has_repeat)
    assert all(len(set(row)) == len(row) for row in slate)
    assert slate.min() >= 0 and slate.max() < 6
    np.testing.assert_array_equal(slate[~flags], action[~flags])
    np.testing.assert_array_equal(slate[:, 0], action[:, 0])  # the first position is always kept
    assert slate.dtype == np.int64


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.array([[0, 5]]), "[0, 4]"),
        (np.array([[-1, 0]]), "from -1"),
        (np.array([0, 1]), "shape"),
    ],
)
def test_repair_slate_rejects_bad_actions(action: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError) as err:
        repair_slate(action, n_candidates=5)
    assert message in str(err.value)


# ---------------------------------------------------------------------- retrieval


def _aged_catalog(n_items: int, fresh_pool: int, arrivals: int) -> Catalog:
    rng = np.random.default_rng(8)
    catalog = Catalog.generate(CatalogConfig(n_items=n_items, fresh_pool=fresh_pool, fresh_share=0.3), rng)
    for step in range(1, 4):
        catalog.arrive(arrivals, step, rng)  # rotates the ring so slots != age ranks
    return catalog


def _age_rank(catalog: Catalog, slots: np.ndarray) -> np.ndarray:
    return (slots - catalog.oldest) % catalog.n_items


def test_retrieve_candidates_distinct_in_range_with_fresh_share() -> None:
    m, pool, c, n_fresh = 200, 30, 20, 6
    catalog = _aged_catalog(m, pool, arrivals=17)
    slots = retrieve_candidates(catalog, 400, c, n_fresh, np.random.default_rng(0))
    assert slots.shape == (400, c) and slots.dtype == np.int64
    assert slots.min() >= 0 and slots.max() < m
    assert (np.diff(np.sort(slots, axis=1), axis=1) > 0).all()  # distinct per user
    fresh = _age_rank(catalog, slots) >= m - pool
    np.testing.assert_array_equal(fresh.sum(axis=1), n_fresh)
    # The observable fresh flag marks exactly the same items.
    np.testing.assert_array_equal(catalog.features[slots, -1] == 1.0, fresh)


def test_retrieve_candidates_without_fresh_share_uses_whole_catalog_uniformly() -> None:
    m, c, n = 100, 10, 20_000
    catalog = _aged_catalog(m, 10, arrivals=0)
    slots = retrieve_candidates(catalog, n, c, 0, np.random.default_rng(1))
    counts = np.bincount(slots.ravel(), minlength=m)
    # Each item lies in one stratum of m / c = 10 items: retrieved with probability 1/10.
    assert stats.chisquare(counts, np.full(m, n * c / m)).pvalue > 1e-3


def test_retrieve_candidates_fresh_items_equally_likely() -> None:
    m, pool, c, n_fresh, n = 200, 30, 20, 6, 20_000
    catalog = _aged_catalog(m, pool, arrivals=11)
    slots = retrieve_candidates(catalog, n, c, n_fresh, np.random.default_rng(2))
    rank = _age_rank(catalog, slots)
    fresh_counts = np.bincount(rank[rank >= m - pool] - (m - pool), minlength=pool)
    # 6 strata of 5 newest items each: every fresh item is retrieved with probability 1/5.
    assert stats.chisquare(fresh_counts, np.full(pool, n * n_fresh / pool)).pvalue > 1e-3
