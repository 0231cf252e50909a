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
            :data:`RECORDED_INFO`, and ``user_features`` (T, B, F_u).
        latency: (T,) seconds the agent's ``act`` took per step (whole batch).
        initial_interest: (B, d) interests of the first users before any step.
        centroids: (K, d) topic centroids of the world.
    """

    records: dict[str, np.ndarray]
    latency: np.ndarray
    initial_interest: np.ndarray
    centroids: np.ndarray
    params: dict = field(default_factory=dict)


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
    rows: dict[str, list[np.ndarray]] = {}
    latency = np.empty(steps)
    iterator = range(steps)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=agent.name, unit="step", leave=False)
    for t in iterator:
        agent_obs = {**obs, "candidate_utility": info["candidate_utility"]} if agent.needs_ground_truth else obs
        start = time.perf_counter()
        decision = agent.act(agent_obs, rng)
        latency[t] = time.perf_counter() - start
        user_features = obs["user"].copy()
        next_obs, reward, terminated, truncated, info = env.step(decision.slates)
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
        step.update({key: info[key] for key in RECORDED_INFO})
        for key, value in step.items():
            rows.setdefault(key, []).append(np.asarray(value))
        obs = next_obs
    return Trajectory(
        records={key: np.stack(values) for key, values in rows.items()},
        latency=latency,
        initial_interest=initial_interest,
        centroids=sim.catalog.centroids.copy(),
        params=agent.params,
    )
