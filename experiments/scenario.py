"""Scenario files: YAML experiments validated into frozen dataclasses.

A scenario names a world (a preset plus nested overrides, see
:func:`simenv.config.with_overrides`), the agents to compare, the horizon (steps T,
concurrent users N, optional population), a training budget for agents that need one,
the seeds, the metrics window, the operating conditions of the learners (learning
cadence, feedback delay, train-then-freeze), optional guardrails (kept for vetting), an
optional sweep: a grid over world or agent parameters, and optional logging
(``logging: {decisions: true}`` writes each task's decision log, see ``docs/logs.md``).

Loading checks everything a run would meet, before any task or run directory exists:

1. the file (:func:`read_yaml`): at most 1 MiB of UTF-8, valid YAML, no duplicate or
   non-string keys, aliases that expand to at most :data:`MAX_YAML_NODES` nodes;
2. the structure, against the JSON Schema shipped with the package
   (``experiments/scenario.schema.json``): keys, types, bounds, safe names and labels;
3. the meaning: preset names, world field ranges at every world grid point, the
   population against the sessions, conditions, sweep targets, guardrails, the task
   count and the estimated memory against the memory available (:func:`check_resources`);
4. the agents: names and parameters against the registry, then every agent variant
   built on every world shape of the grid (:func:`check_agents_build`).

Every error is a :class:`ScenarioError` naming the file, the key path, what is allowed
and what was found, e.g.::

    scenarios/x.yaml: horizon.steps: must be an integer >= 1; found 0
    scenarios/x.yaml: agents[1].params.alpha: linucb.alpha must be a number in [0.0, inf]; got -1

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
import math
import os
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

MAX_FILE_BYTES = 1 << 20
"""Largest scenario file read (bytes); scenario files are a few hundred bytes."""

MAX_YAML_NODES = 10_000
"""Most YAML nodes a file may hold once aliases are expanded (the shipped files hold < 200)."""

MAX_YAML_DEPTH = 32
"""Deepest nesting of YAML collections (the shipped files nest 5 deep)."""

MAX_NAME_CHARS = 64
"""Longest scenario name or agent label (they become folder and file names)."""

MAX_SEEDS = 10_000
"""Most seeds one scenario runs (a count, or the length of the list)."""

MAX_SEED = 2**63 - 1
"""Largest seed: seeds are stored in int64 columns."""

MAX_TASKS = 100_000
"""Most tasks (world points x agent variants x seeds) one run may have."""

TRAJECTORY_PEAK_FACTOR = 3
"""Peak memory of a task over its stacked trajectory: while ``rollout`` stacks, the per-step
arrays and the stacked copy coexist, then the metrics add temporaries (measured 2.1-2.3x
on the default world at 256 x 200 and 1024 x 400 user-steps; 3 leaves a margin)."""

WORKER_BASE_BYTES = 256 * 2**20
"""Memory of one worker process before its task: Python, numpy, numba and the world's
code (measured ~240 MB resident)."""


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
        model: a trained model file (:meth:`agents.base.Agent.save`) served instead of
            building and training the agent; absolute, or relative to the scenario file.
    """

    name: str
    label: str
    params: FrozenMap = field(default_factory=FrozenMap)
    training_steps: int | None = None
    model: str | None = None


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
        reuse: which tasks share one trained model (:data:`REUSE`), saved in the run's ``models/``.
        tensorboard: SB3 agents also log to TensorBoard in the run's ``tensorboard/<model>/``
            (needs the ``tensorboard`` package).
    """

    steps: int = 0
    users: int | None = None
    reuse: str = "per_task"
    tensorboard: bool = False


REUSE = ("per_task", "across_seeds", "across_seeds_and_worlds")
"""``training.reuse``: a model per task; one per (world point, agent, variant), trained with
the first seed's training seed and served under every seed; one per (agent, variant),
trained at the first world point and served at every world point and seed."""


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
    """``metric op threshold`` must hold (for every agent, or only ``agent``).

    Absolute without ``baseline`` (``retention >= 0.9``); relative with ``baseline`` (an
    agent label): the per-seed paired change of the arm against the baseline, as a
    ``difference`` (arm - baseline, the metric's unit) or a ``percent`` lift
    (100 (arm / baseline - 1)). ``op`` ``within`` takes ``threshold`` ``[lo, hi]``.
    Evaluated with one-sided confidence bounds by :mod:`experiments.guardrails`.
    """

    metric: str
    op: str
    threshold: float | tuple[float, float]
    agent: str | None = None
    baseline: str | None = None
    change: str = "difference"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The guardrail in file format (optional keys only when set)."""
        out: dict[str, Any] = {"metric": self.metric, "op": self.op, "threshold": thaw(self.threshold)}
        if self.agent:
            out["agent"] = self.agent
        if self.baseline:
            out.update(baseline=self.baseline, change=self.change)
        if self.note:
            out["note"] = self.note
        return out


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
    log_decisions: bool = False
    """``logging.decisions``: write each task's decision log (:mod:`experiments.logs`)."""

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
        """A copy with seeds ``0..n-1`` (an int) or the given list.

        The copy's task count and memory are not re-checked: call :func:`check_resources`.
        """
        allowed = f"a count in [1, {MAX_SEEDS}] or at most {MAX_SEEDS} distinct integers in [0, {MAX_SEED}]"
        if isinstance(seeds, int) and not 1 <= seeds <= MAX_SEEDS:
            raise ScenarioError(self.source, "seeds", allowed, seeds)
        values = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
        in_range = 0 < len(values) <= MAX_SEEDS and 0 <= min(values) <= max(values) <= MAX_SEED
        if not in_range or len(set(values)) != len(values):
            raise ScenarioError(self.source, "seeds", allowed, seeds)
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
                    **({"model": a.model} if a.model is not None else {}),
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
                **({"reuse": self.training.reuse} if self.training.reuse != "per_task" else {}),
                **({"tensorboard": True} if self.training.tensorboard else {}),
            },
            "seeds": list(self.seeds),
            "metrics": {"window": self.window},
            "conditions": {
                "cadence": self.conditions.cadence,
                "retrain_every": self.conditions.retrain_every,
                "feedback_delay": self.conditions.feedback_delay,
                "freeze_after": self.conditions.freeze_after,
            },
            "guardrails": [g.to_dict() for g in self.guardrails],
            "sweep": {axis.path: thaw(axis.values) for axis in self.sweep},
            **({"logging": {"decisions": True}} if self.log_decisions else {}),  # absent: old fingerprints hold
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


