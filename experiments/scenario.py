"""Scenario files: YAML experiments validated into frozen dataclasses.

A scenario names a world (a preset plus nested overrides, see
:func:`simenv.config.with_overrides`), the agents to compare, the horizon (steps T,
concurrent users N, optional population), a training budget for agents that need one,
the seeds, the metrics window, the operating conditions of the learners (learning
cadence, feedback delay, train-then-freeze), optional guardrails (kept for vetting) and an
optional sweep: a grid over world or agent parameters.

Validation runs in two passes: the JSON Schema shipped with the package
(``experiments/scenario.schema.json``) checks the structure, then semantic checks check
preset names, world field ranges, agent names and parameters, and sweep targets. Every
error is a :class:`ScenarioError` naming the file, the key path, what is allowed and what
was found, e.g.::

    scenarios/x.yaml: horizon.steps: must be an integer >= 1; found 0

Example::

    name: demo
    world: {preset: filter_bubble, overrides: {dynamics: {drift: 0.01}}}
    agents:
      - {name: random}
      - {name: linucb, params: {alpha: 0.5}}
    horizon: {steps: 200, users: 256}
    seeds: 2
    sweep: {world.dynamics.amplification: [0.0, 0.1]}
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from simenv import PRESETS, ConfigError, WorldConfig, get_preset, with_overrides

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")
"""The JSON Schema of a scenario file (shipped as package data)."""

SCENARIO_DIRS = (Path.cwd() / "scenarios", Path(__file__).resolve().parent.parent / "scenarios")
"""Where shipped scenario files are looked up by name (``bubblegym run default``)."""

DEFAULT_WINDOW = 10
"""Steps per metrics window when the file gives none (capped at the horizon)."""

_CONDITION_FIELDS = ("cadence", "retrain_every", "feedback_delay", "freeze_after")


class ScenarioError(ValueError):
    """A scenario file is malformed: names the file, the key path, what is allowed, what was found."""

    def __init__(self, source: str, path: str, allowed: str, found: Any = None, *, detail: str | None = None) -> None:
        self.source, self.path, self.allowed, self.found = source, path or "<root>", allowed, found
        text = detail if detail is not None else f"must be {allowed}; found {found!r}"
        super().__init__(f"{source}: {self.path}: {text}")


class FrozenMap(Mapping):
    """An immutable, hashable, picklable mapping (nested dicts frozen, lists become tuples)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", {str(k): _freeze(v) for k, v in (data or {}).items()})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(json.dumps(thaw(self), sort_keys=True, default=str))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (thaw(self),))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FrozenMap(value)
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists from a frozen value (for YAML/JSON and keyword arguments)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class AgentEntry:
    """One agent of a scenario.

    Attributes:
        name: the registry name (``agents.make_agent``).
        label: a unique label within the scenario (default: the name).
        params: keyword arguments of the agent.
        training_steps: this agent's training budget (None: the scenario's).
    """

    name: str
    label: str
    params: FrozenMap = field(default_factory=FrozenMap)
    training_steps: int | None = None


@dataclass(frozen=True)
class Horizon:
    """Steps T per run, concurrent user sessions N, and the population of distinct users."""

    steps: int
    users: int
    population: int | None = None


@dataclass(frozen=True)
class Training:
    """Training budget for agents with ``train()``.

    Attributes:
        steps: user-steps of training (summed over sessions); 0 = no training.
        users: concurrent training sessions (None: the agent's own default).
    """

    steps: int = 0
    users: int | None = None


@dataclass(frozen=True)
class Conditions:
    """Operating conditions of learners during the evaluated run.

    Attributes:
        cadence: ``"online"`` (update after every step) or ``"batched"`` (collect feedback
            and retrain every ``retrain_every`` steps).
        retrain_every: steps between retrains when batched.
        feedback_delay: steps before a step's feedback reaches the learner (0 = at once).
        freeze_after: learn during the first ``freeze_after`` steps, then serve frozen
            (None = never freeze; 0 = never learn).
    """

    cadence: str = "online"
    retrain_every: int = 1
    feedback_delay: int = 0
    freeze_after: int | None = None


