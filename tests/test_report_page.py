"""The report page (paired differences, marks, clipping, numbers, glossary, verdicts) and
the report/compare CLI edges, on real tiny runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from experiments import glossary
from experiments.cli import main
from experiments.metrics import METRICS
from experiments.report import compare_runs, load_run, t_interval, write_report
from experiments.report_page import (
    arm_palette,
    band_table,
    clip_intervals,
    format_number,
    paired_windows,
    short_world_label,
    significance,
)
from experiments.runner import RunError, run_scenario
from experiments.scenario import load_scenario

TINY = {
    "name": "tiny_page",
    "description": "a tiny test scenario",
    "world": {"preset": "default", "overrides": {"catalog": {"n_items": 200}}},
    "agents": [{"name": "random"}, {"name": "linucb"}],
    "horizon": {"steps": 8, "users": 8},
    "seeds": 3,
    "metrics": {"window": 4},
}


def _run(tmp: Path, name: str, **changes: object) -> Path:
    spec = {**TINY, **changes}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp / name
    run_scenario(load_scenario(path), out, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three seeds; the same scenario with five seeds; three seeds on another world."""
    tmp = tmp_path_factory.mktemp("page")
    other_world = {"preset": "default", "overrides": {"catalog": {"n_items": 300}}}
    return {
        "three": _run(tmp, "three"),
        "five": _run(tmp, "five", seeds=5),
        "other": _run(tmp, "other", world=other_world),
    }


@pytest.fixture(scope="module")
def report(runs: dict[str, Path]) -> Path:
    write_report(runs["three"], dpi=50)
    return runs["three"]


# --------------------------------------------------------------------------- CLI edges


