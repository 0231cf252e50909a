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


def mnl_probs(utility: np.ndarray, beta: float, no_click_utility: float) -> np.ndarray:
    """Multinomial logit with a no-click option (McFadden 1974; RecSim's MNL user).

    ``P(j) = exp(beta u_j) / (exp(beta u_0) + sum_l exp(beta u_l))``.

    Args:
        utility: (B, k) utilities of the slate items, in slate order.
        beta: sensitivity (inverse temperature), > 0.
        no_click_utility: u_0.

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


def cascade_probs(utility: np.ndarray, beta: float, no_click_utility: float) -> np.ndarray:
    """Cascade model (Craswell et al. 2008): scan top-down, stop at the first click.

    Each position is clicked with ``r_j = sigmoid(beta (u_j - u_0))`` if reached, so
    ``P(j) = r_j prod_{l<j} (1 - r_l)`` and ``P(no click) = prod_l (1 - r_l)``.

    Args:
        utility: (B, k) utilities in slate order (position 0 is examined first).

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
    affinity: np.ndarray, quality: np.ndarray, affinity_weight: float, quality_weight: float, bias: float
) -> np.ndarray:
    """Expected share of an item watched before noise: ``sigmoid(a theta.e + b q + c)``."""
    return expit(affinity_weight * affinity + quality_weight * quality + bias)


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
