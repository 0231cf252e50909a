"""The world's step as fused, compiled loops (numba): one pass per session.

The model is specified by the pure numpy functions of :mod:`simenv.choice` and
:mod:`simenv.dynamics` (each documented with its source and checked against hand
computations). Composed in numpy, one step costs about 200 array calls and several passes
over the (N, C, F_i) candidate block; a single user's step is then bound by call overhead
and a large population by temporaries. These kernels do the same arithmetic, user by
user, in two loops: :func:`observe` (retrieved candidates -> observation, true
utilities, the myopic best slate) and :func:`serve` (slate -> choice, engagement,
dynamics, session end). ``tests/test_kernels.py`` checks them against the composition of
the pure functions.

Nothing here draws random numbers: the simulator draws them from its own generators
(common random numbers) and passes them in. All arrays are C-contiguous unless stated.

Compiled once per machine and cached beside this file. Sums may be reassociated into
vector lanes (``fastmath`` reassoc/contract only: no NaN or infinity assumptions, except in
the top-k's max), so the same seed gives the same numbers on one machine; across CPUs
with other vector widths the last bits may differ, as they do for numpy's own sums.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from simenv.choice import UNIFORM_HALF_WIDTH as SQRT3

_jit = njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
"""The kernels' compiler: cached machine code, sums free to use vector lanes."""
_inline = njit(cache=True, nogil=True, fastmath={"reassoc", "contract"}, inline="always")
"""For helpers called per user: inlined, so no array views are built per call."""


class StepParams(NamedTuple):
    """The scalar parameters :func:`serve` needs (see :class:`simenv.config.WorldConfig`)."""

    beta: float
    no_click_utility: float
    quality_weight: float
    cascade: bool
    affinity_weight: float
    response_quality_weight: float
    response_bias: float
    noise: float
    reward_is_click: bool
    amplification: float
    exposure: float
    satiation: float
    satiation_decay: float
    drift: float
    budget_cost: float
    budget_restore: float
    satisfaction_rate: float
    churn_threshold: float
    max_steps: int


