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
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

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


MONTE_CARLO_SAMPLES = 4096
"""Default draws of :meth:`Agent.slate_probabilities`' Monte Carlo fallback (standard error
``sqrt(p (1 - p) / n)``: 0.0016 at p = 0.01)."""


def check_slates(spec: WorldSpec, obs: Observation, slates: np.ndarray) -> np.ndarray:
    """``slates`` as (B, k) int64 candidate indices in [0, C) for the B users of ``obs``.

    Raises:
        AgentError: naming the shape or the first out-of-range row.
    """
    b = np.shape(obs["user"])[0]
    slates = np.asarray(slates)
    k, c = spec.slate_size, spec.n_candidates
    if slates.shape != (b, k) or not np.issubdtype(slates.dtype, np.integer):
        raise AgentError(f"slates must be ({b}, {k}) integer candidate indices (B users, k slots); got {slates.shape}")
    bad = (slates < 0) | (slates >= c)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise AgentError(f"slates row {row} is {slates[row].tolist()}; candidate indices must be in [0, {c})")
    return slates.astype(np.int64, copy=False)


def monte_carlo_slate_probabilities(
    agent: Agent, obs: Observation, slates: np.ndarray, rng: np.random.Generator, samples: int
) -> np.ndarray:
    """(B,) share of ``samples`` fresh :meth:`Agent.act` draws on ``obs`` that equal ``slates``.

    An unbiased estimate of each slate's probability under the agent's current policy, for
    agents without a closed form (e.g. Thompson sampling). Standard error ``sqrt(p (1 - p) / n)``;
    a slate of probability well below ``1 / samples`` is usually estimated as 0. Cost:
    ``samples`` calls of ``act`` (which must not learn or change the agent's state).
    """
    if samples < 1:
        raise AgentError(f"samples must be an integer >= 1; got {samples}")
    hits = np.zeros(len(slates), dtype=np.int64)
    for _ in range(samples):
        hits += (agent.act(obs, rng).slates == slates).all(axis=1)
    return hits / samples


def require_stochastic(agent: Agent, purpose: str = "log data for importance-weighted estimators") -> None:
    """Refuse a deterministic agent as a logging policy.

    Raises:
        AgentError: saying why: a deterministic policy serves one slate per context with
            probability 1, so its log holds no outcome of any other slate and importance
            weights pi_target / pi_logger are 0 or undefined for every slate it did not pick.
    """
    if agent.deterministic:
        raise AgentError(
            f"{agent.name!r} is deterministic (it serves one slate per context, propensity 1), so it cannot "
            f"{purpose}: the log would hold no outcome of any other slate, and the importance weight "
            "pi_target(slate) / pi_logger(slate) is undefined wherever the target differs. Log with a "
            "stochastic policy instead (linear_egreedy, linear_softmax, vw_epsilon, vw_squarecb, random, ppo)."
        )


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

    Subclasses set ``name`` (the registry key) and declare their hyper-parameters once, as
    a frozen dataclass ``Params`` (:mod:`agents.params`: each field with its range and
    meaning); ``__init__(spec, **params)`` checks them into :attr:`hparams` and
    :attr:`params` records them for every result row. Every
    subclass's ``act`` and ``update`` refuse observations of another world's shape and
    malformed feedback (:func:`check_observation`, :func:`check_feedback`) before they run.
    """

    name: ClassVar[str] = ""
    needs_ground_truth: ClassVar[bool] = False
    deterministic: ClassVar[bool] = False
    """True for a policy that serves one slate per observation (propensity 1): it cannot be
    the logging policy of importance-weighted estimators (:func:`require_stochastic`)."""
    Params: ClassVar[type | None] = None
    """The hyper-parameters: a frozen :class:`agents.params.AgentParams` dataclass (every built-in
    agent has one). None for an agent of one's own that takes keyword arguments in its own
    ``__init__``: they are recorded as given, unchecked."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr, wrap in (("act", _checked_act), ("update", _checked_update)):
            method = cls.__dict__.get(attr)
            if method is not None and not getattr(method, "checked", False):
                setattr(cls, attr, wrap(method))

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        """Keep ``spec`` and the hyper-parameters ``params``, checked against :attr:`Params`
        (:meth:`agents.params.AgentParams.parse`: :class:`AgentError` naming the parameter, what
        it allows and the value) into :attr:`hparams`, defaults filled in."""
        self.spec = spec
        if self.Params is None:
            self._params = dict(params)
        else:
            self.hparams = self.Params.parse(self.name, params)
            self._params = self.hparams.as_dict()

    @property
    def params(self) -> dict[str, Any]:
        """Flat dict of the agent's name and hyper-parameters."""
        return {"agent": self.name, **self._params}

    @abstractmethod
    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        """Choose a slate for each of the B users in ``obs``."""

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:  # noqa: B027
        """Learn from one batch of feedback (default: a non-learning policy)."""

    # ------------------------------------------------------- probabilities of slates
    def slot_probabilities(self, obs: Observation, slates: np.ndarray) -> np.ndarray | None:
        """(B, k) float64 exact probability that the current policy puts ``slates[:, j]`` at
        slot j given the slots before it (their product is the slate's probability; 0 from a
        repeated candidate on), or None when the agent has no closed form (the default).

        ``slates`` are checked (:func:`check_slates`) by :meth:`slate_probabilities`; the
        agent's state is not changed.
        """
        return None

    def slate_probabilities(
        self,
        obs: Observation,
        slates: np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        samples: int = MONTE_CARLO_SAMPLES,
    ) -> np.ndarray:
        """(B,) float64 probability of the given slates (B, k) under the agent's current policy.

        Exact (the product of :meth:`slot_probabilities`) for the epsilon-greedy,
        softmax/Plackett-Luce, VW and SB3 policies, an indicator for deterministic ones;
        otherwise a Monte Carlo estimate from ``samples`` draws of :meth:`act` with ``rng``
        (default: a generator seeded 0) (:func:`monte_carlo_slate_probabilities`).

        Raises:
            AgentError: an observation of another world or slates that are not (B, k)
                candidate indices in [0, C).
        """
        check_observation(self.spec, obs)
        slates = check_slates(self.spec, obs, slates)
        exact = self.slot_probabilities(obs, slates)
        if exact is not None:
            return np.prod(exact, axis=1)
        rng = np.random.default_rng(0) if rng is None else rng
        return monte_carlo_slate_probabilities(self, obs, slates, rng, samples)

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
