"""Off-policy estimators on plain arrays: single-item and slate, with user-bootstrap intervals.

Every estimator is written as a sum of ratios of per-decision sums,

    V = sum_j (sum_i N_ij) / (sum_i D_ij),

(``D = 1`` for plain means, ``D = w`` for self-normalised ones), returned as
:class:`EstimatorTerms`. That one form gives the point estimate, and a bootstrap that
resamples *users* (not decisions: within-user correlation makes a decision-level interval
1.5-1.7x too narrow, see ``docs/ope.md``) as one matrix product: per-user sums (U, M) times
a matrix of multinomial resample counts (R, U).

Shapes: ``n`` logged decisions, ``C`` candidates, ``k`` slate slots, ``U`` users, ``R``
bootstrap resamples. Probabilities are in (0, 1]; rewards in the log's units (minutes or
clicks). Sources are named in each docstring; the single-item formulas follow obp 0.5
(Saito et al. 2021) term for term, which ``tests/test_ope.py`` checks against a fixture of
obp's numbers.

Nothing here reads the simulator: the caller provides arrays (from a decision log, or from
:mod:`experiments.ope_check`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Assumption = Literal["none", "additive", "cascade"]
"""The reward structure a slate estimator needs: none (any reward), additive over slots, or
cascade (the reward at slot j depends only on the items at slots 1..j)."""

ASSUMPTION_TEXT: dict[str, str] = {
    "none": "no reward-structure assumption",
    "additive": "slate reward is a sum of per-slot rewards, each depending only on its own item",
    "cascade": "the reward at slot j depends only on the items at slots 1..j (cascade)",
}


class OPEError(ValueError):
    """Bad input to an estimator: names what is wrong and what is allowed."""


# --------------------------------------------------------------------------------------
# validation helpers


def _as_float(name: str, x: np.ndarray, ndim: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim:
        raise OPEError(f"{name} must be a {ndim}-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise OPEError(f"{name} has NaN or infinite entries (first at index {int(np.argmin(np.isfinite(arr)))})")
    return arr


def _probabilities(name: str, p: np.ndarray, ndim: int, *, allow_zero: bool) -> np.ndarray:
    arr = _as_float(name, p, ndim)
    low_ok = arr >= 0.0 if allow_zero else arr > 0.0
    bad = ~(low_ok & (arr <= 1.0 + 1e-12))
    if bad.any():
        where = np.argwhere(bad)[0]
        allowed = "[0, 1]" if allow_zero else "(0, 1]"
        raise OPEError(f"{name} must lie in {allowed}; entry {tuple(int(i) for i in where)} is {arr[tuple(where)]!r}")
    return arr


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise OPEError(f"arrays must have the same number of decisions (rows); got {lengths}")
    return next(iter(lengths.values()))


def importance_weights(target_prob: np.ndarray, logging_prob: np.ndarray) -> np.ndarray:
    """(n,) importance weights ``w_i = pi_e(a_i | x_i) / pi_0(a_i | x_i)``.

    Args:
        target_prob: (n,) target policy's probability of the logged action, in [0, 1].
        logging_prob: (n,) logging policy's probability of the logged action, in (0, 1]
            (a zero would mean the action could not have been logged).
    """
    pe = _probabilities("target_prob", target_prob, 1, allow_zero=True)
    p0 = _probabilities("logging_prob", logging_prob, 1, allow_zero=False)
    _same_length(target_prob=pe, logging_prob=p0)
    return pe / p0


# --------------------------------------------------------------------------------------
# terms and results


@dataclass(frozen=True)
class EstimatorTerms:
    """An estimator as a sum of ratios of per-decision sums: ``V = sum_j sum_i N_ij / sum_i D_ij``.

    Attributes:
        name: the estimator's short name (``"ips"``, ``"snips"``, ...).
        numerators: (n, m) float64 per-decision numerator terms.
        denominators: (n, m) float64 per-decision denominator terms (ones for plain means).
        weights: (n,) the importance weights the estimator relies on (for diagnostics), or
            None for the direct method.
        assumption: reward-structure assumption (``"none"`` for single-item estimators).
        nonnegative_ips: True when the estimator is a plain mean of nonnegative terms
            ``w_i r_i`` (IPS, possibly clipped): the Thomas et al. (2015) lower bound applies.
    """

    name: str
    numerators: np.ndarray
    denominators: np.ndarray
    weights: np.ndarray | None
    assumption: Assumption = "none"
    nonnegative_ips: bool = False

    def __post_init__(self) -> None:
        if self.numerators.shape != self.denominators.shape or self.numerators.ndim != 2:
            raise OPEError(
                f"{self.name}: numerators and denominators must both be (n, m); got "
                f"{self.numerators.shape} and {self.denominators.shape}"
            )
        if self.assumption not in ASSUMPTION_TEXT:
            raise OPEError(f"{self.name}: assumption must be one of {sorted(ASSUMPTION_TEXT)}, got {self.assumption!r}")

    @property
    def value(self) -> float:
        """The point estimate."""
        return float(np.sum(self.numerators.sum(axis=0) / self.denominators.sum(axis=0)))


def _plain(name: str, per_decision: np.ndarray, weights: np.ndarray | None, **kw: object) -> EstimatorTerms:
    """A plain mean ``(1/n) sum_i t_i`` as terms."""
    t = per_decision[:, None]
    return EstimatorTerms(name, t, np.ones_like(t), weights, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Diagnostics:
    """Overlap diagnostics of one estimate's importance weights.

    Attributes:
        n: logged decisions.
        ess: effective sample size ``(sum w)^2 / sum w^2`` (Kong 1992; Owen 2013, ch. 9).
        ess_fraction: ``ess / n``.
        max_weight: largest importance weight.
        mean_weight: mean weight; its expectation is 1 under the logging policy when the
            propensities are right and the target's support is covered.
        mean_weight_se: user-clustered standard error of the mean weight.
    """

    n: int
    ess: float
    ess_fraction: float
    max_weight: float
    mean_weight: float
    mean_weight_se: float

    @property
    def mean_weight_z(self) -> float:
        """``(mean weight - 1) / SE``: far from 0 (|z| > 3) says the propensities or support are off."""
        if self.mean_weight_se == 0.0:
            return 0.0 if self.mean_weight == 1.0 else float("inf")
        return (self.mean_weight - 1.0) / self.mean_weight_se


@dataclass(frozen=True)
class Estimate:
    """One estimator's result.

    Attributes:
        name: estimator name.
        value: point estimate (reward units per decision).
        ci_low, ci_high: percentile interval of the user bootstrap at ``level``.
        level: the interval's coverage, e.g. 0.95.
        lower_bound: Thomas et al. (2015) high-confidence lower bound at confidence
            ``level`` (NaN when it does not apply: only for IPS with nonnegative rewards).
        assumption: reward-structure assumption (none / additive / cascade).
        assumption_text: the assumption in words.
        diagnostics: overlap diagnostics (None for the direct method, which uses no weights).
        n_boot: bootstrap resamples used.
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    level: float
    lower_bound: float
    assumption: Assumption
    assumption_text: str
    diagnostics: Diagnostics | None
    n_boot: int

    @property
    def ci_width(self) -> float:
        """``ci_high - ci_low``."""
        return self.ci_high - self.ci_low


