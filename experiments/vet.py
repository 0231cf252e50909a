"""``bubblegym vet``: run a candidate policy and a baseline on every scenario of a vetting
suite and decide, guardrail by guardrail, whether the candidate may launch.

A *suite* is a folder of scenario files (the shipped one is ``scenarios/vetting/``). Each
file is an ordinary scenario (``bubblegym run`` runs it as is) with two agents labelled
``candidate`` and ``baseline`` and guardrails on them. Vetting replaces the candidate's
agent with the policy given, and the baseline's with ``--baseline`` when given, then runs
every scenario with the runner (resumable, common random numbers: under one seed both arms
meet the same users and noise) and judges all guardrails of the suite as one Holm family
(:mod:`experiments.guardrails`).

The policy is one of:

* a registry spec ``NAME[:key=value,...]`` (``linucb:alpha=0.5``; values read as YAML);
* a saved agent file (:meth:`agents.base.Agent.save`), served through
  :class:`agents.saved.SavedAgent`;
* a class of one's own, ``package.module:Class[:key=value,...]`` (importable from the
  current directory or ``sys.path``; checked against the agent interface).

Outputs in ``OUT``: one run directory per scenario (``OUT/<scenario>/``, each with its
``verdict.json``) and ``OUT/verdict.json`` with every guardrail and the overall verdict.
Exit codes of the command: 0 all pass, 1 any fail, 2 inconclusive or an error.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agents.registry import CUSTOM_NAME, AgentError, agent_names, check_parameter, custom_agent_class
from experiments.guardrails import DEFAULT_LEVEL, Verdict, checks_of_run, evaluate, write_verdict
from experiments.scenario import (
    SCENARIO_DIRS,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
    read_yaml,
)

CANDIDATE = "candidate"
"""The label of the vetted policy's agent in every suite scenario."""

BASELINE = "baseline"
"""The label of the baseline's agent in every suite scenario."""

DEFAULT_SUITE = "vetting"
"""The shipped suite: ``scenarios/vetting/``."""

EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 2}
"""Exit code of ``bubblegym vet`` per overall verdict (an error also exits 2)."""

_SAVED_AGENT = "agents.saved:SavedAgent"


@dataclass(frozen=True)
class PolicySpec:
    """An agent entry to put in place of a suite's ``candidate`` (or ``baseline``).

    Attributes:
        text: what the user typed (for messages and the output folder name).
        name: a registry name, or ``package.module:Class``.
        params: keyword arguments of the agent.
    """

    text: str
    name: str
    params: dict[str, Any]

    @property
    def slug(self) -> str:
        """A file-name-safe form of the spec (``linucb-alpha-0.5``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(self.text).name if self.is_file else self.text).strip("-.")[:64]

    @property
    def is_file(self) -> bool:
        return self.name == _SAVED_AGENT


def parse_policy(text: str, role: str = "policy") -> PolicySpec:
    """Read a policy spec: a saved agent file, ``NAME[:k=v,...]`` or ``package.module:Class[:k=v,...]``.

    Args:
        text: the spec.
        role: ``"policy"`` or ``"baseline"``, for messages.

    Raises:
        AgentError: naming the spec and what is allowed (an unknown agent, a malformed
            ``key=value``, a refused parameter value, a class that is not an agent).
    """
    allowed = (
        "a registry spec NAME[:key=value,...] (NAME one of the agents `bubblegym list` shows), "
        "a saved agent file, or a class of your own package.module:Class[:key=value,...]"
    )
    if not isinstance(text, str) or not text.strip():
        raise AgentError(f"{role} {text!r}: must be {allowed}")
    path = Path(text)
    if path.is_file():
        return PolicySpec(text, _SAVED_AGENT, {"path": str(path.resolve())})
    head, _, rest = text.partition(":")
    if head in agent_names():
        params = _parse_params(text, rest, role)
        for key, value in params.items():
            try:
                check_parameter(head, key, value)
            except AgentError as err:
                raise AgentError(f"{role} {text!r}: {err}") from None
        return PolicySpec(text, head, params)
    cls_part, _, rest = rest.partition(":")
    name = f"{head}:{cls_part}"
    if not CUSTOM_NAME.match(name):
        suffix = " (no such file)" if path.suffix else ""
        raise AgentError(f"{role} {text!r}{suffix}: must be {allowed}; agents: {agent_names()}")
    try:
        custom_agent_class(name)
    except AgentError as err:
        raise AgentError(f"{role} {text!r}: {err}") from None
    return PolicySpec(text, name, _parse_params(text, rest, role))


def _parse_params(text: str, body: str, role: str) -> dict[str, Any]:
    """``"alpha=0.5,beta=2"`` -> ``{"alpha": 0.5, "beta": 2}`` (values read as YAML scalars)."""
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise AgentError(f"{role} {text!r}: parameters must be key=value pairs separated by commas; found {item!r}")
        try:
            parsed = yaml.safe_load(value.strip()) if value.strip() else None
        except yaml.YAMLError:
            parsed = value.strip()
        if isinstance(parsed, list | dict):
            raise AgentError(f"{role} {text!r}: parameter {key.strip()!r} must be a number, string or boolean")
        params[key.strip()] = parsed
    return params


# --------------------------------------------------------------------------- suites


def find_suite(name_or_path: str | Path) -> Path:
    """The suite folder: the path itself if it is a folder, else ``scenarios/<name>/``.

    Raises:
        ScenarioError: no such folder, or a folder without scenario files.
    """
    path = Path(name_or_path)
    folder = path if path.is_dir() else next((d / path for d in SCENARIO_DIRS if (d / path).is_dir()), None)
    shipped = sorted(p.name for d in SCENARIO_DIRS if d.is_dir() for p in d.iterdir() if p.is_dir())
    if folder is None:
        raise ScenarioError(
            str(name_or_path), "suite", f"a folder of scenario files or a shipped suite name {shipped}", str(path)
        )
    if not any(folder.glob("*.yaml")):
        raise ScenarioError(str(folder), "suite", "a folder holding at least one scenario file (*.yaml)", "none")
    return folder


def suite_files(folder: Path) -> list[Path]:
    """The suite's scenario files, by name."""
    return sorted(folder.glob("*.yaml"))