def load_scenario(path: str | Path, *, check_agents: bool = True, workers: int | None = None) -> Scenario:
    """Read and validate a scenario file.

    Everything the run would build is checked here, before any task or run directory
    exists: the file itself (see :func:`read_yaml`), the schema, every world grid point,
    the task count and memory, and (``check_agents``) every agent variant built on every
    world shape it meets.

    Args:
        path: a YAML file (or the name of a shipped scenario).
        check_agents: also check agent names and parameters against the agent registry
            and build every agent variant.
        workers: worker processes the run will use (None: as the runner picks them); the
            memory check multiplies one task's estimate by it.

    Raises:
        ScenarioError: naming the file, the key path, what is allowed and what was found.
    """
    file = find_scenario(path)
    data = read_yaml(file)
    return parse_scenario(data, source=str(file), check_agents=check_agents, workers=workers)


# --------------------------------------------------------------------------- reading YAML safely


def read_yaml(file: str | Path) -> Any:
    """The data of a scenario file, read defensively.

    Refused, each with a :class:`ScenarioError` naming the file: files over
    :data:`MAX_FILE_BYTES`, bytes that are not UTF-8 (with the byte offset and line), YAML
    syntax errors (with line and column), and whatever :class:`ScenarioLoader` refuses
    (alias bombs, recursive aliases, nesting deeper than :data:`MAX_YAML_DEPTH`, duplicate
    or non-string keys).
    """
    source = str(file)
    text = _decode_utf8(_read_bounded(Path(file), source), source)
    try:
        loader = ScenarioLoader(text, source)  # checks the characters first
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        raise ScenarioError(source, "", "valid YAML", detail=_yaml_error_text(err)) from None
    except yaml.reader.ReaderError as err:
        raise ScenarioError(source, "", "valid YAML", detail=_reader_error_text(err, text)) from None


def _read_bounded(file: Path, source: str) -> bytes:
    """The file's bytes; refuses files over :data:`MAX_FILE_BYTES` (without reading them whole)."""
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ScenarioError(source, "", "a readable file", detail=f"cannot be read: {err}") from None
    if len(raw) > MAX_FILE_BYTES:
        allowed = f"at most {MAX_FILE_BYTES} bytes"
        raise ScenarioError(
            source, "", allowed, detail=f"the file is larger than {MAX_FILE_BYTES} bytes; allowed: {allowed}"
        )
    return raw