# --------------------------------------------------------------------------------------
# single-item estimators


def expected_under_target(target_dist: np.ndarray, q_hat: np.ndarray) -> np.ndarray:
    """(n,) ``q_hat(x_i, pi_e) = sum_a pi_e(a | x_i) q_hat(x_i, a)`` from (n, C) arrays."""
    pe = _probabilities("target_dist", target_dist, 2, allow_zero=True)
    q = _as_float("q_hat", q_hat, 2)
    if pe.shape != q.shape:
        raise OPEError(f"target_dist {pe.shape} and q_hat {q.shape} must have the same (n, C) shape")
    sums = pe.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > 1e-6):
        i = int(np.argmax(np.abs(sums - 1.0)))
        raise OPEError(f"target_dist rows must sum to 1; row {i} sums to {sums[i]!r}")
    return np.einsum("nc,nc->n", pe, q)


def dm(q_expected: np.ndarray) -> EstimatorTerms:
    """Direct method: ``V = (1/n) sum_i sum_a pi_e(a|x_i) q_hat(x_i, a)`` (Beygelzimer & Langford 2009;
    Dudik et al. 2011). ``q_expected`` (n,) is :func:`expected_under_target`."""
    return _plain("dm", _as_float("q_expected", q_expected, 1), None)


def ips(reward: np.ndarray, weights: np.ndarray, clip: float = np.inf) -> EstimatorTerms:
    """Inverse propensity scoring with optional clipping (diagnostics use the raw weights):
    ``V = (1/n) sum_i min(w_i, clip) r_i`` (Horvitz & Thompson 1952; Strehl et al. 2010 for
    clipping; obp's ``InverseProbabilityWeighting(lambda_=clip)``)."""
    r, w = _as_float("reward", reward, 1), _as_float("weights", weights, 1)
    _same_length(reward=r, weights=w)
    if not clip > 0:
        raise OPEError(f"clip must be > 0 (np.inf for none), got {clip!r}")
    wc = np.minimum(w, clip)
    name = "ips" if np.isinf(clip) else f"ips(clip={clip:g})"
    return _plain(name, wc * r, w, nonnegative_ips=bool(np.all(r >= 0)))


def snips(reward: np.ndarray, weights: np.ndarray) -> EstimatorTerms:
    """Self-normalised IPS: ``V = sum_i w_i r_i / sum_i w_i`` (Swaminathan & Joachims 2015)."""
    r, w = _as_float("reward", reward, 1), _as_float("weights", weights, 1)
    _same_length(reward=r, weights=w)
    return EstimatorTerms("snips", (w * r)[:, None], w[:, None], w)


def _dr_like(
    name: str, reward: np.ndarray, weights: np.ndarray, q_logged: np.ndarray, q_expected: np.ndarray, used: np.ndarray
) -> EstimatorTerms:
    r = _as_float("reward", reward, 1)
    ql, qe = _as_float("q_logged", q_logged, 1), _as_float("q_expected", q_expected, 1)
    _same_length(reward=r, weights=weights, used=used, q_logged=ql, q_expected=qe)
    return _plain(name, qe + used * (r - ql), weights)


