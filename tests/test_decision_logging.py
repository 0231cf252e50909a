"""Decision logs from the simulator: the recorder against the trajectory, an oracle-free world,
and ``bubblegym run`` writing logs per task atomically and resume-safely."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from agents import make_agent
from experiments import metrics
from experiments.logs import read_log
from experiments.rollout import DecisionRecorder, rollout
from experiments.runner import RunError, make_tasks, run_scenario, task_problem
from experiments.scenario import load_scenario
from simenv import RecVectorEnv, WorldSpec

ARRIVALS = {"catalog": {"n_items": 300, "arrival_rate": 3.0, "fresh_share": 0.2}, "n_candidates": 10}


class _Candidates:
    """Keeps a copy of each step's candidate features (what the log must reproduce)."""

    def __init__(self) -> None:
        self.features: list[np.ndarray] = []

    def observe(self, env: Any, obs: dict, decision: Any, reward: Any, ended: Any, info: Any) -> None:
        self.features.append(obs["candidates"].copy())


def test_recorder_log_equals_the_trajectory_on_an_oracle_free_world_with_arrivals(tmp_path: Path) -> None:
    env = RecVectorEnv(6, oracle=False, overrides=ARRIVALS)
    agent = make_agent("linear_egreedy", WorldSpec.from_config(env.config), epsilon=0.3)
    recorder, seen = DecisionRecorder(tmp_path / "x", env, agent.params, rows_per_group=20), _Candidates()
    traj = rollout(agent, env, 25, np.random.default_rng(1), seed=3, observers=[recorder, seen])
    recorder.close()
    log = read_log(tmp_path / "x")
    t, b, k = traj.records["slate"].shape
    assert log.n == t * b and log.slate_size == k and log.n_candidates == 10
    np.testing.assert_array_equal(log.step, np.repeat(np.arange(t), b))
    np.testing.assert_array_equal(log.user_id, traj.records["user_id"].reshape(-1))
    np.testing.assert_array_equal(log.slate_item_ids(), traj.records["slate_items"].reshape(-1, k))
    np.testing.assert_array_equal(log.propensity, traj.records["propensity"].reshape(-1, k))
    np.testing.assert_array_equal(log.click, traj.records["click"].reshape(-1))
    np.testing.assert_allclose(log.reward, traj.records["reward"].reshape(-1))
    np.testing.assert_allclose(log.expected_reward, traj.records["expected_reward"].reshape(-1))
    # the items table plus the per-decision fresh flag give back every candidate's features
    np.testing.assert_array_equal(log.candidate_features(), np.concatenate(seen.features))
    assert log.candidate_fresh.any() and not log.candidate_fresh.all()
    # sessions: a new id after each end, steps within a session count from 0
    ended = (log.terminated | log.truncated).reshape(t, b)
    assert ended.any()
    sessions = log.session_id.reshape(t, b)
    np.testing.assert_array_equal(sessions[1:] != sessions[:-1], ended[:-1])
    assert log.metadata.logging_policy["agent"] == "linear_egreedy" and log.metadata.propensity_kind == "conditional"
    # no oracle: the metrics say regret is NaN and say why; the rest is computed
    assert "regret is NaN" in traj.notes[0]
    _, summary = metrics.metrics_tables(traj, 5, catalog_size=300, choice_beta=env.config.choice.beta)
    assert np.isnan(summary["regret"]) and np.isfinite(summary["reward_per_user_step"])


TINY = {
    "name": "tiny_logs",
    "world": {"preset": "default", "overrides": {"catalog": {"n_items": 200}}},
    "agents": [{"name": "linear_egreedy", "params": {"epsilon": 0.2}}],
    "horizon": {"steps": 10, "users": 8},
    "seeds": 1,
    "metrics": {"window": 5},
    "logging": {"decisions": True},
}
TASK = "w000-linear_egreedy-v000-s0"


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_run_writes_a_log_per_task_and_a_damaged_log_makes_the_task_pending(tiny_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    scenario = load_scenario(tiny_file)
    assert scenario.log_decisions and scenario.to_dict()["logging"] == {"decisions": True}
    summary = run_scenario(scenario, out, workers=1, progress=False)
    log = read_log(out / "logs" / TASK)
    assert log.n == 80 and log.metadata.world["world_seed"] > 0
    assert log.reward.mean() == pytest.approx(summary.summary["reward_per_user_step"].iloc[0], rel=1e-6)
    assert sorted(p.name for p in (out / "logs").iterdir()) == [f"{TASK}.decisions.parquet", f"{TASK}.items.parquet"]
    # a truncated log is noticed on resume and the task recomputed, to the same bytes
    decisions = out / "logs" / f"{TASK}.decisions.parquet"
    good = decisions.read_bytes()
    decisions.write_bytes(good[:100])
    assert "has 100 bytes" in task_problem(out, make_tasks(scenario)[0])
    run_scenario(scenario, out, workers=1, progress=False)
    assert decisions.read_bytes() == good
    # without logging, the fingerprint (and so the file format of old runs) is unchanged
    plain = load_scenario(tiny_file).__class__(**{**load_scenario(tiny_file).__dict__, "log_decisions": False})
    assert "logging" not in plain.to_dict()


def test_a_failed_task_leaves_no_log(tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("experiments.rollout")
    real = module.rollout

    def poisoned(*args: Any, **kwargs: Any) -> Any:
        traj = real(*args, **kwargs)
        traj.records["reward"][2, 1] = np.nan
        return traj

    monkeypatch.setattr(module, "rollout", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(RunError, match=re.escape(f"task {TASK}: non-finite value nan")):
        run_scenario(load_scenario(tiny_file), out, workers=1, progress=False)
    assert list((out / "logs").iterdir()) == []


def test_the_scenario_refuses_unknown_logging_keys(tmp_path: Path) -> None:
    from experiments.scenario import ScenarioError

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TINY, "logging": {"decisions": True, "clicks": True}}))
    with pytest.raises(ScenarioError, match="logging"):
        load_scenario(path)


def test_rollout_lives_in_experiments_only() -> None:
    import agents

    assert not hasattr(agents, "rollout") and not hasattr(agents, "Trajectory")
    assert not (Path(agents.__file__).parent / "rollout.py").exists()


def test_bench_logging_runs_and_reports_its_targets(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_logging", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_logging.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.main(["--users", "32", "--steps", "3", "--candidates", "10", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "B per decision" in out and "overhead" in out and figures["bytes_per_decision"] > 0
