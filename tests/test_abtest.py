"""Simulated A/B tests: assignment, per-arm serving, intention to treat, the tests' statistics,
power and sample size, and the ``bubblegym abtest`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from agents.base import Decision, Feedback
from agents.baselines import RandomAgent
from experiments import abtest
from experiments.abtest import (
    AbTestSetup,
    ArmSpec,
    assign_arms,
    parse_arms,
    per_user_cv,
    power_at,
    ratio_delta,
    ratio_test,
    repeated_measures,
    users_per_arm,
    welch_test,
)
from experiments.cli import main
from experiments.scenario import parse_scenario
from simenv import RecVectorEnv, WorldSpec
from simenv.config import get_preset, with_overrides


def _scenario(preset: str = "default", population: int | None = None) -> object:
    horizon = {"steps": 10, "users": 64, **({"population": population} if population else {})}
    data = {"name": "ab", "world": {"preset": preset}, "agents": [{"name": "random"}], "horizon": horizon}
    return parse_scenario(data, check_agents=False)


# --------------------------------------------------------------------------- assignment


def test_assignment_is_stable_balanced_and_salted() -> None:
    ids = np.arange(200_000)
    arms = assign_arms(ids, 2, salt=7)
    # balanced: the share in arm 1 is within 4 binomial standard errors of 1/2
    assert abs(arms.mean() - 0.5) < 4 * math.sqrt(0.25 / len(ids))
    # stable: an id gets its arm whatever batch it comes in, in any order
    order = np.random.default_rng(0).permutation(ids)[:1000]
    np.testing.assert_array_equal(assign_arms(order, 2, salt=7), arms[order])
    # another salt is another (independent) randomisation: about half the users change arm
    other = assign_arms(ids, 2, salt=8)
    assert abs((other == arms).mean() - 0.5) < 0.01
    # three arms, each about a third, and consecutive ids are not alternated
    counts = np.bincount(assign_arms(ids, 3), minlength=3) / len(ids)
    np.testing.assert_allclose(counts, 1 / 3, atol=0.005)
    assert abs(np.mean(arms[1:] == arms[:-1]) - 0.5) < 0.01


# --------------------------------------------------------------------------- statistics


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(0.0, 1.0, 300), rng.lognormal(0.1, 1.3, 200)
    ours = welch_test(a, b, alpha=0.1)
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.9)
    assert ours.stat == pytest.approx(ref.statistic, rel=1e-10)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert ours.df == pytest.approx(ref.df, rel=1e-10)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_delta_method_variance_against_hand_computation() -> None:
    # x = clicks, y = impressions of 4 users: xbar = 1, ybar = 3, s_xx = s_yy = s_xy = 2/3, so
    # Var(R) = (s_xx / 9 - 2 * 1 * s_xy / 27 + 1 * s_yy / 81) / 4 = (18 - 12 + 2) / 243 / 4 = 2 / 243
    ratio, var = ratio_delta(np.array([1, 0, 2, 1]), np.array([3, 2, 4, 3]))
    assert ratio == pytest.approx(1 / 3)
    assert var == pytest.approx(2 / 243, rel=1e-12)
    # with the same impressions for every user, CTR is clicks / T and the test is Welch's on clicks
    clicks_a, clicks_b = np.array([3, 5, 2, 7, 4]), np.array([6, 4, 8, 5, 9, 7])
    ctr = ratio_test(clicks_a, np.full(5, 10), clicks_b, np.full(6, 10))
    welch = welch_test(clicks_a / 10, clicks_b / 10)
    for key in ("se", "df", "p_value", "ci_low"):
        assert float(getattr(ctr, key)) == pytest.approx(float(getattr(welch, key)), rel=1e-12), key
    # and against the sampling variance of the ratio over 4000 replications of 400 users
    rng = np.random.default_rng(2)
    impressions = rng.poisson(20, (4000, 400)) + 1
    clicks = rng.binomial(impressions, rng.beta(2, 6, (4000, 400)))
    ratios, variances = ratio_delta(clicks, impressions)
    assert np.sqrt(variances.mean()) == pytest.approx(ratios.std(ddof=1), rel=0.05)


def test_users_per_arm_and_power_by_hand() -> None:
    z = 1.959963984540054 + 0.8416212335729143  # z_0.975 + z_0.8
    assert users_per_arm(0.05, 1.0, 0.05, 0.8) == math.ceil(2 * z**2 / 0.05**2) == 6280
    assert users_per_arm(0.01, 0.1, 0.05, 0.8) == 1570  # CV 0.1 at 1% is CV 1 at 10%
    assert power_at(6280, 0.05, 1.0, 0.05) == pytest.approx(0.8, abs=1e-3)
    assert power_at(1000, 0.0, 1.0, 0.05) == pytest.approx(0.05)


def test_design_effect_reproduces_the_per_user_cv() -> None:
    # users' means differ by sigma_b = 0.5, steps by sigma_w = 1 around them: rho = 0.25 / 1.25 = 0.2
    rng = np.random.default_rng(3)
    x = 5.0 + 0.5 * rng.standard_normal((4000, 1)) + rng.standard_normal((4000, 30))
    rm = repeated_measures(x)
    assert rm.icc == pytest.approx(0.2, abs=0.02)
    assert rm.step_cv == pytest.approx(math.sqrt(1.25) / 5, rel=0.03)
    assert rm.design_effect == pytest.approx(1 + 29 * rm.icc)
    assert per_user_cv(rm.step_cv, 30, rm.icc) == pytest.approx(rm.user_cv, rel=1e-9)
    assert rm.user_cv == pytest.approx(x.mean(axis=1).std(ddof=1) / x.mean(), rel=1e-9)


@pytest.mark.slow
def test_aa_false_positive_rate_on_synthetic_users() -> None:
    """A/A: 1000 replications of 400 vs 400 skewed per-user outcomes (CV about 1.3); the
    Welch test and the delta-method CTR test each reject in 5% of them, within 3 binomial
    standard errors (0.021)."""
    rng = np.random.default_rng(4)
    reps, n, alpha = 1000, 400, 0.05
    engagement = rng.lognormal(0.0, 1.0, (2, reps, n))
    welch = welch_test(engagement[0], engagement[1], alpha)
    impressions = rng.poisson(15, (2, reps, n)) + 1
    clicks = rng.binomial(impressions, rng.beta(1, 4, (2, reps, n)))
    ctr = ratio_test(clicks[0], impressions[0], clicks[1], impressions[1], alpha)
    bound = 3 * math.sqrt(alpha * (1 - alpha) / reps)
    for name, result in (("welch", welch), ("ctr", ctr)):
        rate = float((result.p_value < alpha).mean())
        assert abs(rate - alpha) < bound, f"{name} A/A false-positive rate {rate} vs alpha {alpha} +- {bound:.3f}"


@pytest.mark.slow
def test_power_formula_agrees_with_simulated_power() -> None:
    """n = users_per_arm(3%, cv 0.3) = 1570 users per arm with a true 3% lift: the Welch test rejects
    in power 0.8 of 2000 replications, within 3 points (3 standard errors are 2.7 points)."""
    rng = np.random.default_rng(5)
    mde, cv, alpha, power = 0.03, 0.3, 0.05, 0.8
    n = users_per_arm(mde, cv, alpha, power)
    reps = 2000
    a = 10.0 + 10.0 * cv * rng.standard_normal((reps, n), dtype=np.float32)
    b = 10.0 * (1 + mde) + 10.0 * cv * rng.standard_normal((reps, n), dtype=np.float32)
    rate = float((welch_test(a, b, alpha).p_value < alpha).mean())
    assert abs(rate - power_at(n, mde, cv, alpha)) < 0.03
    assert power_at(n, mde, cv, alpha) == pytest.approx(power, abs=0.002)


# --------------------------------------------------------------------------- one world


class RecordingAgent(RandomAgent):
    """A random policy that records the user ids it served and was given feedback on."""

    def __init__(self, spec: WorldSpec) -> None:
        super().__init__(spec)
        self.acted: list[np.ndarray] = []
        self.fed: list[tuple[np.ndarray, np.ndarray]] = []

    def act(self, obs: dict, rng: np.random.Generator) -> Decision:
        self.acted.append(obs["user_id"].copy())
        return super().act(obs, rng)

    def update(self, obs: dict, decision: Decision, feedback: Feedback) -> None:
        self.fed.append((obs["user_id"].copy(), np.asarray(feedback.clicks).copy()))


def test_each_arm_sees_only_its_users_and_outcomes_are_intention_to_treat() -> None:
    config = with_overrides(get_preset("churn_prone"), {"users": {"population_size": 96}})
    env = RecVectorEnv(48, config=config, oracle=False)
    spec = WorldSpec.from_config(env.config)
    agents = [RecordingAgent(spec), RecordingAgent(spec)]
    rngs = [np.random.default_rng(0), np.random.default_rng(1)]
    steps = 60
    out = abtest.run_world(env, agents, steps, seed=11, rngs=rngs, salt=3)
    assert out.newcomers.sum() > 0, "the churn world should bring newcomers in 60 steps"
    clicks = np.zeros(env.sim.population.next_id, dtype=np.int64)
    for a, agent in enumerate(agents):
        served = np.concatenate(agent.acted)
        assert (assign_arms(served, 2, salt=3) == a).all()  # newcomers included
        fed_ids = np.concatenate([ids for ids, _ in agent.fed])
        np.testing.assert_array_equal(fed_ids, served)  # feedback of exactly the rows it served
        for ids, c in agent.fed:
            np.add.at(clicks, ids, c >= 0)
    # the clicks each agent learnt from are the clicks the outcomes count, user by user
    np.testing.assert_array_equal(clicks[: len(out.clicks)], out.clicks)
    np.testing.assert_array_equal(out.arm, assign_arms(np.arange(96), 2, salt=3))
    assert out.churned.any()
    # a churned user is served no more: it counts zero afterwards, and fewer impressions
    churned = np.flatnonzero(out.churned)
    last = np.array([np.flatnonzero(out.step_engagement[:, u] > 0).max(initial=-1) for u in churned])
    assert (out.impressions[churned] < steps).all()
    assert (last < steps - 1).any()
    assert out.engagement == pytest.approx(out.step_engagement.sum(axis=0, dtype=np.float64))


def _setup(**kw: object) -> AbTestSetup:
    base = {"arms": (ArmSpec("random"), ArmSpec("random")), "users": 64, "steps": 10, "seeds": (0,), "aa": True}
    return AbTestSetup(**{**base, **kw})


@pytest.mark.slow
def test_end_to_end_aa_in_the_simulator_rejects_at_alpha() -> None:
    """200 replications (world seeds) of a small A/A test in the churn-prone world, both arms
    the random policy: engagement and CTR each reject in alpha = 5% of them within 3 binomial
    standard errors (0.046), and the engagement p-values look uniform (Kolmogorov-Smirnov
    p > 0.01). The same seeds give the same numbers."""
    scenario = _scenario("churn_prone")
    reps, alpha = 200, 0.05
    result = abtest.run_abtest(scenario, _setup(seeds=tuple(range(reps)), steps=12, users=96, alpha=alpha))
    bound = 3 * math.sqrt(alpha * (1 - alpha) / reps)
    summary = result.summary.set_index("metric")
    for metric in ("engagement", "ctr"):
        rate = summary.loc[metric, "rejection_rate"]
        assert abs(rate - alpha) < bound, f"{metric}: A/A rejects in {rate} of {reps} seeds"
    p = result.tests.loc[result.tests["metric"] == "engagement", "p_value"].to_numpy()
    assert stats.kstest(p, "uniform").pvalue > 0.01
    again = abtest.run_abtest(scenario, _setup(seeds=(0, 1), steps=12, users=96, alpha=alpha))
    pd.testing.assert_frame_equal(result.tests[result.tests["seed"] < 2], again.tests)
    assert result.variance["user_cv"] == pytest.approx(result.variance["user_cv_formula"], rel=1e-9)


# --------------------------------------------------------------------------- inputs and the CLI


def test_parse_arms() -> None:
    arms = parse_arms("linucb:alpha=0.5,lam=2,random")
    assert arms == [ArmSpec("linucb", {"alpha": 0.5, "lam": 2}), ArmSpec("random")]
    assert arms[0].label == "linucb:alpha=0.5,lam=2"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arms", "nosuch,random"], "unknown agent 'nosuch'"),
        (["--arms", "linucb:alpha=-1,random"], "linucb.alpha must be"),
        (["--arms", "linucb:wrong=1,random"], "unknown argument(s) ['wrong']"),
        (["--arms", "random,,linucb"], "empty arm"),
        (["--arms", "random"], "at least 2 arms"),
        (["--arms", "random,linucb", "--aa"], "same agent spec"),
        (["--arms", "random,linucb", "--alpha", "1.5"], "alpha (the two-sided significance level) must be"),
        (["--arms", "random,linucb", "--power", "0"], "power must be a number in (0, 1)"),
        (["--arms", "random,linucb", "--cv", "-1"], "cv (per-user coefficient of variation"),
        (["--arms", "random,linucb", "--mde", "0"], "mde (minimum detectable relative effect"),
        (["--arms", "random,linucb", "--users", "3"], "users must be an integer >= 4"),
    ],
)
def test_bad_input_is_named(argv: list[str], message: str, capsys: pytest.CaptureFixture, tmp_path: object) -> None:
    args = ["abtest", "default", "--users", "32", "--steps", "2", "--seeds", "1", "--out", str(tmp_path), *argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("bubblegym abtest:") and message in err, err
    assert not (tmp_path / "abtest.json").exists()


def test_out_dir_of_a_run_is_refused(capsys: pytest.CaptureFixture, tmp_path: object) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    args = ["abtest", "default", "--arms", "random,random", "--aa", "--users", "8", "--steps", "2", "--seeds", "1"]
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert "holds a `bubblegym run`" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_cli_ab_run_writes_tables(capsys: pytest.CaptureFixture, tmp_path: object) -> None:
    args = ["abtest", "default", "--arms", "random,linucb:alpha=0.5", "--users", "128", "--steps", "40"]
    assert main([*args, "--seeds", "2", "--mde", "0.02", "--cv", "0.8", "--out", str(tmp_path), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "per-user CV" in text and "10,000-25,000" in text and "(--cv)" in text
    body = json.loads((tmp_path / "abtest.json").read_text())
    assert body["setup"]["arms"] == ["random", "linucb:alpha=0.5"]
    assert [r["mde"] for r in body["sample_size"]["table"]].count("2%") == 1
    tests = pd.read_parquet(tmp_path / "tests.parquet")
    assert len(tests) == 2 * len(abtest.METRICS)
    users = pd.read_parquet(tmp_path / "users.parquet")
    assert len(users) == 2 * 128 and set(users["arm"]) == {0, 1}
    # LinUCB beats random on engagement in both seeds of the default world
    assert tests.loc[tests["metric"] == "engagement", "reject"].all()
    assert (tests.loc[tests["metric"] == "engagement", "lift"] > 0).all()


def test_benchmark_script_runs_on_a_tiny_world() -> None:
    from test_benchmarks import load_script

    figures = load_script("bench_abtest").bench("random,random", users=16, steps=3, seeds=1)
    assert figures["wall_s"] > 0 and figures["user_cv"] > 0 and 0 <= figures["p"] <= 1


def test_aa_verdict_names_a_metric_that_rejects_too_often() -> None:
    setup = _setup(seeds=tuple(range(40)))
    rows = [
        {"metric": "engagement", "rejections": 2, "seeds": 40},  # P(X >= 2) = 0.60: fine
        {"metric": "ctr", "rejections": 7, "seeds": 40},  # P(X >= 7) = 0.0034 under alpha = 0.05
    ]
    text = "\n".join(abtest._aa_verdict(pd.DataFrame(rows), setup))
    assert "ABOVE alpha = 0.05: ctr (binomial p = 0.0034)" in text and "engagement" not in text
    ok = "\n".join(abtest._aa_verdict(pd.DataFrame(rows[:1]), setup))
    assert "no metric rejects more often" in ok