def dr(reward: np.ndarray, weights: np.ndarray, q_logged: np.ndarray, q_expected: np.ndarray) -> EstimatorTerms:
    """Doubly robust: ``V = (1/n) sum_i [q_hat(x_i, pi_e) + w_i (r_i - q_hat(x_i, a_i))]``
    (Dudik, Langford & Li 2011). ``q_logged`` (n,) is ``q_hat(x_i, a_i)``, ``q_expected`` (n,)
    :func:`expected_under_target`."""
    w = _as_float("weights", weights, 1)
    return _dr_like("dr", reward, w, q_logged, q_expected, w)


def sndr(reward: np.ndarray, weights: np.ndarray, q_logged: np.ndarray, q_expected: np.ndarray) -> EstimatorTerms:
    """Self-normalised DR: ``V = (1/n) sum_i q_hat(x_i, pi_e) + sum_i w_i (r_i - q_hat(x_i, a_i)) / sum_i w_i``
    (Kallus & Uehara 2019; obp's ``SelfNormalizedDoublyRobust``)."""
    r, w = _as_float("reward", reward, 1), _as_float("weights", weights, 1)
    ql, qe = _as_float("q_logged", q_logged, 1), _as_float("q_expected", q_expected, 1)
    _same_length(reward=r, weights=w, q_logged=ql, q_expected=qe)
    num = np.stack([qe, w * (r - ql)], axis=1)
    den = np.stack([np.ones_like(w), w], axis=1)
    return EstimatorTerms("sndr", num, den, w)


def switch_dr(
    reward: np.ndarray, weights: np.ndarray, q_logged: np.ndarray, q_expected: np.ndarray, tau: float
) -> EstimatorTerms:
    """Switch-DR: DR whose correction is dropped where the weight exceeds ``tau``,
    ``V = (1/n) sum_i [q_hat(x_i, pi_e) + w_i 1{w_i <= tau} (r_i - q_hat(x_i, a_i))]``
    (Wang, Agarwal & Dudik 2017, in the DR form of obp's ``SwitchDoublyRobust``)."""
    if not tau >= 0:
        raise OPEError(f"tau must be >= 0, got {tau!r}")
    w = _as_float("weights", weights, 1)
    return _dr_like(f"switch-dr(tau={tau:g})", reward, w, q_logged, q_expected, w * (w <= tau))


def dr_os(
    reward: np.ndarray, weights: np.ndarray, q_logged: np.ndarray, q_expected: np.ndarray, lam: float
) -> EstimatorTerms:
    """DR with optimistic shrinkage: DR with ``w_hat = lam w / (w^2 + lam)``
    (Su, Dimakopoulou, Krishnamurthy & Dudik 2020, eq. 9; obp's ``DoublyRobustWithShrinkage``).
    ``lam = 0`` gives DM, ``lam -> inf`` gives DR."""
    if not lam >= 0:
        raise OPEError(f"lam must be >= 0, got {lam!r}")
    w = _as_float("weights", weights, 1)
    shrunk = w if np.isinf(lam) else (lam * w / (w**2 + lam) if lam > 0 else np.zeros_like(w))
    return _dr_like(f"dr-os(lambda={lam:g})", reward, w, q_logged, q_expected, shrunk)


def single_item_estimators(
    reward: np.ndarray,
    logging_prob: np.ndarray,
    target_prob: np.ndarray,
    q_logged: np.ndarray | None = None,
    q_expected: np.ndarray | None = None,
    *,
    clip: float = np.inf,
    tau: float = 10.0,
    lam: float = 10.0,
) -> dict[str, EstimatorTerms]:
    """Every applicable single-item estimator: IPS (clipped at ``clip``), SNIPS and, with a
    reward model (``q_logged``, ``q_expected``), DM, DR, SNDR, Switch-DR (``tau``) and DR-os (``lam``).

    Args:
        reward: (n,) logged rewards.
        logging_prob, target_prob: (n,) probabilities of the logged action.
        q_logged: (n,) reward model at the logged action, or None.
        q_expected: (n,) reward model averaged over the target policy, or None.
    """
    w = importance_weights(target_prob, logging_prob)
    out = {"ips": ips(reward, w, clip), "snips": snips(reward, w)}
    if (q_logged is None) != (q_expected is None):
        raise OPEError("give both q_logged and q_expected (a reward model) or neither")
    if q_logged is not None and q_expected is not None:
        out["dm"] = dm(q_expected)
        out["dr"] = dr(reward, w, q_logged, q_expected)
        out["sndr"] = sndr(reward, w, q_logged, q_expected)
        out["switch-dr"] = switch_dr(reward, w, q_logged, q_expected, tau)
        out["dr-os"] = dr_os(reward, w, q_logged, q_expected, lam)
    return out


# --------------------------------------------------------------------------------------
# slate estimators


def _slate_arrays(**arrays: np.ndarray | None) -> dict[str, np.ndarray]:
    out = {}
    for name, a in arrays.items():
        if a is None:
            continue
        out[name] = _as_float(name, a, 2)
    shapes = {name: a.shape for name, a in out.items()}
    if len(set(shapes.values())) != 1:
        raise OPEError(f"slate arrays must all be (n, k); got {shapes}")
    return out


