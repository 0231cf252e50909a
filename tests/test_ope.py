"""Estimators of experiments.ope: hand-computed values, exact (enumerated) bias of the slate
estimators under each choice model, statistical unbiasedness, the user bootstrap, the
Thomas et al. (2015) bound, diagnostics, and obp parity via a stored fixture."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from experiments import ope
from simenv.choice import cascade_probs, mnl_probs

# ---------------------------------------------------------------- tiny single-item log
# 4 decisions, 2 users. w = target / logging = [2, 2, 0.5, 0.5].
REWARD = np.array([1.0, 0.0, 2.0, 1.0])
LOGGING = np.array([0.5, 0.25, 0.5, 1.0])
TARGET = np.array([1.0, 0.5, 0.25, 0.5])
Q_LOGGED = np.array([0.25, 0.5, 1.0, 1.0])
Q_EXPECTED = np.array([1.0, 0.5, 1.5, 0.5])
USERS = np.array([7, 7, 9, 9])


def test_single_item_estimators_match_hand_computation() -> None:
    est = ope.single_item_estimators(REWARD, LOGGING, TARGET, Q_LOGGED, Q_EXPECTED, tau=1.0, lam=2.0)
    # IPS: (2*1 + 2*0 + .5*2 + .5*1) / 4 = 3.5 / 4
    assert est["ips"].value == pytest.approx(0.875)
    # SNIPS: 3.5 / (2 + 2 + .5 + .5)
    assert est["snips"].value == pytest.approx(0.7)
    # DM: mean(q_expected) = 3.5 / 4
    assert est["dm"].value == pytest.approx(0.875)
    # DR: [1 + 2(.75), .5 + 2(-.5), 1.5 + .5(1), .5 + .5(0)] = [2.5, -.5, 2, .5] -> 4.5 / 4
    assert est["dr"].value == pytest.approx(1.125)
    # SNDR: .875 + (2(.75) + 2(-.5) + .5(1) + 0) / 5 = .875 + .2
    assert est["sndr"].value == pytest.approx(1.075)
    # Switch-DR, tau = 1: the weight-2 corrections are dropped: [1, .5, 2, .5] -> 4 / 4
    assert est["switch-dr"].value == pytest.approx(1.0)
    # DR-os, lambda = 2: w_hat = 2w/(w^2+2) = [2/3, 2/3, 4/9, 4/9]
    # [1 + (2/3)(.75), .5 - (2/3)(.5), 1.5 + 4/9, .5] sums to 37/9 -> 37/36
    assert est["dr-os"].value == pytest.approx(37 / 36)
    # clipped IPS at 1: (1 + 0 + 1 + .5) / 4
    assert ope.ips(REWARD, TARGET / LOGGING, clip=1.0).value == pytest.approx(0.625)


def test_shrinkage_limits_are_dm_and_dr() -> None:
    w = TARGET / LOGGING
    assert ope.dr_os(REWARD, w, Q_LOGGED, Q_EXPECTED, 0.0).value == pytest.approx(0.875)  # DM
    assert ope.dr_os(REWARD, w, Q_LOGGED, Q_EXPECTED, np.inf).value == pytest.approx(1.125)  # DR
    assert ope.switch_dr(REWARD, w, Q_LOGGED, Q_EXPECTED, np.inf).value == pytest.approx(1.125)


def test_snips_equals_ips_when_weights_average_one() -> None:
    rng = np.random.default_rng(3)
    w = rng.gamma(2.0, size=1000)
    w = w / w.mean()
    r = rng.random(1000)
    assert ope.snips(r, w).value == pytest.approx(ope.ips(r, w).value, rel=1e-12)
    w2 = w * 1.3  # mean 1.3: SNIPS = IPS / 1.3
    assert ope.snips(r, w2).value == pytest.approx(ope.ips(r, w2).value / 1.3, rel=1e-12)


def test_diagnostics_by_hand() -> None:
    d = ope.diagnostics(TARGET / LOGGING, USERS)
    assert d.ess == pytest.approx(25 / 8.5)  # (sum w)^2 / sum w^2 = 5^2 / 8.5
    assert d.ess_fraction == pytest.approx(25 / 34)
    assert d.max_weight == 2.0 and d.mean_weight == pytest.approx(1.25)
    # per-user residual sums: user 7: (2-1.25)*2 = 1.5, user 9: (.5-1.25)*2 = -1.5;
    # SE = sqrt((1.5^2 + 1.5^2) * 2/1) / 4 = sqrt(9) / 4
    assert d.mean_weight_se == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"logging_prob": np.array([0.5, 0.0, 0.5, 1.0])}, r"logging_prob must lie in \(0, 1\]; entry \(1,\)"),
        ({"logging_prob": np.array([0.5, 1.5, 0.5, 1.0])}, r"logging_prob must lie in \(0, 1\]"),
        ({"target_prob": np.array([0.5, np.nan, 0.5, 1.0])}, "target_prob has NaN"),
        ({"target_prob": np.array([0.5, 0.5])}, "same number of decisions"),
        ({"q_logged": Q_LOGGED, "q_expected": None}, "give both q_logged and q_expected"),
    ],
)
def test_bad_inputs_are_refused(kwargs: dict, message: str) -> None:
    args = {"reward": REWARD, "logging_prob": LOGGING, "target_prob": TARGET, "q_logged": None, "q_expected": None}
    args.update(kwargs)
    with pytest.raises(ope.OPEError, match=message):
        ope.single_item_estimators(**args)


# ---------------------------------------------------------------- tiny slate log
SLOT_REWARD = np.array([[1.0, 1.0], [2.0, 0.0]])
LOG_COND = np.array([[0.5, 0.5], [0.25, 1.0]])
TGT_COND = np.array([[1.0, 0.5], [0.5, 0.5]])  # ratios [[2, 1], [2, .5]]


def test_slate_estimators_match_hand_computation() -> None:
    # SIPS: joint w = [2, 1], slate rewards [2, 2] -> (4 + 2) / 2
    sips = ope.slate_sips(SLOT_REWARD, LOG_COND, TGT_COND)
    assert sips.value == pytest.approx(3.0) and sips.assumption == "none"
    # RIPS: prefix w = [[2, 2], [2, 1]] -> row sums [2 + 2, 4 + 0] -> 4
    rips = ope.slate_rips(SLOT_REWARD, LOG_COND, TGT_COND)
    assert rips.value == pytest.approx(4.0) and rips.assumption == "cascade"
    # cascade-DR: w_prev = [[1, 2], [1, 2]]
    # row 0: 2(1 - .5) + 1(1) + 2(1 - .5) + 2(.5) = 4; row 1: 2(2 - 1) + 1(1) + 1(0 - 0) + 2(1) = 5
    cdr = ope.slate_cascade_dr(SLOT_REWARD, LOG_COND, TGT_COND, [[0.5, 0.5], [1.0, 0.0]], [[1.0, 0.5], [1.0, 1.0]])
    assert cdr.value == pytest.approx(4.5) and cdr.assumption == "cascade"
    # IIPS: marginal ratios [[2, 2], [2, .5]] -> rows [2 + 2, 4 + 0] -> 4
    iips = ope.slate_iips(SLOT_REWARD, [[0.5, 0.25], [0.25, 0.5]], [[1.0, 0.5], [0.5, 0.25]])
    assert iips.value == pytest.approx(4.0) and iips.assumption == "additive"
    # PI, C = 3, k = 2 uniform: rho = 2 sum_j at_slot + 2 sum_j anywhere - 3
    # row 0: 2(.7) + 2(1.2) - 3 = .8; row 1: 2(.4) + 2(.9) - 3 = -.4; rewards [2, 2] -> (1.6 - .8) / 2
    uniform = np.array([[1 / 3, 1 / 2]] * 2)
    pi = ope.slate_pseudo_inverse(SLOT_REWARD, uniform, [[0.5, 0.2], [0.1, 0.3]], [[0.7, 0.5], [0.4, 0.5]], 3)
    assert pi.value == pytest.approx(0.4) and pi.assumption == "additive"


def test_pseudo_inverse_refuses_a_non_uniform_logger() -> None:
    with pytest.raises(ope.OPEError, match="needs a uniform logger"):
        ope.slate_pseudo_inverse(SLOT_REWARD, LOG_COND, [[0.5, 0.2], [0.1, 0.3]], [[0.7, 0.5], [0.4, 0.5]], 3)


# ---------------------------------------------------------------- exact bias by enumeration
C_ENUM, K_ENUM = 5, 3
SLATES = np.array(list(itertools.permutations(range(C_ENUM), K_ENUM)))  # (60, 3)


def _plackett_luce(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-slot conditional probabilities (S, k) of every slate, and the conditional
    distribution over candidates at each slot (S, k, C) given the slate's prefix."""
    s, k = SLATES.shape
    cond = np.empty((s, k))
    dist = np.empty((s, k, C_ENUM))
    for j in range(k):
        avail = np.ones((s, C_ENUM), bool)
        avail[np.arange(s)[:, None], SLATES[:, :j]] = False
        e = np.where(avail, np.exp(scores)[None, :], 0.0)
        dist[:, j] = e / e.sum(axis=1, keepdims=True)
        cond[:, j] = dist[np.arange(s), j, SLATES[:, j]]
    return cond, dist