def _decode_utf8(raw: bytes, source: str) -> str:
    """``raw`` as text; bytes that are not UTF-8 are refused with their offset and line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        bad = " ".join(f"0x{byte:02x}" for byte in raw[err.start : err.end])
        raise ScenarioError(
            source,
            "",
            "UTF-8 text",
            detail=f"not UTF-8 text: {bad} at byte offset {err.start} (line {line}): {err.reason}; "
            "allowed: UTF-8 encoded YAML",
        ) from None


def _yaml_error_text(err: yaml.MarkedYAMLError) -> str:
    """``not valid YAML at line L, column C: problem (context)`` (1-based line and column)."""
    mark = err.problem_mark or err.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    if err.context and err.problem.startswith("but "):  # "expected a single document ..., but found another"
        return f"not valid YAML{where}: {err.context}, {err.problem}"
    context = f" ({err.context})" if err.context else ""
    return f"not valid YAML{where}: {err.problem}{context}"


def _reader_error_text(err: yaml.reader.ReaderError, text: str) -> str:
    """``not valid YAML at line L, column C: unacceptable character #x0007 (...)``."""
    line = text.count("\n", 0, err.position) + 1
    column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
    what = f"unacceptable character #x{err.character:04x} ({err.reason})"
    return f"not valid YAML at line {line}, column {column}: {what}"


def _line(node: yaml.Node) -> str:
    """``line L, column C`` of a node's start (1-based)."""
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class ScenarioLoader(yaml.SafeLoader):
    """A :class:`yaml.SafeLoader` that refuses, while composing the node graph (before any
    Python object is built):

    * documents whose alias expansion exceeds :data:`MAX_YAML_NODES` nodes: every node
      counts as often as aliases make it appear, which is the size of the data the rest
      of the loader walks (a 600-byte "billion laughs" file expands to 10^9 nodes and is
      refused after composing a few dozen). Aliases themselves are allowed: sharing a
      parameter block with ``&anchor`` / ``*anchor`` or ``<<:`` is legitimate YAML;
    * recursive aliases (a node that contains an alias to itself);
    * nesting deeper than :data:`MAX_YAML_DEPTH`;
    * a key given twice in one mapping, and keys that are not strings (``1:``, ``on:``).

    Each refusal is a :class:`ScenarioError` naming the file, the key path and the line.
    """

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self._expanded: dict[int, int] = {}  # id(node) -> nodes in its alias expansion, itself included
        self._path: list[Any] = []  # the compose_node index of every open node (None, int or key node)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        is_alias = isinstance(event, yaml.AliasEvent)
        if len(self._path) >= MAX_YAML_DEPTH:
            line = event.start_mark.line + 1
            self._refuse(index, f"nesting deeper than {MAX_YAML_DEPTH} levels at line {line}", "fewer levels")
        self._path.append(index)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._path.pop()
        if is_alias:
            if id(node) not in self._expanded:
                self._refuse(
                    index,
                    f"alias *{event.anchor} at line {event.start_mark.line + 1} refers to a node that contains it",
                    "aliases to nodes that are complete where the alias stands (no recursive structures)",
                )
            return node
        size = 1 + sum(self._expanded[id(child)] for child in _child_nodes(node))
        if size > MAX_YAML_NODES:
            self._refuse(
                index,
                f"YAML aliases expand the node at line {node.start_mark.line + 1} to {size} nodes",
                f"at most {MAX_YAML_NODES} nodes once aliases are expanded",
            )
        self._expanded[id(node)] = size
        return node

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[str, yaml.Node] = {}
        for key, _ in node.value:
            if key.tag == _MERGE_TAG:
                continue
            if not isinstance(key, yaml.ScalarNode) or key.tag != _STR_TAG:
                shown = key.value if isinstance(key, yaml.ScalarNode) else f"<{type(key).__name__}>"
                self._refuse(
                    None,
                    f"key {shown!r} at {_line(key)} is not a string (YAML reads it as {key.tag.rsplit(':', 1)[-1]})",
                    f"string keys (quote it: '{shown}')",
                )
            if key.value in first:
                self._refuse(
                    key,
                    f"duplicate key {key.value!r} at {_line(key)} (first at {_line(first[key.value])})",
                    "each key once per mapping",
                )
            first[key.value] = key
        return node

    def _refuse(self, index: Any, what: str, allowed: str) -> None:
        """Raise a ScenarioError at the key path of the open nodes (plus ``index``)."""
        parts = [*self._path, index]
        names = [p.value if isinstance(p, yaml.ScalarNode) else p for p in parts if p is not None]
        raise ScenarioError(self.source, _format_path(names), allowed, detail=f"{what}; allowed: {allowed}")


