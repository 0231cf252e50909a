"""Non-learning and simple baselines: random, popularity, static ranking, myopic oracle."""

from __future__ import annotations

import numpy as np

from agents.base import Agent, Decision, Feedback, Observation
from agents.registry import register
from agents.slates import epsilon_greedy_slates, greedy_slates
from simenv import WorldSpec


@register
class RandomAgent(Agent):
    """Uniformly random slates: k distinct candidates, every slate equally likely.

    Propensity at slot j is ``1 / (C - j)``. Every decision counts as explored.
    """

    name = "random"

    def __init__(self, spec: WorldSpec) -> None:
        super().__init__(spec)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        b = obs["user"].shape[0]
        c, k = self.spec.n_candidates, self.spec.slate_size
        slates = np.argsort(rng.random((b, c)), axis=1)[:, :k]
        props = np.broadcast_to(1.0 / (c - np.arange(k)), (b, k)).copy()
        return Decision(slates=slates, propensities=props, explored=np.ones(b, dtype=bool))


@register
class PopularityAgent(Agent):
    """Rank candidates by clicks observed so far (online), with epsilon-greedy slots.

    Item ids never seen score 0, so fresh items start at the bottom (item cold start).
    """

    name = "popularity"

    def __init__(self, spec: WorldSpec, *, epsilon: float = 0.05) -> None:
        if not 0 <= epsilon <= 1:
            raise ValueError(f"popularity.epsilon must be in [0, 1]; got {epsilon}")
        super().__init__(spec, epsilon=epsilon)
        self.epsilon = epsilon
        self.clicks: dict[int, float] = {}
        self._ids = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.float64)

    def _scores(self, item_ids: np.ndarray) -> np.ndarray:
        if not self._ids.size:
            return np.zeros(item_ids.shape)
        pos = np.searchsorted(self._ids, item_ids)
        pos = np.minimum(pos, self._ids.size - 1)
        return np.where(self._ids[pos] == item_ids, self._counts[pos], 0.0)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        return epsilon_greedy_slates(self._scores(obs["item_ids"]), self.spec.slate_size, self.epsilon, rng)

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        clicked = feedback.clicks >= 0
        if not clicked.any():
            return
        rows = np.flatnonzero(clicked)
        items = obs["item_ids"][rows, decision.slates[rows, feedback.clicks[rows]]]
        ids = np.concatenate([self._ids, items])
        counts = np.concatenate([self._counts, np.ones(len(items))])
        self._ids, inverse = np.unique(ids, return_inverse=True)
        self._counts = np.bincount(inverse, weights=counts)


@register
class StaticRankingAgent(Agent):
    """One non-personalised ranking: candidates by a fixed item-feature column
    (default: quality, the column right after the embedding). Deterministic."""

    name = "static"

    def __init__(self, spec: WorldSpec, *, feature: int | None = None) -> None:
        column = spec.embedding_dim if feature is None else feature
        if not 0 <= column < spec.item_dim:
            raise ValueError(f"static.feature must be in [0, {spec.item_dim - 1}]; got {feature}")
        super().__init__(spec, feature=column)
        self.feature = column

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

    def __init__(self, spec: WorldSpec) -> None:
        super().__init__(spec)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        if "best_slate" not in obs:
            raise KeyError("the oracle needs obs['best_slate'] (the world's ground truth, with oracle=True)")
        slates = np.array(obs["best_slate"], dtype=np.int64)
        b = slates.shape[0]
        return Decision(slates=slates, propensities=np.ones(slates.shape), explored=np.zeros(b, dtype=bool))
