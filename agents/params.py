"""Agent hyper-parameters as data: each agent declares its parameters once.

An agent's parameters are one frozen dataclass, a subclass of :class:`AgentParams` (usually nested
in the agent class as ``class Params``). Each field is made by one of the field helpers below
(:func:`number`, :func:`integer`, :func:`choice`, :func:`flag`, :func:`string`,
:func:`widths`), which put the field's :class:`Rule` (what it accepts) and a one-line meaning
in ``dataclasses.field(metadata=...)``::

    @dataclass(frozen=True)
    class Params(AgentParams):
        alpha: float = number(1.0, "width multiplier of the confidence bound (reward units)", ge=0.0)

:meth:`AgentParams.parse` is the one validator: it refuses unknown names and checks every given
value against its rule (type, range, finite, choices), raising :class:`agents.base.AgentError`
``"<agent>.<param> must be <allowed>; got <value>"`` (for example ``linucb.alpha must be a number
in [0.0, inf]; got -1``). The registry (:func:`agents.registry.agent_parameters`), ``bubblegym
list`` and the scenario checks read the parameters, their ranges and meanings from here.

This module imports only :mod:`agents.base`, so the parameter classes of agents whose own
module is slow to import (the deep-RL agents: :mod:`agents.sb3_params`) can be read alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import AgentError

NUMBER, INTEGER, CHOICE, FLAG, TEXT, WIDTHS = "number", "integer", "choice", "flag", "text", "widths"


@dataclass(frozen=True)
class Rule:
    """What one parameter accepts.

    Attributes:
        kind: ``"number"`` (a finite real, not a bool), ``"integer"`` (an int, not a bool),
            ``"choice"`` (one of ``choices``), ``"flag"`` (True or False), ``"text"`` (a
            string) or ``"widths"`` (a non-empty list or tuple of integers >= 1, kept as a tuple).
        meaning: one line: what the parameter does, with its unit.
        lo, hi: the range of a number or integer; ``lo_open`` / ``hi_open`` exclude the bound.
        choices: the allowed values of a choice.
        optional: None is allowed too.
        check: a further check of a text, ``check(value, where)``, raising ValueError with a
            message that starts with ``where`` (e.g. VW flags).
    """

    kind: str
    meaning: str
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[Any, ...] = ()
    optional: bool = False
    check: Callable[[Any, str], None] | None = None

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``"a number in [0.0, inf]"``."""
        if self.kind in (NUMBER, INTEGER):
            bound = float if self.kind == NUMBER else int
            lo = "-inf" if self.lo == -math.inf else repr(bound(self.lo))
            hi = "inf" if self.hi == math.inf else repr(bound(self.hi))
            what = "a number" if self.kind == NUMBER else "an integer"
            text = f"{what} in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        else:
            text = {
                CHOICE: f"one of {list(self.choices)}",
                FLAG: "True or False",
                TEXT: "a string",
                WIDTHS: "a non-empty list of layer widths, each an integer >= 1",
            }[self.kind]
        return f"{text} or None" if self.optional else text

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is allowed (before the further ``check`` of a text)."""
        if value is None:
            return self.optional
        if self.kind in (NUMBER, INTEGER):
            return self._in_range(value)
        if self.kind == CHOICE:
            return any(isinstance(value, type(c)) and value == c for c in self.choices)
        if self.kind == FLAG:
            return isinstance(value, bool | np.bool_)
        if self.kind == TEXT:
            return isinstance(value, str)
        return (
            isinstance(value, list | tuple)
            and len(value) > 0
            and all(isinstance(w, int | np.integer) and not isinstance(w, bool) and w >= 1 for w in value)
        )

    def _in_range(self, value: Any) -> bool:
        """A number (finite) or integer of the right kind inside [lo, hi] (open ends excluded)."""
        kinds = (int, np.integer) if self.kind == INTEGER else (int, float, np.integer, np.floating)
        if isinstance(value, bool | np.bool_) or not isinstance(value, kinds):
            return False
        if not isinstance(value, int | np.integer) and not math.isfinite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return bool(above and below)

    def validate(self, where: str, value: Any) -> Any:
        """``value`` as the agent keeps it (a list of widths becomes a tuple).

        Raises:
            AgentError: ``"<where> must be <allowed>; got <value>"``, or the further check's message.
        """
        if not self.accepts(value):
            raise AgentError(f"{where} must be {self.allowed()}; got {value!r}")
        if self.check is not None and value is not None:
            try:
                self.check(value, where)
            except ValueError as err:
                raise AgentError(str(err)) from None
        return tuple(value) if self.kind == WIDTHS and value is not None else value


def _field(default: Any, rule: Rule) -> Any:
    return dataclasses.field(default=default, metadata={"rule": rule})


def number(
    default: float | None,
    meaning: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    optional: bool = False,
) -> Any:
    """A finite real parameter, at least ``ge`` (or above ``gt``) and at most ``le`` (or below ``lt``)."""
    lo, lo_open = (-math.inf, False) if ge is None and gt is None else ((gt, True) if gt is not None else (ge, False))
    hi, hi_open = (math.inf, False) if le is None and lt is None else ((lt, True) if lt is not None else (le, False))
    return _field(default, Rule(NUMBER, meaning, lo, hi, lo_open, hi_open, optional=optional))


def integer(default: int | None, meaning: str, *, ge: int, le: float = math.inf, optional: bool = False) -> Any:
    """An integer parameter in [ge, le]."""
    return _field(default, Rule(INTEGER, meaning, ge, le, optional=optional))


def choice(default: Any, meaning: str, choices: tuple[Any, ...]) -> Any:
    """A parameter that takes one of ``choices``."""
    return _field(default, Rule(CHOICE, meaning, choices=tuple(choices)))


def flag(default: bool, meaning: str) -> Any:
    """A True / False parameter."""
    return _field(default, Rule(FLAG, meaning))


def string(default: str, meaning: str, *, check: Callable[[Any, str], None] | None = None) -> Any:
    """A string parameter, with an optional further ``check(value, where)`` raising ValueError."""
    return _field(default, Rule(TEXT, meaning, check=check))


def widths(default: tuple[int, ...], meaning: str) -> Any:
    """Layer widths of a network: a non-empty list or tuple of integers >= 1 (kept as a tuple)."""
    return _field(default, Rule(WIDTHS, meaning))


def rule_of(field: dataclasses.Field) -> Rule:
    """The :class:`Rule` of a parameter field."""
    return field.metadata["rule"]


@dataclass(frozen=True)
class AgentParams:
    """Base of every agent's parameters (no parameters of its own): a frozen dataclass whose
    fields are made by the helpers of this module."""

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        """The parameter fields by name, in declaration order."""
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{name: default}`` of every parameter."""
        return {name: f.default for name, f in cls.fields().items()}

    @classmethod
    def parse(cls, agent: str, values: Mapping[str, Any]) -> AgentParams:
        """The parameters of ``agent`` with ``values`` given (defaults for the others), each checked.

        Raises:
            AgentError: an unknown name (listing the allowed ones), or the first value its rule
                refuses (``"<agent>.<param> must be <allowed>; got <value>"``).
        """
        fields = cls.fields()
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise AgentError(f"agent {agent!r} got unknown argument(s) {unknown}; allowed: {sorted(fields)}")
        checked = {
            name: rule_of(field).validate(f"{agent}.{name}", values[name])
            for name, field in fields.items()
            if name in values
        }
        return cls(**checked)

    def as_dict(self) -> dict[str, Any]:
        """``{name: value}`` of every parameter (values as kept, not copied)."""
        return {name: getattr(self, name) for name in self.fields()}