@dataclass(frozen=True)
class Guardrail:
    """``metric op threshold`` must hold (for every agent, or only ``agent``)."""

    metric: str
    op: str
    threshold: float
    agent: str | None = None


@dataclass(frozen=True)
class SweepAxis:
    """One grid axis: a parameter path and the values it takes.

    ``path`` is ``world.<section>.<field>``, ``world.<field>``, ``conditions.<field>``
    (these shared axes apply to every agent) or ``agents.<label>.<param>`` (one agent).
    """

    path: str
    values: tuple

    @property
    def is_world(self) -> bool:
        return self.path.startswith("world.")

    @property
    def is_condition(self) -> bool:
        return self.path.startswith("conditions.")

    @property
    def is_shared(self) -> bool:
        """A world or operating-condition axis (every agent runs at each of its values)."""
        return self.is_world or self.is_condition

    @property
    def agent_label(self) -> str | None:
        return None if self.is_shared else self.path.split(".")[1]

    @property
    def key(self) -> str:
        """The key inside a grid point: the world field path without ``world.``, the whole
        ``conditions.<field>`` path, or the agent parameter name."""
        if self.is_world:
            return self.path.split(".", 1)[1]
        return self.path if self.is_condition else self.path.split(".", 2)[2]


@dataclass(frozen=True)
class Scenario:
    """A validated experiment (see the module docstring for the file format).

    Attributes:
        name, description: identification.
        preset, overrides: the world before sweeps.
        agents: the agents, labels unique.
        horizon, training, seeds, window, conditions, guardrails, sweep: as in the file.
        source: the file it was read from (or ``"<dict>"``).
    """

    name: str
    agents: tuple[AgentEntry, ...]
    horizon: Horizon
    description: str = ""
    preset: str = "default"
    overrides: FrozenMap = field(default_factory=FrozenMap)
    training: Training = field(default_factory=Training)
    seeds: tuple[int, ...] = (0,)
    window: int = 10
    conditions: Conditions = field(default_factory=Conditions)
    guardrails: tuple[Guardrail, ...] = ()
    sweep: tuple[SweepAxis, ...] = ()
    source: str = "<dict>"

    # ----------------------------------------------------------------- world and grid
    def base_overrides(self) -> dict[str, Any]:
        """The file's overrides plus the horizon's population, as a plain nested dict."""
        over = thaw(self.overrides)
        if self.horizon.population is not None:
            over.setdefault("users", {})["population_size"] = self.horizon.population
        return over

    def world_config(self, point: Mapping[str, Any] | None = None) -> WorldConfig:
        """The world at a grid point (``{"dynamics.amplification": 0.1, ...}``; condition keys ignored)."""
        config = with_overrides(get_preset(self.preset), self.base_overrides())
        world = {k: v for k, v in (point or {}).items() if not k.startswith("conditions.")}
        return with_overrides(config, _nest(world))

    def conditions_at(self, point: Mapping[str, Any] | None = None) -> Conditions:
        """The operating conditions at a grid point (``{"conditions.freeze_after": 50}``)."""
        changes = {k.split(".", 1)[1]: v for k, v in (point or {}).items() if k.startswith("conditions.")}
        return dataclasses.replace(self.conditions, **changes) if changes else self.conditions

    @property
    def world_axes(self) -> tuple[SweepAxis, ...]:
        """The shared axes (world and operating conditions) that span the world grid points."""
        return tuple(axis for axis in self.sweep if axis.is_shared)

    def agent_axes(self, label: str) -> tuple[SweepAxis, ...]:
        """The sweep axes that target the agent labelled ``label``."""
        return tuple(axis for axis in self.sweep if axis.agent_label == label)

    def world_points(self) -> list[dict[str, Any]]:
        """Every world grid point: ``{world key: value}`` (one empty dict without world axes)."""
        return _product(self.world_axes)

    def agent_variants(self, label: str) -> list[dict[str, Any]]:
        """Every parameter variant of one agent: ``{param: value}`` (one empty dict if not swept)."""
        return _product(self.agent_axes(label))

    def agent(self, label: str) -> AgentEntry:
        """The entry labelled ``label``."""
        for entry in self.agents:
            if entry.label == label:
                return entry
        raise KeyError(f"no agent labelled {label!r}; labels: {[a.label for a in self.agents]}")

    def training_steps(self, entry: AgentEntry) -> int:
        """The training budget of ``entry`` (its own, else the scenario's)."""
        return self.training.steps if entry.training_steps is None else entry.training_steps

    # ----------------------------------------------------------------- (de)serialisation
    def with_seeds(self, seeds: int | Sequence[int]) -> Scenario:
        """A copy with seeds ``0..n-1`` (an int) or the given list."""
        values = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
        if not values or min(values) < 0 or len(set(values)) != len(values):
            raise ScenarioError(self.source, "seeds", "a count >= 1 or distinct non-negative integers", seeds)
        return _replace(self, seeds=values)

    def to_dict(self) -> dict[str, Any]:
        """The scenario as a plain dict in file format (all defaults filled in)."""
        return {
            "name": self.name,
            "description": self.description,
            "world": {"preset": self.preset, "overrides": thaw(self.overrides)},
            "agents": [
                {
                    "name": a.name,
                    "label": a.label,
                    "params": thaw(a.params),
                    **({"training_steps": a.training_steps} if a.training_steps is not None else {}),
                }
                for a in self.agents
            ],
            "horizon": {
                "steps": self.horizon.steps,
                "users": self.horizon.users,
                **({"population": self.horizon.population} if self.horizon.population is not None else {}),
            },
            "training": {
                "steps": self.training.steps,
                **({"users": self.training.users} if self.training.users is not None else {}),
            },
            "seeds": list(self.seeds),
            "metrics": {"window": self.window},
            "conditions": {
                "cadence": self.conditions.cadence,
                "retrain_every": self.conditions.retrain_every,
                "feedback_delay": self.conditions.feedback_delay,
                "freeze_after": self.conditions.freeze_after,
            },
            "guardrails": [
                {"metric": g.metric, "op": g.op, "threshold": g.threshold, **({"agent": g.agent} if g.agent else {})}
                for g in self.guardrails
            ],
            "sweep": {axis.path: thaw(axis.values) for axis in self.sweep},
        }

    def fingerprint(self) -> str:
        """sha256 of everything that determines a run's numbers except the seed list.

        Two runs with one fingerprint may share a results directory (resume, more seeds).
        """
        body = self.to_dict()
        for key in ("seeds", "description", "guardrails"):
            body.pop(key)
        text = json.dumps(body, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def _replace(scenario: Scenario, **changes: Any) -> Scenario:
    return dataclasses.replace(scenario, **changes)


def _product(axes: Sequence[SweepAxis]) -> list[dict[str, Any]]:
    keys = [axis.key for axis in axes]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(axis.values for axis in axes))]


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"dynamics.drift": 0.1, "slate_size": 3}`` -> ``{"dynamics": {"drift": 0.1}, "slate_size": 3}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = thaw(value)
    return out


