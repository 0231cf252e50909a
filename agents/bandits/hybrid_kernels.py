"""The compiled loops (numba) of hybrid LinUCB: scores, slates and the per-user arm updates.

Each runs user by user over a few cache-resident rows at a time; composed in numpy the same
work was a dozen batched products of tiny matrices, each a pass over a (B, d, D)-sized
temporary. :class:`~agents.bandits.hybrid.HybridLinUCB` documents the model.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FAST = {"reassoc", "contract", "nsz", "arcp"}
"""numba fastmath flags of the hybrid's loops: reordered sums (vectorised), fused multiply-adds;
not "nnan"/"ninf" (non-finite scores must stay detectable)."""

_LANES = 64
"""The candidate loops of :func:`_hybrid_scores` run over C rounded up to a multiple of this
(compiled loops vectorise fully only over whole blocks of vector registers)."""

_BLOCK = 4
"""Rows taken together by the hybrid's compiled loops (a loop over a short row costs more to
enter than to run: four rows per pass quarter the entries). The loops are written for 4."""


@njit(cache=True, nogil=True)
def _gather_p(arm_state: np.ndarray, arms: np.ndarray, beta: np.ndarray, out: np.ndarray, out_beta: np.ndarray) -> None:
    """``out[b] = P`` (d, D) and ``out_beta[b] = P beta`` (d,) of arm ``arms[b]``, from
    arm_state (slots, d, d + D + 1) and beta (D,)."""
    d, big = out.shape[1], out.shape[2]
    for b in range(len(arms)):
        st = arm_state[arms[b]]
        for i in range(d):
            t = 0.0
            for m in range(big):
                out[b, i, m] = st[i, d + m]
                t += st[i, d + m] * beta[m]
            out_beta[b, i] = t


@njit(cache=True, nogil=True, fastmath=_FAST)
def _hybrid_scores(
    user: np.ndarray,
    items: np.ndarray,
    arms: np.ndarray,
    arm_state: np.ndarray,
    beta: np.ndarray,
    root: np.ndarray,
    pr: np.ndarray,
    p_beta: np.ndarray,
    alpha: float,
    observed: int,
    mean: np.ndarray,
    ucb: np.ndarray,
) -> None:
    """Hybrid LinUCB means and UCBs of every candidate, user by user, into ``mean`` and ``ucb`` (B, C).

    Works in the item space w = [v, 1] (F + 1) like :class:`Projected`: z = T_b w, e = E w.
    Per user b with arm a (state [A_a^-1, P_a, q_a] (d, d + D + 1)):

    * mean weights ``T_b^T beta + E^T (q_a - P_a beta)`` (F + 1), so mean = w . weights;
    * ``Y = J_b^T R`` (F + 1, D) with ``J_b = T_b - P_a^T E`` and ``A0^-1 = R R^T``: row i is
      ``u_i R_i`` (cross rows, i < o) + ``R_{o+i}`` - ``(P_a R)_i`` (i < d), in float64 (the
      difference cancels for well-fitted arms);
    * ``N = Y Y^T + E^T A_a^-1 E`` (F + 1, F + 1): s = w^T N w is Li et al.'s
      ``(z - P_a^T e)^T A0^-1 (z - P_a^T e) + e^T A_a^-1 e``;
    * s of the C candidates, ``2 sum_i w_i sum_{j<=i} N'_ij w_j`` (N' = N's lower triangle with
      the diagonal halved), in float32 vectorised over candidates.

    Loops over short rows cost more to enter than to run, so the item-space rows are taken
    :data:`_BLOCK` at a time (rows padded with zeros) and the candidates padded to :data:`_LANES`.

    Args:
        user: (B, F_u) float32, first ``observed`` columns multiply the item's. items: (B, C, F) float32.
        arms: (B,) int64 arm of each user. arm_state: (slots, d, d + D + 1) float64.
        beta: (D,) shared coefficients. root: (D, D) R, lower Cholesky factor of A0^-1.
        pr: (B, d, D) ``P_a R`` and p_beta: (B, d) ``P_a beta`` of each user's arm.
        alpha: width multiplier. observed: o.
        mean, ucb: (B, C) float64 outputs; ucb = mean + alpha sqrt(max(s, 0)).
    """
    n_users, n_cand, f = items.shape
    d = arm_state.shape[1]
    big = beta.shape[0]
    o = observed
    rows = -(-(f + 1) // _BLOCK) * _BLOCK  # item-space rows: [v, 1] and zero padding
    lanes = -(-n_cand // _LANES) * _LANES
    weights = np.zeros(rows)
    y = np.zeros((rows, big))
    gram = np.zeros((rows, rows), dtype=np.float32)  # N', zero above the diagonal
    vt = np.zeros((rows, lanes), dtype=np.float32)  # [v, 1] of the user's candidates, transposed
    vt[f] = 1.0
    acc = np.empty(lanes, dtype=np.float32)
    s = np.empty(lanes, dtype=np.float32)
    mu = np.empty(lanes)
    for b in range(n_users):
        st = arm_state[arms[b]]
        for i in range(f + 1):
            weights[i] = beta[o + i]
            for m in range(big):
                y[i, m] = root[o + i, m]
        for i in range(o):
            ui = np.float64(user[b, i])
            weights[i] += beta[i] * ui
            for m in range(big):
                y[i, m] += ui * root[i, m]
        for i in range(d):
            weights[i] += st[i, d + big] - p_beta[b, i]
            for m in range(big):
                y[i, m] -= pr[b, i, m]
        for i in range(f + 1):
            for jb in range(0, i + 1, _BLOCK):  # N_ij = y_i . y_j for j = jb..jb+3 at once
                t0 = t1 = t2 = t3 = 0.0
                for m in range(big):
                    yim = y[i, m]
                    t0 += yim * y[jb, m]
                    t1 += yim * y[jb + 1, m]
                    t2 += yim * y[jb + 2, m]
                    t3 += yim * y[jb + 3, m]
                for j, t in ((jb, t0), (jb + 1, t1), (jb + 2, t2), (jb + 3, t3)):
                    if j < i:
                        gram[i, j] = t + st[i, j] if i < d else t
                    elif j == i:
                        gram[i, i] = 0.5 * (t + st[i, i] if i < d else t)
        user_items = items[b]
        for i in range(f):  # rows of vt written contiguously
            vti = vt[i]
            for c in range(n_cand):
                vti[c] = user_items[c, i]
        for c in range(lanes):
            s[c] = 0.0
            mu[c] = 0.0
        for i in range(f + 1):
            for jb in range(0, i + 1, _BLOCK):
                g0, g1, g2, g3 = gram[i, jb], gram[i, jb + 1], gram[i, jb + 2], gram[i, jb + 3]
                v0, v1, v2, v3 = vt[jb], vt[jb + 1], vt[jb + 2], vt[jb + 3]
                if jb == 0:
                    for c in range(lanes):
                        acc[c] = g0 * v0[c] + g1 * v1[c] + g2 * v2[c] + g3 * v3[c]
                else:
                    for c in range(lanes):
                        acc[c] += g0 * v0[c] + g1 * v1[c] + g2 * v2[c] + g3 * v3[c]
            vi, wi = vt[i], weights[i]
            for c in range(lanes):
                s[c] += vi[c] * acc[c]
                mu[c] += wi * vi[c]
        for c in range(n_cand):
            mean[b, c] = mu[c]
            ucb[b, c] = mu[c] + alpha * np.sqrt(max(2.0 * np.float64(s[c]), 0.0))


@njit(cache=True, nogil=True)
def _hybrid_slates(
    ucb: np.ndarray, mean: np.ndarray, slates: np.ndarray, explored: np.ndarray, predicted: np.ndarray
) -> bool:
    """:func:`deterministic_decision` for finite scores, row by row, into the (B, k) ``slates``,
    (B,) ``explored`` and (B, k) ``predicted`` (the mean of each served item); k <= C.

    Slates: top-k by UCB, best first, ties to the lowest index (as :func:`top_k`). Explored:
    the slate is not the top-k by mean, checked in one pass (:func:`_is_top_k`) instead of a
    second ranking. Returns False, with the outputs incomplete, if a score is not finite.
    """
    n_users, n_cand = ucb.shape
    k = slates.shape[1]
    scratch = np.empty(n_cand)
    in_slate = np.zeros(n_cand, dtype=np.bool_)
    for b in range(n_users):
        finite = True
        for c in range(n_cand):
            finite &= np.isfinite(ucb[b, c]) & np.isfinite(mean[b, c])
        if not finite:
            return False
        _top_k_row(ucb[b], slates[b], scratch)
        explored[b] = not _is_top_k(mean[b], slates[b], in_slate)
        for j in range(k):
            predicted[b, j] = mean[b, slates[b, j]]
    return True


@njit(cache=True, nogil=True)
def _top_k_row(scores: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
    """The ``len(out)`` best of finite ``scores`` (C,) into ``out``, best first, ties to the lowest
    index: per slot, the maximum of the candidates left, then its first position (``scratch``: (C,))."""
    n = len(scores)
    for c in range(n):
        scratch[c] = scores[c]
    for j in range(len(out)):
        top = -np.inf
        for c in range(n):
            top = max(top, scratch[c])
        c = 0
        while scratch[c] != top:
            c += 1
        out[j] = c
        scratch[c] = -np.inf


@njit(cache=True, nogil=True)
def _is_top_k(scores: np.ndarray, slate: np.ndarray, in_slate: np.ndarray) -> bool:
    """Whether ``slate`` (k,) is the top-k of finite ``scores`` (C,) in order (ties to the lowest
    index): its items are in that order among themselves and the last beats every other
    candidate. ``in_slate``: (C,) all-False scratch, left all-False."""
    k = len(slate)
    if k == 0:
        return True
    ok = True
    for j in range(k - 1):
        a, b = slate[j], slate[j + 1]
        ok &= (scores[a] > scores[b]) | ((scores[a] == scores[b]) & (a < b))
    for j in range(k):
        in_slate[slate[j]] = True
    last = slate[k - 1]
    bar = scores[last]
    for c in range(len(scores)):
        ok &= in_slate[c] | (scores[c] < bar) | ((scores[c] == bar) & (c > last))
    for j in range(k):
        in_slate[slate[j]] = False
    return ok


@njit(cache=True, nogil=True, fastmath=_FAST)
def _hybrid_update(
    user: np.ndarray,
    items: np.ndarray,
    slates: np.ndarray,
    rewards: np.ndarray,
    arms: np.ndarray,
    arm_state: np.ndarray,
    observed: int,
    white: np.ndarray,
) -> None:
    """Li et al. Alg. 2 update of the arms, user by user in row order (a repeated arm sees the
    earlier rows first), in recursive-least-squares (block Woodbury) form; ``arm_state`` is updated
    in place and the whitened innovation rows for the shared statistics go to ``white`` (B k, D + 1).

    Per user with served rows z (k, D), e (k, d), r (k,) and arm state [A^-1, P, q]:
    ``U = A^-1 E^T`` (d, k), ``S = I + E U = L L^T`` (k, k), innovations ``N = Z - E P``,
    ``n_r = r - E q`` (the rows' residuals under the arm's current fit); then
    ``A^-1 -= U S^-1 U^T``, ``P += U S^-1 N``, ``q += U S^-1 n_r`` (Woodbury 1950), and Li et
    al.'s ``A0 += Z^T Z + (B^T A^-1 B)_old - (B^T A^-1 B)_new`` equals ``A0 += N^T S^-1 N``
    (likewise ``b0 += N^T S^-1 n_r``): the block form of the RLS residual update. With
    ``[Wt, Nt, nt] = L^-1 [U^T, N, n_r]`` the arm gets ``Wt^T [-Wt, Nt, nt]`` and the rows
    ``[Nt, nt]`` are written to ``white``, so the caller adds ``white[:, :D]^T white`` to [A0, b0].

    Args:
        user: (B, F_u) float32. items: (B, C, F) float32 candidates. slates: (B, k) int64 served
        candidates (valid indices). rewards: (B, k) float64 targets. arms: (B,) int64.
        arm_state: (slots, d, d + D + 1) float64. observed: o. white: (B k, D + 1) float64 output.
    """
    n_users, k = slates.shape
    f = items.shape[2]
    d, width = arm_state.shape[1], arm_state.shape[2]
    big = white.shape[1] - 1
    o = observed
    e = np.empty((k, d))
    rhs = np.empty((k, width))
    signed = np.empty((k, width))
    lower = np.empty((k, k))
    for b in range(n_users):
        st = arm_state[arms[b]]
        for j in range(k):  # rhs = E [A^-1, P, q], then [U^T, Z - E P, r - E q] = [U^T, N, n_r]
            item = items[b, slates[b, j]]
            for i in range(d):
                e[j, i] = item[i]
            _combine_rows(rhs[j], e[j], st, False)
            for m in range(d, width):
                rhs[j, m] = -rhs[j, m]
            for m in range(o):
                rhs[j, d + m] += np.float64(user[b, m]) * np.float64(item[m])
            for m in range(f):
                rhs[j, d + o + m] += item[m]
            rhs[j, d + big - 1] += 1.0
            rhs[j, d + big] += rewards[b, j]
        for j in range(k):  # S = I + E A^-1 E^T, then its Cholesky factor in place (lower)
            for m in range(j + 1):
                t = 1.0 if j == m else 0.0
                for i in range(d):
                    t += rhs[j, i] * e[m, i]
                lower[j, m] = t
        for j in range(k):
            for m in range(j + 1):
                t = lower[j, m]
                for i in range(m):
                    t -= lower[j, i] * lower[m, i]
                lower[j, m] = np.sqrt(t) if j == m else t / lower[m, m]
        for j in range(k):  # rhs = L^-1 rhs (forward substitution); signed = [-Wt, Nt, nt]
            for m in range(j):
                ljm = lower[j, m]
                for i in range(width):
                    rhs[j, i] -= ljm * rhs[m, i]
            inv = 1.0 / lower[j, j]
            for i in range(width):
                rhs[j, i] *= inv
                signed[j, i] = rhs[j, i]
            for i in range(d):
                signed[j, i] = -rhs[j, i]
        for i in range(d):  # [A^-1, P, q] += Wt^T [-Wt, Nt, nt]
            _combine_rows(st[i], rhs[:, i], signed, True)
        for j in range(k):
            for m in range(big + 1):
                white[b * k + j, m] = rhs[j, d + m]


@njit(cache=True, nogil=True, fastmath=_FAST, inline="always")
def _combine_rows(out: np.ndarray, coef: np.ndarray, rows: np.ndarray, add: bool) -> None:
    """``out (+)= coef @ rows`` for coef (n,), rows (n, m), out (m,): four rows per pass over
    ``out`` (a pass over a short row costs more to enter than to run)."""
    n, width = rows.shape
    if not add:
        out[:] = 0.0
    start = 0
    while start + _BLOCK <= n:
        c0, c1, c2, c3 = coef[start], coef[start + 1], coef[start + 2], coef[start + 3]
        r0, r1, r2, r3 = rows[start], rows[start + 1], rows[start + 2], rows[start + 3]
        for m in range(width):
            out[m] += c0 * r0[m] + c1 * r1[m] + c2 * r2[m] + c3 * r3[m]
        start += _BLOCK
    for i in range(start, n):
        ci, ri = coef[i], rows[i]
        for m in range(width):
            out[m] += ci * ri[m]
