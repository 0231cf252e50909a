"""Preference and session dynamics: pure functions over batched arrays.

Each takes the current state and returns the next one (new arrays; inputs are not
modified), and each has a strength for which it is the identity (0 = off), so they
compose freely. Shapes: B users, d embedding dims, K topics.
"""

from __future__ import annotations

import numpy as np


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Scale each row to unit L2 norm (rows of zeros stay zero)."""
    norm = np.sqrt(np.vecdot(x, x))
    norm[norm == 0] = 1.0
    return x / norm[:, None]


def amplify(theta: np.ndarray, consumed: np.ndarray, clicked: np.ndarray, strength: float) -> np.ndarray:
    """Preference amplification toward consumed items (Jiang et al. 2019).

    ``theta <- normalize((1 - eta) theta + eta e_j)`` for the users who clicked.

    Args:
        theta: (B, d) unit interests.
        consumed: (B, d) embedding of the consumed item (ignored where not clicked).
        clicked: (B,) bool.
        strength: eta in [0, 1]; 0 = off.
    """
    if strength == 0 or not clicked.any():
        return theta
    pulled = (1.0 - strength) * theta + strength * consumed
    return np.where(clicked[:, None], normalize_rows(pulled), theta)


def expose(theta: np.ndarray, shown_mean: np.ndarray, has_shown: np.ndarray, strength: float) -> np.ndarray:
    """Weaker pull toward items shown but not clicked (mere exposure).

    ``theta <- normalize((1 - eta_x) theta + eta_x mean_shown)``.

    Args:
        theta: (B, d) unit interests.
        shown_mean: (B, d) mean embedding of the shown-but-not-clicked items.
        has_shown: (B,) bool, whether any such item exists.
        strength: eta_x in [0, 1]; 0 = off.
    """
    if strength == 0:
        return theta
    pulled = normalize_rows((1.0 - strength) * theta + strength * shown_mean)
    return np.where(has_shown[:, None], pulled, theta)


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


def update_satisfaction(satisfaction: np.ndarray, engaged_share: np.ndarray, rate: float) -> np.ndarray:
    """Long-run satisfaction EMA: ``sat <- (1 - lambda) sat + lambda y / l``."""
    return (1.0 - rate) * satisfaction + rate * engaged_share


def churned(satisfaction: np.ndarray, threshold: float) -> np.ndarray:
    """(B,) bool: users whose satisfaction fell below the churn threshold (0 = never)."""
    return satisfaction < threshold
