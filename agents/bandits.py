"""Linear contextual bandits in numpy, batched over users.

Registered agents (all share one feature map, :class:`FeatureMap`):

* ``linear_egreedy``: epsilon-greedy over a ridge regression of reward (Sutton & Barto 2018, ch. 2).
* ``linucb``: LinUCB with "disjoint" formulas (Li et al. 2010, Alg. 1) over one shared
  parameter vector. The *arms* are the C candidates of each user-step; they are described
  by the joint (user, item) context ``x = phi(user, item)``, so one model serves every arm
  and every user (items come and go, so per-item models would rarely see data).
* ``linucb_hybrid``: hybrid LinUCB (Li et al. 2010, Alg. 2). Shared features ``z = phi(user, item)``
  with parameters beta common to all, plus per-*user* parameters theta_a on the item
  embedding ``x = e``: here an "arm" of Li et al. is a user slot ``user_id % user_slots``, so
  the per-arm part learns each returning user's latent interest (collisions share a slot).
* ``lints``: linear Thompson sampling (Agrawal & Goyal 2013), theta ~ N(theta_hat, v^2 A^-1).
* ``discounted_linucb``: D-LinUCB for non-stationary worlds (Russac, Vernade & Cappé 2019),
  exponential forgetting with factor gamma per environment step.
* ``dp_linucb``: LinUCB on differentially private statistics (Shariff & Sheffet 2018): the
  Gram matrix of ``[x, r]`` is released through the tree-based (binary) mechanism with
  Gaussian noise calibrated to (epsilon, delta), see :class:`PrivateRidge`.

Learning signal (all agents): every shown item is one regression row; the clicked item has
the observed reward (minutes watched, or 1 for a click), the shown-but-not-clicked items
reward 0. The model therefore estimates the expected reward an item brings when shown in a
slate, which is what ranking needs, and gets k rows per decision instead of one.

Slates and propensities: candidates are ranked by their score (UCB, sampled or mean) and the
top k served, best first. The UCB agents are deterministic given the observation, so every
propensity is 1 and a decision counts as explored when its slate differs from the top-k by
the mean prediction (the width changed the slate). Epsilon-greedy explores per slot with exact
propensities; LinTS estimates its propensities by Monte Carlo (see :class:`LinTS`).
``predicted`` is the model's mean reward of each served item (minutes, in an engagement world).
Serving never builds the (B, C, D) context tensor: for a fixed user the map is linear in the
item features, ``x = T_b [v, 1]``, so means and widths are computed in the (F_i + 1)-dimensional
item space with per-user ``T_b^T theta`` and ``T_b^T M T_b`` (:class:`Projected`), in float32
(the statistics stay float64).

Shared statistics: a batch of B users adds B k rows at once. For the shared model
``A += X^T X`` is one matrix product and ``A^-1`` is refreshed once per step with a Cholesky
factorisation of the small D x D matrix (D = :attr:`FeatureMap.dim`, 28 on the default
world): its cost O(D^3) is independent of B, whereas Woodbury would factor a (B k) x (B k)
matrix and sequential Sherman-Morrison would take B k rank-one O(D^2) steps in a Python loop.
Per-user statistics of ``linucb_hybrid`` get one rank-k block update per step in recursive
least-squares form (Woodbury with a k x k Cholesky factor; no d x d inversion), in a compiled
loop over the users (see :func:`_hybrid_update`).

Speed (``experiments/bench_agents.py``, B = 1,024, C = 50, k = 5, one BLAS thread): on a
small machine every numpy pass over a (B, C, ...) array costs a fraction of a millisecond,
so the hot paths minimise passes: per-user Gram matrices are assembled elementwise from the
structure of T_b (:meth:`Projected.gram`), the top-k of scores and means is one stacked
argmax loop (:func:`top_k`), LinTS propensities take one masked max over the candidates
(:func:`slate_propensities`) and share their Monte Carlo draws within small user groups.
The hybrid's per-user matrices are too small for numpy's batched products, so its hot paths
are compiled loops over users (numba; see :class:`HybridLinUCB`).

Determinism: all randomness comes from the ``rng`` passed to :meth:`act`, except the noise of
``dp_linucb``'s mechanism, which uses its own generator seeded by its ``seed`` parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.linalg.blas import dtrmm

from agents.base import Agent, Decision, Feedback, Observation
from agents.registry import AgentError, register
from agents.slates import epsilon_greedy_slates, greedy_slates, slate_epsilon_greedy_slates
from simenv import WorldSpec

# ---------------------------------------------------------------------------- validation


def _check_number(
    agent: str,
    name: str,
    value: Any,
    lo: float,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
) -> None:
    """Raise :class:`AgentError` naming ``agent.name``, the allowed range and ``value``."""
    kind = "an integer" if integer else "a number"
    allowed = f"{kind} in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if integer:
        ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    else:
        ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        raise AgentError(f"{agent}.{name} must be {allowed}; got {value!r}")


# ---------------------------------------------------------------------------- features


@dataclass(frozen=True)
class FeatureMap:
    """The context vector of a (user, candidate) pair, for a linear model of reward.

    The world's utility is ``theta . e + alpha q - gamma s[c]`` and the observed user
    features start with ``o = observed_dims`` noisy coordinates ``u ~ theta[:o]``. The map is

    ``phi(user, item) = [u_1 e_1, ..., u_o e_o,  e_1, ..., e_d,  q, l / l_mean, fresh,  1]``

    * ``u * e[:o]`` (elementwise, o columns): the observed part of the affinity theta . e; a
      weight near 1 per column recovers ``theta[:o] . e[:o]`` up to the observation noise;
    * the item features (the embedding: what the population likes on average; quality,
      length and freshness);
    * a bias.

    D = o + F_i + 1 columns (F_i = d + 3 item features); 28 on the default world. The
    unobserved part of theta is left to per-user parameters (``linucb_hybrid``).

    Attributes:
        observed_dims: o, recovered from the spec as ``user_dim - n_topics - 1``.
        item_dim: F_i. embedding_dim: d.
    """

    observed_dims: int
    item_dim: int
    embedding_dim: int

    @classmethod
    def from_spec(cls, spec: WorldSpec) -> FeatureMap:
        observed = spec.user_dim - spec.n_topics - 1
        if not 0 <= observed <= spec.embedding_dim:
            raise AgentError(
                f"spec.user_dim must be observed_dims + n_topics + 1 with observed_dims in "
                f"[0, {spec.embedding_dim}]; got user_dim {spec.user_dim}, n_topics {spec.n_topics}"
            )
        return cls(observed_dims=observed, item_dim=spec.item_dim, embedding_dim=spec.embedding_dim)

    @property
    def dim(self) -> int:
        """D, the length of a context vector."""
        return self.observed_dims + self.item_dim + 1

    def __call__(self, user: np.ndarray, items: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """Context vectors.

        Args:
            user: (B, F_u) observed user features.
            items: (B, n, F_i) item features (n candidates, or the k served items).
            dtype: of the result (learning uses float64).

        Returns:
            (B, n, D) array of ``dtype``.
        """
        o, f = self.observed_dims, self.item_dim
        b, n, _ = items.shape
        x = np.empty((b, n, self.dim), dtype=dtype)
        np.multiply(items[:, :, :o], user[:, None, :o], out=x[:, :, :o])
        x[:, :, o : o + f] = items
        x[:, :, -1] = 1.0
        return x


@dataclass(frozen=True)
class Projected:
    """Contexts ``x_bc = phi(user_b, item_c)`` of B users' C candidates, kept factored.

    For a fixed user the map is linear in the item features: ``x = T_b [v, 1]`` with
    ``T_b = diag(s_b) S``, ``s_b = [u_b[:o], 1, ..., 1]`` (D,) and S the fixed (D, F + 1)
    0/1 matrix sending row d to column d (cross features) or d - o (item features, bias).
    So ``x . theta = [v, 1] . T_b^T theta`` and ``x^T M x = [v, 1]^T (T_b^T M T_b) [v, 1]``:
    scores are computed in the (F + 1)-dimensional item space and the (B, C, D) context
    tensor is never built. ``S^T y`` ("fold") adds the o cross entries onto the first o.

    Attributes:
        items: (B, C, F) float32 candidate features v. row_scale: (B, D) float32 s_b.
        observed: o. scale: optional (B, C) per-context factor an agent applies to its scores.
    """

    items: np.ndarray
    row_scale: np.ndarray
    observed: int
    scale: np.ndarray | None = None

    @classmethod
    def of(cls, features: FeatureMap, obs: Observation) -> Projected:
        o, user = features.observed_dims, obs["user"]
        row_scale = np.ones((len(user), features.dim), dtype=np.float32)
        row_scale[:, :o] = user[:, :o]
        return cls(items=obs["candidates"], row_scale=row_scale, observed=o)

    def fold(self, y: np.ndarray) -> np.ndarray:
        """``S^T y`` over the last axis: (..., D) -> (..., F + 1)."""
        o = self.observed
        out = y[..., o:].copy()
        out[..., :o] += y[..., :o]
        return out

    def linear(self, theta: np.ndarray, *, bias: bool = True) -> np.ndarray:
        """``x . theta`` for theta (D,) -> (B, C), or per user and draw theta (B, n, D) -> (B, n, C).

        ``bias=False`` leaves out the bias term ``theta[-1]``: a constant per user and draw,
        so the ranking of the C candidates is unchanged (and one pass saved)."""
        f = self.items.shape[-1]
        theta = theta.astype(np.float32)
        if theta.ndim == 1:
            w = self.fold(theta * self.row_scale)  # (B, F + 1) = T_b^T theta
            out = np.matvec(self.items, w[:, :f])
            return out + w[:, f:] if bias else out
        w = self.fold(theta * self.row_scale[:, None, :])  # (B, n, F + 1)
        out = w[:, :, :f] @ self.items.transpose(0, 2, 1)
        if bias:
            out += w[:, :, f:]
        return out

    def linear_t(self, theta: np.ndarray) -> np.ndarray:
        """(B, C, n) ``x . theta`` without the bias term for per-user draws theta (B, n, D):
        :meth:`linear` (``bias=False``) laid out candidate-major."""
        o, f = self.observed, self.items.shape[-1]
        w = theta[:, :, o : o + f].astype(np.float32)  # (B, n, F): T_b^T theta without the bias
        w[:, :, :o] += theta[:, :, :o] * self.row_scale[:, None, :o]
        return self.items @ w.transpose(0, 2, 1)

    def squared_norm(self) -> np.ndarray:
        """(B, C) ``|x|^2``: T_b^T T_b is diagonal (one non-zero per row of T_b)."""
        diag = self.fold(np.square(self.row_scale))  # (B, F + 1)
        f = self.items.shape[-1]
        return np.matvec(np.square(self.items), diag[:, :f]) + diag[:, f:]

    def gram(self, matrix: np.ndarray) -> np.ndarray:
        """(B, F + 1, F + 1) float32 ``T_b^T M T_b`` for a symmetric M (D, D).

        Only the o cross rows of T_b depend on the user (``x[:o] = u[:o] * w[:o]``, the rest
        of x is w = [v, 1]), so with M split into cross (c, first o) and item-space (i) blocks,
        ``T_b^T M T_b = M_ii + diag-scaled M_ci rows/columns + (u u^T) * M_cc`` on the first o
        rows and columns: elementwise work, no per-user matrix product."""
        o = self.observed
        m = np.asarray(matrix, dtype=np.float32)
        u = self.row_scale[:, :o]
        gram = np.repeat(m[None, o:, o:], len(u), axis=0)
        cross = u[:, :, None] * m[None, :o, o:]  # (B, o, F + 1)
        gram[:, :o, :] += cross
        gram[:, :, :o] += cross.transpose(0, 2, 1)
        gram[:, :o, :o] += (u[:, :, None] * u[:, None, :]) * m[None, :o, :o]
        return gram

    def jacobian(self) -> np.ndarray:
        """(B, D, F + 1) the maps T_b written out."""
        b, dim = self.row_scale.shape
        o, f = self.observed, self.items.shape[-1]
        jac = np.zeros((b, dim, f + 1), dtype=np.float32)
        jac[:, np.arange(dim), np.r_[np.arange(o), np.arange(f + 1)]] = self.row_scale
        return jac

    def quadratic(self, gram: np.ndarray) -> np.ndarray:
        """(B, C) ``[v, 1]^T N_b [v, 1]`` for per-user symmetric N (B, F + 1, F + 1), e.g. :meth:`gram`."""
        f = self.items.shape[-1]
        v = self.items
        q = np.einsum("bcf,bcf->bc", v @ gram[:, :f, :f], v)  # einsum: faster than vecdot here
        q += 2.0 * np.matvec(v, gram[:, :f, f])
        q += gram[:, f, f][:, None]
        return q


def served_rows(obs: Observation, decision: Decision, feedback: Feedback) -> tuple[np.ndarray, np.ndarray]:
    """Served items and their regression targets.

    Returns:
        ``(items, rewards)``: (B, k, F_i) features of the served items, in slate order, and
        (B, k) targets: the reward at the clicked position, 0 elsewhere (no click: all 0).
    """
    slates = decision.slates
    b, k = slates.shape
    rows = np.arange(b)
    candidates = obs["candidates"]
    flat = (rows[:, None] * candidates.shape[1] + slates).ravel()
    items = candidates.reshape(-1, candidates.shape[2]).take(flat, axis=0).reshape(b, k, -1)
    rewards = np.zeros((b, k), dtype=np.float64)
    clicked = np.flatnonzero(feedback.clicks >= 0)
    rewards[clicked, feedback.clicks[clicked]] = feedback.rewards[clicked]
    return items, rewards


# ---------------------------------------------------------------------------- statistics


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix through its Cholesky factor."""
    factor = cho_factor(matrix, lower=True, check_finite=False)
    inverse = cho_solve(factor, np.eye(len(matrix)), check_finite=False)
    return (inverse + inverse.T) / 2.0


