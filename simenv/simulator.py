"""The batched world: one :class:`Simulator` steps N concurrent user sessions in numpy.

Every Gymnasium face (:mod:`simenv.envs`) is a thin layer over this class. A step takes
one slate per session, draws the users' choices and engagement, applies the dynamics,
ends sessions whose budget is spent (or whose user churned), starts the next sessions
with returning users, and writes the next observation into preallocated float32
buffers. Ground truth goes into ``info``, never into the observation.

Randomness: one seed is split with :class:`numpy.random.SeedSequence` into independent
streams (catalog, users, retrieval, choice, response, dynamics). None of them is drawn
from by a policy, so under one seed every policy meets the same users, candidates and
choice noise (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simenv import choice as choice_model
from simenv import dynamics
from simenv.catalog import ITEM_EXTRA_FEATURES, Catalog, retrieve_candidates
from simenv.config import ConfigError, WorldConfig
from simenv.population import Population, ReturnQueue, user_feature_dim

Observation = dict[str, np.ndarray]
"""Keys: ``user`` (N, F_u) float32, ``candidates`` (N, C, F_i) float32,
``item_ids`` (N, C) int64, ``user_id`` (N,) int64."""

_OBS_CHUNK_BYTES = 1 << 20
"""Candidate features gathered per block (about 1 MiB): the block stays in cache while
its utilities are computed from it, so the (N, C, F_i) data is streamed from memory once."""

STREAMS = ("catalog", "users", "retrieval", "choice", "response", "dynamics")


@dataclass(frozen=True)
class Streams:
    """Independent random generators, one per source of randomness in the world."""

    catalog: np.random.Generator
    users: np.random.Generator
    retrieval: np.random.Generator
    choice: np.random.Generator
    response: np.random.Generator
    dynamics: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int | np.random.SeedSequence | None) -> Streams:
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        return cls(*(np.random.default_rng(s) for s in seq.spawn(len(STREAMS))))


def repair_slate(action: np.ndarray, n_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """Make every slate distinct with a fixed rule, so every action in the space is legal.

    Rule: the first occurrence of each candidate keeps its position; every later repeat
    is replaced, left to right, by the lowest-index candidate not in the slate. So
    ``[0, 0, 1, 2, 3]`` with C = 5 becomes ``[0, 4, 1, 2, 3]``: the distinct choices
    stay where the policy put them.

    Args:
        action: (B, k) candidate indices in [0, C).
        n_candidates: C.

    Returns:
        ``(slate, repaired)``: (B, k) int64 distinct indices and (B,) bool flags of the
        rows that were changed.

    Raises:
        ValueError: wrong shape or an index outside [0, C).
    """
    slate = np.array(action, dtype=np.int64, copy=True)
    if slate.ndim != 2:
        raise ValueError(f"a slate action must have shape (n_sessions, slate_size); got shape {slate.shape}")
    if slate.size and (np.minimum.reduce(slate, axis=None) < 0 or np.maximum.reduce(slate, axis=None) >= n_candidates):
        raise ValueError(
            f"slate entries must be candidate indices in [0, {n_candidates - 1}]; "
            f"got values from {slate.min()} to {slate.max()}"
        )
    ordered = np.sort(slate, axis=1)
    repaired = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    rows = np.flatnonzero(repaired)
    if rows.size:
        sub = slate[rows]
        k = sub.shape[1]
        # repeat[b, j]: sub[b, j] already appears at an earlier position.
        repeat = ((sub[:, :, None] == sub[:, None, :]) & np.tri(k, k, -1, dtype=bool)).any(axis=2)
        used = np.zeros((rows.size, n_candidates), dtype=bool)
        used[np.arange(rows.size)[:, None], sub] = True
        for j in range(1, k):
            fix = np.flatnonzero(repeat[:, j])
            if fix.size:
                free = np.argmin(used[fix], axis=1)
                sub[fix, j] = free
                used[fix, free] = True
        slate[rows] = sub
    return slate, repaired


def top_k(scores: np.ndarray, k: int, out: np.ndarray | None = None) -> np.ndarray:
    """(B, k) indices of the k largest scores per row, in descending score order
    (ties: lowest index). k rounds of argmax beat argpartition for small k."""
    b = scores.shape[0]
    out = np.empty((b, k), dtype=np.int64) if out is None else out
    if b * scores.shape[1] <= 4096:  # small blocks: one sort costs fewer calls
        out[:] = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return out
    masked = scores.copy()
    rows = np.arange(b)
    for j in range(k):
        best = masked.argmax(axis=1)
        out[:, j] = best
        masked[rows, best] = -np.inf
    return out


def topic_interest(interest: np.ndarray, centroids: np.ndarray, beta: float) -> np.ndarray:
    """A user's interest distribution over topics: ``softmax(beta theta . mu_k)``.

    Args:
        interest: (B, d) unit interests. centroids: (K, d) topic centroids.

    Returns:
        (B, K) rows summing to 1.
    """
    logits = beta * (interest.astype(np.float64) @ centroids.T.astype(np.float64))
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


class Simulator:
    """N concurrent sessions over a persistent population in one batched world.

    Args:
        config: the world.
        n_sessions: N, sessions stepped together (the vector env's ``num_envs``).
        seed: the one seed everything is drawn from.
        oracle: compute the myopic oracle's ground truth each step (``best_slate`` and
            ``oracle_expected_reward``, needed for regret). Off, a step is about 20%
            cheaper (for training); everything else, random draws included, is unchanged.

    The population holds ``config.users.population_size`` users (default: N); a session
    that ends hands its user back to a FIFO of waiting users and takes the next one.
    """

    def __init__(self, config: WorldConfig, n_sessions: int, seed: int | None = None, *, oracle: bool = True) -> None:
        if not isinstance(config, WorldConfig):
            raise ConfigError(f"config must be a WorldConfig; got {type(config).__name__}")
        if isinstance(n_sessions, bool) or not isinstance(n_sessions, int | np.integer) or n_sessions < 1:
            raise ConfigError(f"n_sessions (users stepped at once) must be an integer >= 1; got {n_sessions!r}")
        size = config.users.population_size or int(n_sessions)
        if size < n_sessions:
            raise ConfigError(f"users.population_size must be >= n_sessions ({n_sessions}) or null; got {size}")
        self.config = config
        self.oracle = bool(oracle)
        self.n_sessions = int(n_sessions)
        self.population_size = size
        c, k = config.n_candidates, config.slate_size
        self.user_dim = user_feature_dim(config.users, config.catalog.n_topics)
        self.item_dim = config.catalog.dim + len(ITEM_EXTRA_FEATURES)
        self._position_penalty = choice_model.position_penalty(k, config.choice.position_bias)
        n = self.n_sessions
        self._rows_twice = np.tile(np.arange(n), 2)[:, None]
        # Two observation buffers, written alternately: the observation a step returns
        # stays valid until the step after next, so (s, a, r, s') can be kept without copies.
        self._buffers = [
            {
                "user": np.zeros((n, self.user_dim), dtype=np.float32),
                "candidates": np.zeros((n, c, self.item_dim), dtype=np.float32),
                "item_ids": np.zeros((n, c), dtype=np.int64),
                "user_id": np.zeros(n, dtype=np.int64),
            }
            for _ in range(2)
        ]
        self.reset(seed)

    # ------------------------------------------------------------------ lifecycle
    def reset(self, seed: int | None = None) -> tuple[Observation, dict[str, Any]]:
        """Rebuild the whole world (catalog, population, sessions) from ``seed``."""
        cfg = self.config
        self.streams = Streams.from_seed(seed)
        self.catalog = Catalog.generate(cfg.catalog, self.streams.catalog)
        self.population = Population.generate(
            cfg.users, self.population_size, self.catalog.centroids, self.streams.users
        )
        n = self.n_sessions
        self.session_user = np.arange(n, dtype=np.int64)
        self._queue = ReturnQueue(self.population_size, np.arange(n, self.population_size))
        self.budget = self._draw_budget(n)
        self.session_steps = np.zeros(n, dtype=np.int64)
        self.t = 0
        self._current = 0
        self._observe()
        return self.obs, self.decision_info()

    def restart(self, rows: np.ndarray) -> Observation:
        """End the sessions in ``rows`` now (the users return later) and start new ones."""
        rows = np.asarray(rows, dtype=np.int64)
        self._start_sessions(rows, np.zeros(len(rows), dtype=bool))
        self._observe(rows)
        return self.obs

    @property
    def obs(self) -> Observation:
        """The current observation (buffers reused: valid until the step after next)."""
        return self._buffers[self._current]

    def _draw_budget(self, n: int) -> np.ndarray:
        u = self.config.users
        budget = u.budget_mean + u.budget_std * self.streams.users.standard_normal(n)
        return np.maximum(budget, self.config.dynamics.budget_cost).astype(np.float32)

    def _start_sessions(self, rows: np.ndarray, churned: np.ndarray) -> None:
        leaving = self.session_user[rows]
        if churned.any():
            self.population.replace(leaving[churned], self.catalog.centroids, self.streams.users)
        self.session_user[rows] = self._queue.push_pop(leaving)
        self.budget[rows] = self._draw_budget(len(rows))
        self.session_steps[rows] = 0

    # ------------------------------------------------------------------ observation
    def _observe(self, rows: np.ndarray | None = None) -> None:
        """Retrieve candidates for ``rows`` (all if None) and write their observation,
        true utilities and myopic best slates."""
        cfg, cat, pop = self.config, self.catalog, self.population
        obs = self.obs
        n = self.n_sessions if rows is None else len(rows)
        slots = retrieve_candidates(cat, n, cfg.n_candidates, cfg.n_fresh_candidates, self.streams.retrieval)
        users = self.session_user if rows is None else self.session_user[rows]
        if rows is None:
            self._slots = slots
            self._utility = np.empty(slots.shape, dtype=np.float32)
            chunk = max(1, _OBS_CHUNK_BYTES // (4 * cfg.n_candidates * self.item_dim))
            for lo in range(0, n, chunk):
                part = slice(lo, lo + chunk)
                self._fill_candidates(
                    users[part], slots[part], obs["candidates"][part], obs["item_ids"][part], self._utility[part]
                )
            self._best_slate = top_k(self._utility, cfg.slate_size) if self.oracle else None
            np.take(pop.user_id, users, out=obs["user_id"])
            pop.features(users, out=obs["user"])
        else:
            features = np.empty((n, *obs["candidates"].shape[1:]), dtype=np.float32)
            item_ids = np.empty(slots.shape, dtype=np.int64)
            utility = np.empty(slots.shape, dtype=np.float32)
            self._fill_candidates(users, slots, features, item_ids, utility)
            obs["candidates"][rows] = features
            obs["item_ids"][rows] = item_ids
            obs["user_id"][rows] = pop.user_id[users]
            obs["user"][rows] = pop.features(users, out=np.empty((n, self.user_dim), dtype=np.float32))
            self._slots[rows] = slots
            self._utility[rows] = utility
            if self.oracle:
                self._best_slate[rows] = top_k(utility, cfg.slate_size)

    def _fill_candidates(
        self, users: np.ndarray, slots: np.ndarray, features: np.ndarray, item_ids: np.ndarray, utility: np.ndarray
    ) -> None:
        """For one block of B users: gather candidate features (B, C, F_i) into
        ``features`` and ids (B, C) into ``item_ids``, and write the true utilities
        ``u = theta.e + alpha q - gamma s[c]`` (B, C) into ``utility``.

        The block is small enough to stay in cache, so theta.e + alpha q is one matvec
        over the just-gathered [embedding, quality] columns with [theta, alpha].
        """
        cfg, cat, pop = self.config, self.catalog, self.population
        d = cfg.catalog.dim
        np.take(cat.features, slots, axis=0, out=features)
        np.take(cat.item_id, slots, out=item_ids)
        weights = np.empty((len(users), d + 1), dtype=np.float32)
        np.take(pop.interest, users, axis=0, out=weights[:, :d])
        weights[:, d] = cfg.choice.quality_weight
        np.matvec(features[:, :, : d + 1], weights, out=utility)
        if cfg.dynamics.satiation:
            # s_b[c_j] through flat indices into the block's (B, K) satiation rows.
            satiation = pop.satiation[users]
            index = cat.topic[slots]
            index += (np.arange(len(users), dtype=index.dtype) * satiation.shape[1])[:, None]
            penalty = np.take(satiation, index)
            penalty *= cfg.dynamics.satiation
            utility -= penalty

    def decision_info(self, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ground truth for the current candidates: ``candidate_utility`` (N, C) true
        position-free utilities and ``best_slate`` (N, k), the myopic best slate (top-k
        by utility, best first: it maximises the click probability under MNL and the
        cascade)."""
        info = {} if info is None else info
        info["candidate_utility"] = self._utility
        if self.oracle:
            info["best_slate"] = self._best_slate
        return info

    # ------------------------------------------------------------------ step
    def _choice_probs(self, utility: np.ndarray) -> np.ndarray:
        c = self.config.choice
        fn = choice_model.mnl_probs if c.model == "mnl" else choice_model.cascade_probs
        return fn(utility - self._position_penalty, c.beta, c.no_click_utility)

    def _outcomes(self, slate: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The law of what users ``rows`` (B, 1) would do with candidate-index slates (B, k).

        Returns a dict of ``slots`` (B, k) catalog slots, ``probs`` (B, k + 1) choice
        probabilities, ``share`` (B, k) share of each item watched before noise,
        ``item_value`` (B, k) each item's expected reward given a click, and
        ``expected`` (B,) the slate's expected reward.
        """
        cfg, cat, pop = self.config, self.catalog, self.population
        r = cfg.response
        slots = self._slots[rows, slate]
        utility = self._utility[rows, slate]
        quality = cat.quality[slots]
        # theta.e recovered from the stored utility: u - alpha q + gamma s[c].
        affinity = utility - cfg.choice.quality_weight * quality
        if cfg.dynamics.satiation:
            affinity += cfg.dynamics.satiation * pop.satiation[self.session_user[rows], cat.topic[slots]]
        probs = self._choice_probs(utility)
        share = choice_model.engagement_share(affinity, quality, r.affinity_weight, r.quality_weight, r.bias)
        if r.reward == "click":
            item_value = np.ones_like(share)
        else:
            item_value = choice_model.expected_engagement(cat.length[slots], share, r.noise)
        expected = np.vecdot(probs[:, :-1], item_value)
        return {"slots": slots, "probs": probs, "share": share, "item_value": item_value, "expected": expected}

    def step(self, action: np.ndarray) -> tuple[Observation, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Serve one slate per session.

        Args:
            action: (N, k) candidate indices; repeats are repaired (see :func:`repair_slate`).

        Returns:
            ``(obs, reward, terminated, truncated, info)``: reward (N,) float32 in
            minutes (or clicks), terminated (N,) for a spent budget or churn, truncated
            (N,) at ``users.max_steps``. Sessions that ended are restarted in the same
            step with the next returning user; their last observation is in
            ``info["final_obs"]`` (rows where ``info["_final_obs"]``).
        """
        cfg, cat, pop, rs = self.config, self.catalog, self.population, self.streams
        dyn, resp = cfg.dynamics, cfg.response
        n, k = self.n_sessions, cfg.slate_size
        slate, repaired = repair_slate(action, cfg.n_candidates)
        if slate.shape != (n, k):
            raise ValueError(f"action must have shape ({n}, {k}) (sessions, slate_size); got {slate.shape}")
        # The served slates and the myopic best ones, evaluated together.
        if self.oracle:
            law = self._outcomes(np.concatenate([slate, self._best_slate]), self._rows_twice)
        else:
            law = self._outcomes(slate, self._rows_twice[:n])
        slots, probs, share = law["slots"][:n], law["probs"][:n], law["share"][:n]
        item_value, expected = law["item_value"][:n], law["expected"][:n]

        # Choice and engagement, with the world's own noise.
        position = choice_model.sample_choice(probs, rs.choice.random(n))
        clicked = position >= 0
        rows = self._rows_twice[:n, 0]
        pick = np.where(clicked, position, 0)
        chosen = slots[rows, pick]
        length = cat.length[chosen]
        watch = choice_model.sample_engagement(length, share[rows, pick], resp.noise, rs.response.random(n))
        watch = np.where(clicked, watch, 0.0).astype(np.float32)
        engaged_share = watch / length
        consumed_topic = np.where(clicked, cat.topic[chosen], -1)
        reward = watch if resp.reward == "engagement" else clicked.astype(np.float32)

        # Dynamics of the acting users.
        users = self.session_user
        theta = pop.interest[users]
        consumed = cat.embedding[chosen]
        theta = dynamics.amplify(theta, consumed, clicked, dyn.amplification)
        if dyn.exposure:
            shown = consumed * -clicked[:, None].astype(np.float32)
            for slot in range(k):  # k gathers of (N, d): faster than summing (N, k, d)
                shown += cat.embedding[slots[:, slot]]
            unclicked = (k - clicked).astype(np.float32)
            shown /= np.maximum(unclicked, 1.0)[:, None]
            theta = dynamics.expose(theta, shown, unclicked > 0, dyn.exposure)
        if dyn.drift:
            noise = rs.dynamics.standard_normal(theta.shape, dtype=np.float32)
            theta = dynamics.drift(theta, noise, dyn.drift)
        pop.interest[users] = theta
        pop.satiation[users] = dynamics.satiate(pop.satiation[users], consumed_topic, dyn.satiation_decay)
        pop.history[users[clicked], consumed_topic[clicked]] += 1.0
        satisfaction = dynamics.update_satisfaction(pop.satisfaction[users], engaged_share, dyn.satisfaction_rate)
        pop.satisfaction[users] = satisfaction
        self.budget = dynamics.spend_budget(self.budget, engaged_share, dyn.budget_cost, dyn.budget_restore)
        self.session_steps += 1
        churn = dynamics.churned(satisfaction, dyn.churn_threshold)
        terminated = (self.budget <= 0) | churn
        truncated = (self.session_steps >= cfg.users.max_steps) & ~terminated

        info: dict[str, Any] = {
            "user_id": pop.user_id[users],
            "slate": slate,
            "slate_items": cat.item_id[slots],
            "slate_topics": cat.topic[slots],
            "slate_repaired": repaired,
            "choice_probs": probs,
            "click": position,
            "engagement": watch,
            "expected_item_reward": item_value,
            "expected_reward": expected,
            "consumed_topic": consumed_topic,
            "interest": theta,
            "satisfaction": satisfaction,
            "churned": churn,
        }
        if self.oracle:
            info["oracle_expected_reward"] = law["expected"][n:]

        # The world moves on: arrivals, then the next observation.
        self.t += 1
        if cfg.catalog.arrival_rate:
            cat.arrive(int(rs.catalog.poisson(cfg.catalog.arrival_rate)), self.t, rs.catalog)
        self._current ^= 1
        self._observe()
        ended = terminated | truncated
        if ended.any():
            rows_ended = np.flatnonzero(ended)
            info["final_obs"] = {key: value[rows_ended].copy() for key, value in self.obs.items()}
            info["_final_obs"] = ended
            self._start_sessions(rows_ended, churn[rows_ended])
            self._observe(rows_ended)
        return self.obs, reward, terminated, truncated, self.decision_info(info)
