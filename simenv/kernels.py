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

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numba import njit
from numba.core.dispatcher import Dispatcher

from simenv.choice import UNIFORM_HALF_WIDTH as SQRT3

_jit = njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
"""The kernels' compiler: cached machine code, sums free to use vector lanes."""
_inline = njit(cache=True, nogil=True, fastmath={"reassoc", "contract"}, inline="always")
"""For helpers called per user: inlined, so no array views are built per call."""


class StepParams(NamedTuple):
    """The scalar parameters of a step (see :class:`simenv.config.WorldConfig`)."""

    beta: float
    no_click_utility: float
    appeal_weight: float
    satisfaction_weight: float
    cascade: bool
    affinity_weight: float
    value_weight: float
    response_bias: float
    noise: float
    reward_is_click: bool
    amplification: float
    amplification_by_watch: float
    exposure: float
    skip_repulsion: float
    satiation: float
    satiation_decay: float
    drift: float
    budget_cost: float
    budget_restore: float
    satisfaction_rate: float
    value_satisfaction: float
    idle_satisfaction: float
    churn_threshold: float
    churn_hazard: float
    max_steps: int


class Items(NamedTuple):
    """The catalog's arrays, by slot (M,) (see :class:`simenv.catalog.Catalog`)."""

    features: np.ndarray  # (M, F_i) float32: embedding (d), appeal, length / mean, fresh
    item_id: np.ndarray  # (M,) int64
    topic: np.ndarray  # (M,) int32
    appeal: np.ndarray  # (M,) float32
    value: np.ndarray  # (M,) float32
    length: np.ndarray  # (M,) float32 minutes


class Users(NamedTuple):
    """The population's arrays, by row (P,) (see :class:`simenv.population.Population`)."""

    interest: np.ndarray  # (P, d) float32 theta
    satiation: np.ndarray  # (P, K) float32
    history: np.ndarray  # (P, K) float32 consumed items per topic
    satisfaction: np.ndarray  # (P,) float32 lasting satisfaction S
    observed: np.ndarray  # (P, o) float32 noisy partial view of theta
    user_id: np.ndarray  # (P,) int64


class Sessions(NamedTuple):
    """The N sessions' state: who is served and what they were offered."""

    users: np.ndarray  # (N,) int64 population row of each session's user
    slots: np.ndarray  # (N, C) int64 catalog slot of each candidate
    utility: np.ndarray  # (N, C) float32 true position-free utility of each candidate
    budget: np.ndarray  # (N,) float32 remaining session budget
    steps: np.ndarray  # (N,) int64 steps taken in the session


class Noise(NamedTuple):
    """The world's draws for one step (from its own generators: common random numbers)."""

    choice: np.ndarray  # (N,) uniforms for the click
    response: np.ndarray  # (N,) uniforms for the watch time
    drift: np.ndarray  # (N, d) float64 standard normals, or (0, d) when drift is off
    churn: np.ndarray  # (N,) uniforms for leaving, or (0,) when churn is off


class Observed(NamedTuple):
    """What :func:`observe` writes, by session row (N, ...)."""

    candidates: np.ndarray  # (N, C, F_i) float32
    item_ids: np.ndarray  # (N, C) int64
    user: np.ndarray  # (N, F_u) float32
    user_id: np.ndarray  # (N,) int64
    utility: np.ndarray  # (N, C) float32 ground truth
    best_slate: np.ndarray  # (N, k) int64 myopic oracle's slate, or (0, k) when off


class Record(NamedTuple):
    """What :func:`serve` writes for the step just taken, by session row (N, ...): the
    step's ground truth (every field but reward, terminated and truncated goes into
    ``info`` under its name)."""

    slate_items: np.ndarray  # (N, k) int64 item ids
    slate_topics: np.ndarray  # (N, k) int64
    choice_probs: np.ndarray  # (N, k + 1) float64, last: no click
    click: np.ndarray  # (N,) int64 position clicked, -1 none
    engagement: np.ndarray  # (N,) float32 minutes watched
    engaged_share: np.ndarray  # (N,) float32 minutes watched / item length (0 without a click)
    expected_item_reward: np.ndarray  # (N, k) float64 expected reward of each item if clicked
    expected_reward: np.ndarray  # (N,) float64 the slate's expected reward
    oracle_expected_reward: np.ndarray  # (N,) float64, or (0,) when the oracle is off
    consumed_topic: np.ndarray  # (N,) int64, -1 none
    interest_before: np.ndarray  # (N, d) float32 theta before the step
    interest: np.ndarray  # (N, d) float32 theta after the step
    satisfaction: np.ndarray  # (N,) float32 S after the step
    churned: np.ndarray  # (N,) bool: the user left for good
    reward: np.ndarray  # (N,) float32 minutes (or 1 per click)
    terminated: np.ndarray  # (N,) bool: budget spent or churned
    truncated: np.ndarray  # (N,) bool: max_steps reached