def _marginal_table(joint: np.ndarray) -> np.ndarray:
    """(k, C) probability of each item at each slot, from slate probabilities (S,)."""
    table = np.zeros((K_ENUM, C_ENUM))
    for j in range(K_ENUM):
        np.add.at(table[j], SLATES[:, j], joint)
    return table


def _marginals(joint: np.ndarray) -> np.ndarray:
    """(S, k) marginal probability of each slate's item at its slot."""
    return _marginal_table(joint)[np.arange(K_ENUM)[None, :], SLATES]


def _slot_reward(world: str, utility: np.ndarray) -> np.ndarray:
    """(S, k) expected click at each slot of every slate."""
    u = utility[SLATES]
    if world == "additive":  # position-based model: independent clicks, P = sigmoid(u) * examination_j
        return 1.0 / (1.0 + np.exp(-u)) * np.array([1.0, 0.6, 0.4])
    probs = mnl_probs(u, 1.0, 0.0) if world == "mnl" else cascade_probs(u, 1.0, 0.0)
    return np.asarray(probs)[:, :K_ENUM]


def _exact_expectations(world: str, uniform_logger: bool) -> tuple[float, dict[str, float]]:
    """True value of the target and the exact expectation of each estimator's per-decision term
    under the logger (sum over all 60 slates; estimators are linear in the reward, so the
    expected slot rewards can stand in for the draws)."""
    rng = np.random.default_rng(11)
    utility = rng.normal(size=C_ENUM)
    log_cond, _ = _plackett_luce(np.zeros(C_ENUM) if uniform_logger else rng.normal(size=C_ENUM) * 0.7)
    tgt_cond, tgt_dist = _plackett_luce(utility * 1.5)
    mu, pi = log_cond.prod(axis=1), tgt_cond.prod(axis=1)
    r = _slot_reward(world, utility)
    truth = float((pi * r.sum(axis=1)).sum())
    # q_hat: a deliberately wrong per-slot model (half the true click prob of the item alone)
    q_item = 0.5 / (1.0 + np.exp(-utility))
    q_logged = q_item[SLATES]
    q_expected = tgt_dist @ q_item
    terms = {
        "sips": ope.slate_sips(r, log_cond, tgt_cond),
        "rips": ope.slate_rips(r, log_cond, tgt_cond),
        "cascade-dr": ope.slate_cascade_dr(r, log_cond, tgt_cond, q_logged, q_expected),
        "iips": ope.slate_iips(r, _marginals(mu), _marginals(pi)),
    }
    if uniform_logger:
        anywhere = _marginal_table(pi).sum(axis=0)[SLATES]
        terms["pi"] = ope.slate_pseudo_inverse(r, log_cond, _marginals(pi), anywhere, C_ENUM)
    return truth, {name: float(mu @ t.numerators[:, 0]) for name, t in terms.items()}


