"""``bubblegym ope-check``: off-policy estimators checked against the simulator's two truths.

Protocol (``docs/ope.md``; ``ope-research.md`` section 3), on a single-item world (k = 1):

1. A scoring model (bilinear ridge on the observed user and item features) is fitted once
   on a uniform-random run of a separate training seed and frozen.
2. For each seed, the logging policy (epsilon-greedy or softmax on that model: full support)
   serves the world and its decisions are logged with exact propensities. At every step the
   targets' probabilities of every candidate are recorded, and so is the per-decision term
   of **T1**, ``sum_a pi_e(a | x_i) E[r | state_i, a]``, computed without noise by
   :func:`simenv.slate_value.slate_value`: the target's exact one-step value on the logged
   states, which is what OPE estimates.
3. Each target is run online on the same world seed (common random numbers): **T2**, what a
   launch would see over the same horizon.
4. Every estimator of :mod:`experiments.ope` runs on each log prefix (log sizes), with a
   cross-fitted bilinear ridge reward model for DM/DR and a user bootstrap for intervals.

:func:`summarise` gives, per target, log size and estimator: relative error, bias, RMSE,
coverage and width of the intervals (of T1, and of T2 for contrast), and the deployment gap
``(T2 - T1) / T1`` with its interval over seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from experiments import ope
from simenv import Simulator
from simenv.config import WorldConfig, get_preset, with_overrides
from simenv.slate_value import slate_value

WHAT_IS_ESTIMATED = "the value of the target on the logging policy's traffic, one step ahead"
"""What an off-policy estimate from logs is (never "the value if launched")."""

ASSUMPTIONS = (
    "logged propensities are correct and complete (every served item's probability under the logger)",
    "overlap: the logger gives every action the target may take a positive probability",
    "no interference: one user's outcome does not depend on what others were shown",
    "users at deployment look like the logged ones (same states, same distribution)",
    "one step ahead: the target's effect on users' future states is not part of the estimate",
)

NOT_IDENTIFIABLE = (
    "the deployment gap: users change with what they are shown, so a launched target meets "
    "other states than the logger's (`bubblegym ope-check` measures it in the simulator as T2 - T1)",
    "long-horizon effects: interest narrowing, homogenisation across users, retention and churn",
)

NO_DYNAMICS: dict[str, dict[str, float]] = {
    "dynamics": {"amplification": 0.0, "exposure": 0.0, "skip_repulsion": 0.0, "satiation": 0.0, "drift": 0.0}
}
"""Overrides that switch preference dynamics off: T2 then equals T1 up to noise."""


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class PolicySpec:
    """A policy on the frozen scoring model: ``greedy``, ``egreedy:<epsilon>``, ``softmax:<temperature>``
    or ``uniform``; probabilities over the C candidates are exact (:meth:`probabilities`)."""

    kind: str
    param: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> PolicySpec:
        kind, _, raw = spec.partition(":")
        allowed = "greedy, uniform, egreedy:<epsilon in [0, 1]>, softmax:<temperature > 0>"
        if kind in ("greedy", "uniform") and not raw:
            return cls(kind)
        if kind in ("egreedy", "softmax") and raw:
            try:
                value = float(raw)
            except ValueError:
                raise ope.OPEError(f"policy {spec!r}: {raw!r} is not a number; allowed: {allowed}") from None
            if (kind == "egreedy" and 0.0 <= value <= 1.0) or (kind == "softmax" and value > 0.0):
                return cls(kind, value)
        raise ope.OPEError(f"policy {spec!r} is not understood; allowed: {allowed}")

    @property
    def label(self) -> str:
        return self.kind if self.kind in ("greedy", "uniform") else f"{self.kind}:{self.param:g}"

    @property
    def stochastic_full_support(self) -> bool:
        """Whether every candidate has positive probability (a valid logging policy)."""
        return self.kind in ("uniform", "softmax") or (self.kind == "egreedy" and self.param > 0)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """(N, C) probabilities from (N, C) scores."""
        n, c = scores.shape
        if self.kind == "uniform":
            return np.full((n, c), 1.0 / c)
        if self.kind == "softmax":
            z = (scores - scores.max(axis=1, keepdims=True)) / self.param
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        eps = self.param if self.kind == "egreedy" else 0.0
        p = np.full((n, c), eps / c)
        p[np.arange(n), scores.argmax(axis=1)] += 1.0 - eps
        return p


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) one candidate per row by inverse CDF on one uniform each."""
    u = rng.random(len(probs))[:, None]
    return np.minimum((u >= np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class CheckSettings:
    """What ``ope-check`` runs.

    Attributes:
        users: concurrent sessions N. steps: decisions per session (log = N * steps).
        seeds: world seeds (one log and one online run of each target per seed).
        log_steps: prefixes of the log (in steps) to estimate on; empty: the full log.
        logger: logging policy spec (stochastic, full support).
        targets: target policy specs.
        train_seed, train_users, train_steps: the uniform-random run the scoring model is fitted on.
        ridge_alpha: penalty of the scoring and reward models. n_folds: cross-fitting folds.
        n_boot: user-bootstrap resamples. level: interval coverage.
        clip, tau, lam: IPS clipping, Switch-DR threshold, DR-os shrinkage.
        online: run each target online for T2 (off: T2 is NaN; halves the cost).
    """

    users: int = 1000
    steps: int = 100
    seeds: tuple[int, ...] = tuple(range(10))
    log_steps: tuple[int, ...] = ()
    logger: str = "egreedy:0.3"
    targets: tuple[str, ...] = ("greedy", "softmax:0.2", "egreedy:0.1")
    train_seed: int = 10_000
    train_users: int = 1000
    train_steps: int = 20
    ridge_alpha: float = 1.0
    n_folds: int = 5
    n_boot: int = 200
    level: float = 0.95
    clip: float = np.inf
    tau: float = 10.0
    lam: float = 10.0
    online: bool = True

    def __post_init__(self) -> None:
        for name in ("users", "steps", "train_users", "train_steps", "n_boot"):
            if int(getattr(self, name)) < 1:
                raise ope.OPEError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.seeds:
            raise ope.OPEError("seeds must name at least one seed")
        bad = [s for s in self.log_steps if not 1 <= s <= self.steps]
        if bad:
            raise ope.OPEError(f"log_steps must lie in [1, steps = {self.steps}], got {bad}")
        if not PolicySpec.parse(self.logger).stochastic_full_support:
            raise ope.OPEError(
                f"logger {self.logger!r} is deterministic: importance weights need a logging policy that gives "
                "every candidate a positive probability (egreedy:<epsilon > 0>, softmax:<T> or uniform)"
            )
        for t in self.targets:
            PolicySpec.parse(t)

    @property
    def prefixes(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.log_steps))) or (self.steps,)


