"""The runner, results, report and CLI end to end on a tiny scenario."""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from agents.base import Agent, Decision, Feedback
from experiments.cli import main
from experiments.report import (
    compare_runs,
    draw_figures,
    figure_notes,
    load_run,
    paired_differences,
    plot_retention,
    summary_table,
    t_interval,
    write_report,
)
from experiments.runner import (
    RunError,
    ScheduledLearner,
    SeedPlan,
    make_tasks,
    run_scenario,
    task_done,
)
from experiments.scenario import Conditions, load_scenario
from simenv import WorldSpec

TINY = {
    "name": "tiny",
    "description": "a tiny test scenario",
    "world": {"preset": "default", "overrides": {"catalog": {"n_items": 200}}},
    "agents": [{"name": "random"}, {"name": "linucb"}],
    "horizon": {"steps": 12, "users": 8},
    "seeds": 2,
    "metrics": {"window": 4},
}


def timing_free(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop the columns that measure wall time (never reproducible)."""
    return frame[[c for c in frame.columns if not c.startswith("latency_") and not c.endswith("_time_s")]]


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def tiny_run(tiny_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run_scenario(load_scenario(tiny_file), out, workers=1, progress=False)
    return out


# --------------------------------------------------------------------------- results


def test_run_writes_manifest_and_tidy_tables(tiny_run: Path) -> None:
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["scenario"]["name"] == "tiny"
    assert manifest["seeds"]["run_seeds"] == [0, 1]
    assert manifest["versions"]["numpy"] == np.__version__
    assert "commit" in manifest["git"]
    assert manifest["resolved"]["worlds"][0]["config"]["catalog"]["n_items"] == 200
    assert {a["label"] for a in manifest["resolved"]["agents"]} == {"random", "linucb"}
    assert set(manifest["timings"]["task_wall_s"]) == set(manifest["tasks"])

    summary = pd.read_parquet(tiny_run / "summary.parquet")
    windows = pd.read_parquet(tiny_run / "windows.parquet")
    assert len(summary) == 2 * 2  # agents x seeds
    assert len(windows) == 2 * 2 * 3  # agents x seeds x (12 steps / window 4)
    assert list(summary["agent"]) == ["random", "random", "linucb", "linucb"]
    assert windows["step_end"].max() == 12
    assert {"reward_per_user_step", "exploration_rate", "interest_entropy", "retention"} <= set(windows.columns)
    # the random policy explores on every decision
    assert (summary.loc[summary["agent"] == "random", "exploration_rate"] == 1.0).all()
    assert len(list((tiny_run / "tasks").glob("*.parquet"))) == 2 * len(summary)


def test_common_random_numbers_share_world_seeds_across_agents(tiny_run: Path) -> None:
    summary = pd.read_parquet(tiny_run / "summary.parquet")
    per_seed = summary.groupby("seed")["world_seed"].nunique()
    assert (per_seed == 1).all()
    assert summary["world_seed"].nunique() == 2
    assert SeedPlan.from_seed(0).world_seed == SeedPlan.from_seed(0).world_seed != SeedPlan.from_seed(1).world_seed


def test_same_seed_reproduces_identical_numbers_in_spawned_workers(
    tiny_file: Path, tiny_run: Path, tmp_path: Path
) -> None:
    again = run_scenario(load_scenario(tiny_file), tmp_path / "again", workers=2, progress=False)
    pd.testing.assert_frame_equal(timing_free(again.summary), timing_free(load_run(tiny_run).summary))
    pd.testing.assert_frame_equal(timing_free(again.windows), timing_free(load_run(tiny_run).windows))


def test_resume_after_interruption_matches_uninterrupted_run(tiny_file: Path, tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "interrupted"
    shutil.copytree(tiny_run, copy)
    for name in ("windows.parquet", "summary.parquet"):
        (copy / name).unlink()
    victim = make_tasks(load_scenario(tiny_file))[2]
    (copy / "tasks" / f"{victim.task_id}.windows.parquet").unlink()
    # a half-written file left by a killed worker must not count as a result
    (copy / "tasks" / f".{victim.task_id}.windows.parquet.tmp-1-dead").write_bytes(b"PAR1 garbage")
    assert not task_done(copy, victim)

    resumed = run_scenario(load_scenario(tiny_file), copy, workers=1, progress=False)
    assert resumed.ran == [victim.task_id]
    assert len(resumed.skipped) == 3
    assert not list((copy / "tasks").glob(".*tmp*"))
    pd.testing.assert_frame_equal(timing_free(resumed.summary), timing_free(load_run(tiny_run).summary))
    pd.testing.assert_frame_equal(timing_free(resumed.windows), timing_free(load_run(tiny_run).windows))


def test_more_seeds_resume_into_the_same_directory(tiny_file: Path, tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "more"
    shutil.copytree(tiny_run, copy)
    more = run_scenario(load_scenario(tiny_file).with_seeds(3), copy, workers=1, progress=False)
    assert sorted(more.ran) == sorted(t for t in more.ran if t.endswith("-s2")) and len(more.ran) == 2
    assert sorted(more.summary["seed"].unique()) == [0, 1, 2]


def test_a_different_scenario_is_never_written_over(tiny_file: Path, tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "taken"
    shutil.copytree(tiny_run, copy)
    other_file = tmp_path / "other.yaml"
    other_file.write_text(yaml.safe_dump({**TINY, "horizon": {"steps": 8, "users": 8}}))
    before = (copy / "summary.parquet").read_bytes()
    with pytest.raises(RunError, match=r"different scenario.*--force"):
        run_scenario(load_scenario(other_file), copy, workers=1, progress=False)
    assert (copy / "summary.parquet").read_bytes() == before
    forced = run_scenario(load_scenario(other_file), copy, workers=1, progress=False, force=True)
    assert len(forced.ran) == 4 and forced.windows["step_end"].max() == 8


def test_a_foreign_non_empty_directory_is_refused(tiny_file: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="no BubbleGym manifest"):
        run_scenario(load_scenario(tiny_file), tmp_path, workers=1, progress=False)


@pytest.mark.slow
def test_ray_backend_gives_the_local_numbers(tiny_file: Path, tiny_run: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'bubblegym[ray]')")
    result = run_scenario(load_scenario(tiny_file), tmp_path / "ray", workers=2, backend="ray", progress=False)
    pd.testing.assert_frame_equal(timing_free(result.summary), timing_free(load_run(tiny_run).summary))


def test_unknown_backend_is_refused(tiny_file: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"backend must be one of \['local', 'ray'\]; got 'spark'"):
        run_scenario(load_scenario(tiny_file), tmp_path, backend="spark")


# --------------------------------------------------------------------------- operating conditions


class _Recorder(Agent):
    """Serves the first k candidates; records at which step each step's feedback arrives."""

    name = "recorder"

    def __init__(self, spec: WorldSpec) -> None:
        super().__init__(spec)
        self.now = 0
        self.arrivals: list[tuple[int, int]] = []  # (step delivered at, step of the feedback)

    def act(self, obs: dict, rng: np.random.Generator) -> Decision:
        b = obs["user"].shape[0]
        slates = np.tile(np.arange(self.spec.slate_size), (b, 1))
        return Decision(slates, np.ones(slates.shape), np.zeros(b, dtype=bool))

    def update(self, obs: dict, decision: Decision, feedback: Feedback) -> None:
        self.arrivals.append((self.now, int(obs["user"][0, 0])))


def _drive(conditions: Conditions, steps: int = 10) -> list[tuple[int, int]]:
    spec = WorldSpec(n_candidates=4, slate_size=2, user_dim=1, item_dim=3, embedding_dim=2, n_topics=2)
    inner = _Recorder(spec)
    learner = ScheduledLearner(inner, conditions)
    obs = {"user": np.zeros((1, 1), dtype=np.float32)}
    for t in range(steps):
        inner.now = t
        obs["user"][0, 0] = t  # the env reuses its buffers: queued observations must be copies
        decision = learner.act(obs, np.random.default_rng(0))
        learner.update(obs, decision, Feedback(np.array([0]), np.array([1.0])))
    return inner.arrivals


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (Conditions(), [(t, t) for t in range(10)]),
        (Conditions(feedback_delay=3), [(t + 3, t) for t in range(7)]),
        (Conditions(cadence="batched", retrain_every=4), [(3, t) for t in range(4)] + [(7, t) for t in range(4, 8)]),
        (
            Conditions(cadence="batched", retrain_every=4, feedback_delay=2),
            [(3, 0), (3, 1), (7, 2), (7, 3), (7, 4), (7, 5)],
        ),
        (Conditions(freeze_after=4), [(t, t) for t in range(4)]),
        (Conditions(freeze_after=4, feedback_delay=2), [(2, 0), (3, 1)]),
        (Conditions(freeze_after=0), []),
    ],
    ids=["online", "delay 3", "batched 4", "batched 4 delay 2", "freeze 4", "freeze 4 delay 2", "never learn"],
)
def test_operating_conditions_deliver_feedback_on_schedule(
    conditions: Conditions, expected: list[tuple[int, int]]
) -> None:
    assert _drive(conditions) == expected


