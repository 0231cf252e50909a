"""``bubblegym ope`` and ``bubblegym ope-check``: the command-line side of :mod:`experiments.ope`.

``ope LOGS --policy SPEC`` evaluates a target policy (a registry spec such as
``linucb:alpha=0.5``, or a saved model file) on a decision log (:mod:`experiments.logs`)
with every estimator that applies to the log, with user-bootstrap intervals, the Thomas et
al. (2015) lower bound and overlap diagnostics, and prints "inconclusive" instead of a
number when overlap is poor or the estimators disagree (:func:`experiments.ope.verdict`).

The target's probabilities of the logged slates come from ``agent.slot_probabilities``
(exact, per slot) when the agent has a closed form; otherwise from repeated ``act`` calls
(Monte Carlo: the frequency of each logged prefix over ``--draws`` draws, an unbiased
estimate of its probability, so the importance-weighted estimators stay unbiased; exact
for deterministic agents). Slate marginals (for IIPS and PI) are always counted this way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from experiments import ope

BATCH = 4096
"""Decisions per batch when asking the target (memory ~ BATCH * C * F_i floats)."""


# --------------------------------------------------------------------------- the target


def parse_policy_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key=value"`` -> (name, params); values are read as YAML scalars."""
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = part.partition("=")
        if not eq or not key.strip():
            raise ope.OPEError(f"policy spec {text!r}: {part!r} is not key=value (e.g. linucb:alpha=0.5)")
        params[key.strip()] = yaml.safe_load(raw)
    if not name:
        raise ope.OPEError(f"policy spec {text!r} has no agent name (e.g. linucb:alpha=0.5)")
    return name, params


def world_spec_of(log: Any) -> Any:
    """The :class:`simenv.WorldSpec` a target must be built for, from the log's shapes and metadata."""
    from simenv import WorldSpec

    catalog = dict(log.metadata.world.get("catalog", {})) if isinstance(log.metadata.world, dict) else {}
    users = dict(log.metadata.world.get("users", {})) if isinstance(log.metadata.world, dict) else {}
    f_u, f_i = log.user_features.shape[1], log.item_features.shape[1]
    dim = int(catalog.get("dim", f_i - 3))
    topics = int(catalog.get("n_topics", f_u - int(users.get("observed_dims", 0)) - 1))
    return WorldSpec(
        n_candidates=log.n_candidates,
        slate_size=log.slate_size,
        user_dim=f_u,
        item_dim=f_i,
        embedding_dim=dim,
        n_topics=topics,
    )


def load_target(spec_text: str, world: Any) -> Any:
    """A saved model file (if ``spec_text`` is an existing path) or a fresh registry agent."""
    from agents import make_agent
    from agents.base import Agent

    if Path(spec_text).is_file():
        return Agent.load(spec_text, spec=world)
    name, params = parse_policy_spec(spec_text)
    return make_agent(name, world, **params)


@dataclass(frozen=True)
class TargetProbabilities:
    """The target's probabilities on the logged decisions.

    Attributes:
        prefix: (n, k) probability that the target serves the logged items at slots 1..j.
        at_slot: (n, k) probability that it serves the logged item s_j at slot j.
        anywhere: (n, k) probability that it serves s_j at any slot.
        mean_item: (n, F_i) for k = 1: its mean served item features ``sum_a pi_e(a|x) e_a``; else None.
        exact: whether the probabilities are exact (``slate_probabilities`` or a deterministic agent).
    """

    prefix: np.ndarray
    at_slot: np.ndarray
    anywhere: np.ndarray
    mean_item: np.ndarray | None
    exact: bool