def single_item_world(config: WorldConfig) -> WorldConfig:
    """The world with slate size 1 (the check is single-item)."""
    return config if config.slate_size == 1 else with_overrides(config, {"slate_size": 1})


# --------------------------------------------------------------------------- runs


def fit_scoring_model(config: WorldConfig, settings: CheckSettings) -> np.ndarray:
    """(F_u + 1, F_i + 1) bilinear ridge coefficients fitted on a uniform-random run of the
    training seed: the frozen model the logger and the targets score candidates with."""
    sim = Simulator(config, settings.train_users, seed=settings.train_seed, oracle=False)
    rng = np.random.default_rng(np.random.SeedSequence([settings.train_seed, 1]))
    xu, xi, rewards = [], [], []
    for _ in range(settings.train_steps):
        obs = sim.obs
        a = rng.integers(0, config.n_candidates, settings.train_users)
        xu.append(obs["user"].copy())
        xi.append(obs["candidates"][np.arange(settings.train_users), a].copy())
        _, r, _, _, _ = sim.step(a[:, None])
        rewards.append(r.astype(np.float64))
    n = len(np.concatenate(rewards))
    fold = np.zeros(n, dtype=np.int64)
    theta = ope.fit_bilinear_ridge(
        np.concatenate(xu), np.concatenate(xi), np.concatenate(rewards), fold, 1, alpha=settings.ridge_alpha
    )
    return theta[0]


def scores_of(theta: np.ndarray, obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N, C) the scoring model's predicted reward of every candidate."""
    u1 = ope.with_constant(np.asarray(obs["user"], np.float64))
    c1 = ope.with_constant(np.asarray(obs["candidates"], np.float64))
    return np.einsum("ng,ncg->nc", u1 @ theta, c1)


