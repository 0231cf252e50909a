"""Hybrid LinUCB (``linucb_hybrid``, Li et al. 2010, Alg. 2): shared coefficients plus
per-user ones, its hot paths in compiled loops (:mod:`agents.bandits.hybrid_kernels`).

Per-user statistics get one rank-k block update per step in recursive least-squares form
(Woodbury with a k x k Cholesky factor; no d x d inversion), in a compiled loop over the users
(see :func:`~agents.bandits.hybrid_kernels._hybrid_update`). The per-user matrices are too
small for numpy's batched products, so scoring and slates are compiled loops too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg.blas import dtrmm

from agents.bandits.features import FeatureMap
from agents.bandits.hybrid_kernels import _gather_p, _hybrid_scores, _hybrid_slates, _hybrid_update
from agents.bandits.linear import LinUCB, deterministic_decision
from agents.bandits.ridge import Ridge
from agents.base import Agent, AgentError, Decision, Feedback, Observation
from agents.params import integer
from agents.registry import register
from agents.slates import greedy_probabilities
from simenv import WorldSpec


@register
class HybridLinUCB(Agent):
    """Hybrid LinUCB (Li et al. 2010, Alg. 2) with per-user "arms".

    Score of candidate (user b, item) with shared context z = phi(user, item) (D,) and
    per-arm context x = e (the item embedding, d) for arm a = ``user_id % user_slots``:
    ``z . beta + x . theta_a + alpha sqrt(s)``,
    ``s = (z - P_a^T x)^T A0^-1 (z - P_a^T x) + x^T A_a^-1 x`` with ``P_a = A_a^-1 B_a``
    (Li et al.'s four-term s, factored), ``beta = A0^-1 b0``, ``theta_a = A_a^-1 b_a - P_a beta``.
    The estimate equals joint ridge regression on ``[z, x (x) onehot(a)]`` with penalty lam,
    and s is that joint model's ``x_joint^T A_joint^-1 x_joint`` (by the Schur complement).
    A user's returning sessions share its arm, so theta_a learns the unobserved part of the
    user's interest. Users whose ids collide modulo ``user_slots`` share an arm.

    State per arm: A_a^-1 (d, d), P_a = A_a^-1 B_a (d, D) and q_a = A_a^-1 b_a (d,), in float64;
    B_a and b_a themselves are never needed (see :func:`_hybrid_update`). The shared
    ``A0 = lam I + sum_a (Z_a^T Z_a - B_a^T A_a^-1 B_a)`` (Li et al.'s corrections included) is
    the Schur complement of the joint ridge Gram matrix.

    Speed (B = 1,024, C = 50, k = 5): the one product with a shared operand, ``P_a R`` for
    all users (A0^-1 = R R^T, R lower triangular), is a single BLAS triangular product; the
    per-user rest (means, widths, slates and the arm updates) runs in compiled loops over the
    users (:func:`_hybrid_scores`, :func:`_hybrid_slates`, :func:`_hybrid_update`) on a few
    cache-resident rows at a time. Composed in numpy it was a dozen batched products of tiny
    matrices, each a pass over a (B, d, D)-sized temporary. Large work arrays are kept between
    calls (:meth:`_work`; not pickled); ``act`` and ``update`` share no cached results, so
    feedback may arrive after other ``act`` calls.
    """

    name = "linucb_hybrid"
    state_fields = ("arm_state", "shared.A", "shared.b", "shared.A_inv", "shared.theta", "shared.n_rows")

    @dataclass(frozen=True)
    class Params(LinUCB.Params):
        user_slots: int = integer(
            4096, "per-user parameter slots (user_id % user_slots; ~8 (d^2 + d D + d) bytes each)", ge=1
        )

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        super().__init__(spec, **params)
        lam, user_slots = self.hparams.lam, self.hparams.user_slots
        self.features = FeatureMap.from_spec(spec)
        big, d = self.features.dim, spec.embedding_dim
        self.shared = Ridge(big, lam)  # A0, b0 (A0 includes the -B^T A^-1 B corrections)
        # [A_a^-1, P_a, q_a] side by side: one user's arm is one contiguous (d, d + D + 1) block
        self.arm_state = np.zeros((user_slots, d, d + big + 1))
        self.arm_state[:, np.arange(d), np.arange(d)] = 1.0 / lam
        self._buffers: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_buffers"] = {}  # work arrays: not part of the learned state
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_buffers", {})  # agents saved before work arrays existed

    def _work(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        """A work array kept between calls (uninitialised): large temporaries allocated on
        every call would be fresh pages, faulted in at every step."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf

    @property
    def arm_Pq(self) -> np.ndarray:
        """(user_slots, d, D + 1) view: [P_a, q_a]."""
        return self.arm_state[:, :, self.spec.embedding_dim :]

    def arms(self, obs: Observation) -> np.ndarray:
        """(B,) int64 arm (user slot) of each user."""
        return np.asarray(obs["user_id"] % self.hparams.user_slots, dtype=np.int64)

    def arm_theta(self, arms: np.ndarray) -> np.ndarray:
        """(n, d) per-arm coefficients ``theta_a = A_a^-1 (b_a - B_a beta) = q_a - P_a beta``."""
        pq = self.arm_Pq[arms]
        return pq[:, :, -1] - pq[:, :, :-1] @ self.shared.theta

    def mean_and_ucb(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """(B, C) float64 ``(mean, ucb)`` of every candidate: ``z . beta + e . theta_a`` and
        ``mean + alpha sqrt(s)`` (s in float32, like the other bandits' widths)."""
        mean, ucb = self._mean_and_ucb(obs)
        return mean.copy(), ucb.copy()

    def _mean_and_ucb(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`mean_and_ucb` in work arrays (overwritten by the next call)."""
        user, items = _user_items(obs, self.features)
        arms = self.arms(obs)
        b, d, big = len(arms), self.spec.embedding_dim, self.features.dim
        root = np.linalg.cholesky(self.shared.A_inv)  # A0^-1 = R R^T
        pr, p_beta = self._work("pr", (b, d, big)), self._work("p_beta", (b, d))
        _gather_p(self.arm_state, arms, self.shared.theta, pr, p_beta)
        if b:  # P_a R for all users in place: one BLAS triangular product, (R^T P^T) on the F-order view
            flat = pr.reshape(-1, big)
            product = dtrmm(1.0, root, flat.T, side=0, lower=1, trans_a=1, overwrite_b=1)
            if not np.may_share_memory(product, flat):
                flat[:] = product.T
        mean, ucb = self._work("mean", items.shape[:2]), self._work("ucb", items.shape[:2])
        _hybrid_scores(
            user, items, arms, self.arm_state, self.shared.theta, root, pr, p_beta, float(self.hparams.alpha),
            self.features.observed_dims, mean, ucb,
        )  # fmt: skip
        return mean, ucb

    deterministic = True

    def slot_probabilities(self, obs: Observation, slates: np.ndarray) -> np.ndarray:
        """Indicators of the top-k by the upper confidence bound (deterministic)."""
        return greedy_probabilities(self._mean_and_ucb(obs)[1], slates)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        mean, ucb = self._mean_and_ucb(obs)
        b, k = len(mean), self.spec.slate_size
        slates = np.empty((b, k), dtype=np.int64)
        explored = np.empty(b, dtype=np.bool_)
        predicted = np.empty((b, k))
        if k > mean.shape[1] or not _hybrid_slates(ucb, mean, slates, explored, predicted):
            d_ = deterministic_decision(ucb, mean, k)  # non-finite scores: the general ranking
            predicted = np.take_along_axis(mean, d_.slates, axis=1)
            return Decision(slates=d_.slates, propensities=d_.propensities, explored=d_.explored, predicted=predicted)
        return Decision(slates=slates, propensities=np.ones((b, k)), explored=explored, predicted=predicted)

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        user, items = _user_items(obs, self.features)
        slates = np.ascontiguousarray(decision.slates, dtype=np.int64)
        b, k = slates.shape
        if b != len(user) or (slates.size and (slates.min() < 0 or slates.max() >= items.shape[1])):
            raise AgentError(
                f"{self.name}.update: slates must be (B, k) = ({len(user)}, k) indices of the "
                f"{items.shape[1]} candidates; got shape {slates.shape}"
            )
        rewards = np.zeros((b, k))
        clicked = np.flatnonzero(feedback.clicks >= 0)
        rewards[clicked, feedback.clicks[clicked]] = feedback.rewards[clicked]
        white = self._work("white", (b * k, self.features.dim + 1))
        _hybrid_update(user, items, slates, rewards, self.arms(obs), self.arm_state, self.features.observed_dims, white)
        cross = white[:, :-1].T @ white  # sum over rows of N^T S^-1 [N, n_r] (see _hybrid_update)
        self.shared.A += cross[:, :-1]
        self.shared.b += cross[:, -1]
        self.shared.n_rows += b * k
        self.shared.refresh()


def _user_items(obs: Observation, features: FeatureMap) -> tuple[np.ndarray, np.ndarray]:
    """C-contiguous float32 ``(user (B, F_u), candidates (B, C, F_i))`` for the compiled loops."""
    user = np.ascontiguousarray(obs["user"], dtype=np.float32)
    items = np.ascontiguousarray(obs["candidates"], dtype=np.float32)
    if (
        user.ndim != 2
        or items.ndim != 3
        or items.shape[2] != features.item_dim
        or user.shape[1] < features.observed_dims
        or user.shape[0] != items.shape[0]
    ):
        raise AgentError(
            f"observation shapes: want user (B, F_u >= {features.observed_dims}) and candidates "
            f"(B, C, {features.item_dim}); got {user.shape} and {items.shape}"
        )
    return user, items