def standard_normal_into(rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """Fill the float64 array ``out`` with ``rng.standard_normal(out.shape)``'s numbers.

    The same numbers and generator state either way: numba's ``Generator`` reproduces
    numpy's stream. A large buffer goes through a compiled loop, about 3.5x faster than
    numpy's own fill here; a small one through numpy, since handing a ``Generator`` to a
    compiled function costs about 5 us.
    """
    if out.size >= _COMPILED_FILL_MIN:
        _fill_standard_normal(rng, out.reshape(-1))
    else:
        rng.standard_normal(out=out)
    return out


_COMPILED_FILL_MIN = 4096
"""Draws from which :func:`standard_normal_into` takes the compiled loop."""


@_jit
def _fill_standard_normal(rng: np.random.Generator, out: np.ndarray) -> None:
    for i in range(out.shape[0]):
        out[i] = rng.standard_normal()


@_jit
def repair_slates(action: np.ndarray, n_candidates: int, slate: np.ndarray, repaired: np.ndarray) -> int:
    """Copy ``action`` (B, k) into ``slate`` with repeats replaced (rule of
    :func:`simenv.simulator.repair_slate`), flags in ``repaired`` (B,).

    Returns:
        -1, or the first row holding an index outside [0, n_candidates) (nothing is
        written past it).
    """
    b, k = action.shape
    used = np.zeros(n_candidates, dtype=np.bool_)
    repeat = np.zeros(k, dtype=np.bool_)
    for row in range(b):
        changed = False
        for j in range(k):
            c = action[row, j]
            if c < 0 or c >= n_candidates:
                return row
            slate[row, j] = c
            repeat[j] = used[c]
            changed |= used[c]
            used[c] = True
        free = 0
        for j in range(k):
            if repeat[j]:
                while used[free]:
                    free += 1
                slate[row, j] = free
                used[free] = True
        repaired[row] = changed
        for c in range(n_candidates):  # cheaper than tracking: C is small
            used[c] = False
    return -1


@_jit
def observe(
    rows: np.ndarray,
    users: np.ndarray,
    slots: np.ndarray,
    item_features: np.ndarray,
    item_id: np.ndarray,
    item_topic: np.ndarray,
    interest: np.ndarray,
    satiation: np.ndarray,
    observed: np.ndarray,
    history: np.ndarray,
    user_id: np.ndarray,
    quality_weight: float,
    satiation_weight: float,
    out_candidates: np.ndarray,
    out_item_ids: np.ndarray,
    out_utility: np.ndarray,
    out_user: np.ndarray,
    out_user_id: np.ndarray,
    out_best: np.ndarray,
) -> None:
    """Write the observation of sessions ``rows`` (B,) whose users are ``users`` (B,) and
    whose retrieved catalog slots are ``slots`` (B, C).

    Per session: the candidates' features (C, F_i) and ids (C,); the true utilities
    ``u_c = theta . e_c + alpha q_c - gamma s[topic_c]`` (C,) float32; the user features
    ``[observed (o), history / max(total, 1) (K), log1p(total)]`` (see
    :meth:`simenv.population.Population.features`); and, if ``out_best`` has rows, the
    myopic best slate: the k highest utilities, best first, ties to the lower index.

    Args:
        item_features: (M, F_i) float32, the first d columns the embedding e, column d the
            quality q. interest: (P, d) float32 theta. satiation, history: (P, K) float32.
        out_*: the (N, ...) buffers, written at ``rows``; ``out_best`` (N, k) or (0, k).
    """
    n_cand = slots.shape[1]
    d = interest.shape[1]
    n_feat = item_features.shape[1]
    o = observed.shape[1]
    n_topics = history.shape[1]
    oracle = out_best.shape[0] > 0
    work = np.empty(slots.shape[1], dtype=np.float32)
    for i in range(rows.shape[0]):
        r, u = rows[i], users[i]
        for j in range(n_cand):
            s = slots[i, j]
            dot = 0.0
            for f in range(d):
                x = item_features[s, f]
                out_candidates[r, j, f] = x
                dot += interest[u, f] * x
            for f in range(d, n_feat):
                out_candidates[r, j, f] = item_features[s, f]
            dot += quality_weight * item_features[s, d]
            if satiation_weight != 0.0:
                dot -= satiation_weight * satiation[u, item_topic[s]]
            out_utility[r, j] = dot
            out_item_ids[r, j] = item_id[s]
        for f in range(o):
            out_user[r, f] = observed[u, f]
        total = 0.0
        for t in range(n_topics):
            total += history[u, t]
        scale = 1.0 / max(total, 1.0)
        for t in range(n_topics):
            out_user[r, o + t] = history[u, t] * scale
        out_user[r, o + n_topics] = np.log1p(total)
        out_user_id[r] = user_id[u]
    if oracle:  # the myopic best slates, from the utilities just written
        for i in range(rows.shape[0]):
            _top_k_into(out_utility[rows[i]], out_best[rows[i]], work)


@njit(cache=True, nogil=True, inline="always", fastmath={"reassoc", "nnan", "ninf", "nsz", "contract"})
def _top_k_into(scores: np.ndarray, out: np.ndarray, work: np.ndarray) -> None:
    """Indices of the k largest of the finite ``scores`` (C,) into ``out`` (k,), best
    first; ties keep the lower index first. ``work`` (C,) is scratch.

    k rounds of (max, first index of the max, mask it out): the max is a vectorised
    reduction and the scan stops at the first hit, so the rounds cost few mispredicted
    branches (insertion into a sorted prefix mispredicts about twice per insertion).
    """
    n = scores.shape[0]
    for c in range(n):
        work[c] = scores[c]
    for j in range(out.shape[0]):
        best = work[0]
        for c in range(1, n):
            best = max(best, work[c])
        c = 0
        while work[c] != best:
            c += 1
        out[j] = c
        work[c] = _MASKED


_MASKED = np.float32(-3.0e38)
"""Below every utility (|u| <= 1 + alpha |q| + gamma): marks a candidate already taken."""


@_inline
def _expit(x: float) -> float:
    """The logistic sigmoid, stable for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + np.exp(-x))
    z = np.exp(x)
    return z / (1.0 + z)


@_inline
def _clipped_integral(x: float) -> float:
    """``integral_0^x clip(t, 0, 1) dt`` (see :func:`simenv.choice._clipped_integral`)."""
    inside = min(max(x, 0.0), 1.0)
    return 0.5 * inside * inside + max(x - 1.0, 0.0)


@_inline
def _slate_law(
    slate: np.ndarray,
    slots: np.ndarray,
    utility: np.ndarray,
    user_satiation: np.ndarray,
    item_topic: np.ndarray,
    quality: np.ndarray,
    length: np.ndarray,
    penalty: np.ndarray,
    p: StepParams,
    probs: np.ndarray,
    share: np.ndarray,
    value: np.ndarray,
) -> float:
    """One user's law for one slate (k,) of candidate indices: choice probabilities
    ``probs`` (k + 1,), last the no-click (:func:`simenv.choice.mnl_probs` or
    :func:`~simenv.choice.cascade_probs`), pre-noise watched shares ``share`` (k,)
    (:func:`~simenv.choice.engagement_share`), each item's expected reward given a click
    ``value`` (k,) (:func:`~simenv.choice.expected_engagement`); returns the slate's
    expected reward ``sum_j probs_j value_j``.
    """
    k = slate.shape[0]
    h = SQRT3 * p.noise
    top = p.beta * p.no_click_utility  # MNL: logits' running max, for a stable softmax
    for j in range(k):
        c = slate[j]
        s = slots[c]
        u = utility[c]
        affinity = u - p.quality_weight * quality[s]  # theta . e, recovered from u
        if p.satiation != 0.0:
            affinity += p.satiation * user_satiation[item_topic[s]]
        share[j] = _expit(p.affinity_weight * affinity + p.response_quality_weight * quality[s] + p.response_bias)
        if p.reward_is_click:
            value[j] = 1.0
        elif h == 0.0:
            value[j] = length[s] * min(max(share[j], 0.0), 1.0)
        else:
            value[j] = length[s] * (_clipped_integral(share[j] + h) - _clipped_integral(share[j] - h)) / (2.0 * h)
        probs[j] = u - penalty[j]  # position-penalised utility, turned into a probability below
        if not p.cascade:
            top = max(top, p.beta * probs[j])
    if p.cascade:
        reach = 1.0
        for j in range(k):
            click = _expit(p.beta * (probs[j] - p.no_click_utility))
            probs[j] = reach * click
            reach *= 1.0 - click
        probs[k] = reach
    else:
        total = np.exp(p.beta * p.no_click_utility - top)
        probs[k] = total
        for j in range(k):
            probs[j] = np.exp(p.beta * probs[j] - top)
            total += probs[j]
        for j in range(k + 1):
            probs[j] /= total
    expected = 0.0
    for j in range(k):
        expected += probs[j] * value[j]
    return expected


@_inline
def _normalize(theta: np.ndarray) -> None:
    """Scale ``theta`` (d,) to unit L2 norm in place (zeros stay zero)."""
    total = 0.0
    for x in theta:
        total += x * x
    if total > 0:
        scale = 1.0 / np.sqrt(total)
        for f in range(theta.shape[0]):
            theta[f] *= scale


@_jit
def serve(
    slate: np.ndarray,
    best_slate: np.ndarray,
    slots: np.ndarray,
    utility: np.ndarray,
    users: np.ndarray,
    item_features: np.ndarray,
    item_id: np.ndarray,
    item_topic: np.ndarray,
    quality: np.ndarray,
    length: np.ndarray,
    interest: np.ndarray,
    satiation: np.ndarray,
    history: np.ndarray,
    satisfaction: np.ndarray,
    budget: np.ndarray,
    session_steps: np.ndarray,
    penalty: np.ndarray,
    p: StepParams,
    choice_uniform: np.ndarray,
    response_uniform: np.ndarray,
    drift_normal: np.ndarray,
    probs: np.ndarray,
    item_value: np.ndarray,
    expected: np.ndarray,
    oracle_expected: np.ndarray,
    click: np.ndarray,
    watch: np.ndarray,
    reward: np.ndarray,
    consumed_topic: np.ndarray,
    slate_items: np.ndarray,
    slate_topics: np.ndarray,
    theta_after: np.ndarray,
    satisfaction_after: np.ndarray,
    churned: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
) -> None:
    """Serve slates (N, k) to the N sessions and move their users' state on, in place.

    Per session: the slate's law (:func:`_slate_law`) and, if ``best_slate`` has rows,
    the best slate's expected reward; a click by inverse CDF on ``choice_uniform``
    (:func:`simenv.choice.sample_choice`); watch time from ``response_uniform``
    (:func:`~simenv.choice.sample_engagement`); then the dynamics of
    :mod:`simenv.dynamics` in order: amplify toward the clicked item, expose toward the
    mean of the shown-but-unclicked ones, drift by ``drift_normal`` (N, d) float64 (or
    (0, d) when off), satiate, count the consumed topic, update satisfaction, spend the
    budget, and end the session on a spent budget, churn or ``max_steps``.

    Args:
        slots, utility: (N, C) the sessions' catalog slots and true utilities.
        users: (N,) population rows. item_features: (M, F_i) float32, the first d columns
            the embedding (the whole rows are passed: a C-contiguous row is read with
            vector loads, a strided view of the embedding would not be).
        interest, satiation, history, satisfaction: population state, updated at ``users``.
        budget, session_steps: (N,) session state, updated.
        penalty: (k,) position penalties.
        probs (N, k + 1) float64, item_value (N, k), expected (N,), oracle_expected (N,)
        or (0,), click (N,) int64 (-1: none), watch (N,) float32, consumed_topic (N,)
        int64 (-1: none), reward (N,) float32 (minutes watched, or 1 per click),
        slate_items (N, k) int64 ids, slate_topics (N, k) int64, theta_after (N, d)
        float32, satisfaction_after (N,) float32, churned, terminated and truncated (N,)
        bool: outputs.
    """
    n, k = slate.shape
    d = interest.shape[1]
    oracle = best_slate.shape[0] > 0
    share = np.empty(k)
    spare_probs = np.empty(k + 1)
    spare_share = np.empty(k)
    spare_value = np.empty(k)
    theta = np.empty(d)
    for b in range(n):
        u = users[b]
        expected[b] = _slate_law(
            slate[b], slots[b], utility[b], satiation[u], item_topic, quality, length, penalty, p,
            probs[b], share, item_value[b],
        )  # fmt: skip
        if oracle:
            oracle_expected[b] = _slate_law(
                best_slate[b], slots[b], utility[b], satiation[u], item_topic, quality, length, penalty, p,
                spare_probs, spare_share, spare_value,
            )  # fmt: skip

        # Choice and engagement.
        pos, cdf = -1, 0.0
        for j in range(k):
            cdf += probs[b, j]
            if choice_uniform[b] < cdf:
                pos = j
                break
        click[b] = pos
        for j in range(k):
            s = slots[b, slate[b, j]]
            slate_items[b, j] = item_id[s]
            slate_topics[b, j] = item_topic[s]
        engaged = 0.0
        topic = -1
        chosen = -1
        if pos >= 0:
            chosen = slots[b, slate[b, pos]]
            l_j = length[chosen]
            v = SQRT3 * (2.0 * response_uniform[b] - 1.0)
            w = np.float32(min(max(l_j * (share[pos] + p.noise * v), 0.0), l_j))
            watch[b] = w
            engaged = w / l_j
            topic = item_topic[chosen]
        else:
            watch[b] = 0.0
        consumed_topic[b] = topic
        reward[b] = (pos >= 0) if p.reward_is_click else watch[b]

        # Interest dynamics: amplify, expose, drift.
        for f in range(d):
            theta[f] = interest[u, f]
        if pos >= 0 and p.amplification != 0.0:
            for f in range(d):
                theta[f] = (1.0 - p.amplification) * theta[f] + p.amplification * item_features[chosen, f]
            _normalize(theta)
        unclicked = k - (pos >= 0)
        if p.exposure != 0.0 and unclicked > 0:
            weight = p.exposure / unclicked
            for f in range(d):
                theta[f] *= 1.0 - p.exposure
            for j in range(k):
                if j != pos:
                    s = slots[b, slate[b, j]]
                    for f in range(d):
                        theta[f] += weight * item_features[s, f]
            _normalize(theta)
        if p.drift != 0.0:
            for f in range(d):
                theta[f] += p.drift * drift_normal[b, f]
            _normalize(theta)
        for f in range(d):
            interest[u, f] = theta[f]
            theta_after[b, f] = theta[f]

        # Satiation, history, satisfaction, budget, session end.
        for t in range(satiation.shape[1]):
            satiation[u, t] *= p.satiation_decay
        if topic >= 0:
            satiation[u, topic] += 1.0 - p.satiation_decay
            history[u, topic] += 1.0
        sat = (1.0 - p.satisfaction_rate) * satisfaction[u] + p.satisfaction_rate * engaged
        satisfaction[u] = sat
        satisfaction_after[b] = satisfaction[u]
        budget[b] = budget[b] - p.budget_cost + p.budget_restore * engaged
        session_steps[b] += 1
        churned[b] = satisfaction[u] < p.churn_threshold
        terminated[b] = budget[b] <= 0 or churned[b]
        truncated[b] = session_steps[b] >= p.max_steps and not terminated[b]
