"""Training curves: recorded while agents train, written by the runner, checksummed, drawn."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from agents import make_agent
from agents.training_log import CURVE_POINTS, TrainingCurve
from experiments.runner import TRAINING, file_sha256, load_manifest, make_tasks, run_scenario, task_file
from experiments.scenario import ScenarioError, load_scenario
from simenv import RecVectorEnv, WorldSpec

SCENARIO = {
    "name": "curves",
    "description": "a tiny scenario whose slateq trains first",
    "world": {"preset": "default", "overrides": {"catalog": {"n_items": 200}}},
    "agents": [{"name": "random"}, {"name": "slateq"}],
    "horizon": {"steps": 6, "users": 8},
    "training": {"steps": 8 * 20, "users": 8},
    "seeds": 2,
    "metrics": {"window": 3},
}


def test_a_curve_row_is_the_interval_mean_and_the_cohorts_engagement() -> None:
    """Two steps per row (4 steps planned, CURVE_POINTS rows at most); by hand."""
    curve = TrainingCurve(2 * CURVE_POINTS)
    assert curve.interval == 2
    curve.step(np.array([1.0, 3.0]), np.array([10, 11]), loss=2.0)  # cohort {10, 11}
    curve.step(np.array([5.0, 7.0]), np.array([10, 12]), loss=4.0)  # user 11 churned, 12 is new
    curve.step(np.array([0.0, 2.0]), np.array([10, 12]))
    curve.flush()
    first, second = curve.rows
    assert first == {"step": 4.0, "reward_per_user_step": 4.0, "cohort_engagement": (1 + 3 + 5) / (2 * 2), "loss": 3.0}
    assert second == {"step": 6.0, "reward_per_user_step": 1.0, "cohort_engagement": 0.0 / 2}
    assert math.isnan(curve.columns()["loss"][1])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "curves.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    out = tmp_path_factory.mktemp("runs") / "curves"
    run_scenario(load_scenario(path), out, workers=1, progress=False)
    return out


def test_the_runner_writes_the_training_curves_beside_the_results(run_dir: Path) -> None:
    curves = pd.read_parquet(run_dir / TRAINING)
    assert set(curves["agent"]) == {"slateq"} and sorted(set(curves["seed"])) == [0, 1]
    per_task = curves.groupby("task")["step"]
    assert (per_task.max() == 160.0).all() and (per_task.count() == 20).all()  # 20 steps of 8 users, a row each
    assert {"reward_per_user_step", "cohort_engagement", "td_loss"} <= set(curves.columns)
    assert np.isfinite(curves["reward_per_user_step"]).all()
    manifest = load_manifest(run_dir)
    assert manifest["outputs"][TRAINING] == file_sha256(run_dir / TRAINING)


def test_a_damaged_curve_is_recomputed_to_the_same_numbers(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "curves.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    scenario = load_scenario(path)
    task = next(t for t in make_tasks(scenario) if t.label == "slateq")
    damaged = task_file(run_dir, task, "training")
    before = pd.read_parquet(run_dir / TRAINING)
    damaged.write_bytes(damaged.read_bytes()[:-10])
    result = run_scenario(scenario, run_dir, workers=1, progress=False)
    assert result.ran == [task.task_id]
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / TRAINING), before)


def test_ppo_records_reward_entropy_and_losses_while_it_trains() -> None:
    env = RecVectorEnv(4, preset="default")
    agent = make_agent("ppo", WorldSpec.from_config(env.config), n_envs=4, n_steps=8, batch_size=16)
    agent.train(env.config, 4 * 8 * 3, seed=0)
    columns = agent.training_curve.columns()
    assert columns["step"][-1] == 96.0
    assert {"reward_per_user_step", "cohort_engagement", "entropy", "value_loss", "policy_loss"} <= set(columns)
    entropy = [v for v in columns["entropy"] if not math.isnan(v)]
    assert entropy and all(0 < v <= 5 * math.log(20) + 1e-6 for v in entropy)  # at most k log C nats


def test_the_report_draws_the_training_curves(run_dir: Path) -> None:
    from experiments.report import write_report

    files = write_report(run_dir)
    assert files.figures["training"].exists() and files.figures["training"].stat().st_size > 5_000
    assert "figures/training.png" in files.markdown.read_text()


def test_tensorboard_logs_land_in_the_run_directory_when_asked(tmp_path: Path) -> None:
    data = {
        **SCENARIO,
        "agents": [{"name": "ppo", "params": {"n_envs": 4, "n_steps": 8, "batch_size": 16}}],
        "training": {"steps": 64, "users": 4, "tensorboard": True},
        "seeds": 1,
    }
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(data))
    run_scenario(load_scenario(path), tmp_path / "run", workers=1, progress=False)
    events = list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == 1
    assert len(pd.read_parquet(tmp_path / "run" / TRAINING)) == 16  # 64 / 4 sessions = 16 steps, a row each


def test_tensorboard_without_the_package_is_refused_naming_the_extra(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else find_spec(name, *a)
    )
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump({**SCENARIO, "training": {"steps": 8, "tensorboard": True}}))
    with pytest.raises(ScenarioError, match=r"training.tensorboard: .*pip install 'bubblegym\[tensorboard\]'"):
        load_scenario(path)