def slate_sips(slot_reward: np.ndarray, logging_cond: np.ndarray, target_cond: np.ndarray) -> EstimatorTerms:
    """Standard (joint) slate IPS: ``V = (1/n) sum_i w(s_i) sum_j r_ij`` with
    ``w(s) = prod_j pi_e(s_j | x, s_<j) / pi_0(s_j | x, s_<j)`` (Li et al. 2018; Kiyohara et al. 2022).
    No reward-structure assumption; variance grows exponentially with k.

    Args:
        slot_reward: (n, k) reward at each slot (slate reward = row sum).
        logging_cond, target_cond: (n, k) conditional per-slot probabilities of the logged slate.
    """
    a = _slate_arrays(slot_reward=slot_reward, logging_cond=logging_cond, target_cond=target_cond)
    _probabilities("logging_cond", a["logging_cond"], 2, allow_zero=False)
    w = np.prod(a["target_cond"] / a["logging_cond"], axis=1)
    return _plain("sips", w * a["slot_reward"].sum(axis=1), w, assumption="none")


def slate_iips(slot_reward: np.ndarray, logging_marginal: np.ndarray, target_marginal: np.ndarray) -> EstimatorTerms:
    """Independent IPS: ``V = (1/n) sum_i sum_j [pi_e(s_ij at j | x) / pi_0(s_ij at j | x)] r_ij``
    (Li, Kim & Zitouni 2018). Unbiased when the slate reward is additive over slots and
    each slot's reward depends only on its own item.

    Args:
        slot_reward: (n, k) reward at each slot.
        logging_marginal, target_marginal: (n, k) marginal probabilities of the logged item at its slot.
    """
    a = _slate_arrays(slot_reward=slot_reward, logging_marginal=logging_marginal, target_marginal=target_marginal)
    _probabilities("logging_marginal", a["logging_marginal"], 2, allow_zero=False)
    w = a["target_marginal"] / a["logging_marginal"]
    return _plain("iips", (w * a["slot_reward"]).sum(axis=1), w.mean(axis=1), assumption="additive")


def slate_rips(slot_reward: np.ndarray, logging_cond: np.ndarray, target_cond: np.ndarray) -> EstimatorTerms:
    """Reward-interaction IPS: ``V = (1/n) sum_i sum_j w_i(1:j) r_ij``, ``w(1:j)`` the product of
    the conditional ratios of slots 1..j (McInerney et al. 2020; Kiyohara et al. 2022, eq. 4).
    Unbiased under the cascade assumption."""
    a = _slate_arrays(slot_reward=slot_reward, logging_cond=logging_cond, target_cond=target_cond)
    _probabilities("logging_cond", a["logging_cond"], 2, allow_zero=False)
    w = np.cumprod(a["target_cond"] / a["logging_cond"], axis=1)
    return _plain("rips", (w * a["slot_reward"]).sum(axis=1), w[:, -1], assumption="cascade")


def slate_cascade_dr(
    slot_reward: np.ndarray,
    logging_cond: np.ndarray,
    target_cond: np.ndarray,
    q_logged: np.ndarray,
    q_expected: np.ndarray,
) -> EstimatorTerms:
    """Cascade doubly robust (Kiyohara et al. 2022, eq. 6):

    ``V = (1/n) sum_i sum_j [ w_i(1:j) (r_ij - q_hat_j(x_i, s_i,1:j)) + w_i(1:j-1) q_hat_j(x_i, s_i,<j, pi_e) ]``

    with ``w(1:0) = 1``. Unbiased under the cascade assumption for any ``q_hat``; the model
    reduces variance when close.

    Args:
        slot_reward: (n, k) reward at each slot.
        logging_cond, target_cond: (n, k) conditional per-slot probabilities of the logged slate.
        q_logged: (n, k) ``q_hat_j(x, s_1:j)``: the model's reward at slot j for the logged prefix
            (a per-slot reward or the reward-to-go from slot j; both are unbiased).
        q_expected: (n, k) ``sum_a pi_e(a | x, s_<j) q_hat_j(x, s_<j, a)``.
    """
    a = _slate_arrays(
        slot_reward=slot_reward,
        logging_cond=logging_cond,
        target_cond=target_cond,
        q_logged=q_logged,
        q_expected=q_expected,
    )
    _probabilities("logging_cond", a["logging_cond"], 2, allow_zero=False)
    w = np.cumprod(a["target_cond"] / a["logging_cond"], axis=1)
    w_prev = np.concatenate([np.ones((w.shape[0], 1)), w[:, :-1]], axis=1)
    terms = w * (a["slot_reward"] - a["q_logged"]) + w_prev * a["q_expected"]
    return _plain("cascade-dr", terms.sum(axis=1), w[:, -1], assumption="cascade")


