"""Preference and session dynamics: pure functions over batched arrays.

Each takes the current state and returns the next one (new arrays; inputs are not
modified), and each has a strength for which it is the identity (0 = off), so they
compose freely. Shapes: B users, d embedding dims, K topics.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Scale each row to unit L2 norm (rows of zeros stay zero)."""
    norm = np.sqrt(np.vecdot(x, x))
    norm[norm == 0] = 1.0
    return x / norm[:, None]


def amplify(theta: np.ndarray, consumed: np.ndarray, clicked: np.ndarray, strength: np.ndarray | float) -> np.ndarray:
    """Preference amplification toward consumed items (Jiang et al. 2019).

    ``theta <- normalize((1 - eta) theta + eta e_j)`` for the users who clicked.

    Args:
        theta: (B, d) unit interests.
        consumed: (B, d) embedding of the consumed item (ignored where not clicked).
        clicked: (B,) bool.
        strength: eta in [0, 1], a scalar or per user (B,) (see :func:`watch_scaled`);
            0 = off.
    """
    strength = np.asarray(strength, dtype=np.float64)
    if not strength.any() or not clicked.any():
        return theta
    eta = strength[..., None] if strength.ndim else strength
    pulled = (1.0 - eta) * theta + eta * consumed
    return np.where(clicked[:, None], normalize_rows(pulled), theta)


def watch_scaled(strength: float, engaged_share: np.ndarray, by_watch: float) -> np.ndarray:
    """Amplification per user scaled by how much was watched: ``eta (1 - w + w y / l)``.

    Args:
        strength: eta. engaged_share: (B,) y / l in [0, 1]. by_watch: w in [0, 1]; 0 = eta for all.
    """
    return strength * (1.0 - by_watch + by_watch * engaged_share)


def expose(theta: np.ndarray, slate_mean: np.ndarray, strength: float) -> np.ndarray:
    """Mere-exposure pull toward the items shown, clicked or not (Jiang et al. 2019
    let the shown items, not only the clicked one, move interest).

    ``theta <- normalize((1 - eta_x) theta + eta_x mean_slate)``.

    Args:
        theta: (B, d) unit interests.
        slate_mean: (B, d) mean embedding of the served slate's k items.
        strength: eta_x in [0, 1]; 0 = off.
    """
    if strength == 0:
        return theta
    return normalize_rows((1.0 - strength) * theta + strength * slate_mean)


def repel(theta: np.ndarray, skipped_mean: np.ndarray, has_skipped: np.ndarray, strength: float) -> np.ndarray:
    """Negative feedback: a shown item the user passed over pushes interest away.

    ``theta <- normalize(theta - eta_s mean_skipped)`` where any item was skipped.

    Args:
        theta: (B, d) unit interests.
        skipped_mean: (B, d) mean embedding of the shown-but-not-clicked items.
        has_skipped: (B,) bool, whether any such item exists.
        strength: eta_s in [0, 1]; 0 = off.
    """
    if strength == 0:
        return theta
    pushed = normalize_rows(theta - strength * skipped_mean)
    return np.where(has_skipped[:, None], pushed, theta)


def satiate(satiation: np.ndarray, consumed_topic: np.ndarray, decay: float) -> np.ndarray:
    """Topic satiation with recovery: ``s <- rho s + (1 - rho) onehot(c)``.

    Args:
        satiation: (B, K) in [0, 1].
        consumed_topic: (B,) topic consumed, -1 for none (then ``s <- rho s``: recovery).
        decay: rho in [0, 1).
    """
    nxt = satiation * decay
    nxt += (1.0 - decay) * (consumed_topic[:, None] == np.arange(satiation.shape[1]))
    return nxt


def drift(theta: np.ndarray, noise: np.ndarray, strength: float) -> np.ndarray:
    """Exogenous taste drift: ``theta <- normalize(theta + sigma z)``, z ~ N(0, I).

    Args:
        theta: (B, d) unit interests.
        noise: (B, d) standard normal draws.
        strength: sigma >= 0; 0 = off.
    """
    if strength == 0:
        return theta
    return normalize_rows(theta + strength * noise)


def spend_budget(budget: np.ndarray, engaged_share: np.ndarray, cost: float, restore: float) -> np.ndarray:
    """Session budget: each step costs ``cost``; engagement restores ``restore * y / l``.

    Args:
        budget: (B,) remaining budget.
        engaged_share: (B,) y / l_j in [0, 1] (0 when nothing was clicked).
    """
    return budget - cost + restore * engaged_share


def satisfaction_signal(
    consumed_value: np.ndarray, clicked: np.ndarray, value_weight: float, idle: float
) -> np.ndarray:
    """What one step does to lasting satisfaction: ``g = sigmoid(w_v v_j)`` after a click
    on an item of value v_j, ``g = idle`` after a step without one.

    Args:
        consumed_value: (B,) value of the consumed item (ignored where not clicked).
        clicked: (B,) bool.
    """
    return np.where(clicked, expit(value_weight * consumed_value), idle)


def update_satisfaction(satisfaction: np.ndarray, signal: np.ndarray, rate: float) -> np.ndarray:
    """Lasting satisfaction: ``S <- (1 - lambda) S + lambda g`` (an exponential average of
    :func:`satisfaction_signal` with a memory of about 1 / lambda steps)."""
    return (1.0 - rate) * satisfaction + rate * signal


def churn_hazard(satisfaction: np.ndarray, threshold: float, hazard: float) -> np.ndarray:
    """(B,) per-step probability of leaving for good: ``h max(0, 1 - S / tau)``.

    Zero at or above the threshold tau, rising linearly to h at S = 0; 0 when tau or h is 0.
    """
    if threshold == 0 or hazard == 0:
        return np.zeros(np.shape(satisfaction))
    return hazard * np.maximum(0.0, 1.0 - satisfaction / threshold)


def churned(satisfaction: np.ndarray, threshold: float, hazard: float, uniform: np.ndarray) -> np.ndarray:
    """(B,) bool: users who leave this step, ``uniform < churn_hazard(S)``."""
    return uniform < churn_hazard(satisfaction, threshold, hazard)