# --------------------------------------------------------------------------- statistics and report


def test_t_interval_matches_hand_computation() -> None:
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    # s = 1, t_{0.975, 2} = 4.302653
    assert mean == 2.0
    assert high - mean == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    assert low == pytest.approx(2 * mean - high)
    assert t_interval([5.0]) == (5.0, 5.0, 5.0)
    assert np.isnan(t_interval([np.nan])[0])


def test_paired_differences_pair_by_seed() -> None:
    summary = pd.DataFrame(
        {
            "world_label": [""] * 6,
            "arm": ["random"] * 3 + ["linucb"] * 3,
            "agent": ["random"] * 3 + ["linucb"] * 3,
            "variant": [""] * 6,
            "seed": [0, 1, 2] * 2,
            "reward_per_user_step": [1.0, 2.0, 3.0, 2.0, 3.5, 4.0],
        }
    )
    diffs = paired_differences(summary, "random", ["reward_per_user_step"])
    row = diffs.iloc[0]
    assert row["arm"] == "linucb" and row["pairs"] == 3
    assert row["diff"] == pytest.approx(np.mean([1.0, 1.5, 1.0]))
    assert row["high"] - row["diff"] == pytest.approx(4.302653 * np.std([1.0, 1.5, 1.0], ddof=1) / np.sqrt(3), rel=1e-6)
    table = summary_table(summary, ["reward_per_user_step"])
    assert table.set_index("arm").loc["linucb", "mean"] == pytest.approx(9.5 / 3)
    with pytest.raises(RunError, match="baseline 'oracle' is not in this run"):
        paired_differences(summary, "oracle")


