"""The ``bubblegym`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

import simenv


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
    retained = float(np.isin(first_users, env.sim.population.user_id).mean())
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bubblegym", description=__doc__)
    parser.add_argument("--version", action="version", version=f"bubblegym {simenv.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="run a random policy on a world preset and print a summary")
    sim.add_argument("--preset", default="default", choices=sorted(simenv.PRESETS))
    sim.add_argument("--users", type=_positive_int, default=1024, help="concurrent users (default 1024)")
    sim.add_argument("--steps", type=_positive_int, default=200, help="steps per user (default 200)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=_simulate)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