def test_report_with_unknown_baseline_exits_2_names_the_arms_and_keeps_the_report(
    report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p.name: p.read_bytes() for p in (report / "report.html", report / "report.md")}
    assert main(["report", str(report), "--baseline", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "baseline 'nosuch' is not an arm of this run; allowed: random, linucb" in err
    assert {p.name: p.read_bytes() for p in (report / "report.html", report / "report.md")} == before


def test_run_with_unknown_baseline_exits_2_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "never"
    assert main(["run", str(scenario), "--out", str(out), "--baseline", "nosuch", "--quiet"]) == 2
    assert "baseline 'nosuch' is not an arm of this run; allowed: random, linucb" in capsys.readouterr().err
    assert not out.exists()


def test_compare_with_unknown_metric_names_it_and_the_known_ones(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(runs["three"]), str(runs["five"]), "--metrics", "ctrr"]) == 2
    err = capsys.readouterr().err
    assert "unknown metric(s) ctrr" in err and "known metrics: " in err
    known = err.split("known metrics: ")[1].split(", ")
    assert "ctr" in known and "reward_per_user_step" in known


def test_compare_of_runs_on_different_worlds_is_not_paired(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    table = compare_runs(runs["three"], runs["other"], ["ctr"])
    assert not table["paired"].any() and set(table["why"]) == {"worlds differ"}
    a = load_run(runs["three"]).summary
    b = load_run(runs["other"]).summary
    row = table.set_index("arm").loc["linucb"]
    assert row["diff"] == pytest.approx(b.loc[b.arm == "linucb", "ctr"].mean() - a.loc[a.arm == "linucb", "ctr"].mean())
    assert main(["compare", str(runs["three"]), str(runs["other"]), "--metrics", "ctr"]) == 0
    out = capsys.readouterr().out
    assert "paired yes" not in out and "yes (" not in out and "no: worlds differ" in out


def test_compare_pairs_three_and_five_seed_runs_on_the_shared_seeds(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    table = compare_runs(runs["three"], runs["five"], ["ctr", "reward_per_user_step"])
    assert table["paired"].all() and set(table["pairs"]) == {3}
    # seeds 0-2 of both runs are the same simulations (one seed decides everything): B - A = 0
    assert np.allclose(table[["diff", "low", "high"]].to_numpy(float), 0.0)
    five = load_run(runs["five"]).summary
    assert table.set_index(["arm", "metric"]).loc[("linucb", "ctr"), "b"] == pytest.approx(
        five.loc[five.arm == "linucb", "ctr"].mean()
    )
    assert main(["compare", str(runs["three"]), str(runs["five"])]) == 0
    assert "yes (3 seeds)" in capsys.readouterr().out


# --------------------------------------------------------------------------- numbers and marks


def test_numbers_are_formatted_for_people() -> None:
    assert format_number(5989.123) == "5,989"
    assert format_number(1234567.0) == "1,234,567"
    assert format_number(0.0005766123) == "0.0005766"
    assert format_number(-1.25) == "-1.25"
    assert format_number(2.0) == "2"
    assert format_number(float("nan")) == "n/a"
    assert "e" not in format_number(3.2e-9) and format_number(3.2e-9) == "0.0000000032"


def test_intervals_of_bounded_metrics_are_clipped_to_their_range() -> None:
    long = pd.DataFrame(
        {
            "world_label": [""] * 3,
            "arm": ["a"] * 3,
            "metric": ["retention", "homogenization_cosine", "regret"],
            "mean": [0.99, 0.0, -0.1],
            "low": [0.975, -1.3, -5.0],
            "high": [1.01, 0.5, 3.0],
            "n": [3] * 3,
        }
    )
    clipped = clip_intervals(long).set_index("metric")
    assert clipped.loc["retention", ["low", "high"]].tolist() == [0.975, 1.0]
    assert clipped.loc["homogenization_cosine", ["low", "high"]].tolist() == [-1.0, 0.5]
    assert clipped.loc["regret", ["low", "high"]].tolist() == [-5.0, 3.0]  # unbounded: regret can be negative


def test_significance_follows_the_metrics_direction() -> None:
    assert significance("ctr", 0.01, 0.05) == "better"
    assert significance("ctr", -0.05, -0.01) == "worse"
    assert significance("regret", 0.1, 0.2) == "worse"
    assert significance("regret", -0.2, -0.1) == "better"
    assert significance("exploration_rate", 0.1, 0.2) == "differs"
    assert significance("ctr", -0.01, 0.05) == ""
    assert significance("ctr", float("nan"), float("nan")) == ""


def test_paired_window_bands_are_t_intervals_of_per_seed_differences(runs: dict[str, Path]) -> None:
    windows = load_run(runs["three"]).windows
    paired = paired_windows(windows, "random", "ctr")
    bands = band_table(paired, "diff", ["world_label", "arm", "step_end"]).set_index("step_end")
    arm = windows[windows.arm == "linucb"].set_index(["seed", "step_end"])["ctr"]
    base = windows[windows.arm == "random"].set_index(["seed", "step_end"])["ctr"]
    for step in (4, 8):
        by_hand = [arm[(s, step)] - base[(s, step)] for s in (0, 1, 2)]
        assert tuple(bands.loc[step, ["mean", "low", "high"]]) == pytest.approx(t_interval(by_hand))


def test_sweep_labels_are_short_and_colours_never_repeat() -> None:
    assert short_world_label("dynamics.amplification=0.02") == "amplification = 0.02"
    assert short_world_label("dynamics.amplification=0.02, users.boredom=0.1") == "amplification = 0.02, boredom = 0.1"
    arms = [(f"agent{i}", f"agent{i} [epsilon={e}]") for i in range(3) for e in (0.0, 0.1, 0.2, 0.3)]
    summary = pd.DataFrame({"agent": [a for a, _ in arms], "arm": [b for _, b in arms]})
    colours = arm_palette(summary)
    assert len(colours) == 12 and len({tuple(np.round(c, 6)) for c in colours.values()}) == 12


# --------------------------------------------------------------------------- the page


def test_report_tables_glossary_notes_and_captions(report: Path) -> None:
    md = (report / "report.md").read_text()
    page = (report / "report.html").read_text()
    assert not re.search(r"\d[eE][+-]\d", md), "e-notation in the report"
    assert "| watch_time_total ↑ |" in md and "| regret ↓ |" in md
    assert glossary.REGRET_NOTE in md and glossary.EXPLORATION_NOTE in md
    assert "## Metric glossary" in md and METRICS["catalog_coverage"] in md
    summary = page.split("<table id='summary'>")[1].split("</table>")[0]
    rows = len(load_run(report).metrics)  # one row per metric under one header row
    assert summary.count("<tr>") == 1 + rows and summary.split("</thead>")[0].count("<tr>") == 1
    assert page.count("<figure") == page.count("<figcaption>") >= 5
    assert "Paired bands: 95% Student-t intervals of the mean per-seed difference" in page
    for cell in re.findall(r"\| retention ↑ \|(.*)\|", md)[0].split("|"):
        assert all(0 <= float(v) <= 1 for v in re.findall(r"-?\d+(?:\.\d+)?", cell))


def test_verdict_json_is_rendered_at_the_top(report: Path) -> None:
    verdict = {
        "format": 1,
        "level": 0.95,
        "correction": "holm",
        "overall": "fail",
        "guardrails": [
            {
                "metric": "retention",
                "arm": "linucb",
                "baseline": None,
                "kind": "absolute",
                "op": ">=",
                "threshold": 0.9,
                "estimate": 0.97,
                "bound": 0.95,
                "verdict": "pass",
                "seeds": 3,
                "seeds_needed": None,
                "explanation": "lower bound 0.95 >= 0.9",
            },
            {
                "metric": "ctr",
                "arm": "linucb",
                "baseline": "random",
                "kind": "relative",
                "op": "within",
                "threshold": [-0.05, 0.05],
                "estimate": 0.2,
                "bound": [0.1, 0.3],
                "verdict": "fail",
                "seeds": 3,
                "seeds_needed": 12,
                "explanation": "interval [0.1, 0.3] outside [-0.05, 0.05]",
            },
        ],
    }
    (report / "verdict.json").write_text(json.dumps(verdict))
    try:
        files = write_report(report, dpi=40)
        md, page = files.markdown.read_text(), files.html.read_text()
    finally:
        (report / "verdict.json").unlink()
    assert md.index("Guardrails: overall FAIL") < md.index("## Summary")
    assert "| PASS | retention ↑ | linucb | value >= 0.9 | 0.97 | 0.95 | 3 |" in md
    assert "| FAIL | ctr ↑ | linucb | change vs random within [-0.05, 0.05] | 0.2 | [0.1, 0.3] | 3 (need 12) |" in md
    assert page.index("id='verdicts'") < page.index("id='summary'") and "holm correction" in page
    (report / "verdict.json").write_text("{not json")
    try:
        with pytest.raises(RunError, match=r"verdict\.json is not valid JSON"):
            write_report(report, dpi=40)
    finally:
        (report / "verdict.json").unlink()


def test_docs_metrics_md_is_generated_and_up_to_date() -> None:
    assert glossary.main(["--check"]) == 0, "docs/metrics.md is stale: run `python -m experiments.glossary`"
    assert set(METRICS) <= set(glossary.GLOSSARY)
    assert glossary.GLOSSARY["retention"].bounds == (0.0, 1.0)
    assert glossary.GLOSSARY["regret"].direction == "lower"
    assert glossary.GLOSSARY["interest_entropy_final"].direction == "higher"


def test_retention_trajectory_appears_only_when_users_churn(runs: dict[str, Path]) -> None:
    import matplotlib.pyplot as plt

    from experiments.report_page import draw_report_figures

    run = load_run(runs["three"])
    figures, notes = draw_report_figures(run, "random", None)
    assert "trajectory_retention" not in {f.name for f in figures}
    assert any(n.startswith("Retention figure left out") for n in notes)
    run.windows["retention"] = np.where(run.windows["arm"] == "random", 1.0 - run.windows["step_end"] / 16, 1.0)
    figures, notes = draw_report_figures(run, "random", None)
    retention = next(f for f in figures if f.name == "trajectory_retention")
    left = retention.figure.axes[0]
    curves = [line for line in left.get_lines() if len(line.get_xdata()) > 1]
    assert all(line.get_xdata()[0] == 0 and line.get_ydata()[0] == 1.0 for line in curves)  # survival starts at 1
    assert min(line.get_ydata()[-1] for line in curves) == pytest.approx(0.5)
    assert "Paired bands" in retention.caption and not any(n.startswith("Retention") for n in notes)
    plt.close("all")
