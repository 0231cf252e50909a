"""Non-learning and simple baselines: random, popularity, static ranking, myopic oracle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, AgentError, Decision, Feedback, Observation
from agents.params import AgentParams, integer, number
from agents.registry import register
from agents.slates import (
    epsilon_greedy_slates,
    greedy_probabilities,
    greedy_slates,
    repeated_slots,
    tied_epsilon_greedy_probabilities,
)
from simenv import WorldSpec


@register
class RandomAgent(Agent):
    """Uniformly random slates: k distinct candidates, every slate equally likely.

    Propensity at slot j is ``1 / (C - j)``. Every decision counts as explored.
    """

    name = "random"
    Params = AgentParams

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        b = obs["user"].shape[0]
        c, k = self.spec.n_candidates, self.spec.slate_size
        slates = np.argsort(rng.random((b, c)), axis=1)[:, :k]
        props = np.broadcast_to(1.0 / (c - np.arange(k)), (b, k)).copy()
        return Decision(slates=slates, propensities=props, explored=np.ones(b, dtype=bool))

    def slot_probabilities(self, obs: Observation, slates: np.ndarray) -> np.ndarray:
        """``1 / (C - j)`` at slot j (0 from a repeat on)."""
        c = self.spec.n_candidates
        uniform = np.broadcast_to(1.0 / (c - np.arange(slates.shape[1])), slates.shape)
        return np.where(repeated_slots(slates), 0.0, uniform)


@register
class PopularityAgent(Agent):
    """Rank candidates by smoothed click-through rate, with epsilon-greedy slots.

    State, per item id seen so far (sorted, vectorised): ``_ids`` (n,) int64,
    ``_clicks`` (n,) and ``_impressions`` (n,) float64. An impression is every slot of
    every served slate; a click is the clicked slot. The score of item ``i`` is

        ``(clicks_i + prior_strength * prior_ctr) / (impressions_i + prior_strength)``

    with ``prior_ctr`` the running global CTR (all clicks / all impressions; 0 before any
    impression) unless given. Ids never seen score ``prior_ctr``: fresh items are neither
    buried nor favoured, and exposure without clicks lowers an item's rank.

    Ties (every item at the start) are broken at random: each decision draws one uniform
    key per candidate from ``rng`` and ranks by (score, key); slots are then
    epsilon-greedy over that ranking (:func:`agents.slates.epsilon_greedy_slates`). The
    propensities are marginal over the keys, so they are exact for this policy: the item
    at slot j has ``(1 - eps) [its score is the best remaining] / t_j + eps / (C - j)``,
    with t_j the number of remaining candidates sharing the best remaining score (given
    the slots before, the keys of those t_j candidates are exchangeable, so the greedy
    pick is uniform among them). ``explored`` compares with the greedy slate under this
    decision's keys.
    """

    name = "popularity"
    state_fields = ("_ids", "_clicks", "_impressions")
    growable_fields = state_fields

    @dataclass(frozen=True)
    class Params(AgentParams):
        epsilon: float = number(0.05, "exploration probability per slot", ge=0.0, le=1.0)
        prior_strength: float = number(10.0, "impressions' worth of the prior CTR in each item's score", gt=0.0)
        prior_ctr: float | None = number(
            None, "prior CTR of every item (None: the running global CTR)", ge=0.0, le=1.0, optional=True
        )

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        super().__init__(spec, **params)
        self._ids = np.zeros(0, dtype=np.int64)
        self._clicks = np.zeros(0, dtype=np.float64)
        self._impressions = np.zeros(0, dtype=np.float64)

    @property
    def prior(self) -> float:
        """The prior CTR in use: ``prior_ctr`` if given, else all clicks / all impressions (0 before any)."""
        if self.hparams.prior_ctr is not None:
            return float(self.hparams.prior_ctr)
        shown = self._impressions.sum()
        return float(self._clicks.sum() / shown) if shown > 0 else 0.0

    def scores(self, obs: Observation) -> np.ndarray:
        """(B, C) float64 smoothed CTR of the candidates ``obs["item_ids"]`` (B, C) (the prior if unseen)."""
        item_ids = obs["item_ids"]
        prior, strength = self.prior, float(self.hparams.prior_strength)
        if not self._ids.size:
            return np.full(item_ids.shape, prior)
        pos = np.minimum(np.searchsorted(self._ids, item_ids), self._ids.size - 1)
        seen = self._ids[pos] == item_ids
        clicks = np.where(seen, self._clicks[pos], 0.0)
        shown = np.where(seen, self._impressions[pos], 0.0)
        return (clicks + strength * prior) / (shown + strength)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        """(B, k) epsilon-greedy slates by (score, random key), propensities marginal over the keys."""
        scores = self.scores(obs)
        b, c = scores.shape
        k = self.spec.slate_size
        # rank by (score, random key): distinct ranks 0..C-1, best = C-1
        order = np.lexsort((rng.random((b, c)), scores), axis=1)
        ranks = np.empty((b, c), dtype=np.float64)
        np.put_along_axis(ranks, order, np.arange(c, dtype=np.float64)[None, :], axis=1)
        epsilon = float(self.hparams.epsilon)
        decision = epsilon_greedy_slates(ranks, k, epsilon, rng)
        props = tied_epsilon_greedy_probabilities(scores, decision.slates, epsilon)
        return Decision(slates=decision.slates, propensities=props, explored=decision.explored)

    def slot_probabilities(self, obs: Observation, slates: np.ndarray) -> np.ndarray:
        """Exact, marginal over the random tie-break keys (see the class docstring)."""
        return tied_epsilon_greedy_probabilities(self.scores(obs), slates, float(self.hparams.epsilon))

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        """Count one impression per served slot (B k) and one click per clicked slot."""
        shown = np.take_along_axis(obs["item_ids"], decision.slates, axis=1).ravel()
        clicked = feedback.clicks >= 0
        rows = np.flatnonzero(clicked)
        hits = obs["item_ids"][rows, decision.slates[rows, feedback.clicks[rows]]]
        ids = np.concatenate([self._ids, shown, hits])
        clicks = np.concatenate([self._clicks, np.zeros(shown.size), np.ones(hits.size)])
        impressions = np.concatenate([self._impressions, np.ones(shown.size), np.zeros(hits.size)])
        self._ids, inverse = np.unique(ids, return_inverse=True)
        self._clicks = np.bincount(inverse, weights=clicks, minlength=self._ids.size)
        self._impressions = np.bincount(inverse, weights=impressions, minlength=self._ids.size)


@register
class StaticRankingAgent(Agent):
    """One non-personalised ranking: candidates by a fixed item-feature column
    (default: quality, the column right after the embedding). Deterministic."""

    name = "static"

    @dataclass(frozen=True)
    class Params(AgentParams):
        feature: int | None = integer(
            None, "item-feature column to rank by (None: quality, the column after the embedding)", ge=0, optional=True
        )

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        super().__init__(spec, **params)
        feature = self.hparams.feature
        column = spec.embedding_dim if feature is None else feature
        if not column < spec.item_dim:
            raise AgentError(
                f"static.feature must be an item-feature column, an integer in [0, {spec.item_dim - 1}] or None; "
                f"got {feature}"
            )
        self._params["feature"] = self.feature = column  # the column in use is what a result row records

    deterministic = True

    def slot_probabilities(self, obs: Observation, slates: np.ndarray) -> np.ndarray:
        """Indicators of the fixed ranking's slate (deterministic)."""
        return greedy_probabilities(obs["candidates"][:, :, self.feature], slates)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        scores = obs["candidates"][:, :, self.feature]
        slates = greedy_slates(scores, self.spec.slate_size)
        b = slates.shape[0]
        return Decision(slates=slates, propensities=np.ones(slates.shape), explored=np.zeros(b, dtype=bool))


@register
class OracleAgent(Agent):
    """The myopic oracle: serves the world's ``best_slate``, the slate of largest expected
    reward under the true choice and response models. It reads the world's ground truth,
    so it is the reference for regret (per-step regret of any policy is >= 0), not a learner."""

    name = "oracle"
    needs_ground_truth = True
    deterministic = True
    Params = AgentParams

    def slot_probabilities(self, obs: Observation, slates: np.ndarray) -> np.ndarray:
        """Indicators of the world's ``best_slate`` (deterministic)."""
        if "best_slate" not in obs:
            raise KeyError("the oracle needs obs['best_slate'] (the world's ground truth, with oracle=True)")
        return np.cumprod(slates == np.asarray(obs["best_slate"]), axis=1).astype(np.float64)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        if "best_slate" not in obs:
            raise KeyError("the oracle needs obs['best_slate'] (the world's ground truth, with oracle=True)")
        slates = np.array(obs["best_slate"], dtype=np.int64)
        b = slates.shape[0]
        return Decision(slates=slates, propensities=np.ones(slates.shape), explored=np.zeros(b, dtype=bool))