class FixedTypeCall:
    """A kernel called straight into its machine code, for arguments whose types never change.

    numba's dispatcher types every argument on every call, a named tuple field by field:
    about 6 us per call of :func:`observe` or :func:`serve`, a third of a single
    session's step. A :class:`~simenv.simulator.Simulator` passes the same kinds of
    arrays every step (the same dtypes, dimensions and C layout; only values and lengths
    change), so it types them once, on the first call, and later calls go to the
    compiled entry point directly. The one place the dispatcher is bypassed: the caller
    must keep the argument types fixed (an array of another layout or dtype would be
    read wrongly, unchecked).
    """

    def __init__(self, kernel: Dispatcher) -> None:
        self.kernel = kernel
        self._entry: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        if self._entry is None:
            self._entry = self.kernel.compile(tuple(self.kernel.typeof_pyval(a) for a in args))
        return self._entry(*args)

    def __reduce__(self) -> tuple[type, tuple[Dispatcher]]:
        """Copies (``copy.deepcopy``, pickle) start untyped: they type their own first call."""
        return FixedTypeCall, (self.kernel,)


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
def _no_click_utility(satisfaction: float, p: StepParams) -> float:
    """u_0 of a user at lasting satisfaction S (:func:`simenv.choice.no_click_utility`)."""
    return p.no_click_utility - p.satisfaction_weight * (satisfaction - 0.5)


@_inline
def _watch_share(affinity: float, value: float, p: StepParams) -> float:
    """Pre-noise watched share f (:func:`simenv.choice.engagement_share`)."""
    return _expit(p.affinity_weight * affinity + p.value_weight * value + p.response_bias)


@_inline
def _reward_if_clicked(share: float, length: float, p: StepParams) -> float:
    """Expected reward given a click (:func:`simenv.choice.expected_engagement`, or 1)."""
    if p.reward_is_click:
        return 1.0
    h = SQRT3 * p.noise
    if h == 0.0:
        return length * min(max(share, 0.0), 1.0)
    return length * (_clipped_integral(share + h) - _clipped_integral(share - h)) / (2.0 * h)


@_jit
def observe(
    rows: np.ndarray,
    users: np.ndarray,
    slots: np.ndarray,
    items: Items,
    pop: Users,
    p: StepParams,
    penalty: np.ndarray,
    out: Observed,
) -> None:
    """Write the observation of sessions ``rows`` (B,) whose users are ``users`` (B,) and
    whose retrieved catalog slots are ``slots`` (B, C), into ``out`` at ``rows``.

    Per session: the candidates' features (C, F_i) and ids (C,); the true utilities
    ``u_c = theta . e_c + alpha a_c - gamma s[topic_c]`` (C,) float32; the user features
    ``[observed (o), history / max(total, 1) (K), log1p(total)]`` (see
    :meth:`simenv.population.Population.features`); and, if ``out.best_slate`` has rows,
    the myopic oracle's slate (:func:`_best_slate_into`).
    """
    n_cand = slots.shape[1]
    d = pop.interest.shape[1]
    n_feat = items.features.shape[1]
    o = pop.observed.shape[1]
    n_topics = pop.history.shape[1]
    k = out.best_slate.shape[1]
    oracle = out.best_slate.shape[0] > 0
    reward = np.empty(n_cand)
    length = np.empty(n_cand)
    weight = np.empty(n_cand)
    score = np.empty(n_cand)
    order = np.empty(n_cand, dtype=np.int64)
    table = np.empty((n_cand + 1, k + 1))
    factor = np.exp(-p.beta * penalty)  # MNL position factors c_p
    for i in range(rows.shape[0]):
        r, u = rows[i], users[i]
        satiation = pop.satiation[u]
        for j in range(n_cand):
            s = slots[i, j]
            dot = 0.0
            for f in range(d):
                x = items.features[s, f]
                out.candidates[r, j, f] = x
                dot += pop.interest[u, f] * x
            for f in range(d, n_feat):
                out.candidates[r, j, f] = items.features[s, f]
            utility = dot + p.appeal_weight * items.appeal[s]
            if p.satiation != 0.0:
                utility -= p.satiation * satiation[items.topic[s]]
            out.utility[r, j] = utility
            out.item_ids[r, j] = items.item_id[s]
            if oracle:  # the watch-share logit and length, turned into rewards in one vector pass
                reward[j] = p.affinity_weight * dot + p.value_weight * items.value[s] + p.response_bias
                length[j] = items.length[s]
        for f in range(o):
            out.user[r, f] = pop.observed[u, f]
        total = 0.0
        for t in range(n_topics):
            total += pop.history[u, t]
        scale = 1.0 / max(total, 1.0)
        for t in range(n_topics):
            out.user[r, o + t] = pop.history[u, t] * scale
        out.user[r, o + n_topics] = np.log1p(total)
        out.user_id[r] = pop.user_id[u]
        if oracle:
            for j in range(n_cand):  # float32 exp: half the cost of float64's, ample for a share
                share = 1.0 / (1.0 + np.exp(np.float32(-reward[j])))
                reward[j] = _reward_if_clicked(share, length[j], p)
            u0 = _no_click_utility(pop.satisfaction[u], p)
            best = out.best_slate[r]
            _best_slate_into(out.utility[r], reward, u0, penalty, factor, p, best, weight, score, order, table)


