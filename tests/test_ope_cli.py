"""``bubblegym ope`` on decision logs written by the simulator's recorder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents import make_agent
from experiments.cli import main
from experiments.logs import read_log
from experiments.ope_cli import logged_item_features, world_spec_of
from experiments.rollout import DecisionRecorder, rollout
from simenv import RecVectorEnv, WorldSpec

SHAPE = {"n_candidates": 8, "catalog": {"dim": 8, "n_topics": 4}, "users": {"observed_dims": 4}}


def _log(tmp_path: Path, agent_name: str, slate_size: int, **params: object) -> Path:
    env = RecVectorEnv(100, oracle=False, overrides={**SHAPE, "slate_size": slate_size})
    agent = make_agent(agent_name, WorldSpec.from_config(env.config), **params)
    stem = tmp_path / f"{agent_name}{slate_size}"
    recorder = DecisionRecorder(stem, env, agent.params)
    rollout(agent, env, 20, np.random.default_rng(1), seed=3, observers=[recorder])
    recorder.close()
    return stem


def _rows(out: str, names: tuple[str, ...]) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in names}


def test_deterministic_target_on_a_uniform_log_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Uniform logger (C = 8, k = 1), deterministic target (a fresh LinUCB, propensity 1): the
    weights are exactly 8 * [logged = target's choice], so IPS = mean(8 r [match]) and SNIPS
    = sum(r [match]) / sum([match]), computed here from the target's own choices."""
    stem = _log(tmp_path, "random", 1)
    assert main(["ope", str(stem), "--policy", "linucb:alpha=0.5", "--boot", "100"]) == 0
    out = capsys.readouterr().out
    log = read_log(stem)
    target = make_agent("linucb", world_spec_of(log), alpha=0.5)
    obs = {
        "user": log.user_features,
        "candidates": log.candidate_features(),
        "item_ids": np.ascontiguousarray(log.candidate_ids()),
        "user_id": log.user_id,
    }
    match = target.act(obs, np.random.default_rng(0)).slates[:, 0] == log.slate[:, 0]
    rows = _rows(out, ("ips", "snips"))
    assert float(rows["ips"][1]) == pytest.approx(np.mean(8.0 * log.reward * match), rel=1e-3)  # 4 digits printed
    assert float(rows["snips"][1]) == pytest.approx(log.reward[match].sum() / match.sum(), rel=1e-3)
    assert "Monte Carlo" not in out  # a deterministic target's probabilities are exact


def test_on_policy_estimate_reproduces_the_logged_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Logged by the random agent and evaluated as it (exact ``slot_probabilities``): every
    weight is 1, so IPS and SNIPS print the mean logged reward and the mean weight 1.000."""
    stem = _log(tmp_path, "random", 1)
    assert main(["ope", str(stem), "--policy", "random", "--boot", "100"]) == 0
    out = capsys.readouterr().out
    mean = float(np.mean(read_log(stem).reward))
    rows = _rows(out, ("ips", "snips"))
    assert float(rows["ips"][1]) == pytest.approx(mean, rel=1e-3)  # 4 significant digits printed
    assert float(rows["snips"][1]) == pytest.approx(mean, rel=1e-3)
    assert rows["ips"][7] == "1.000" and rows["ips"][5] == "1.000"  # mean weight, ESS/n
    assert "Result:" in out and "one step ahead" in out and "Monte Carlo" not in out


def test_slate_log_runs_the_slate_estimators_with_their_assumptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stem = _log(tmp_path, "random", 3)
    assert main(["ope", str(stem), "--policy", "random", "--boot", "100"]) == 0
    out = capsys.readouterr().out
    table = {
        line.split()[0]: line.split()[-1]
        for line in out.splitlines()
        if line.split()[:1] in (["sips"], ["rips"], ["pi"])
    }
    assert table == {"sips": "none", "rips": "cascade", "pi": "additive"}  # uniform logger: PI applies


def test_deterministic_logger_and_bad_spec_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stem = _log(tmp_path, "linucb", 1)
    assert main(["ope", str(stem), "--policy", "random"]) == 2
    assert "deterministic" in capsys.readouterr().err
    other = _log(tmp_path, "random", 1)
    assert main(["ope", str(other), "--policy", "random:oops"]) == 2
    assert "is not key=value" in capsys.readouterr().err


def test_ope_check_command_prints_both_truths(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "rows.parquet"
    argv = ["ope-check", "filter_bubble", "--seeds", "2", "--users", "50", "--steps", "10", "--boot", "20"]
    assert main([*argv, "--target", "greedy", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "T1" in out and "T2" in out and "Deployment gap" in out and "cannot identify" in out
    assert out_file.exists()
    assert main(["ope-check", "filter_bubble", "--logger", "greedy"]) == 2
    assert "deterministic" in capsys.readouterr().err


def test_logged_item_features_equal_the_candidates_features(tmp_path: Path) -> None:
    """The served item's features from the items table equal the candidate block's row, fresh flag included."""
    env = RecVectorEnv(
        20,
        oracle=False,
        overrides={
            **SHAPE,
            "slate_size": 1,
            "catalog": {"n_items": 300, "arrival_rate": 3.0, "fresh_share": 0.2, "dim": 8, "n_topics": 4},
        },
    )
    agent = make_agent("random", WorldSpec.from_config(env.config))
    recorder = DecisionRecorder(tmp_path / "fresh", env, agent.params)
    rollout(agent, env, 15, np.random.default_rng(1), seed=3, observers=[recorder])
    recorder.close()
    log = read_log(tmp_path / "fresh")
    expected = log.candidate_features()[np.arange(log.n), log.slate[:, 0]]
    np.testing.assert_array_equal(logged_item_features(log), expected)


def test_poor_overlap_prints_inconclusive_instead_of_a_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deterministic target on a uniform slate log (k = 3 of C = 8): the logged slate matches
    the target's with probability 1/336, so ESS/n is far below 1% and the result is
    "inconclusive" with the reason, not a number."""
    stem = _log(tmp_path, "random", 3)
    assert main(["ope", str(stem), "--policy", "linucb", "--boot", "100"]) == 0
    out = capsys.readouterr().out
    assert "Result: inconclusive" in out and "effective sample size" in out
    assert not any(line.startswith("Result: ") and line[8:9].isdigit() for line in out.splitlines())