def test_report_writes_figures_markdown_and_self_contained_html(tiny_run: Path) -> None:
    files = write_report(tiny_run, baseline="random")
    names = set(files.figures)
    assert names == {
        "paired_differences",
        "trajectory_cohort_engagement",
        "trajectory_interest_entropy",
        "trajectory_homogenization_cosine",
        "exploration_vs_engagement",
        "diversity_vs_engagement",
    }  # no churn in the default world: the flat retention figure is left out, with a note
    for path in files.figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = files.markdown.read_text()
    assert "| reward_per_user_step ↑ |" in markdown and "(arm − random)" in markdown
    assert "Retention figure left out" in markdown
    page = files.html.read_text()
    assert "Retention figure left out" in page
    images = page.split("src='data:image/png;base64,")[1:]
    assert len(images) == len(names)
    assert base64.b64decode(images[0].split("'")[0])[:4] == b"\x89PNG"
    assert "src='figures/" not in page and "<table" in page


def test_retention_figure_is_the_cohort_survival_curve_when_users_churn(tiny_run: Path) -> None:
    import matplotlib.pyplot as plt

    run = load_run(tiny_run)
    assert set(figure_notes(run)) == {"retention"}
    ends = run.windows["step_end"]
    run.windows["retention"] = np.where(run.windows["agent"] == "random", 1.0 - ends / 24, 1.0)
    assert figure_notes(run) == {}
    figures = draw_figures(run)
    assert "retention" in figures
    lines = [line for line in plot_retention(run).axes[0].get_lines() if len(line.get_xdata()) > 1]
    assert len(lines) == 2  # one survival curve per arm
    for line in lines:
        assert line.get_xdata()[0] == 0 and line.get_ydata()[0] == 1.0  # from 1 at step 0
    assert min(line.get_ydata()[-1] for line in lines) == pytest.approx(0.5)
    plt.close("all")