@_inline
def _best_slate_into(
    utility: np.ndarray,
    reward: np.ndarray,
    u0: float,
    penalty: np.ndarray,
    factor: np.ndarray,
    p: StepParams,
    out: np.ndarray,
    weight: np.ndarray,
    score: np.ndarray,
    order: np.ndarray,
    table: np.ndarray,
) -> None:
    """The slate (k,) of largest expected reward for one user's candidates, into ``out``.

    ``utility`` (C,) position-free utilities, ``reward`` (C,) expected reward given a
    click, ``u0`` the no-click utility, ``factor`` (k,) the MNL position factors
    ``exp(-beta penalty)``; ``weight``, ``score``, ``order`` (C,) and
    ``table`` (C + 1, k + 1) are scratch. MNL: Dinkelbach's method, exact (see
    :func:`simenv.choice.optimal_slate`); cascade: the dynamic programme over items in
    decreasing reward (exact without position bias).
    """
    n, k = utility.shape[0], out.shape[0]
    if p.cascade:
        _cascade_best_into(utility, reward, u0, penalty, p, out, score, order, table)
        return
    top = p.beta * u0
    for c in range(n):
        top = max(top, p.beta * utility[c])
    w0 = np.exp(p.beta * u0 - top)
    for c in range(n):
        weight[c] = np.exp(np.float32(p.beta * utility[c] - top))
    lam, best = 0.0, -1.0
    for _ in range(_DINKELBACH_ROUNDS):
        for c in range(n):
            score[c] = weight[c] * (reward[c] - lam)
        _top_k_into(score, order[:k], score)
        num, den = 0.0, w0
        for j in range(k):
            w = weight[order[j]] * factor[j]
            num += w * reward[order[j]]
            den += w
        value = num / den if den > 0.0 else 0.0  # den underflows only at extreme beta and penalties
        if value > best:
            best = value
            for j in range(k):
                out[j] = order[j]
        if value <= lam * (1.0 + 1e-12) + 1e-300:  # no progress: lam is the optimum
            break
        lam = value


_DINKELBACH_ROUNDS = 64
"""Iteration cap of the oracle's Dinkelbach loop (it stops after a few in practice)."""