class Ridge:
    """Ridge regression statistics of a linear reward model (Li et al. 2010, Alg. 1):
    ``A = lam I + sum x x^T`` (D, D), ``b = sum r x`` (D,), ``theta = A^-1 b``.

    :meth:`add` takes a whole batch of rows; ``A^-1`` is refreshed once per call by a
    Cholesky factorisation (see the module docstring for why).
    """

    def __init__(self, dim: int, lam: float) -> None:
        self.lam = lam
        self.A = lam * np.eye(dim)
        self.b = np.zeros(dim)
        self.A_inv = np.eye(dim) / lam
        self.theta = np.zeros(dim)
        self.n_rows = 0
        self.refresh()

    def add(self, x: np.ndarray, r: np.ndarray) -> None:
        """Add rows x (n, D) with targets r (n,)."""
        self.A += x.T @ x
        self.b += x.T @ r
        self.n_rows += len(x)
        self.refresh()

    def refresh(self) -> None:
        """Recompute A^-1 and theta after A or b changed."""
        self.A_inv = _spd_inverse(self.A)
        self.theta = self.A_inv @ self.b

    def width_matrix(self) -> np.ndarray:
        """M such that the confidence width of x is ``sqrt(x^T M x)``: here ``A^-1``."""
        return self.A_inv


