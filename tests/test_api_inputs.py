"""Bad input at the API: the envs refuse malformed actions and masks, the agents refuse
observations of another world and malformed feedback, each with a message naming what is
wrong, what is allowed and what was seen."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.error import ResetNeeded

from agents import make_agent
from agents.base import AgentError, Decision, Feedback
from simenv import RecEnv, RecVectorEnv, WorldSpec

N, C, K = 4, 20, 5


def _slates() -> np.ndarray:
    return np.tile(np.arange(K), (N, 1))


BAD_ACTIONS = [
    (_slates().astype(float), "integer candidate indices; got dtype float64"),
    (np.full((N, K), np.nan), "integer candidate indices; got dtype float64"),
    (_slates()[:, :3], f"must have shape ({N}, {K})"),
    (_slates()[0], "must have shape (n_sessions, slate_size)"),
    (_slates() + C, f"candidate indices in [0, {C - 1}]"),
    (-_slates() - 1, f"candidate indices in [0, {C - 1}]"),
]


@pytest.mark.parametrize(("action", "message"), BAD_ACTIONS)
def test_vector_env_refuses_bad_actions(action: np.ndarray, message: str) -> None:
    env = RecVectorEnv(N)
    env.reset(seed=0)
    with pytest.raises(ValueError) as err:
        env.step(action)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.ones(N + 1, dtype=bool), f"bool array of shape ({N},); got bool of shape ({N + 1},)"),
        (np.ones(N, dtype=int), f"bool array of shape ({N},); got int64 of shape ({N},)"),
    ],
)
def test_vector_env_refuses_bad_reset_masks(mask: np.ndarray, message: str) -> None:
    env = RecVectorEnv(N)
    env.reset(seed=0)
    with pytest.raises(ValueError) as err:
        env.reset(options={"reset_mask": mask})
    assert message in str(err.value)


def test_single_env_refuses_bad_actions_and_steps_after_the_end() -> None:
    env = RecEnv(overrides={"users": {"budget_mean": 2.0, "budget_std": 0.0, "max_steps": 2}})
    with pytest.raises(ResetNeeded, match="call reset"):
        env.step(np.arange(K))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(5,\)"):
        env.step(np.arange(K + 1))
    with pytest.raises(ValueError, match="integer candidate indices"):
        env.step(np.arange(K) + 0.5)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(np.arange(K))
        done = terminated or truncated
    with pytest.raises(ResetNeeded, match="the episode has ended"):
        env.step(np.arange(K))
    env.reset()
    env.step(np.arange(K))  # a new episode steps again


def _world_obs(n_candidates: int = C) -> dict[str, np.ndarray]:
    env = RecVectorEnv(N, overrides={"n_candidates": n_candidates})
    obs, _ = env.reset(seed=0)
    return {key: value.copy() for key, value in obs.items()}


@pytest.mark.parametrize("name", ["random", "linucb", "popularity", "vw_epsilon"])
def test_agents_refuse_observations_of_another_world(name: str) -> None:
    spec = WorldSpec.from_config(RecVectorEnv(N).config)
    agent = make_agent(name, spec)
    with pytest.raises(AgentError) as err:
        agent.act(_world_obs(n_candidates=10), np.random.default_rng(0))
    assert "built for a world of C = 20 candidates" in str(err.value)
    assert "want (4, 10" not in str(err.value) and "want (4, 20" in str(err.value)


BAD_FEEDBACK = [
    (Feedback(clicks=np.zeros(N + 1, dtype=np.int64), rewards=np.zeros(N)), f"clicks must have shape ({N},)"),
    (Feedback(clicks=np.zeros(N, dtype=np.int64), rewards=np.zeros(N - 1)), f"rewards must have shape ({N},)"),
    (Feedback(clicks=np.full(N, K), rewards=np.zeros(N)), f"clicks must be integer slate positions in [-1, {K - 1}]"),
    (Feedback(clicks=np.zeros(N), rewards=np.zeros(N)), "clicks must be integer slate positions"),
    (Feedback(clicks=np.zeros(N, dtype=np.int64), rewards=np.array([0, np.nan, 0, 0])), "rewards must be finite"),
]


@pytest.mark.parametrize(("feedback", "message"), BAD_FEEDBACK)
def test_agents_refuse_malformed_feedback(feedback: Feedback, message: str) -> None:
    obs = _world_obs()
    agent = make_agent("linucb", WorldSpec.from_config(RecVectorEnv(N).config))
    decision = agent.act(obs, np.random.default_rng(0))
    assert isinstance(decision, Decision)
    with pytest.raises(AgentError) as err:
        agent.update(obs, decision, feedback)
    assert message in str(err.value)