def _child_nodes(node: yaml.Node) -> list[yaml.Node]:
    """The direct children of a composed node (keys and values of a mapping)."""
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


# --------------------------------------------------------------------------- validation


def parse_scenario(
    data: Any, *, source: str = "<dict>", check_agents: bool = True, workers: int | None = None
) -> Scenario:
    """Validate a scenario given as a plain dict (what the YAML file holds).

    Args:
        data: the file's data.
        source: the file name errors name.
        check_agents: check agent names and parameters against the registry and build
            every agent variant on every world shape (:func:`check_agents_build`).
        workers: worker processes the run will use (None: as the runner picks them), for
            the memory check (:func:`check_resources`).
    """
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
        guardrails=tuple(Guardrail(**{**g, "threshold": _freeze(g["threshold"])}) for g in data.get("guardrails", [])),
        sweep=tuple(SweepAxis(path, _freeze(values)) for path, values in (data.get("sweep") or {}).items()),
        source=source,
        log_decisions=bool(data.get("logging", {}).get("decisions", False)),
    )
    _check_world(scenario)
    _check_numbers(scenario)
    _check_sweep(scenario)
    _check_task_count(scenario)
    _check_world_points(scenario)
    _check_guardrails(scenario)
    _check_models(scenario)
    _check_tensorboard(scenario)
    check_resources(scenario, workers)
    if check_agents:
        check_agent_names(scenario)
        check_agents_build(scenario)
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
        label = item.get("label", item["name"].rpartition(":")[2])  # a class of one's own: its class name
        if "label" not in item and not _label_ok(label):
            raise ScenarioError(
                source, f"agents[{i}].label", "1-64 characters matching [A-Za-z0-9_-] (the name is not)", label
            )
        if label in {e.label for e in entries}:
            raise ScenarioError(
                source, f"agents[{i}].label", "a label not used by an earlier agent (add label: ...)", label
            )
        model = _model_path(item.get("model"), source)
        entries.append(
            AgentEntry(item["name"], label, FrozenMap(item.get("params") or {}), item.get("training_steps"), model)
        )
    return tuple(entries)


def _model_path(model: str | None, source: str) -> str | None:
    """A model path as given if absolute, else relative to the scenario file's directory."""
    if model is None:
        return None
    path = Path(model)
    if not path.is_absolute() and Path(source).parent.is_dir():
        path = Path(source).parent / path
    return str(path)


def _check_tensorboard(scenario: Scenario) -> None:
    """``training.tensorboard`` needs the tensorboard package."""
    import importlib.util

    if scenario.training.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ScenarioError(
            scenario.source,
            "training.tensorboard",
            "false unless the tensorboard package is installed",
            detail="TensorBoard logging needs the tensorboard package: pip install 'bubblegym[tensorboard]' "
            "(the training curves are written to training.parquet without it)",
        )


def _check_models(scenario: Scenario) -> None:
    """Agents served from a trained model file: the file is an agent file of that agent, for
    the world shape of every world point, and the entry neither sets params nor is swept."""
    from agents.persist import ModelFileError, read_agent
    from simenv import WorldSpec

    for i, entry in enumerate(scenario.agents):
        if entry.model is None:
            continue
        where = f"agents[{i}].model"
        if entry.params:
            raise ScenarioError(
                scenario.source,
                f"agents[{i}].params",
                "absent for an agent served from a model file (its parameters are the file's)",
                thaw(entry.params),
            )
        if scenario.agent_axes(entry.label):
            raise ScenarioError(
                scenario.source,
                where,
                "an agent that no sweep axis targets (a model file has fixed parameters)",
                entry.model,
            )
        try:
            record = read_agent(entry.model)
        except ModelFileError as err:
            raise ScenarioError(scenario.source, where, "a trained model file (Agent.save)", detail=str(err)) from None
        if record.agent != entry.name:
            raise ScenarioError(
                scenario.source,
                where,
                f"a model of a {entry.name!r} agent (the entry's name)",
                f"a {record.agent!r} model",
            )
        for point in scenario.world_points():
            spec = WorldSpec.from_config(scenario.world_config(point))
            if record.spec != spec:
                raise ScenarioError(
                    scenario.source,
                    where,
                    f"a model for this scenario's world shape {spec}",
                    detail=f"{entry.model} holds a model for the world shape {record.spec}; this scenario's world "
                    f"{'at ' + str(dict(point)) + ' ' if point else ''}has the shape {spec}",
                )