class DiscountedRidge(Ridge):
    """Exponentially discounted ridge statistics (Russac et al. 2019, D-LinUCB).

    With one discount per step t (a batch of rows X_t):
    ``V_t = gamma V_{t-1} + X_t^T X_t + (1 - gamma) lam I`` (= sum_s gamma^(t-s) X_s^T X_s + lam I),
    ``W_t = gamma^2 W_{t-1} + X_t^T X_t + (1 - gamma^2) lam I``, ``b_t = gamma b_{t-1} + X_t^T r_t``,
    ``theta = V^-1 b`` and the width of x is ``sqrt(x^T V^-1 W V^-1 x)``.
    """

    def __init__(self, dim: int, lam: float, gamma: float) -> None:
        self.gamma = gamma
        self.W = lam * np.eye(dim)
        super().__init__(dim, lam)

    def add(self, x: np.ndarray, r: np.ndarray) -> None:
        g, lam, eye = self.gamma, self.lam, np.eye(len(self.b))
        gram = x.T @ x
        self.A = g * self.A + gram + (1.0 - g) * lam * eye
        self.W = g * g * self.W + gram + (1.0 - g * g) * lam * eye
        self.b = g * self.b + x.T @ r
        self.n_rows += len(x)
        self.refresh()

    def width_matrix(self) -> np.ndarray:
        """``V^-1 W V^-1`` (D, D)."""
        width = self.A_inv @ self.W @ self.A_inv
        return (width + width.T) / 2.0


def zcdp_rho(epsilon: float, delta: float) -> float:
    """The zCDP budget rho whose conversion is (epsilon, delta)-DP (Bun & Steinke 2016, Prop. 1.3):
    rho-zCDP implies (rho + 2 sqrt(rho ln(1/delta)), delta)-DP, solved for rho:
    ``sqrt(rho) = sqrt(ln(1/delta) + epsilon) - sqrt(ln(1/delta))``. Valid for every epsilon > 0."""
    log_inv = math.log(1.0 / delta)
    return (math.sqrt(log_inv + epsilon) - math.sqrt(log_inv)) ** 2


