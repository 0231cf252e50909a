"""Choice and response models: pure functions over batched arrays.

Shapes: B users, k slate positions. Utilities arrive as ``(B, k)`` float arrays in slate
order. Choice probabilities are ``(B, k + 1)``: column ``j < k`` is the probability of
clicking slate position ``j`` and the last column is the no-click option. One sampler,
:func:`sample_choice`, draws from any such table with externally supplied uniforms, so
the world's randomness stays in its own generator (common random numbers).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr

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
        (B, k + 1) probabilities; the last column is "no click". Rows sum to 1.
    """
    b, k = utility.shape
    logits = np.empty((b, k + 1), dtype=np.float64)
    np.multiply(utility, beta, out=logits[:, :k])
    logits[:, k] = beta * no_click_utility
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def cascade_probs(utility: np.ndarray, beta: float, no_click_utility: float) -> np.ndarray:
    """Cascade model (Craswell et al. 2008): scan top-down, stop at the first click.

    Each position is clicked with ``r_j = sigmoid(beta (u_j - u_0))`` if reached, so
    ``P(j) = r_j prod_{l<j} (1 - r_l)`` and ``P(no click) = prod_l (1 - r_l)``.

    Args:
        utility: (B, k) utilities in slate order (position 0 is examined first).

    Returns:
        (B, k + 1) probabilities; the last column is "no click".
    """
    b, k = utility.shape
    r = expit(beta * (utility.astype(np.float64) - no_click_utility))
    reach = np.ones((b, k + 1), dtype=np.float64)
    np.cumprod(1.0 - r, axis=1, out=reach[:, 1:])
    probs = reach.copy()
    probs[:, :k] *= r
    return probs


def sample_choice(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Draw one outcome per row by inverse CDF.

    Args:
        probs: (B, k + 1) probabilities (last column: no click).
        uniforms: (B,) draws in [0, 1).

    Returns:
        (B,) int64 slate position clicked, or :data:`NO_CLICK` (-1).
    """
    k = probs.shape[1] - 1
    cdf = np.cumsum(probs[:, :k], axis=1)
    position = (cdf <= uniforms[:, None]).sum(axis=1)
    position[position == k] = NO_CLICK
    return position


def engagement_share(
    affinity: np.ndarray, quality: np.ndarray, affinity_weight: float, quality_weight: float, bias: float
) -> np.ndarray:
    """Expected share of an item watched before noise: ``sigmoid(a theta.e + b q + c)``."""
    return expit(affinity_weight * affinity + quality_weight * quality + bias)


def sample_engagement(length: np.ndarray, share: np.ndarray, noise: float, z: np.ndarray) -> np.ndarray:
    """Watch time in minutes: ``clip(l (f + noise z), 0, l)`` with z ~ N(0, 1)."""
    return np.clip(length * (share + noise * z), 0.0, length)


def expected_engagement(length: np.ndarray, share: np.ndarray, noise: float) -> np.ndarray:
    """``E[clip(l (f + noise Z), 0, l)]`` in closed form (a censored normal mean).

    With ``m = f``, ``s = noise`` and ``a = -m / s``, ``c = (1 - m) / s``:
    ``E/l = m (Phi(c) - Phi(a)) + s (phi(a) - phi(c)) + (1 - Phi(c))``.
    """
    if noise == 0:
        return length * np.clip(share, 0.0, 1.0)
    a = -share / noise
    c = (1.0 - share) / noise
    pdf_a = np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi)
    pdf_c = np.exp(-0.5 * c * c) / np.sqrt(2 * np.pi)
    cdf_c = ndtr(c)
    return length * (share * (cdf_c - ndtr(a)) + noise * (pdf_a - pdf_c) + (1.0 - cdf_c))