@pytest.mark.parametrize("uniform_logger", [False, True])
def test_slate_estimators_unbiased_exactly_where_their_assumption_holds(uniform_logger: bool) -> None:
    """Switching the choice model switches which estimators are unbiased: SIPS always; IIPS
    and PI only in the additive (position-based) world; RIPS and cascade-DR in the cascade
    world (and the additive one, a special case), not under MNL competition between slots."""
    unbiased = {
        "additive": {"sips", "iips", "pi", "rips", "cascade-dr"},
        "cascade": {"sips", "rips", "cascade-dr"},
        "mnl": {"sips"},
    }
    for world, expected_unbiased in unbiased.items():
        truth, means = _exact_expectations(world, uniform_logger)
        for name, mean in means.items():
            rel_bias = (mean - truth) / truth
            if name in expected_unbiased:
                assert abs(rel_bias) < 1e-10, (world, name, rel_bias)
            else:
                assert abs(rel_bias) > 0.01, (world, name, rel_bias)


# ---------------------------------------------------------------- statistical unbiasedness
def _synthetic_logs(n_logs: int, n: int, seed: int) -> tuple[dict[str, np.ndarray], float]:
    """``n_logs`` independent single-item logs (n_logs, n): 10 actions, softmax logger and
    target over linear scores, Bernoulli rewards; also the target's true value."""
    rng = np.random.default_rng(seed)
    n_actions = 10
    x = rng.normal(size=(n_logs, n, 3))
    theta = np.linspace(-1, 1, 3 * n_actions).reshape(3, n_actions)
    p_click = 1 / (1 + np.exp(-(x @ theta)))  # (L, n, A)

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    logger = softmax(0.3 * x @ theta[::-1])
    target = softmax(2.0 * x @ theta)
    u = rng.random((n_logs, n, 1))
    a = (u > np.cumsum(logger, -1)).sum(-1).clip(max=n_actions - 1)
    take = lambda z: np.take_along_axis(z, a[..., None], -1)[..., 0]  # noqa: E731
    reward = (rng.random((n_logs, n)) < take(p_click)).astype(float)
    q = p_click + 0.1  # a biased model
    truth_x = np.random.default_rng(seed + 1).normal(size=(400_000, 3))
    truth = float((softmax(2.0 * truth_x @ theta) / (1 + np.exp(-(truth_x @ theta)))).sum(-1).mean())
    return {
        "reward": reward,
        "logging": take(logger),
        "target": take(target),
        "q_logged": take(q),
        "q_expected": (target * q).sum(-1),
    }, truth