def symmetric_gaussian(dim: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """(dim, dim) symmetric matrix whose upper triangle (with diagonal) is i.i.d. N(0, sigma^2)."""
    upper = np.triu(sigma * rng.standard_normal((dim, dim)))
    return upper + np.triu(upper, 1).T


class PrivateRidge(Ridge):
    """Ridge statistics released with (epsilon, delta) differential privacy (Shariff & Sheffet 2018).

    Privacy unit: one decision (event level, as one round in Shariff & Sheffet; neighbouring
    histories add or remove one decision's feedback): the k rows
    ``z_j = [x_j / feature_bound, r_j / reward_bound]`` it adds, with ``|x|`` clipped to
    ``feature_bound`` and ``r`` to ``[0, reward_bound]``, so ``|z_j|^2 <= 2`` and the record's
    Gram contribution ``sum_j z_j z_j^T`` has Frobenius norm at most ``Delta = 2 k``.

    Mechanism: the augmented Gram matrix ``G = sum z z^T`` ((D+1) x (D+1), holding X^T X and
    b = X^T r) is released after every step through the tree-based mechanism (Dwork et al.
    2010; Chan, Shi & Song 2011), as in Shariff & Sheffet: each node of a binary tree over
    ``horizon`` steps holds its partial sum plus symmetric Gaussian noise; a release adds the
    at most m = ceil(log2(horizon + 1)) nodes covering the prefix. A record lies in one node
    per level, so the L2 sensitivity of all node releases together is sqrt(m) Delta, and each
    node's noise (i.i.d. on the upper triangle, whose L2 norm is at most the Frobenius norm,
    mirrored) has ``sigma = sqrt(m) Delta / sqrt(2 rho)`` with rho from :func:`zcdp_rho`
    (Gaussian mechanism in zCDP, Bun & Steinke 2016, Prop. 1.6 and Lemma 2.3). After
    ``horizon`` steps the final release is kept and a new tree starts for the next block;
    blocks hold disjoint records, so the guarantee stays (epsilon, delta).

    Regularisation: Shariff & Sheffet shift the noisy Gram by a bound on the noise norm; we
    instead project the noisy X^T X onto the positive semi-definite cone (eigenvalues clipped
    at 0) and add lam I, which is post-processing and costs no privacy.
    The model predicts the scaled reward r / reward_bound.
    """

    def __init__(
        self,
        dim: int,
        lam: float,
        *,
        epsilon: float,
        delta: float,
        horizon: int,
        rows_per_record: int,
        feature_bound: float,
        reward_bound: float,
        seed: int,
    ) -> None:
        super().__init__(dim, lam)
        self.feature_bound = feature_bound
        self.reward_bound = reward_bound
        self.horizon = horizon
        self.levels = max(1, math.ceil(math.log2(horizon + 1)))
        self.sensitivity = 2.0 * rows_per_record
        self.sigma = math.sqrt(self.levels) * self.sensitivity / math.sqrt(2.0 * zcdp_rho(epsilon, delta))
        self.rng = np.random.default_rng(seed)
        self._released_base = np.zeros((dim + 1, dim + 1))
        self._block = np.zeros((dim + 1, dim + 1))
        self._noise = np.zeros((self.levels, dim + 1, dim + 1))
        self._t = 0

    def scale(self, x: np.ndarray) -> np.ndarray:
        """Clip rows of x (..., D) to norm ``feature_bound`` and divide by it (norm <= 1)."""
        norm = np.linalg.norm(x, axis=-1, keepdims=True)
        return x / np.maximum(norm, self.feature_bound)

    def add(self, x: np.ndarray, r: np.ndarray) -> None:
        """Add raw rows x (n, D) and rewards r (n,) of one step; release the noisy statistics."""
        z = np.concatenate([self.scale(x), np.clip(r / self.reward_bound, 0.0, 1.0)[:, None]], axis=1)
        self._block += z.T @ z
        self.n_rows += len(x)
        self._t += 1
        level = (self._t & -self._t).bit_length() - 1  # the new node's level: trailing zeros of t
        self._noise[:level] = 0.0
        self._noise[level] = symmetric_gaussian(len(z.T), self.sigma, self.rng)
        released = self._released_base + self._block + self._noise.sum(axis=0)
        if self._t == self.horizon:
            self._released_base = released
            self._block[:] = 0.0
            self._noise[:] = 0.0
            self._t = 0
        self._set_from_release(released)

    def _set_from_release(self, released: np.ndarray) -> None:
        d = len(self.b)
        gram = (released[:d, :d] + released[:d, :d].T) / 2.0
        values, vectors = np.linalg.eigh(gram)
        self.A = (vectors * np.maximum(values, 0.0)) @ vectors.T + self.lam * np.eye(d)
        self.b = released[:d, d].copy()
        self.refresh()


# ---------------------------------------------------------------------------- agents


class LinearBandit(Agent):
    """Shared machinery: features, a ridge model, serving and learning from every shown item.

    Subclasses implement :meth:`choose` (scores to a Decision). ``predicted`` in every
    Decision is the model's mean reward x . theta of each served item (for a click-reward
    world, a click probability; for engagement, expected minutes when shown).
    """

    state_fields = ("model.A", "model.b", "model.A_inv", "model.theta", "model.n_rows")

    def __init__(self, spec: WorldSpec, *, lam: float, **params: Any) -> None:
        _check_number(self.name, "lam", lam, 0.0, lo_open=True)
        super().__init__(spec, lam=lam, **params)
        self.features = FeatureMap.from_spec(spec)
        self.model = self.make_model(self.features.dim, lam)

    def make_model(self, dim: int, lam: float) -> Ridge:
        """The statistics this agent keeps."""
        return Ridge(dim, lam)

    def context(self, user: np.ndarray, items: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """(B, n, D) contexts the model sees (the private agent rescales them)."""
        return self.features(user, items, dtype)

    def mean(self, x: Projected) -> np.ndarray:
        """(B, C) predicted reward of the candidates."""
        return x.linear(self.model.theta)

    def project(self, obs: Observation) -> Projected:
        """The candidates' contexts, factored (see :class:`Projected`)."""
        return Projected.of(self.features, obs)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        x = self.project(obs)
        mean = self.mean(x)
        d = self.choose(x, mean, rng)
        predicted = np.take_along_axis(mean, d.slates, axis=1).astype(np.float64)
        return Decision(slates=d.slates, propensities=d.propensities, explored=d.explored, predicted=predicted)

    def choose(self, x: Projected, mean: np.ndarray, rng: np.random.Generator) -> Decision:
        """Slates from the candidates' contexts x and predicted means (B, C)."""
        raise NotImplementedError

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        items, rewards = served_rows(obs, decision, feedback)
        x = self.context(obs["user"], items)
        self.model.add(x.reshape(-1, x.shape[-1]), rewards.reshape(-1))


def deterministic_decision(scores: np.ndarray, mean: np.ndarray, k: int) -> Decision:
    """Top-k by ``scores``; propensity 1; explored = the slate differs from top-k by ``mean``."""
    b = len(scores)
    both = top_k(np.concatenate([scores, mean]), k)  # one pass for both rankings
    slates = both[:b]
    explored = (slates != both[b:]).any(axis=1)
    return Decision(slates=slates, propensities=np.ones(slates.shape), explored=explored)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) :func:`agents.slates.greedy_slates` (top-k, best first, ties to the lowest index)
    by k rounds of argmax, about twice as fast for the bandits' small k; scores holding
    non-finite values go to ``greedy_slates`` (an argmax round could not mask them)."""
    if k > 8 or k >= scores.shape[1] or not np.isfinite(scores).all():
        return greedy_slates(scores, k)
    masked = scores.copy()
    rows = np.arange(len(scores))
    out = np.empty((len(scores), k), dtype=np.int64)
    for j in range(k):
        out[:, j] = best = np.argmax(masked, axis=1)
        masked[rows, best] = -np.inf
    return out


@register
class LinearEpsilonGreedy(LinearBandit):
    """Epsilon-greedy over a ridge model of reward, exploring per slot or per slate.

    ``exploration="slot"``: per slot, the best remaining candidate by predicted reward with
    probability 1 - epsilon, else a uniform remaining one
    (:func:`agents.slates.epsilon_greedy_slates`). ``"slate"``: with probability epsilon
    the whole slate is uniformly random, else greedy
    (:func:`agents.slates.slate_epsilon_greedy_slates`). Propensities are exact for both.

    Args:
        epsilon: exploration probability per slot (or per slate), in [0, 1].
        lam: ridge regularisation, > 0.
        exploration: ``"slot"`` or ``"slate"``.
    """

    name = "linear_egreedy"

    def __init__(self, spec: WorldSpec, *, epsilon: float = 0.1, lam: float = 1.0, exploration: str = "slot") -> None:
        _check_number(self.name, "epsilon", epsilon, 0.0, 1.0)
        if exploration not in ("slot", "slate"):
            raise AgentError(f"{self.name}.exploration must be one of ['slot', 'slate']; got {exploration!r}")
        super().__init__(spec, lam=lam, epsilon=epsilon, exploration=exploration)
        self.epsilon = epsilon
        self.exploration = exploration

    def choose(self, x: Projected, mean: np.ndarray, rng: np.random.Generator) -> Decision:
        sampler = epsilon_greedy_slates if self.exploration == "slot" else slate_epsilon_greedy_slates
        return sampler(mean, self.spec.slate_size, self.epsilon, rng)


@register
class LinUCB(LinearBandit):
    """LinUCB (Li et al. 2010, Alg. 1) over the shared context map: score
    ``x . theta + alpha sqrt(x^T A^-1 x)``, top-k by score. Deterministic: propensity 1;
    a decision explored when its slate differs from the top-k by the mean x . theta.

    Args:
        alpha: width multiplier (in reward units), >= 0.
        lam: ridge regularisation, > 0.
    """

    name = "linucb"

    def __init__(self, spec: WorldSpec, *, alpha: float = 1.0, lam: float = 1.0, **params: Any) -> None:
        _check_number(self.name, "alpha", alpha, 0.0)
        super().__init__(spec, lam=lam, alpha=alpha, **params)
        self.alpha = alpha

    def width(self, x: Projected) -> np.ndarray:
        """(B, C) confidence widths ``sqrt(x^T M x)``."""
        return np.sqrt(np.maximum(x.quadratic(x.gram(self.model.width_matrix())), 0.0))

    def choose(self, x: Projected, mean: np.ndarray, rng: np.random.Generator) -> Decision:
        return deterministic_decision(mean + self.alpha * self.width(x), mean, self.spec.slate_size)


@register
class DiscountedLinUCB(LinUCB):
    """D-LinUCB (Russac, Vernade & Cappé 2019): LinUCB on exponentially discounted statistics,
    so old evidence fades and drifting tastes are tracked (see :class:`DiscountedRidge`).
    The discount applies once per environment step (one batch of B users); the effective
    memory is about 1 / (1 - gamma) steps. ``alpha`` replaces the paper's beta_t.

    Args:
        alpha: width multiplier, >= 0. lam: regularisation, > 0.
        gamma: discount per step, in (0, 1] (1 = plain LinUCB).
    """

    name = "discounted_linucb"
    state_fields = (*LinearBandit.state_fields, "model.W")

    def __init__(self, spec: WorldSpec, *, alpha: float = 1.0, lam: float = 1.0, gamma: float = 0.99) -> None:
        _check_number(self.name, "gamma", gamma, 0.0, 1.0, lo_open=True)
        self.gamma = gamma
        super().__init__(spec, alpha=alpha, lam=lam, gamma=gamma)

    def make_model(self, dim: int, lam: float) -> Ridge:
        return DiscountedRidge(dim, lam, self.gamma)


@register
class PrivateLinUCB(LinUCB):
    """LinUCB on differentially private statistics (Shariff & Sheffet 2018); calibration in
    :class:`PrivateRidge`. Contexts are clipped to norm ``feature_bound`` and divided by it,
    rewards clipped to [0, reward_bound] and divided by it; the score
    ``reward_bound (x~ . theta + alpha sqrt(x~^T A^-1 x~))`` is in reward units again.

    Args:
        alpha: width multiplier, >= 0. lam: regularisation (scaled units), > 0.
        epsilon: privacy budget, > 0. delta: in (0, 1).
        horizon: steps per tree of the mechanism, >= 1 (longer runs start new trees).
        feature_bound: context norm bound, > 0. reward_bound: reward bound, > 0.
        seed: seed of the mechanism's noise generator.
    """

    name = "dp_linucb"
    state_fields = (
        *LinearBandit.state_fields,
        "model._released_base",
        "model._block",
        "model._noise",
        "model._t",
        "model.rng",
    )

    def __init__(
        self,
        spec: WorldSpec,
        *,
        alpha: float = 1.0,
        lam: float = 1.0,
        epsilon: float = 1.0,
        delta: float = 1e-5,
        horizon: int = 1024,
        feature_bound: float = 3.0,
        reward_bound: float = 8.0,
        seed: int = 0,
    ) -> None:
        n = self.name
        _check_number(n, "epsilon", epsilon, 0.0, lo_open=True)
        _check_number(n, "delta", delta, 0.0, 1.0, lo_open=True, hi_open=True)
        _check_number(n, "horizon", horizon, 1, integer=True)
        _check_number(n, "feature_bound", feature_bound, 0.0, lo_open=True)
        _check_number(n, "reward_bound", reward_bound, 0.0, lo_open=True)
        _check_number(n, "seed", seed, 0, integer=True)
        self._dp = {
            "epsilon": epsilon,
            "delta": delta,
            "horizon": horizon,
            "feature_bound": feature_bound,
            "reward_bound": reward_bound,
            "seed": seed,
        }
        super().__init__(spec, alpha=alpha, lam=lam, **self._dp)

    def make_model(self, dim: int, lam: float) -> Ridge:
        return PrivateRidge(dim, lam, rows_per_record=self.spec.slate_size, **self._dp)

    def context(self, user: np.ndarray, items: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        return self.model.scale(self.features(user, items, dtype))

    def project(self, obs: Observation) -> Projected:
        """Contexts with ``scale`` (B, C) = reward_bound / max(|x|, feature_bound): the
        clip-and-scale of each context, and the way back to reward units."""
        x = super().project(obs)
        norm = np.sqrt(x.squared_norm())
        scale = np.float32(self.model.reward_bound) / np.maximum(norm, np.float32(self.model.feature_bound))
        return Projected(items=x.items, row_scale=x.row_scale, observed=x.observed, scale=scale)

    def mean(self, x: Projected) -> np.ndarray:
        return x.scale * x.linear(self.model.theta)

    def width(self, x: Projected) -> np.ndarray:
        return x.scale * super().width(x)

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        items, rewards = served_rows(obs, decision, feedback)
        x = self.features(obs["user"], items)  # raw: PrivateRidge.add clips and scales
        self.model.add(x.reshape(-1, x.shape[-1]), rewards.reshape(-1))


@register
class LinTS(LinearBandit):
    """Linear Thompson sampling (Agrawal & Goyal 2013): per user and step one draw
    ``theta~ = theta_hat + v L^-T z`` (A = L L^T, z ~ N(0, I), so theta~ ~ N(theta_hat, v^2 A^-1)),
    slate = top-k by ``x . theta~``.

    Propensities: the slot-wise probability under this law has no closed form; it is
    estimated from ``propensity_draws`` further independent draws of theta~ (see
    :func:`prefix_propensities`: the share of the draws agreeing on the slate's prefix up to
    slot j among those agreeing up to slot j - 1, floored at 1 / (n + 1)). To keep the
    Gaussian sampling cheap, ``propensity_group`` consecutive users of a batch share the
    same m propensity draws (the served draw stays independent per user): each user's
    estimate has exactly the law of the unshared one (m draws independent of its served
    draw), only the Monte Carlo errors of users in one group are correlated; averages over
    many decisions still converge. ``propensity_group=1`` gives every user its own draws.
    ``explored``: the slate differs from the top-k by the mean.

    Args:
        v: posterior scale, >= 0 (0 = greedy). lam: regularisation, > 0.
        propensity_draws: Monte Carlo draws per decision for the propensities, >= 1.
        propensity_group: users sharing one set of propensity draws, >= 1.
    """

    name = "lints"

    def __init__(
        self,
        spec: WorldSpec,
        *,
        v: float = 0.5,
        lam: float = 1.0,
        propensity_draws: int = 16,
        propensity_group: int = 16,
    ) -> None:
        _check_number(self.name, "v", v, 0.0)
        _check_number(self.name, "propensity_draws", propensity_draws, 1, integer=True)
        _check_number(self.name, "propensity_group", propensity_group, 1, integer=True)
        super().__init__(spec, lam=lam, v=v, propensity_draws=propensity_draws, propensity_group=propensity_group)
        self.v = v
        self.propensity_draws = propensity_draws
        self.propensity_group = propensity_group

    def choose(self, x: Projected, mean: np.ndarray, rng: np.random.Generator) -> Decision:
        b, dim = x.row_scale.shape
        k, m, group = self.spec.slate_size, self.propensity_draws, self.propensity_group
        groups = -(-b // group)
        z = rng.standard_normal((b + groups * m, dim), np.float32)
        theta = self.model.theta.astype(np.float32) + np.float32(self.v) * self.posterior_noise(z)  # (n, D)
        served = x.linear(theta[:b, None, :], bias=False)[:, 0]  # (B, C), ranks as x . theta~
        copies = np.repeat(theta[b:].reshape(groups, m, dim), group, axis=0)[:b]  # (B, m, D)
        both = top_k(np.concatenate([served, mean]), k)
        slates = both[:b]
        props = slate_propensities(x.linear_t(copies), slates)
        explored = (slates != both[b:]).any(axis=1)
        return Decision(slates=slates, propensities=props, explored=explored)

    def posterior_noise(self, z: np.ndarray) -> np.ndarray:
        """(n, D) float32 rows ``L^-T z`` for standard normal rows z (n, D), A = L L^T (so each
        row ~ N(0, A^-1))."""
        lower = np.linalg.cholesky(self.model.A)
        lower_inv = solve_triangular(lower, np.eye(len(lower)), lower=True, check_finite=False)
        return z @ lower_inv.astype(np.float32)  # rows (L^-T z)^T = z^T L^-1


def prefix_propensities(scores: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """Slot-wise propensities of ``slates`` (B, k) estimated from score draws (B, 1 + m, C).

    Draw 0 is the one that produced the slates; draws 1..m are independent copies. With
    n_j = number of the m copies whose top-j candidates (in order) equal ``slates[:, :j]``
    (n_0 = m), the propensity of slot j is ``n_j / n_{j-1}`` (unbiased given n_{j-1} >= 1), or
    ``1 / (n_{j-1} + 1)`` when no copy agrees (n_j = 0: the served draw itself is the only
    evidence), so every propensity is in (0, 1]. The floor biases only rare prefixes upward.
    """
    return slate_propensities(scores[:, 1:].transpose(0, 2, 1).copy(), slates)


def slate_propensities(copies: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """:func:`prefix_propensities` from the m independent copies alone, laid out (B, C, m)
    (candidate-major: gathers and the max over candidates run on contiguous rows of m).
    ``copies`` is overwritten (the slate rows are set to -inf).

    One pass over the copies: a copy's top-(j+1) equals ``slates[:, :j+1]`` in order iff for
    every i <= j the served item i scores at least the best of the candidates still left
    after slot i - 1, i.e. the max of the slate items after i and of all non-slate candidates
    (the latter computed once).
    """
    b, _, m = copies.shape
    k = slates.shape[1]
    rows = np.arange(b)[:, None]
    served = copies[rows, slates]  # (B, k, m)
    copies[rows, slates] = -np.inf
    best_left = _max_over_middle(copies)  # (B, m): best non-slate candidate
    ok = np.empty(served.shape, dtype=bool)
    for j in range(k - 1, -1, -1):  # best_left = max over the non-slate and slots j + 1..k - 1
        np.greater_equal(served[:, j], best_left, out=ok[:, j])
        best_left = np.maximum(best_left, served[:, j])
    count = np.empty((b, k))
    agree = ok[:, 0]
    for j in range(k):
        agree = agree & ok[:, j] if j else agree
        count[:, j] = np.count_nonzero(agree, axis=1)
    count_prev = np.concatenate([np.full((b, 1), float(m)), count[:, :-1]], axis=1)
    return np.where(count > 0, count / np.maximum(count_prev, 1.0), 1.0 / (count_prev + 1.0))


def _max_over_middle(a: np.ndarray) -> np.ndarray:
    """``a.max(axis=1)`` for (B, C, m) by halving (elementwise maxima of contiguous blocks are
    several times faster in numpy than a reduction over a middle axis with a short inner one)."""
    while a.shape[1] > 1:
        half = a.shape[1] // 2
        top = np.maximum(a[:, :half], a[:, half : 2 * half])
        a = np.concatenate([top, a[:, 2 * half :]], axis=1) if a.shape[1] % 2 else top
    return a[:, 0]


@register
class HybridLinUCB(Agent):
    """Hybrid LinUCB (Li et al. 2010, Alg. 2) with per-user "arms".

    Score of candidate (user b, item) with shared context z = phi(user, item) (D,) and
    per-arm context x = e (the item embedding, d) for arm a = ``user_id % user_slots``:
    ``z . beta + x . theta_a + alpha sqrt(s)``,
    ``s = (z - P_a^T x)^T A0^-1 (z - P_a^T x) + x^T A_a^-1 x`` with ``P_a = A_a^-1 B_a``
    (Li et al.'s four-term s, factored), ``beta = A0^-1 b0``, ``theta_a = A_a^-1 b_a - P_a beta``.
    The estimate equals joint ridge regression on ``[z, x (x) onehot(a)]`` with penalty lam,
    and s is that joint model's ``x_joint^T A_joint^-1 x_joint`` (by the Schur complement).
    A user's returning sessions share its arm, so theta_a learns the unobserved part of the
    user's interest. Users whose ids collide modulo ``user_slots`` share an arm.

    State per arm: A_a^-1 (d, d), P_a = A_a^-1 B_a (d, D) and q_a = A_a^-1 b_a (d,), in float64;
    B_a and b_a themselves are never needed (see :func:`_hybrid_update`). The shared
    ``A0 = lam I + sum_a (Z_a^T Z_a - B_a^T A_a^-1 B_a)`` (Li et al.'s corrections included) is
    the Schur complement of the joint ridge Gram matrix.

    Speed (B = 1,024, C = 50, k = 5): the one product with a shared operand, ``P_a R`` for
    all users (A0^-1 = R R^T, R lower triangular), is a single BLAS triangular product; the
    per-user rest (means, widths, slates and the arm updates) runs in compiled loops over the
    users (:func:`_hybrid_scores`, :func:`_hybrid_slates`, :func:`_hybrid_update`) on a few
    cache-resident rows at a time. Composed in numpy it was a dozen batched products of tiny
    matrices, each a pass over a (B, d, D)-sized temporary. Large work arrays are kept between
    calls (:meth:`_work`; not pickled); ``act`` and ``update`` share no cached results, so
    feedback may arrive after other ``act`` calls.

    Args:
        alpha: width multiplier, >= 0. lam: regularisation, > 0.
        user_slots: number of per-user parameter slots, >= 1 (memory ~ 8 (d^2 + d D + d) bytes each).
    """

    name = "linucb_hybrid"
    state_fields = ("arm_state", "shared.A", "shared.b", "shared.A_inv", "shared.theta", "shared.n_rows")

    def __init__(self, spec: WorldSpec, *, alpha: float = 1.0, lam: float = 1.0, user_slots: int = 4096) -> None:
        _check_number(self.name, "alpha", alpha, 0.0)
        _check_number(self.name, "lam", lam, 0.0, lo_open=True)
        _check_number(self.name, "user_slots", user_slots, 1, integer=True)
        super().__init__(spec, alpha=alpha, lam=lam, user_slots=user_slots)
        self.alpha, self.lam, self.user_slots = alpha, lam, user_slots
        self.features = FeatureMap.from_spec(spec)
        big, d = self.features.dim, spec.embedding_dim
        self.shared = Ridge(big, lam)  # A0, b0 (A0 includes the -B^T A^-1 B corrections)
        # [A_a^-1, P_a, q_a] side by side: one user's arm is one contiguous (d, d + D + 1) block
        self.arm_state = np.zeros((user_slots, d, d + big + 1))
        self.arm_state[:, np.arange(d), np.arange(d)] = 1.0 / lam
        self._buffers: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_buffers"] = {}  # work arrays: not part of the learned state
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_buffers", {})  # agents saved before work arrays existed

    def _work(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        """A work array kept between calls (uninitialised): large temporaries allocated on
        every call would be fresh pages, faulted in at every step."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf

    @property
    def arm_A_inv(self) -> np.ndarray:
        """(user_slots, d, d) view: A_a^-1."""
        return self.arm_state[:, :, : self.spec.embedding_dim]

    @property
    def arm_Pq(self) -> np.ndarray:
        """(user_slots, d, D + 1) view: [P_a, q_a]."""
        return self.arm_state[:, :, self.spec.embedding_dim :]

    @property
    def arm_P(self) -> np.ndarray:
        """(user_slots, d, D) view: P_a = A_a^-1 B_a."""
        return self.arm_Pq[:, :, :-1]

    @property
    def arm_q(self) -> np.ndarray:
        """(user_slots, d) view: q_a = A_a^-1 b_a."""
        return self.arm_Pq[:, :, -1]

    def arms(self, obs: Observation) -> np.ndarray:
        """(B,) int64 arm (user slot) of each user."""
        return np.asarray(obs["user_id"] % self.user_slots, dtype=np.int64)

    def arm_theta(self, arms: np.ndarray) -> np.ndarray:
        """(n, d) per-arm coefficients ``theta_a = A_a^-1 (b_a - B_a beta) = q_a - P_a beta``."""
        pq = self.arm_Pq[arms]
        return pq[:, :, -1] - pq[:, :, :-1] @ self.shared.theta

    def mean_and_ucb(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """(B, C) float64 ``(mean, ucb)`` of every candidate: ``z . beta + e . theta_a`` and
        ``mean + alpha sqrt(s)`` (s in float32, like the other bandits' widths)."""
        mean, ucb = self._mean_and_ucb(obs)
        return mean.copy(), ucb.copy()

    def _mean_and_ucb(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`mean_and_ucb` in work arrays (overwritten by the next call)."""
        user, items = _user_items(obs, self.features)
        arms = self.arms(obs)
        b, d, big = len(arms), self.spec.embedding_dim, self.features.dim
        root = np.linalg.cholesky(self.shared.A_inv)  # A0^-1 = R R^T
        pr, p_beta = self._work("pr", (b, d, big)), self._work("p_beta", (b, d))
        _gather_p(self.arm_state, arms, self.shared.theta, pr, p_beta)
        if b:  # P_a R for all users in place: one BLAS triangular product, (R^T P^T) on the F-order view
            flat = pr.reshape(-1, big)
            product = dtrmm(1.0, root, flat.T, side=0, lower=1, trans_a=1, overwrite_b=1)
            if not np.may_share_memory(product, flat):
                flat[:] = product.T
        mean, ucb = self._work("mean", items.shape[:2]), self._work("ucb", items.shape[:2])
        _hybrid_scores(
            user, items, arms, self.arm_state, self.shared.theta, root, pr, p_beta, float(self.alpha),
            self.features.observed_dims, mean, ucb,
        )  # fmt: skip
        return mean, ucb

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        mean, ucb = self._mean_and_ucb(obs)
        b, k = len(mean), self.spec.slate_size
        slates = np.empty((b, k), dtype=np.int64)
        explored = np.empty(b, dtype=np.bool_)
        predicted = np.empty((b, k))
        if k > mean.shape[1] or not _hybrid_slates(ucb, mean, slates, explored, predicted):
            d_ = deterministic_decision(ucb, mean, k)  # non-finite scores: the general ranking
            predicted = np.take_along_axis(mean, d_.slates, axis=1)
            return Decision(slates=d_.slates, propensities=d_.propensities, explored=d_.explored, predicted=predicted)
        return Decision(slates=slates, propensities=np.ones((b, k)), explored=explored, predicted=predicted)

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        user, items = _user_items(obs, self.features)
        slates = np.ascontiguousarray(decision.slates, dtype=np.int64)
        b, k = slates.shape
        if b != len(user) or (slates.size and (slates.min() < 0 or slates.max() >= items.shape[1])):
            raise AgentError(
                f"{self.name}.update: slates must be (B, k) = ({len(user)}, k) indices of the "
                f"{items.shape[1]} candidates; got shape {slates.shape}"
            )
        rewards = np.zeros((b, k))
        clicked = np.flatnonzero(feedback.clicks >= 0)
        rewards[clicked, feedback.clicks[clicked]] = feedback.rewards[clicked]
        white = self._work("white", (b * k, self.features.dim + 1))
        _hybrid_update(user, items, slates, rewards, self.arms(obs), self.arm_state, self.features.observed_dims, white)
        cross = white[:, :-1].T @ white  # sum over rows of N^T S^-1 [N, n_r] (see _hybrid_update)
        self.shared.A += cross[:, :-1]
        self.shared.b += cross[:, -1]
        self.shared.n_rows += b * k
        self.shared.refresh()


def _user_items(obs: Observation, features: FeatureMap) -> tuple[np.ndarray, np.ndarray]:
    """C-contiguous float32 ``(user (B, F_u), candidates (B, C, F_i))`` for the compiled loops."""
    user = np.ascontiguousarray(obs["user"], dtype=np.float32)
    items = np.ascontiguousarray(obs["candidates"], dtype=np.float32)
    if (
        user.ndim != 2
        or items.ndim != 3
        or items.shape[2] != features.item_dim
        or user.shape[1] < features.observed_dims
        or user.shape[0] != items.shape[0]
    ):
        raise AgentError(
            f"observation shapes: want user (B, F_u >= {features.observed_dims}) and candidates "
            f"(B, C, {features.item_dim}); got {user.shape} and {items.shape}"
        )
    return user, items


_FAST = {"reassoc", "contract", "nsz", "arcp"}
"""numba fastmath flags of the hybrid's loops: reordered sums (vectorised), fused multiply-adds;
not "nnan"/"ninf" (non-finite scores must stay detectable)."""

_LANES = 64
"""The candidate loops of :func:`_hybrid_scores` run over C rounded up to a multiple of this
(compiled loops vectorise fully only over whole blocks of vector registers)."""

_BLOCK = 4
"""Rows taken together by the hybrid's compiled loops (a loop over a short row costs more to
enter than to run: four rows per pass quarter the entries). The loops are written for 4."""


@njit(cache=True, nogil=True)
def _gather_p(arm_state: np.ndarray, arms: np.ndarray, beta: np.ndarray, out: np.ndarray, out_beta: np.ndarray) -> None:
    """``out[b] = P`` (d, D) and ``out_beta[b] = P beta`` (d,) of arm ``arms[b]``, from
    arm_state (slots, d, d + D + 1) and beta (D,)."""
    d, big = out.shape[1], out.shape[2]
    for b in range(len(arms)):
        st = arm_state[arms[b]]
        for i in range(d):
            t = 0.0
            for m in range(big):
                out[b, i, m] = st[i, d + m]
                t += st[i, d + m] * beta[m]
            out_beta[b, i] = t


@njit(cache=True, nogil=True, fastmath=_FAST)
def _hybrid_scores(
    user: np.ndarray,
    items: np.ndarray,
    arms: np.ndarray,
    arm_state: np.ndarray,
    beta: np.ndarray,
    root: np.ndarray,
    pr: np.ndarray,
    p_beta: np.ndarray,
    alpha: float,
    observed: int,
    mean: np.ndarray,
    ucb: np.ndarray,
) -> None:
    """Hybrid LinUCB means and UCBs of every candidate, user by user, into ``mean`` and ``ucb`` (B, C).

    Works in the item space w = [v, 1] (F + 1) like :class:`Projected`: z = T_b w, e = E w.
    Per user b with arm a (state [A_a^-1, P_a, q_a] (d, d + D + 1)):

    * mean weights ``T_b^T beta + E^T (q_a - P_a beta)`` (F + 1), so mean = w . weights;
    * ``Y = J_b^T R`` (F + 1, D) with ``J_b = T_b - P_a^T E`` and ``A0^-1 = R R^T``: row i is
      ``u_i R_i`` (cross rows, i < o) + ``R_{o+i}`` - ``(P_a R)_i`` (i < d), in float64 (the
      difference cancels for well-fitted arms);
    * ``N = Y Y^T + E^T A_a^-1 E`` (F + 1, F + 1): s = w^T N w is Li et al.'s
      ``(z - P_a^T e)^T A0^-1 (z - P_a^T e) + e^T A_a^-1 e``;
    * s of the C candidates, ``2 sum_i w_i sum_{j<=i} N'_ij w_j`` (N' = N's lower triangle with
      the diagonal halved), in float32 vectorised over candidates.

    Loops over short rows cost more to enter than to run, so the item-space rows are taken
    :data:`_BLOCK` at a time (rows padded with zeros) and the candidates padded to :data:`_LANES`.

    Args:
        user: (B, F_u) float32, first ``observed`` columns multiply the item's. items: (B, C, F) float32.
        arms: (B,) int64 arm of each user. arm_state: (slots, d, d + D + 1) float64.
        beta: (D,) shared coefficients. root: (D, D) R, lower Cholesky factor of A0^-1.
        pr: (B, d, D) ``P_a R`` and p_beta: (B, d) ``P_a beta`` of each user's arm.
        alpha: width multiplier. observed: o.
        mean, ucb: (B, C) float64 outputs; ucb = mean + alpha sqrt(max(s, 0)).
    """
    n_users, n_cand, f = items.shape
    d = arm_state.shape[1]
    big = beta.shape[0]
    o = observed
    rows = -(-(f + 1) // _BLOCK) * _BLOCK  # item-space rows: [v, 1] and zero padding
    lanes = -(-n_cand // _LANES) * _LANES
    weights = np.zeros(rows)
    y = np.zeros((rows, big))
    gram = np.zeros((rows, rows), dtype=np.float32)  # N', zero above the diagonal
    vt = np.zeros((rows, lanes), dtype=np.float32)  # [v, 1] of the user's candidates, transposed
    vt[f] = 1.0
    acc = np.empty(lanes, dtype=np.float32)
    s = np.empty(lanes, dtype=np.float32)
    mu = np.empty(lanes)
    for b in range(n_users):
        st = arm_state[arms[b]]
        for i in range(f + 1):
            weights[i] = beta[o + i]
            for m in range(big):
                y[i, m] = root[o + i, m]
        for i in range(o):
            ui = np.float64(user[b, i])
            weights[i] += beta[i] * ui
            for m in range(big):
                y[i, m] += ui * root[i, m]
        for i in range(d):
            weights[i] += st[i, d + big] - p_beta[b, i]
            for m in range(big):
                y[i, m] -= pr[b, i, m]
        for i in range(f + 1):
            for jb in range(0, i + 1, _BLOCK):  # N_ij = y_i . y_j for j = jb..jb+3 at once
                t0 = t1 = t2 = t3 = 0.0
                for m in range(big):
                    yim = y[i, m]
                    t0 += yim * y[jb, m]
                    t1 += yim * y[jb + 1, m]
                    t2 += yim * y[jb + 2, m]
                    t3 += yim * y[jb + 3, m]
                for j, t in ((jb, t0), (jb + 1, t1), (jb + 2, t2), (jb + 3, t3)):
                    if j < i:
                        gram[i, j] = t + st[i, j] if i < d else t
                    elif j == i:
                        gram[i, i] = 0.5 * (t + st[i, i] if i < d else t)
        user_items = items[b]
        for i in range(f):  # rows of vt written contiguously
            vti = vt[i]
            for c in range(n_cand):
                vti[c] = user_items[c, i]
        for c in range(lanes):
            s[c] = 0.0
            mu[c] = 0.0
        for i in range(f + 1):
            for jb in range(0, i + 1, _BLOCK):
                g0, g1, g2, g3 = gram[i, jb], gram[i, jb + 1], gram[i, jb + 2], gram[i, jb + 3]
                v0, v1, v2, v3 = vt[jb], vt[jb + 1], vt[jb + 2], vt[jb + 3]
                if jb == 0:
                    for c in range(lanes):
                        acc[c] = g0 * v0[c] + g1 * v1[c] + g2 * v2[c] + g3 * v3[c]
                else:
                    for c in range(lanes):
                        acc[c] += g0 * v0[c] + g1 * v1[c] + g2 * v2[c] + g3 * v3[c]
            vi, wi = vt[i], weights[i]
            for c in range(lanes):
                s[c] += vi[c] * acc[c]
                mu[c] += wi * vi[c]
        for c in range(n_cand):
            mean[b, c] = mu[c]
            ucb[b, c] = mu[c] + alpha * np.sqrt(max(2.0 * np.float64(s[c]), 0.0))


@njit(cache=True, nogil=True)
def _hybrid_slates(
    ucb: np.ndarray, mean: np.ndarray, slates: np.ndarray, explored: np.ndarray, predicted: np.ndarray
) -> bool:
    """:func:`deterministic_decision` for finite scores, row by row, into the (B, k) ``slates``,
    (B,) ``explored`` and (B, k) ``predicted`` (the mean of each served item); k <= C.

    Slates: top-k by UCB, best first, ties to the lowest index (as :func:`top_k`). Explored:
    the slate is not the top-k by mean, checked in one pass (:func:`_is_top_k`) instead of a
    second ranking. Returns False, with the outputs incomplete, if a score is not finite.
    """
    n_users, n_cand = ucb.shape
    k = slates.shape[1]
    scratch = np.empty(n_cand)
    in_slate = np.zeros(n_cand, dtype=np.bool_)
    for b in range(n_users):
        finite = True
        for c in range(n_cand):
            finite &= np.isfinite(ucb[b, c]) & np.isfinite(mean[b, c])
        if not finite:
            return False
        _top_k_row(ucb[b], slates[b], scratch)
        explored[b] = not _is_top_k(mean[b], slates[b], in_slate)
        for j in range(k):
            predicted[b, j] = mean[b, slates[b, j]]
    return True


@njit(cache=True, nogil=True)
def _top_k_row(scores: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
    """The ``len(out)`` best of finite ``scores`` (C,) into ``out``, best first, ties to the lowest
    index: per slot, the maximum of the candidates left, then its first position (``scratch``: (C,))."""
    n = len(scores)
    for c in range(n):
        scratch[c] = scores[c]
    for j in range(len(out)):
        top = -np.inf
        for c in range(n):
            top = max(top, scratch[c])
        c = 0
        while scratch[c] != top:
            c += 1
        out[j] = c
        scratch[c] = -np.inf


@njit(cache=True, nogil=True)
def _is_top_k(scores: np.ndarray, slate: np.ndarray, in_slate: np.ndarray) -> bool:
    """Whether ``slate`` (k,) is the top-k of finite ``scores`` (C,) in order (ties to the lowest
    index): its items are in that order among themselves and the last beats every other
    candidate. ``in_slate``: (C,) all-False scratch, left all-False."""
    k = len(slate)
    if k == 0:
        return True
    ok = True
    for j in range(k - 1):
        a, b = slate[j], slate[j + 1]
        ok &= (scores[a] > scores[b]) | ((scores[a] == scores[b]) & (a < b))
    for j in range(k):
        in_slate[slate[j]] = True
    last = slate[k - 1]
    bar = scores[last]
    for c in range(len(scores)):
        ok &= in_slate[c] | (scores[c] < bar) | ((scores[c] == bar) & (c > last))
    for j in range(k):
        in_slate[slate[j]] = False
    return ok


@njit(cache=True, nogil=True, fastmath=_FAST)
def _hybrid_update(
    user: np.ndarray,
    items: np.ndarray,
    slates: np.ndarray,
    rewards: np.ndarray,
    arms: np.ndarray,
    arm_state: np.ndarray,
    observed: int,
    white: np.ndarray,
) -> None:
    """Li et al. Alg. 2 update of the arms, user by user in row order (a repeated arm sees the
    earlier rows first), in recursive-least-squares (block Woodbury) form; ``arm_state`` is updated
    in place and the whitened innovation rows for the shared statistics go to ``white`` (B k, D + 1).

    Per user with served rows z (k, D), e (k, d), r (k,) and arm state [A^-1, P, q]:
    ``U = A^-1 E^T`` (d, k), ``S = I + E U = L L^T`` (k, k), innovations ``N = Z - E P``,
    ``n_r = r - E q`` (the rows' residuals under the arm's current fit); then
    ``A^-1 -= U S^-1 U^T``, ``P += U S^-1 N``, ``q += U S^-1 n_r`` (Woodbury 1950), and Li et
    al.'s ``A0 += Z^T Z + (B^T A^-1 B)_old - (B^T A^-1 B)_new`` equals ``A0 += N^T S^-1 N``
    (likewise ``b0 += N^T S^-1 n_r``): the block form of the RLS residual update. With
    ``[Wt, Nt, nt] = L^-1 [U^T, N, n_r]`` the arm gets ``Wt^T [-Wt, Nt, nt]`` and the rows
    ``[Nt, nt]`` are written to ``white``, so the caller adds ``white[:, :D]^T white`` to [A0, b0].

    Args:
        user: (B, F_u) float32. items: (B, C, F) float32 candidates. slates: (B, k) int64 served
        candidates (valid indices). rewards: (B, k) float64 targets. arms: (B,) int64.
        arm_state: (slots, d, d + D + 1) float64. observed: o. white: (B k, D + 1) float64 output.
    """
    n_users, k = slates.shape
    f = items.shape[2]
    d, width = arm_state.shape[1], arm_state.shape[2]
    big = white.shape[1] - 1
    o = observed
    e = np.empty((k, d))
    rhs = np.empty((k, width))
    signed = np.empty((k, width))
    lower = np.empty((k, k))
    for b in range(n_users):
        st = arm_state[arms[b]]
        for j in range(k):  # rhs = E [A^-1, P, q], then [U^T, Z - E P, r - E q] = [U^T, N, n_r]
            item = items[b, slates[b, j]]
            for i in range(d):
                e[j, i] = item[i]
            _combine_rows(rhs[j], e[j], st, False)
            for m in range(d, width):
                rhs[j, m] = -rhs[j, m]
            for m in range(o):
                rhs[j, d + m] += np.float64(user[b, m]) * np.float64(item[m])
            for m in range(f):
                rhs[j, d + o + m] += item[m]
            rhs[j, d + big - 1] += 1.0
            rhs[j, d + big] += rewards[b, j]
        for j in range(k):  # S = I + E A^-1 E^T, then its Cholesky factor in place (lower)
            for m in range(j + 1):
                t = 1.0 if j == m else 0.0
                for i in range(d):
                    t += rhs[j, i] * e[m, i]
                lower[j, m] = t
        for j in range(k):
            for m in range(j + 1):
                t = lower[j, m]
                for i in range(m):
                    t -= lower[j, i] * lower[m, i]
                lower[j, m] = np.sqrt(t) if j == m else t / lower[m, m]
        for j in range(k):  # rhs = L^-1 rhs (forward substitution); signed = [-Wt, Nt, nt]
            for m in range(j):
                ljm = lower[j, m]
                for i in range(width):
                    rhs[j, i] -= ljm * rhs[m, i]
            inv = 1.0 / lower[j, j]
            for i in range(width):
                rhs[j, i] *= inv
                signed[j, i] = rhs[j, i]
            for i in range(d):
                signed[j, i] = -rhs[j, i]
        for i in range(d):  # [A^-1, P, q] += Wt^T [-Wt, Nt, nt]
            _combine_rows(st[i], rhs[:, i], signed, True)
        for j in range(k):
            for m in range(big + 1):
                white[b * k + j, m] = rhs[j, d + m]


@njit(cache=True, nogil=True, fastmath=_FAST, inline="always")
def _combine_rows(out: np.ndarray, coef: np.ndarray, rows: np.ndarray, add: bool) -> None:
    """``out (+)= coef @ rows`` for coef (n,), rows (n, m), out (m,): four rows per pass over
    ``out`` (a pass over a short row costs more to enter than to run)."""
    n, width = rows.shape
    if not add:
        out[:] = 0.0
    start = 0
    while start + _BLOCK <= n:
        c0, c1, c2, c3 = coef[start], coef[start + 1], coef[start + 2], coef[start + 3]
        r0, r1, r2, r3 = rows[start], rows[start + 1], rows[start + 2], rows[start + 3]
        for m in range(width):
            out[m] += c0 * r0[m] + c1 * r1[m] + c2 * r2[m] + c3 * r3[m]
        start += _BLOCK
    for i in range(start, n):
        ci, ri = coef[i], rows[i]
        for m in range(width):
            out[m] += ci * ri[m]


def sherman_morrison(a_inv: np.ndarray, x: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """Batched rank-one update (Sherman & Morrison 1950): ``(A + x x^T)^-1`` from A^-1 (n, d, d), x (n, d).

    ``(A + x x^T)^-1 = A^-1 - w w^T`` with ``w = A^-1 x / sqrt(1 + x^T A^-1 x)`` (A^-1 symmetric
    positive definite). ``inplace=True`` overwrites ``a_inv`` (no (n, d, d) temporaries kept).
    The k = 1 case of the block update in :func:`_hybrid_update`.
    """
    w = np.matvec(a_inv, x)
    w /= np.sqrt(1.0 + np.vecdot(x, w))[:, None]
    out = a_inv if inplace else a_inv.copy()
    out -= w[:, :, None] * w[:, None, :]
    return out
