"""The expected reward of any slates in the simulator's current state, without drawing or moving.

:func:`slate_value` is the numpy twin of the step's slate law (:func:`simenv.kernels._slate_law`):
for the current sessions it evaluates ``E[r | state, slate] = sum_j P(click j) E[reward | click j]``
for as many slates per session as asked (e.g. every candidate, for k = 1), vectorised over
sessions and slates. It is what off-policy evaluation estimates against
(``experiments.ope_check``: T1, the target's exact one-step value on the logged states).
``tests/test_slate_value.py`` checks it against the kernel's ``expected_reward`` of served slates.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from simenv import choice
from simenv.simulator import Simulator


def slate_value(sim: Simulator, slates: np.ndarray) -> np.ndarray:
    """(N, S) expected reward of S slates for each of the N current sessions.

    Follows :func:`simenv.kernels._slate_law` term by term: the affinity ``theta . e`` recovered
    from the true utility (plus satiation), the watched share
    (:func:`simenv.choice.engagement_share`), the expected reward given a click
    (:func:`simenv.choice.expected_engagement`, or 1 for click rewards), position-penalised
    utilities turned into choice probabilities by the MNL with a no-click option or the
    cascade (:func:`simenv.choice.mnl_probs`, :func:`simenv.choice.cascade_probs`).

    Args:
        sim: the simulator, in the state its last observation describes.
        slates: (N, S, k) candidate indices (distinct within a slate), or (N, k) for one slate each.

    Returns:
        (N, S) float64 (or (N,) for (N, k) input) expected reward in the world's units.
    """
    cfg = sim.config
    n, k, c = sim.n_sessions, cfg.slate_size, cfg.n_candidates
    s = np.asarray(slates)
    single = s.ndim == 2
    if single:
        s = s[:, None, :]
    if s.ndim != 3 or s.shape[0] != n or s.shape[2] != k:
        raise ValueError(f"slates must be ({n}, S, {k}) or ({n}, {k}) candidate indices; got shape {s.shape}")
    if s.size and (s.min() < 0 or s.max() >= c):
        raise ValueError(f"slate entries must be candidate indices in [0, {c})")
    p = sim._params
    items = sim.catalog.arrays()
    users = sim.session_user
    rows = np.arange(n)[:, None, None]
    slots = sim._slots[rows, s]  # (N, S, k) catalog slots
    utility = sim._utility[rows, s].astype(np.float64)
    affinity = utility - p.appeal_weight * items.appeal[slots]
    if p.satiation != 0.0:
        affinity = affinity + p.satiation * sim.population.satiation[users[:, None, None], items.topic[slots]]
    share = expit(p.affinity_weight * affinity + p.value_weight * items.value[slots] + p.response_bias)
    if p.reward_is_click:
        value = np.ones_like(share)
    else:
        value = choice.expected_engagement(items.length[slots].astype(np.float64), share, p.noise)
    u0 = choice.no_click_utility(p.no_click_utility, p.satisfaction_weight, sim.population.satisfaction[users])
    shown = utility - sim._position_penalty[None, None, :]
    if p.cascade:
        click = expit(p.beta * (shown - u0[:, None, None]))
        reach = np.cumprod(np.concatenate([np.ones((*click.shape[:2], 1)), 1.0 - click[..., :-1]], axis=2), axis=2)
        probs = reach * click
    else:
        logits = p.beta * np.concatenate([np.broadcast_to(u0[:, None, None], (*shown.shape[:2], 1)), shown], axis=2)
        logits -= logits.max(axis=2, keepdims=True)
        e = np.exp(logits)
        probs = e[..., 1:] / e.sum(axis=2, keepdims=True)
    out = (probs * value).sum(axis=2)
    return out[:, 0] if single else out
