"""Agents by name: ``make_agent("linucb", spec, alpha=1.0)``, or a user's own class by
its import path: ``make_agent("mypkg.policies:TopTopic", spec, boost=2.0)``.

Agent classes register themselves with :func:`register`; unknown names or keyword
arguments raise :class:`AgentError` listing what is allowed. Each agent's parameters, with
their defaults, ranges and meanings, are its ``Params`` class (:mod:`agents.params`):
:func:`params_class` reads it without importing a deferred agent's module.
"""

from __future__ import annotations

import importlib
import inspect
import re
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
    "custom_agent_class",
    "custom_agent_digest",
    "is_custom_name",
    "make_agent",
    "params_class",
    "register",
    "takes_any_keyword",
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
    """The class registered as ``name``, or a user's own class named ``"package.module:Class"``
    (imported and checked against the agent interface by :func:`custom_agent_class`)."""
    if is_custom_name(name):
        return custom_agent_class(name)
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
    if is_custom_name(name):
        return custom_agent_class(name).Params
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
    kinds = (inspect.Parameter.KEYWORD_ONLY,)
    if is_custom_name(name):  # a user's own class may also take its parameters positionally
        kinds += (inspect.Parameter.POSITIONAL_OR_KEYWORD,)
    return {p.name: p.default for p in sig.parameters.values() if p.name not in ("self", "spec") and p.kind in kinds}


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
    if unknown and not takes_any_keyword(name):
        raise AgentError(f"agent {name!r} got unknown argument(s) {unknown}; allowed: {sorted(allowed)}")
    return cls(spec, **params)


CUSTOM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
"""A user's own agent class: ``package.module:Class`` (importable from ``sys.path``)."""


def is_custom_name(name: str) -> bool:
    """Whether ``name`` names a user's own class (``"package.module:Class"``), not a registered agent."""
    return isinstance(name, str) and ":" in name


def custom_agent_class(name: str) -> type[Agent]:
    """Import ``"package.module:Class"`` and check it against the agent interface: a subclass
    of :class:`agents.base.Agent` (so ``act``/``update`` check their inputs), not abstract
    (``act`` implemented), whose ``__init__`` takes the world spec first. The class need
    not be registered; its ``name`` attribute is what result rows record (the class path
    when it sets none).

    Raises:
        AgentError: naming ``name`` and what is wrong (malformed, not importable, missing,
            not an Agent, abstract, or an ``__init__`` that takes no spec).
    """
    if not CUSTOM_NAME.match(name):
        raise AgentError(
            f"agent {name!r}: a class of your own is named 'package.module:Class' "
            "(dotted module path, a colon, the class name)"
        )
    module_name, class_name = name.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise AgentError(
            f"agent {name!r}: cannot import module {module_name!r} ({err}); it must be importable from sys.path"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise AgentError(f"agent {name!r}: module {module_name!r} has no attribute {class_name!r}")
    if not (inspect.isclass(cls) and issubclass(cls, Agent)):
        raise AgentError(
            f"agent {name!r}: must be a subclass of agents.base.Agent (implementing act(obs, rng) -> Decision "
            f"and optionally update(obs, decision, feedback)); found {cls!r}"
        )
    if inspect.isabstract(cls):
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        raise AgentError(f"agent {name!r}: {cls.__name__} does not implement the abstract method(s) {missing}")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        raise AgentError(f"agent {name!r}: {cls.__name__}.__init__ must take the WorldSpec as its first argument")
    if not cls.name:
        cls.name = name  # what result rows and saved files record
    return cls


def custom_agent_digest(name: str, params: dict[str, Any]) -> str | None:
    """For a class of one's own, SHA-256 of its module's source (and of the file a
    :class:`agents.saved.SavedAgent` reads), so a run does not resume across edits to code
    or files outside the project; None for a registered agent (the project's code version
    covers it)."""
    if not is_custom_name(name):
        return None
    import hashlib
    from pathlib import Path

    cls = custom_agent_class(name)
    digest = hashlib.sha256()
    try:
        digest.update(inspect.getsource(inspect.getmodule(cls)).encode())
    except (OSError, TypeError):  # no source available (a compiled or interactive module)
        digest.update(name.encode())
    path = params.get("path") if name == "agents.saved:SavedAgent" else None
    if isinstance(path, str) and Path(path).is_file():
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def takes_any_keyword(name: str) -> bool:
    """Whether ``name`` is a class of one's own without Params whose ``__init__`` takes
    ``**kwargs`` (it checks its own keyword arguments, so unknown ones are not refused here)."""
    if not is_custom_name(name):
        return False
    cls = custom_agent_class(name)
    return cls.Params is None and any(
        p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values()
    )


def _load_builtin() -> None:
    """Import the modules that register the built-in agents (not the deferred ones)."""
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