def _label_ok(label: str) -> bool:
    return 0 < len(label) <= MAX_NAME_CHARS and all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in label)


def _check_world(scenario: Scenario) -> None:
    """The world before sweeps: the preset, the file's overrides and the horizon's population."""
    try:
        config = scenario.world_config()
    except ConfigError as err:
        from_horizon = scenario.horizon.population is not None and "population_size" in str(err)
        where = "horizon.population" if from_horizon else "world.overrides"
        raise ScenarioError(scenario.source, where, "fields and values the world accepts", detail=str(err)) from None
    _check_population(scenario, config, {})


def _check_world_points(scenario: Scenario) -> None:
    """Every world grid point (each axis value passed alone in :func:`_check_sweep`; here
    their combinations) gives a world the simulator accepts, with room for every session."""
    for point in scenario.world_points() if scenario.world_axes else []:
        try:
            config = scenario.world_config(point)
        except ConfigError as err:
            raise ScenarioError(
                scenario.source,
                "sweep",
                "grid points the world accepts",
                detail=f"the grid point {_point_text(point)} gives a world the simulator refuses: {err}",
            ) from None
        _check_population(scenario, config, point)


def _check_population(scenario: Scenario, config: WorldConfig, point: Mapping[str, Any]) -> None:
    """The population (if set) holds at least the ``horizon.users`` concurrent sessions."""
    size, users = config.users.population_size, scenario.horizon.users
    if size is None or size >= users:
        return
    if "users.population_size" in point:
        where = "sweep.world.users.population_size"
    elif scenario.horizon.population is not None:
        where = "horizon.population"
    else:
        where = "world.overrides.users.population_size"
    raise ScenarioError(scenario.source, where, f"null or an integer >= horizon.users ({users})", size)


def _point_text(point: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{key}: {value!r}" for key, value in point.items()) + "}"


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
        _check_threshold(scenario.source, i, guard)
        if guard.agent is not None and guard.agent not in labels:
            raise ScenarioError(scenario.source, f"guardrails[{i}].agent", f"one of {labels}", guard.agent)
        _check_guardrail_baseline(scenario, i, guard, labels)


def _check_threshold(source: str, index: int, guard: Guardrail) -> None:
    """A finite number, or for ``within`` a finite pair ``[lo, hi]`` with lo <= hi."""
    where = f"guardrails[{index}].threshold"
    if guard.op == "within":
        pair = guard.threshold
        ok = isinstance(pair, tuple) and len(pair) == 2 and all(_finite(v) for v in pair) and pair[0] <= pair[1]
        if not ok:
            raise ScenarioError(source, where, "a pair [lo, hi] of finite numbers with lo <= hi (op within)", pair)
    elif not _finite(guard.threshold):
        raise ScenarioError(source, where, f"a finite number (op {guard.op})", thaw(guard.threshold))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_guardrail_baseline(scenario: Scenario, index: int, guard: Guardrail, labels: list[str]) -> None:
    """A relative guardrail's baseline is another, unswept agent; ``percent`` needs a baseline."""
    where = f"guardrails[{index}]"
    if guard.baseline is None:
        if guard.change != "difference":
            raise ScenarioError(
                scenario.source, f"{where}.change", "'difference' unless a baseline is given", guard.change
            )
        return
    if guard.baseline not in labels:
        raise ScenarioError(scenario.source, f"{where}.baseline", f"an agent label, one of {labels}", guard.baseline)
    if guard.agent == guard.baseline:
        raise ScenarioError(
            scenario.source, f"{where}.baseline", "a label other than the guarded agent's", guard.baseline
        )
    if scenario.agent_axes(guard.baseline):
        raise ScenarioError(
            scenario.source, f"{where}.baseline", "an agent whose parameters are not swept (one arm)", guard.baseline
        )


