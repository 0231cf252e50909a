"""Drive any agent on a :class:`~simenv.RecVectorEnv` and collect what metrics need."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from agents.base import Agent, Feedback
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
    """

    records: dict[str, np.ndarray]
    latency: np.ndarray
    initial_interest: np.ndarray
    centroids: np.ndarray
    params: dict = field(default_factory=dict)
    catalog_size: int = 0
    arrivals: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

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


def rollout(
    agent: Agent,
    env: RecVectorEnv,
    steps: int,
    rng: np.random.Generator,
    *,
    seed: int | None = None,
    learn: bool = True,
    progress: bool = False,
) -> Trajectory:
    """Run ``agent`` for ``steps`` steps of all ``env.num_envs`` sessions.

    Args:
        agent: any :class:`Agent`.
        env: the vector env; reset with ``seed`` first (unless ``seed`` is None and the
            env was already reset, in which case it continues).
        steps: T, steps to run.
        rng: the agent's own generator (its exploration draws).
        learn: call ``agent.update`` after every step.
        progress: show a tqdm progress bar.

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
    )
