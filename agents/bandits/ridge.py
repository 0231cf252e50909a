"""Ridge-regression statistics of the linear bandits: plain, discounted and differentially private.

Shared statistics: a batch of B users adds B k rows at once. For the shared model
``A += X^T X`` is one matrix product and ``A^-1`` is refreshed once per step with a Cholesky
factorisation of the small D x D matrix (D = :attr:`~agents.bandits.features.FeatureMap.dim`,
28 on the default world): its cost O(D^3) is independent of B, whereas Woodbury would factor
a (B k) x (B k) matrix and sequential Sherman-Morrison would take B k rank-one O(D^2) steps
in a Python loop.

Privacy (``dp_linucb``): :class:`PrivateRidge` releases the Gram matrix of ``[x, r]`` through
the tree-based (binary) mechanism with Gaussian noise calibrated to (epsilon, delta)
(Shariff & Sheffet 2018); its noise comes from its own generator seeded by ``seed``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import cho_factor, cho_solve


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