@dataclass(frozen=True)
class LoggedRun:
    """One seed's log (n = steps * N decisions, in step order) and per-target truths.

    Attributes:
        user_id: (n,). user_features: (n, F_u). logged_item: (n, F_i) features of the served item.
        reward: (n,). logging_prob: (n,).
        target_prob: per target, (n,) its probability of the logged action.
        target_item_mean: per target, (n, F_i) its mean item features ``sum_a pi_e(a|x) e_a``.
        t1_terms: per target, (n,) ``sum_a pi_e(a|x_i) E[r | state_i, a]``.
        t2_steps: per target, (steps,) mean reward per step of its online run.
        users: N.
    """

    user_id: np.ndarray
    user_features: np.ndarray
    logged_item: np.ndarray
    reward: np.ndarray
    logging_prob: np.ndarray
    target_prob: Mapping[str, np.ndarray]
    target_item_mean: Mapping[str, np.ndarray]
    t1_terms: Mapping[str, np.ndarray]
    t2_steps: Mapping[str, np.ndarray]
    users: int


def _streams(seed: int) -> tuple[int, np.random.SeedSequence]:
    """The world seed and the policy's sampling stream of a seed (shared by the logger and the
    online targets: common random numbers)."""
    return seed, np.random.SeedSequence([seed, 2])


def log_run(config: WorldConfig, theta: np.ndarray, settings: CheckSettings, seed: int) -> LoggedRun:
    """Log one seed with the logging policy; record targets' probabilities and T1 terms."""
    world_seed, stream = _streams(seed)
    sim = Simulator(config, settings.users, seed=world_seed, oracle=False)
    rng = np.random.default_rng(stream)
    logger = PolicySpec.parse(settings.logger)
    targets = {t: PolicySpec.parse(t) for t in settings.targets}
    n_users, c = settings.users, config.n_candidates
    rows = np.arange(n_users)
    every = np.broadcast_to(np.arange(c)[None, :, None], (n_users, c, 1))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("user_id", "xu", "item", "reward", "p_log")}
    per_target: dict[str, dict[str, list[np.ndarray]]] = {t: {"p": [], "mean": [], "t1": []} for t in targets}
    for _ in range(settings.steps):
        obs = sim.obs
        scores = scores_of(theta, obs)
        p_log = logger.probabilities(scores)
        a = sample_actions(p_log, rng)
        values = slate_value(sim, every)  # (N, C) E[r | state, candidate]
        for label, policy in targets.items():
            p_t = policy.probabilities(scores)
            per_target[label]["p"].append(p_t[rows, a])
            per_target[label]["mean"].append(np.einsum("nc,ncf->nf", p_t, obs["candidates"]))
            per_target[label]["t1"].append((p_t * values).sum(axis=1))
        cols["user_id"].append(obs["user_id"].copy())
        cols["xu"].append(obs["user"].copy())
        cols["item"].append(obs["candidates"][rows, a].copy())
        cols["p_log"].append(p_log[rows, a])
        _, r, _, _, _ = sim.step(a[:, None])
        cols["reward"].append(r.astype(np.float64))
    t2 = {
        label: online_steps(config, theta, policy, settings, seed)
        if settings.online
        else np.full(settings.steps, np.nan)
        for label, policy in targets.items()
    }
    cat = {k: np.concatenate(v) for k, v in cols.items()}
    return LoggedRun(
        user_id=cat["user_id"],
        user_features=cat["xu"],
        logged_item=cat["item"],
        reward=cat["reward"],
        logging_prob=cat["p_log"],
        target_prob={t: np.concatenate(v["p"]) for t, v in per_target.items()},
        target_item_mean={t: np.concatenate(v["mean"]) for t, v in per_target.items()},
        t1_terms={t: np.concatenate(v["t1"]) for t, v in per_target.items()},
        t2_steps=t2,
        users=n_users,
    )


def online_steps(
    config: WorldConfig, theta: np.ndarray, policy: PolicySpec, settings: CheckSettings, seed: int
) -> np.ndarray:
    """(steps,) mean reward per step of ``policy`` run online on the seed's world (T2)."""
    world_seed, stream = _streams(seed)
    sim = Simulator(config, settings.users, seed=world_seed, oracle=False)
    rng = np.random.default_rng(stream)
    out = np.empty(settings.steps)
    for t in range(settings.steps):
        a = sample_actions(policy.probabilities(scores_of(theta, sim.obs)), rng)
        _, r, _, _, _ = sim.step(a[:, None])
        out[t] = float(r.mean())
    return out


# --------------------------------------------------------------------------- estimation


