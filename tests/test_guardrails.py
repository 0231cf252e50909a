"""Guardrail statistics: one-sided t bounds, TOST, Holm, seeds needed, verdicts, coverage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.guardrails import (
    GuardrailError,
    checks_of_run,
    confidence_bound,
    evaluate,
    evaluate_run,
    format_verdict,
    holm,
    one_sided_test,
    seeds_needed,
)
from experiments.scenario import Guardrail, ScenarioError, parse_scenario


def test_one_sided_test_matches_the_t_test_and_the_hand_bound() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    test = one_sided_test(x, ">=", 1.0)
    # mean 2.5, sd sqrt(5/3) = 1.2910, se 0.6455, t = 1.5 / 0.6455 = 2.3238 on 3 df
    assert test.mean == 2.5 and test.sd == pytest.approx(math.sqrt(5 / 3))
    assert test.p_pass == pytest.approx(stats.ttest_1samp(x, 1.0, alternative="greater").pvalue)
    assert test.p_pass + test.p_fail == pytest.approx(1.0)
    # lower 95% bound: 2.5 - t_{0.95,3} * 0.6455 = 2.5 - 2.3534 * 0.6455 = 0.9809
    assert confidence_bound(test, ">=", 0.05) == pytest.approx(2.5 - 2.353363 * math.sqrt(5 / 3) / 2, abs=1e-5)
    upper = one_sided_test(x, "<=", 1.0)
    assert upper.p_pass == pytest.approx(stats.ttest_1samp(x, 1.0, alternative="less").pvalue)


def test_within_is_two_one_sided_tests() -> None:
    x = np.array([0.20, 0.25, 0.30, 0.22, 0.28])
    test = one_sided_test(x, "within", (0.1, 0.4))
    above_lo = stats.ttest_1samp(x, 0.1, alternative="greater").pvalue
    below_hi = stats.ttest_1samp(x, 0.4, alternative="less").pvalue
    assert test.p_pass == pytest.approx(max(above_lo, below_hi))
    lo, hi = confidence_bound(test, "within", 0.05)
    half = stats.t.ppf(0.95, 4) * x.std(ddof=1) / math.sqrt(5)
    assert (lo, hi) == pytest.approx((x.mean() - half, x.mean() + half))


def test_zero_spread_and_a_single_seed() -> None:
    assert one_sided_test([1.0, 1.0, 1.0], ">=", 0.9).p_pass == 0.0
    assert one_sided_test([0.8, 0.8], ">=", 0.9).p_fail == 0.0
    assert one_sided_test([0.9, 0.9], ">=", 0.9).p_pass == 0.0  # equality holds
    single = one_sided_test([5.0], "<=", 1.0)
    assert (single.p_pass, single.p_fail) == (1.0, 1.0)
    assert seeds_needed(single, "<=", 1.0, 0.05) is None


def test_holm_step_down_by_hand() -> None:
    # sorted: 0.01 <= 0.05/3 rejected; 0.03 > 0.05/2 stops; 0.04 not rejected though <= 0.05
    rejected, alphas = holm([0.01, 0.04, 0.03], 0.05)
    assert rejected.tolist() == [True, False, False]
    assert alphas.tolist() == pytest.approx([0.05 / 3, 0.05, 0.05 / 2])
    assert holm([0.001, 0.02], 0.05)[0].tolist() == [True, True]


def test_seeds_needed_is_the_first_count_whose_bound_clears_the_margin() -> None:
    test = one_sided_test([0.0, 0.3, 0.1, 0.2], ">=", 0.0)  # mean 0.15, sd 0.129
    n = seeds_needed(test, ">=", 0.0, 0.05)
    assert n is not None and n > 4

    def half(k: int) -> float:
        return stats.t.ppf(0.95, k - 1) * test.sd / math.sqrt(k)

    assert half(n) < 0.15 <= half(n - 1)


def _summary(diffs: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Two arms; per seed s, the candidate's metric = the baseline's + diffs[s]."""
    base = 1.0 + rng.normal(0, 1.0, len(diffs))  # a large shared seed effect: pairing removes it
    cand = base + np.asarray(diffs)
    rows = [
        {"world_label": "", "arm": arm, "agent": arm, "seed": s, "m": v[s]}
        for arm, v in (("candidate", cand), ("baseline", base))
        for s in range(len(diffs))
    ]
    return pd.DataFrame(rows)