def slate_pseudo_inverse(
    slot_reward: np.ndarray,
    logging_cond: np.ndarray,
    target_marginal: np.ndarray,
    target_anywhere: np.ndarray,
    n_candidates: int,
) -> EstimatorTerms:
    """Pseudo-inverse estimator (Swaminathan et al. 2017) for a logger that draws k of C
    candidates uniformly without replacement, in closed form:

    ``V = (1/n) sum_i rho_i sum_j r_ij``,
    ``rho = (C - 1) sum_j pi_e(s_j at j | x) + (C - 1)/(C - k) sum_j pi_e(s_j anywhere | x) - C (k - 1)/(C - k)``.

    ``rho(s) = q_pi^T Gamma^+ 1_s`` with ``Gamma = E_mu[1_s 1_s^T]``; for this logger the
    solution of ``E_mu[rho(s) 1_s] = q_pi`` has the form above (derived in ``docs/ope.md``;
    k = 1 gives IPS, a uniform target gives rho = 1; ``tests/test_ope.py`` checks
    unbiasedness by enumerating every slate). Unbiased when the slate reward is additive
    over slots. Other loggers are refused (Gamma^+ has no closed form in general).

    Args:
        slot_reward: (n, k) reward at each slot.
        logging_cond: (n, k) conditional probabilities of the logged slate; must be ``1 / (C - j)``.
        target_marginal: (n, k) target's probability of showing the logged item s_j at slot j.
        target_anywhere: (n, k) target's probability of showing the logged item s_j at any slot.
        n_candidates: C.
    """
    a = _slate_arrays(
        slot_reward=slot_reward,
        logging_cond=logging_cond,
        target_marginal=target_marginal,
        target_anywhere=target_anywhere,
    )
    k = a["slot_reward"].shape[1]
    if not (isinstance(n_candidates, int | np.integer) and n_candidates > k):
        raise OPEError(
            f"n_candidates must be an integer > k = {k} (C = k leaves no choice of items), got {n_candidates!r}"
        )
    uniform = 1.0 / (n_candidates - np.arange(k))
    if not np.allclose(a["logging_cond"], uniform[None, :], rtol=1e-6, atol=0.0):
        raise OPEError(
            "the pseudo-inverse estimator needs a uniform logger (conditional probabilities "
            f"1/(C - j) = {np.round(uniform, 6).tolist()}); this log's logger is not uniform"
        )
    c = n_candidates
    rho = (
        (c - 1) * a["target_marginal"].sum(axis=1)
        + (c - 1) / (c - k) * a["target_anywhere"].sum(axis=1)
        - c * (k - 1) / (c - k)
    )
    return _plain("pi", rho * a["slot_reward"].sum(axis=1), rho, assumption="additive")


# --------------------------------------------------------------------------------------
# reward model (for DM / DR)


def user_folds(user_id: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) fold index of each decision, every user's decisions in one fold (cross-fitting by user)."""
    if n_folds < 2:
        raise OPEError(f"n_folds must be >= 2, got {n_folds}")
    users, inverse = np.unique(np.asarray(user_id), return_inverse=True)
    if len(users) < n_folds:
        raise OPEError(f"cross-fitting needs at least n_folds = {n_folds} users, got {len(users)}")
    fold_of_user = rng.permutation(len(users)) % n_folds
    return fold_of_user[inverse]


def with_constant(x: np.ndarray) -> np.ndarray:
    """``x`` (..., F) with a column of ones appended: (..., F + 1)."""
    return np.concatenate([x, np.ones((*x.shape[:-1], 1), dtype=x.dtype)], axis=-1)


