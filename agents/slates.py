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
    props = _slate_epsilon_greedy_law(greedy, slates, c, epsilon)
    return Decision(slates=slates, propensities=props, explored=(slates != greedy).any(axis=1))


def _slate_epsilon_greedy_law(greedy: np.ndarray, slates: np.ndarray, c: int, epsilon: float) -> np.ndarray:
    """(B, k) conditional probabilities of ``slates`` under whole-slate epsilon-greedy around
    the (B, k) ``greedy`` slates over C = ``c`` candidates (derived in
    :func:`slate_epsilon_greedy_slates`)."""
    props = np.empty(slates.shape, dtype=np.float64)
    on_greedy = np.ones(len(slates), dtype=bool)  # prefix so far equals the greedy prefix
    q = 1.0
    for j in range(slates.shape[1]):
        uniform = 1.0 / (c - j)
        pi = epsilon * q / (epsilon * q + 1.0 - epsilon) if epsilon < 1.0 else 1.0
        is_greedy = slates[:, j] == greedy[:, j]
        props[:, j] = np.where(on_greedy, (1.0 - pi) * is_greedy + pi * uniform, uniform)
        on_greedy &= is_greedy
        q *= uniform
    return props


# --------------------------------------------------------------------------- probabilities of given slates
#
# Each function below is the exact law of one sampler above (or of a deterministic ranking),
# evaluated at given slates (B, k): the (B, k) float64 probability that the sampler puts
# slates[:, j] at slot j given the slots before it. Their product over slots is the slate's
# probability. A slate that repeats a candidate has probability 0 from the repeat on.


def repeated_slots(slates: np.ndarray) -> np.ndarray:
    """(B, k) bool: the candidate at slot j already appeared at an earlier slot."""
    earlier = slates[:, :, None] == slates[:, None, :]  # (B, k, k): [j, i] same candidate
    return np.tril(earlier, k=-1).any(axis=2)


