"""Scenario files: shipped files validate, bad files give the documented errors, grids expand."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import yaml

from experiments.runner import make_tasks
from experiments.scenario import (
    SCHEMA_PATH,
    FrozenMap,
    ScenarioError,
    load_scenario,
    parse_scenario,
    shipped_scenarios,
)

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SHIPPED = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))

MINIMAL = {"name": "mini", "agents": [{"name": "random"}], "horizon": {"steps": 20, "users": 4}}
REQUIRED_SCENARIOS = {
    "default",
    "filter_bubble",
    "exploration_sweep",
    "cold_start",
    "drifting_tastes",
    "churn",
    "bandits_vs_deep_rl",
}


def test_the_required_scenarios_are_shipped() -> None:
    assert REQUIRED_SCENARIOS <= set(SHIPPED)
    assert shipped_scenarios() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_validates_against_schema_and_registry(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml", check_agents=True)
    assert scenario.name == name
    # the file-format dict validates again and describes the same experiment
    again = parse_scenario(scenario.to_dict(), source="roundtrip")
    assert again.fingerprint() == scenario.fingerprint()
    assert again.seeds == scenario.seeds


def test_schema_ships_inside_the_package() -> None:
    assert SCHEMA_PATH.parent.name == "experiments"
    assert json.loads(SCHEMA_PATH.read_text())["title"] == "BubbleGym scenario"


def _with(change: dict, remove: tuple[str, ...] = ()) -> dict:
    data = json.loads(json.dumps(MINIMAL))
    for key in remove:
        data.pop(key)
    data.update(change)
    return data


# (case id, scenario dict or raw YAML text, key path in the message, fragments of allowed/found)
BAD_FILES = [
    ("steps zero", _with({"horizon": {"steps": 0, "users": 4}}), "horizon.steps", ["an integer >= 1", "found 0"]),
    ("users text", _with({"horizon": {"steps": 5, "users": "many"}}), "horizon.users", ["an integer", "'many'"]),
    ("unknown top key", _with({"horizn": {}}), "horizn", ["unknown key 'horizn'", "'horizon'"]),
    ("missing agents", _with({}, remove=("agents",)), "agents", ["required key 'agents' is missing"]),
    ("no agents", _with({"agents": []}), "agents", ["at least 1 item"]),
    ("agent typo key", _with({"agents": [{"name": "random", "parms": {}}]}), "agents[0].parms", ["unknown key"]),
    ("unknown agent", _with({"agents": [{"name": "nope"}]}), "agents[0].name", ["a registered agent", "'nope'"]),
    (
        "unknown agent param",
        _with({"agents": [{"name": "linucb", "params": {"alpah": 1.0}}]}),
        "agents[0].params.alpah",
        ["a parameter of 'linucb'", "'alpha'"],
    ),
    (
        "duplicate label",
        _with({"agents": [{"name": "linucb"}, {"name": "linucb"}]}),
        "agents[1].label",
        ["not used by an earlier agent", "'linucb'"],
    ),
    ("bad label", _with({"agents": [{"name": "random", "label": "a b"}]}), "agents[0].label", ["matching"]),
    ("unknown preset", _with({"world": {"preset": "nope"}}), "world.preset", ["'filter_bubble'", "found 'nope'"]),
    (
        "override out of range",
        _with({"world": {"overrides": {"dynamics": {"amplification": 2}}}}),
        "world.overrides",
        ["dynamics.amplification", "[0, 1]", "got 2"],
    ),
    (
        "override unknown field",
        _with({"world": {"overrides": {"dynamics": {"amplify": 0.1}}}}),
        "world.overrides",
        ["unknown field(s) ['amplify']", "allowed"],
    ),
    ("seeds zero", _with({"seeds": 0}), "seeds", ["a count", "found 0"]),
    ("seeds repeated", _with({"seeds": [1, 1]}), "seeds", ["a count", "[1, 1]"]),
    ("window too long", _with({"metrics": {"window": 50}}), "metrics.window", ["[1, horizon.steps = 20]", "50"]),
    (
        "cadence",
        _with({"conditions": {"cadence": "sometimes"}}),
        "conditions.cadence",
        ["one of ['online', 'batched']", "'sometimes'"],
    ),
    ("negative delay", _with({"conditions": {"feedback_delay": -1}}), "conditions.feedback_delay", [">= 0", "-1"]),
    ("freeze after end", _with({"conditions": {"freeze_after": 21}}), "conditions.freeze_after", ["[0, horizon"]),
    (
        "retrain while online",
        _with({"conditions": {"retrain_every": 5}}),
        "conditions.retrain_every",
        ["cadence: batched", "found 5"],
    ),
    (
        "guardrail op",
        _with({"guardrails": [{"metric": "retention", "op": "==", "threshold": 1}]}),
        "guardrails[0].op",
        ["one of ['<', '<=', '>', '>=', 'within']", "'=='"],
    ),
    (
        "guardrail metric",
        _with({"guardrails": [{"metric": "happiness", "op": ">", "threshold": 1}]}),
        "guardrails[0].metric",
        ["a metric name", "'happiness'"],
    ),
    ("sweep path", _with({"sweep": {"dynamics.drift": [0.1]}}), "sweep", ["conditions.<field>", "'dynamics.drift'"]),
    ("sweep empty", _with({"sweep": {"world.dynamics.drift": []}}), "sweep.world.dynamics.drift", ["at least 1"]),
    (
        "sweep world value",
        _with({"sweep": {"world.dynamics.drift": [0.1, -1.0]}}),
        "sweep.world.dynamics.drift",
        ["dynamics.drift", "got -1.0"],
    ),
    (
        "sweep unknown label",
        _with({"sweep": {"agents.linucb.alpha": [1.0]}}),
        "sweep.agents.linucb.alpha",
        ["with a label in ['random']"],
    ),
    (
        "sweep unknown param",
        _with({"agents": [{"name": "linucb"}], "sweep": {"agents.linucb.alpah": [1.0]}}),
        "sweep.agents.linucb.alpah",
        ["a parameter of 'linucb'"],
    ),
    (
        "sweep condition value",
        _with({"sweep": {"conditions.freeze_after": [10, 99]}}),
        "sweep.conditions.freeze_after",
        ["[0, horizon.steps = 20]", "99"],
    ),
    (
        "population below users",
        _with({"horizon": {"steps": 5, "users": 4, "population": 2}}),
        "horizon.population",
        [">= horizon.users"],
    ),
    ("not yaml", "name: [unclosed", "<root>", ["not valid YAML"]),
    ("not a mapping", "- just\n- a list\n", "<root>", ["a mapping"]),
]


@pytest.mark.parametrize(("case", "content", "key_path", "fragments"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_errors_name_file_key_path_allowed_and_found(
    tmp_path: Path, case: str, content: dict | str, key_path: str, fragments: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key_path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.path == key_path


def test_missing_file_lists_the_shipped_scenarios(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"shipped scenario name.*'default'"):
        load_scenario(tmp_path / "nope.yaml")


def test_shipped_scenario_found_by_name() -> None:
    assert load_scenario("exploration_sweep").name == "exploration_sweep"


def test_defaults_and_whole_floats() -> None:
    data = _with({"horizon": {"steps": 20.0, "users": 4}, "seeds": 3})
    scenario = parse_scenario(data)
    assert scenario.horizon.steps == 20 and isinstance(scenario.horizon.steps, int)
    assert scenario.seeds == (0, 1, 2)
    assert scenario.agents[0].label == "random"
    assert scenario.conditions.cadence == "online" and scenario.conditions.freeze_after is None
    assert scenario.world_config() == scenario.world_config({})


def test_exploration_sweep_multiplies_only_the_swept_agent() -> None:
    scenario = load_scenario("exploration_sweep")
    tasks = make_tasks(scenario)
    seeds = len(scenario.seeds)
    by_agent = {label: [t for t in tasks if t.label == label] for label in ("random", "egreedy")}
    assert len(by_agent["random"]) == seeds
    assert len(by_agent["egreedy"]) == 6 * seeds
    epsilons = sorted({t.variant["epsilon"] for t in by_agent["egreedy"]})
    assert epsilons == [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]
    assert len({t.task_id for t in tasks}) == len(tasks)


def test_world_and_condition_sweeps_form_a_grid() -> None:
    data = _with(
        {
            "agents": [{"name": "random"}, {"name": "linucb"}],
            "world": {"preset": "filter_bubble", "overrides": {"dynamics": {"drift": 0.01}}},
            "sweep": {"world.dynamics.amplification": [0.0, 0.2], "conditions.freeze_after": [None, 10]},
            "seeds": 2,
        }
    )
    scenario = parse_scenario(data)
    points = scenario.world_points()
    assert len(points) == 4
    assert len(make_tasks(scenario)) == 4 * 2 * 2
    point = {"dynamics.amplification": 0.2, "conditions.freeze_after": 10}
    config = scenario.world_config(point)
    assert config.dynamics.amplification == 0.2
    assert config.dynamics.drift == 0.01  # the file's override survives the sweep
    assert config.dynamics.satiation == 0.0  # and so does the preset
    assert scenario.conditions_at(point).freeze_after == 10
    assert scenario.conditions_at({}).freeze_after is None


def test_population_goes_into_the_world() -> None:
    scenario = parse_scenario(_with({"horizon": {"steps": 5, "users": 4, "population": 9}}))
    assert scenario.world_config().users.population_size == 9


def test_fingerprint_ignores_seeds_but_not_the_experiment() -> None:
    base = parse_scenario(MINIMAL)
    assert base.with_seeds(5).fingerprint() == base.fingerprint()
    assert base.with_seeds(5).seeds == (0, 1, 2, 3, 4)
    other = parse_scenario(_with({"horizon": {"steps": 21, "users": 4}}))
    assert other.fingerprint() != base.fingerprint()


def test_scenario_is_frozen_hashable_and_picklable() -> None:
    scenario = parse_scenario(_with({"agents": [{"name": "linucb", "params": {"alpha": 0.5}}]}))
    with pytest.raises(AttributeError):
        scenario.name = "other"  # type: ignore[misc]
    params = scenario.agents[0].params
    assert isinstance(params, FrozenMap) and params["alpha"] == 0.5
    with pytest.raises(TypeError):
        params["alpha"] = 1.0  # type: ignore[index]
    assert hash(scenario) == hash(pickle.loads(pickle.dumps(scenario)))
    assert pickle.loads(pickle.dumps(scenario)) == scenario