@dataclass(frozen=True)
class BilinearModel:
    """Cross-fitted bilinear ridge models ``q_hat(x, a) = [x, 1]^T Theta_f [e_a, 1]``.

    Attributes:
        thetas: (K, F_u + 1, F_i + 1) one coefficient matrix per fold, each fitted without
            that fold's users.
        fold: (n,) fold of each decision (whose model predicts it).
    """

    thetas: np.ndarray
    fold: np.ndarray

    def predict(self, user_features: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
        """(n,) ``[x_i, 1]^T Theta_fold(i) [v_i, 1]`` for per-decision item vectors (n, F_i).

        Linear in ``v``: pass the target's mean item features ``sum_a pi_e(a|x) e_a`` to get
        ``q_hat(x, pi_e)`` for DM/DR without materialising (n, C) predictions."""
        u1, v1 = with_constant(np.asarray(user_features, np.float64)), np.asarray(item_vectors, np.float64)
        if v1.shape[-1] == self.thetas.shape[2] - 1:
            v1 = with_constant(v1)
        out = np.empty(len(u1))
        for f in range(len(self.thetas)):
            rows = self.fold == f
            out[rows] = np.einsum("ng,ng->n", u1[rows] @ self.thetas[f], v1[rows])
        return out

    def predict_candidates(self, user_features: np.ndarray, candidate_features: np.ndarray) -> np.ndarray:
        """(n, C) predictions for every candidate (n, C, F_i)."""
        u1, c1 = with_constant(np.asarray(user_features, np.float64)), with_constant(np.asarray(candidate_features))
        out = np.empty(c1.shape[:2])
        for f in range(len(self.thetas)):
            rows = np.flatnonzero(self.fold == f)
            out[rows] = np.einsum("ng,ncg->nc", u1[rows] @ self.thetas[f], c1[rows])
        return out


def fit_bilinear_ridge(
    user_features: np.ndarray,
    item_features: np.ndarray,
    reward: np.ndarray,
    fold: np.ndarray,
    n_folds: int,
    *,
    alpha: float = 1.0,
    chunk: int = 65_536,
) -> np.ndarray:
    """(K, F_u + 1, F_i + 1) ridge coefficients of ``r ~ [x, 1]^T Theta [e, 1]``, one per fold,
    each fitted on the other folds (``n_folds = 1`` with ``fold = 0``: one model on all rows,
    returned as (1, ...)).

    The features of a (user, item) pair are the outer product of the user's features and the
    item's, each with a constant, so the model holds user, item and interaction terms. Gram
    matrices are accumulated in chunks: memory ``O(chunk F_u F_i)``, time ``O(n (F_u F_i)^2)``.

    Args:
        user_features: (n, F_u). item_features: (n, F_i) of the logged items. reward: (n,).
        fold: (n,) fold index in [0, n_folds).
        alpha: ridge penalty (> 0).
    """
    xu = _as_float("user_features", user_features, 2)
    xi = _as_float("item_features", item_features, 2)
    r = _as_float("reward", reward, 1)
    n = _same_length(user_features=xu, item_features=xi, reward=r, fold=np.asarray(fold))
    if not alpha > 0:
        raise OPEError(f"alpha must be > 0, got {alpha!r}")
    du, di = xu.shape[1] + 1, xi.shape[1] + 1
    gram = np.zeros((n_folds, du * di, du * di))
    moment = np.zeros((n_folds, du * di))
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        u1, i1 = with_constant(xu[sl]), with_constant(xi[sl])
        phi = (u1[:, :, None] * i1[:, None, :]).reshape(u1.shape[0], -1)
        for f in range(n_folds):
            m = fold[sl] == f
            gram[f] += phi[m].T @ phi[m]
            moment[f] += phi[m].T @ r[sl][m]
    eye = alpha * np.eye(du * di)
    if n_folds == 1:
        return np.linalg.solve(gram[0] + eye, moment[0]).reshape(1, du, di)
    total_g, total_m = gram.sum(0), moment.sum(0)
    return np.stack(
        [np.linalg.solve(total_g - gram[f] + eye, total_m - moment[f]).reshape(du, di) for f in range(n_folds)]
    )


def cross_fitted_bilinear(
    user_features: np.ndarray,
    logged_item_features: np.ndarray,
    reward: np.ndarray,
    user_id: np.ndarray,
    *,
    alpha: float = 1.0,
    n_folds: int = 5,
    rng: np.random.Generator,
) -> BilinearModel:
    """The default reward model for DM/DR: bilinear ridge, cross-fitted with folds split by
    user (Chernozhukov et al. 2018 cross-fitting; by user because one user's decisions are
    correlated), so no decision is predicted by a model that saw its user's rewards.

    Args:
        user_features: (n, F_u) context. logged_item_features: (n, F_i) features of the logged item.
        reward: (n,). user_id: (n,). alpha: ridge penalty. n_folds: >= 2. rng: draws the folds.
    """
    fold = user_folds(user_id, n_folds, rng)
    thetas = fit_bilinear_ridge(user_features, logged_item_features, reward, fold, n_folds, alpha=alpha)
    return BilinearModel(thetas, fold)


def ridge_reward_model(
    user_features: np.ndarray,
    candidate_features: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    user_id: np.ndarray,
    *,
    alpha: float = 1.0,
    n_folds: int = 5,
    rng: np.random.Generator,
) -> np.ndarray:
    """(n, C) cross-fitted bilinear ridge predictions of every candidate (see :func:`cross_fitted_bilinear`).

    Args:
        user_features: (n, F_u) context.
        candidate_features: (n, C, F_i) features of each decision's candidates.
        action: (n,) logged candidate index.
        reward: (n,) logged reward.
        user_id: (n,) user of each decision.
    """
    xi = np.asarray(candidate_features, dtype=np.float64)
    if xi.ndim != 3:
        raise OPEError(f"candidate_features must be (n, C, F_i), got shape {xi.shape}")
    a = np.asarray(action, dtype=np.int64)
    _same_length(candidate_features=xi, action=a)
    if np.any((a < 0) | (a >= xi.shape[1])):
        raise OPEError(f"action must index the {xi.shape[1]} candidates")
    model = cross_fitted_bilinear(
        user_features, xi[np.arange(len(a)), a], reward, user_id, alpha=alpha, n_folds=n_folds, rng=rng
    )
    return model.predict_candidates(user_features, xi)


def sklearn_reward_model(
    model: str,
    user_features: np.ndarray,
    candidate_features: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    user_id: np.ndarray,
    *,
    n_folds: int = 5,
    rng: np.random.Generator,
    params: Mapping[str, object] | None = None,
) -> np.ndarray:
    """Cross-fitted (by user) scikit-learn regressor on ``[x, e_a]``; returns (n, C) predictions.

    Args:
        model: a regressor by dotted name, e.g. ``"sklearn.ensemble.HistGradientBoostingRegressor"``
            or ``"sklearn.linear_model.Ridge"``.
        params: keyword arguments for the regressor.
    """
    module_name, _, class_name = model.rpartition(".")
    if not module_name.startswith("sklearn"):
        raise OPEError(
            f"reward model must name a scikit-learn regressor like 'sklearn.linear_model.Ridge', got {model!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise OPEError(
            f"reward model {model!r} needs scikit-learn, which is not installed; "
            "install it with `pip install scikit-learn` or use the default ridge model"
        ) from err
    cls = getattr(module, class_name, None)
    if cls is None:
        raise OPEError(f"{module_name} has no {class_name!r}")
    xu = _as_float("user_features", user_features, 2)
    xi = np.asarray(candidate_features, dtype=np.float64)
    a = np.asarray(action, dtype=np.int64)
    r = _as_float("reward", reward, 1)
    n, c = xi.shape[:2]
    fold = user_folds(user_id, n_folds, rng)
    logged = np.concatenate([xu, xi[np.arange(n), a]], axis=1)
    q_hat = np.empty((n, c))
    for f in range(n_folds):
        est = cls(**dict(params or {})).fit(logged[fold != f], r[fold != f])
        rows = np.flatnonzero(fold == f)
        pairs = np.concatenate([np.repeat(xu[rows, None, :], c, axis=1), xi[rows]], axis=2)
        q_hat[rows] = est.predict(pairs.reshape(len(rows) * c, -1)).reshape(len(rows), c)
    return q_hat


# --------------------------------------------------------------------------------------
# inference: user bootstrap, HCOPE lower bound, diagnostics


def _user_index(user_id: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    uid = np.asarray(user_id)
    if uid.shape != (n,):
        raise OPEError(f"user_id must be ({n},), got {uid.shape}")
    _, inverse = np.unique(uid, return_inverse=True)
    return inverse, int(inverse.max()) + 1


def per_user_sums(columns: np.ndarray, inverse: np.ndarray, n_users: int) -> np.ndarray:
    """(U, M) sums of the (n, M) ``columns`` over each user's decisions."""
    out = np.empty((n_users, columns.shape[1]))
    for j in range(columns.shape[1]):
        out[:, j] = np.bincount(inverse, weights=columns[:, j], minlength=n_users)
    return out


def resample_counts(n_users: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(R, U) multinomial counts: how often each user is drawn in each of R resamples of U
    users with replacement (Efron 1979 bootstrap over the cluster units)."""
    draws = rng.integers(0, n_users, size=(n_boot, n_users))
    flat = (draws + (np.arange(n_boot) * n_users)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_users).reshape(n_boot, n_users).astype(np.float64)


def bootstrap_values(
    terms: Mapping[str, EstimatorTerms], user_id: np.ndarray, n_boot: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """(R,) bootstrap replicates of each estimator, resampling users: one matrix product
    ``counts (R, U) @ per-user sums (U, M)`` for all estimators together.

    Replicates whose denominator is zero (e.g. SNIPS when no resampled decision has weight)
    are NaN.
    """
    if n_boot < 1:
        raise OPEError(f"n_boot must be >= 1, got {n_boot}")
    names = list(terms)
    n = next(iter(terms.values())).numerators.shape[0]
    inverse, n_users = _user_index(user_id, n)
    cols, spans = [], {}
    start = 0
    for name in names:
        t = terms[name]
        if t.numerators.shape[0] != n:
            raise OPEError(f"{name}: terms have {t.numerators.shape[0]} rows, expected {n}")
        m = t.numerators.shape[1]
        cols += [t.numerators, t.denominators]
        spans[name] = (start, m)
        start += 2 * m
    sums = per_user_sums(np.concatenate(cols, axis=1), inverse, n_users)
    boot = resample_counts(n_users, n_boot, rng) @ sums
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in names:
            s, m = spans[name]
            out[name] = (boot[:, s : s + m] / boot[:, s + m : s + 2 * m]).sum(axis=1)
    return out


def hcope_lower_bound(x: np.ndarray, delta: float, rng: np.random.Generator, select_fraction: float = 0.05) -> float:
    """High-confidence lower bound on ``E[X]`` for independent nonnegative ``X`` (Thomas,
    Theocharous & Ghavamzadeh 2015, Theorem 1 with one threshold ``c``):

    ``LB = mean(Y) - 7 c ln(2/d) / (3 (n - 1)) - (1/n) sqrt(2 ln(2/d) / (n - 1) (n sum Y^2 - (sum Y)^2))``

    with ``Y = min(X, c)`` and ``d = delta``; it holds with probability >= 1 - delta. As in
    the paper, ``c`` is chosen on a random ``select_fraction`` of the units (maximising the
    bound predicted for the remaining size) and the bound is computed on the rest.

    Args:
        x: (U,) independent nonnegative units (here: per-user IPS sums scaled so their mean
            is the IPS estimate).
        delta: 1 - confidence, in (0, 1).
        rng: draws the selection split.
        select_fraction: share of units used to choose ``c``.
    """
    x = _as_float("x", x, 1)
    if np.any(x < 0):
        raise OPEError("the Thomas et al. (2015) bound needs nonnegative terms (rewards >= 0)")
    if not 0 < delta < 1:
        raise OPEError(f"delta must be in (0, 1), got {delta!r}")
    perm = rng.permutation(len(x))
    n_sel = max(2, round(select_fraction * len(x)))
    if len(x) - n_sel < 2:
        raise OPEError(f"the lower bound needs at least {n_sel + 2} users, got {len(x)}")
    sel, post = x[perm[:n_sel]], x[perm[n_sel:]]
    log_term = np.log(2.0 / delta)

    def bound(y: np.ndarray, c: np.ndarray, n_eval: int) -> np.ndarray:
        yc = np.minimum(y[None, :], c[:, None])
        m = yc.mean(axis=1)
        var = yc.var(axis=1, ddof=1)
        return m - 7 * c * log_term / (3 * (n_eval - 1)) - np.sqrt(2 * log_term * var / n_eval)

    grid = np.unique(np.quantile(sel, np.linspace(0.5, 1.0, 51)))
    grid = grid[grid > 0]
    if grid.size == 0:
        return 0.0
    c = grid[int(np.argmax(bound(sel, grid, len(post))))]
    y = np.minimum(post, c)
    n = len(y)
    lb = (
        y.mean()
        - 7 * c * log_term / (3 * (n - 1))
        - np.sqrt(2 * log_term / (n - 1) * (n * (y**2).sum() - y.sum() ** 2)) / n
    )
    return float(max(lb, 0.0))


def diagnostics(weights: np.ndarray, user_id: np.ndarray) -> Diagnostics:
    """Overlap diagnostics (see :class:`Diagnostics`); the mean weight's SE is clustered by user."""
    w = _as_float("weights", weights, 1)
    inverse, n_users = _user_index(user_id, len(w))
    n = len(w)
    sum_w, sum_w2 = w.sum(), (w**2).sum()
    ess = float(sum_w**2 / sum_w2) if sum_w2 > 0 else 0.0
    mean = float(w.mean())
    resid = np.bincount(inverse, weights=w - mean, minlength=n_users)
    se = float(np.sqrt((resid**2).sum() * n_users / max(n_users - 1, 1)) / n)
    return Diagnostics(n, ess, ess / n, float(w.max()), mean, se)


def estimate(
    terms: Mapping[str, EstimatorTerms],
    user_id: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    rng: np.random.Generator,
) -> dict[str, Estimate]:
    """Point estimates, user-bootstrap percentile intervals, the HCOPE lower bound (IPS with
    nonnegative rewards) and diagnostics for each estimator in ``terms``."""
    if not 0 < level < 1:
        raise OPEError(f"level must be in (0, 1), got {level!r}")
    boot_rng, bound_rng = rng.spawn(2)
    reps = bootstrap_values(terms, user_id, n_boot, boot_rng)
    alpha = 1.0 - level
    n = next(iter(terms.values())).numerators.shape[0]
    inverse, n_users = _user_index(user_id, n)
    out = {}
    for name, t in terms.items():
        lo, hi = (
            np.nanquantile(reps[name], [alpha / 2, 1 - alpha / 2]) if np.isfinite(reps[name]).any() else (np.nan,) * 2
        )
        lb = np.nan
        if t.nonnegative_ips:
            per_user = np.bincount(inverse, weights=t.numerators[:, 0], minlength=n_users) * (n_users / n)
            lb = hcope_lower_bound(per_user, alpha, bound_rng)
        out[name] = Estimate(
            name=t.name,
            value=t.value,
            ci_low=float(lo),
            ci_high=float(hi),
            level=level,
            lower_bound=float(lb),
            assumption=t.assumption,
            assumption_text=ASSUMPTION_TEXT[t.assumption],
            diagnostics=None if t.weights is None else diagnostics(t.weights, user_id),
            n_boot=n_boot,
        )
    return out


# --------------------------------------------------------------------------------------
# verdict


@dataclass(frozen=True)
class Verdict:
    """Whether the estimates can be trusted on this log.

    Attributes:
        conclusive: False when overlap is poor or estimators disagree.
        reasons: why not (empty when conclusive).
    """

    conclusive: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)


def verdict(
    estimates: Mapping[str, Estimate],
    *,
    min_ess_fraction: float = 0.01,
    max_mean_weight_z: float = 3.0,
) -> Verdict:
    """ "Inconclusive" rules: the effective sample size below ``min_ess_fraction`` of the log,
    the mean importance weight more than ``max_mean_weight_z`` standard errors from 1, or two
    estimators (with the same or no reward-structure assumption) whose intervals do not overlap."""
    reasons = []
    key = next((k for k in ("ips", "sips") if k in estimates and estimates[k].diagnostics is not None), None)
    key = key or next((k for k, e in estimates.items() if e.diagnostics is not None), None)
    raw = None if key is None else estimates[key].diagnostics
    if raw is not None:
        if raw.ess_fraction < min_ess_fraction:
            reasons.append(
                f"effective sample size {raw.ess:.0f} is {raw.ess_fraction:.2%} of the log (< {min_ess_fraction:.0%})"
            )
        if abs(raw.mean_weight_z) > max_mean_weight_z:
            reasons.append(
                f"mean importance weight {raw.mean_weight:.3f} is {raw.mean_weight_z:+.1f} SE from 1 "
                "(propensities wrong or the target leaves the logger's support)"
            )
    items = [e for e in estimates.values() if np.isfinite(e.ci_low)]
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            if a.assumption == b.assumption and (a.ci_high < b.ci_low or b.ci_high < a.ci_low):
                reasons.append(
                    f"{a.name} [{a.ci_low:.4g}, {a.ci_high:.4g}] and "
                    f"{b.name} [{b.ci_low:.4g}, {b.ci_high:.4g}] disagree"
                )
    return Verdict(not reasons, tuple(reasons))
