"""The bandits' context vectors: the feature map of a (user, item) pair and its factored form.

Serving never builds the (B, C, D) context tensor: for a fixed user the map is linear in the
item features, ``x = T_b [v, 1]``, so means and widths are computed in the (F_i + 1)-dimensional
item space with per-user ``T_b^T theta`` and ``T_b^T M T_b`` (:class:`Projected`), in float32
(the statistics stay float64). Per-user Gram matrices are assembled elementwise from the
structure of T_b (:meth:`Projected.gram`): on a small machine every numpy pass over a
(B, C, ...) array costs a fraction of a millisecond, so the hot paths minimise passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.base import AgentError, Decision, Feedback, Observation
from simenv import WorldSpec


@dataclass(frozen=True)
class FeatureMap:
    """The context vector of a (user, candidate) pair, for a linear model of reward.

    The world's utility is ``theta . e + alpha q - gamma s[c]`` and the observed user
    features start with ``o = observed_dims`` noisy coordinates ``u ~ theta[:o]``. The map is

    ``phi(user, item) = [u_1 e_1, ..., u_o e_o,  e_1, ..., e_d,  q, l / l_mean, fresh,  1]``

    * ``u * e[:o]`` (elementwise, o columns): the observed part of the affinity theta . e; a
      weight near 1 per column recovers ``theta[:o] . e[:o]`` up to the observation noise;
    * the item features (the embedding: what the population likes on average; quality,
      length and freshness);
    * a bias.

    D = o + F_i + 1 columns (F_i = d + 3 item features); 28 on the default world. The
    unobserved part of theta is left to per-user parameters (``linucb_hybrid``).

    Attributes:
        observed_dims: o, recovered from the spec as ``user_dim - n_topics - 1``.
        item_dim: F_i. embedding_dim: d.
    """

    observed_dims: int
    item_dim: int
    embedding_dim: int

    @classmethod
    def from_spec(cls, spec: WorldSpec) -> FeatureMap:
        observed = spec.user_dim - spec.n_topics - 1
        if not 0 <= observed <= spec.embedding_dim:
            raise AgentError(
                f"spec.user_dim must be observed_dims + n_topics + 1 with observed_dims in "
                f"[0, {spec.embedding_dim}]; got user_dim {spec.user_dim}, n_topics {spec.n_topics}"
            )
        return cls(observed_dims=observed, item_dim=spec.item_dim, embedding_dim=spec.embedding_dim)

    @property
    def dim(self) -> int:
        """D, the length of a context vector."""
        return self.observed_dims + self.item_dim + 1

    def __call__(self, user: np.ndarray, items: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """Context vectors.

        Args:
            user: (B, F_u) observed user features.
            items: (B, n, F_i) item features (n candidates, or the k served items).
            dtype: of the result (learning uses float64).

        Returns:
            (B, n, D) array of ``dtype``.
        """
        o, f = self.observed_dims, self.item_dim
        b, n, _ = items.shape
        x = np.empty((b, n, self.dim), dtype=dtype)
        np.multiply(items[:, :, :o], user[:, None, :o], out=x[:, :, :o])
        x[:, :, o : o + f] = items
        x[:, :, -1] = 1.0
        return x


@dataclass(frozen=True)
class Projected:
    """Contexts ``x_bc = phi(user_b, item_c)`` of B users' C candidates, kept factored.

    For a fixed user the map is linear in the item features: ``x = T_b [v, 1]`` with
    ``T_b = diag(s_b) S``, ``s_b = [u_b[:o], 1, ..., 1]`` (D,) and S the fixed (D, F + 1)
    0/1 matrix sending row d to column d (cross features) or d - o (item features, bias).
    So ``x . theta = [v, 1] . T_b^T theta`` and ``x^T M x = [v, 1]^T (T_b^T M T_b) [v, 1]``:
    scores are computed in the (F + 1)-dimensional item space and the (B, C, D) context
    tensor is never built. ``S^T y`` ("fold") adds the o cross entries onto the first o.

    Attributes:
        items: (B, C, F) float32 candidate features v. row_scale: (B, D) float32 s_b.
        observed: o. scale: optional (B, C) per-context factor an agent applies to its scores.
    """

    items: np.ndarray
    row_scale: np.ndarray
    observed: int
    scale: np.ndarray | None = None

    @classmethod
    def of(cls, features: FeatureMap, obs: Observation) -> Projected:
        o, user = features.observed_dims, obs["user"]
        row_scale = np.ones((len(user), features.dim), dtype=np.float32)
        row_scale[:, :o] = user[:, :o]
        return cls(items=obs["candidates"], row_scale=row_scale, observed=o)

    def fold(self, y: np.ndarray) -> np.ndarray:
        """``S^T y`` over the last axis: (..., D) -> (..., F + 1)."""
        o = self.observed
        out = y[..., o:].copy()
        out[..., :o] += y[..., :o]
        return out

    def linear(self, theta: np.ndarray, *, bias: bool = True) -> np.ndarray:
        """``x . theta`` for theta (D,) -> (B, C), or per user and draw theta (B, n, D) -> (B, n, C).

        ``bias=False`` leaves out the bias term ``theta[-1]``: a constant per user and draw,
        so the ranking of the C candidates is unchanged (and one pass saved)."""
        f = self.items.shape[-1]
        theta = theta.astype(np.float32)
        if theta.ndim == 1:
            w = self.fold(theta * self.row_scale)  # (B, F + 1) = T_b^T theta
            out = np.matvec(self.items, w[:, :f])
            return out + w[:, f:] if bias else out
        w = self.fold(theta * self.row_scale[:, None, :])  # (B, n, F + 1)
        out = w[:, :, :f] @ self.items.transpose(0, 2, 1)
        if bias:
            out += w[:, :, f:]
        return out

    def linear_t(self, theta: np.ndarray) -> np.ndarray:
        """(B, C, n) ``x . theta`` without the bias term for per-user draws theta (B, n, D):
        :meth:`linear` (``bias=False``) laid out candidate-major."""
        o, f = self.observed, self.items.shape[-1]
        w = theta[:, :, o : o + f].astype(np.float32)  # (B, n, F): T_b^T theta without the bias
        w[:, :, :o] += theta[:, :, :o] * self.row_scale[:, None, :o]
        return self.items @ w.transpose(0, 2, 1)

    def squared_norm(self) -> np.ndarray:
        """(B, C) ``|x|^2``: T_b^T T_b is diagonal (one non-zero per row of T_b)."""
        diag = self.fold(np.square(self.row_scale))  # (B, F + 1)
        f = self.items.shape[-1]
        return np.matvec(np.square(self.items), diag[:, :f]) + diag[:, f:]

    def gram(self, matrix: np.ndarray) -> np.ndarray:
        """(B, F + 1, F + 1) float32 ``T_b^T M T_b`` for a symmetric M (D, D).

        Only the o cross rows of T_b depend on the user (``x[:o] = u[:o] * w[:o]``, the rest
        of x is w = [v, 1]), so with M split into cross (c, first o) and item-space (i) blocks,
        ``T_b^T M T_b = M_ii + diag-scaled M_ci rows/columns + (u u^T) * M_cc`` on the first o
        rows and columns: elementwise work, no per-user matrix product."""
        o = self.observed
        m = np.asarray(matrix, dtype=np.float32)
        u = self.row_scale[:, :o]
        gram = np.repeat(m[None, o:, o:], len(u), axis=0)
        cross = u[:, :, None] * m[None, :o, o:]  # (B, o, F + 1)
        gram[:, :o, :] += cross
        gram[:, :, :o] += cross.transpose(0, 2, 1)
        gram[:, :o, :o] += (u[:, :, None] * u[:, None, :]) * m[None, :o, :o]
        return gram

    def jacobian(self) -> np.ndarray:
        """(B, D, F + 1) the maps T_b written out."""
        b, dim = self.row_scale.shape
        o, f = self.observed, self.items.shape[-1]
        jac = np.zeros((b, dim, f + 1), dtype=np.float32)
        jac[:, np.arange(dim), np.r_[np.arange(o), np.arange(f + 1)]] = self.row_scale
        return jac

    def quadratic(self, gram: np.ndarray) -> np.ndarray:
        """(B, C) ``[v, 1]^T N_b [v, 1]`` for per-user symmetric N (B, F + 1, F + 1), e.g. :meth:`gram`."""
        f = self.items.shape[-1]
        v = self.items
        q = np.einsum("bcf,bcf->bc", v @ gram[:, :f, :f], v)  # einsum: faster than vecdot here
        q += 2.0 * np.matvec(v, gram[:, :f, f])
        q += gram[:, f, f][:, None]
        return q


def served_rows(obs: Observation, decision: Decision, feedback: Feedback) -> tuple[np.ndarray, np.ndarray]:
    """Served items and their regression targets.

    Returns:
        ``(items, rewards)``: (B, k, F_i) features of the served items, in slate order, and
        (B, k) targets: the reward at the clicked position, 0 elsewhere (no click: all 0).
    """
    slates = decision.slates
    b, k = slates.shape
    rows = np.arange(b)
    candidates = obs["candidates"]
    flat = (rows[:, None] * candidates.shape[1] + slates).ravel()
    items = candidates.reshape(-1, candidates.shape[2]).take(flat, axis=0).reshape(b, k, -1)
    rewards = np.zeros((b, k), dtype=np.float64)
    clicked = np.flatnonzero(feedback.clicks >= 0)
    rewards[clicked, feedback.clicks[clicked]] = feedback.rewards[clicked]
    return items, rewards
