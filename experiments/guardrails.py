"""Guardrail verdicts with one-sided confidence bounds over seeds (``verdict.json``).

A scenario's guardrails (:class:`experiments.scenario.Guardrail`) say what a policy must
meet: absolute (``retention >= 0.9``) or relative to a baseline arm (the per-seed paired
change, ``arm - baseline`` or ``100 (arm / baseline - 1)`` %). Each is judged from the
per-seed values of the run summary (one value per seed; relative ones paired by seed and
world point, so both arms met the same users and noise: common random numbers):

* the mean ``m`` and standard error ``se = s / sqrt(n)`` of the n per-seed values;
* the *pass* test: H0 "the guardrail is violated" against H1 "it holds", a one-sided
  Student-t test (for ``>= c``: ``t = (m - c) / se``, p = P(T_{n-1} >= t)); ``within
  [a, b]`` is two one-sided tests (TOST, Schuirmann 1987), p = the larger of the two;
* the *fail* test: the mirror image (H0 "it holds");
* Holm's step-down procedure (Holm 1979) over the family of guardrails, separately for the
  pass and the fail tests, at ``alpha = 1 - level``: the guardrail of rank i (0-based, by
  p-value) is compared at ``alpha / (m - i)``. The family-wise error of declaring *pass*
  for any violated guardrail stays at most alpha.

Verdicts: ``pass`` (the pass test rejects: the one-sided bound at its Holm level clears
the threshold), ``fail`` (the fail test rejects: the opposite bound is on the wrong side),
``inconclusive`` (neither: the interval straddles the threshold). An inconclusive verdict
carries ``seeds_needed``: the smallest n with ``t_{1-alpha_i, n-1} s / sqrt(n) < |m - c|``,
i.e. the seeds that would decide it if the mean and spread stay as measured (rough).

``verdict.json`` (format 1) is shared with the report, which renders it::

    {"format": 1, "level": 0.95, "correction": "holm", "overall": "pass" | "fail" | "inconclusive",
     "guardrails": [{"metric", "arm", "baseline", "kind", "op", "threshold", "estimate", "bound",
                     "verdict", "seeds", "seeds_needed", "explanation", "scenario", "world", "change", "note"}]}

(``scenario``, ``world``, ``change`` and ``note`` are additions to the shared contract: the scenario
name, the world grid point label, ``""`` without a world sweep, the change scale and the
guardrail's stated reason.)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from experiments.scenario import Guardrail

VERDICT_FILE = "verdict.json"
VERDICT_FORMAT = 1
DEFAULT_LEVEL = 0.95
MAX_SEEDS_NEEDED = 10_000
"""Largest seed count :func:`seeds_needed` searches (the scenario limit)."""

_OPS = {">=": ">=", ">": ">=", "<=": "<=", "<": "<=", "within": "within"}
"""Scenario op -> verdict op (strict and non-strict coincide for continuous metrics)."""


class GuardrailError(ValueError):
    """Guardrails cannot be evaluated: a level outside (0.5, 1), a metric or arm missing from the run."""


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class OneSidedTest:
    """The pass and fail p-values of one guardrail from n per-seed values.

    Attributes:
        mean, sd: mean and sample standard deviation (ddof=1) of the values.
        n: number of values (seeds).
        p_pass: p-value of H0 "violated" (small: evidence it holds).
        p_fail: p-value of H0 "holds" (small: evidence it is violated).
    """

    mean: float
    sd: float
    n: int
    p_pass: float
    p_fail: float

    @property
    def se(self) -> float:
        return self.sd / math.sqrt(self.n) if self.n >= 2 else math.nan


def one_sided_test(values: Sequence[float] | np.ndarray, op: str, threshold: float | Sequence[float]) -> OneSidedTest:
    """Student-t pass/fail p-values of ``mean(values) op threshold``.

    Args:
        values: (n,) per-seed values (finite).
        op: ``">="``, ``"<="`` or ``"within"`` (then ``threshold`` is ``(lo, hi)``).
        threshold: the bound(s), in the values' unit.

    Returns:
        The test; with n < 2 both p-values are 1 (nothing can be decided). With zero spread
        the mean decides (equality counts as holding).
    """
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    sd = float(x.std(ddof=1)) if n >= 2 else math.nan
    if n < 2:
        return OneSidedTest(mean, sd, n, 1.0, 1.0)
    se = sd / math.sqrt(n)
    if op == "within":
        lo, hi = (float(v) for v in threshold)  # type: ignore[union-attr]
        p_lo_pass, p_lo_fail = _tail_pair(mean - lo, se, n - 1)
        p_hi_fail, p_hi_pass = _tail_pair(mean - hi, se, n - 1)
        return OneSidedTest(mean, sd, n, max(p_lo_pass, p_hi_pass), min(1.0, 2 * min(p_lo_fail, p_hi_fail)))
    p_high, p_low = _tail_pair(mean - float(threshold), se, n - 1)  # type: ignore[arg-type]
    return OneSidedTest(mean, sd, n, *((p_high, p_low) if op == ">=" else (p_low, p_high)))


def _tail_pair(margin: float, se: float, df: int) -> tuple[float, float]:
    """``(P(mean > c | mu = c), P(mean < c | mu = c))`` as t p-values for ``margin = mean - c``:
    the first is small when the mean is clearly above c, the second when clearly below. At
    zero spread the sign decides (a zero margin counts as on both sides: "holds")."""
    if se == 0:
        return (0.0 if margin >= 0 else 1.0, 0.0 if margin <= 0 else 1.0)
    t = margin / se
    return float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))


def confidence_bound(test: OneSidedTest, op: str, alpha: float) -> float | tuple[float, float]:
    """The one-sided (1 - alpha) bound on the pass side: lower for ``>=``, upper for ``<=``,
    ``(lower, upper)`` for ``within``; NaN with fewer than two values."""
    if test.n < 2:
        return (math.nan, math.nan) if op == "within" else math.nan
    half = float(stats.t.ppf(1 - alpha, test.n - 1)) * test.se
    lower, upper = test.mean - half, test.mean + half
    return {">=": lower, "<=": upper}.get(op, (lower, upper))


def holm(p_values: Sequence[float], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down procedure (Holm 1979).

    Args:
        p_values: (m,) p-values.
        alpha: the family-wise error rate.

    Returns:
        ``(rejected, alphas)``: (m,) bool, whether each hypothesis is rejected, and (m,) the
        level ``alpha / (m - rank)`` each p-value is compared at (rank by ascending p, ties
        in input order).
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    alphas = np.empty(m)
    alphas[order] = alpha / (m - np.arange(m))
    below = p[order] <= alphas[order]
    stop = int(np.argmin(below)) if not below.all() else m
    rejected = np.zeros(m, dtype=bool)
    rejected[order[:stop]] = True
    return rejected, alphas


def seeds_needed(test: OneSidedTest, op: str, threshold: float | Sequence[float], alpha: float) -> int | None:
    """Roughly how many seeds would decide an undecided guardrail: the smallest n > the
    current count with ``t_{1-alpha, n-1} sd / sqrt(n) < margin``, margin the distance of
    the mean from the nearest threshold, assuming the mean and spread stay as measured.
    None when it cannot be said (fewer than 2 seeds, zero margin, or more than
    :data:`MAX_SEEDS_NEEDED`)."""
    if test.n < 2 or not math.isfinite(test.sd):
        return None
    edges = list(threshold) if op == "within" else [threshold]  # type: ignore[arg-type]
    margin = min(abs(test.mean - float(c)) for c in edges)
    if margin == 0:
        return None
    ns = np.arange(test.n + 1, MAX_SEEDS_NEEDED + 1)
    if ns.size == 0:
        return None
    half = stats.t.ppf(1 - alpha, ns - 1) * test.sd / np.sqrt(ns)
    hits = np.flatnonzero(half < margin)
    return int(ns[hits[0]]) if hits.size else None


# --------------------------------------------------------------------------- guardrails x run


@dataclass(frozen=True)
class Check:
    """One guardrail on one arm at one world point: its per-seed values.

    Attributes:
        guardrail: the scenario's guardrail.
        scenario, world: the scenario name and the world grid point label.
        arm, baseline: the guarded arm and the baseline arm (None: absolute).
        values: (n,) per-seed values (absolute) or paired changes (relative).
        seeds: (n,) the seeds, in the order of ``values``.
        undefined: seeds whose value (or change) is not finite (left out of ``values``).
    """

    guardrail: Guardrail
    scenario: str
    world: str
    arm: str
    baseline: str | None
    values: np.ndarray
    seeds: tuple[int, ...]
    undefined: tuple[int, ...] = ()

    @property
    def op(self) -> str:
        return _OPS[self.guardrail.op]

    @property
    def threshold(self) -> float | list[float]:
        t = self.guardrail.threshold
        return [float(v) for v in t] if isinstance(t, tuple | list) else float(t)


def checks_of_run(summary: pd.DataFrame, guardrails: Sequence[Guardrail], scenario: str = "") -> list[Check]:
    """Expand guardrails over the arms and world points of a run summary.

    A guardrail applies to the arms of its ``agent`` (every agent's when None, except the
    baseline's), at every world point. Relative ones pair each arm's seed with the
    baseline's seed at the same world point.

    Args:
        summary: the run's ``summary.parquet`` (one row per task).
        guardrails: the scenario's guardrails.
        scenario: the scenario name (recorded in each check).

    Raises:
        GuardrailError: a guardrail's metric, agent or baseline is missing from the run.
    """
    checks: list[Check] = []
    for guard in guardrails:
        _require_columns(summary, guard)
        rows = summary if guard.agent is None else summary[summary["agent"] == guard.agent]
        if guard.baseline is not None:
            rows = rows[rows["agent"] != guard.baseline]
        for (world, arm), group in rows.groupby(["world_label", "arm"], sort=False):
            if guard.baseline is None:
                by_seed = group.set_index("seed")[guard.metric]
                checks.append(_check(guard, scenario, str(world), str(arm), None, by_seed))
                continue
            base = summary[(summary["agent"] == guard.baseline) & (summary["world_label"] == world)]
            pairs = group.merge(base[["seed", guard.metric, "arm"]], on="seed", suffixes=("", "__base"))
            arm_values, base_values = (
                pairs[guard.metric].to_numpy(float),
                pairs[f"{guard.metric}__base"].to_numpy(float),
            )
            change = _change(arm_values, base_values, guard.change)
            base_arm = str(base["arm"].iloc[0]) if len(base) else guard.baseline
            checks.append(
                _check(guard, scenario, str(world), str(arm), base_arm, pd.Series(change, index=pairs["seed"]))
            )
    return checks


def _require_columns(summary: pd.DataFrame, guard: Guardrail) -> None:
    if guard.metric not in summary.columns:
        raise GuardrailError(f"guardrail metric {guard.metric!r} is not in the run summary")
    for role, label in (("agent", guard.agent), ("baseline", guard.baseline)):
        if label is not None and label not in set(summary["agent"]):
            raise GuardrailError(
                f"guardrail {role} {label!r} ran no task; agents in the run: {sorted(set(summary['agent']))}"
            )


def _change(arm: np.ndarray, base: np.ndarray, scale: str) -> np.ndarray:
    """Per-seed change: ``arm - base`` or ``100 (arm / base - 1)`` (NaN where base is 0)."""
    if scale == "percent":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(base != 0, 100.0 * (arm / np.where(base != 0, base, 1.0) - 1.0), np.nan)
    return arm - base


def _check(guard: Guardrail, scenario: str, world: str, arm: str, baseline: str | None, by_seed: pd.Series) -> Check:
    finite = np.isfinite(by_seed.to_numpy(float))
    seeds = tuple(int(s) for s in by_seed.index)
    return Check(
        guardrail=guard,
        scenario=scenario,
        world=world,
        arm=arm,
        baseline=baseline,
        values=by_seed.to_numpy(float)[finite],
        seeds=tuple(s for s, ok in zip(seeds, finite, strict=True) if ok),
        undefined=tuple(s for s, ok in zip(seeds, finite, strict=True) if not ok),
    )


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """The verdicts of a family of guardrail checks (one run, or one vetting suite).

    Attributes:
        level: the family-wise confidence level (1 - alpha).
        guardrails: one entry per check, in ``verdict.json`` format.
    """

    level: float
    guardrails: list[dict[str, Any]] = field(default_factory=list)

    @property
    def overall(self) -> str:
        """``fail`` if any fails, else ``inconclusive`` if any is, else ``pass`` (also when empty)."""
        verdicts = {g["verdict"] for g in self.guardrails}
        return "fail" if "fail" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": VERDICT_FORMAT,
            "level": self.level,
            "correction": "holm",
            "overall": self.overall,
            "guardrails": self.guardrails,
        }

    def part(self, scenario: str) -> Verdict:
        """The entries of one scenario (same levels: the Holm family stays the whole one)."""
        return Verdict(self.level, [g for g in self.guardrails if g["scenario"] == scenario])


def check_level(level: float) -> float:
    """``level`` as a float in (0.5, 1); GuardrailError otherwise."""
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0.5 < float(level) < 1:
        raise GuardrailError(f"confidence level must be a number in (0.5, 1), e.g. 0.95; got {level!r}")
    return float(level)


def evaluate(checks: Sequence[Check], level: float = DEFAULT_LEVEL) -> Verdict:
    """Judge every check at family-wise ``level`` with Holm's correction (see the module doc).

    Args:
        checks: the family (one run's, or a whole vetting suite's).
        level: family-wise confidence, in (0.5, 1).

    Returns:
        The verdict, one ``verdict.json`` entry per check in input order.
    """
    alpha = 1.0 - check_level(level)
    tests = [one_sided_test(c.values, c.op, c.threshold) for c in checks]
    passed, pass_alphas = holm([t.p_pass for t in tests], alpha) if tests else (np.array([]), np.array([]))
    failed, _ = holm([t.p_fail for t in tests], alpha) if tests else (np.array([]), np.array([]))
    entries = []
    for i, (check, test) in enumerate(zip(checks, tests, strict=True)):
        verdict = "pass" if passed[i] else "fail" if failed[i] else "inconclusive"
        entries.append(_entry(check, test, verdict, float(pass_alphas[i]), len(checks), level))
    return Verdict(float(level), entries)


def _entry(check: Check, test: OneSidedTest, verdict: str, alpha_i: float, family: int, level: float) -> dict:
    bound = confidence_bound(test, check.op, alpha_i)
    needed = seeds_needed(test, check.op, check.threshold, alpha_i) if verdict == "inconclusive" else None
    return {
        "metric": check.guardrail.metric,
        "arm": check.arm,
        "baseline": check.baseline,
        "kind": "absolute" if check.baseline is None else "relative",
        "op": check.op,
        "threshold": check.threshold,
        "estimate": _number(test.mean),
        "bound": [_number(b) for b in bound] if isinstance(bound, tuple) else _number(bound),
        "verdict": verdict,
        "seeds": test.n,
        "seeds_needed": needed,
        "explanation": _explain(check, test, verdict, bound, alpha_i, family, level, needed),
        "scenario": check.scenario,
        "world": check.world,
        "change": None if check.baseline is None else check.guardrail.change,
        "note": check.guardrail.note,
    }


def _number(value: float) -> float | None:
    """JSON has no NaN: None for a non-finite number."""
    return float(value) if math.isfinite(value) else None


def describe(check: Check) -> str:
    """``"retention >= 0.9"`` or ``"reward_per_user_step change vs popularity (%) >= 2"``."""
    guard = check.guardrail
    what = guard.metric
    if check.baseline is not None:
        what += f" {'lift' if guard.change == 'percent' else 'change'} vs {check.baseline}"
        what += " (%)" if guard.change == "percent" else ""
    threshold = check.threshold
    shown = f"[{threshold[0]:g}, {threshold[1]:g}]" if isinstance(threshold, list) else f"{threshold:g}"
    return f"{what} {check.op} {shown}"


def _explain(
    check: Check,
    test: OneSidedTest,
    verdict: str,
    bound: float | tuple[float, float],
    alpha_i: float,
    family: int,
    level: float,
    needed: int | None,
) -> str:
    holm_text = f"one-sided {100 * (1 - alpha_i):.2f}% bound (Holm over {family} guardrail(s) at {100 * level:g}%)"
    unit = f" of paired {'lifts' if check.guardrail.change == 'percent' else 'differences'}" if check.baseline else ""
    text = f"{describe(check)}: mean{unit} {test.mean:.4g} over {test.n} seed(s)"
    if check.undefined:
        text += f" ({len(check.undefined)} seed(s) left out: value undefined, seeds {list(check.undefined)[:5]})"
    if test.n < 2:
        return text + "; at least 2 seeds with a defined value are needed for a confidence bound: inconclusive"
    shown = f"[{bound[0]:.4g}, {bound[1]:.4g}]" if isinstance(bound, tuple) else f"{bound:.4g}"
    text += f"; {holm_text} {shown}"
    if verdict == "pass":
        return text + ": clears the threshold, pass"
    if verdict == "fail":
        return text + "; the opposite bound is on the wrong side of the threshold: fail"
    more = f"; about {needed} seeds would decide it" if needed else "; more seeds would not decide it quickly"
    return text + ": straddles the threshold, inconclusive" + more


# --------------------------------------------------------------------------- files and text


def evaluate_run(
    summary: pd.DataFrame, guardrails: Sequence[Guardrail], scenario: str = "", level: float = DEFAULT_LEVEL
) -> Verdict:
    """The verdict of one run: its guardrails over its arms and world points, one Holm family."""
    return evaluate(checks_of_run(summary, guardrails, scenario), level)


def write_verdict(folder: str | Path, verdict: Verdict) -> Path:
    """Write ``folder/verdict.json`` atomically (see :func:`experiments.files.write_json_atomic`)."""
    from experiments.files import write_json_atomic

    path = Path(folder) / VERDICT_FILE
    write_json_atomic(verdict.to_json(), path)
    return path


def read_verdict(folder: str | Path) -> dict[str, Any] | None:
    """``folder/verdict.json`` as a dict, or None when absent."""
    path = Path(folder) / VERDICT_FILE
    return json.loads(path.read_text()) if path.exists() else None


_MARK = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}


def format_verdict(verdict: Verdict | Mapping[str, Any]) -> str:
    """A terminal table of the verdicts, with the level and correction stated."""
    data = verdict.to_json() if isinstance(verdict, Verdict) else dict(verdict)
    entries = data["guardrails"]
    rows = [("scenario", "world", "arm", "guardrail", "estimate", "bound", "seeds", "verdict")]
    for g in entries:
        bound = g["bound"]
        bound_text = f"[{_fmt(bound[0])}, {_fmt(bound[1])}]" if isinstance(bound, list) else _fmt(bound)
        needed = f" (~{g['seeds_needed']} needed)" if g.get("seeds_needed") else ""
        guard = g["explanation"].split(":")[0]
        rows.append(
            (g.get("scenario", ""), g.get("world", ""), g["arm"], guard, _fmt(g["estimate"]), bound_text,
             f"{g['seeds']}{needed}", _MARK[g["verdict"]])
        )  # fmt: skip
    keep = [j for j in range(len(rows[0])) if j not in (0, 1) or any(r[j] for r in rows[1:])]
    widths = [max(len(str(r[j])) for r in rows) for j in keep]
    lines = ["  ".join(f"{r[j]!s:<{w}}" for j, w in zip(keep, widths, strict=True)).rstrip() for r in rows]
    head = (
        f"Guardrails: {len(entries)} check(s), one-sided Student-t bounds over seeds (relative ones on seed-paired "
        f"changes), family-wise level {100 * data['level']:g}% with Holm's correction. Overall: "
        f"{_MARK[data['overall']]}"
    )
    return "\n".join([head, *lines])


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