def estimate_run(run: LoggedRun, settings: CheckSettings, seed: int) -> pd.DataFrame:
    """One row per (target, log size, estimator): estimate, interval, diagnostics, T1 and T2."""
    records = []
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    for steps in settings.prefixes:
        n = steps * run.users
        sl = slice(0, n)
        model = ope.cross_fitted_bilinear(
            run.user_features[sl],
            run.logged_item[sl],
            run.reward[sl],
            run.user_id[sl],
            alpha=settings.ridge_alpha,
            n_folds=settings.n_folds,
            rng=rng,
        )
        q_logged = model.predict(run.user_features[sl], run.logged_item[sl])
        for label in settings.targets:
            q_expected = model.predict(run.user_features[sl], run.target_item_mean[label][sl])
            terms = ope.single_item_estimators(
                run.reward[sl],
                run.logging_prob[sl],
                run.target_prob[label][sl],
                q_logged,
                q_expected,
                clip=settings.clip,
                tau=settings.tau,
                lam=settings.lam,
            )
            results = ope.estimate(terms, run.user_id[sl], n_boot=settings.n_boot, level=settings.level, rng=rng)
            t1 = float(run.t1_terms[label][sl].mean())
            t2 = float(run.t2_steps[label][:steps].mean())
            for key, e in results.items():
                d = e.diagnostics
                records.append(
                    {
                        "seed": seed,
                        "target": label,
                        "decisions": n,
                        "estimator": key,
                        "value": e.value,
                        "ci_low": e.ci_low,
                        "ci_high": e.ci_high,
                        "t1": t1,
                        "t2": t2,
                        "ess_fraction": np.nan if d is None else d.ess_fraction,
                        "max_weight": np.nan if d is None else d.max_weight,
                        "mean_weight": np.nan if d is None else d.mean_weight,
                    }
                )
    return pd.DataFrame.from_records(records)


def run_check(config: WorldConfig, settings: CheckSettings) -> pd.DataFrame:
    """Every seed's estimates (see :func:`estimate_run`), on the single-item version of ``config``."""
    world = single_item_world(config)
    theta = fit_scoring_model(world, settings)
    frames = [estimate_run(log_run(world, theta, settings, s), settings, s) for s in settings.seeds]
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class CheckSummary:
    """The check's tables.

    Attributes:
        estimators: per (target, decisions, estimator): ``rel_error_mean``, ``rel_error_median``,
            ``rel_error_p90`` (|V - T1| / T1), ``bias`` and ``rel_bias`` (V - T1), ``rmse``,
            ``coverage_t1``, ``coverage_t2``, ``ci_width``, ``ess_fraction``, ``max_weight``,
            ``mean_weight``, ``seeds``.
        gap: per (target, decisions): T1 and T2 means and the deployment gap (T2 - T1) / T1
            with its t interval over seeds (``gap``, ``gap_low``, ``gap_high``).
        level: the intervals' coverage.
    """

    estimators: pd.DataFrame
    gap: pd.DataFrame
    level: float
    notes: tuple[str, ...] = field(default_factory=tuple)


def summarise(results: pd.DataFrame, level: float = 0.95) -> CheckSummary:
    """Aggregate :func:`run_check`'s rows over seeds."""
    df = results.assign(
        err=results["value"] - results["t1"],
        rel=(results["value"] - results["t1"]).abs() / results["t1"].abs(),
        cover_t1=(results["ci_low"] <= results["t1"]) & (results["t1"] <= results["ci_high"]),
        cover_t2=((results["ci_low"] <= results["t2"]) & (results["t2"] <= results["ci_high"])).where(
            results["t2"].notna()
        ),
        width=results["ci_high"] - results["ci_low"],
    )
    g = df.groupby(["target", "decisions", "estimator"], sort=False)
    est = pd.DataFrame(
        {
            "rel_error_mean": g["rel"].mean(),
            "rel_error_median": g["rel"].median(),
            "rel_error_p90": g["rel"].quantile(0.9),
            "bias": g["err"].mean(),
            "rel_bias": g["err"].mean() / g["t1"].mean(),
            "rmse": np.sqrt(g["err"].apply(lambda e: float(np.mean(e**2)))),
            "coverage_t1": g["cover_t1"].mean(),
            "coverage_t2": g["cover_t2"].mean(),
            "ci_width": g["width"].mean(),
            "ess_fraction": g["ess_fraction"].mean(),
            "max_weight": g["max_weight"].max(),
            "mean_weight": g["mean_weight"].mean(),
            "seeds": g["seed"].nunique(),
        }
    ).reset_index()
    truths = df.drop_duplicates(["seed", "target", "decisions"])
    rows = []
    for (target, n), part in truths.groupby(["target", "decisions"], sort=False):
        gap = ((part["t2"] - part["t1"]) / part["t1"]).to_numpy()
        mean = float(gap.mean())
        if len(gap) > 1:
            half = float(stats.t.ppf(0.5 + level / 2, len(gap) - 1) * gap.std(ddof=1) / np.sqrt(len(gap)))
        else:
            half = np.nan
        rows.append(
            {
                "target": target,
                "decisions": n,
                "t1": float(part["t1"].mean()),
                "t2": float(part["t2"].mean()),
                "gap": mean,
                "gap_low": mean - half,
                "gap_high": mean + half,
                "seeds": len(gap),
            }
        )
    return CheckSummary(est, pd.DataFrame(rows), level)