@pytest.mark.slow
def test_ips_and_dr_unbiased_on_synthetic_logs() -> None:
    """300 independent logs of 1,000 decisions: the mean of IPS and of DR (with a model biased
    by +0.1) differ from the true value by less than 3 standard errors of that mean, while DM
    with the same model is off by many standard errors."""
    logs, truth = _synthetic_logs(300, 1000, seed=5)
    values: dict[str, list[float]] = {"ips": [], "dr": [], "dm": []}
    for i in range(300):
        est = ope.single_item_estimators(
            *(logs[k][i] for k in ("reward", "logging", "target", "q_logged", "q_expected"))
        )
        for name in values:
            values[name].append(est[name].value)
    for name in ("ips", "dr"):
        v = np.array(values[name])
        z = (v.mean() - truth) / (v.std(ddof=1) / np.sqrt(len(v)))
        assert abs(z) < 3, (name, v.mean(), truth, z)
    dm = np.array(values["dm"])
    assert (dm.mean() - truth) / (dm.std(ddof=1) / np.sqrt(len(dm))) > 10


# ---------------------------------------------------------------- bootstrap, bound, verdict
def test_user_bootstrap_equals_a_loop_over_resampled_users() -> None:
    rng = np.random.default_rng(0)
    n, users = 300, rng.integers(0, 40, 300)
    r, w = rng.random(n), rng.gamma(2.0, 0.5, n)
    terms = {"ips": ope.ips(r, w), "snips": ope.snips(r, w)}
    fast = ope.bootstrap_values(terms, users, 50, np.random.default_rng(1))
    counts = ope.resample_counts(len(np.unique(users)), 50, np.random.default_rng(1))
    _, inverse = np.unique(users, return_inverse=True)
    for b in range(50):
        mult = counts[b][inverse]  # each decision counted as often as its user was drawn
        assert fast["ips"][b] == pytest.approx((mult * w * r).sum() / mult.sum())
        assert fast["snips"][b] == pytest.approx((mult * w * r).sum() / (mult * w).sum())
    again = ope.bootstrap_values(terms, users, 50, np.random.default_rng(1))
    np.testing.assert_array_equal(fast["ips"], again["ips"])