def test_two_seeds_are_inconclusive_where_many_seeds_decide() -> None:
    guard = Guardrail("m", "<=", 0.0, agent="candidate", baseline="baseline")
    rng = np.random.default_rng(0)
    # two paired differences 0.05, 0.15: mean 0.1, se 0.05; t_{0.95,1} = 6.31 -> bounds -0.22 .. 0.42
    few = evaluate_run(_summary(np.array([0.05, 0.15]), rng), [guard]).guardrails[0]
    assert few["verdict"] == "inconclusive" and few["seeds_needed"] is not None and few["seeds_needed"] > 2
    assert few["bound"] == pytest.approx(0.1 + 6.313752 * 0.05, abs=1e-5)
    assert "inconclusive" in few["explanation"] and f"about {few['seeds_needed']} seeds" in few["explanation"]
    # as many seeds as it said, from the same distribution (true difference 0.1, sd 0.07): decided
    many = evaluate_run(_summary(rng.normal(0.1, 0.0707, 3 * few["seeds_needed"]), rng), [guard]).guardrails[0]
    assert many["verdict"] == "fail" and many["seeds_needed"] is None
    # paired: the between-seed spread (sd 1) does not enter, the difference is judged
    good = evaluate_run(_summary(rng.normal(-0.1, 0.05, 30), rng), [guard]).guardrails[0]
    assert good["verdict"] == "pass" and good["bound"] < 0.0


def test_verdict_json_follows_the_shared_contract() -> None:
    rng = np.random.default_rng(1)
    guards = [
        Guardrail("m", ">=", -2.0, agent="candidate", baseline="baseline", change="percent"),
        Guardrail("m", "within", (0.0, 5.0), agent="candidate"),
    ]
    verdict = evaluate_run(_summary(rng.normal(0.05, 0.01, 10), rng), guards, "s").to_json()
    assert {k: verdict[k] for k in ("format", "level", "correction")} == {
        "format": 1,
        "level": 0.95,
        "correction": "holm",
    }
    assert verdict["overall"] in ("pass", "fail", "inconclusive")
    keys = {"metric", "arm", "baseline", "kind", "op", "threshold", "estimate", "bound", "verdict", "seeds"}
    keys |= {"seeds_needed", "explanation"}
    relative, absolute = verdict["guardrails"]
    assert keys <= set(relative) and keys <= set(absolute)
    assert (relative["kind"], relative["baseline"], absolute["kind"], absolute["baseline"]) == (
        "relative",
        "baseline",
        "absolute",
        None,
    )
    assert isinstance(absolute["threshold"], list) and isinstance(absolute["bound"], list)
    assert "Holm over 2 guardrail(s)" in relative["explanation"]
    assert "Holm's correction" in format_verdict(verdict)


def test_a_guardrail_without_baseline_covers_every_arm_and_missing_metrics_are_named() -> None:
    summary = _summary(np.zeros(3), np.random.default_rng(2))
    checks = checks_of_run(summary, [Guardrail("m", ">=", 0.0)])
    assert sorted(c.arm for c in checks) == ["baseline", "candidate"]
    with pytest.raises(GuardrailError, match="'nope' is not in the run summary"):
        checks_of_run(summary, [Guardrail("nope", ">=", 0.0)])
    with pytest.raises(GuardrailError, match=r"level must be a number in \(0.5, 1\)"):
        evaluate(checks, level=1.5)