def greedy_probabilities(scores: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """(B, k) conditional probabilities of a deterministic top-k ranking by ``scores``
    (:func:`greedy_slates`, ties to the lowest index): 1 at slot j when the slate so far
    equals the greedy one, else 0. Their product is the indicator of the greedy slate."""
    greedy = greedy_slates(scores, slates.shape[1])
    return np.cumprod(slates == greedy, axis=1).astype(np.float64)


def epsilon_greedy_probabilities(scores: np.ndarray, slates: np.ndarray, epsilon: float) -> np.ndarray:
    """(B, k) law of :func:`epsilon_greedy_slates` at ``slates``: slot j takes the best
    remaining candidate (argmax of ``scores`` over those not in the slate's prefix, ties to
    the lowest index) with probability ``1 - eps``, else a uniform remaining one:
    ``(1 - eps) [s_j is the best remaining] + eps / (C - j)``."""
    b, c = scores.shape
    rows = np.arange(b)
    finite = np.finfo(np.float64)
    masked = np.nan_to_num(scores.astype(np.float64), neginf=finite.min, posinf=finite.max)
    props = np.empty(slates.shape, dtype=np.float64)
    for j in range(slates.shape[1]):
        best = np.argmax(masked, axis=1)
        props[:, j] = (1.0 - epsilon) * (slates[:, j] == best) + epsilon / (c - j)
        masked[rows, slates[:, j]] = -np.inf
    return np.where(repeated_slots(slates), 0.0, props)


def slate_epsilon_greedy_probabilities(scores: np.ndarray, slates: np.ndarray, epsilon: float) -> np.ndarray:
    """(B, k) law of :func:`slate_epsilon_greedy_slates` at ``slates`` (the conditional
    probabilities its docstring derives)."""
    props = _slate_epsilon_greedy_law(greedy_slates(scores, slates.shape[1]), slates, scores.shape[1], epsilon)
    return np.where(repeated_slots(slates), 0.0, props)


def _log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    top = np.max(logits, axis=1, keepdims=True)
    shifted = logits - np.where(np.isfinite(top), top, 0.0)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def plackett_luce_slates(scores: np.ndarray, k: int, temperature: float, rng: np.random.Generator) -> Decision:
    """Softmax (Plackett-Luce) slates: slot j draws candidate i among the remaining ones with
    probability ``exp(s_i / tau) / sum_{remaining} exp(s_r / tau)`` (Plackett 1975; Luce 1959),
    sampled all at once by the Gumbel-top-k trick (the top-k of ``s / tau + Gumbel`` noise
    has exactly this law; Yellott 1977, Kool et al. 2019). Propensities are exact
    (:func:`plackett_luce_probabilities`); explored: the slate differs from the top-k.

    Args:
        scores: (B, C) finite scores. k: slate size. temperature: tau > 0. rng: the draws.
    """
    if not temperature > 0:
        raise ValueError(f"plackett_luce_slates: temperature must be > 0; got {temperature}")
    logits = np.asarray(scores, dtype=np.float64) / temperature
    gumbel = -np.log(-np.log(rng.random(logits.shape)))
    slates = greedy_slates(logits + gumbel, k)
    props = plackett_luce_probabilities(scores, slates, temperature)
    return Decision(slates=slates, propensities=props, explored=(slates != greedy_slates(scores, k)).any(axis=1))


def plackett_luce_probabilities(scores: np.ndarray, slates: np.ndarray, temperature: float) -> np.ndarray:
    """(B, k) law of :func:`plackett_luce_slates` at ``slates``: slot j's candidate has
    ``softmax(s / tau)`` restricted to the candidates not in the prefix (computed in logs)."""
    b = len(scores)
    rows = np.arange(b)
    logits = np.asarray(scores, dtype=np.float64) / temperature
    props = np.empty(slates.shape, dtype=np.float64)
    for j in range(slates.shape[1]):
        log_p = _log_softmax_rows(logits)
        props[:, j] = np.exp(log_p[rows, slates[:, j]])
        logits = logits.copy()
        logits[rows, slates[:, j]] = -np.inf
    return np.where(repeated_slots(slates), 0.0, props)


def slot_categorical_probabilities(probs: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """(B, k) law of filling slot j from its own categorical ``probs[:, j]`` (B, k, C)
    restricted to the candidates not yet shown (uniform over them if it has no mass left):
    the sampler of the SB3 slate policies (:func:`agents.deep_rl.slot_sample_without_replacement`)."""
    b, k, c = probs.shape
    rows = np.arange(b)
    p = probs.astype(np.float64)
    p /= p.sum(axis=2, keepdims=True)
    used = np.zeros((b, c), dtype=bool)
    props = np.empty((b, k), dtype=np.float64)
    for j in range(k):
        weights = np.where(used, 0.0, p[:, j, :])
        empty = weights.sum(axis=1) <= 0
        if empty.any():
            weights[empty] = ~used[empty]
        props[:, j] = weights[rows, slates[:, j]] / weights.sum(axis=1)
        used[rows, slates[:, j]] = True
    return np.where(repeated_slots(slates), 0.0, props)


def tied_epsilon_greedy_probabilities(scores: np.ndarray, slates: np.ndarray, epsilon: float) -> np.ndarray:
    """(B, k) law of per-slot epsilon-greedy whose greedy pick is uniform among the remaining
    candidates tied at the best score (ties broken by fresh random keys, as the popularity
    agent does): ``(1 - eps) [s_j has the best remaining score] / t_j + eps / (C - j)``, t_j the
    number of remaining candidates at that score."""
    b, c = scores.shape
    rows = np.arange(b)
    remaining = np.ones((b, c), dtype=bool)
    props = np.empty(slates.shape, dtype=np.float64)
    for j in range(slates.shape[1]):
        best = np.where(remaining, scores, -np.inf).max(axis=1)
        tied = (remaining & (scores == best[:, None])).sum(axis=1)
        chosen = slates[:, j]
        is_best = remaining[rows, chosen] & (scores[rows, chosen] == best)
        props[:, j] = (1.0 - epsilon) * is_best / tied + epsilon / (c - j)
        remaining[rows, chosen] = False
    return np.where(repeated_slots(slates), 0.0, props)