def target_probabilities(
    agent: Any, log: Any, draws: int, rng: np.random.Generator, progress: Callable[[int], None] | None = None
) -> TargetProbabilities:
    """Ask the target about every logged decision, in batches (see the module docstring).

    Exact per-slot probabilities come from ``agent.slot_probabilities`` when it has a closed
    form (and, for k = 1, the whole distribution over candidates, one candidate at a time);
    a deterministic agent needs one ``act`` call; otherwise (and for the slate marginals)
    prefixes are counted over ``draws`` calls of ``act``.
    """
    from agents.base import check_slates

    n, k, c = log.n, log.slate_size, log.n_candidates
    prefix, at_slot, anywhere = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k))
    mean_item = np.zeros((n, log.item_features.shape[1])) if k == 1 else None
    exact = True
    deterministic = bool(getattr(agent, "deterministic", False))
    for start in range(0, n, BATCH):
        rows = np.arange(start, min(start + BATCH, n))
        cand = log.candidate_features(rows)
        obs = {
            "user": log.user_features[rows],
            "candidates": cand,
            "item_ids": np.ascontiguousarray(log.candidate_ids(rows)),
            "user_id": log.user_id[rows],
        }
        logged = check_slates(agent.spec, obs, log.slate[rows])
        cond = agent.slot_probabilities(obs, logged)
        if cond is not None and k == 1:
            dist = np.stack(
                [agent.slot_probabilities(obs, np.full((len(rows), 1), a, dtype=np.int64))[:, 0] for a in range(c)],
                axis=1,
            )
            prefix[rows] = at_slot[rows] = anywhere[rows] = np.asarray(cond, dtype=np.float64)
            mean_item[rows] = np.einsum("nc,ncf->nf", dist, cand)
            if progress is not None:
                progress(len(rows))
            continue
        n_draws = 1 if deterministic else draws
        exact = exact and deterministic
        hits_prefix, hits_slot, hits_any = (np.zeros((len(rows), k)) for _ in range(3))
        counts = np.zeros((len(rows), c)) if k == 1 else None
        for _ in range(n_draws):
            slates = agent.act(obs, rng).slates
            same = slates == logged
            hits_prefix += np.cumprod(same, axis=1)
            hits_slot += same
            hits_any += (slates[:, None, :] == logged[:, :, None]).any(axis=2)
            if counts is not None:
                np.add.at(counts, (np.arange(len(rows)), slates[:, 0]), 1.0)
        prefix[rows] = hits_prefix / n_draws if cond is None else np.cumprod(cond, axis=1)
        at_slot[rows], anywhere[rows] = hits_slot / n_draws, hits_any / n_draws
        if counts is not None:
            mean_item[rows] = np.einsum("nc,ncf->nf", counts / n_draws, cand)
        if progress is not None:
            progress(len(rows))
    return TargetProbabilities(prefix, at_slot, anywhere, mean_item, exact)


# --------------------------------------------------------------------------- estimators on a log