@_inline
def _cascade_best_into(
    utility: np.ndarray,
    reward: np.ndarray,
    u0: float,
    penalty: np.ndarray,
    p: StepParams,
    out: np.ndarray,
    score: np.ndarray,
    order: np.ndarray,
    table: np.ndarray,
) -> None:
    """Cascade oracle: items in decreasing ``reward`` (an exchange argument shows the best
    order of any set is by decreasing reward when click rates do not depend on the
    position), then ``f[i, m] = max(f[i + 1, m], r_i R_i + (1 - r_i) f[i + 1, m - 1])``
    over the first item i and the m positions left, with ``r_i`` the click probability
    at position k - m."""
    n, k = utility.shape[0], out.shape[0]
    for c in range(n):
        score[c] = -reward[c]
    order[:] = np.argsort(score, kind="mergesort")
    table[n, 0] = 0.0
    for m in range(1, k + 1):
        table[n, m] = -np.inf
    for i in range(n - 1, -1, -1):
        c = order[i]
        table[i, 0] = 0.0
        for m in range(1, k + 1):
            rate = _expit(p.beta * (utility[c] - penalty[k - m] - u0))
            take = rate * reward[c] + (1.0 - rate) * table[i + 1, m - 1]
            table[i, m] = max(table[i + 1, m], take)
    m, j = k, 0
    for i in range(n):
        if m == 0:
            break
        if table[i, m] != table[i + 1, m]:  # taking item i is the better branch
            out[j] = order[i]
            j += 1
            m -= 1


