"""Train once, reuse: ``training.reuse`` shares one saved model; ``agents[i].model`` serves a saved one."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from experiments.runner import done_record_path, make_tasks, run_scenario
from experiments.scenario import ScenarioError, load_scenario

SCENARIO = {
    "name": "reuse",
    "description": "slateq trained once and served under every seed",
    "world": {"preset": "default", "overrides": {"catalog": {"n_items": 200}}},
    "agents": [{"name": "slateq"}],
    "horizon": {"steps": 6, "users": 8},
    "training": {"steps": 8 * 10, "users": 8, "reuse": "across_seeds"},
    "seeds": 3,
    "metrics": {"window": 3},
}


def timing_free(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in frame.columns if not c.startswith("latency_") and not c.endswith("_time_s")]]


def write(folder: Path, data: dict, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reuse")
    out = folder / "run"
    run_scenario(load_scenario(write(folder, SCENARIO)), out, workers=1, progress=False)
    return out


def test_one_model_is_trained_and_served_under_every_seed(shared: Path) -> None:
    models = sorted(p.name for p in (shared / "models").iterdir() if not p.name.endswith(".lock"))
    assert models == ["w000-slateq-v000.agent", "w000-slateq-v000.training.parquet"]
    curves = pd.read_parquet(shared / "training.parquet")
    by_seed = [group.drop(columns=["task", "seed"]).reset_index(drop=True) for _, group in curves.groupby("seed")]
    assert len(by_seed) == 3
    for other in by_seed[1:]:
        pd.testing.assert_frame_equal(other, by_seed[0])  # the one model's curve, under every seed


def test_shared_models_are_reproducible_with_parallel_workers_and_on_resume(shared: Path, tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, SCENARIO))
    out = tmp_path / "parallel"
    run_scenario(scenario, out, workers=2, progress=False)
    want = timing_free(pd.read_parquet(shared / "summary.parquet"))
    pd.testing.assert_frame_equal(timing_free(pd.read_parquet(out / "summary.parquet")), want)
    task = make_tasks(scenario)[1]
    done_record_path(out, task).unlink()
    result = run_scenario(scenario, out, workers=1, progress=False)
    assert result.ran == [task.task_id]
    pd.testing.assert_frame_equal(timing_free(pd.read_parquet(out / "summary.parquet")), want)


def test_a_later_scenario_serves_the_saved_model_to_the_same_numbers(shared: Path, tmp_path: Path) -> None:
    later = copy.deepcopy(SCENARIO)
    later["agents"] = [{"name": "slateq", "model": str(shared / "models" / "w000-slateq-v000.agent")}]
    later["training"] = {"steps": 0}
    out = tmp_path / "later"
    run_scenario(load_scenario(write(tmp_path, later)), out, workers=1, progress=False)
    columns = ["seed", "reward_per_user_step", "ctr", "cohort_engagement"]
    got = pd.read_parquet(out / "summary.parquet")[columns]
    want = pd.read_parquet(shared / "summary.parquet")[columns]
    pd.testing.assert_frame_equal(got, want)
    assert not (out / "training.parquet").exists()


def test_model_files_that_do_not_fit_are_refused_naming_why(shared: Path, tmp_path: Path) -> None:
    model = str(shared / "models" / "w000-slateq-v000.agent")
    other_world = copy.deepcopy(SCENARIO)
    other_world["world"]["overrides"]["n_candidates"] = 30
    other_world["agents"] = [{"name": "slateq", "model": model}]
    with pytest.raises(
        ScenarioError, match=r"agents\[0\]\.model: .* holds a model for the world shape .*n_candidates=20"
    ):
        load_scenario(write(tmp_path, other_world))
    other_agent = copy.deepcopy(SCENARIO)
    other_agent["agents"] = [{"name": "linucb", "model": model}]
    with pytest.raises(ScenarioError, match=r"a model of a 'linucb' agent .* found \"a 'slateq' model\""):
        load_scenario(write(tmp_path, other_agent))
    with_params = copy.deepcopy(SCENARIO)
    with_params["agents"] = [{"name": "slateq", "model": model, "params": {"discount": 0.5}}]
    with pytest.raises(ScenarioError, match=r"agents\[0\]\.params: must be absent"):
        load_scenario(write(tmp_path, with_params))
    missing = copy.deepcopy(SCENARIO)
    missing["agents"] = [{"name": "slateq", "model": "nowhere.agent"}]
    with pytest.raises(ScenarioError, match="no such agent file"):
        load_scenario(write(tmp_path, missing))
    bad_reuse = copy.deepcopy(SCENARIO)
    bad_reuse["training"]["reuse"] = "always"
    with pytest.raises(ScenarioError, match="per_task"):
        load_scenario(write(tmp_path, bad_reuse))


def test_a_changed_model_file_is_a_changed_run(shared: Path, tmp_path: Path) -> None:
    """The manifest fingerprints the served model file's content: resuming over results of
    another model under the same path is refused."""
    import shutil

    from experiments.runner import RunError

    model = tmp_path / "served.agent"
    shutil.copy(shared / "models" / "w000-slateq-v000.agent", model)
    later = copy.deepcopy(SCENARIO)
    later["agents"] = [{"name": "slateq", "model": str(model)}]
    later["training"] = {"steps": 0}
    path = write(tmp_path, later)
    run_scenario(load_scenario(path), tmp_path / "run", workers=1, progress=False)
    with open(model, "ab") as f:  # trailing bytes: the archive still reads, its content hash changes
        f.write(b"\0")
    with pytest.raises(RunError, match="computed under another setup"):
        run_scenario(load_scenario(path), tmp_path / "run", workers=1, progress=False)