def check_agent_names(scenario: Scenario) -> None:
    """Check every agent name and parameter (fixed or swept) against the agent registry, and
    every value against the parameter's declared rule (the agent's Params: range, type,
    choices), without building the agent (:func:`check_agents_build` builds it next)."""
    from agents.registry import (
        AgentError,
        agent_names,
        agent_parameters,
        custom_agent_class,
        is_custom_name,
        takes_any_keyword,
    )

    names = agent_names()
    for i, entry in enumerate(scenario.agents):
        if is_custom_name(entry.name):
            try:
                custom_agent_class(entry.name)
            except AgentError as err:
                raise ScenarioError(
                    scenario.source, f"agents[{i}].name", "a class implementing the agent interface", detail=str(err)
                ) from None
        elif entry.name not in names:
            raise ScenarioError(
                scenario.source,
                f"agents[{i}].name",
                f"a registered agent {names} or a class of your own 'package.module:Class'",
                entry.name,
            )
        try:
            allowed = agent_parameters(entry.name)
        except AgentError as err:  # pragma: no cover - registry race
            raise ScenarioError(scenario.source, f"agents[{i}].name", "a registered agent", detail=str(err)) from None
        for key in entry.params:
            if key not in allowed and not takes_any_keyword(entry.name):
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
        _check_agent_values(scenario, i, entry)


def _check_agent_values(scenario: Scenario, index: int, entry: AgentEntry) -> None:
    """Each fixed and each swept value of agent ``index`` against its parameter's rule
    (:func:`agents.registry.check_parameter`); a ScenarioError at the value's place."""
    from agents.registry import AgentError, check_parameter

    places = [(f"agents[{index}].params.{key}", key, value) for key, value in thaw(entry.params).items()]
    places += [
        (f"sweep.{axis.path}", axis.key, value)
        for axis in scenario.agent_axes(entry.label)
        for value in thaw(list(axis.values))
    ]
    for where, key, value in places:
        try:
            check_parameter(entry.name, key, value)
        except AgentError as err:
            raise ScenarioError(scenario.source, where, "a value the agent accepts", value, detail=str(err)) from None


def check_agents_build(scenario: Scenario) -> None:
    """Build every agent variant on every distinct world shape of the grid, as the runner
    will (``make_agent(name, WorldSpec.from_config(world), **params)``), so a parameter the
    agent refuses fails here rather than in a worker after other tasks ran.

    Agents depend on the world only through its :class:`~simenv.WorldSpec`, so one build
    per (shape, agent variant) covers every world point and seed. A failure is a
    :class:`ScenarioError` at the parameter to blame (``agents[1].params.alpha`` or
    ``sweep.agents.<label>.<param>``), or at ``agents[i]`` when the agent refuses the world
    itself. Agents that train also need a population that holds their training sessions.
    """
    shapes = _world_shapes(scenario)
    population = _smallest_population(scenario)
    for i, entry in enumerate(scenario.agents):
        for variant in scenario.agent_variants(entry.label):
            params = {**thaw(entry.params), **variant}
            for spec, point in shapes.items():
                agent = _build_agent(scenario, i, spec, params, variant, point)
                _check_training_sessions(scenario, i, agent, population)


def _world_shapes(scenario: Scenario) -> dict[Any, dict[str, Any]]:
    """Each distinct WorldSpec of the world grid, with the first grid point that gives it."""
    from simenv import WorldSpec

    shapes: dict[Any, dict[str, Any]] = {}
    for point in scenario.world_points():
        shapes.setdefault(WorldSpec.from_config(scenario.world_config(point)), point)
    return shapes


def _build_agent(
    scenario: Scenario, index: int, spec: Any, params: dict[str, Any], variant: Mapping[str, Any], point: dict
) -> Any:
    """The built agent, or a ScenarioError at the parameter whose addition breaks the build."""
    from agents.registry import make_agent

    entry = scenario.agents[index]
    try:
        return make_agent(entry.name, spec, **params)
    except Exception as err:
        key, cause = _blame(entry.name, spec, params, err)
    at = f" (at the world grid point {_point_text(point)})" if point else ""
    reason = str(cause) if isinstance(cause, ValueError) else f"{type(cause).__name__}: {cause}"
    if key is None:
        raise ScenarioError(
            scenario.source,
            f"agents[{index}]",
            "an agent that can be built for this world",
            detail=f"agent {entry.name!r} cannot be built for this world{at}: {reason}",
        ) from cause
    where = f"sweep.agents.{entry.label}.{key}" if key in variant else f"agents[{index}].params.{key}"
    value = params[key]
    found = "" if repr(value) in reason else f"; found {value!r}"  # agents' messages end "; got <value>"
    raise ScenarioError(scenario.source, where, "a value the agent accepts", detail=f"{reason}{at}{found}") from cause


