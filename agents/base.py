"""The one small, batched policy interface every BubbleGym agent implements.

An agent sees a batch of B users at once (the vector env's observation dict):
``obs["user"]`` (B, F_u), ``obs["candidates"]`` (B, C, F_i), ``obs["item_ids"]`` (B, C),
``obs["user_id"]`` (B,). Agents that declare ``needs_ground_truth = True`` (the oracle)
also get ``obs["candidate_utility"]`` (B, C) and ``obs["best_slate"]`` (B, k); no learner ever does.

* :meth:`Agent.act` returns a :class:`Decision`: the slates, the probability with which
  each served item was chosen at its slot, and whether each decision explored.
* :meth:`Agent.update` learns from the :class:`Feedback` of that decision.

Scoring is separate from sampling: most agents implement :meth:`Agent.scores` and use
one of the slate samplers in :mod:`agents.slates`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from agents.persist import (
    AgentRecord,
    ModelFileError,
    export_fields,
    import_fields,
    json_value,
    read_agent,
    write_agent,
)
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


class Agent(ABC):
    """Base class: a batched policy over a world of shape ``spec``.

    Subclasses set ``name`` (the registry key) and accept their hyper-parameters as
    keyword arguments; :attr:`params` records them for every result row.
    """

    name: ClassVar[str] = ""
    needs_ground_truth: ClassVar[bool] = False

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

    # ------------------------------------------------------------- persistence
    state_fields: ClassVar[tuple[str, ...]] = ()
    """Dotted attribute paths of the learned state (arrays, JSON values, numpy generators),
    saved by :meth:`save`; empty for a policy that learns nothing."""

    growable_fields: ClassVar[tuple[str, ...]] = ()
    """The fields of :attr:`state_fields` whose first axis grows with the data (ids seen)."""

    def get_state(self) -> dict[str, Any]:
        """The learned state: numpy arrays and JSON values by field name (default: :attr:`state_fields`)."""
        return export_fields(self, self.state_fields)

    def set_state(self, state: dict[str, Any]) -> None:
        """Put back a state from :meth:`get_state` into this freshly built agent.

        Raises:
            ModelFileError: a missing or unknown field, or a value of another kind or shape.
        """
        import_fields(self, state, self.state_fields, self.growable_fields)

    def save(self, path: str | Path) -> None:
        """Write the agent (name, parameters, spec and learned state) to ``path`` as data
        (:mod:`agents.persist`: JSON and numpy arrays, nothing pickled)."""
        write_agent(path, AgentRecord(agent=self.name, params=self._params, spec=self.spec, state=self.get_state()))

    @classmethod
    def load(cls, path: str | Path, *, spec: WorldSpec | None = None) -> Agent:
        """Read an agent written by :meth:`save`: rebuilt by name through the registry (its
        parameters validated again), then its state put back. Nothing in the file is run.

        Args:
            path: the agent file.
            spec: the world shape the agent must have been built for (None: any).

        Raises:
            ModelFileError: naming ``path`` and what was expected: not an agent file,
                another format version, an agent that is not a ``cls``, another spec, a
                refused parameter or a state of the wrong shape.
        """
        from agents.registry import AgentError, agent_class

        record = read_agent(path)
        if spec is not None and record.spec != spec:
            raise ModelFileError(f"{path}: an agent for the world shape {record.spec}; expected {spec}")
        try:
            klass = agent_class(record.agent)
        except AgentError as err:
            raise ModelFileError(f"{path}: {err}") from None
        if not issubclass(klass, cls):
            raise ModelFileError(f"{path} holds a {record.agent!r} agent ({klass.__name__}); expected a {cls.__name__}")
        agent = _rebuild(path, record)
        try:
            agent.set_state(record.state)
        except (ValueError, TypeError, KeyError, RuntimeError) as err:
            raise ModelFileError(f"{path}: the state of {record.agent!r} does not fit: {err}") from None
        return agent


def _rebuild(path: str | Path, record: AgentRecord) -> Agent:
    """A fresh agent of ``record``'s name, spec and parameters, built through the registry
    (which validates every parameter); :class:`ModelFileError` naming ``path`` if refused or
    if the agent does not report exactly the saved parameters."""
    from agents.registry import AgentError, agent_parameters, make_agent

    accepted = agent_parameters(record.agent)
    try:
        agent = make_agent(record.agent, record.spec, **{k: v for k, v in record.params.items() if k in accepted})
    except (AgentError, ValueError, TypeError) as err:
        raise ModelFileError(f"{path}: the saved parameters of {record.agent!r} are refused: {err}") from None
    rebuilt = json_value(agent._params, f"{record.agent}.params")
    if rebuilt != record.params:
        diff = sorted(k for k in set(rebuilt) | set(record.params) if rebuilt.get(k) != record.params.get(k))
        raise ModelFileError(f"{path}: {record.agent!r} does not accept the saved parameters {diff}")
    return agent
