"""Choice and response models: pure functions over batched arrays.

Shapes: B users, k slate positions. Utilities arrive as ``(B, k)`` float arrays in slate
order. Choice probabilities are ``(B, k + 1)``: column ``j < k`` is the probability of
clicking slate position ``j`` and the last column is the no-click option. One sampler,
:func:`sample_choice`, draws from any such table with externally supplied uniforms, so
the world's randomness stays in its own generator (common random numbers).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

NO_CLICK = -1
"""Marker for "no click" in click-position arrays."""


def position_penalty(slate_size: int, position_bias: float) -> np.ndarray:
    """Utility lost at each slate position: ``position_bias * log2(1 + p)``, shape (k,)."""
    return (position_bias * np.log2(1.0 + np.arange(slate_size))).astype(np.float32)


def mnl_probs(utility: np.ndarray, beta: float, no_click_utility: float | np.ndarray) -> np.ndarray:
    """Multinomial logit with a no-click option (McFadden 1974; RecSim's MNL user).

    ``P(j) = exp(beta u_j) / (exp(beta u_0) + sum_l exp(beta u_l))``.

    Args:
        utility: (B, k) utilities of the slate items, in slate order.
        beta: sensitivity (inverse temperature), > 0.
        no_click_utility: u_0, a scalar or per user (B,).

    Returns:
        (B, k + 1) float64 probabilities; the last column is "no click". Rows sum to 1.
        The array is column-major (a transposed view): with k small, reductions over
        the k + 1 options then run as vector operations over B.
    """
    b, k = utility.shape
    logits = np.empty((k + 1, b), dtype=np.float64)
    np.multiply(utility.T, beta, out=logits[:k])
    logits[k] = beta * no_click_utility
    logits -= np.maximum.reduce(logits, axis=0)
    np.exp(logits, out=logits)
    logits /= np.add.reduce(logits, axis=0)
    return logits.T


def cascade_probs(utility: np.ndarray, beta: float, no_click_utility: float | np.ndarray) -> np.ndarray:
    """Cascade model (Craswell et al. 2008): scan top-down, stop at the first click.

    Each position is clicked with ``r_j = sigmoid(beta (u_j - u_0))`` if reached, so
    ``P(j) = r_j prod_{l<j} (1 - r_l)`` and ``P(no click) = prod_l (1 - r_l)``.

    Args:
        utility: (B, k) utilities in slate order (position 0 is examined first).
        no_click_utility: u_0, a scalar or per user (B,).

    Returns:
        (B, k + 1) float64 probabilities, column-major; the last column is "no click".
    """
    b, k = utility.shape
    r = expit(beta * (utility.T.astype(np.float64) - no_click_utility))
    probs = np.ones((k + 1, b), dtype=np.float64)
    np.multiply.accumulate(1.0 - r, axis=0, out=probs[1:])
    probs[:k] *= r
    return probs.T


def sample_choice(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Draw one outcome per row by inverse CDF.

    Args:
        probs: (B, k + 1) probabilities (last column: no click).
        uniforms: (B,) draws in [0, 1).

    Returns:
        (B,) int64 slate position clicked, or :data:`NO_CLICK` (-1).
    """
    k = probs.shape[1] - 1
    cdf = np.add.accumulate(probs.T[:k], axis=0)
    position = np.add.reduce(cdf <= uniforms, axis=0, dtype=np.int64)
    position[position == k] = NO_CLICK
    return position


def engagement_share(
    affinity: np.ndarray, value: np.ndarray, affinity_weight: float, value_weight: float, bias: float
) -> np.ndarray:
    """Expected share of an item watched before noise: ``sigmoid(a theta.e + b v + c)``."""
    return expit(affinity_weight * affinity + value_weight * value + bias)


def no_click_utility(base: float, satisfaction_weight: float, satisfaction: np.ndarray) -> np.ndarray:
    """(B,) utility of not clicking: ``u_0 = base - w (S - 0.5)`` for lasting satisfaction S."""
    return base - satisfaction_weight * (np.asarray(satisfaction, dtype=np.float64) - 0.5)


UNIFORM_HALF_WIDTH = float(np.sqrt(3.0))
"""A uniform on [-sqrt(3), sqrt(3)] has unit variance."""


def sample_engagement(length: np.ndarray, share: np.ndarray, noise: float, uniform: np.ndarray) -> np.ndarray:
    """Watch time in minutes: ``clip(l (f + noise v), 0, l)``, v uniform with unit variance.

    Args:
        length: (B,) item length l in minutes. share: (B,) pre-noise share f.
        noise: std of the noise as a share of the length.
        uniform: (B,) draws in [0, 1), mapped to v = sqrt(3) (2 u - 1).
    """
    v = UNIFORM_HALF_WIDTH * (2.0 * uniform - 1.0)
    return np.minimum(np.maximum(length * (share + noise * v), 0.0), length)


def _clipped_integral(x: np.ndarray) -> np.ndarray:
    """``F(x) = integral_0^x clip(t, 0, 1) dt = clip(x, 0, 1)^2 / 2 + max(x - 1, 0)``."""
    inside = np.minimum(np.maximum(x, 0.0), 1.0)
    return 0.5 * inside * inside + np.maximum(x - 1.0, 0.0)


def expected_engagement(length: np.ndarray, share: np.ndarray, noise: float) -> np.ndarray:
    """``E[clip(l (f + noise v), 0, l)]`` in closed form, v uniform with unit variance.

    With half-width ``h = sqrt(3) noise``, f + noise v is uniform on [f - h, f + h], so
    ``E / l = (F(f + h) - F(f - h)) / (2 h)`` with F from :func:`_clipped_integral`.
    """
    if noise == 0:
        return length * np.minimum(np.maximum(share, 0.0), 1.0)
    h = UNIFORM_HALF_WIDTH * noise
    return length * ((_clipped_integral(share + h) - _clipped_integral(share - h)) / (2.0 * h))


def slate_expected_reward(
    utility: np.ndarray,
    reward: np.ndarray,
    beta: float,
    no_click_utility: float | np.ndarray,
    penalty: np.ndarray,
    cascade: bool = False,
) -> np.ndarray:
    """(B,) expected reward ``sum_j P(j) R_j`` of slates.

    Args:
        utility: (B, k) position-free utilities in slate order. reward: (B, k) expected
            reward of each item given a click. penalty: (k,) position penalties.
    """
    law = cascade_probs if cascade else mnl_probs
    probs = law(utility - penalty, beta, no_click_utility)
    return np.einsum("bk,bk->b", probs[:, :-1], reward)


def optimal_slate(
    utility: np.ndarray,
    reward: np.ndarray,
    beta: float,
    no_click_utility: np.ndarray,
    penalty: np.ndarray,
    cascade: bool = False,
    max_rounds: int = 64,
) -> np.ndarray:
    """The slate of k distinct candidates of largest expected reward, per user (the true
    myopic oracle).

    MNL (exact): with weights ``W_c = exp(beta u_c)``, ``w_0 = exp(beta u_0)`` and
    position factors ``c_p = exp(-beta penalty_p)``, the expected reward of an ordered
    slate is the ratio ``sum_p c_p W_{s_p} R_{s_p} / (w_0 + sum_p c_p W_{s_p})``.
    Dinkelbach's method (Dinkelbach 1967) maximises it: for a guess lam, the slate
    maximising ``sum_p c_p W_{s_p} (R_{s_p} - lam)`` is the top k of
    ``x_c = W_c (R_c - lam)`` placed in decreasing order (rearrangement inequality, with
    c_p decreasing); set lam to that slate's reward and repeat until it stops rising.
    The fixed point is optimal (the capacitated MNL assortment problem of
    Rusmevichientong, Shen and Shmoys 2010, here with an exact size k).

    Cascade: candidates in decreasing R (the best order of any set when click rates do
    not depend on the position: an exchange argument), then a dynamic programme choosing
    k of them; exact without position bias.

    Args:
        utility: (B, C) position-free utilities. reward: (B, C) expected reward given a
            click. no_click_utility: (B,) u_0. penalty: (k,) position penalties.

    Returns:
        (B, k) int64 candidate indices, best position first.
    """
    b = utility.shape[0]
    k = penalty.shape[0]
    rows = np.arange(b)[:, None]
    u0 = np.broadcast_to(np.asarray(no_click_utility, dtype=np.float64), (b,))
    if cascade:
        return _cascade_optimal_slate(utility, reward, beta, u0, penalty)
    top = np.maximum(beta * utility.max(axis=1), beta * u0)
    weight = np.exp(beta * utility - top[:, None])
    w0 = np.exp(beta * u0 - top)
    factor = np.exp(-beta * penalty)
    lam = np.zeros(b)
    best = np.full(b, -1.0)
    best_slate = np.zeros((b, k), dtype=np.int64)
    for _ in range(max_rounds):
        score = weight * (reward - lam[:, None])
        slate = np.argsort(-score, axis=1, kind="stable")[:, :k]
        w = weight[rows, slate] * factor
        den = w0 + w.sum(axis=1)
        value = np.divide((w * reward[rows, slate]).sum(axis=1), den, out=np.zeros(b), where=den > 0)
        better = value > best
        best = np.where(better, value, best)
        best_slate[better] = slate[better]
        if not (value > lam * (1.0 + 1e-12)).any():
            break
        lam = np.maximum(lam, value)
    return best_slate


def _cascade_optimal_slate(
    utility: np.ndarray, reward: np.ndarray, beta: float, u0: np.ndarray, penalty: np.ndarray
) -> np.ndarray:
    """:func:`optimal_slate` for the cascade model (dynamic programme, vectorised over users)."""
    b, c = utility.shape
    k = penalty.shape[0]
    rows = np.arange(b)
    order = np.argsort(-reward, axis=1, kind="stable")
    table = np.full((c + 1, k + 1, b), -np.inf)
    table[:, 0] = 0.0
    for i in range(c - 1, -1, -1):
        item = order[:, i]
        for m in range(1, k + 1):
            rate = expit(beta * (utility[rows, item] - penalty[k - m] - u0))
            take = rate * reward[rows, item] + (1.0 - rate) * table[i + 1, m - 1]
            table[i, m] = np.maximum(table[i + 1, m], take)
    slate = np.zeros((b, k), dtype=np.int64)
    left = np.full(b, k)
    filled = np.zeros(b, dtype=np.int64)
    for i in range(c):
        taken = (left > 0) & (table[i, left, rows] != table[i + 1, left, rows])
        slate[rows[taken], filled[taken]] = order[taken, i]
        filled += taken
        left -= taken
    return slate
