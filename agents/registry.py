"""Agents by name: ``make_agent("linucb", spec, alpha=1.0)``.

Agent classes register themselves with :func:`register`; unknown names or keyword
arguments raise :class:`AgentError` listing what is allowed. Each agent's parameters, with
their defaults, ranges and meanings, are its ``Params`` class (:mod:`agents.params`):
:func:`params_class` reads it without importing a deferred agent's module.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from agents.base import Agent, AgentError
from agents.params import AgentParams
from simenv import WorldSpec

__all__ = [
    "AgentError",
    "agent_class",
    "agent_names",
    "agent_parameters",
    "check_parameter",
    "make_agent",
    "params_class",
    "register",
]


_REGISTRY: dict[str, type[Agent]] = {}


def register(cls: type[Agent]) -> type[Agent]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise AgentError(f"{cls.__name__} has no registry name")
    _REGISTRY[cls.name] = cls
    return cls


_BUILTIN_MODULES = ("agents.baselines", "agents.bandits", "agents.vw", "agents.recsys", "agents.slateq")
"""Modules whose agents register on first use of the registry (light imports)."""

_DEFERRED: dict[str, str] = {
    "ppo": "agents.deep_rl",
    "a2c": "agents.deep_rl",
    "dqn": "agents.deep_rl",
    "reinforce": "agents.reinforce",
    "slateq_neural": "agents.slateq_neural",
}
"""Agents whose module is imported only when one of them is asked for (torch and
stable-baselines3 take seconds to import, which every worker process would pay)."""

_DEFERRED_PARAMS = "agents.sb3_params"
"""A light module whose ``PARAMS`` maps each deferred agent's name to its Params class."""

_DEFERRED_PARAMS_OF: dict[str, str] = {"reinforce": "agents.torch_params", "slateq_neural": "agents.torch_params"}
"""Deferred agents whose Params are in another light module than :data:`_DEFERRED_PARAMS`."""


def agent_names() -> list[str]:
    """All registered agent names, sorted (without importing the deferred modules)."""
    _load_builtin()
    return sorted(set(_REGISTRY) | set(_DEFERRED))


def agent_class(name: str) -> type[Agent]:
    """The class registered as ``name``."""
    _load_builtin()
    if name not in _REGISTRY and name in _DEFERRED:
        importlib.import_module(_DEFERRED[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AgentError(f"unknown agent {name!r}; allowed: {agent_names()}") from None


def params_class(name: str) -> type[AgentParams] | None:
    """The Params class of agent ``name`` (read without importing a deferred agent's module),
    or None for an agent that takes its parameters as keyword arguments of ``__init__``."""
    _load_builtin()
    if name not in _REGISTRY and name in _DEFERRED:
        return importlib.import_module(_DEFERRED_PARAMS_OF.get(name, _DEFERRED_PARAMS)).PARAMS[name]
    return agent_class(name).Params


def agent_parameters(name: str) -> dict[str, Any]:
    """Keyword arguments ``name`` accepts, with their defaults."""
    params = params_class(name)
    if params is not None:
        return params.defaults()
    sig = inspect.signature(agent_class(name).__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name not in ("self", "spec") and p.kind is p.KEYWORD_ONLY
    }


def check_parameter(name: str, key: str, value: Any) -> None:
    """Check one parameter value of agent ``name`` against its declared rule, without building
    the agent (nothing is checked for an agent without Params: building it checks).

    Raises:
        AgentError: an unknown parameter, or ``"<name>.<key> must be <allowed>; got <value>"``.
    """
    params = params_class(name)
    if params is not None:
        params.parse(name, {key: value})


def make_agent(name: str, spec: WorldSpec, **params: Any) -> Agent:
    """Build the agent registered as ``name`` for a world of shape ``spec``."""
    cls = agent_class(name)
    allowed = agent_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise AgentError(f"agent {name!r} got unknown argument(s) {unknown}; allowed: {sorted(allowed)}")
    return cls(spec, **params)


def _load_builtin() -> None:
    """Import the modules that register the built-in agents (not the deferred ones)."""
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
