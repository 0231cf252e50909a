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


def softmax_slates(scores: np.ndarray, k: int, temperature: float, rng: np.random.Generator) -> Decision:
    """Sample k items without replacement from softmax(scores / temperature) (Plackett-Luce).

    The propensity at slot j is the softmax probability renormalised over the items
    still remaining.
    """
    b, c = scores.shape
    rows = np.arange(b)
    greedy = greedy_slates(scores, k)
    logits = scores.astype(np.float64) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    slates = np.empty((b, k), dtype=np.int64)
    props = np.empty((b, k), dtype=np.float64)
    u = rng.random((b, k))
    for j in range(k):
        total = weights.sum(axis=1)
        cdf = np.cumsum(weights, axis=1)
        chosen = np.minimum((cdf <= (u[:, j] * total)[:, None]).sum(axis=1), c - 1)
        # guard against picking a zero-weight (already used) item at the float edge
        while True:
            bad = weights[rows, chosen] == 0
            if not bad.any():
                break
            chosen[bad] = np.argmax(weights[bad], axis=1)
        props[:, j] = weights[rows, chosen] / total
        slates[:, j] = chosen
        weights[rows, chosen] = 0.0
    explored = (slates != greedy).any(axis=1)
    return Decision(slates=slates, propensities=props, explored=explored)
