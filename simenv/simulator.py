"""The batched world: one :class:`Simulator` steps N concurrent user sessions in numpy.

Every Gymnasium face (:mod:`simenv.envs`) is a thin layer over this class. A step takes
one slate per session, draws the users' choices and engagement, applies the dynamics,
ends sessions whose budget is spent (or whose user churned), starts the next sessions
with returning users, and writes the next observation into preallocated float32
buffers. Ground truth goes into ``info``, never into the observation.

Randomness: one seed is split with :class:`numpy.random.SeedSequence` into independent
streams (catalog, users, retrieval, choice, response, dynamics, sessions, newcomers).
None of them is drawn from by a policy, and every step draws the same amounts from each
whatever the policy did: restarted sessions reuse the step's retrieval draws, budgets are
drawn for every row every step, and new users come in a fixed order (the j-th newcomer
is the same person under every policy). So under one seed every policy meets the same
users, candidates and noise, step for step (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simenv import choice as choice_model
from simenv import kernels
from simenv.catalog import ITEM_EXTRA_FEATURES, Catalog, draw_relevance, retrieve_candidates, select_relevant
from simenv.config import ConfigError, WorldConfig
from simenv.population import Newcomers, Population, ReturnQueue, user_feature_dim

Observation = dict[str, np.ndarray]
"""Keys: ``user`` (N, F_u) float32, ``candidates`` (N, C, F_i) float32,
``item_ids`` (N, C) int64, ``user_id`` (N,) int64."""

STREAMS = ("catalog", "users", "retrieval", "choice", "response", "dynamics", "sessions", "newcomers")


@dataclass(frozen=True)
class Streams:
    """Independent random generators, one per source of randomness in the world."""

    catalog: np.random.Generator
    users: np.random.Generator
    retrieval: np.random.Generator
    choice: np.random.Generator
    response: np.random.Generator
    dynamics: np.random.Generator
    sessions: np.random.Generator
    newcomers: np.random.Generator

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
        ValueError: wrong shape, a non-integer dtype (floats are not truncated) or an
            index outside [0, C).
    """
    action = np.asarray(action)
    if action.ndim != 2:
        raise ValueError(f"a slate action must have shape (n_sessions, slate_size); got shape {action.shape}")
    if action.dtype.kind not in "iu":  # signed or unsigned integers (np.issubdtype(_, np.integer), cheaper)
        raise ValueError(f"slate entries must be integer candidate indices; got dtype {action.dtype}")
    slate = np.empty(action.shape, dtype=np.int64)
    repaired = np.empty(action.shape[0], dtype=bool)
    if kernels.repair_slates(np.ascontiguousarray(action, dtype=np.int64), n_candidates, slate, repaired) >= 0:
        raise ValueError(
            f"slate entries must be candidate indices in [0, {n_candidates - 1}]; "
            f"got values from {action.min()} to {action.max()}"
        )
    return slate, repaired


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
            ``oracle_expected_reward``, needed for regret). Off, a step is cheaper (for
            training); everything else, random draws included, is unchanged.
        observation_buffers: 2 (default): observations alternate between two buffers, so
            the one a step returns stays valid until the step after next, and a learner
            can keep (s, a, r, s') without copies. 1: one buffer, overwritten by every
            step (copy what you keep); it halves the largest array, (N, C, F_i) float32
            candidates, 1.45 GiB at a million sessions of the default shape, for pure
            simulation at scale.

    The population holds ``config.users.population_size`` users (default: N) at the start;
    a session that ends hands its user back to a FIFO of waiting users and takes the next
    one. With ``users.arrival_rate`` > 0 the population is open: churned users leave for
    good and newcomers join the FIFO (``info["user_arrivals"]``, :meth:`present_user_ids`).
    The arithmetic of a step runs in the compiled loops of :mod:`simenv.kernels`.
    """

    def __init__(
        self,
        config: WorldConfig,
        n_sessions: int,
        seed: int | None = None,
        *,
        oracle: bool = True,
        observation_buffers: int = 2,
    ) -> None:
        if not isinstance(config, WorldConfig):
            raise ConfigError(f"config must be a WorldConfig; got {type(config).__name__}")
        if isinstance(n_sessions, bool) or not isinstance(n_sessions, int | np.integer) or n_sessions < 1:
            raise ConfigError(f"n_sessions (users stepped at once) must be an integer >= 1; got {n_sessions!r}")
        if isinstance(observation_buffers, bool) or observation_buffers not in (1, 2):
            raise ConfigError(
                "observation_buffers must be 1 (one buffer, overwritten every step) or 2 (alternating, "
                f"each observation valid until the step after next); got {observation_buffers!r}"
            )
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
        self._position_penalty = choice_model.position_penalty(k, config.choice.position_bias).astype(np.float64)
        self._params = step_params(config)
        n = self.n_sessions
        self._all_rows = np.arange(n, dtype=np.int64)
        self._slots = np.empty((n, c), dtype=np.int64)  # catalog slot of each candidate
        self._no_best = np.empty((0, k), dtype=np.int64)  # the kernels' "no oracle"
        self._no_draws = np.empty(0)
        self._drift_normal = np.empty((n if config.dynamics.drift else 0, config.catalog.dim))
        self._churn_on = bool(config.dynamics.churn_threshold and config.dynamics.churn_hazard)
        # The step's kernels, typed once (every call passes the same kinds of arrays).
        self._observe_kernel = kernels.FixedTypeCall(kernels.observe)
        self._serve_kernel = kernels.FixedTypeCall(kernels.serve)
        # Observation buffers, written alternately (see ``observation_buffers``).
        self._buffers = [
            {
                "user": np.zeros((n, self.user_dim), dtype=np.float32),
                "candidates": np.zeros((n, c, self.item_dim), dtype=np.float32),
                "item_ids": np.zeros((n, c), dtype=np.int64),
                "user_id": np.zeros(n, dtype=np.int64),
            }
            for _ in range(observation_buffers)
        ]
        self.reset(seed)

    # ------------------------------------------------------------------ lifecycle
    def reset(self, seed: int | None = None) -> tuple[Observation, dict[str, Any]]:
        """Rebuild the whole world (catalog, population, sessions) from ``seed``."""
        cfg = self.config
        self.__dict__.pop("population", None)  # free the old users first: one population at a time at scale
        self.streams = Streams.from_seed(seed)
        self.catalog = Catalog.generate(cfg.catalog, self.streams.catalog)
        centroids = self.catalog.centroids
        self.population = Population.generate(cfg.users, self.population_size, centroids, self.streams.users)
        self._newcomers = Newcomers(cfg.users, centroids, self.streams.newcomers)
        # Open population: arrival counts from a child of the newcomers stream, so the
        # counts do not depend on how many newcomers churn pulled in (common random numbers).
        self._arrival_counts = self.streams.newcomers.spawn(1)[0] if cfg.users.arrival_rate else None
        n = self.n_sessions
        self.session_user = np.arange(n, dtype=np.int64)
        self._queue = ReturnQueue(self.population_size, np.arange(n, self.population_size))
        self.budget = self._draw_budgets(n)
        self.session_steps = np.zeros(n, dtype=np.int64)
        self.t = 0
        self._current = 0
        self._observe()
        return self.obs, self.decision_info()

    def restart(self, rows: np.ndarray) -> Observation:
        """End the sessions in ``rows`` now (the users return later) and start new ones,
        on the candidates already retrieved for those rows."""
        rows = np.array(rows, dtype=np.int64, order="C")  # the kernels' fixed argument types
        self._start_sessions(rows, np.zeros(len(rows), dtype=bool), self._draw_budgets(len(rows)))
        self._observe_restarted(rows)
        return self.obs

    @property
    def obs(self) -> Observation:
        """The current observation (buffers reused: see ``observation_buffers``)."""
        return self._buffers[self._current]

    def _draw_budgets(self, n: int) -> np.ndarray:
        """(n,) float32 session budgets ``max(N(budget_mean, budget_std^2), budget_cost)``."""
        return self._budgets(self.streams.sessions.standard_normal(n))

    def _budgets(self, normal: np.ndarray) -> np.ndarray:
        """(B,) float32 session budgets from (B,) standard normal draws (see :meth:`_draw_budgets`)."""
        u = self.config.users
        return np.maximum(u.budget_mean + u.budget_std * normal, self.config.dynamics.budget_cost).astype(np.float32)

    def _start_sessions(self, rows: np.ndarray, churned: np.ndarray, budgets: np.ndarray) -> int:
        """New sessions in ``rows``: every leaving user who did not churn goes back to the
        queue and the next waiting one starts with ``budgets`` (B,).

        Closed population (``users.arrival_rate`` 0): a churned user's row is refilled with
        a newcomer, who queues in their place. Open (rate > 0): churned users leave for
        good; if fewer users wait than sessions start, the missing ones are newcomers who
        join at once (so every session is served). Returns how many newcomers joined."""
        leaving = self.session_user[rows]
        if self._arrival_counts is None:
            joined = int(np.count_nonzero(churned))
            if joined:
                self.population.replace(leaving[churned], self.catalog.centroids, self._newcomers)
            self.session_user[rows] = self._queue.push_pop(leaving)
        else:
            self._queue.push(leaving[~churned])
            joined = max(0, len(rows) - self._queue.waiting)
            if joined:
                self._queue.push(self.population.add(joined, self.catalog.centroids, self._newcomers))
            self.session_user[rows] = self._queue.pop(len(rows))
        self.budget[rows] = budgets
        self.session_steps[rows] = 0
        return joined

    def _admit_arrivals(self) -> int:
        """Open population: Poisson(``users.arrival_rate``) newcomers join the back of the
        queue of waiting users; returns how many."""
        if self._arrival_counts is None:
            return 0
        count = int(self._arrival_counts.poisson(self.config.users.arrival_rate))
        if count:
            self._queue.push(self.population.add(count, self.catalog.centroids, self._newcomers))
        return count

    def present_user_ids(self) -> np.ndarray:
        """(U,) ids of the users on the platform now: in a session or waiting for one.
        Churned users are gone (closed population: their rows hold their replacements)."""
        rows = np.concatenate([self.session_user, self._queue.waiting_rows()])
        return self.population.user_id[rows]

    # ------------------------------------------------------------------ observation
    def _observe(self) -> None:
        """Retrieve candidates for every session and write their observation, true
        utilities and the oracle's slates (:func:`kernels.observe`)."""
        cfg, cat = self.config, self.catalog
        n, k = self.n_sessions, cfg.slate_size
        shape = cfg.n_candidates, cfg.n_fresh_candidates
        if cfg.retrieval.method == "relevance":
            self._relevance_draws = draw_relevance(cat, n, *shape, cfg.retrieval, self.streams.retrieval)
            interest = self.population.interest[self.session_user]
            select_relevant(cat, interest, self._relevance_draws, cfg.n_candidates, cfg.retrieval, out=self._slots)
        else:
            retrieve_candidates(cat, n, *shape, self.streams.retrieval, out=self._slots)
        # Fresh arrays each step: the previous step's info keeps its own.
        self._utility = np.empty((n, cfg.n_candidates), dtype=np.float32)
        self._best_slate = np.empty((n, k), dtype=np.int64) if self.oracle else self._no_best
        self._write_observation(self._all_rows, self.session_user, self._slots)

    def _observe_restarted(self, rows: np.ndarray) -> None:
        """Observation of the sessions ``rows`` whose user just changed, on this step's
        retrieval draws: no new draws, so the world's streams stay in step whatever the
        policy (common random numbers); the relevance retriever re-ranks its pool for the
        new user."""
        users = self.session_user[rows]
        if self.config.retrieval.method == "relevance":
            interest = self.population.interest[users]
            draws = self._relevance_draws[rows]
            self._slots[rows] = select_relevant(
                self.catalog, interest, draws, self.config.n_candidates, self.config.retrieval
            )
        self._write_observation(rows, users, self._slots[rows])

    def _write_observation(self, rows: np.ndarray, users: np.ndarray, slots: np.ndarray) -> None:
        obs = self.obs
        out = kernels.Observed(
            obs["candidates"], obs["item_ids"], obs["user"], obs["user_id"], self._utility, self._best_slate
        )
        params = self._params, self._position_penalty
        self._observe_kernel(rows, users, slots, self.catalog.arrays(), self.population.arrays(), *params, out)

    def decision_info(self, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ground truth for the current candidates: ``candidate_utility`` (N, C) true
        position-free utilities and ``best_slate`` (N, k), the myopic oracle's slate: the
        one of largest expected reward under the choice and response models (exact: see
        :func:`simenv.choice.optimal_slate`)."""
        info = {} if info is None else info
        info["candidate_utility"] = self._utility
        if self.oracle:
            info["best_slate"] = self._best_slate
        return info

    # ------------------------------------------------------------------ step
    def step(self, action: np.ndarray) -> tuple[Observation, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Serve one slate per session.

        Args:
            action: (N, k) candidate indices; repeats are repaired (see :func:`repair_slate`).

        Returns:
            ``(obs, reward, terminated, truncated, info)``: reward (N,) float32 in
            minutes (or clicks), terminated (N,) for a spent budget or churn, truncated
            (N,) at ``users.max_steps``. ``info`` holds the step's ground truth (the fields
            of :class:`kernels.Record` but the first three of the return, plus
            ``user_id``, ``slate``, ``slate_repaired``, ``arrivals``: items that
            arrived after the step, and ``user_arrivals``: newcomers who joined after
            it) and the next decision's (:meth:`decision_info`).
            Sessions that ended are restarted in the same step with the next returning
            user; their last observation is in ``info["final_obs"]`` (rows where
            ``info["_final_obs"]``).
        """
        cfg, cat, pop, rs = self.config, self.catalog, self.population, self.streams
        n, k, d = self.n_sessions, cfg.slate_size, cfg.catalog.dim
        slate, repaired = repair_slate(action, cfg.n_candidates)
        if slate.shape != (n, k):
            raise ValueError(f"action must have shape ({n}, {k}) (sessions, slate_size); got {slate.shape}")
        # The world's own noise, drawn in a fixed order from its own streams.
        noise = kernels.Noise(
            choice=rs.choice.random(n),
            response=rs.response.random(n),
            drift=kernels.standard_normal_into(rs.dynamics, self._drift_normal),
            churn=rs.dynamics.random(n) if self._churn_on else self._no_draws,
        )
        users = self.session_user
        rec = kernels.Record(
            slate_items=np.empty((n, k), dtype=np.int64),
            slate_topics=np.empty((n, k), dtype=np.int64),
            choice_probs=np.empty((n, k + 1)),
            click=np.empty(n, dtype=np.int64),
            engagement=np.empty(n, dtype=np.float32),
            engaged_share=np.empty(n, dtype=np.float32),
            expected_item_reward=np.empty((n, k)),
            expected_reward=np.empty(n),
            oracle_expected_reward=np.empty(n if self.oracle else 0),
            consumed_topic=np.empty(n, dtype=np.int64),
            interest_before=np.empty((n, d), dtype=np.float32),
            interest=np.empty((n, d), dtype=np.float32),
            satisfaction=np.empty(n, dtype=np.float32),
            churned=np.empty(n, dtype=bool),
            reward=np.empty(n, dtype=np.float32),
            terminated=np.empty(n, dtype=bool),
            truncated=np.empty(n, dtype=bool),
        )
        info: dict[str, Any] = {"user_id": pop.user_id[users], "slate": slate, "slate_repaired": repaired}
        sessions = kernels.Sessions(users, self._slots, self._utility, self.budget, self.session_steps)
        self._serve_kernel(
            slate, self._best_slate, sessions, cat.arrays(), pop.arrays(), self._position_penalty, self._params,
            noise, rec,
        )  # fmt: skip
        info.update(zip(_INFO_FIELDS, rec[: len(_INFO_FIELDS)], strict=True))
        if not self.oracle:
            del info["oracle_expected_reward"]

        # The world moves on: arrivals, then the next observation.
        self.t += 1
        arrived = int(rs.catalog.poisson(cfg.catalog.arrival_rate)) if cfg.catalog.arrival_rate else 0
        if arrived:
            cat.arrive(arrived, self.t, rs.catalog)
        info["arrivals"] = np.full(n, arrived, dtype=np.int64)
        users_joined = self._admit_arrivals()
        self._current = (self._current + 1) % len(self._buffers)
        self._observe()
        # Drawn for every row, ended or not, so the streams stay in step; turned into
        # budgets for the ended rows only.
        budget_normals = self.streams.sessions.standard_normal(n)
        ended = rec.terminated | rec.truncated
        if ended.any():
            rows_ended = np.flatnonzero(ended)
            info["final_obs"] = {key: value[rows_ended] for key, value in self.obs.items()}  # copies
            info["_final_obs"] = ended
            users_joined += self._start_sessions(
                rows_ended, rec.churned[rows_ended], self._budgets(budget_normals[rows_ended])
            )
            self._observe_restarted(rows_ended)
        info["user_arrivals"] = np.full(n, users_joined, dtype=np.int64)
        return self.obs, rec.reward, rec.terminated, rec.truncated, self.decision_info(info)


_INFO_FIELDS = kernels.Record._fields[: kernels.Record._fields.index("reward")]
"""The :class:`kernels.Record` fields that go into ``info`` (all but the step's return)."""


def step_params(config: WorldConfig) -> kernels.StepParams:
    """The scalar parameters of the compiled step from a world config."""
    c, r, dyn = config.choice, config.response, config.dynamics
    return kernels.StepParams(
        beta=float(c.beta),
        no_click_utility=float(c.no_click_utility),
        appeal_weight=float(c.appeal_weight),
        satisfaction_weight=float(c.satisfaction_weight),
        cascade=c.model == "cascade",
        affinity_weight=float(r.affinity_weight),
        value_weight=float(r.value_weight),
        response_bias=float(r.bias),
        noise=float(r.noise),
        reward_is_click=r.reward == "click",
        amplification=float(dyn.amplification),
        amplification_by_watch=float(dyn.amplification_by_watch),
        exposure=float(dyn.exposure),
        skip_repulsion=float(dyn.skip_repulsion),
        satiation=float(dyn.satiation),
        satiation_decay=float(dyn.satiation_decay),
        drift=float(dyn.drift),
        budget_cost=float(dyn.budget_cost),
        budget_restore=float(dyn.budget_restore),
        satisfaction_rate=float(dyn.satisfaction_rate),
        value_satisfaction=float(dyn.value_satisfaction),
        idle_satisfaction=float(dyn.idle_satisfaction),
        churn_threshold=float(dyn.churn_threshold),
        churn_hazard=float(dyn.churn_hazard),
        max_steps=int(config.users.max_steps),
    )