def test_report_with_an_unknown_baseline_fails_and_keeps_the_report(tiny_run: Path) -> None:
    files = write_report(tiny_run, baseline="random")
    before = files.html.read_bytes(), files.markdown.read_bytes()
    with pytest.raises(RunError, match=r"baseline 'oracle' is not an arm of this run; allowed: random, linucb"):
        write_report(tiny_run, baseline="oracle")
    assert (files.html.read_bytes(), files.markdown.read_bytes()) == before


def test_compare_pairs_identical_runs_to_zero(tiny_run: Path) -> None:
    table = compare_runs(tiny_run, tiny_run)
    assert set(table["arm"]) == {"random", "linucb"}
    assert table["paired"].all()
    assert np.allclose(table["diff"].dropna(), 0.0)


# --------------------------------------------------------------------------- CLI


def test_cli_run_prints_the_summary_then_resumes(
    tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    assert main(["run", str(tiny_file), "--out", str(out), "--workers", "1", "--seeds", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "ran 2 task(s)" in text and "reward_per_user_step" in text and "linucb" in text
    assert main(["run", str(tiny_file), "--out", str(out), "--workers", "1", "--seeds", "1", "--quiet"]) == 0
    assert "ran 0 task(s), 2 already done" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").exists()
    assert main(["compare", str(out), str(out)]) == 0
    assert "B - A [95% CI]" in capsys.readouterr().out


def test_cli_reports_bad_scenarios_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "horizon": {"steps": 0, "users": 8}}))
    assert main(["run", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert f"bubblegym run: {bad}: horizon.steps: must be an integer >= 1; found 0" in capsys.readouterr().err


def test_cli_list_and_old_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for word in ("filter_bubble", "linucb", "ppo", "exploration_sweep", "bandits_vs_deep_rl"):
        assert word in text
    assert "INVALID" not in text
    assert main(["simulate", "--users", "4", "--steps", "3", "--quiet"]) == 0
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0


def test_deep_rl_agents_train_first_and_reproduce(tmp_path: Path) -> None:
    data = {
        **TINY,
        "name": "tiny_ppo",
        "agents": [{"name": "ppo", "params": {"n_envs": 4, "n_steps": 16, "batch_size": 32, "n_epochs": 1}}],
        "horizon": {"steps": 6, "users": 4},
        "training": {"steps": 128},
        "seeds": 1,
        "metrics": {"window": 3},
    }
    path = tmp_path / "ppo.yaml"
    path.write_text(yaml.safe_dump(data))
    first = run_scenario(load_scenario(path), tmp_path / "a", workers=1, progress=False)
    second = run_scenario(load_scenario(path), tmp_path / "b", workers=1, progress=False)
    assert (first.summary["train_time_s"] > 0).all()
    pd.testing.assert_frame_equal(timing_free(first.summary), timing_free(second.summary))