def _blame(name: str, spec: Any, params: Mapping[str, Any], error: Exception) -> tuple[str | None, Exception]:
    """The first parameter (in file order, then swept ones) whose addition makes the build
    fail, with that build's error; ``(None, error)`` when the agent fails with its defaults."""
    from agents.registry import make_agent

    chosen: dict[str, Any] = {}
    for key in [None, *params]:
        if key is not None:
            chosen[key] = params[key]
        try:
            make_agent(name, spec, **chosen)
        except Exception as err:
            return key, err
    return None, error  # pragma: no cover - the full build failed but every prefix built


def _smallest_population(scenario: Scenario) -> int | None:
    """The smallest population the grid sets (None: every world has one user per session)."""
    sizes = [scenario.world_config(point).users.population_size for point in scenario.world_points()]
    return min((size for size in sizes if size is not None), default=None)


def _check_training_sessions(scenario: Scenario, index: int, agent: Any, population: int | None) -> None:
    """An agent that trains needs the population (the smallest of the grid, None: unset)
    to hold its concurrent training sessions (``training.users``, else its ``n_envs``)."""
    entry = scenario.agents[index]
    if population is None or not hasattr(agent, "train") or scenario.training_steps(entry) <= 0:
        return
    sessions = scenario.training.users or agent.params.get("n_envs")
    if sessions is not None and sessions > population:
        where = "training.users" if scenario.training.users else f"agents[{index}].params.n_envs"
        raise ScenarioError(
            scenario.source, where, f"at most the population ({population}) concurrent training sessions", sessions
        )


# --------------------------------------------------------------------------- resources


def task_count(scenario: Scenario) -> int:
    """Tasks of the run: world grid points x agent variants x seeds (no grid is expanded)."""
    points = math.prod(len(axis.values) for axis in scenario.world_axes)
    variants = sum(math.prod(len(axis.values) for axis in scenario.agent_axes(a.label)) for a in scenario.agents)
    return points * variants * len(scenario.seeds)


def _check_task_count(scenario: Scenario) -> None:
    count = task_count(scenario)
    if count > MAX_TASKS:
        raise ScenarioError(
            scenario.source,
            "sweep" if scenario.sweep else "seeds",
            f"at most {MAX_TASKS} tasks",
            detail=f"the run has {count} tasks (world points x agent variants x seeds); allowed: at most {MAX_TASKS}",
        )


def check_resources(scenario: Scenario, workers: int | None = None) -> None:
    """The task count is bounded and the run's estimated memory fits in the memory
    available now (:func:`run_memory_bytes`; skipped where it cannot be read).

    Args:
        scenario: a parsed scenario.
        workers: worker processes the run will use (None: the runner's default, one per
            core and at most one per task).

    Raises:
        ScenarioError: too many tasks, or the estimate (given with the limit) exceeds it.
    """
    _check_task_count(scenario)
    n_workers = _workers(scenario, workers)
    available = available_memory_bytes()
    if available is None:
        return
    per_task = max(task_memory_bytes(scenario, point) for point in scenario.world_points())
    need = n_workers * (per_task + WORKER_BASE_BYTES)
    if need > available:
        h = scenario.horizon
        raise ScenarioError(
            scenario.source,
            "horizon",
            "an estimated memory within the memory available",
            detail=f"the run needs an estimated {_bytes_text(need)} ({n_workers} worker(s) x "
            f"({_bytes_text(per_task)} per task for {h.users} users x {h.steps} steps + "
            f"{_bytes_text(WORKER_BASE_BYTES)} per worker)) but {_bytes_text(available)} is available; "
            "allowed: at most the available memory (lower horizon.users or horizon.steps, or use fewer workers)",
        )


