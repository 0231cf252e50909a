"""bubblegym: a laboratory for recommendation policies. Simulated users whose tastes evolve
meet bandit and deep-RL recommenders; scenarios compare agents over seeds with paired
statistics, and report engagement, diversity, filter-bubble and retention metrics."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import simenv

if TYPE_CHECKING:
    from experiments.scenario import Scenario


def _simulate(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from agents import make_agent
    from simenv import RecVectorEnv, WorldSpec
    from simenv.config import ConfigError

    try:
        env = RecVectorEnv(args.users, preset=args.preset)
    except ConfigError as err:
        print(f"bubblegym simulate: {err}", file=sys.stderr)
        return 2
    agent = make_agent("random", WorldSpec.from_config(env.config))
    rng = np.random.default_rng(np.random.SeedSequence(args.seed).spawn(1)[0])
    obs, _ = env.reset(seed=args.seed)
    first_users = env.sim.population.user_id.copy()
    k = env.config.catalog.n_topics
    reward_sum = clicks = 0.0
    topic_counts = np.zeros(k)
    for _ in tqdm(range(args.steps), desc=f"simulate {args.preset}", unit="step", disable=args.quiet):
        decision = agent.act(obs, rng)
        obs, reward, _, _, info = env.step(decision.slates)
        reward_sum += float(reward.sum())
        clicked = info["click"] >= 0
        clicks += float(clicked.sum())
        topic_counts += np.bincount(info["consumed_topic"][clicked], minlength=k)
    user_steps = args.users * args.steps
    share = topic_counts / max(topic_counts.sum(), 1.0)
    entropy = float(-(share[share > 0] * np.log2(share[share > 0])).sum())
    retained = float(np.isin(first_users, env.sim.present_user_ids()).mean())
    rows = [
        ("preset", args.preset),
        ("users x steps", f"{args.users} x {args.steps}"),
        ("engagement (min / user-step)", f"{reward_sum / user_steps:.3f}"),
        ("CTR", f"{clicks / user_steps:.3f}"),
        ("topic entropy of consumption (bits)", f"{entropy:.3f} of {np.log2(k):.3f}"),
        ("retention (first users still here)", f"{retained:.3f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nRandom policy on the '{args.preset}' world (seed {args.seed})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from experiments.report import load_run, run_summary_text, write_report
    from experiments.runner import run_scenario
    from experiments.scenario import check_resources, load_scenario

    # every check (agents built, memory for these workers) runs before the run directory exists
    scenario = load_scenario(args.scenario, workers=args.workers)
    if args.seeds is not None:
        scenario = scenario.with_seeds(args.seeds)
        check_resources(scenario, args.workers)
    if args.baseline is not None and not args.no_report:
        _check_baseline(scenario, args.baseline)  # before the run, not after it
    out = Path(args.out) if args.out else Path("runs") / scenario.name
    result = run_scenario(
        scenario, out, workers=args.workers, backend=args.backend, force=args.force, progress=not args.quiet
    )
    done = f"ran {len(result.ran)} task(s)" + (f", {len(result.skipped)} already done" if result.skipped else "")
    print(f"\n{scenario.name}: {done} in {result.seconds:.1f} s -> {out}")
    print(run_summary_text(load_run(out)))
    print(f"\nmean ± 95% CI half-width over {len(scenario.seeds)} seed(s)")
    _guardrails_after_run(scenario, out)
    if args.no_report:
        return 0
    if result.changed or not (out / "report.html").exists():
        files = write_report(out, baseline=args.baseline)
        print(f"report: {files.html} ({len(files.figures)} figures; Markdown: {files.markdown})")
    else:
        print(f"report unchanged: {out / 'report.html'} (the run was complete; `bubblegym report {out}` rewrites it)")
    return 0


def _check_baseline(scenario: Scenario, baseline: str) -> None:
    """Raise RunError (listing the arms) if ``baseline`` is not an arm of the scenario's tasks."""
    import pandas as pd

    from experiments.report import resolve_baseline
    from experiments.runner import make_tasks

    tasks = make_tasks(scenario)
    arms = pd.DataFrame(
        {"arm": [t.arm for t in tasks], "agent": [t.label for t in tasks], "variant": [t.variant_label for t in tasks]}
    )
    resolve_baseline(arms, baseline)


def _guardrails_after_run(scenario: Scenario, out: Path) -> None:
    """Judge the scenario's guardrails (if any): a verdict table and ``out/verdict.json``."""
    from experiments.guardrails import evaluate_run, format_verdict, write_verdict
    from experiments.report import load_run

    if scenario.guardrails:
        verdict = evaluate_run(load_run(out).summary, scenario.guardrails, scenario.name)
        print(f"\n{format_verdict(verdict)}\nverdicts: {write_verdict(out, verdict)}")