def render(summary: CheckSummary, world: str) -> str:
    """The check as text: what is estimated, the assumptions, the tables, what logs cannot identify."""
    pct = summary.level * 100
    lines = [
        f"OPE check on {world}: estimates of {WHAT_IS_ESTIMATED},",
        "compared with T1 (that value, exact, from the simulator) and T2 (the target run online",
        "on the same world seed: what a launch would see).",
        "",
        "Assumptions of every estimate:",
        *(f"  - {a}" for a in ASSUMPTIONS),
        "",
    ]
    cols = ["rel_error_mean", "rel_error_p90", "rel_bias", "rmse", "coverage_t1", "coverage_t2", "ci_width"]
    table = summary.estimators.copy()
    for c in ("rel_error_mean", "rel_error_p90", "rel_bias", "coverage_t1", "coverage_t2"):
        table[c] = table[c].map(lambda v: "-" if pd.isna(v) else f"{v:.1%}")
    for c in ("rmse", "ci_width", "ess_fraction"):
        table[c] = table[c].map(lambda v: f"{v:.4g}")
    for (target, n), part in table.groupby(["target", "decisions"], sort=False):
        ess = part["ess_fraction"].iloc[-1]
        lines.append(f"Target {target}, {n:,} logged decisions, {part['seeds'].iloc[0]} seeds (ESS/n {ess}):")
        lines.append("  " + part[["estimator", *cols]].to_string(index=False).replace("\n", "\n  "))
        lines.append("")
    lines.append(f"Deployment gap (T2 - T1) / T1, {pct:.0f}% interval over seeds (simulation evidence):")
    if summary.gap["t2"].isna().all():
        lines.append("  not measured (targets not run online)")
    for r in summary.gap.dropna(subset=["t2"]).itertuples():
        lines.append(
            f"  {r.target:<14} {r.decisions:>10,}  T1 {r.t1:.4f}  T2 {r.t2:.4f}  gap {r.gap:+.2%} "
            f"[{r.gap_low:+.2%}, {r.gap_high:+.2%}]"
        )
    lines += ["", "What logs cannot identify (shown here only because the simulator knows its users):"]
    lines += [f"  - {t}" for t in NOT_IDENTIFIABLE]
    return "\n".join(lines)


def check_world(preset: str, overrides: Mapping[str, object] | None = None) -> WorldConfig:
    """A preset with nested overrides, single-item."""
    return single_item_world(with_overrides(get_preset(preset), dict(overrides or {})))


def seeds_from(count_or_list: int | Sequence[int]) -> tuple[int, ...]:
    """Seeds ``0..n-1`` for a count, or the given seeds."""
    if isinstance(count_or_list, int):
        return tuple(range(count_or_list))
    return tuple(int(s) for s in count_or_list)


# --------------------------------------------------------------------------- slates