def _workers(scenario: Scenario, workers: int | None) -> int:
    """Workers that hold a task at once (as ``experiments.runner.default_workers`` picks them)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ScenarioError(scenario.source, "workers", "an integer >= 1", workers)
    return max(1, min(workers or os.cpu_count() or 1, task_count(scenario)))


def task_memory_bytes(scenario: Scenario, point: Mapping[str, Any] | None = None) -> int:
    """Estimated peak memory (bytes) of one task at a world grid point: the trajectory
    (:func:`user_step_bytes` per user-step, times :data:`TRAJECTORY_PEAK_FACTOR`) plus the
    world's state (population and catalog); the worker's own :data:`WORKER_BASE_BYTES`
    are not included."""
    from simenv import WorldSpec

    config = scenario.world_config(point)
    spec = WorldSpec.from_config(config)
    h = scenario.horizon
    trajectory = h.users * h.steps * user_step_bytes(spec) * TRAJECTORY_PEAK_FACTOR
    return trajectory + _world_state_bytes(config, spec, h.users)


def user_step_bytes(spec: Any) -> int:
    """Bytes ``experiments.rollout.rollout`` records per user-step for a world of shape ``spec``
    (the oracle's keys included): the per-user-step width of each (T, B, ...) record times
    its item size, summed (:data:`RECORD_LAYOUT`)."""
    widths = {
        "1": 1,
        "k": spec.slate_size,
        "k+1": spec.slate_size + 1,
        "d": spec.embedding_dim,
        "F_u": spec.user_dim,
    }
    return sum(itemsize * widths[width] for itemsize, width in RECORD_LAYOUT.values())


RECORD_LAYOUT: dict[str, tuple[int, str]] = {
    **{key: (8, "k") for key in ("slate", "propensity", "predicted", "slate_items", "slate_topics")},
    "expected_item_reward": (8, "k"),
    "choice_probs": (8, "k+1"),
    "interest": (4, "d"),
    "user_features": (4, "F_u"),
    **{key: (8, "1") for key in ("user_id", "click", "expected_reward", "oracle_expected_reward", "consumed_topic")},
    **{key: (4, "1") for key in ("reward", "engagement", "satisfaction", "ild", "engaged_share", "preference_shift")},
    **{key: (1, "1") for key in ("explored", "terminated", "truncated", "churned")},
    "consumed_topic_rank": (2, "1"),
}
"""Per record of a :class:`experiments.rollout.Trajectory`: (item size in bytes, width per
user-step: ``1``, ``k`` slate size, ``k+1`` slate plus no-click, ``d`` embedding dim or
``F_u`` user features). ``tests/test_scenario_safety.py`` holds it to a real rollout."""


def _world_state_bytes(config: WorldConfig, spec: Any, users: int) -> int:
    """The world's arrays: per user of the population (float32 interests, initial
    interests, satiation, topic history, observed features, satisfaction; int64 id and
    return-queue slot) and per catalog item (float64 features plus bookkeeping)."""
    population = config.users.population_size or users
    d, k = spec.embedding_dim, spec.n_topics
    per_user = 4 * (2 * d + 2 * k + config.users.observed_dims + 1) + 16
    per_item = 8 * (spec.item_dim + 4)
    return population * per_user + config.catalog.n_items * per_item


def available_memory_bytes() -> int | None:
    """Memory available to new processes now (bytes): ``psutil.virtual_memory().available``,
    else free physical pages from ``os.sysconf``; None where neither can be read."""
    try:
        import psutil
    except ImportError:
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    return int(psutil.virtual_memory().available)


def _bytes_text(n: float) -> str:
    """``n`` bytes as ``"1.5 GiB"``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    step = 0
    while n >= 1024 and step < len(units) - 1:
        n, step = n / 1024, step + 1
    return f"{n:.1f} {units[step]}"


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
    if kind in ("pattern", "minLength", "maxLength") and "x-allowed" in spec:
        return ScenarioError(source, _format_path(path), spec["x-allowed"], found)
    allowed = {
        "enum": lambda v: f"one of {v}",
        "const": lambda v: f"{v!r}",
        "minimum": lambda v: f"{_type_text(spec.get('type', 'number'))} >= {v}",
        "maximum": lambda v: f"{_type_text(spec.get('type', 'number'))} <= {v}",
        "pattern": lambda v: f"a string matching {v}",
        "minItems": lambda v: f"a list of at least {v} item(s)",
        "maxItems": lambda v: f"a list of at most {v} items",
        "minLength": lambda v: f"a string of at least {v} character(s)",
        "maxLength": lambda v: f"a string of at most {v} characters",
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