def test_user_bootstrap_covers_where_a_decision_bootstrap_does_not() -> None:
    """Clustered log (strong per-user effects): the user bootstrap's 90% interval covers the
    mean in about 90% of 200 logs; resampling decisions covers far less."""
    rng = np.random.default_rng(4)
    n_users, per_user = 100, 20
    users = np.repeat(np.arange(n_users), per_user)
    cover = {"user": 0, "decision": 0}
    for _ in range(200):
        r = (rng.normal(size=n_users)[users] + rng.normal(size=len(users)) * 0.5) + 5.0
        terms = {"ips": ope.ips(r, np.ones_like(r))}
        for unit, ids in (("user", users), ("decision", np.arange(len(users)))):
            e = ope.estimate(terms, ids, n_boot=300, level=0.9, rng=rng)["ips"]
            cover[unit] += e.ci_low <= 5.0 <= e.ci_high
    assert cover["user"] >= 160  # 80%+ of 200 (nominal 90%)
    assert cover["decision"] <= 100


def test_hcope_bound_by_hand_and_below_truth() -> None:
    x = np.ones(201)
    lb = ope.hcope_lower_bound(x, 0.05, np.random.default_rng(0))
    n = 201 - 10  # 5% (10 users) choose c = 1; Y = 1 has zero variance
    assert lb == pytest.approx(1 - 7 * np.log(2 / 0.05) / (3 * (n - 1)))
    rng = np.random.default_rng(2)
    misses = sum(ope.hcope_lower_bound(rng.exponential(2.0, 2000), 0.1, rng) > 2.0 for _ in range(100))
    assert misses <= 10  # a 90% bound (in practice far more conservative)
    with pytest.raises(ope.OPEError, match="nonnegative"):
        ope.hcope_lower_bound(np.array([1.0, -1.0, 2.0, 3.0]), 0.05, rng)


def test_estimate_reports_intervals_bound_and_verdict() -> None:
    logs, truth = _synthetic_logs(1, 20_000, seed=8)
    users = np.arange(20_000) // 10
    est = ope.single_item_estimators(*(logs[k][0] for k in ("reward", "logging", "target", "q_logged", "q_expected")))
    out = ope.estimate(est, users, n_boot=400, rng=np.random.default_rng(0))
    for e in out.values():
        assert e.ci_low < e.value < e.ci_high
    assert out["ips"].lower_bound < out["ips"].value and np.isnan(out["dr"].lower_bound)
    assert out["dm"].diagnostics is None and out["dr"].diagnostics is not None
    assert out["dr"].ci_low < truth < out["dr"].ci_high
    v = ope.verdict({k: out[k] for k in ("ips", "snips", "dr")})
    assert v.conclusive, v.reasons
    # a target far off the logger's support: tiny ESS -> inconclusive
    w = np.where(np.arange(20_000) % 1000 == 0, 1000.0, 0.0)
    poor = ope.estimate({"ips": ope.ips(logs["reward"][0], w)}, users, n_boot=50, rng=np.random.default_rng(0))
    v = ope.verdict(poor)
    assert not v.conclusive and "effective sample size" in v.reasons[0]


# ---------------------------------------------------------------- reward model
def test_ridge_model_recovers_a_bilinear_truth_and_is_cross_fitted() -> None:
    rng = np.random.default_rng(0)
    n, c = 4000, 6
    xu, xi = rng.normal(size=(n, 3)), rng.normal(size=(n, c, 2))
    theta = rng.normal(size=(4, 3))
    truth = np.einsum("ng,ncg->nc", ope.with_constant(xu) @ theta, ope.with_constant(xi))
    a = rng.integers(0, c, n)
    users = np.arange(n) // 4
    r = truth[np.arange(n), a]
    q = ope.ridge_reward_model(xu, xi, a, r, users, alpha=1e-6, rng=np.random.default_rng(1))
    np.testing.assert_allclose(q, truth, atol=1e-4)
    # a user's own rewards do not enter its predictions (folds split by user)
    r2 = r.copy()
    r2[users == 0] += 100.0
    q2 = ope.ridge_reward_model(xu, xi, a, r2, users, alpha=1e-6, rng=np.random.default_rng(1))
    np.testing.assert_allclose(q2[users == 0], q[users == 0], atol=1e-6)