@njit(cache=True, nogil=True, inline="always", fastmath={"reassoc", "nnan", "ninf", "nsz", "contract"})
def _top_k_into(scores: np.ndarray, out: np.ndarray, work: np.ndarray) -> None:
    """Indices of the k largest of the finite ``scores`` (C,) into ``out`` (k,), best
    first; ties keep the lower index first. ``work`` (C,) is scratch (it may be
    ``scores`` itself, which is then overwritten).

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


_MASKED = -3.0e38
"""Below every score (|u| <= 1 + alpha |a| + gamma; |x| <= max reward): marks a
candidate already taken."""


@_inline
def _slate_law(
    slate: np.ndarray,
    slots: np.ndarray,
    utility: np.ndarray,
    u0: float,
    user_satiation: np.ndarray,
    items: Items,
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
    top = p.beta * u0  # MNL: logits' running max, for a stable softmax
    for j in range(k):
        c = slate[j]
        s = slots[c]
        u = utility[c]
        affinity = u - p.appeal_weight * items.appeal[s]  # theta . e, recovered from u
        if p.satiation != 0.0:
            affinity += p.satiation * user_satiation[items.topic[s]]
        share[j] = _watch_share(affinity, items.value[s], p)
        value[j] = _reward_if_clicked(share[j], items.length[s], p)
        probs[j] = u - penalty[j]  # position-penalised utility, turned into a probability below
        if not p.cascade:
            top = max(top, p.beta * probs[j])
    if p.cascade:
        reach = 1.0
        for j in range(k):
            click = _expit(p.beta * (probs[j] - u0))
            probs[j] = reach * click
            reach *= 1.0 - click
        probs[k] = reach
    else:
        total = np.exp(p.beta * u0 - top)
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


@_inline
def _pull(theta: np.ndarray, features: np.ndarray, slots: np.ndarray, keep: float, weight: float) -> None:
    """``theta <- normalize(keep theta + weight sum_s e_s)`` over item ``slots`` (the
    shared step of :func:`simenv.dynamics.amplify`, ``expose`` and ``repel``)."""
    for f in range(theta.shape[0]):
        theta[f] *= keep
    for s in slots:
        for f in range(theta.shape[0]):
            theta[f] += weight * features[s, f]
    _normalize(theta)


@_jit
def serve(
    slate: np.ndarray,
    best_slate: np.ndarray,
    sessions: Sessions,
    items: Items,
    pop: Users,
    penalty: np.ndarray,
    p: StepParams,
    noise: Noise,
    rec: Record,
) -> None:
    """Serve slates (N, k) to the N sessions and move their users' state on, in place.

    Per session: the slate's law (:func:`_slate_law`) and, if ``best_slate`` has rows,
    the oracle slate's expected reward; a click by inverse CDF on ``noise.choice``
    (:func:`simenv.choice.sample_choice`); watch time from ``noise.response``
    (:func:`~simenv.choice.sample_engagement`); then the dynamics of
    :mod:`simenv.dynamics` in order: amplify toward the clicked item (scaled by the
    watched share), expose toward the slate's mean, repel from the skipped items, drift,
    satiate, count the consumed topic, update lasting satisfaction, spend the budget,
    churn by hazard, and end the session on a spent budget, churn or ``max_steps``.
    Writes ``rec``; updates ``pop`` at the sessions' users and ``sessions``' budget and steps.
    """
    n, k = slate.shape
    d = pop.interest.shape[1]
    oracle = best_slate.shape[0] > 0
    share = np.empty(k)
    spare_probs = np.empty(k + 1)
    spare_share = np.empty(k)
    spare_value = np.empty(k)
    theta = np.empty(d)
    shown = np.empty(k, dtype=np.int64)
    for b in range(n):
        u = sessions.users[b]
        slots = sessions.slots[b]
        u0 = _no_click_utility(pop.satisfaction[u], p)
        rec.expected_reward[b] = _slate_law(
            slate[b], slots, sessions.utility[b], u0, pop.satiation[u], items, penalty, p,
            rec.choice_probs[b], share, rec.expected_item_reward[b],
        )  # fmt: skip
        if oracle:
            rec.oracle_expected_reward[b] = _slate_law(
                best_slate[b], slots, sessions.utility[b], u0, pop.satiation[u], items, penalty, p,
                spare_probs, spare_share, spare_value,
            )  # fmt: skip

        # Choice and engagement.
        pos, cdf = -1, 0.0
        for j in range(k):
            cdf += rec.choice_probs[b, j]
            if noise.choice[b] < cdf:
                pos = j
                break
        rec.click[b] = pos
        for j in range(k):
            shown[j] = slots[slate[b, j]]
            rec.slate_items[b, j] = items.item_id[shown[j]]
            rec.slate_topics[b, j] = items.topic[shown[j]]
        engaged = 0.0
        topic = -1
        chosen = -1
        if pos >= 0:
            chosen = shown[pos]
            l_j = items.length[chosen]
            v = SQRT3 * (2.0 * noise.response[b] - 1.0)
            w = np.float32(min(max(l_j * (share[pos] + p.noise * v), 0.0), l_j))
            rec.engagement[b] = w
            engaged = w / l_j
            topic = items.topic[chosen]
        else:
            rec.engagement[b] = 0.0
        rec.engaged_share[b] = engaged
        rec.consumed_topic[b] = topic
        rec.reward[b] = (pos >= 0) if p.reward_is_click else rec.engagement[b]

        # Interest dynamics: amplify, expose, repel, drift.
        for f in range(d):
            theta[f] = pop.interest[u, f]
            rec.interest_before[b, f] = theta[f]
        eta = p.amplification * (1.0 - p.amplification_by_watch + p.amplification_by_watch * engaged)
        if pos >= 0 and eta != 0.0:
            _pull(theta, items.features, shown[pos : pos + 1], 1.0 - eta, eta)
        if p.exposure != 0.0:
            _pull(theta, items.features, shown, 1.0 - p.exposure, p.exposure / k)
        skipped = k - (pos >= 0)
        if p.skip_repulsion != 0.0 and skipped > 0:
            if pos >= 0:  # the clicked item moves to the front, the skipped ones follow
                shown[0], shown[pos] = shown[pos], shown[0]
            _pull(theta, items.features, shown[k - skipped :], 1.0, -p.skip_repulsion / skipped)
        if p.drift != 0.0:
            for f in range(d):
                theta[f] += p.drift * noise.drift[b, f]
            _normalize(theta)
        for f in range(d):
            pop.interest[u, f] = theta[f]
            rec.interest[b, f] = theta[f]

        # Satiation, history, lasting satisfaction, budget, churn, session end.
        for t in range(pop.satiation.shape[1]):
            pop.satiation[u, t] *= p.satiation_decay
        signal = p.idle_satisfaction
        if topic >= 0:
            pop.satiation[u, topic] += 1.0 - p.satiation_decay
            pop.history[u, topic] += 1.0
            signal = _expit(p.value_satisfaction * items.value[chosen])
        sat = (1.0 - p.satisfaction_rate) * pop.satisfaction[u] + p.satisfaction_rate * signal
        pop.satisfaction[u] = sat
        rec.satisfaction[b] = pop.satisfaction[u]
        sessions.budget[b] = sessions.budget[b] - p.budget_cost + p.budget_restore * engaged
        sessions.steps[b] += 1
        leaves = False
        if noise.churn.shape[0] > 0:
            hazard = p.churn_hazard * max(0.0, 1.0 - rec.satisfaction[b] / p.churn_threshold)
            leaves = noise.churn[b] < hazard
        rec.churned[b] = leaves
        rec.terminated[b] = sessions.budget[b] <= 0 or leaves
        rec.truncated[b] = sessions.steps[b] >= p.max_steps and not rec.terminated[b]
