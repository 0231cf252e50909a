"""Metrics of a run, per step window: engagement, exploration, diversity, filter bubbles,
retention of the starting cohort, prediction accuracy, latency and serendipity.

Every metric is a pure function over numpy arrays with its formula and source in the
docstring; :func:`window_metrics` applies them to a :class:`~experiments.rollout.Trajectory`
per window of steps and :func:`run_summary` to the whole run. Information quantities
(entropies, novelty, KL) are in bits. Undefined values (a share of nothing: no clicks, a
single user for a pairwise metric, an agent without predictions) are NaN, never 0.

Shapes: T steps, B sessions (one user each per step), k slate positions, K topics, d
embedding dimensions; "events" are flattened user-steps.

Conventions: users are tracked by ``user_id`` (the population persists across sessions;
a user who churns leaves for good and a brand-new user with a new, larger id takes its
row). The *starting cohort* is the users of the first step, ``user_id[0]``; retention, the
survival curve and cohort engagement follow them for the whole run.
Interest-based metrics (interest entropy, homogenization, calibration) use the interest
recorded after each step; the preference shift and the serendipity's "top topics" come
from the rollout's per-step summaries, which use the exact theta at arrival and before
the step (:data:`experiments.rollout.STEP_SUMMARIES`). Per-window means are over user-steps
(every user-step weighs the same); set metrics (coverage, Gini, topic entropy, Jaccard)
pool the window's events.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from experiments.rollout import ORACLE_INFO, RECORDED_INFO, STEP_SUMMARIES, Trajectory

METRICS: dict[str, str] = {
    # engagement
    "user_steps": "user-steps in the window (B x steps; the weight of the window)",
    "reward_per_user_step": "mean reward per user-step (minutes watched, or clicks)",
    "ctr": "share of slates that got a click",
    "session_length": "mean steps of the sessions that ended in the window",
    "watch_time_total": "total minutes watched in the window, all users",
    "regret": "mean per user-step of oracle expected reward - the served slate's expected reward",
    # exploration
    "exploration_rate": "share of decisions that deviated from the agent's greedy slate",
    "policy_entropy": "entropy (bits) of the slot-0 choice, estimated as -mean log2 propensity",
    "slate_entropy": "entropy (bits) of the whole slate, estimated as -mean sum_j log2 propensity_j",
    # diversity
    "intra_list_diversity": "mean pairwise 1 - cos of item embeddings within a slate (Ziegler 2005)",
    "catalog_coverage": "distinct items shown / items in the catalog during the window",
    "exposure_gini": "Gini coefficient of item exposure counts over the catalog (0 = even)",
    "topic_entropy": "entropy (bits) of the topics of consumed items",
    "slate_topic_entropy": "mean over served slates of the entropy (bits) of the topics of its k items: "
    "0 = one topic, log2 k = k distinct topics; higher = more topic-diverse slates (Ziegler 2005 on topics)",
    "slate_topic_coverage": "mean over served slates of distinct topics / min(k, K), a share in [0, 1]; "
    "higher = more topic-diverse slates (subtopic recall, Zhai 2003)",
    "novelty": "mean -log2 popularity of consumed items, popularity = share of consumption so far (Zhou 2010)",
    # filter bubble
    "interest_entropy": "mean entropy (bits) of the users' topic-interest distributions",
    "user_topic_entropy": "mean over users who clicked of the entropy (bits) of the topics each consumed in "
    "the window; lower = narrower per-user consumption (Nguyen 2014)",
    "interest_entropy_decline": "interest entropy of the first users at t=0 minus this window's",
    "preference_shift": "mean L2 distance between a user's theta and the theta they arrived with",
    "homogenization_cosine": "mean pairwise cosine between the interests of concurrent users (Chaney 2018)",
    "homogenization_jaccard": "mean pairwise Jaccard overlap of the items users consumed (Chaney 2018)",
    "calibration_kl": "mean KL (bits) of a user's topic interests from the recommended topics (Steck 2018)",
    # retention
    "retention": "share of the first step's users who have not churned by the window's end (the cohort "
    "survival curve at the window's end); higher is better",
    "churn_rate": "churn events per user-step",
    "lifetime_engagement": "total reward since the start / distinct users seen, at the window's end",
    "cohort_engagement": "reward (minutes or clicks) earned by the first step's users in the window / "
    "(their number x steps): engagement per cohort user-step, 0 after a user churns; higher is better",
    # prediction
    "prediction_rmse": "RMSE of the agent's predicted item reward vs the world's expected item reward",
    "prediction_mae": "MAE of the agent's predicted item reward vs the world's expected item reward",
    # latency
    "latency_decision_p50_ms": "median decision latency (batch act time / batch size), ms",
    "latency_decision_p95_ms": "95th percentile decision latency (batch act time / batch size), ms",
    "latency_batch_p50_ms": "median act time of a whole batch, ms",
    "latency_batch_p95_ms": "95th percentile act time of a whole batch, ms",
    # serendipity
    "serendipity": "share of consumed items outside the user's top-3 topics and liked (Ge 2010)",
}
"""Metric column name -> short description (the columns of :func:`window_metrics`)."""

FINAL_STATE_METRICS = ("interest_entropy", "interest_entropy_decline", "preference_shift", "homogenization_cosine")
"""State metrics :func:`run_summary` also reports at the last step, as ``<name>_final``."""

CALIBRATION_SMOOTHING = 0.01
"""alpha in Steck's smoothed recommendation distribution (1 - alpha) q + alpha p."""

