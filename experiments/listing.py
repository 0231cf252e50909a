"""The text of ``bubblegym list``: world presets, agents (with their key parameters) and scenarios.

Everything is read from data the project already declares: the presets from
:data:`simenv.config.PRESETS`, each agent's parameters with their defaults, ranges and meanings
from its frozen ``Params`` dataclass (:mod:`agents.params`, read through
:func:`agents.registry.params_class`, which does not import torch or stable-baselines3), and
each scenario's description from its file. Long lines are wrapped, never cut.

It imports neither pandas (the runner, the metrics), jsonschema (its optional format checkers
take seconds), torch nor stable-baselines3: ``bubblegym list`` costs about the import of
``simenv`` and the agent modules.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Iterable
from typing import Any

WIDTH = 100
"""Characters per printed line (descriptions are wrapped to it, never cut)."""

MAX_KEY_PARAMETERS = 4
"""Parameters shown per agent in the overview (``bubblegym list agents NAME`` shows all)."""

EXPLORATION_PARAMETERS = (
    "exploration",
    "epsilon",
    "alpha",
    "v",
    "softmax_lambda",
    "gamma_scale",
    "exploration_final_eps",
    "ent_coef",
)
"""Parameters that set how much an agent explores: listed first among its key parameters."""

HIDDEN_IN_OVERVIEW = ("seed", "extra_args", "hold_examples", "propensity_draws", "propensity_group")
"""Parameters left out of the overview (plumbing, not the agent's behaviour)."""


def plain(text: str) -> str:
    """Docstring text without reStructuredText markup: ``:class:`X``` -> X, ````x```` -> x."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def summary_of(doc: str | None) -> str:
    """The first paragraph of a docstring on one line, markup removed ("" for none)."""
    first = (doc or "").strip().split("\n\n")[0]
    return plain(" ".join(line.strip() for line in first.splitlines()))


def wrap(text: str, indent: int, width: int = WIDTH) -> list[str]:
    """``text`` wrapped to ``width`` with every line indented by ``indent`` spaces (a word
    longer than a line, such as a file path, is kept whole)."""
    pad = " " * indent
    lines = textwrap.wrap(
        text, width, initial_indent=pad, subsequent_indent=pad, break_long_words=False, break_on_hyphens=False
    )
    return lines or [pad]


def agent_summary(name: str) -> str:
    """One-paragraph description of agent ``name`` (the deferred deep-RL agents' from their Params)."""
    from agents.registry import _DEFERRED, agent_class, params_class

    if name in _DEFERRED:
        return summary_of(params_class(name).__doc__)
    return summary_of(agent_class(name).__doc__)


def _fixed_exploration(name: str) -> str | None:
    """The VW exploration algorithm an agent fixes (``vw_epsilon`` -> ``"epsilon"``), if any."""
    from agents.registry import _DEFERRED, agent_class

    if name in _DEFERRED:
        return None
    return getattr(agent_class(name), "fixed_exploration", None)


def key_parameters(name: str) -> dict[str, Any]:
    """``{parameter: default}`` of the few parameters that characterise agent ``name``.

    Exploration parameters (:data:`EXPLORATION_PARAMETERS`) come first, then the others in
    declaration order, at most :data:`MAX_KEY_PARAMETERS`; plumbing
    (:data:`HIDDEN_IN_OVERVIEW`) and the settings of VW exploration algorithms other than the
    agent's own (a meaning that starts ``"<algorithm>:"``) are left out.
    """
    from agents.params import rule_of
    from agents.registry import agent_parameters, params_class

    params = params_class(name)
    if params is None:
        return dict(list(agent_parameters(name).items())[:MAX_KEY_PARAMETERS])
    fields = params.fields()
    own = _fixed_exploration(name) or fields.get("exploration", dataclasses.field()).default
    algorithms = _vw_algorithms()

    def relevant(key: str) -> bool:
        head = rule_of(fields[key]).meaning.split(":")[0]
        other_algorithm = head in algorithms or any(part.strip() in algorithms for part in head.split(","))
        return key not in HIDDEN_IN_OVERVIEW and (not other_algorithm or own in head.replace(",", " ").split())

    names = [key for key in fields if relevant(key)]
    ordered = [k for k in names if k in EXPLORATION_PARAMETERS] + [k for k in names if k not in EXPLORATION_PARAMETERS]
    return {key: fields[key].default for key in ordered[:MAX_KEY_PARAMETERS]}


def _vw_algorithms() -> tuple[str, ...]:
    """VW's exploration algorithm names (whose settings are prefixed ``"<name>:"``)."""
    from agents.vw_options import EXPLORATIONS

    return tuple(EXPLORATIONS)


def agents_overview(names: Iterable[str]) -> list[str]:
    """Lines of ``bubblegym list agents``: per agent its name, description and key parameters."""
    lines = ["Agents (key parameters = defaults; `bubblegym list agents NAME` shows all with ranges):"]
    for name in names:
        lines.append(f"  {name}")
        lines += wrap(agent_summary(name), 6)
        keys = key_parameters(name)
        lines += wrap("key: " + (", ".join(f"{k}={v!r}" for k, v in keys.items()) or "no parameters"), 6)
    return lines


def agent_detail(name: str) -> list[str]:
    """Lines of ``bubblegym list agents NAME``: every parameter of agent ``name`` with its
    default, allowed values and meaning (from its Params metadata).

    Raises:
        AgentError: an unknown agent name (listing the known ones).
    """
    from agents.params import rule_of
    from agents.registry import agent_names, agent_parameters, params_class

    if name not in agent_names():
        from agents.registry import AgentError

        raise AgentError(f"unknown agent {name!r}; allowed: {agent_names()}")
    lines = [f"{name}: {agent_summary(name)}"]
    lines = wrap(lines[0], 0)
    params = params_class(name)
    fixed = _fixed_exploration(name)
    if fixed is not None:
        lines += wrap(f"(exploration is fixed to {fixed!r}; the other algorithms' settings do not apply)", 0)
    if params is None:
        rows = [(key, value, "(range not declared)", "") for key, value in agent_parameters(name).items()]
    else:
        rows = [
            (key, field.default, rule_of(field).allowed(), rule_of(field).meaning)
            for key, field in params.fields().items()
        ]
    if not rows:
        return [*lines, "  no parameters"]
    lines.append("")
    lines.append("  parameter = default")
    lines.append("      meaning; allowed values")
    for key, default, allowed, meaning in rows:
        lines.append(f"  {key} = {default!r}")
        lines += wrap(f"{meaning}; {allowed}" if meaning else allowed, 6)
    return lines


def presets_lines() -> list[str]:
    """Lines of ``bubblegym list presets``: each preset's differences from the default world."""
    from simenv.config import PRESETS, WorldConfig

    default = flatten(WorldConfig().to_dict())
    lines = ["World presets (differences from the default world; docs/model.md#presets):"]
    for name, config in PRESETS.items():
        changes = {k: v for k, v in flatten(config.to_dict()).items() if default.get(k) != v}
        text = ", ".join(f"{k}={v}" for k, v in changes.items()) or "-"
        lines.append(f"  {name}")
        lines += wrap(text, 6)
    return lines


def scenarios_lines() -> list[str]:
    """Lines of ``bubblegym list scenarios``: each shipped scenario and its whole description.

    Each file is read (:func:`experiments.scenario.read_yaml`), not fully validated: the schema
    check imports ``jsonschema``, whose optional format checkers take seconds to import
    (``bubblegym run`` validates). A file that cannot be read is listed as INVALID with the
    error, which names the file and line.
    """
    from experiments.scenario import SCENARIO_DIRS, ScenarioError, find_scenario, read_yaml, shipped_scenarios

    folder = next((f for f in SCENARIO_DIRS if f.is_dir()), None)
    lines = [f"Scenarios ({folder}; `bubblegym run NAME`):"]
    for name in shipped_scenarios():
        try:
            data = read_yaml(find_scenario(name))
            text = data.get("description", "") if isinstance(data, dict) else ""
            description = " ".join(str(text).split()) or "(no description)"
        except ScenarioError as err:
            description = f"INVALID: {err}"
        lines.append(f"  {name}")
        lines += wrap(description, 6)
    return lines


def flatten(data: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