BASE = {
    "name": "g",
    "agents": [{"name": "random", "label": "candidate"}, {"name": "popularity", "label": "baseline"}],
    "horizon": {"steps": 5, "users": 4},
}


@pytest.mark.parametrize(
    ("guard", "where", "fragment"),
    [
        ({"metric": "retention", "op": "within", "threshold": 0.5}, "guardrails[0].threshold", "pair [lo, hi]"),
        ({"metric": "retention", "op": "within", "threshold": [0.9, 0.1]}, "guardrails[0].threshold", "lo <= hi"),
        ({"metric": "retention", "op": ">=", "threshold": [0.1, 0.2]}, "guardrails[0].threshold", "a finite number"),
        ({"metric": "retention", "op": ">=", "threshold": "high"}, "guardrails[0].threshold", "a finite number"),
        ({"metric": "retention", "op": ">=", "threshold": 1, "baseline": "nobody"}, "guardrails[0].baseline", "label"),
        (
            {"metric": "retention", "op": ">=", "threshold": 1, "change": "percent"},
            "guardrails[0].change",
            "unless a baseline",
        ),
        (
            {"metric": "retention", "op": ">=", "threshold": 1, "agent": "baseline", "baseline": "baseline"},
            "guardrails[0].baseline",
            "other than",
        ),
        ({"metric": "retention", "op": ">=", "threshold": 1, "change": "ratio"}, "guardrails[0].change", "one of"),
        ({"metric": "retention", "op": "==", "threshold": 1}, "guardrails[0].op", "within"),
    ],
)
def test_bad_guardrails_are_named(guard: dict, where: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario({**BASE, "guardrails": [guard]}, source="bad.yaml", check_agents=False)
    assert str(info.value).startswith(f"bad.yaml: {where}: "), str(info.value)
    assert fragment in str(info.value)


def test_old_guardrails_still_load_and_round_trip() -> None:
    data = {**BASE, "guardrails": [{"metric": "retention", "op": ">", "threshold": 0.9}]}
    scenario = parse_scenario(data, check_agents=False)
    assert scenario.guardrails == (Guardrail("retention", ">", 0.9),)
    assert parse_scenario(scenario.to_dict(), check_agents=False).guardrails == scenario.guardrails


@pytest.mark.slow
@pytest.mark.parametrize(("name", "draw"), [("normal", "normal"), ("skewed", "gamma")])
def test_one_sided_bound_coverage_by_simulation(name: str, draw: str) -> None:
    """2,000 replications of a synthetic per-seed metric with known mean mu, 8 seeds each:
    the lower 95% bound lies below mu in 95% of them, within 3 Monte Carlo standard errors
    (sqrt(0.95 * 0.05 / 2000) = 0.0049); and at mu exactly on the threshold, the pass
    verdict (the false launch) comes at most at alpha plus the same error."""
    reps, n, level = 2000, 8, 0.95
    rng = np.random.default_rng(12)
    if draw == "normal":
        mu, values = 0.7, rng.normal(0.7, 0.2, (reps, n))
    else:  # a skewed metric (gamma, shape 4): the t bound is approximate, still near its level
        mu, values = 1.0, rng.gamma(4.0, 0.25, (reps, n))
    bounds = np.array([confidence_bound(one_sided_test(v, ">=", mu), ">=", 1 - level) for v in values])
    coverage = float(np.mean(bounds <= mu))
    mc_error = math.sqrt(level * (1 - level) / reps)
    tolerance = 3 * mc_error + (0.0 if draw == "normal" else 0.01)
    assert abs(coverage - level) <= tolerance, (name, coverage)
    # one guardrail: evaluate() passes it when p_pass <= alpha (Holm over a family of one)
    passed = float(np.mean([one_sided_test(v, ">=", mu).p_pass <= 1 - level for v in values]))
    assert passed <= (1 - level) + tolerance, (name, passed)
