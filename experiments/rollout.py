"""Drive any agent on a :class:`~simenv.RecVectorEnv` and record what metrics and logs need.

:func:`rollout` is the lab's recorder: it stacks the per-step records metrics read into a
:class:`Trajectory`, and hands every step to optional :class:`StepObserver` s, such as
:class:`DecisionRecorder`, which streams the decisions to a decision log
(:mod:`experiments.logs`) without keeping them in memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agents.base import Agent, Decision, Feedback, Observation
from experiments.logs import DecisionLogWriter, LogMetadata
from simenv import RecVectorEnv

RECORDED_INFO = (
    "user_id",
    "slate_items",
    "slate_topics",
    "choice_probs",
    "click",
    "engagement",
    "expected_reward",
    "oracle_expected_reward",
    "expected_item_reward",
    "consumed_topic",
    "satisfaction",
    "churned",
)
"""Ground-truth keys of the step ``info`` kept per step (see :class:`Trajectory`)."""

ORACLE_INFO = ("oracle_expected_reward",)
"""The keys of :data:`RECORDED_INFO` a world built with ``oracle=False`` does not compute
(the metrics that need them, regret, are then NaN; see :attr:`Trajectory.notes`)."""


@dataclass
class Trajectory:
    """Step records, each stacked as (T, B, ...) arrays.

    Attributes:
        records: per key, an array with a leading step axis T and user axis B:
            ``slate`` (T, B, k) candidate indices, ``propensity`` (T, B, k),
            ``explored`` (T, B), ``reward`` (T, B), ``terminated`` / ``truncated``
            (T, B), ``predicted`` (T, B, k) (NaN if the agent does not predict),
            ``interest`` (T, B, d) interests after the step, every key of
            :data:`RECORDED_INFO`, ``user_features`` (T, B, F_u), and the per-step
            summaries metrics need (see :data:`STEP_SUMMARIES`): ``ild`` (T, B),
            ``engaged_share`` (T, B), ``consumed_topic_rank`` (T, B), ``preference_shift`` (T, B).
        latency: (T,) seconds the agent's ``act`` took per step (whole batch).
        initial_interest: (B, d) interests of the first users before any step.
        centroids: (K, d) topic centroids of the world.
        params: the agent's :attr:`~agents.base.Agent.params`.
        catalog_size: M, items alive at any time (0 if unknown).
        arrivals: (T,) int64 items that arrived in the catalog during each step (they can be
            shown from the next step on); empty if unknown (read as no arrivals).
        notes: what the trajectory lacks and why (e.g. no oracle: regret is NaN).
    """

    records: dict[str, np.ndarray]
    latency: np.ndarray
    initial_interest: np.ndarray
    centroids: np.ndarray
    params: dict = field(default_factory=dict)
    catalog_size: int = 0
    arrivals: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    notes: tuple[str, ...] = ()

    @property
    def steps(self) -> int:
        """T, the number of recorded steps."""
        return len(self.latency)

    @property
    def batch_size(self) -> int:
        """B, sessions stepped together."""
        return self.records["reward"].shape[1]


STEP_SUMMARIES = {
    "ild": "intra-list diversity of the served slate: mean pairwise 1 - cos of its item embeddings",
    "engaged_share": "share of the clicked item watched, engagement / item length (0 without a click)",
    "consumed_topic_rank": "rank of the consumed topic in the user's interests before the step "
    "(0 = favourite, by theta . mu_k), -1 without a click",
    "preference_shift": "|theta after the step - theta when the user arrived on the platform| (L2)",
}
"""Cheap per-step summaries recorded as (T, B) arrays, so metrics need no (T, B, k, d) data."""


def slate_diversity(embeddings: np.ndarray) -> np.ndarray:
    """Intra-list diversity (Ziegler et al. 2005) of slates: mean over pairs of 1 - cos.

    Uses ``mean_{i != j} cos(e_i, e_j) = (|sum_i u_i|^2 - k) / (k (k - 1))`` for the unit
    vectors ``u_i = e_i / |e_i|`` (cost O(k d) per slate instead of O(k^2 d)).

    Args:
        embeddings: (..., k, d) item embeddings of each slate.

    Returns:
        (...) float32 diversity in [0, 2]; 0 for slates of one item.
    """
    k = embeddings.shape[-2]
    if k < 2:
        return np.zeros(embeddings.shape[:-2], dtype=np.float32)
    e = np.asarray(embeddings)
    e = e.astype(np.result_type(e.dtype, np.float32), copy=False)
    norm = np.sqrt(np.maximum(np.einsum("...kd,...kd->...k", e, e), 1e-24))
    total = np.einsum("...kd,...k->...d", e, 1.0 / norm)
    mean_cos = (np.einsum("...d,...d->...", total, total) - k) / (k * (k - 1))
    return (1.0 - mean_cos).astype(np.float32)


def _topic_rank(theta: np.ndarray, centroids: np.ndarray, topic: np.ndarray) -> np.ndarray:
    """(B,) rank of ``topic`` (B,) among the topics by affinity ``theta . mu`` (0 = best;
    ties count in the topic's favour); -1 where ``topic`` is -1."""
    affinity = theta @ centroids.T
    own = affinity[np.arange(len(topic)), np.maximum(topic, 0)]
    rank = (affinity > own[:, None]).sum(axis=1)
    return np.where(topic >= 0, rank, -1).astype(np.int16)


def _step_summaries(
    obs: dict[str, np.ndarray], info: dict, theta_arrival: np.ndarray, centroids: np.ndarray
) -> dict[str, np.ndarray]:
    """The :data:`STEP_SUMMARIES` of one step, from the observation the slate was chosen
    on (its buffers are still valid after ``env.step``) and the step's ``info``."""
    d = centroids.shape[1]
    slate = info["slate"]
    b, c, f = obs["candidates"].shape
    rows = np.arange(b)
    served = obs["candidates"].reshape(b * c, f).take((rows[:, None] * c + slate).ravel(), axis=0)
    served = served.reshape(b, slate.shape[1], f)
    gap = info["interest"] - theta_arrival
    shift = np.sqrt(np.einsum("bd,bd->b", gap, gap))
    return {
        "ild": slate_diversity(served[:, :, :d]),
        "engaged_share": info["engaged_share"],
        "consumed_topic_rank": _topic_rank(info["interest_before"], centroids, info["consumed_topic"]),
        "preference_shift": shift.astype(np.float32),
    }


class StepObserver(Protocol):
    """Something :func:`rollout` shows every step to (e.g. :class:`DecisionRecorder`)."""

    def observe(
        self,
        env: RecVectorEnv,
        obs: Observation,
        decision: Decision,
        reward: np.ndarray,
        ended: tuple[np.ndarray, np.ndarray],
        info: dict[str, Any],
    ) -> None:
        """One step: ``obs`` the slate was chosen on (B users), the agent's ``decision``,
        the (B,) ``reward``, ``ended`` = (terminated, truncated) (B,) bools and the step's
        ``info`` (``env.sim.t`` is already the next step)."""
        ...


def rollout(
    agent: Agent,
    env: RecVectorEnv,
    steps: int,
    rng: np.random.Generator,
    *,
    seed: int | None = None,
    learn: bool = True,
    progress: bool = False,
    observers: Sequence[StepObserver] = (),
) -> Trajectory:
    """Run ``agent`` for ``steps`` steps of all ``env.num_envs`` sessions.

    Works on a world built with ``oracle=False`` (faster): the oracle's keys
    (:data:`ORACLE_INFO`) are then absent from the records and :attr:`Trajectory.notes` says so.

    Args:
        agent: any :class:`Agent`.
        env: the vector env; reset with ``seed`` first (unless ``seed`` is None and the
            env was already reset, in which case it continues).
        steps: T, steps to run.
        rng: the agent's own generator (its exploration draws).
        learn: call ``agent.update`` after every step.
        progress: show a tqdm progress bar.
        observers: each sees every step after the world answered (before the agent learns).

    Returns:
        The stacked :class:`Trajectory`.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    if seed is not None or not getattr(env, "_seeded", True):
        obs, info = env.reset(seed=seed)
    else:
        obs, info = env.sim.obs, env.sim.decision_info()
    sim = env.sim
    initial_interest = sim.population.interest[sim.session_user].copy()
    centroids = sim.catalog.centroids
    rows: dict[str, list[np.ndarray]] = {}
    latency = np.empty(steps)
    arrivals = np.zeros(steps, dtype=np.int64)
    iterator = range(steps)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=agent.name, unit="step", leave=False)
    for t in iterator:
        truth = ("candidate_utility", "best_slate")
        agent_obs = {**obs, **{key: info[key] for key in truth if key in info}} if agent.needs_ground_truth else obs
        start = time.perf_counter()
        decision = agent.act(agent_obs, rng)
        latency[t] = time.perf_counter() - start
        user_features = obs["user"].copy()
        theta_arrival = sim.population.initial_interest[sim.session_user]
        next_obs, reward, terminated, truncated, info = env.step(decision.slates)
        arrivals[t] = info["arrivals"][0]
        for observer in observers:
            observer.observe(env, obs, decision, reward, (terminated, truncated), info)
        if learn:
            agent.update(obs, decision, Feedback(clicks=info["click"], rewards=reward))
        step = {
            "slate": decision.slates,
            "propensity": decision.propensities,
            "explored": decision.explored,
            "predicted": decision.predicted
            if decision.predicted is not None
            else np.full(decision.slates.shape, np.nan),
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "interest": info["interest"].astype(np.float32),
            "user_features": user_features,
        }
        step.update({key: info[key] for key in RECORDED_INFO if key in info})  # no oracle: no regret
        step.update(_step_summaries(obs, info, theta_arrival, centroids))
        for key, value in step.items():
            rows.setdefault(key, []).append(np.asarray(value))
        obs = next_obs
    return Trajectory(
        records={key: np.stack(values) for key, values in rows.items()},
        latency=latency,
        initial_interest=initial_interest,
        centroids=sim.catalog.centroids.copy(),
        params=agent.params,
        catalog_size=sim.catalog.n_items,
        arrivals=arrivals,
        notes=() if sim.oracle else (f"world built with oracle=False: no {', '.join(ORACLE_INFO)}, regret is NaN",),
    )


# --------------------------------------------------------------------------- decision logs


class DecisionRecorder:
    """A :class:`StepObserver` that streams every decision of a rollout to a decision log.

    Per step it writes B rows (user id, world step, session id and step within it, user
    features, candidate item ids and their per-step ``fresh`` flag, the served slate, the
    agent's conditional per-slot propensities, click, reward, explored, terminated,
    truncated and the world's ``expected_reward`` truth) and records the candidates'
    features by item id for the items table. Cost per step O(B C) (the id lookup); memory
    is one row group, whatever the number of steps.

    Args:
        path: the log's stem (``RUN_DIR/logs/<task>``).
        env: the world (its config is the ``world`` metadata).
        policy: the logging policy's description (``agent.params``).
        rows_per_group: rows per Parquet row group.
        owner: pid naming the temporary files (the runner's).
        world: extra world facts for the metadata (e.g. the seed).
    """

    def __init__(
        self,
        path: str | Path,
        env: RecVectorEnv,
        policy: dict[str, Any],
        *,
        rows_per_group: int = 1 << 16,
        owner: int | None = None,
        world: dict[str, Any] | None = None,
    ) -> None:
        config = env.config
        d = config.catalog.dim
        self._fresh = d + 2 if (config.catalog.arrival_rate > 0 or config.catalog.fresh_share > 0) else -1
        b, c = env.num_envs, config.n_candidates
        metadata = LogMetadata(
            propensity_kind="conditional",
            action_space="candidates",
            slate_size=config.slate_size,
            logging_policy=policy,
            world={**config.to_dict(), **(world or {})},
            item_feature_names=(*(f"embedding_{i}" for i in range(d)), "appeal", "length", "fresh"),
            fresh_feature=self._fresh,
            reward_unit="click" if config.response.reward == "click" else "minutes",
        )
        optional = ("session_id", "session_step", "explored", "terminated", "truncated", "expected_reward")
        if self._fresh >= 0:
            optional = (*optional, "candidate_fresh")
        self.writer = DecisionLogWriter(
            path,
            metadata,
            user_dim=env.sim.user_dim,
            item_dim=d + 3,
            n_candidates=c,
            optional=optional,
            rows_per_group=rows_per_group,
            owner=owner,
        )
        self._b = b
        self._session = np.arange(b, dtype=np.int64)
        self._session_step = np.zeros(b, dtype=np.int64)
        self._next_session = b
        self._decisions = 0

    def observe(
        self,
        env: RecVectorEnv,
        obs: Observation,
        decision: Decision,
        reward: np.ndarray,
        ended: tuple[np.ndarray, np.ndarray],
        info: dict[str, Any],
    ) -> None:
        """Write one step's B decisions (see the class docstring)."""
        b = self._b
        candidates = obs["candidates"]
        columns = {
            "decision_id": self._decisions + np.arange(b, dtype=np.int64),
            "user_id": info["user_id"],
            "step": np.full(b, env.sim.t - 1, dtype=np.int64),
            "session_id": self._session,
            "session_step": self._session_step,
            "user_features": obs["user"],
            "candidate_item_ids": obs["item_ids"],
            "slate": info["slate"],
            "propensity": decision.propensities,
            "click": info["click"],
            "reward": reward,
            "explored": decision.explored,
            "terminated": ended[0],
            "truncated": ended[1],
            "expected_reward": info["expected_reward"],
        }
        if self._fresh >= 0:
            columns["candidate_fresh"] = candidates[:, :, self._fresh] > 0.5
        self.writer.write(columns)
        self.writer.add_items(obs["item_ids"].reshape(-1), candidates.reshape(-1, candidates.shape[-1]))
        self._decisions += b
        self._session_step += 1
        done = np.asarray(ended[0]) | np.asarray(ended[1])
        if done.any():
            rows = np.flatnonzero(done)
            self._session = self._session.copy()
            self._session[rows] = self._next_session + np.arange(len(rows))
            self._next_session += len(rows)
            self._session_step[rows] = 0

    def close(self) -> tuple[Path, Path]:
        """Finish the log and move it into place (see :meth:`DecisionLogWriter.close`)."""
        return self.writer.close()

    def abort(self) -> None:
        """Delete the unfinished log."""
        self.writer.abort()