def vetting_scenario(
    file: Path, policy: PolicySpec, baseline: PolicySpec | None, seeds: int | None, workers: int | None
) -> Scenario:
    """One suite scenario with the policy as ``candidate`` (and ``baseline`` replaced if
    given), validated like any scenario (agents built on its world) under the file's name.

    Raises:
        ScenarioError: the file is not a valid suite scenario (no ``candidate`` or
            ``baseline`` agent, no guardrail) or refuses the policy (naming the file and key).
    """
    source = str(file)
    data = read_yaml(file)
    base = load_scenario(file, check_agents=False, workers=workers)
    labels = [a.label for a in base.agents]
    for label in (CANDIDATE, BASELINE):
        if label not in labels:
            raise ScenarioError(source, "agents", f"agents labelled {CANDIDATE!r} and {BASELINE!r}", labels)
    if not base.guardrails:
        raise ScenarioError(source, "guardrails", "at least one guardrail in a vetting scenario", [])
    for i, guard in enumerate(base.guardrails):
        if guard.agent not in (CANDIDATE, None):
            raise ScenarioError(source, f"guardrails[{i}].agent", f"{CANDIDATE!r} (or absent)", guard.agent)
    agents = []
    for item in data["agents"]:
        label = item.get("label", item["name"].rpartition(":")[2])
        replacement = policy if label == CANDIDATE else baseline if label == BASELINE else None
        if replacement is not None:
            item = {"name": replacement.name, "label": label, "params": dict(replacement.params)}
        agents.append(item)
    data = {**data, "agents": agents}
    if seeds is not None:
        data["seeds"] = seeds
    return parse_scenario(data, source=source, workers=workers)


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class VetResult:
    """What a vetting produced: the suite's verdict and where each scenario ran."""

    verdict: Verdict
    runs: dict[str, Path]
    out: Path

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict.overall]


def vet(
    policy: str,
    suite: str | Path = DEFAULT_SUITE,
    *,
    baseline: str | None = None,
    out: str | Path | None = None,
    seeds: int | None = None,
    level: float = DEFAULT_LEVEL,
    workers: int | None = None,
    progress: bool = False,
    force: bool = False,
) -> VetResult:
    """Vet ``policy`` against the suite: every scenario checked before any runs, then run,
    then all guardrails judged as one Holm family at ``level``.

    Args:
        policy: the candidate's spec (see :func:`parse_policy`).
        suite: a folder of scenario files or a shipped suite's name.
        baseline: the baseline's spec (None: each scenario's own ``baseline`` agent).
        out: output folder (default ``runs/vet-<policy>``).
        seeds: seeds 0..seeds-1 instead of each scenario's.
        level: family-wise confidence level in (0.5, 1).
        workers: parallel workers per scenario run.
        progress: show progress bars.
        force: replace results in ``out`` computed by another setup.

    Returns:
        The verdict (also written to ``out/verdict.json`` and each ``out/<scenario>/verdict.json``).
    """
    from experiments.guardrails import check_level
    from experiments.report import load_run
    from experiments.runner import run_scenario

    check_level(level)
    candidate = parse_policy(policy, "policy")
    base = parse_policy(baseline, "baseline") if baseline is not None else None
    files = suite_files(find_suite(suite))
    scenarios = [vetting_scenario(f, candidate, base, seeds, workers) for f in files]
    _unique_names(scenarios)
    folder = Path(out) if out is not None else Path("runs") / f"vet-{candidate.slug}"
    checks, runs = [], {}
    for scenario in scenarios:
        run_dir = folder / scenario.name
        if progress:
            print(f"bubblegym vet: {scenario.name} ({len(scenario.seeds)} seeds) -> {run_dir}", file=sys.stderr)
        run_scenario(scenario, run_dir, workers=workers, progress=progress, force=force)
        checks += checks_of_run(load_run(run_dir).summary, scenario.guardrails, scenario.name)
        runs[scenario.name] = run_dir
    verdict = evaluate(checks, level)
    for name, run_dir in runs.items():
        write_verdict(run_dir, verdict.part(name))
    write_verdict(folder, verdict)
    return VetResult(verdict, runs, folder)


def _unique_names(scenarios: Sequence[Scenario]) -> None:
    seen: dict[str, str] = {}
    for scenario in scenarios:
        if scenario.name in seen:
            raise ScenarioError(
                scenario.source,
                "name",
                f"a name no other file of the suite uses ({seen[scenario.name]})",
                scenario.name,
            )
        seen[scenario.name] = scenario.source
