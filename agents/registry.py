"""Agents by name: ``make_agent("linucb", spec, alpha=1.0)``.

Agent classes register themselves with :func:`register`; unknown names or keyword
arguments raise :class:`AgentError` listing what is allowed.
"""

from __future__ import annotations

import inspect
from typing import Any

from agents.base import Agent
from simenv import WorldSpec


class AgentError(ValueError):
    """An unknown agent name or hyper-parameter."""


_REGISTRY: dict[str, type[Agent]] = {}


def register(cls: type[Agent]) -> type[Agent]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise AgentError(f"{cls.__name__} has no registry name")
    _REGISTRY[cls.name] = cls
    return cls


def agent_names() -> list[str]:
    """All registered agent names, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def agent_class(name: str) -> type[Agent]:
    """The class registered as ``name``."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AgentError(f"unknown agent {name!r}; allowed: {sorted(_REGISTRY)}") from None


def agent_parameters(name: str) -> dict[str, Any]:
    """Keyword arguments ``name`` accepts, with their defaults."""
    sig = inspect.signature(agent_class(name).__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name not in ("self", "spec") and p.kind is p.KEYWORD_ONLY
    }


def make_agent(name: str, spec: WorldSpec, **params: Any) -> Agent:
    """Build the agent registered as ``name`` for a world of shape ``spec``."""
    cls = agent_class(name)
    allowed = agent_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise AgentError(f"agent {name!r} got unknown argument(s) {unknown}; allowed: {sorted(allowed)}")
    return cls(spec, **params)


def _load_builtin() -> None:
    """Import the modules that register the built-in agents."""
    import agents.baselines  # noqa: F401

    for optional in ("agents.bandits", "agents.vw", "agents.deep_rl", "agents.recsys", "agents.slateq"):
        try:
            __import__(optional)
        except ModuleNotFoundError as err:
            if err.name != optional:
                raise