def egreedy_slate_probabilities(
    scores: np.ndarray, slates: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Slot-by-slot epsilon-greedy over candidates: at slot j, the best remaining candidate
    with probability 1 - epsilon, else one of the C - j remaining uniformly.

    Args:
        scores: (N, C). slates: (N, k) candidate indices (distinct).
        epsilon: exploration, in [0, 1].

    Returns:
        ``(cond, best)``: (N, k) conditional probability of ``slates[:, j]`` given the slots
        before it, and (N, k) the best remaining candidate after each prefix ``slates[:, :j]``.
    """
    n, c = scores.shape
    k = slates.shape[1]
    rows = np.arange(n)
    masked = scores.astype(np.float64).copy()
    cond, best = np.empty((n, k)), np.empty((n, k), dtype=np.int64)
    for j in range(k):
        best[:, j] = masked.argmax(axis=1)
        cond[:, j] = (1.0 - epsilon) * (slates[:, j] == best[:, j]) + epsilon / (c - j)
        masked[rows, slates[:, j]] = -np.inf
    return cond, best


def sample_egreedy_slates(scores: np.ndarray, k: int, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """(N, k) slates drawn by :func:`egreedy_slate_probabilities`' law."""
    n, c = scores.shape
    rows = np.arange(n)
    masked = scores.astype(np.float64).copy()
    out = np.empty((n, k), dtype=np.int64)
    for j in range(k):
        explore = rng.random(n) < epsilon
        pick = masked.argmax(axis=1)
        # uniform among the remaining: the r-th unmasked candidate
        r = rng.integers(0, c - j, n)
        remaining = np.isfinite(masked)
        nth = np.argmax(np.cumsum(remaining, axis=1) > r[:, None], axis=1)
        out[:, j] = np.where(explore, nth, pick)
        masked[rows, out[:, j]] = -np.inf
    return out


def slate_check_run(
    config: WorldConfig, theta: np.ndarray, settings: CheckSettings, seed: int, epsilon: float = 0.3
) -> dict[str, float]:
    """One seed of the slate check (k = the world's slate size): an epsilon-greedy slate logger
    on the frozen scoring model, the greedy top-k target; returns T1 (its exact one-step value
    on the logged states, from :func:`simenv.slate_value.slate_value`) and SIPS, RIPS and
    cascade-DR (a per-slot bilinear ridge model, cross-fitted by user), each with the
    reward-structure assumption it needs in :data:`experiments.ope.ASSUMPTION_TEXT`."""
    world_seed, stream = _streams(seed)
    sim = Simulator(config, settings.users, seed=world_seed, oracle=False)
    rng = np.random.default_rng(stream)
    k = config.slate_size
    rows = np.arange(settings.users)
    keep: dict[str, list[np.ndarray]] = {
        n: [] for n in ("uid", "xu", "items", "next", "slot_reward", "log_cond", "tgt_cond", "t1")
    }
    for _ in range(settings.steps):
        obs = sim.obs
        scores = scores_of(theta, obs)
        slates = sample_egreedy_slates(scores, k, epsilon, rng)
        log_cond, best = egreedy_slate_probabilities(scores, slates, epsilon)
        greedy = egreedy_slate_probabilities(scores, np.argsort(-scores, axis=1)[:, :k], 0.0)[1]
        keep["t1"].append(slate_value(sim, greedy))
        keep["log_cond"].append(log_cond)
        keep["tgt_cond"].append((slates == best).astype(np.float64))
        keep["uid"].append(obs["user_id"].copy())
        keep["xu"].append(obs["user"].copy())
        keep["items"].append(obs["candidates"][rows[:, None], slates].copy())  # (N, k, F_i)
        keep["next"].append(obs["candidates"][rows[:, None], best].copy())  # target's pick after each prefix
        _, r, _, _, info = sim.step(slates)
        slot_reward = np.zeros((settings.users, k))
        clicked = info["click"] >= 0
        slot_reward[np.flatnonzero(clicked), info["click"][clicked]] = r[clicked]
        keep["slot_reward"].append(slot_reward)
    a = {name: np.concatenate(v) for name, v in keep.items()}
    model_rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    q_logged, q_expected = np.empty_like(a["slot_reward"]), np.empty_like(a["slot_reward"])
    for j in range(k):
        model = ope.cross_fitted_bilinear(
            a["xu"], a["items"][:, j], a["slot_reward"][:, j], a["uid"], alpha=settings.ridge_alpha, rng=model_rng
        )
        q_logged[:, j] = model.predict(a["xu"], a["items"][:, j])
        q_expected[:, j] = model.predict(a["xu"], a["next"][:, j])
    return {
        "t1": float(a["t1"].mean()),
        "sips": ope.slate_sips(a["slot_reward"], a["log_cond"], a["tgt_cond"]).value,
        "rips": ope.slate_rips(a["slot_reward"], a["log_cond"], a["tgt_cond"]).value,
        "cascade-dr": ope.slate_cascade_dr(a["slot_reward"], a["log_cond"], a["tgt_cond"], q_logged, q_expected).value,
    }