def test_sklearn_model_by_name_or_a_clear_message() -> None:
    rng = np.random.default_rng(0)
    xu, xi, a = rng.normal(size=(50, 2)), rng.normal(size=(50, 3, 2)), rng.integers(0, 3, 50)
    args = (xu, xi, a, rng.random(50), np.arange(50))
    with pytest.raises(ope.OPEError, match="scikit-learn regressor"):
        ope.sklearn_reward_model("numpy.linalg.lstsq", *args, rng=rng)
    try:
        import sklearn  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ope.OPEError, match="needs scikit-learn"):
            ope.sklearn_reward_model("sklearn.linear_model.Ridge", *args, rng=rng)
    else:
        q = ope.sklearn_reward_model("sklearn.linear_model.Ridge", *args, rng=rng)
        assert q.shape == (50, 3)


# ---------------------------------------------------------------- obp parity
FIXTURE = Path(__file__).parent / "data" / "obp_reference.json"


def test_estimators_equal_obp_on_its_fixture() -> None:
    """obp 0.5.7's values on fixed synthetic inputs, stored by ``benchmarks/obp_reference.py``
    (run in a separate venv; neither the package nor CI depends on obp)."""
    ref = json.loads(FIXTURE.read_text())
    inp = {k: np.asarray(v) for k, v in ref["inputs"].items()}
    n = len(inp["reward"])
    w = inp["target_dist"][np.arange(n), inp["action"]] / inp["pscore"]
    q_logged = inp["q_hat"][np.arange(n), inp["action"]]
    q_expected = ope.expected_under_target(inp["target_dist"], inp["q_hat"])
    p = ref["params"]
    ours = {
        "ipw": ope.ips(inp["reward"], w).value,
        "ipw_clipped": ope.ips(inp["reward"], w, clip=p["clip"]).value,
        "snipw": ope.snips(inp["reward"], w).value,
        "dm": ope.dm(q_expected).value,
        "dr": ope.dr(inp["reward"], w, q_logged, q_expected).value,
        "sndr": ope.sndr(inp["reward"], w, q_logged, q_expected).value,
        "switch-dr": ope.switch_dr(inp["reward"], w, q_logged, q_expected, p["tau"]).value,
        "dr-os": ope.dr_os(inp["reward"], w, q_logged, q_expected, p["lam"]).value,
    }
    s = {k: np.asarray(v) for k, v in ref["slate_inputs"].items()}
    ours |= {
        "sips": ope.slate_sips(s["slot_reward"], s["logging_cond"], s["target_cond"]).value,
        "iips": ope.slate_iips(s["slot_reward"], s["logging_marginal"], s["target_marginal"]).value,
        "rips": ope.slate_rips(s["slot_reward"], s["logging_cond"], s["target_cond"]).value,
        "cascade-dr": ope.slate_cascade_dr(
            s["slot_reward"], s["logging_cond"], s["target_cond"], s["q_logged"], s["q_expected"]
        ).value,
    }
    assert set(ours) == set(ref["obp"])
    for name, value in ref["obp"].items():
        assert ours[name] == pytest.approx(value, rel=1e-10, abs=1e-12), name


def test_bench_ope_runs_on_a_small_log(capsys: pytest.CaptureFixture[str]) -> None:
    """The benchmark script still runs (no timing asserted)."""
    spec = importlib.util.spec_from_file_location(
        "bench_ope", Path(__file__).parents[1] / "benchmarks" / "bench_ope.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--decisions", "20000", "--users", "500", "--boot", "50"])
    out = capsys.readouterr().out
    assert "sndr" in out and "total" in out
