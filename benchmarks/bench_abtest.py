"""Benchmark a simulated A/B test (:mod:`experiments.abtest`).

Run ``python benchmarks/bench_abtest.py`` (``--quick`` for a short pass). For each
``--users`` size it runs one A/B test on the shipped ``default`` scenario's world
(``--arms``, default ``random,linucb:alpha=0.5``; ``--steps`` steps, ``--seeds`` world
seeds) and prints the wall time, the CPU time of this process, user-steps per wall second,
seconds per seed, and the measured per-user CV of engagement and the engagement lift of
arm B with its p-value (seed 0). BLAS runs on one thread. Figures are printed, never
asserted; the machine may be shared, so the load average at start is printed too.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time

from experiments.abtest import AbTestSetup, parse_arms, run_abtest
from experiments.scenario import load_scenario


def bench(arms: str, users: int, steps: int, seeds: int) -> dict[str, float]:
    """One A/B test: wall and CPU seconds, user-steps per second, and its key numbers."""
    scenario = load_scenario("default", check_agents=False)
    setup = AbTestSetup(arms=tuple(parse_arms(arms)), users=users, steps=steps, seeds=tuple(range(seeds)))
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_abtest(scenario, setup)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    first = result.tests[(result.tests["seed"] == 0) & (result.tests["metric"] == "engagement")].iloc[0]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "user_steps_per_s": users * steps * seeds / wall,
        "s_per_seed": wall / seeds,
        "user_cv": result.variance["user_cv"],
        "lift": float(first["lift"]),
        "p": float(first["p_value"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="random,linucb:alpha=0.5")
    parser.add_argument("--users", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="64 users x 20 steps")
    args = parser.parse_args()
    users, steps = ([64], 20) if args.quick else (args.users, args.steps)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; arms {args.arms}; {steps} steps; {args.seeds} seed(s)")
    header = ("users", "wall s", "CPU s", "user-steps/s", "s/seed", "user CV", "lift B", "p")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (7, 8, 8, 13, 8, 8, 8, 9), strict=True)))
    for n in users:
        r = bench(args.arms, n, steps, args.seeds)
        print(
            f"{n:>7} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} {r['user_steps_per_s']:>13,.0f} {r['s_per_seed']:>8.2f} "
            f"{r['user_cv']:>8.3f} {100 * r['lift']:>7.1f}% {r['p']:>9.2g}"
        )


if __name__ == "__main__":
    main()