# --------------------------------------------------------------------------- loading


@cache
def schema() -> dict[str, Any]:
    """The scenario JSON Schema (a dict)."""
    return json.loads(SCHEMA_PATH.read_text())


def find_scenario(name_or_path: str | Path) -> Path:
    """A scenario file path: the path itself if it exists, else a shipped scenario by name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    for folder in SCENARIO_DIRS:
        candidate = folder / f"{path.stem}.yaml"
        if path.suffix in ("", ".yaml") and candidate.exists():
            return candidate
    raise ScenarioError(
        str(name_or_path), "", f"an existing YAML file or a shipped scenario name {shipped_scenarios()}", str(path)
    )


def shipped_scenarios() -> list[str]:
    """Names of the scenario files in the first ``scenarios/`` folder found."""
    for folder in SCENARIO_DIRS:
        if folder.is_dir():
            return sorted(p.stem for p in folder.glob("*.yaml"))
    return []


def load_scenario(path: str | Path, *, check_agents: bool = True) -> Scenario:
    """Read and validate a scenario file.

    Args:
        path: a YAML file (or the name of a shipped scenario).
        check_agents: also check agent names and parameters against the agent registry.

    Raises:
        ScenarioError: naming the file, the key path, what is allowed and what was found.
    """
    file = find_scenario(path)
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise ScenarioError(str(file), "", "valid YAML", detail=f"not valid YAML: {err}") from None
    return parse_scenario(data, source=str(file), check_agents=check_agents)


def parse_scenario(data: Any, *, source: str = "<dict>", check_agents: bool = True) -> Scenario:
    """Validate a scenario given as a plain dict (what the YAML file holds)."""
    _check_schema(data, source)
    data = _integers(data)
    world = data.get("world", {})
    preset = world.get("preset", "default")
    if preset not in PRESETS:
        raise ScenarioError(source, "world.preset", f"one of {sorted(PRESETS)}", preset)
    horizon = Horizon(**data["horizon"])
    if horizon.population is not None and horizon.population < horizon.users:
        raise ScenarioError(
            source, "horizon.population", f"an integer >= horizon.users ({horizon.users})", horizon.population
        )
    seeds_raw = data.get("seeds", 1)
    seeds = tuple(range(seeds_raw)) if isinstance(seeds_raw, int) else tuple(seeds_raw)
    scenario = Scenario(
        name=data["name"],
        description=data.get("description", ""),
        preset=preset,
        overrides=FrozenMap(world.get("overrides") or {}),
        agents=_parse_agents(data["agents"], source),
        horizon=horizon,
        training=Training(**data.get("training", {})),
        seeds=seeds,
        window=data.get("metrics", {}).get("window", min(DEFAULT_WINDOW, horizon.steps)),
        conditions=Conditions(**data.get("conditions", {})),
        guardrails=tuple(Guardrail(**g) for g in data.get("guardrails", [])),
        sweep=tuple(SweepAxis(path, _freeze(values)) for path, values in (data.get("sweep") or {}).items()),
        source=source,
    )
    _check_world(scenario)
    _check_numbers(scenario)
    _check_sweep(scenario)
    _check_guardrails(scenario)
    if check_agents:
        check_agent_names(scenario)
    return scenario


def _integers(data: dict[str, Any]) -> dict[str, Any]:
    """Whole floats (``200.0``, which JSON Schema accepts as integers) to ints in the
    integer-valued sections."""

    def as_int(value: Any) -> Any:
        return int(value) if isinstance(value, float) and value.is_integer() else value

    out = dict(data)
    for section in ("horizon", "training", "metrics", "conditions"):
        if section in out:
            out[section] = {k: as_int(v) for k, v in out[section].items()}
    if isinstance(out.get("seeds"), list):
        out["seeds"] = [as_int(v) for v in out["seeds"]]
    elif "seeds" in out:
        out["seeds"] = as_int(out["seeds"])
    out["agents"] = [
        {**a, "training_steps": as_int(a["training_steps"])} if "training_steps" in a else a for a in out["agents"]
    ]
    return out


def _parse_agents(items: list[dict[str, Any]], source: str) -> tuple[AgentEntry, ...]:
    entries: list[AgentEntry] = []
    for i, item in enumerate(items):
        label = item.get("label", item["name"])
        if "label" not in item and not _label_ok(label):
            raise ScenarioError(
                source, f"agents[{i}].label", "a label matching ^[A-Za-z0-9_-]+$ (the name is not)", label
            )
        if label in {e.label for e in entries}:
            raise ScenarioError(
                source, f"agents[{i}].label", "a label not used by an earlier agent (add label: ...)", label
            )
        entries.append(AgentEntry(item["name"], label, FrozenMap(item.get("params") or {}), item.get("training_steps")))
    return tuple(entries)


def _label_ok(label: str) -> bool:
    return bool(label) and all(ch.isalnum() or ch in "_-" for ch in label)


def _check_world(scenario: Scenario) -> None:
    try:
        scenario.world_config()
    except ConfigError as err:
        raise ScenarioError(
            scenario.source, "world.overrides", "fields and values the world accepts", detail=str(err)
        ) from None


def _check_numbers(scenario: Scenario) -> None:
    steps = scenario.horizon.steps
    if scenario.window > steps:
        raise ScenarioError(
            scenario.source, "metrics.window", f"an integer in [1, horizon.steps = {steps}]", scenario.window
        )
    _check_conditions(scenario.source, "conditions", scenario.conditions, steps)


def _check_conditions(source: str, where: str, conditions: Conditions, steps: int) -> None:
    freeze = conditions.freeze_after
    if freeze is not None and (isinstance(freeze, bool) or not isinstance(freeze, int) or not 0 <= freeze <= steps):
        path = where if where.endswith("freeze_after") else f"{where}.freeze_after"
        raise ScenarioError(source, path, f"null or an integer in [0, horizon.steps = {steps}]", freeze)
    if conditions.cadence not in ("online", "batched"):
        raise ScenarioError(source, where, "one of ['online', 'batched']", conditions.cadence)
    for name in ("retrain_every", "feedback_delay"):
        value = getattr(conditions, name)
        low = 1 if name == "retrain_every" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ScenarioError(
                source, where if where.endswith(name) else f"{where}.{name}", f"an integer >= {low}", value
            )
    if conditions.cadence == "online" and conditions.retrain_every != 1:
        raise ScenarioError(
            source,
            where if where.endswith("retrain_every") else f"{where}.retrain_every",
            "1 when cadence is online (set cadence: batched to retrain every n steps)",
            conditions.retrain_every,
        )


def _check_sweep(scenario: Scenario) -> None:
    labels = [a.label for a in scenario.agents]
    for axis in scenario.sweep:
        where = f"sweep.{axis.path}"
        if axis.is_condition:
            field_name = axis.path.split(".", 1)[1]
            if field_name not in _CONDITION_FIELDS:
                raise ScenarioError(
                    scenario.source, where, f"a path conditions.<field> with a field in {_CONDITION_FIELDS}", axis.path
                )
            for value in axis.values:
                conditions = dataclasses.replace(scenario.conditions, **{field_name: value})
                _check_conditions(scenario.source, where, conditions, scenario.horizon.steps)
        elif axis.is_world:
            for value in axis.values:
                try:
                    scenario.world_config({axis.key: value})
                except ConfigError as err:
                    raise ScenarioError(scenario.source, where, "values the world accepts", detail=str(err)) from None
        elif axis.agent_label not in labels:
            raise ScenarioError(
                scenario.source, where, f"a path agents.<label>.<param> with a label in {labels}", axis.path
            )
        elif axis.key in scenario.agent(axis.agent_label).params:
            raise ScenarioError(scenario.source, where, "a parameter not also fixed in the agent's params", axis.key)


def _check_guardrails(scenario: Scenario) -> None:
    from experiments.metrics import FINAL_STATE_METRICS, METRICS

    labels = [a.label for a in scenario.agents]
    known = [*METRICS, *(f"{name}_final" for name in FINAL_STATE_METRICS)]
    for i, guard in enumerate(scenario.guardrails):
        if guard.metric not in known:
            raise ScenarioError(scenario.source, f"guardrails[{i}].metric", f"a metric name {known}", guard.metric)
        if guard.agent is not None and guard.agent not in labels:
            raise ScenarioError(scenario.source, f"guardrails[{i}].agent", f"one of {labels}", guard.agent)


def check_agent_names(scenario: Scenario) -> None:
    """Check every agent name and parameter (fixed or swept) against the agent registry."""
    from agents.registry import AgentError, agent_names, agent_parameters

    names = agent_names()
    for i, entry in enumerate(scenario.agents):
        if entry.name not in names:
            raise ScenarioError(scenario.source, f"agents[{i}].name", f"a registered agent {names}", entry.name)
        try:
            allowed = agent_parameters(entry.name)
        except AgentError as err:  # pragma: no cover - registry race
            raise ScenarioError(scenario.source, f"agents[{i}].name", "a registered agent", detail=str(err)) from None
        for key in entry.params:
            if key not in allowed:
                raise ScenarioError(
                    scenario.source,
                    f"agents[{i}].params.{key}",
                    f"a parameter of {entry.name!r}: {sorted(allowed)}",
                    key,
                )
        for axis in scenario.agent_axes(entry.label):
            if axis.key not in allowed:
                raise ScenarioError(
                    scenario.source, f"sweep.{axis.path}", f"a parameter of {entry.name!r}: {sorted(allowed)}", axis.key
                )


# --------------------------------------------------------------------------- schema errors


def _check_schema(data: Any, source: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise _schema_error(errors[0], source)


def _format_path(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_error(error: Any, source: str) -> ScenarioError:
    """Turn a jsonschema error into a ScenarioError with path, allowed and found."""
    path = list(error.absolute_path)
    kind, spec, found = error.validator, error.schema, error.instance
    if kind == "additionalProperties" and isinstance(found, dict):
        allowed = sorted(spec.get("properties", {}))
        unknown = sorted(set(found) - set(allowed))
        return ScenarioError(
            source,
            _format_path([*path, unknown[0]]),
            f"one of the keys {allowed}",
            detail=(f"unknown key {unknown[0]!r}; allowed keys: {allowed}"),
        )
    if kind == "required":
        missing = next(key for key in error.validator_value if key not in found)
        return ScenarioError(
            source, _format_path([*path, missing]), "present", detail=f"required key {missing!r} is missing"
        )
    if kind == "propertyNames" or "propertyNames" in error.schema_path:
        return ScenarioError(
            source,
            _format_path(path),
            "keys world.<section>.<field>, world.<field>, conditions.<field> or agents.<label>.<param>",
            error.instance,
        )
    if kind == "type":
        return ScenarioError(source, _format_path(path), _type_text(error.validator_value), found)
    allowed = {
        "enum": lambda v: f"one of {v}",
        "const": lambda v: f"{v!r}",
        "minimum": lambda v: f"{_type_text(spec.get('type', 'number'))} >= {v}",
        "maximum": lambda v: f"{_type_text(spec.get('type', 'number'))} <= {v}",
        "pattern": lambda v: f"a string matching {v}",
        "minItems": lambda v: f"a list of at least {v} item(s)",
        "uniqueItems": lambda v: "a list without repeated items",
        "oneOf": lambda v: spec.get("description", "one of the allowed forms"),
    }
    text = allowed[kind](error.validator_value) if kind in allowed else error.message
    return ScenarioError(source, _format_path(path), text, found)


def _type_text(kind: Any) -> str:
    names = {
        "integer": "an integer",
        "number": "a number",
        "string": "a string",
        "object": "a mapping",
        "array": "a list",
        "boolean": "true or false",
        "null": "null",
    }
    if isinstance(kind, list):
        return " or ".join(names.get(k, k) for k in kind)
    return names.get(kind, str(kind))
