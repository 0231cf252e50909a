"""Slate samplers: turn per-candidate scores into a Decision (scoring is separate).

All functions are batched: scores (B, C), slates (B, k).
"""

from __future__ import annotations

import numpy as np

from agents.base import Decision


def greedy_slates(scores: np.ndarray, k: int) -> np.ndarray:
    """(B, k) top-k candidates by score, best first (ties: lowest index).

    Equal to ``argsort(-scores, kind="stable")[:, :k]``, computed with a partition (O(C)
    per row instead of a full sort) when k < C and the scores hold no NaN.
    """
    b, c = scores.shape
    neg = -np.asarray(scores)
    if k >= c or np.isnan(neg).any():
        return np.argsort(neg, axis=1, kind="stable")[:, :k]
    kth = np.partition(neg, k - 1, axis=1)[:, k - 1 : k]  # the k-th best (negated) score
    chosen = neg <= kth
    crowded = np.flatnonzero(chosen.sum(axis=1) > k)  # rows with ties at the k-th score
    if crowded.size:
        sub, sub_kth = neg[crowded], kth[crowded]
        ties = sub == sub_kth
        need = k - (sub < sub_kth).sum(axis=1, keepdims=True)
        chosen[crowded] = (sub < sub_kth) | (ties & (np.cumsum(ties, axis=1) <= need))  # lowest index first
    index = np.nonzero(chosen)[1].reshape(b, k)
    order = np.argsort(np.take_along_axis(neg, index, axis=1), axis=1, kind="stable")
    return np.take_along_axis(index, order, axis=1)


def epsilon_greedy_slates(scores: np.ndarray, k: int, epsilon: float, rng: np.random.Generator) -> Decision:
    """Per-slot epsilon-greedy: each slot, in order, takes the best remaining candidate
    with probability 1 - epsilon, else a uniformly random remaining one.

    The propensity of the item at slot j is ``(1 - eps) [it is the best remaining]
    + eps / (C - j)``, exact for this sampling law.
    """
    b, c = scores.shape
    rows = np.arange(b)
    greedy = greedy_slates(scores, k)
    slates = np.empty((b, k), dtype=np.int64)
    props = np.empty((b, k), dtype=np.float64)
    finite = np.finfo(np.float64)  # -inf scores become finite so taken items (-inf) never win again
    masked = np.nan_to_num(scores.astype(np.float64), neginf=finite.min, posinf=finite.max)
    for j in range(k):
        best = np.argmax(masked, axis=1)
        explore = rng.random(b) < epsilon
        # uniform pick among remaining: the (pick_rank + 1)-th remaining candidate by index,
        # found by stepping over the j taken indices in ascending order
        pick_rank = rng.integers(0, c - j, b)
        random_pick = pick_rank.astype(np.int64)
        for taken in np.sort(slates[:, :j], axis=1).T:
            random_pick += taken <= random_pick
        chosen = np.where(explore, random_pick, best)
        props[:, j] = (1.0 - epsilon) * (chosen == best) + epsilon / (c - j)
        slates[:, j] = chosen
        masked[rows, chosen] = -np.inf
    explored = (slates != greedy).any(axis=1)
    return Decision(slates=slates, propensities=props, explored=explored)


def slate_epsilon_greedy_slates(scores: np.ndarray, k: int, epsilon: float, rng: np.random.Generator) -> Decision:
    """Whole-slate epsilon-greedy: with probability epsilon the whole slate is k distinct
    candidates uniformly at random (in random order), else the greedy slate.

    Propensities are the exact conditional probabilities of this law given the slots
    before: once the prefix left the greedy slate the slate is surely random, so slot j's
    item has ``1 / (C - j)``; while the prefix still equals the greedy one, the posterior
    probability of the random branch is ``pi_j = eps q_j / (eps q_j + 1 - eps)`` with
    ``q_j = prod_{i<j} 1 / (C - i)`` (the chance a random prefix matches), and the item
    has ``(1 - pi_j) [it is the greedy item] + pi_j / (C - j)``.
    """
    b, c = scores.shape
    greedy = greedy_slates(scores, k)
    explore = rng.random(b) < epsilon
    random = np.argsort(rng.random((b, c)), axis=1)[:, :k]
    slates = np.where(explore[:, None], random, greedy)
    props = np.empty((b, k), dtype=np.float64)
    on_greedy = np.ones(b, dtype=bool)  # prefix so far equals the greedy prefix
    q = 1.0
    for j in range(k):
        uniform = 1.0 / (c - j)
        pi = epsilon * q / (epsilon * q + 1.0 - epsilon) if epsilon < 1.0 else 1.0
        is_greedy = slates[:, j] == greedy[:, j]
        props[:, j] = np.where(on_greedy, (1.0 - pi) * is_greedy + pi * uniform, uniform)
        on_greedy &= is_greedy
        q *= uniform
    return Decision(slates=slates, propensities=props, explored=(slates != greedy).any(axis=1))
