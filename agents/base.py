"""The one small, batched policy interface every BubbleGym agent implements.

An agent sees a batch of B users at once (the vector env's observation dict):
``obs["user"]`` (B, F_u), ``obs["candidates"]`` (B, C, F_i), ``obs["item_ids"]`` (B, C),
``obs["user_id"]`` (B,). Agents that declare ``needs_ground_truth = True`` (the oracle)
also get ``obs["candidate_utility"]`` (B, C) and ``obs["best_slate"]`` (B, k); no learner ever does.

* :meth:`Agent.act` returns a :class:`Decision`: the slates, the probability with which
  each served item was chosen at its slot, and whether each decision explored.
* :meth:`Agent.update` learns from the :class:`Feedback` of that decision.
* Agents that learn from their own simulated experience before serving (the deep-RL
  agents) also implement :class:`Trainable`.

Scoring is separate from sampling: most agents implement :meth:`Agent.scores` and use
one of the slate samplers in :mod:`agents.slates`.
"""

from __future__ import annotations

import functools
import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from simenv import WorldSpec

Observation = dict[str, np.ndarray]


@dataclass(frozen=True)
class Decision:
    """What an agent served to a batch of B users.

    Attributes:
        slates: (B, k) int64 distinct candidate indices, position 0 first.
        propensities: (B, k) float64 in (0, 1]: the probability with which the agent's
            own sampling put that item at that slot, given the slots before it.
        explored: (B,) bool, whether the slate differs from the agent's greedy slate.
        predicted: optional (B, k) float64 predicted reward of each served item given a
            click (for prediction-accuracy metrics); None if the agent does not predict.
    """

    slates: np.ndarray
    propensities: np.ndarray
    explored: np.ndarray
    predicted: np.ndarray | None = None

    def __post_init__(self) -> None:
        b, k = self.slates.shape
        if self.propensities.shape != (b, k) or self.explored.shape != (b,):
            raise ValueError(
                f"Decision shapes disagree: slates {self.slates.shape}, propensities "
                f"{self.propensities.shape} (want {(b, k)}), explored {self.explored.shape} (want {(b,)})"
            )


@dataclass(frozen=True)
class Feedback:
    """What the users did with a decision.

    Attributes:
        clicks: (B,) int64 slate position clicked, -1 for no click.
        rewards: (B,) float reward (minutes watched, or the click).
    """

    clicks: np.ndarray
    rewards: np.ndarray


class AgentError(ValueError):
    """An agent was given something it cannot use: a bad parameter, an observation of
    another world's shape, or malformed feedback."""


def check_observation(spec: WorldSpec, obs: Observation) -> None:
    """Check that the arrays of ``obs`` have the shapes of ``spec``'s world.

    Each of ``user`` (B, F_u), ``candidates`` (B, C, F_i) and ``item_ids`` (B, C) that is
    present must have its shape, with one B.

    Raises:
        AgentError: naming the key, its shape, the world the agent was built for and the
            shape wanted.
    """
    batch = None
    for key, tail in (
        ("user", (spec.user_dim,)),
        ("candidates", (spec.n_candidates, spec.item_dim)),
        ("item_ids", (spec.n_candidates,)),
    ):
        if key not in obs:
            continue
        shape = np.shape(obs[key])
        batch = shape[0] if batch is None and shape else batch
        if shape != (batch, *tail):
            raise AgentError(
                f"observation {key!r} has shape {shape}; this agent was built for a world of "
                f"C = {spec.n_candidates} candidates, F_u = {spec.user_dim}, F_i = {spec.item_dim}: "
                f"want {(batch, *tail)}"
            )


def check_feedback(decision: Decision, feedback: Feedback) -> None:
    """Check ``feedback`` answers ``decision``: (B,) clicks in [-1, k), (B,) finite rewards.

    Raises:
        AgentError: naming the array, the expected shape or range and what was seen.
    """
    b, k = decision.slates.shape
    clicks, rewards = np.asarray(feedback.clicks), np.asarray(feedback.rewards)
    for key, value in (("clicks", clicks), ("rewards", rewards)):
        if value.shape != (b,):
            raise AgentError(f"feedback {key} must have shape ({b},) (one per decision); got {value.shape}")
    if not np.issubdtype(clicks.dtype, np.integer) or clicks.min(initial=0) < -1 or clicks.max(initial=-1) >= k:
        raise AgentError(f"feedback clicks must be integer slate positions in [-1, {k - 1}]; got {clicks}")
    if not np.isfinite(rewards).all():
        bad = np.flatnonzero(~np.isfinite(rewards))
        raise AgentError(f"feedback rewards must be finite; got {rewards[bad[:5]]} at rows {bad[:5].tolist()}")


def _checked_act(act):
    @functools.wraps(act)
    def act_checked(self: Agent, obs: Observation, rng: np.random.Generator) -> Decision:
        check_observation(self.spec, obs)
        return act(self, obs, rng)

    act_checked.checked = True
    return act_checked


def _checked_update(update):
    @functools.wraps(update)
    def update_checked(self: Agent, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        check_observation(self.spec, obs)
        check_feedback(decision, feedback)
        return update(self, obs, decision, feedback)

    update_checked.checked = True
    return update_checked


class Agent(ABC):
    """Base class: a batched policy over a world of shape ``spec``.

    Subclasses set ``name`` (the registry key) and accept their hyper-parameters as
    keyword arguments; :attr:`params` records them for every result row. Every
    subclass's ``act`` and ``update`` refuse observations of another world's shape and
    malformed feedback (:func:`check_observation`, :func:`check_feedback`) before they run.
    """

    name: ClassVar[str] = ""
    needs_ground_truth: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr, wrap in (("act", _checked_act), ("update", _checked_update)):
            method = cls.__dict__.get(attr)
            if method is not None and not getattr(method, "checked", False):
                setattr(cls, attr, wrap(method))

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        self.spec = spec
        self._params = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        """Flat dict of the agent's name and hyper-parameters."""
        return {"agent": self.name, **self._params}

    @abstractmethod
    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        """Choose a slate for each of the B users in ``obs``."""

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:  # noqa: B027
        """Learn from one batch of feedback (default: a non-learning policy)."""

    def save(self, path: str | Path) -> None:
        """Write the agent (parameters and learned state) to ``path``."""
        with open(path, "wb") as f:
            pickle.dump(self, f)

    @classmethod
    def load(cls, path: str | Path) -> Agent:
        """Read an agent written by :meth:`save`."""
        with open(path, "rb") as f:
            agent = pickle.load(f)
        if not isinstance(agent, cls):
            raise TypeError(f"{path} holds a {type(agent).__name__}, not a {cls.__name__}")
        return agent


@runtime_checkable
class Trainable(Protocol):
    """An agent that trains on a world of its own before it serves (the deep-RL agents).

    The runner calls ``agent.train(env_or_config, total_timesteps=n, seed=s)`` on a
    separately seeded world before the evaluated rollout. ``isinstance(agent, Trainable)``
    checks that the method exists (not its signature).
    """

    def train(self, env_or_config: Any, total_timesteps: int, seed: int) -> Any:
        """Learn for ``total_timesteps`` user-steps (summed over the world's B sessions).

        Args:
            env_or_config: a :class:`simenv.RecVectorEnv` (its sessions are used as they
                are) or a :class:`simenv.WorldConfig` (the agent builds its own sessions).
                Its shape matches the agent's spec.
            total_timesteps: user-steps to learn from, >= 1.
            seed: an integer in [0, 2**31) that fixes the training (same seed, same model).

        Returns:
            Anything (the SB3 agents return ``self``); the runner ignores it.
        """
        ...