def _conditional(prefix: np.ndarray) -> np.ndarray:
    """(n, k) per-slot conditionals from prefix probabilities (0 after a zero prefix)."""
    before = np.concatenate([np.ones((len(prefix), 1)), prefix[:, :-1]], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(before > 0, prefix / np.where(before > 0, before, 1.0), 0.0)


def logged_item_features(log: Any) -> np.ndarray:
    """(n, F_i) features of each decision's first served item, from the items table (with the
    per-decision ``fresh`` flag put back), without materialising (n, C, F_i) candidate features."""
    features = log.item_features[log.item_rows(log.slate_item_ids()[:, 0])].astype(np.float64)
    if log.candidate_fresh is not None and log.metadata.fresh_feature >= 0:
        features[:, log.metadata.fresh_feature] = log.candidate_fresh[np.arange(log.n), log.slate[:, 0]]
    return features


def log_estimators(
    log: Any, target: TargetProbabilities, *, rng: np.random.Generator, alpha: float = 1.0
) -> tuple[dict[str, ope.EstimatorTerms], list[str]]:
    """Every estimator the log supports, and notes on those it does not."""
    from experiments.logs import require_stochastic_log

    kind, k = log.metadata.propensity_kind, log.slate_size
    require_stochastic_log(log, "the importance-weighted estimators of `bubblegym ope`")
    notes: list[str] = []
    if k == 1:
        logging_prob = log.propensity[:, 0]
        items = logged_item_features(log)
        model = ope.cross_fitted_bilinear(
            log.user_features, items, log.reward, log.user_id, alpha=alpha, n_folds=5, rng=rng
        )
        q_logged = model.predict(log.user_features, items)
        q_expected = model.predict(log.user_features, target.mean_item)
        terms = ope.single_item_estimators(log.reward, logging_prob, target.prefix[:, 0], q_logged, q_expected)
        return terms, notes
    slot_reward = np.zeros((log.n, k))
    clicked = log.click >= 0
    slot_reward[np.flatnonzero(clicked), log.click[clicked]] = log.reward[clicked]
    terms: dict[str, ope.EstimatorTerms] = {}
    if kind == "conditional":
        tgt_cond = _conditional(target.prefix)
        terms["sips"] = ope.slate_sips(slot_reward, log.propensity, tgt_cond)
        terms["rips"] = ope.slate_rips(slot_reward, log.propensity, tgt_cond)
        try:
            terms["pi"] = ope.slate_pseudo_inverse(
                slot_reward, log.propensity, target.at_slot, target.anywhere, log.n_candidates
            )
        except ope.OPEError as err:
            notes.append(f"pi: {err}")
    elif kind == "joint":
        joint = log.propensity
        terms["sips"] = ope.slate_sips(slot_reward.sum(axis=1, keepdims=True), joint, target.prefix[:, -1:])
    if log.marginal_propensity is not None or kind == "marginal":
        marg = log.marginal_propensity if log.marginal_propensity is not None else log.propensity
        terms["iips"] = ope.slate_iips(slot_reward, marg, target.at_slot)
    else:
        notes.append("iips: needs marginal propensities (the log has no marginal_propensity column)")
    notes.append("cascade-dr: needs a per-slot reward model of the prefix; not run from the command line")
    return terms, notes


def format_estimates(
    estimates: dict[str, ope.Estimate], verdict: ope.Verdict, *, exact: bool, draws: int, notes: list[str]
) -> str:
    """The ``ope`` report: what is estimated, the verdict (a number or "inconclusive"), the table."""
    from experiments.ope_check import ASSUMPTIONS, NOT_IDENTIFIABLE, WHAT_IS_ESTIMATED  # pandas: not at CLI start

    lines = [f"Estimate of {WHAT_IS_ESTIMATED}.", ""]
    headline = next((estimates[k] for k in ("dr", "sips", "snips", "ips") if k in estimates), None)
    if not verdict.conclusive:
        lines.append("Result: inconclusive")
        lines += [f"  - {r}" for r in verdict.reasons]
        lines.append("  (the rows below are diagnostics, not a conclusion)")
    elif headline is not None:
        lines.append(
            f"Result: {headline.value:.4g} [{headline.ci_low:.4g}, {headline.ci_high:.4g}] "
            f"({headline.name}, {headline.level:.0%} user-bootstrap interval)"
        )
    lines += ["", f"{'estimator':<20}{'value':>10}{'CI low':>10}{'CI high':>10}{'HC-LB':>10}"
              f"{'ESS/n':>8}{'max w':>9}{'mean w':>8}  assumption"]  # fmt: skip
    for e in estimates.values():
        d = e.diagnostics
        diag = f"{d.ess_fraction:>8.3f}{d.max_weight:>9.3g}{d.mean_weight:>8.3f}" if d else f"{'-':>8}{'-':>9}{'-':>8}"
        lb = "-" if np.isnan(e.lower_bound) else f"{e.lower_bound:.4g}"
        lines.append(f"{e.name:<20}{e.value:>10.4g}{e.ci_low:>10.4g}{e.ci_high:>10.4g}{lb:>10}{diag}  {e.assumption}")
    lines += ["", "Reward-structure assumptions: " + "; ".join(f"{a}: {t}" for a, t in ope.ASSUMPTION_TEXT.items())]
    if not exact:
        lines.append(f"Target probabilities: Monte Carlo over {draws} draws of the target (unbiased, adds variance).")
    lines += [f"Not run: {n}" for n in notes]
    lines += ["", "Assumptions of every estimate:", *(f"  - {a}" for a in ASSUMPTIONS)]
    lines += ["", "Not identifiable from logs:", *(f"  - {t}" for t in NOT_IDENTIFIABLE)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands


def ope_command(args: argparse.Namespace) -> int:
    """``bubblegym ope LOGS --policy SPEC``."""
    from agents.base import AgentError, ModelFileError
    from experiments.logs import LogError, read_log

    try:
        log = read_log(args.logs)
        agent = load_target(args.policy, world_spec_of(log))
        rng = np.random.default_rng(args.seed)
        probs_rng, model_rng, boot_rng = rng.spawn(3)
        target = target_probabilities(agent, log, args.draws, probs_rng)
        terms, notes = log_estimators(log, target, rng=model_rng)
        estimates = ope.estimate(terms, log.user_id, n_boot=args.boot, level=args.level, rng=boot_rng)
        verdict = ope.verdict(estimates, min_ess_fraction=args.min_ess)
    except (ope.OPEError, LogError, AgentError, ModelFileError) as err:
        print(f"bubblegym ope: {err}", file=sys.stderr)
        return 2
    print(f"log: {args.logs} ({log.n:,} decisions, {len(np.unique(log.user_id)):,} users, k = {log.slate_size})")
    print(f"target: {args.policy}\n")
    print(format_estimates(estimates, verdict, exact=target.exact, draws=args.draws, notes=notes))
    return 0


def ope_check_command(args: argparse.Namespace) -> int:
    """``bubblegym ope-check SCENARIO``: the scenario's world (single-item), horizon and seeds."""
    from experiments.ope_check import NO_DYNAMICS, CheckSettings, render, run_check, summarise
    from experiments.scenario import ScenarioError, load_scenario
    from simenv.config import with_overrides

    try:
        scenario = load_scenario(args.scenario, check_agents=False)
        world = scenario.world_config()
        if args.no_dynamics:
            world = with_overrides(world, NO_DYNAMICS)
        seeds = tuple(range(args.seeds)) if args.seeds else scenario.seeds
        settings = CheckSettings(
            users=args.users or scenario.horizon.users,
            steps=args.steps or scenario.horizon.steps,
            seeds=seeds,
            log_steps=tuple(args.log_steps or ()),
            logger=args.logger,
            targets=tuple(args.target or CheckSettings().targets),
            n_boot=args.boot,
        )
        results = run_check(world, settings)
    except (ope.OPEError, ScenarioError) as err:
        print(f"bubblegym ope-check: {err}", file=sys.stderr)
        return 2
    label = f"{scenario.name} (preset {scenario.preset}{', dynamics off' if args.no_dynamics else ''}, k = 1)"
    print(render(summarise(results, settings.level), label))
    if args.out:
        results.to_parquet(args.out)
        print(f"\nper-seed rows: {args.out}")
    return 0


def add_ope_parsers(sub: Any) -> None:
    """Add the ``ope`` and ``ope-check`` subcommands to the ``bubblegym`` parser."""
    p = sub.add_parser("ope", help="estimate a target policy's value from a decision log (off-policy evaluation)")
    p.add_argument("logs", help="a decision log: <stem>.decisions.parquet (with <stem>.items.parquet beside it)")
    p.add_argument("--policy", required=True, help="target: registry spec (e.g. linucb:alpha=0.5) or a saved model")
    p.add_argument("--boot", type=int, default=1000, help="user-bootstrap resamples (default 1000)")
    p.add_argument("--level", type=float, default=0.95, help="interval coverage (default 0.95)")
    p.add_argument("--draws", type=int, default=200, help="Monte Carlo draws of a stochastic target (default 200)")
    p.add_argument("--min-ess", type=float, default=0.01, help="ESS/n below this is inconclusive (default 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=ope_command)

    c = sub.add_parser("ope-check", help="check the estimators against the simulator's truths (T1, T2)")
    c.add_argument("scenario", help="a scenario YAML file or shipped name (its world, horizon and seeds)")
    c.add_argument("--logger", default="egreedy:0.3", help="logging policy: egreedy:<eps>, softmax:<T> or uniform")
    c.add_argument(
        "--target", action="append", help="target policy (repeatable): greedy, egreedy:<eps>, softmax:<T>, uniform"
    )
    c.add_argument("--seeds", type=int, help="use seeds 0..N-1 instead of the scenario's")
    c.add_argument("--users", type=int, help="concurrent users (default: the scenario's)")
    c.add_argument("--steps", type=int, help="steps (default: the scenario's)")
    c.add_argument("--log-steps", type=int, action="append", help="also estimate on the first N steps (repeatable)")
    c.add_argument("--boot", type=int, default=200, help="user-bootstrap resamples (default 200)")
    c.add_argument("--no-dynamics", action="store_true", help="switch preference dynamics off (T2 = T1)")
    c.add_argument("--out", help="write the per-seed rows to this Parquet file")
    c.set_defaults(func=ope_check_command)