def _vet(args: argparse.Namespace) -> int:
    from experiments.guardrails import format_verdict
    from experiments.vet import vet

    result = vet(
        args.policy,
        args.suite,
        baseline=args.baseline,
        out=args.out,
        seeds=args.seeds,
        level=args.level,
        workers=args.workers,
        progress=not args.quiet,
        force=args.force,
    )
    print(format_verdict(result.verdict))
    print(f"verdicts: {result.out / 'verdict.json'} (and one per scenario in {result.out}/<scenario>/)")
    return result.exit_code


def _report(args: argparse.Namespace) -> int:
    from experiments.report import write_report

    files = write_report(args.run_dir, baseline=args.baseline)
    print(
        f"wrote {files.markdown}, {files.html} and {len(files.figures)} figure(s) in "
        f"{files.markdown.parent / 'figures'}"
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from experiments.report import compare_runs, format_comparison

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    table = compare_runs(args.run_a, args.run_b, metrics)  # errors before any output
    print(f"A = {args.run_a}\nB = {args.run_b}\n")
    print(format_comparison(table))
    return 0


def _abtest(args: argparse.Namespace) -> int:
    from experiments.abtest import command

    return command(args)


def _list(args: argparse.Namespace) -> int:
    from agents.registry import agent_names
    from experiments.listing import agent_detail, agents_overview, presets_lines, scenarios_lines

    if args.name is not None and args.what != "agents":
        print("bubblegym list: a NAME is only taken after 'agents' (bubblegym list agents NAME)", file=sys.stderr)
        return 2
    if args.name is not None:
        lines = agent_detail(args.name)
    else:
        sections = {
            "presets": presets_lines,
            "agents": lambda: agents_overview(agent_names()),
            "scenarios": scenarios_lines,
        }
        chosen = [args.what] if args.what else list(sections)
        lines = []
        for what in chosen:
            lines += [*sections[what](), ""]
    print("\n".join(lines).rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from experiments.cli_help import EXAMPLES, MAIN_EXAMPLES

    def with_examples(name: str) -> dict:
        return {"epilog": EXAMPLES[name], "formatter_class": argparse.RawDescriptionHelpFormatter}

    parser = argparse.ArgumentParser(
        prog="bubblegym",
        description=__doc__,
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bubblegym {simenv.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser(
        "simulate", help="run a random policy on a world preset and print a summary", **with_examples("simulate")
    )
    sim.add_argument("--preset", default="default", choices=sorted(simenv.PRESETS))
    sim.add_argument("--users", type=_positive_int, default=1024, help="concurrent users (default 1024)")
    sim.add_argument("--steps", type=_positive_int, default=200, help="steps per user (default 200)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=_simulate)

    run = sub.add_parser(
        "run", help="run a scenario (agents x seeds x grid points) and print its summary", **with_examples("run")
    )
    run.add_argument("scenario", help="a scenario YAML file, or the name of a shipped scenario")
    run.add_argument("--out", help="run directory (default runs/<scenario name>); rerun to resume")
    run.add_argument("--seeds", type=_positive_int, help="use seeds 0..N-1 instead of the scenario's")
    run.add_argument("--workers", type=_positive_int, help="parallel workers (default: cores, at most one per task)")
    run.add_argument("--backend", choices=["local", "ray"], default="local", help="local processes or Ray")
    run.add_argument(
        "--force",
        action="store_true",
        help="replace the results in --out of another scenario or setup (code, versions)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--baseline", help="agent label (or arm) the report pairs differences against (default: random, if run)"
    )
    run.add_argument(
        "--no-report",
        action="store_true",
        help="skip the figures and report (bubblegym report later); a complete run keeps its report",
    )
    run.set_defaults(func=_run)

    rep = sub.add_parser(
        "report", help="figures, report.md and a self-contained report.html of a run", **with_examples("report")
    )
    rep.add_argument("run_dir")
    rep.add_argument(
        "--baseline",
        help="agent label (or arm) for paired differences (default: random, if in the run); "
        "an arm not in the run is an error and leaves the existing report as it was",
    )
    rep.set_defaults(func=_report)

    cmp_ = sub.add_parser(
        "compare", help="compare the arms two runs share (B - A with 95%% CIs)", **with_examples("compare")
    )
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")
    cmp_.add_argument("--metrics", help="comma-separated metric names (default: the key metrics)")
    cmp_.set_defaults(func=_compare)

    ab = sub.add_parser(
        "abtest",
        help="a simulated A/B (or A/A) test in one world, with power and sample size",
        **with_examples("abtest"),
    )
    ab.add_argument("scenario", help="a scenario YAML file, or the name of a shipped scenario (its world is used)")
    ab.add_argument("--arms", required=True, help="registry specs, control first: 'random,linucb:alpha=0.5'")
    ab.add_argument("--users", type=_positive_int, required=True, help="concurrent users N (the cohort)")
    ab.add_argument("--steps", type=_positive_int, help="steps of the horizon (default: the scenario's)")
    ab.add_argument("--seeds", type=_positive_int, help="replicate over world seeds 0..S-1 (default: the scenario's)")
    ab.add_argument("--aa", action="store_true", help="A/A test: every arm the same spec (one spec is doubled)")
    ab.add_argument("--mde", type=float, help="a relative effect to size the test for (0.02 = 2%%)")
    ab.add_argument("--alpha", type=float, default=0.05, help="two-sided significance level (default 0.05)")
    ab.add_argument("--power", type=float, default=0.8, help="power for the sample sizes (default 0.8)")
    ab.add_argument("--cv", type=float, default=1.0, help="per-user CV of your own pre-period metric (default 1)")
    ab.add_argument("--out", help="output directory (default runs/abtest-<scenario name>)")
    ab.add_argument("--quiet", action="store_true", help="no progress bar")
    ab.set_defaults(func=_abtest)

    lst = sub.add_parser("list", help="list world presets, agents and shipped scenarios", **with_examples("list"))
    lst.add_argument(
        "what", nargs="?", choices=["presets", "agents", "scenarios"], help="one section only (default: all three)"
    )
    lst.add_argument("name", nargs="?", help="with 'agents': one agent, every parameter with its range and meaning")
    lst.set_defaults(func=_list)

    vet = sub.add_parser(
        "vet",
        help="vet a policy against a suite of scenarios with guardrails (exit 0 pass, 1 fail, 2 inconclusive/error)",
        description="Run POLICY and a baseline on every scenario of a vetting suite and judge the suite's "
        "guardrails with one-sided confidence bounds over seeds (paired for relative guardrails), Holm-corrected. "
        "Exit code: 0 every guardrail passes, 1 any fails, 2 any is inconclusive or an error occurred. "
        "Off-policy estimates from logged data (--logs) are not available yet.",
        **with_examples("vet"),
    )
    vet.add_argument(
        "policy",
        help="a registry spec NAME[:key=value,...] (linucb:alpha=0.5), a saved agent file, "
        "or a class of your own package.module:Class[:key=value,...]",
    )
    vet.add_argument(
        "--suite", default="vetting", help="a folder of scenario files, or a shipped suite (default vetting)"
    )
    vet.add_argument("--baseline", help="the baseline's spec (default: each scenario's own 'baseline' agent)")
    vet.add_argument("--out", help="output folder (default runs/vet-<policy>); rerun to resume")
    vet.add_argument("--seeds", type=_positive_int, help="use seeds 0..N-1 instead of each scenario's")
    vet.add_argument("--level", type=float, default=0.95, help="family-wise confidence level (default 0.95)")
    vet.add_argument("--workers", type=_positive_int, help="parallel workers (default: cores)")
    vet.add_argument("--force", action="store_true", help="replace results in --out computed by another setup")
    vet.add_argument("--quiet", action="store_true", help="no progress bars")
    vet.set_defaults(func=_vet)

    from experiments.ope_cli import add_ope_parsers

    add_ope_parsers(sub)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {value}")
    return value


_USER_ERRORS = {
    "agents.base": "AgentError",
    "agents.persist": "ModelFileError",
    "experiments.guardrails": "GuardrailError",
    "experiments.logs": "LogError",
    "experiments.ope": "OPEError",
    "experiments.runner": "RunError",
    "experiments.scenario": "ScenarioError",
    "simenv.config": "ConfigError",
}
"""Module -> the error type it raises for bad input (one line on stderr, exit code 2)."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    """The bad-input error types of the modules already imported (a module not imported
    cannot have raised its error), so ``main`` imports none of them (the runner pulls pandas)."""
    return tuple(getattr(sys.modules[m], name) for m, name in _USER_ERRORS.items() if m in sys.modules)


class _Stopped:
    """Which signal interrupted the command (SIGINT unless the SIGTERM handler ran)."""

    signal = signal.SIGINT


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM stops the command like Ctrl-C: the runner stops its workers and releases its lock."""
    _Stopped.signal = signal.Signals(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the command runs, SIGTERM raises KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _Stopped.signal = signal.SIGINT
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; exit codes: 0 done, 2 an error (one line on stderr), 128 + the signal
    number when stopped by Ctrl-C (130) or SIGTERM (143)."""
    args = build_parser().parse_args(argv)
    prefix = f"bubblegym {args.command}:"
    try:
        with _sigterm_interrupts():
            return int(args.func(args))
    except KeyboardInterrupt:
        stopped = _Stopped.signal
        kept = "; finished tasks are kept: rerun the same command to resume" if args.command == "run" else ""
        print(f"{prefix} interrupted by {stopped.name}{kept}", file=sys.stderr)
        return 128 + int(stopped)
    except BrokenPipeError:  # the output was piped into a reader that stopped (e.g. `| head`)
        sys.stdout = open(os.devnull, "w")  # Python's documented recipe: no second error at exit
        return 1
    except OSError as err:
        from experiments.files import describe_os_error

        print(f"{prefix} {describe_os_error(err)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prefix} out of memory (MemoryError)", file=sys.stderr)
        return 2
    except Exception as err:
        if not isinstance(err, _user_error_types()):
            raise
        print(f"{prefix} {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
