"""``bubblegym vet`` and guardrails after ``bubblegym run``, through the CLI, on tiny copies
of the shipped suite; a class of one's own (defined here) as a policy and in a scenario."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.base import Agent, Decision, Feedback, Observation
from experiments.cli import main
from experiments.scenario import ScenarioError, load_scenario, parse_scenario
from simenv import WorldSpec

SUITE = Path(__file__).resolve().parent.parent / "scenarios" / "vetting"
SUITE_NAMES = ("churn_prone", "clickbait", "cold_start", "default", "drifting_tastes", "filter_bubble")


class TopTopicPolicy(Agent):
    """Always the user's top topic: the candidates closest to the sum of the embeddings the
    user clicked (before a click: the observed part of their interests). Greedy, never
    explores: built to collapse diversity."""

    def __init__(self, spec: WorldSpec, **params: object) -> None:
        super().__init__(spec, **params)
        self.taste = np.zeros((0, spec.embedding_dim))

    def _grow(self, ids: np.ndarray) -> None:
        if ids.max(initial=-1) >= len(self.taste):
            grown = np.zeros((max(2 * len(self.taste), int(ids.max()) + 1), self.spec.embedding_dim))
            grown[: len(self.taste)] = self.taste
            self.taste = grown

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        self._grow(obs["user_id"])
        d = self.spec.embedding_dim
        taste = self.taste[obs["user_id"]]
        fresh = ~taste.any(axis=1)
        o = min(d, self.spec.user_dim)
        taste[fresh, :o] = obs["user"][fresh, :o]
        scores = np.einsum("bcd,bd->bc", obs["candidates"][:, :, :d], taste)
        scores += 1e-9 * rng.random(scores.shape)  # random tie-break
        slates = np.argsort(-scores, axis=1)[:, : self.spec.slate_size]
        return Decision(slates, np.ones(slates.shape), np.zeros(len(slates), dtype=bool))

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        rows = np.flatnonzero(feedback.clicks >= 0)
        self._grow(obs["user_id"])
        items = decision.slates[rows, feedback.clicks[rows]]
        self.taste[obs["user_id"][rows]] += obs["candidates"][rows, items, : self.spec.embedding_dim]


class NotAnAgent:
    """Has act() but is not an agents.base.Agent."""

    def act(self, obs: Observation, rng: np.random.Generator) -> None:
        return None


TOP_TOPIC = f"{__name__}:TopTopicPolicy"


def _tiny_suite(folder: Path, names: tuple[str, ...], users: int, steps: int, seeds: int) -> Path:
    """Copies of shipped suite files with a small horizon (population kept at 2 x users)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        data = yaml.safe_load((SUITE / f"{name}.yaml").read_text())
        data["horizon"] = {
            "steps": steps,
            "users": users,
            **({"population": 2 * users} if "population" in data["horizon"] else {}),
        }
        data["seeds"] = seeds
        data["metrics"] = {"window": min(steps, 20)}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def _vet(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["vet", *args, "--workers", "1", "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_shipped_vetting_files_are_scenarios_with_candidate_baseline_and_noted_guardrails(name: str) -> None:
    scenario = load_scenario(SUITE / f"{name}.yaml")
    assert {a.label for a in scenario.agents} == {"candidate", "baseline"}
    assert scenario.guardrails and all(g.note for g in scenario.guardrails)
    assert all(g.agent == "candidate" for g in scenario.guardrails)


@pytest.mark.slow
def test_collapse_policy_fails_the_filter_bubble_guardrail_two_seeds_do_not_decide(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    suite = _tiny_suite(tmp_path / "suite", ("filter_bubble",), users=48, steps=60, seeds=2)
    out = tmp_path / "out"
    code, text, _ = _vet(capsys, TOP_TOPIC, "--suite", str(suite), "--out", str(out))
    few = _entry(out, "interest_entropy_decline_final")
    assert code == 2 and "INCONCLUSIVE" in text, text
    assert few["verdict"] == "inconclusive" and few["seeds"] == 2 and few["seeds_needed"] > 2
    # more seeds in the same folder: seeds 0-1 are reused (resume), the verdict is decided
    code, text, _ = _vet(capsys, TOP_TOPIC, "--suite", str(suite), "--out", str(out), "--seeds", "6")
    many = _entry(out, "interest_entropy_decline_final")
    assert code == 1 and many["verdict"] == "fail" and many["seeds"] == 6, text
    assert many["estimate"] > 0.05 and many["kind"] == "relative" and many["baseline"] == "baseline"
    assert json.loads((out / "vet-filter-bubble" / "verdict.json").read_text())["overall"] == "fail"


def _entry(out: Path, metric: str) -> dict:
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["format"] == 1 and verdict["correction"] == "holm"
    return next(g for g in verdict["guardrails"] if g["metric"] == metric)


@pytest.mark.slow
def test_a_good_bandit_passes_the_default_scenario_of_the_suite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """LinUCB with alpha 0.8 against the incumbent LinUCB (alpha 1): every guardrail of the
    reference world passes at 48 users x 60 steps x 6 seeds (engagement lift about +0.1 %,
    lower bound about -0.6 % against -2 %; entropy and homogenisation changes under 0.01)."""
    suite = _tiny_suite(tmp_path / "suite", ("default",), users=48, steps=60, seeds=6)
    code, text, _ = _vet(capsys, "linucb:alpha=0.8", "--suite", str(suite), "--out", str(tmp_path / "out"))
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert code == 0 and verdict["overall"] == "pass", text
    assert len(verdict["guardrails"]) == 6 and "Overall: PASS" in text


@pytest.mark.slow
def test_the_incumbent_passes_every_scenario_of_the_suite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The baseline itself as the candidate: under common random numbers its paired changes
    are exactly zero on every seed (a break in the pairing would show as spread), so every
    relative guardrail passes, and the absolute thresholds are attainable."""
    suite = _tiny_suite(tmp_path / "suite", SUITE_NAMES, users=48, steps=60, seeds=2)
    code, text, _ = _vet(capsys, "linucb:alpha=1.0", "--suite", str(suite), "--out", str(tmp_path / "out"))
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert code == 0 and verdict["overall"] == "pass", text
    relative = [g for g in verdict["guardrails"] if g["kind"] == "relative"]
    assert len(verdict["guardrails"]) == 17 and len(relative) == 14
    assert all(g["estimate"] == 0.0 and g["bound"] == 0.0 for g in relative)


def test_a_saved_agent_file_is_vetted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from agents import make_agent
    from simenv import get_preset

    path = tmp_path / "model.bgagent"
    make_agent("linucb", WorldSpec.from_config(get_preset("default")), alpha=0.5).save(path)
    suite = _tiny_suite(tmp_path / "suite", ("default",), users=8, steps=6, seeds=2)
    code, text, err = _vet(capsys, str(path), "--suite", str(suite), "--out", str(tmp_path / "out"))
    assert code in (0, 1, 2) and "Guardrails: 6 check(s)" in text, err
    import pandas as pd

    summary = pd.read_parquet(tmp_path / "out" / "vet-default" / "summary.parquet")
    params = [json.loads(p) for p in summary[summary["agent"] == "candidate"]["params"]]
    assert all(p["path"] == str(path.resolve()) and p["alpha"] == 0.5 for p in params)


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ("nosuch", "policy 'nosuch': must be a registry spec"),
        ("linucb:alpha", "key=value pairs separated by commas; found 'alpha'"),
        ("linucb:alpha=-1", "linucb.alpha must be"),
        ("linucb:gamma=1", "gamma"),
        (f"{__name__}:NotAnAgent", "must be a subclass of agents.base.Agent"),
        ("no_such_module_xyz:Policy", "cannot import module 'no_such_module_xyz'"),
        (f"{__name__}:Missing", "has no attribute 'Missing'"),
        ("missing_model.bgagent", "(no such file)"),
    ],
)
def test_bad_policy_specs_are_named(capsys: pytest.CaptureFixture, policy: str, fragment: str) -> None:
    code, _, err = _vet(capsys, policy, "--suite", str(SUITE))
    assert code == 2 and fragment in err and err.startswith("bubblegym vet:"), err


def test_bad_suites_and_levels_are_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _vet(capsys, "linucb", "--suite", str(tmp_path / "nowhere"))
    assert code == 2 and "suite: must be a folder of scenario files or a shipped suite name" in err
    (tmp_path / "empty").mkdir()
    code, _, err = _vet(capsys, "linucb", "--suite", str(tmp_path / "empty"))
    assert code == 2 and "at least one scenario file" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    plain = {"name": "plain", "agents": [{"name": "random"}], "horizon": {"steps": 5, "users": 4}}
    (bad / "plain.yaml").write_text(yaml.safe_dump(plain))
    code, _, err = _vet(capsys, "linucb", "--suite", str(bad))
    assert code == 2 and "plain.yaml: agents: must be agents labelled 'candidate' and 'baseline'" in err
    labelled = {**plain, "agents": [{"name": "random", "label": "candidate"}, {"name": "random", "label": "baseline"}]}
    (bad / "plain.yaml").write_text(yaml.safe_dump(labelled))
    code, _, err = _vet(capsys, "linucb", "--suite", str(bad))
    assert code == 2 and "plain.yaml: guardrails: must be at least one guardrail" in err
    guarded = {**labelled, "guardrails": [{"metric": "ctr", "op": ">=", "threshold": 0, "agent": "baseline"}]}
    (bad / "plain.yaml").write_text(yaml.safe_dump(guarded))
    code, _, err = _vet(capsys, "linucb", "--suite", str(bad))
    assert code == 2 and "plain.yaml: guardrails[0].agent: must be 'candidate' (or absent)" in err
    guarded["guardrails"][0]["agent"] = "candidate"
    (bad / "plain.yaml").write_text(yaml.safe_dump(guarded))
    (bad / "twin.yaml").write_text(yaml.safe_dump(guarded))
    code, _, err = _vet(capsys, "linucb", "--suite", str(bad))
    assert code == 2 and "twin.yaml: name: must be a name no other file of the suite uses" in err
    code, _, err = _vet(capsys, "linucb", "--suite", str(SUITE), "--level", "1.5")
    assert code == 2 and "level must be a number in (0.5, 1)" in err


def test_own_class_in_a_scenario_runs_and_guardrails_are_judged_after_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    scenario = {
        "name": "own",
        "agents": [{"name": TOP_TOPIC}, {"name": "random"}],
        "horizon": {"steps": 6, "users": 8},
        "seeds": 2,
        "guardrails": [
            {"metric": "exploration_rate", "op": "<=", "threshold": 0.5, "agent": "TopTopicPolicy"},
            {"metric": "ctr", "op": ">=", "threshold": -1.0, "agent": "TopTopicPolicy", "baseline": "random"},
        ],
    }
    file = tmp_path / "own.yaml"
    file.write_text(yaml.safe_dump(scenario))
    assert load_scenario(file).agents[0].label == "TopTopicPolicy"
    out = tmp_path / "run"
    code = main(["run", str(file), "--out", str(out), "--workers", "1", "--quiet", "--no-report"])
    text = capsys.readouterr().out
    verdict = json.loads((out / "verdict.json").read_text())
    assert code == 0 and "Holm's correction" in text
    explore, ctr = verdict["guardrails"]
    assert (explore["verdict"], explore["estimate"], explore["kind"]) == ("pass", 0.0, "absolute")
    assert (ctr["verdict"], ctr["kind"], ctr["baseline"]) == ("pass", "relative", "random")


def test_own_class_that_is_not_an_agent_is_refused_at_load() -> None:
    data = {"name": "x", "agents": [{"name": f"{__name__}:NotAnAgent"}], "horizon": {"steps": 5, "users": 4}}
    with pytest.raises(ScenarioError, match=r"x.yaml: agents\[0\].name: .*must be a subclass of agents.base.Agent"):
        parse_scenario(data, source="x.yaml")
    data["agents"] = [{"name": "not a class:path"}]
    with pytest.raises(ScenarioError, match=r"agents\[0\].name: .*'package.module:Class'"):
        parse_scenario(data, source="x.yaml")


def test_the_documented_example_agent_runs_in_a_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "agents-custom.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 26  # the "20-line example" (plus imports and blank lines)
    (tmp_path / "mypolicies_doc.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    from experiments.rollout import rollout
    from simenv import RecVectorEnv

    data = {"name": "doc", "agents": [{"name": "mypolicies_doc:TopTopic", "params": {"rate": 2.0}}]}
    scenario = parse_scenario({**data, "horizon": {"steps": 4, "users": 6}})
    from agents import make_agent

    env = RecVectorEnv(6, config=scenario.world_config())
    agent = make_agent("mypolicies_doc:TopTopic", WorldSpec.from_config(env.config), rate=2.0)
    traj = rollout(agent, env, 4, np.random.default_rng(0), seed=0)
    assert agent.params == {"agent": "mypolicies_doc:TopTopic", "rate": 2.0}
    assert np.abs(agent.taste).sum() > 0 and traj.records["explored"].sum() == 0


def test_a_run_does_not_resume_across_edits_to_an_own_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments.runner import RunError, run_scenario

    doc = (Path(__file__).resolve().parent.parent / "docs" / "agents-custom.md").read_text()
    module = tmp_path / "mypolicies_edit.py"
    module.write_text(doc.split("```python\n", 1)[1].split("```", 1)[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    data = {"name": "edit", "agents": [{"name": "mypolicies_edit:TopTopic"}], "horizon": {"steps": 3, "users": 4}}
    run_scenario(parse_scenario(data), tmp_path / "run", workers=1, progress=False)
    module.write_text(module.read_text() + "\n# edited\n")
    with pytest.raises(RunError, match="another setup: the resolved agent parameters"):
        run_scenario(parse_scenario(data), tmp_path / "run", workers=1, progress=False)