SERENDIPITY_TOP_TOPICS = 3
"""An item is unexpected if its topic is not among the user's this many favourite topics."""

SERENDIPITY_LIKED_SHARE = 0.5
"""An item is liked if the user watched at least this share of it."""

JACCARD_PAIRS = 1024
"""User pairs sampled for the Jaccard overlap when there are more pairs than this."""

_NAN = float("nan")


# ---------------------------------------------------------------------------- helpers
def _mean(values: np.ndarray) -> float:
    """Mean of ``values`` as a float; NaN for an empty array (no warning)."""
    return float(np.mean(values)) if np.size(values) else _NAN


def entropy_bits(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy ``H(p) = -sum_i p_i log2 p_i`` (0 log 0 = 0) along ``axis``, in bits."""
    p = np.asarray(p, dtype=np.float64)
    logs = np.log2(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=axis)


# ---------------------------------------------------------------------------- engagement
def reward_per_user_step(reward: np.ndarray) -> float:
    """Mean reward per user-step: ``sum r / (T B)``. reward: (T, B) minutes or clicks."""
    return _mean(reward)


def click_through_rate(click: np.ndarray) -> float:
    """CTR: share of served slates that got a click. click: (T, B) position or -1."""
    return _mean(np.asarray(click) >= 0)


def session_lengths(ended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lengths of the sessions that ended in a (T, B) record of session ends.

    A session in column b runs from the step after the previous end in that column (or
    step 0) to its end, inclusive. Sessions that began before the record count from step 0;
    sessions still running at the end are not counted.

    Args:
        ended: (T, B) bool, terminated | truncated.

    Returns:
        ``(end_step, length)``: (S,) int64 step at which each ended session ended and its
        length in steps, for the S sessions that ended, ordered by column then step.
    """
    ended = np.asarray(ended, dtype=bool)
    t_total = ended.shape[0]
    flat = np.flatnonzero(ended.T)
    column, end_step = np.divmod(flat, t_total)
    previous = np.empty_like(end_step)
    previous[:1] = -1
    previous[1:] = np.where(column[1:] == column[:-1], end_step[:-1], -1)
    return end_step, end_step - previous


def total_watch_time(engagement: np.ndarray) -> float:
    """Total minutes watched: ``sum y`` over users and steps. engagement: (T, B) minutes."""
    return float(np.sum(engagement, dtype=np.float64))


def regret(expected_reward: np.ndarray, oracle_expected_reward: np.ndarray) -> float:
    """Mean per user-step regret to the myopic oracle (the top-k slate by true utility):
    ``mean(E[r | oracle slate] - E[r | served slate])``. Both (T, B), same unit as reward."""
    return _mean(np.asarray(oracle_expected_reward, dtype=np.float64) - expected_reward)


# ---------------------------------------------------------------------------- exploration
def exploration_rate(explored: np.ndarray) -> float:
    """Share of decisions whose slate differs from the agent's greedy slate. explored: (T, B)."""
    return _mean(np.asarray(explored, dtype=bool))


def policy_entropy(propensity: np.ndarray) -> float:
    """Entropy of the agent's slot-0 choice, in bits, from logged propensities.

    Estimator: ``-mean log2 pi(a_0)`` over decisions, with ``pi(a_0)`` the propensity of
    the item served at slot 0. Since a_0 ~ pi, ``E[-log2 pi(a_0)] = H(pi)``: the sample
    mean is an unbiased estimate of the (per-decision) entropy, averaged over contexts.
    A deterministic policy (propensity 1) scores 0; uniform over C candidates, log2 C.

    Args:
        propensity: (..., k) propensities; slot 0 is used.
    """
    return _mean(-np.log2(np.asarray(propensity, dtype=np.float64)[..., 0]))


def slate_entropy(propensity: np.ndarray) -> float:
    """Entropy of the whole slate, in bits: ``-mean sum_j log2 pi(a_j | a_<j)``.

    By the chain rule the slate's probability is the product of the per-slot
    propensities, so this is the unbiased estimate of H(slate) (see :func:`policy_entropy`).
    propensity: (..., k).
    """
    return _mean(-np.log2(np.asarray(propensity, dtype=np.float64)).sum(axis=-1))


# ---------------------------------------------------------------------------- diversity
def intra_list_diversity(embeddings: np.ndarray) -> np.ndarray:
    """Intra-list diversity (Ziegler et al. 2005): ``ILD = mean_{i != j} (1 - cos(e_i, e_j))``.

    The direct O(k^2 d) definition; the rollout records the same quantity per step with
    the O(k d) identity (:func:`experiments.rollout.slate_diversity`).

    Args:
        embeddings: (..., k, d) item embeddings of each slate, k >= 2.

    Returns:
        (...) diversity in [0, 2].
    """
    e = np.asarray(embeddings, dtype=np.float64)
    k = e.shape[-2]
    if k < 2:
        raise ValueError(f"embeddings must hold slates of k >= 2 items (axis -2); got k = {k}")
    u = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
    cos = np.einsum("...id,...jd->...ij", u, u)
    off_diagonal = cos.sum(axis=(-1, -2)) - np.trace(cos, axis1=-2, axis2=-1)
    return 1.0 - off_diagonal / (k * (k - 1))


def exposure_counts(items: np.ndarray) -> np.ndarray:
    """(m,) how often each of the m distinct item ids in ``items`` (any shape, ids >= 0)
    was shown, in id order (a bincount over the id range: no sort)."""
    items = np.asarray(items, dtype=np.int64).ravel()
    if items.size == 0:
        return np.zeros(0, dtype=np.int64)
    low = int(items.min())
    counts = np.bincount(items - low)
    return counts[counts > 0]


def catalog_coverage(items: np.ndarray, n_items: int) -> float:
    """Catalog coverage: ``|distinct items shown| / n_items`` (Herlocker et al. 2004).

    Args:
        items: item ids shown, any shape. n_items: items available in the period (> 0).
    """
    return len(exposure_counts(items)) / n_items


def gini(counts: np.ndarray, n_items: int | None = None) -> float:
    """Gini coefficient of exposure (as in Fleder & Hosanagar 2009):
    ``G = 2 sum_i i x_(i) / (n sum x) - (n + 1) / n`` with x sorted ascending, i = 1..n.

    Args:
        counts: (m,) non-negative exposure counts of the items that have any.
        n_items: n >= m, items in the catalog; the n - m missing items count as zeros.
            None: n = m.

    Returns:
        G in [0, (n - 1) / n]; 0 = every item equally exposed. NaN if nothing was shown.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64).ravel())
    n = len(x) if n_items is None else max(int(n_items), len(x))
    total = x.sum()
    if n == 0 or total <= 0:
        return _NAN
    rank = np.arange(n - len(x) + 1, n + 1)
    return float(2.0 * (rank * x).sum() / (n * total) - (n + 1) / n)


def exposure_gini(items: np.ndarray, n_items: int) -> float:
    """Gini of item exposure: :func:`gini` of how often each item id in ``items`` (any
    shape) was shown, over ``n_items`` catalog items."""
    return gini(exposure_counts(items), n_items)


def topic_entropy(topics: np.ndarray, n_topics: int) -> float:
    """Entropy (bits) of the topic distribution of consumed items:
    ``H = -sum_c p_c log2 p_c`` with p_c the share of consumption of topic c.

    Args:
        topics: consumed topics in [0, K) (no-click markers removed), any shape.
    """
    topics = np.asarray(topics).ravel()
    if topics.size == 0:
        return _NAN
    return float(entropy_bits(np.bincount(topics, minlength=n_topics) / topics.size))


def _entropy_kn(shares: np.ndarray) -> np.ndarray:
    """(N,) entropy (bits) of the columns of topic-major shares (K, N), in their precision."""
    terms = np.log2(np.maximum(shares, np.finfo(shares.dtype).tiny))
    terms *= shares
    return np.maximum(-terms.sum(axis=0), 0.0)


def _distinct_kn(shares: np.ndarray) -> np.ndarray:
    """(N,) number of topics with a positive share, for topic-major shares (K, N)."""
    return np.count_nonzero(shares > 0, axis=0)


def slate_topic_entropy(slate_topics: np.ndarray, n_topics: int) -> np.ndarray:
    """Topic entropy of each slate: ``H = -sum_c q_c log2 q_c`` with q_c the share of the
    slate's k items whose topic is c. A one-topic slate scores 0, a slate of k distinct
    topics log2 k (with k <= K). Intra-list diversity (Ziegler et al. 2005) measured on
    topics rather than embeddings: embedding ILD barely separates a one-topic slate from
    a diverse one when topics overlap in embedding space.

    Args:
        slate_topics: (..., k) topic of each served item, in [0, K). n_topics: K.

    Returns:
        (...) float32 entropy in [0, log2 min(k, K)].
    """
    topics = np.asarray(slate_topics)
    shares = topic_distribution(topics.reshape(-1, topics.shape[-1]), n_topics).T  # (K, N)
    return _entropy_kn(shares).reshape(topics.shape[:-1])


def slate_topic_coverage(slate_topics: np.ndarray, n_topics: int) -> np.ndarray:
    """Topic coverage of each slate: ``|distinct topics among its k items| / min(k, K)``,
    1 when the slate holds as many topics as it can: subtopic recall (Zhai et al. 2003)
    per slate, normalised by the most topics k items can cover.

    Args:
        slate_topics: (..., k) topic of each served item, in [0, K). n_topics: K.

    Returns:
        (...) float64 coverage in [1 / min(k, K), 1].
    """
    topics = np.asarray(slate_topics)
    k = topics.shape[-1]
    shares = topic_distribution(topics.reshape(-1, k), n_topics).T
    return (_distinct_kn(shares) / min(k, n_topics)).reshape(topics.shape[:-1])


def novelty_per_event(step: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Novelty of each consumption (Zhou et al. 2010): ``-log2 pop(i, t)`` with
    ``pop(i, t) = (consumptions of i at steps <= t) / (all consumptions at steps <= t)``,
    the item's share of consumption so far (the current step included, so it is > 0).

    Args:
        step: (E,) step of each consumption event. item: (E,) consumed item id (>= 0).

    Returns:
        (E,) novelty in bits, >= 0.
    """
    step = np.asarray(step, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    if step.size == 0:
        return np.zeros(0)
    total = np.cumsum(np.bincount(step))[step]
    # Sort by (item, step); an event's count is (last event of its (item, step) run) -
    # (first event of its item) + 1 in that order: two accumulate passes, no search.
    order = np.argsort(item * (int(step.max()) + 1) + step, kind="stable")
    sorted_item, sorted_step = item[order], step[order]
    n = len(order)
    index = np.arange(n)
    run_end = np.ones(n, dtype=bool)
    run_end[:-1] = (sorted_item[1:] != sorted_item[:-1]) | (sorted_step[1:] != sorted_step[:-1])
    last = np.minimum.accumulate(np.where(run_end, index, n)[::-1])[::-1]
    item_start = np.ones(n, dtype=bool)
    item_start[1:] = sorted_item[1:] != sorted_item[:-1]
    first = np.maximum.accumulate(np.where(item_start, index, 0))
    item_count = np.empty(n, dtype=np.int64)
    item_count[order] = last - first + 1
    return -np.log2(item_count / total)


# ---------------------------------------------------------------------------- filter bubble
def _topic_log_interest_kn(interest: np.ndarray, centroids: np.ndarray, beta: float) -> np.ndarray:
    """(K, N) log softmax over topics of ``beta theta . mu`` for interest (N, d), in the
    topic-major layout: the per-user reductions run over K contiguous rows (fast)."""
    dtype = np.result_type(interest.dtype, np.float32)
    logits = (beta * np.asarray(centroids, dtype=dtype)) @ np.asarray(interest, dtype=dtype).T
    logits -= logits.max(axis=0)
    weights = np.exp(logits)
    logits -= np.log(weights.sum(axis=0))
    return logits


def topic_log_interest(interest: np.ndarray, centroids: np.ndarray, beta: float) -> np.ndarray:
    """Natural log of each user's topic-interest distribution, ``log softmax_c(beta theta . mu_c)``:
    the log of :func:`simenv.topic_interest`, computed in the interest's float precision
    (float32 for recorded interests, half the memory traffic of float64).

    Args:
        interest: (N, d) interests theta. centroids: (K, d). beta: the world's choice beta.

    Returns:
        (N, K) log-probabilities (rows logsumexp to 0).
    """
    return _topic_log_interest_kn(np.asarray(interest), centroids, beta).T


def interest_entropy(interest: np.ndarray, centroids: np.ndarray, beta: float) -> np.ndarray:
    """Entropy (bits) of each user's topic-interest distribution
    ``p_c = softmax_c(beta theta . mu_c)`` (:func:`simenv.topic_interest`): low = narrow tastes.

    Args:
        interest: (..., d) interests theta. centroids: (K, d). beta: the world's choice beta.

    Returns:
        (...) entropy in [0, log2 K].
    """
    d = interest.shape[-1]
    log_p = _topic_log_interest_kn(np.asarray(interest).reshape(-1, d), centroids, beta)
    return (-(np.exp(log_p) * log_p).sum(axis=0) / np.log(2.0)).reshape(interest.shape[:-1])


def user_topic_entropy(user_id: np.ndarray, topic: np.ndarray, n_topics: int) -> float:
    """Per-user consumption diversity (Nguyen et al. 2014, "Exploring the filter bubble"):
    for each user u, ``H_u = -sum_c p_uc log2 p_uc`` with p_uc the share of u's consumed
    items whose topic is c; the mean of H_u over the users who consumed anything.

    Unlike :func:`topic_entropy` (one distribution pooled over the population, which stays
    high when every user is narrow but users differ), this falls when each user's own
    consumption narrows. H_u <= log2(clicks of u), so compare it over equal windows.
    One sort of the (user, topic) pairs; no loop over users.

    Args:
        user_id: (E,) user of each consumption event. topic: (E,) consumed topic in
            [0, K) (no-click markers removed). n_topics: K.

    Returns:
        Mean entropy in bits, in [0, log2 K]; NaN without consumption.
    """
    user_id = np.asarray(user_id, dtype=np.int64).ravel()
    topic = np.asarray(topic, dtype=np.int64).ravel()
    if user_id.size == 0:
        return _NAN
    keys, count = np.unique(user_id * n_topics + topic, return_counts=True)  # sorted by user, then topic
    owner = keys // n_topics
    first = np.ones(len(keys), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    user = np.cumsum(first) - 1  # 0..n-1, one per distinct user
    p = count / np.bincount(user, weights=count)[user]
    return float(np.mean(-np.bincount(user, weights=p * np.log2(p))))


def preference_shift(interest: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Preference shift ``|theta_t - theta_0|`` (L2), per row. Both (..., d); the result (...)."""
    return np.linalg.norm(np.asarray(interest, dtype=np.float64) - reference, axis=-1)


def mean_pairwise_cosine(vectors: np.ndarray) -> np.ndarray:
    """Homogenization of interests (Chaney et al. 2018): mean cosine over pairs i != j.

    Uses the identity ``mean_{i != j} u_i . u_j = (|sum_i u_i|^2 - n) / (n (n - 1))`` for
    the unit vectors ``u_i = v_i / |v_i|``: O(n d) instead of O(n^2 d).

    Args:
        vectors: (..., n, d).

    Returns:
        (...) mean cosine in [-1/(n-1), 1]; NaN if n < 2.
    """
    v = np.asarray(vectors)
    v = v.astype(np.result_type(v.dtype, np.float32), copy=False)
    n = v.shape[-2]
    if n < 2:
        return np.full(v.shape[:-2], np.nan)
    norm = np.sqrt(np.einsum("...d,...d->...", v, v))[..., None]
    u = v / np.maximum(norm, 1e-12)
    total = u.sum(axis=-2)
    return (np.einsum("...d,...d->...", total, total) - n) / (n * (n - 1))


def _user_pairs(n: int, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j of n users if there are at most ``n_pairs``, else ``n_pairs``
    ordered pairs i != j drawn uniformly with ``default_rng(seed)``."""
    if n * (n - 1) // 2 <= n_pairs:
        return np.triu_indices(n, 1)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, n_pairs)
    b = rng.integers(0, n - 1, n_pairs)
    b += b >= a
    return a, b


def jaccard_overlap(user_id: np.ndarray, item: np.ndarray, n_pairs: int = JACCARD_PAIRS, seed: int = 0) -> float:
    """Homogenization of consumption (Chaney et al. 2018): mean over user pairs of the
    Jaccard overlap ``|I_a ∩ I_b| / |I_a ∪ I_b|`` of the item sets they consumed.

    Only users who consumed something count. Exact over all pairs when there are at most
    ``n_pairs`` of them, else a deterministic sample of ``n_pairs`` pairs (``seed``).

    Args:
        user_id: (E,) user of each consumption event. item: (E,) consumed item id (>= 0).

    Returns:
        Mean overlap in [0, 1]; NaN with fewer than 2 users.
    """
    user_id = np.asarray(user_id, dtype=np.int64).ravel()
    item = np.asarray(item, dtype=np.int64).ravel()
    users, user_index = np.unique(user_id, return_inverse=True)
    n = len(users)
    if n < 2:
        return _NAN
    span = int(item.max()) + 1
    keys = np.unique(user_index * span + item)
    set_user, set_item = np.divmod(keys, span)
    size = np.bincount(set_user, minlength=n)
    start = np.cumsum(size) - size
    a, b = _user_pairs(n, n_pairs, seed)
    a, b = np.where(size[a] <= size[b], a, b), np.where(size[a] <= size[b], b, a)  # probe the smaller set
    repeat = size[a]
    pair = np.repeat(np.arange(len(a)), repeat)
    offset = np.arange(repeat.sum()) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    probe = b[pair] * span + set_item[start[a][pair] + offset]
    found = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
    inter = np.bincount(pair, weights=keys[found] == probe, minlength=len(a))
    return float(np.mean(inter / (size[a] + size[b] - inter)))


def topic_distribution(topics: np.ndarray, n_topics: int) -> np.ndarray:
    """(N, K) float32 share of each topic among the k entries of each row of ``topics`` (N, k).

    The result is a view of a topic-major (K, N) array (``.T`` gives it back contiguous).
    """
    n, k = topics.shape
    by_slot = np.ascontiguousarray(np.asarray(topics).T)  # (k, N)
    counts = np.empty((n_topics, n), dtype=np.float32)
    for c in range(n_topics):  # K topics: contiguous compares, reduced over the k slots
        np.sum(by_slot == c, axis=0, out=counts[c], dtype=np.float32)
    counts /= k
    return counts.T


def calibration_kl(
    interest_dist: np.ndarray, recommended_dist: np.ndarray, alpha: float = CALIBRATION_SMOOTHING, axis: int = -1
) -> np.ndarray:
    """Miscalibration (Steck 2018): ``KL(p || q~) = sum_c p_c log2(p_c / q~_c)`` with p the
    user's topic interests, q the topic distribution of the recommended slate and
    ``q~ = (1 - alpha) q + alpha p`` (smoothing keeps KL finite). 0 = perfectly calibrated.

    Args:
        interest_dist: (N, K) rows summing to 1. recommended_dist: (N, K) rows summing to 1.
        alpha: smoothing in (0, 1].
        axis: the topic axis (0 for topic-major (K, N) arrays).

    Returns:
        (N,) KL in bits, >= 0.
    """
    p = np.asarray(interest_dist)
    p = p.astype(np.result_type(p.dtype, np.float32), copy=False)
    tiny = np.finfo(p.dtype).tiny
    # in place: few large temporaries (they dominate the cost on (K, T B) arrays)
    log_q = np.multiply(recommended_dist, 1.0 - alpha, dtype=p.dtype)
    log_q += alpha * p
    np.log2(np.maximum(log_q, tiny, out=log_q), out=log_q)
    terms = np.maximum(p, tiny)
    np.log2(terms, out=terms)
    terms -= log_q
    terms *= p
    return terms.sum(axis=axis)


# ---------------------------------------------------------------------------- retention
def starting_cohort(user_id: np.ndarray) -> np.ndarray:
    """(B,) ids of the starting cohort: the users served at the first step, ``user_id[0]``
    of a (T, B) record. (With a population larger than B, users waiting for a session at
    step 0 are not in it: the record never says who they are.)"""
    return np.asarray(user_id)[0]


def first_churn_step(user_id: np.ndarray, churned: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    """Step at which each user of ``cohort`` (n,) churned, or the record length T if never.

    Args:
        user_id: (T, B). churned: (T, B) bool. cohort: (n,) user ids.
    """
    t_total, b = user_id.shape
    step = np.full(len(cohort), t_total, dtype=np.int64)
    events = np.flatnonzero(np.asarray(churned, dtype=bool).ravel())
    if events.size:
        gone, first = np.unique(user_id.ravel()[events], return_index=True)
        pos = np.minimum(np.searchsorted(gone, cohort), len(gone) - 1)
        hit = gone[pos] == cohort
        step[hit] = events[first[pos[hit]]] // b
    return step


def retention(churn_step: np.ndarray, end: int) -> float:
    """Share of a cohort still on the platform after steps [0, end): ``mean(churn_step >= end)``.
    churn_step: (n,) from :func:`first_churn_step`."""
    return _mean(np.asarray(churn_step) >= end)


def cohort_survival(churn_step: np.ndarray, steps: int) -> np.ndarray:
    """Survival curve of a cohort: ``S(t) = |{u : churn_step_u > t}| / n``, the share not yet
    churned at the end of step t (a user churning at step t is gone from S(t) on). So
    ``S(end - 1) = retention(churn_step, end)``.

    Args:
        churn_step: (n,) from :func:`first_churn_step` (T = never). steps: T.

    Returns:
        (T,) non-increasing shares in [0, 1]; all NaN for an empty cohort.
    """
    churn_step = np.asarray(churn_step, dtype=np.int64)
    if churn_step.size == 0:
        return np.full(steps, np.nan)
    gone = np.cumsum(np.bincount(np.minimum(churn_step, steps), minlength=steps + 1)[:steps])
    return 1.0 - gone / churn_step.size


def survival_curve(traj: Trajectory) -> np.ndarray:
    """(T,) :func:`cohort_survival` of the :func:`starting_cohort` of a trajectory."""
    r = traj.records
    cohort = starting_cohort(r["user_id"])
    return cohort_survival(first_churn_step(r["user_id"], r["churned"], cohort), r["user_id"].shape[0])


def cohort_reward(reward: np.ndarray, user_id: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    """(T,) total reward earned by the users of ``cohort`` (n,) at each step, from reward
    and user_id (T, B). Churned users no longer appear in ``user_id`` (their row holds a
    new user with a new id), so they add nothing after they leave."""
    in_cohort = np.isin(user_id, cohort)
    return np.where(in_cohort, reward, 0.0).sum(axis=1, dtype=np.float64)


def cohort_engagement(step_reward: np.ndarray, cohort_size: int) -> float:
    """Engagement of a fixed cohort per user-step: ``sum_t R_t / (n T)`` with R_t the
    cohort's reward at step t (:func:`cohort_reward`), n the cohort size and T the steps.

    Dividing by the whole cohort counts every churned user as 0 from the moment they leave
    (and a user waiting between sessions as 0 while away), so an agent cannot look good by
    serving only the users it has not driven away: the long-run engagement of the users
    the platform started with (a survival-weighted mean, as in retention analyses).

    Args:
        step_reward: (T,) cohort reward per step. cohort_size: n.

    Returns:
        Reward per cohort user per step; NaN for no steps or an empty cohort.
    """
    steps = np.size(step_reward)
    if steps == 0 or cohort_size <= 0:
        return _NAN
    return float(np.sum(step_reward, dtype=np.float64)) / (cohort_size * steps)


def churn_rate(churned: np.ndarray) -> float:
    """Churn hazard: churn events per user-step, ``sum churned / (T B)``. churned: (T, B)."""
    return _mean(np.asarray(churned, dtype=bool))


def users_seen(user_id: np.ndarray) -> np.ndarray:
    """(T,) number of distinct users seen at steps <= t, from user_id (T, B)."""
    _, first = np.unique(user_id.ravel(), return_index=True)
    t_total, b = user_id.shape
    return np.cumsum(np.bincount(first // b, minlength=t_total))


def lifetime_engagement(total_reward: float, n_users: int) -> float:
    """Lifetime engagement: reward accumulated since the start per distinct user seen,
    ``sum_{t <= end} r / |users seen by end|`` (a churned user's lifetime is complete)."""
    return total_reward / n_users if n_users else _NAN


# ---------------------------------------------------------------------------- prediction
def prediction_errors(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """RMSE and MAE of predictions where they exist (finite): ``sqrt(mean (p - y)^2)``,
    ``mean |p - y|``. Both (..., k); NaN, NaN if the agent predicted nothing."""
    predicted = np.asarray(predicted, dtype=np.float64)
    have = np.isfinite(predicted)
    if not have.any():
        return _NAN, _NAN
    error = predicted[have] - np.asarray(truth, dtype=np.float64)[have]
    return float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error)))


# ---------------------------------------------------------------------------- latency
def latency_percentiles(batch_seconds: np.ndarray, batch_size: int) -> dict[str, float]:
    """p50 and p95 latency in milliseconds, per batch (the agent's ``act`` call) and per
    decision (batch time / batch size, i.e. amortised over the B users served together).

    Args:
        batch_seconds: (T,) seconds per ``act`` call. batch_size: B.
    """
    if np.size(batch_seconds) == 0:
        return dict.fromkeys(("decision_p50", "decision_p95", "batch_p50", "batch_p95"), _NAN)
    p50, p95 = np.percentile(np.asarray(batch_seconds, dtype=np.float64) * 1e3, [50.0, 95.0])
    return {
        "decision_p50": float(p50) / batch_size,
        "decision_p95": float(p95) / batch_size,
        "batch_p50": float(p50),
        "batch_p95": float(p95),
    }


# ---------------------------------------------------------------------------- serendipity
def serendipity(
    topic_rank: np.ndarray,
    engaged_share: np.ndarray,
    top_topics: int = SERENDIPITY_TOP_TOPICS,
    liked_share: float = SERENDIPITY_LIKED_SHARE,
) -> float:
    """Serendipity (Ge et al. 2010): share of consumed items that were both unexpected
    (topic not among the user's ``top_topics`` favourite topics at the time) and liked
    (watched share >= ``liked_share``).

    Args:
        topic_rank: (E,) rank of each consumed item's topic in the user's interests
            before the step (0 = favourite); consumption events only.
        engaged_share: (E,) engagement / item length of those events.

    Returns:
        Share in [0, 1]; NaN without consumption.
    """
    topic_rank = np.asarray(topic_rank)
    return _mean((topic_rank >= top_topics) & (np.asarray(engaged_share) >= liked_share))


# ---------------------------------------------------------------------------- per window
def _check_args(window: int, catalog_size: int, choice_beta: float) -> None:
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window (steps per window) must be an integer >= 1; got {window!r}")
    if isinstance(catalog_size, bool) or not isinstance(catalog_size, int | np.integer) or catalog_size < 1:
        raise ValueError(f"catalog_size (items alive at any time) must be an integer >= 1; got {catalog_size!r}")
    if not isinstance(choice_beta, int | float | np.number) or not math.isfinite(choice_beta) or choice_beta <= 0:
        raise ValueError(f"choice_beta must be a finite number > 0; got {choice_beta!r}")


def _require(traj: Trajectory) -> None:
    needed = (*RECORDED_INFO, "reward", "explored", "propensity", "predicted", "terminated", "truncated")
    needed = (*needed, "interest", *STEP_SUMMARIES)
    missing = [key for key in needed if key not in traj.records and key not in ORACLE_INFO]
    if missing:
        raise KeyError(f"trajectory records lack {missing}; record them with experiments.rollout.rollout")


class _RunArrays:
    """Per-event arrays computed once for the whole run, then sliced per window."""

    def __init__(self, traj: Trajectory, catalog_size: int, choice_beta: float) -> None:
        r = traj.records
        self.t_total, self.b = r["reward"].shape
        n_topics = traj.centroids.shape[0]
        self.n_topics = n_topics
        self.catalog_size = catalog_size
        arrivals = np.zeros(self.t_total, dtype=np.int64)
        arrivals[: len(traj.arrivals)] = traj.arrivals[: self.t_total]
        self.arrivals_before = np.concatenate([[0], np.cumsum(arrivals)])
        # Consumption events, in time order.
        clicked = r["click"] >= 0
        self.clicked = clicked
        event = np.flatnonzero(clicked.ravel())
        self.event_step = event // self.b
        slate_items = r["slate_items"].reshape(-1, r["slate_items"].shape[-1])
        self.event_item = slate_items[event, r["click"].ravel()[event]]
        self.event_user = r["user_id"].ravel()[event]
        self.event_topic = r["consumed_topic"].ravel()[event]
        self.event_novelty = novelty_per_event(self.event_step, self.event_item)
        # Topic interests of every user-step (float32): entropy and calibration.
        interest = r["interest"].reshape(-1, r["interest"].shape[-1])
        log_p = _topic_log_interest_kn(interest, traj.centroids, choice_beta)  # (K, T B)
        p = np.exp(log_p)
        log_p *= p
        self.interest_entropy = (log_p.sum(axis=0) / -np.log(2.0)).reshape(self.t_total, self.b)
        q = topic_distribution(r["slate_topics"].reshape(-1, r["slate_topics"].shape[-1]), n_topics).T
        self.calibration = calibration_kl(p, q, axis=0).reshape(self.t_total, self.b)
        # Topic diversity of every served slate, from the same (K, T B) topic shares q.
        k = r["slate_topics"].shape[-1]
        self.slate_topic_entropy = _entropy_kn(q).reshape(self.t_total, self.b)
        self.slate_topic_coverage = (_distinct_kn(q) / min(k, n_topics)).reshape(self.t_total, self.b)
        self.initial_entropy = float(interest_entropy(traj.initial_interest, traj.centroids, choice_beta).mean())
        # Sessions, retention, lifetime.
        ended = r["terminated"] | r["truncated"]
        self.session_end, self.session_length = session_lengths(ended)
        cohort = starting_cohort(r["user_id"])
        self.cohort_size = len(cohort)
        self.churn_step = first_churn_step(r["user_id"], r["churned"], cohort)
        self.cohort_reward = cohort_reward(r["reward"], r["user_id"], cohort)
        self.users_seen = users_seen(r["user_id"])
        self.reward_cum = np.cumsum(r["reward"].sum(axis=1, dtype=np.float64))

    def event_slice(self, start: int, end: int) -> slice:
        lo, hi = np.searchsorted(self.event_step, [start, end])
        return slice(int(lo), int(hi))

    def items_available(self, start: int, end: int) -> int:
        """Items in the catalog at some step of [start, end): arrivals during step t are
        shown from step t + 1 on."""
        return self.catalog_size + int(self.arrivals_before[end - 1] - self.arrivals_before[start])


def _window_row(traj: Trajectory, run: _RunArrays, start: int, end: int) -> dict[str, float]:
    r = traj.records
    s = slice(start, end)
    ev = run.event_slice(start, end)
    consumed_rank = r["consumed_topic_rank"][s][run.clicked[s]]
    consumed_share = r["engaged_share"][s][run.clicked[s]]
    in_window = (run.session_end >= start) & (run.session_end < end)
    rmse, mae = prediction_errors(r["predicted"][s], r["expected_item_reward"][s])
    latency = latency_percentiles(traj.latency[s], run.b)
    available = run.items_available(start, end)
    exposure = exposure_counts(r["slate_items"][s])
    return {
        "user_steps": float((end - start) * run.b),
        "reward_per_user_step": reward_per_user_step(r["reward"][s]),
        "ctr": click_through_rate(r["click"][s]),
        "session_length": _mean(run.session_length[in_window]),
        "watch_time_total": total_watch_time(r["engagement"][s]),
        "regret": regret(r["expected_reward"][s], r["oracle_expected_reward"][s])
        if "oracle_expected_reward" in r
        else float("nan"),  # a world built with oracle=False (see Trajectory.notes)
        "exploration_rate": exploration_rate(r["explored"][s]),
        "policy_entropy": policy_entropy(r["propensity"][s]),
        "slate_entropy": slate_entropy(r["propensity"][s]),
        "intra_list_diversity": _mean(r["ild"][s]),
        "catalog_coverage": len(exposure) / available,
        "exposure_gini": gini(exposure, available),
        "topic_entropy": topic_entropy(r["consumed_topic"][s][run.clicked[s]], run.n_topics),
        "slate_topic_entropy": _mean(run.slate_topic_entropy[s]),
        "slate_topic_coverage": _mean(run.slate_topic_coverage[s]),
        "novelty": _mean(run.event_novelty[ev]),
        "interest_entropy": _mean(run.interest_entropy[s]),
        "user_topic_entropy": user_topic_entropy(run.event_user[ev], run.event_topic[ev], run.n_topics),
        "interest_entropy_decline": run.initial_entropy - _mean(run.interest_entropy[s]),
        "preference_shift": _mean(r["preference_shift"][s]),
        "homogenization_cosine": _mean(mean_pairwise_cosine(r["interest"][s])),
        "homogenization_jaccard": jaccard_overlap(run.event_user[ev], run.event_item[ev]),
        "calibration_kl": _mean(run.calibration[s]),
        "retention": retention(run.churn_step, end),
        "churn_rate": churn_rate(r["churned"][s]),
        "lifetime_engagement": lifetime_engagement(float(run.reward_cum[end - 1]), int(run.users_seen[end - 1])),
        "cohort_engagement": cohort_engagement(run.cohort_reward[s], run.cohort_size),
        "prediction_rmse": rmse,
        "prediction_mae": mae,
        "latency_decision_p50_ms": latency["decision_p50"],
        "latency_decision_p95_ms": latency["decision_p95"],
        "latency_batch_p50_ms": latency["batch_p50"],
        "latency_batch_p95_ms": latency["batch_p95"],
        "serendipity": serendipity(consumed_rank, consumed_share),
    }


def window_metrics(traj: Trajectory, window: int, catalog_size: int, choice_beta: float) -> pd.DataFrame:
    """Every metric of :data:`METRICS` per window of ``window`` steps.

    Windows are half-open step ranges ``[step_start, step_end)``; the last one may be
    shorter. Cumulative quantities (novelty's popularity, retention, lifetime engagement)
    count from the start of the trajectory; cohort engagement is the starting cohort's
    reward over the window's own steps.

    Args:
        traj: a trajectory from :func:`experiments.rollout.rollout`.
        window: steps per window, >= 1.
        catalog_size: M, items alive at any time (items that arrive during the run are
            added from ``traj.arrivals``).
        choice_beta: the world's choice beta (``config.choice.beta``), for topic interests.

    Returns:
        One row per window: ``window`` (int, 0-based), ``step_start``, ``step_end`` and one
        float column per metric, in the order of :data:`METRICS`.
    """
    _check_args(window, catalog_size, choice_beta)
    _require(traj)
    return _windows(traj, _RunArrays(traj, int(catalog_size), float(choice_beta)), int(window))


def _windows(traj: Trajectory, run: _RunArrays, window: int) -> pd.DataFrame:
    starts = np.arange(0, run.t_total, window)
    rows = []
    for index, start in enumerate(starts):
        end = min(int(start) + window, run.t_total)
        rows.append({"window": index, "step_start": int(start), "step_end": end, **_window_row(traj, run, start, end)})
    frame = pd.DataFrame(rows, columns=["window", "step_start", "step_end", *METRICS])
    return frame.astype({"window": "int64", "step_start": "int64", "step_end": "int64"})


def run_summary(traj: Trajectory, catalog_size: int, choice_beta: float) -> dict[str, float]:
    """Every metric over the whole run (one window of all T steps), plus the state metrics
    of :data:`FINAL_STATE_METRICS` at the last step as ``<name>_final``.

    Args: as :func:`window_metrics`.

    Returns:
        Metric name -> value (floats; NaN where undefined).
    """
    _check_args(1, catalog_size, choice_beta)
    _require(traj)
    return _summary(traj, _RunArrays(traj, int(catalog_size), float(choice_beta)))


def metrics_tables(
    traj: Trajectory, window: int, catalog_size: int, choice_beta: float
) -> tuple[pd.DataFrame, dict[str, float]]:
    """``(window_metrics(...), run_summary(...))`` from one shared pass over the
    trajectory (the per-event arrays are computed once): cheaper than the two calls."""
    _check_args(window, catalog_size, choice_beta)
    _require(traj)
    run = _RunArrays(traj, int(catalog_size), float(choice_beta))
    return _windows(traj, run, int(window)), _summary(traj, run)


def _summary(traj: Trajectory, run: _RunArrays) -> dict[str, float]:
    t = run.t_total
    summary = _window_row(traj, run, 0, t)
    last = _window_row_state(traj, run, t - 1)
    summary.update({f"{name}_final": last[name] for name in FINAL_STATE_METRICS})
    return summary


def _window_row_state(traj: Trajectory, run: _RunArrays, step: int) -> dict[str, float]:
    """The state metrics of :data:`FINAL_STATE_METRICS` at one step."""
    r = traj.records
    entropy = _mean(run.interest_entropy[step])
    return {
        "interest_entropy": entropy,
        "interest_entropy_decline": run.initial_entropy - entropy,
        "preference_shift": _mean(r["preference_shift"][step]),
        "homogenization_cosine": float(mean_pairwise_cosine(r["interest"][step])),
    }
