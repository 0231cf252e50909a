"""Scenario files that cannot run fail at load, before any task or run directory exists.

Every case is a file written into ``tmp_path``; the message must start with
``<file>: <key path>: `` and hold the listed fragments (what is wrong, what is allowed,
the value seen).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import experiments.scenario as scenario_module
from agents import make_agent
from experiments.cli import main
from experiments.rollout import rollout
from experiments.scenario import (
    MAX_FILE_BYTES,
    MAX_NAME_CHARS,
    MAX_SEED,
    MAX_SEEDS,
    RECORD_LAYOUT,
    WORKER_BASE_BYTES,
    ScenarioError,
    check_resources,
    load_scenario,
    parse_scenario,
    schema,
    task_memory_bytes,
    user_step_bytes,
)
from simenv import RecVectorEnv, WorldSpec, get_preset, with_overrides

ROOT = Path(__file__).resolve().parent.parent

HEAD = "name: x\n"
ONE_AGENT = "agents: [{name: random}]\n"
SMALL = "horizon: {steps: 5, users: 4}\n"
OK = HEAD + ONE_AGENT + SMALL

BOMB = "".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)),
    ]
)
"""The "billion laughs": 9 levels of 9 aliases, 9^9 = 387 million strings, ~600 bytes."""


def _agents(text: str) -> str:
    return HEAD + f"agents: {text}\n" + SMALL


# (case id, file content (str or bytes), key path in the message, fragments of the message)
BAD_FILES: list[tuple[str, str | bytes, str, list[str]]] = [
    # ---- agents are built at load: each bad parameter names its place in the file
    (
        "agent param negative",
        _agents("[{name: random}, {name: linucb, params: {alpha: -1}}]"),
        "agents[1].params.alpha",
        ["linucb.alpha must be a number in [0.0, inf]", "got -1"],
    ),
    (
        "agent param nan",
        _agents("[{name: linucb, params: {alpha: .nan}}]"),
        "agents[0].params.alpha",
        ["linucb.alpha must be a number in [0.0, inf]", "got nan"],
    ),
    (
        "agent param wrong type",
        _agents("[{name: linucb, params: {alpha: many}}]"),
        "agents[0].params.alpha",
        ["must be a number", "got 'many'"],
    ),
    (
        "second param to blame",
        _agents("[{name: linucb, params: {alpha: 1.0, lam: -1}}]"),
        "agents[0].params.lam",
        ["linucb.lam must be a number in (0.0, inf]", "got -1"],
    ),
    (
        "vw param (a ValueError)",
        _agents("[{name: vw_epsilon, params: {epsilon: 2}}]"),
        "agents[0].params.epsilon",
        ["vw_epsilon.epsilon must be a number in [0.0, 1.0]", "got 2"],
    ),
    (
        "swept param",
        HEAD + "agents: [{name: linear_egreedy, label: eg}]\n" + SMALL + "sweep: {agents.eg.epsilon: [0.1, 2.0]}\n",
        "sweep.agents.eg.epsilon",
        ["linear_egreedy.epsilon must be a number in [0.0, 1.0]", "got 2.0"],
    ),
    (
        "agent refuses the world",
        _agents("[{name: random}, {name: dqn, params: {policy: mlp}}]"),
        "agents[1].params.policy",
        ["dqn with policy 'mlp' needs slate_size 1", "got slate_size=5"],
    ),
    (
        "agent refuses one grid point",
        HEAD
        + "world: {overrides: {slate_size: 1}}\nagents: [{name: dqn, params: {policy: mlp}}]\n"
        + SMALL
        + "sweep: {world.slate_size: [1, 2]}\n",
        "agents[0].params.policy",
        ["(at the world grid point {slate_size: 2})", "got slate_size=2"],
    ),
    (
        "training sessions above the population",
        HEAD + "agents: [{name: ppo}]\nhorizon: {steps: 5, users: 4, population: 8}\ntraining: {steps: 100}\n",
        "agents[0].params.n_envs",
        ["at most the population (8) concurrent training sessions", "found 16"],
    ),
    (
        "training users above the population",
        HEAD
        + "agents: [{name: ppo}]\nhorizon: {steps: 5, users: 4, population: 8}\n"
        + "training: {steps: 100, users: 32}\n",
        "training.users",
        ["at most the population (8)", "found 32"],
    ),
    # ---- every world grid point, and the population against the sessions
    (
        "grid point the world refuses",
        OK + "sweep: {world.n_candidates: [5, 20], world.slate_size: [3, 10]}\n",
        "sweep",
        ["the grid point {n_candidates: 5, slate_size: 10}", "world.slate_size must be an integer in [1, 5]", "got 10"],
    ),
    (
        "population override below users",
        HEAD + "world: {overrides: {users: {population_size: 2}}}\n" + ONE_AGENT + SMALL,
        "world.overrides.users.population_size",
        ["null or an integer >= horizon.users (4)", "found 2"],
    ),
    (
        "population swept below users",
        OK + "sweep: {world.users.population_size: [8, 2]}\n",
        "sweep.world.users.population_size",
        ["null or an integer >= horizon.users (4)", "found 2"],
    ),
    (
        "population below users",
        HEAD + ONE_AGENT + "horizon: {steps: 5, users: 4, population: 2}\n",
        "horizon.population",
        [">= horizon.users (4)", "found 2"],
    ),
    # ---- bounded numbers
    (
        "seed beyond int64",
        OK + "seeds: [9223372036854775808]\n",
        "seeds",
        ["distinct integers in [0, 2^63 - 1]", "found [9223372036854775808]"],
    ),
    ("too many seeds", OK + "seeds: 10001\n", "seeds", ["a count in [1, 10000]", "found 10001"]),
    ("steps zero", HEAD + ONE_AGENT + "horizon: {steps: 0, users: 4}\n", "horizon.steps", [">= 1", "found 0"]),
    (
        "steps too many",
        HEAD + ONE_AGENT + "horizon: {steps: 1000001, users: 4}\n",
        "horizon.steps",
        ["an integer <= 1000000", "found 1000001"],
    ),
    (
        "users too many",
        HEAD + ONE_AGENT + "horizon: {steps: 5, users: 1.0e+9}\n",
        "horizon.users",
        ["an integer <= 1000000", "found 1000000000.0"],
    ),
    # YAML 1.1 (PyYAML) reads 1e9 and 1.0e9 as text: the schema says so
    ("users 1e9", HEAD + ONE_AGENT + "horizon: {steps: 5, users: 1e9}\n", "horizon.users", ["an integer; found '1e9'"]),
    (
        "population too large",
        HEAD + ONE_AGENT + "horizon: {steps: 5, users: 4, population: 100000000}\n",
        "horizon.population",
        ["an integer <= 16777216", "found 100000000"],
    ),
    (
        "training steps too many",
        OK + "training: {steps: 1000000001}\n",
        "training.steps",
        ["an integer <= 1000000000", "found 1000000001"],
    ),
    (
        "guardrail threshold nan",
        OK + "guardrails: [{metric: retention, op: '>=', threshold: .nan}]\n",
        "guardrails[0].threshold",
        ["a finite number", "found nan"],
    ),
    (
        "too many tasks",
        HEAD
        + "agents: [{name: random}, {name: linear_egreedy, label: eg}]\n"
        + SMALL
        + "seeds: 10000\nsweep: {agents.eg.epsilon: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]}\n",
        "sweep",
        ["the run has 110000 tasks (world points x agent variants x seeds)", "allowed: at most 100000"],
    ),
    (
        "memory beyond the machine",
        HEAD + ONE_AGENT + "horizon: {steps: 1000000, users: 1000000}\n",
        "horizon",
        [
            "the run needs an estimated ",
            "per task for 1000000 users x 1000000 steps",
            "is available",
            "allowed: at most the available memory",
        ],
    ),
    # ---- names and labels become folder and file names
    ("name dot dot", "name: '..'\n" + ONE_AGENT + SMALL, "name", ["not starting with a dot", "found '..'"]),
    ("name dot", "name: .hidden\n" + ONE_AGENT + SMALL, "name", ["not starting with a dot", "found '.hidden'"]),
    ("name slash", "name: a/b\n" + ONE_AGENT + SMALL, "name", ["matching [A-Za-z0-9_.-]", "found 'a/b'"]),
    ("name empty", "name: ''\n" + ONE_AGENT + SMALL, "name", ["1-64 characters", "found ''"]),
    ("name too long", f"name: {'a' * 65}\n" + ONE_AGENT + SMALL, "name", ["1-64 characters", f"found '{'a' * 65}'"]),
    (
        "label too long",
        _agents(f"[{{name: random, label: {'b' * 65}}}]"),
        "agents[0].label",
        ["1-64 characters matching [A-Za-z0-9_-]", "found 'bbb"],
    ),
    ("label with a dot", _agents("[{name: random, label: a.b}]"), "agents[0].label", ["matching", "found 'a.b'"]),
    # ---- the YAML itself
    (
        "duplicate key",
        "name: a\nname: b\n" + ONE_AGENT + SMALL,
        "name",
        ["duplicate key 'name' at line 2, column 1 (first at line 1, column 1)", "each key once per mapping"],
    ),
    (
        "duplicate nested key",
        HEAD + "agents:\n  - name: linucb\n    params: {alpha: 1, alpha: 2}\n" + SMALL,
        "agents[0].params.alpha",
        ["duplicate key 'alpha' at line 4, column 24 (first at line 4, column 14)"],
    ),
    (
        "non-string key",
        OK + "1: one\n",
        "<root>",
        ["key '1' at line 4, column 1 is not a string (YAML reads it as int)", "string keys (quote it: '1')"],
    ),
    (
        "bool key",
        OK + "on: yes\n",
        "<root>",
        ["key 'on' at line 4, column 1 is not a string (YAML reads it as bool)"],
    ),
    ("alias bomb", BOMB, "e", ["YAML aliases expand the node at line 5 to", "at most 10000 nodes once aliases"]),
    ("recursive alias", "name: &x [*x]\n", "name[0]", ["alias *x at line 1 refers to a node that contains it"]),
    ("deep nesting", "name: " + "[" * 40 + "]" * 40 + "\n", "name" + "[0]" * 31, ["nesting deeper than 32 levels"]),
    ("unclosed", "name: [unclosed", "<root>", ["not valid YAML at line 1, column 16", "expected ',' or ']'"]),
    ("bad indent", "name: a\n  b: c\n", "<root>", ["not valid YAML at line 2, column 4", "mapping values"]),
    ("undefined alias", "name: *nope\n", "<root>", ["not valid YAML at line 1, column 7", "undefined alias 'nope'"]),
    ("two documents", "name: a\n---\nname: b\n", "<root>", ["line 2, column 1", "expected a single document"]),
    ("control character", "name: a\x07\n", "<root>", ["line 1, column 8: unacceptable character #x0007"]),
    (
        "not utf-8",
        b"name: x\ndescription: caf\xe9\n",
        "<root>",
        ["not UTF-8 text: 0xe9 at byte offset 24 (line 2)", "allowed: UTF-8 encoded YAML"],
    ),
    (
        "too large",
        b"#" * (MAX_FILE_BYTES + 1),
        "<root>",
        [f"the file is larger than {MAX_FILE_BYTES} bytes; allowed: at most {MAX_FILE_BYTES} bytes"],
    ),
]


def _write(folder: Path, content: str | bytes, name: str = "bad.yaml") -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(("case", "content", "key_path", "fragments"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_fail_at_load_naming_file_path_allowed_and_found(
    tmp_path: Path, case: str, content: str | bytes, key_path: str, fragments: list[str]
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key_path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.path == key_path


def test_schema_bounds_agree_with_the_loader_constants() -> None:
    props = schema()["properties"]
    count, listed = props["seeds"]["oneOf"]
    assert count["maximum"] == listed["maxItems"] == MAX_SEEDS
    assert listed["items"]["maximum"] == MAX_SEED
    label = props["agents"]["items"]["properties"]["label"]
    assert props["name"]["maxLength"] == label["maxLength"] == MAX_NAME_CHARS


def test_aliases_and_merge_keys_within_the_limit_load(tmp_path: Path) -> None:
    text = (
        "name: shared\nagents:\n"
        "  - {name: linucb, label: a, params: &p {alpha: 0.5, lam: 2.0}}\n"
        "  - {name: linucb, label: b, params: {<<: *p, alpha: 1.0}}\n" + SMALL
    )
    scenario = load_scenario(_write(tmp_path, text, "anchors.yaml"))
    assert [dict(a.params) for a in scenario.agents] == [{"alpha": 0.5, "lam": 2.0}, {"alpha": 1.0, "lam": 2.0}]


def test_alias_bomb_is_refused_by_the_cli_in_a_subprocess_without_a_run_directory(tmp_path: Path) -> None:
    """Before the loader counted alias expansion this process hung; the timeout guards the suite."""
    path = _write(tmp_path, BOMB, "bomb.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "run", str(path), "--quiet", "--no-report"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2, done.stderr
    assert f"bubblegym run: {path}: e: YAML aliases expand" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml"]


CLI_CASES = [
    ("agent param", _agents("[{name: linucb, params: {alpha: -1}}]"), "agents[0].params.alpha"),
    ("name dot dot", "name: '..'\n" + ONE_AGENT + SMALL, "name: must be 1-64 characters"),
    ("memory", HEAD + ONE_AGENT + "horizon: {steps: 1000000, users: 1000000}\n", "horizon: the run needs"),
    ("duplicate key", "name: a\nname: b\n" + ONE_AGENT + SMALL, "duplicate key 'name'"),
    ("not utf-8", b"name: caf\xe9\n", "not UTF-8 text"),
]


@pytest.mark.parametrize(("case", "content", "fragment"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_run_on_a_bad_file_leaves_no_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str, content, fragment
) -> None:
    path = _write(tmp_path, content)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(path), "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bubblegym run: {path}: "), err
    assert fragment in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no runs/, no manifest here


def _tiny(seeds: int = 2) -> dict:
    return {"name": "tiny", "agents": [{"name": "random"}], "horizon": {"steps": 5, "users": 4}, "seeds": seeds}


def test_memory_check_multiplies_the_task_estimate_by_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = parse_scenario(_tiny())
    one = task_memory_bytes(scenario) + WORKER_BASE_BYTES
    monkeypatch.setattr(scenario_module, "available_memory_bytes", lambda: int(1.5 * one))
    check_resources(scenario, workers=1)
    with pytest.raises(ScenarioError, match=r"^<dict>: horizon: the run needs an estimated .* \(2 worker\(s\) x "):
        check_resources(scenario, workers=2)
    with pytest.raises(ScenarioError, match=r"^<dict>: workers: must be an integer >= 1; found 0$"):
        check_resources(scenario, workers=0)


def test_cli_checks_memory_for_its_workers_and_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One task fits the (patched) memory, two at once do not: ``--workers 2`` on a
    two-task file fails, and so does ``--seeds 2`` on a one-task file (checked after the
    seeds change). Nothing runs and nothing is written."""
    two_tasks = _write(tmp_path, OK + "seeds: 2\n", "two.yaml")
    one_task = _write(tmp_path, OK + "seeds: 1\n", "one.yaml")
    one = task_memory_bytes(load_scenario(one_task)) + WORKER_BASE_BYTES
    monkeypatch.setattr(scenario_module, "available_memory_bytes", lambda: int(1.5 * one))
    monkeypatch.setattr(scenario_module.os, "cpu_count", lambda: 4)
    monkeypatch.chdir(tmp_path)
    for argv in (["run", str(two_tasks), "--workers", "2"], ["run", str(one_task), "--seeds", "2"]):
        assert main([*argv, "--quiet", "--no-report"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"bubblegym run: {argv[1]}: horizon: the run needs an estimated "), err
        assert "(2 worker(s) x " in err, err
    assert main(["run", str(one_task), "--seeds", "20000", "--quiet", "--no-report"]) == 2
    assert "seeds: must be a count in [1, 10000]" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.yaml", "two.yaml"]


BAD_SEEDS = [0, 10_001, [], [-1], [2**63], [1, 1]]


@pytest.mark.parametrize("seeds", BAD_SEEDS, ids=[repr(s) for s in BAD_SEEDS])
def test_with_seeds_refuses_what_the_file_may_not_hold(seeds: int | list[int]) -> None:
    with pytest.raises(ScenarioError, match=r"^<dict>: seeds: must be a count in \[1, 10000\] or at most 10000"):
        parse_scenario(_tiny()).with_seeds(seeds)


WORLDS = {
    "default": {},
    "two-slot slates, partial view": {"slate_size": 2, "n_candidates": 6, "users": {"observed_dims": 3}},
}


@pytest.mark.parametrize("overrides", WORLDS.values(), ids=list(WORLDS))
def test_memory_estimate_matches_what_a_rollout_records(overrides: dict) -> None:
    """``RECORD_LAYOUT`` names every record of a trajectory and its bytes per user-step exactly."""
    config = with_overrides(get_preset("default"), overrides)
    spec = WorldSpec.from_config(config)
    steps, users = 2, 3
    env = RecVectorEnv(users, config=config)
    traj = rollout(make_agent("random", spec), env, steps, np.random.default_rng(0), seed=0)
    assert set(traj.records) == set(RECORD_LAYOUT)
    recorded = sum(array.nbytes for array in traj.records.values())
    assert user_step_bytes(spec) * steps * users == recorded
