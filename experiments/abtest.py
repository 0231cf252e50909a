"""Simulated A/B tests in one world, their statistics, and sample size.

An A/B test here is what a product team runs, played in one simulated world:

* **Assignment.** Every user is assigned to an arm by a hash of its user id
  (:func:`assign_arms`: the splitmix64 finaliser of ``id + salt``), so a user keeps its arm
  whenever it returns, and a newcomer that replaces a churned user is assigned by its own
  (new) id the same way.
* **Serving.** Each step the batch of sessions is split by arm; each arm's agent chooses the
  slates of its rows only, the slates are assembled into one (N, k) action, the world steps
  once, and each agent learns from its own rows' feedback only (:func:`run_world`).
* **Outcomes (intention to treat).** The analysed population is the cohort of users who
  exist when the test starts (ids ``0..P-1``), each in the arm it was assigned, whatever
  happens to it: a user who churns keeps what it did before and counts zero afterwards.
  Newcomers are served by their arm but are not in the cohort (how many join depends on the
  arm's churn, so counting them would compare unlike populations). Per user: engagement
  per step of the horizon (minutes / T), clicks, served slates (impressions), retained.
* **Tests.** A Welch t-test per per-user metric (:func:`welch_test`); CTR is a ratio of
  sums over users (clicks / impressions), tested with the delta method
  (:func:`ratio_test`, Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric
  Analytics", KDD).
* **Replications.** With several world seeds (:func:`run_abtest`) the share of seeds that
  reject is the test's empirical power (A/B) or false-positive rate (A/A, both arms the same
  agent spec).
* **Sample size.** :func:`users_per_arm` and :func:`power_at` give the normal-approximation
  sample size and power of a two-sided two-sample test (e.g. Kohavi, Tang & Xu 2020,
  "Trustworthy Online Controlled Experiments", ch. 17), from the per-user coefficient of
  variation; :func:`per_user_cv` gets that CV from the per-step CV and the within-user
  correlation through Kish's design effect ``1 + (m - 1) rho``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from agents.base import Agent, AgentError, Feedback
from experiments.runner import RunError

METRICS = ("engagement", "clicks", "retained", "ctr")
"""The per-user metrics tested, ``engagement`` first (the primary metric)."""

METRIC_MEANING = {
    "engagement": "engagement per step of the horizon (minutes / T) per user",
    "clicks": "clicks per user over the horizon",
    "retained": "share of users who did not churn during the horizon",
    "ctr": "clicks / served slates, a ratio of sums over users (delta method)",
}

SURVEY_USERS_PER_VARIANT = (10_000, 25_000)
"""Users per variant the seed survey quotes for industrial A/B tests."""

REAL_PRODUCT_CV = 1.0
"""Per-user coefficient of variation typical of engagement metrics in real products."""


class AbTestError(RunError):
    """An A/B test was asked for with a bad input (arms, users, steps, seeds, alpha, power, CV...)."""


# --------------------------------------------------------------------------- assignment

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def assign_arms(user_ids: np.ndarray, n_arms: int, salt: int = 0) -> np.ndarray:
    """Arm of each user: ``splitmix64(id + (salt + 1) * golden) mod n_arms``.

    The splitmix64 finaliser (Steele, Lea & Flood 2014) mixes every bit of the id, so
    consecutive ids land in arms independently; the same id and salt always give the same
    arm (a returning user, or a newcomer's id, is assigned the same way every time).

    Args:
        user_ids: (B,) non-negative integer user ids.
        n_arms: number of arms, >= 2.
        salt: the experiment's salt (another salt, another independent randomisation).

    Returns:
        (B,) int64 arms in [0, n_arms).
    """
    if n_arms < 2:
        raise AbTestError(f"an A/B test needs at least 2 arms; got {n_arms}")
    with np.errstate(over="ignore"):
        z = np.asarray(user_ids).astype(np.uint64) + np.uint64((int(salt) + 1) % 2**64) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z ^= z >> np.uint64(31)
    return (z % np.uint64(n_arms)).astype(np.int64)


# --------------------------------------------------------------------------- arm specs


@dataclass(frozen=True)
class ArmSpec:
    """One arm: a registry agent name and its parameters (``linucb:alpha=0.5``)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``name`` or ``name:key=value,...`` as written on the command line."""
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params.items())


def parse_arms(text: str) -> list[ArmSpec]:
    """Parse ``--arms``: comma-separated registry specs, ``name[:key=value[,key=value...]]``.

    A comma-separated token holding ``=`` continues the previous arm's parameters, so
    ``linucb:alpha=0.5,lam=2,random`` is two arms. Values are read as YAML scalars
    (``0.5`` a number, ``true`` a flag) and checked against the agent's declared parameters.

    Raises:
        AgentError: an empty spec, an unknown agent (listing the registered ones), a
            parameter the agent does not have or a value its rule refuses.
    """
    from agents.registry import agent_class, check_parameter

    arms: list[tuple[str, dict[str, Any]]] = []
    for token in (t.strip() for t in str(text).split(",")):
        if not token:
            raise AgentError(f"--arms {text!r} has an empty arm; write registry specs like 'linucb:alpha=0.5,random'")
        name, _, rest = token.partition(":") if ":" in token or "=" not in token else ("", "", token)
        if name:
            arms.append((name.strip(), {}))
        elif not arms:
            raise AgentError(f"--arms {text!r}: parameter {token!r} comes before any agent name")
        if rest:
            key, eq, value = rest.partition("=")
            if not eq or not key.strip():
                raise AgentError(f"--arms {text!r}: {rest!r} must be key=value (an agent parameter)")
            arms[-1][1][key.strip()] = yaml.safe_load(value) if value.strip() else ""
    specs = []
    for name, params in arms:
        agent_class(name)  # AgentError naming the registered agents
        for key, value in params.items():
            check_parameter(name, key, value)
        specs.append(ArmSpec(name, params))
    return specs


# --------------------------------------------------------------------------- one world


@dataclass(frozen=True)
class UserOutcomes:
    """Intention-to-treat outcomes of the cohort (users present at the start), one row per user.

    Attributes:
        user_id: (P,) int64 ids ``0..P-1``.
        arm: (P,) int64 assigned arm.
        engagement: (P,) float64 total engagement (minutes) over the horizon.
        clicks: (P,) int64 clicks over the horizon.
        impressions: (P,) int64 slates served to the user.
        churned: (P,) bool, the user churned during the horizon (and counts zero afterwards).
        step_engagement: (T, P) float32 engagement of each user at each step (0 when not
            served, after churning or without a click): the repeated measures.
        newcomers: (A,) int64 users who joined during the horizon (replacing churners),
            by assigned arm; served by their arm, not in the cohort.
    """

    user_id: np.ndarray
    arm: np.ndarray
    engagement: np.ndarray
    clicks: np.ndarray
    impressions: np.ndarray
    churned: np.ndarray
    step_engagement: np.ndarray
    newcomers: np.ndarray

    @property
    def steps(self) -> int:
        return self.step_engagement.shape[0]

    def frame(self) -> pd.DataFrame:
        """The per-user rows as a DataFrame (engagement per step, not the total)."""
        return pd.DataFrame(
            {
                "user_id": self.user_id,
                "arm": self.arm,
                "engagement": self.engagement / self.steps,
                "clicks": self.clicks,
                "impressions": self.impressions,
                "retained": ~self.churned,
            }
        )


def run_world(
    env: Any,
    agents: Sequence[Agent],
    steps: int,
    seed: int,
    rngs: Sequence[np.random.Generator],
    salt: int = 0,
) -> UserOutcomes:
    """Play one A/B test in one world: users split by :func:`assign_arms`, each arm's agent
    serving and learning from its own rows only.

    Args:
        env: a :class:`simenv.RecVectorEnv` (reset here with ``seed``).
        agents: one agent per arm (A >= 2), arm 0 the control.
        steps: T, steps of the horizon.
        seed: the world seed.
        rngs: one generator per agent (its exploration draws).
        salt: the assignment salt.

    Returns:
        The cohort's :class:`UserOutcomes`.
    """
    n_arms = len(agents)
    obs, info = env.reset(seed=seed)
    sim = env.sim
    cohort = sim.population_size  # ids 0..P-1 exist at the start
    k = sim.config.slate_size
    step_engagement = np.zeros((steps, cohort), dtype=np.float32)
    clicks = np.zeros(cohort, dtype=np.int64)
    impressions = np.zeros(cohort, dtype=np.int64)
    churned = np.zeros(cohort, dtype=bool)
    truth = ("candidate_utility", "best_slate")
    for t in range(steps):
        user_id = obs["user_id"].copy()
        arm = assign_arms(user_id, n_arms, salt)
        slates = np.empty((len(user_id), k), dtype=np.int64)
        served = []
        for a, agent in enumerate(agents):
            rows = np.flatnonzero(arm == a)
            if rows.size == 0:
                continue
            part = {key: value[rows] for key, value in obs.items()}  # copies: the buffers are reused
            if agent.needs_ground_truth:
                part.update({key: info[key][rows] for key in truth if key in info})
            decision = agent.act(part, rngs[a])
            slates[rows] = decision.slates
            served.append((agent, rows, part, decision))
        obs, reward, _, _, info = env.step(slates)
        for agent, rows, part, decision in served:
            agent.update(part, decision, Feedback(clicks=info["click"][rows], rewards=reward[rows]))
        old = user_id < cohort
        ids = user_id[old]
        step_engagement[t, ids] = info["engagement"][old]
        clicks[ids] += info["click"][old] >= 0
        impressions[ids] += 1
        churned[ids] |= info["churned"][old]
    ids = np.arange(cohort, dtype=np.int64)
    joined = np.arange(cohort, sim.population.next_id, dtype=np.int64)  # ids of the users who replaced churners
    newcomers = np.bincount(assign_arms(joined, n_arms, salt), minlength=n_arms).astype(np.int64)
    return UserOutcomes(
        user_id=ids,
        arm=assign_arms(ids, n_arms, salt),
        engagement=step_engagement.sum(axis=0, dtype=np.float64),
        clicks=clicks,
        impressions=impressions,
        churned=churned,
        step_engagement=step_engagement,
        newcomers=newcomers,
    )


# --------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class Comparison:
    """A two-sample comparison of arm B against arm A (arrays broadcast over leading axes).

    Attributes:
        mean_a, mean_b: the arms' estimates (a mean, or a ratio of means).
        diff: ``mean_b - mean_a``.
        se: standard error of ``diff``.
        df: Welch-Satterthwaite degrees of freedom.
        stat: ``diff / se``.
        p_value: two-sided.
        ci_low, ci_high: the ``1 - alpha`` confidence interval of ``diff``.
        cv_a: per-user coefficient of variation of arm A (``se_a sqrt(n_a) / |mean_a|``).
    """

    mean_a: np.ndarray
    mean_b: np.ndarray
    diff: np.ndarray
    se: np.ndarray
    df: np.ndarray
    stat: np.ndarray
    p_value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    cv_a: np.ndarray


def welch_test(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> Comparison:
    """Welch's unequal-variance t-test of ``mean(b) - mean(a)`` (Welch 1947).

    ``se = sqrt(s_a^2 / n_a + s_b^2 / n_b)``, Welch-Satterthwaite degrees of freedom
    ``se^4 / ((s_a^2/n_a)^2 / (n_a - 1) + (s_b^2/n_b)^2 / (n_b - 1))``.

    Args:
        a, b: (..., n_a) and (..., n_b) per-user outcomes (the last axis is users; leading
            axes, e.g. replications, are tested independently). n >= 2 each.
        alpha: the two-sided level of the interval.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = a.shape[-1], b.shape[-1]
    if na < 2 or nb < 2:
        raise AbTestError(f"a Welch test needs at least 2 users per arm; got {na} and {nb}")
    ma, mb = a.mean(axis=-1), b.mean(axis=-1)
    va, vb = a.var(axis=-1, ddof=1) / na, b.var(axis=-1, ddof=1) / nb
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
        stat = (mb - ma) / se
        cv_a = np.sqrt(va * na) / np.abs(ma)
    return _result(ma, mb, se, df, stat, alpha, cv_a)


def ratio_delta(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A ratio of means ``R = mean(x) / mean(y)`` and its delta-method variance.

    ``Var(R) ~ (s_xx / ybar^2 - 2 xbar s_xy / ybar^3 + xbar^2 s_yy / ybar^4) / n``, with the
    sample (co)variances ``s`` (ddof 1) of the per-user pairs (Deng, Knoblich & Lu 2018, eq. 2):
    users, not impressions, are the independent units, so a user's clicks and impressions
    are correlated and the naive binomial variance of a CTR would be wrong.

    Args:
        x, y: (..., n) per-user numerator (clicks) and denominator (impressions).

    Returns:
        ``(R, var_R)``, each of shape (...).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = x.shape[-1]
    xm, ym = x.mean(axis=-1), y.mean(axis=-1)
    dx, dy = x - xm[..., None], y - ym[..., None]
    sxx = (dx * dx).sum(axis=-1) / (n - 1)
    syy = (dy * dy).sum(axis=-1) / (n - 1)
    sxy = (dx * dy).sum(axis=-1) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = xm / ym
        var = (sxx / ym**2 - 2.0 * xm * sxy / ym**3 + xm**2 * syy / ym**4) / n
    return ratio, var


def ratio_test(xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, alpha: float = 0.05) -> Comparison:
    """Test of ``R_b - R_a`` for a ratio metric (CTR = clicks / impressions), each arm's
    variance by the delta method (:func:`ratio_delta`); arms independent, so the variances
    add. The reference is Student's t with Welch-Satterthwaite degrees of freedom on the
    linearised per-user values (the usual z-test for large samples, better calibrated for
    small ones).

    Args:
        xa, ya: (..., n_a) arm A's per-user numerator and denominator; xb, yb: arm B's.
    """
    na, nb = np.shape(xa)[-1], np.shape(xb)[-1]
    if na < 2 or nb < 2:
        raise AbTestError(f"a ratio test needs at least 2 users per arm; got {na} and {nb}")
    ra, var_a = ratio_delta(xa, ya)
    rb, var_b = ratio_delta(xb, yb)
    se = np.sqrt(var_a + var_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = (rb - ra) / se
        cv_a = np.sqrt(var_a * na) / np.abs(ra)
        # the delta-method variance is the variance of the linearised per-user values
        # (x - R y) / ybar over n, so Welch-Satterthwaite's df applies (z as n grows)
        df = (var_a + var_b) ** 2 / (var_a**2 / (na - 1) + var_b**2 / (nb - 1))
    return _result(ra, rb, se, df, stat, alpha, cv_a)


def _result(
    ma: np.ndarray, mb: np.ndarray, se: np.ndarray, df: np.ndarray, stat: np.ndarray, alpha: float, cv_a: np.ndarray
) -> Comparison:
    """The two-sided p-value and interval of a t statistic with ``df`` degrees of freedom."""
    df = np.asarray(df, dtype=np.float64)
    p = 2.0 * stats.t.sf(np.abs(stat), df)
    q = stats.t.ppf(1.0 - alpha / 2.0, df)
    diff = mb - ma
    # a zero-variance comparison (e.g. retention 1 in both arms) has no evidence of a difference
    p = np.where(se > 0, p, np.where(diff == 0, 1.0, 0.0))
    return Comparison(ma, mb, diff, se, df, stat, p, diff - q * se, diff + q * se, cv_a)


# --------------------------------------------------------------------------- variance and power


@dataclass(frozen=True)
class RepeatedMeasures:
    """One-way ANOVA decomposition of a (users, m) matrix of per-step outcomes.

    Attributes:
        mean: grand mean per step.
        step_cv: CV of one step's outcome, ``sqrt(sigma_b^2 + sigma_w^2) / mean``.
        icc: within-user correlation ``rho = sigma_b^2 / (sigma_b^2 + sigma_w^2)``
            (intraclass correlation; ANOVA estimator, may be slightly negative by chance).
        steps: m, outcomes per user.
        user_cv: CV of the per-user mean over the m steps (measured directly).
    """

    mean: float
    step_cv: float
    icc: float
    steps: int
    user_cv: float

    @property
    def design_effect(self) -> float:
        """Kish's design effect ``1 + (m - 1) rho``."""
        return design_effect(self.steps, self.icc)


def repeated_measures(per_step: np.ndarray) -> RepeatedMeasures:
    """Decompose per-step outcomes into between-user and within-user variance.

    With mean squares ``MSB = m var(user means)`` and ``MSW`` (pooled within-user
    variance): ``sigma_w^2 = MSW``, ``sigma_b^2 = (MSB - MSW) / m`` (Searle, Casella &
    McCulloch 1992, ch. 3). Then ``Var(user mean) = sigma^2 (1 + (m-1) rho) / m`` exactly, so
    ``user_cv == per_user_cv(step_cv, m, icc)``.

    Args:
        per_step: (U, m) outcomes, U >= 2 users, m >= 2 steps.
    """
    x = np.asarray(per_step, dtype=np.float64)
    u, m = x.shape
    if u < 2 or m < 2:
        raise AbTestError(f"repeated measures need at least 2 users and 2 steps; got {u} x {m}")
    user_means = x.mean(axis=1)
    grand = float(user_means.mean())
    msb = m * float(user_means.var(ddof=1))
    msw = float(((x - user_means[:, None]) ** 2).sum() / (u * (m - 1)))
    between, within = (msb - msw) / m, msw
    total = between + within
    return RepeatedMeasures(
        mean=grand,
        step_cv=math.sqrt(total) / abs(grand) if grand else math.inf,
        icc=between / total if total > 0 else 0.0,
        steps=m,
        user_cv=math.sqrt(msb / m) / abs(grand) if grand else math.inf,
    )


def design_effect(steps: int, icc: float) -> float:
    """Kish (1965) design effect of averaging ``steps`` correlated outcomes per user: ``1 + (m-1) rho``."""
    return 1.0 + (steps - 1) * icc


def per_user_cv(step_cv: float, steps: int, icc: float) -> float:
    """CV of a user's mean over ``steps`` outcomes of CV ``step_cv`` and within-user correlation
    ``icc``: ``step_cv sqrt((1 + (m - 1) rho) / m)``. With rho = 1 the steps add nothing
    (CV stays ``step_cv``); with rho = 0 it shrinks like ``1 / sqrt(m)``."""
    return step_cv * math.sqrt(max(design_effect(steps, icc), 0.0) / steps)


def check_alpha_power(alpha: float, power: float | None = None) -> None:
    """Raise :class:`AbTestError` unless 0 < alpha < 1 and 0 < power < 1, with alpha < power."""
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise AbTestError(f"alpha (the two-sided significance level) must be a number in (0, 1); got {alpha!r}")
    if power is not None:
        if not (isinstance(power, int | float) and 0.0 < power < 1.0):
            raise AbTestError(f"power must be a number in (0, 1), e.g. 0.8; got {power!r}")
        if power <= alpha / 2:
            raise AbTestError(f"power must exceed alpha / 2 ({alpha / 2}); got {power}")


def _check_positive(name: str, value: float, meaning: str) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise AbTestError(f"{name} ({meaning}) must be a finite number > 0; got {value!r}")


def users_per_arm(mde: float, cv: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users per arm for a two-sided two-sample test to detect a relative lift ``mde``.

    ``n = 2 (z_{1 - alpha/2} + z_power)^2 cv^2 / mde^2`` (normal approximation; with
    alpha 0.05 and power 0.8 this is Lehr's / Kohavi's ``16 cv^2 / mde^2``).

    Args:
        mde: minimum detectable effect, relative to the control mean (0.02 = 2%).
        cv: per-user coefficient of variation (sd / mean) of the metric.
        alpha: two-sided significance level. power: 1 - type II error.
    """
    check_alpha_power(alpha, power)
    _check_positive("mde", mde, "minimum detectable relative effect, e.g. 0.02 for 2%")
    _check_positive("cv", cv, "per-user coefficient of variation sd / mean")
    z = stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power)
    return max(2, math.ceil(2.0 * z**2 * cv**2 / mde**2))  # a two-sample test needs 2 users per arm


def power_at(n: float, effect: float, cv: float, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample test with ``n`` users per arm at relative effect
    ``effect`` and per-user CV ``cv``: ``Phi(d - z) + Phi(-d - z)``, ``d = |effect| / (cv sqrt(2/n))``,
    ``z = z_{1-alpha/2}`` (normal approximation)."""
    check_alpha_power(alpha)
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    d = abs(effect) / (cv * math.sqrt(2.0 / n)) if cv > 0 else math.inf
    return float(stats.norm.cdf(d - z) + stats.norm.cdf(-d - z))


def detectable_effect(n: float, cv: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The relative MDE ``n`` users per arm detect: ``(z_{1-alpha/2} + z_power) cv sqrt(2/n)``."""
    check_alpha_power(alpha, power)
    return float((stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power)) * cv * math.sqrt(2.0 / n))


def sample_size_table(
    mdes: Sequence[float], cvs: dict[str, float], alpha: float = 0.05, power: float = 0.8
) -> pd.DataFrame:
    """Users per arm for each MDE (rows) and CV (columns ``"<label> (cv=...)"``); a column
    ``survey range`` names the CVs whose n falls in the survey's 10,000-25,000 per variant."""
    lo, hi = SURVEY_USERS_PER_VARIANT
    rows = []
    for mde in mdes:
        row: dict[str, Any] = {"mde": f"{100 * mde:g}%"}
        inside = []
        for label, cv in cvs.items():
            n = users_per_arm(mde, cv, alpha, power)
            row[f"{label} (cv={cv:.3g})"] = n
            if lo <= n <= hi:
                inside.append(label)
        row["survey range"] = ", ".join(inside) or "-"
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- replications


@dataclass(frozen=True)
class AbTestSetup:
    """What one simulated A/B test runs.

    Attributes:
        arms: the arms (arm 0 is the control A; the others are compared with it).
        users: N concurrent sessions (the cohort is the world's population, N unless the
            scenario sets ``horizon.population``).
        steps: T, steps of the horizon.
        seeds: the world seeds, one replication each (the salt of replication s is s).
        alpha: two-sided significance level.
        power: the power the sample sizes are computed for.
        aa: an A/A test (every arm the same spec): rejections are false positives.
        mde: a relative effect to size the test for (None: not asked).
        cv: the per-user CV of the team's own metric (``--cv``).
    """

    arms: tuple[ArmSpec, ...]
    users: int
    steps: int
    seeds: tuple[int, ...]
    alpha: float = 0.05
    power: float = 0.8
    aa: bool = False
    mde: float | None = None
    cv: float = REAL_PRODUCT_CV

    def __post_init__(self) -> None:
        if len(self.arms) < 2:
            raise AbTestError(f"an A/B test needs at least 2 arms (or --aa with one); got {len(self.arms)}")
        if self.aa and len({arm.label for arm in self.arms}) != 1:
            raise AbTestError(
                f"an A/A test serves the same agent spec in every arm; got {[a.label for a in self.arms]}"
            )
        for name, value, low in (("users", self.users, 4), ("steps", self.steps, 2)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise AbTestError(f"{name} must be an integer >= {low}; got {value!r}")
        if self.users * self.steps > MAX_USER_STEPS:
            raise AbTestError(
                f"users x steps must be at most {MAX_USER_STEPS:,} (the per-user step records); "
                f"got {self.users:,} x {self.steps:,}"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise AbTestError(f"seeds must be distinct integers >= 0, at least one; got {self.seeds!r}")
        check_alpha_power(self.alpha, self.power)
        _check_positive("cv", self.cv, "per-user coefficient of variation sd / mean of your own metric")
        if self.mde is not None:
            _check_positive("mde", self.mde, "minimum detectable relative effect, e.g. 0.02 for 2%")


MAX_USER_STEPS = 50_000_000
"""Bound on users x steps of one world (its (T, P) float32 per-user step records: 200 MB)."""


@dataclass(frozen=True)
class AbTestResult:
    """Everything an A/B test produced.

    Attributes:
        setup: what ran.
        scenario: the scenario's name.
        tests: one row per seed, treatment arm and metric (means, lift, interval, p, reject).
        users: one row per seed and cohort user (its arm and per-user outcomes).
        summary: one row per treatment arm and metric over the seeds: rejection rate with
            its Wilson interval, mean lift, the formula's power at that lift.
        variance: the control arm's engagement decomposition, averaged over seeds
            (``step_cv``, ``icc``, ``design_effect``, ``user_cv`` measured, ``user_cv_formula``).
        seconds: wall time.
    """

    setup: AbTestSetup
    scenario: str
    tests: pd.DataFrame
    users: pd.DataFrame
    summary: pd.DataFrame
    variance: dict[str, float]
    seconds: float


def compare_arms(outcomes: UserOutcomes, alpha: float) -> pd.DataFrame:
    """Every treatment arm against arm 0 on every metric of :data:`METRICS` (one world).

    Returns:
        One row per (arm, metric): ``arm, metric, n_a, n_b, mean_a, mean_b, diff, lift``
        (relative to ``mean_a``), ``se, ci_low, ci_high, p_value, reject, cv_a``.
    """
    t = outcomes.steps
    per_user = {
        "engagement": outcomes.engagement / t,
        "clicks": outcomes.clicks.astype(np.float64),
        "retained": (~outcomes.churned).astype(np.float64),
    }
    control = outcomes.arm == 0
    rows = []
    for arm in range(1, int(outcomes.arm.max(initial=0)) + 1):
        treated = outcomes.arm == arm
        results = {name: welch_test(values[control], values[treated], alpha) for name, values in per_user.items()}
        c, i = outcomes.clicks, outcomes.impressions
        results["ctr"] = ratio_test(c[control], i[control], c[treated], i[treated], alpha)
        for name in METRICS:
            r = results[name]
            lift = float(r.diff / r.mean_a) if r.mean_a else math.nan
            rows.append(
                {
                    "arm": arm,
                    "metric": name,
                    "n_a": int(control.sum()),
                    "n_b": int(treated.sum()),
                    **{key: float(getattr(r, key)) for key in ("mean_a", "mean_b", "diff", "se")},
                    "lift": lift,
                    "ci_low": float(r.ci_low),
                    "ci_high": float(r.ci_high),
                    "p_value": float(r.p_value),
                    "reject": bool(r.p_value < alpha),
                    "cv_a": float(r.cv_a),
                }
            )
    return pd.DataFrame(rows)


def summarise(tests: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per (arm, metric) over seeds: the rejection rate (empirical power, or false-positive
    rate in an A/A test) with its 95% Wilson interval, the mean lift, and the power the
    normal formula (:func:`power_at`) gives at that lift with the mean per-user CV and the
    mean users per arm (NaN where the CV is 0 or the lift is 0)."""
    rows = []
    for (arm, metric), group in tests.groupby(["arm", "metric"], sort=False):
        k, s = int(group["reject"].sum()), len(group)
        ci = stats.binomtest(k, s).proportion_ci(confidence_level=0.95, method="wilson")
        lift, cv = float(group["lift"].mean()), float(group["cv_a"].mean())
        n = float(np.minimum(group["n_a"], group["n_b"]).mean())
        usable = cv > 0 and math.isfinite(cv) and lift != 0 and math.isfinite(lift)
        rows.append(
            {
                "arm": arm,
                "metric": metric,
                "seeds": s,
                "rejections": k,
                "rejection_rate": k / s,
                "rate_ci_low": float(ci.low),
                "rate_ci_high": float(ci.high),
                "mean_a": float(group["mean_a"].mean()),
                "mean_b": float(group["mean_b"].mean()),
                "lift": lift,
                "lift_sd": float(group["lift"].std(ddof=1)) if s > 1 else math.nan,
                "cv_a": cv,
                "users_per_arm": n,
                "formula_power": power_at(n, lift, cv, alpha) if usable else math.nan,
            }
        )
    return pd.DataFrame(rows)


def build_arm_agents(
    arms: Sequence[ArmSpec], config: Any, seed: int, train: Callable[[Agent, Any], float] | None = None
) -> tuple[list[Agent], list[np.random.Generator]]:
    """One fresh agent and generator per arm for replication ``seed`` (seeds derived like the
    runner's :class:`~experiments.runner.SeedPlan`, one child per arm). An agent with a
    ``seed`` parameter not given gets one from its arm's child; ``train`` (if given) trains a
    :class:`~agents.base.Trainable` agent first."""
    from experiments.runner import SeedPlan, _build_agent

    children = SeedPlan.from_seed(seed).agent.spawn(len(arms))
    agents, rngs = [], []
    for arm, child in zip(arms, children, strict=True):
        plan = SeedPlan(world_seed=0, agent=child, training_seed=int(child.generate_state(1)[0]))
        agent = _build_agent(arm.name, config, dict(arm.params), plan)
        if train is not None:
            train(agent, plan)
        agents.append(agent)
        rngs.append(np.random.default_rng(child))
    return agents, rngs


def run_abtest(scenario: Any, setup: AbTestSetup, *, progress: bool = False) -> AbTestResult:
    """Run ``setup`` on the world of ``scenario`` (a :class:`~experiments.scenario.Scenario`),
    one replication per seed: fresh agents, the world seeded as the runner seeds it
    (:class:`~experiments.runner.SeedPlan`), the assignment salted by the seed.

    The scenario's operating conditions (delays, batched retraining, freezing) apply to every
    arm's agent, and agents with ``train()`` are trained on their own copy of the world first,
    as in ``bubblegym run``.
    """
    import time

    from experiments.runner import ScheduledLearner, SeedPlan, _train_if_needed
    from simenv import RecVectorEnv

    started = time.perf_counter()
    config = scenario.world_config()
    env = RecVectorEnv(setup.users, config=config, oracle=any(_needs_truth(arm.name) for arm in setup.arms))
    steps_to_train = scenario.training.steps

    def train(agent: Agent, plan: Any) -> float:
        return _train_if_needed(agent, scenario, steps_to_train, config, plan)

    tests, users, variances = [], [], []
    seeds = setup.seeds
    iterator: Any = seeds
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(seeds, desc="abtest seeds", unit="seed", leave=False)
    for seed in iterator:
        agents, rngs = build_arm_agents(setup.arms, config, seed, train)
        learners = [ScheduledLearner(agent, scenario.conditions) for agent in agents]
        world_seed = SeedPlan.from_seed(seed).world_seed
        outcomes = run_world(env, learners, setup.steps, world_seed, rngs, salt=seed)
        table = compare_arms(outcomes, setup.alpha)
        tests.append(table.assign(seed=seed))
        users.append(outcomes.frame().assign(seed=seed))
        control = outcomes.step_engagement[:, outcomes.arm == 0].T
        rm = repeated_measures(control)
        variances.append(
            {
                "step_cv": rm.step_cv,
                "icc": rm.icc,
                "design_effect": rm.design_effect,
                "user_cv": rm.user_cv,
                "user_cv_formula": per_user_cv(rm.step_cv, rm.steps, rm.icc),
                "mean_engagement_per_step": rm.mean,
                "newcomers": int(outcomes.newcomers.sum()),
            }
        )
    tests_frame = pd.concat(tests, ignore_index=True)
    variance = {key: float(np.mean([v[key] for v in variances])) for key in variances[0]}
    variance["steps"] = setup.steps
    return AbTestResult(
        setup=setup,
        scenario=scenario.name,
        tests=tests_frame,
        users=pd.concat(users, ignore_index=True),
        summary=summarise(tests_frame, setup.alpha),
        variance=variance,
        seconds=time.perf_counter() - started,
    )


def _needs_truth(name: str) -> bool:
    from agents.registry import agent_class

    return bool(agent_class(name).needs_ground_truth)


# --------------------------------------------------------------------------- report


MDE_ROWS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1)
"""Relative effects the sample-size table shows (plus ``--mde`` and the observed lift)."""


def power_section(result: AbTestResult) -> dict[str, Any]:
    """The sample-size part of the result: the simulator's per-user CV against the team's
    (``--cv``), users per arm for each MDE, where the survey's 10,000-25,000 falls, and the
    users each CV needs to detect the observed engagement lift."""
    setup, v = result.setup, result.variance
    sim_cv = v["user_cv"]
    cvs = {"simulator": sim_cv, "--cv": setup.cv}
    mdes = sorted(set(MDE_ROWS) | ({setup.mde} if setup.mde else set()))
    table = sample_size_table(mdes, cvs, setup.alpha, setup.power)
    lo, hi = SURVEY_USERS_PER_VARIANT
    survey = {
        label: [detectable_effect(n, cv, setup.alpha, setup.power) for n in (lo, hi)] for label, cv in cvs.items()
    }
    engagement = result.summary[result.summary["metric"] == "engagement"]
    observed = {}
    for _, row in engagement.iterrows():
        lift = row["lift"]
        if setup.aa or not math.isfinite(lift) or lift == 0:
            continue
        observed[int(row["arm"])] = {
            "lift": lift,
            **{label: users_per_arm(abs(lift), cv, setup.alpha, setup.power) for label, cv in cvs.items()},
        }
    return {"cvs": cvs, "table": table, "survey_mde": survey, "observed": observed}


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:+.2f}%"


def _num(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.4g}"


def format_result(result: AbTestResult) -> str:
    """The terminal report: the tests, the replications' rejection rates, the variance
    decomposition and the sample-size table (with the survey's range)."""
    setup, v = result.setup, result.variance
    names = "  ".join(f"{chr(65 + i)} = {arm.label}" for i, arm in enumerate(setup.arms))
    kind = "A/A" if setup.aa else "A/B"
    seeds = setup.seeds
    lines = [
        f"{kind} test on scenario '{result.scenario}': {names}",
        f"  {setup.users} users x {setup.steps} steps, {len(seeds)} world seed(s) "
        f"({seeds[0]}..{seeds[-1]}), alpha {setup.alpha} two-sided; users assigned by a hash of their id",
        "  intention to treat: the users present at the start, in their assigned arm; a churned user counts zero",
        f"  afterwards ({v['newcomers']:.0f} newcomers per seed, served by their arm, not analysed)",
        "",
    ]
    first = result.tests[result.tests["seed"] == seeds[0]]
    lines.append(f"Seed {seeds[0]}: {'arm':<4}{'metric':<12}{'A':>10}{'B':>10}{'lift':>9}  {'CI of B - A':<24}{'p':>8}")
    for _, r in first.iterrows():
        ci = f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
        lines.append(
            f"        {chr(65 + int(r['arm'])):<4}{r['metric']:<12}{_num(r['mean_a']):>10}{_num(r['mean_b']):>10}"
            f"{_pct(r['lift']):>9}  {ci:<24}{r['p_value']:>8.3g}" + ("  *" if r["reject"] else "")
        )
    lines.append(f"        (n = {int(first['n_a'].iloc[0])} vs {int(first['n_b'].iloc[0])} users; * rejects at alpha)")
    lines.append("")
    what = "false-positive rate (should be alpha)" if setup.aa else "empirical power (share of seeds rejecting)"
    lines.append(f"Over {len(seeds)} seed(s): {what}, 95% Wilson interval; formula power at the mean lift and CV")
    lines.append(f"  {'arm':<4}{'metric':<12}{'mean lift':>10}{'rejected':>10}  {'rate [95% CI]':<22}{'formula':>8}")
    for _, r in result.summary.iterrows():
        rate = f"{r['rejection_rate']:.2f} [{r['rate_ci_low']:.2f}, {r['rate_ci_high']:.2f}]"
        formula = "-" if setup.aa or not math.isfinite(r["formula_power"]) else f"{r['formula_power']:.2f}"
        lines.append(
            f"  {chr(65 + int(r['arm'])):<4}{r['metric']:<12}{_pct(r['lift']):>10}"
            f"{int(r['rejections']):>6}/{int(r['seeds']):<3}  {rate:<22}{formula:>8}"
        )
    if setup.aa:
        lines += _aa_verdict(result.summary, setup)
    lines += ["", *_power_lines(result)]
    return "\n".join(lines)


def _aa_verdict(summary: pd.DataFrame, setup: AbTestSetup) -> list[str]:
    """The metrics that reject in more seeds than alpha allows (one-sided exact binomial test
    at level 0.01 of ``rejections ~ Binomial(seeds, alpha)``), if any."""
    high = [
        f"{row.metric} (binomial p = {p:.2g})"
        for row in summary.itertuples()
        if (p := stats.binomtest(int(row.rejections), int(row.seeds), setup.alpha, alternative="greater").pvalue) < 0.01
    ]
    if not high:
        return [f"  no metric rejects more often than alpha = {setup.alpha} allows (binomial test at 0.01)"]
    return [
        f"  ABOVE alpha = {setup.alpha}: {', '.join(high)}.",
        "  The arms differ more than user-level noise explains;",
        "  with a learning agent each arm is one trained instance, whose learning luck all its users share",
        "  (see docs/abtest.md, 'A/A tests of learning agents').",
    ]


def _power_lines(result: AbTestResult) -> list[str]:
    setup, v = result.setup, result.variance
    power = power_section(result)
    lo, hi = SURVEY_USERS_PER_VARIANT
    lines = [
        f"Variance of engagement per step (control arm, mean over seeds): per-step CV {v['step_cv']:.3g}, "
        f"within-user correlation {v['icc']:.3g},",
        f"  design effect 1 + (m-1) rho = {v['design_effect']:.3g} over m = {setup.steps} steps -> per-user CV "
        f"{v['user_cv_formula']:.3g} (measured directly: {v['user_cv']:.3g})",
        f"Simulated users are more homogeneous than real ones: per-user CV {v['user_cv']:.3g} here, about "
        f"{REAL_PRODUCT_CV:g} in real products.",
        "  Take the effect size from the simulator and the variance from your own pre-period data (--cv).",
        "",
        f"Users per arm (alpha {setup.alpha}, power {setup.power}, two-sided; n = 2 (z_a/2 + z_b)^2 cv^2 / mde^2):",
    ]
    table = power["table"]
    header = list(table.columns)
    widths = [
        max(len(str(h)), *(len(f"{x:,}" if isinstance(x, int | np.integer) else str(x)) for x in table[h])) + 2
        for h in header
    ]
    lines.append("  " + "".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for _, row in table.iterrows():
        cells = [f"{x:,}" if isinstance(x, int | np.integer) else str(x) for x in row]
        lines.append("  " + "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    for label, (mde_lo, mde_hi) in power["survey_mde"].items():
        lines.append(
            f"  The survey's {lo:,}-{hi:,} users per variant detect a lift of {100 * mde_hi:.2g}%-{100 * mde_lo:.2g}% "
            f"at cv {power['cvs'][label]:.3g} ({label})."
        )
    for arm, obs in power["observed"].items():
        needs = ", ".join(f"{obs[label]:,} at cv {cv:.3g} ({label})" for label, cv in power["cvs"].items())
        lines.append(f"  Arm {chr(65 + arm)}'s engagement lift {_pct(obs['lift'])} needs {needs} users per arm.")
    return lines


def check_out_dir(out: Path) -> None:
    """Refuse an output directory that is a file or holds a ``bubblegym run`` (its manifest)."""
    if out.exists() and not out.is_dir():
        raise AbTestError(f"--out {out} is a file; give a directory")
    if (out / "manifest.json").exists():
        raise AbTestError(f"--out {out} holds a `bubblegym run` (manifest.json); give the A/B test its own directory")


def write_result(result: AbTestResult, out: Path) -> dict[str, Path]:
    """Write ``tests.parquet`` (per seed, arm and metric), ``users.parquet`` (per seed and
    cohort user), ``summary.parquet`` and ``abtest.json`` (setup, summary, variance, sample
    sizes) into ``out``, each atomically, the JSON last (its presence means complete)."""
    from experiments.files import write_json_atomic, write_parquet_atomic

    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "abtest.json").unlink(missing_ok=True)
    files = {name: out / f"{name}.parquet" for name in ("tests", "users", "summary")}
    for name, path in files.items():
        write_parquet_atomic(getattr(result, name), path)
    power = power_section(result)
    body = {
        "scenario": result.scenario,
        "setup": {**asdict(result.setup), "arms": [a.label for a in result.setup.arms]},
        "metrics": METRIC_MEANING,
        "summary": result.summary.to_dict(orient="records"),
        "variance": result.variance,
        "sample_size": {
            "cvs": power["cvs"],
            "table": power["table"].to_dict(orient="records"),
            "survey_users_per_variant": list(SURVEY_USERS_PER_VARIANT),
            "survey_detectable_lift": power["survey_mde"],
            "observed": {str(k): v for k, v in power["observed"].items()},
        },
        "seconds": result.seconds,
    }
    files["json"] = out / "abtest.json"
    write_json_atomic(json.loads(json.dumps(body, default=_jsonable)), files["json"])
    return files


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# --------------------------------------------------------------------------- command line


def command(args: Any) -> int:
    """``bubblegym abtest``: parse and check everything, run, print, write. Returns 0."""
    from experiments.scenario import load_scenario

    arms = parse_arms(args.arms)
    if args.aa and len(arms) == 1:
        arms = arms * 2
    scenario = load_scenario(args.scenario, check_agents=False)
    n_seeds = args.seeds if args.seeds is not None else len(scenario.seeds)
    setup = AbTestSetup(
        arms=tuple(arms),
        users=args.users,
        steps=args.steps if args.steps is not None else scenario.horizon.steps,
        seeds=tuple(range(n_seeds)) if args.seeds is not None else tuple(scenario.seeds),
        alpha=args.alpha,
        power=args.power,
        aa=args.aa,
        mde=args.mde,
        cv=args.cv,
    )
    out = Path(args.out) if args.out else Path("runs") / f"abtest-{scenario.name}"
    check_out_dir(out)
    result = run_abtest(scenario, setup, progress=not args.quiet)
    print(format_result(result))
    files = write_result(result, out)
    print(f"\n{result.seconds:.1f} s; wrote {files['json']} and {len(files) - 1} Parquet tables in {out}")
    return 0
