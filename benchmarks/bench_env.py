"""Benchmark the world: user-steps per second of RecEnv and RecVectorEnv, and peak memory.

Run ``python benchmarks/bench_env.py`` (add ``--quick`` for a short pass). For each shape
and population N it prints

* user-steps/s of ``RecVectorEnv.step`` with pre-drawn random slates,
* peak traced memory of building the world and stepping it,

then the same without the oracle and with relevance retrieval, ``RecEnv`` steps/s (raw and
through ``gymnasium.make``'s wrappers), the cost of item arrivals against the catalog size,
and the memory of a population of 1,000,000 users. ``--million`` adds the peak resident memory
of 1,000,000 concurrent sessions (RecVectorEnv built, reset and stepped 3 times, in a fresh
process) with one and with two observation buffers. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import tracemalloc

import gymnasium as gym
import numpy as np

import simenv
from simenv import RecEnv, RecVectorEnv, with_overrides
from simenv.catalog import Catalog
from simenv.config import CatalogConfig
from simenv.simulator import Simulator

SHAPES = {
    # C = 50 candidates, k = 5, d = 32, M = 10,000 items.
    "large": {"n_candidates": 50, "slate_size": 5, "catalog": {"dim": 32, "n_items": 10_000}},
    # RecSim's interest-evolution shape: C = 10, k = 2, d = 20.
    "recsim": {"n_candidates": 10, "slate_size": 2, "catalog": {"dim": 20, "n_topics": 20, "n_items": 2_000}},
}
POPULATIONS = (1, 64, 1_024, 16_384)


def _best_of(fn, repeats: int) -> float:
    """Best wall time in seconds of ``fn()`` over ``repeats`` calls (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_vector(shape: dict, n: int, steps: int, oracle: bool = True) -> float:
    """User-steps/s of RecVectorEnv stepping pre-drawn random slates."""
    config = with_overrides(simenv.get_preset("default"), shape)
    env = RecVectorEnv(n, config=config, oracle=oracle)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    pool = [np.argsort(rng.random((n, config.n_candidates)), axis=1)[:, : config.slate_size] for _ in range(8)]

    def run() -> None:
        for t in range(steps):
            env.step(pool[t % 8])

    return n * steps / _best_of(run, 3)


def bench_arrivals(n_items: int, per_step: int = 5, steps: int = 200) -> float:
    """Microseconds per step of ``Catalog.arrive`` with ``per_step`` new items."""
    catalog = Catalog.generate(CatalogConfig(n_items=n_items, arrival_rate=per_step), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    clock = iter(range(10**9))

    def run() -> None:
        for _ in range(steps):
            catalog.arrive(per_step, next(clock), rng)

    return 1e6 * _best_of(run, 3) / steps


def peak_memory(build) -> float:
    """Peak traced memory in MiB while ``build()`` runs."""
    tracemalloc.start()
    build()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def bench_single(shape: dict, steps: int) -> tuple[float, float]:
    """(steps/s of a raw RecEnv, steps/s through gymnasium.make's wrappers)."""
    config = with_overrides(simenv.get_preset("default"), shape)
    rates = []
    for env in (RecEnv(config=config), gym.make("simenv/Rec-v1", config=config)):
        env.reset(seed=0)
        rng = np.random.default_rng(1)
        actions = [np.argsort(rng.random(config.n_candidates))[: config.slate_size] for _ in range(64)]

        def run(env=env, actions=actions) -> None:
            for t in range(steps):
                _, _, terminated, truncated, _ = env.step(actions[t % 64])
                if terminated or truncated:
                    env.reset()

        rates.append(steps / _best_of(run, 3))
    return rates[0], rates[1]


MILLION_SESSIONS = """
import resource, numpy as np, simenv
env = simenv.RecVectorEnv(1_000_000, observation_buffers={buffers})
obs, info = env.reset(seed=0)
for _ in range(3):
    obs, reward, terminated, truncated, info = env.step(info["best_slate"])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def million_sessions_mib(buffers: int) -> float:
    """Peak resident MiB of a fresh process holding 1,000,000 concurrent default sessions."""
    code = MILLION_SESSIONS.format(buffers=buffers)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (noisier figures)")
    parser.add_argument("--million", action="store_true", help="also 10^6 concurrent sessions (about 3 minutes)")
    args = parser.parse_args()
    user_steps = 200_000 if args.quick else 1_000_000

    figures: dict[str, float] = {}
    print(f"{'shape':<8}{'N':>8}{'world user-steps/s':>21}{'peak MiB':>10}")
    for name, shape in SHAPES.items():
        for n in POPULATIONS:
            steps = max(20, min(2_000, user_steps // n))
            world = bench_vector(shape, n, steps)
            config = with_overrides(simenv.get_preset("default"), shape)

            def build(config=config, n=n) -> None:
                sim = Simulator(config, n, seed=0)
                for _ in range(3):
                    sim.step(sim._best_slate)

            mem = peak_memory(build)
            print(f"{name:<8}{n:>8}{world:>21,.0f}{mem:>10.1f}")
            figures[f"{name} {n}"] = world

    n = POPULATIONS[-1]
    print("\nvariants at N = 16,384 (user-steps/s):")
    for name, shape in SHAPES.items():
        plain = bench_vector(shape, n, max(20, user_steps // n), oracle=False)
        relevance = bench_vector({**shape, "retrieval": {"method": "relevance"}}, n, max(20, user_steps // n))
        print(f"{name:<8} without the oracle (training) {plain:>12,.0f}   relevance retrieval {relevance:>12,.0f}")

    print("\nitem arrivals, 5 new items per step:")
    for m in (10_000, 1_000_000):
        figures[f"arrivals {m}"] = bench_arrivals(m)
        print(f"  M = {m:>9,}: {figures[f'arrivals {m}']:8.1f} us per step")
    figures["arrivals ratio"] = figures["arrivals 1000000"] / figures["arrivals 10000"]

    print()
    for name, shape in SHAPES.items():
        raw, wrapped = bench_single(shape, 2_000 if args.quick else 10_000)
        print(f"RecEnv {name:<7} {raw:>10,.0f} steps/s raw   {wrapped:>10,.0f} steps/s via gymnasium.make")
        figures[f"RecEnv {name}"] = raw

    def million() -> None:
        config = with_overrides(simenv.get_preset("default"), {"users": {"population_size": 1_000_000}})
        sim = Simulator(config, 1_024, seed=0)
        sim.step(sim._best_slate)

    figures["million MiB"] = peak_memory(million)
    print(f"\npopulation of 1,000,000 users (1,024 in session): peak {figures['million MiB']:,.0f} MiB")
    if args.million:
        for buffers in (2, 1):
            figures[f"sessions MiB {buffers}"] = million_sessions_mib(buffers)
            print(
                f"1,000,000 concurrent sessions, {buffers} observation buffer(s): peak RSS "
                f"{figures[f'sessions MiB {buffers}']:,.0f} MiB"
            )
    print_targets(figures)


TARGETS = (
    # (figure, at least / at most, bound, what)
    ("large 16384", ">=", 250_000, "RecVectorEnv, N = 16,384, large shape: user-steps/s"),
    ("recsim 16384", ">=", 1_000_000, "RecVectorEnv, N = 16,384, RecSim shape: user-steps/s"),
    ("RecEnv large", ">=", 20_000, "RecEnv, large shape: steps/s"),
    ("RecEnv recsim", ">=", 20_000, "RecEnv, RecSim shape: steps/s"),
    ("million MiB", "<=", 2_048, "a population of 1,000,000 users: peak MiB"),
    ("sessions MiB 1", "<=", 3_072, "1,000,000 concurrent sessions, one observation buffer: peak RSS MiB"),
    ("arrivals ratio", "<=", 3, "item arrivals at M = 10^6 over M = 10^4: cost ratio (O(new items))"),
)
"""The world's speed targets (issues 2 and 8), checked against this run's figures."""


def print_targets(figures: dict[str, float]) -> None:
    """One line per target of :data:`TARGETS`: the figure, the bound and whether it is met."""
    print("\ntargets:")
    for key, sense, bound, what in TARGETS:
        if key not in figures:
            continue
        value = figures[key]
        met = value >= bound if sense == ">=" else value <= bound
        shown = f"{value:,.1f} {sense} {bound:,}"
        print(f"  {'met' if met else 'NOT MET':<8}{what}: {shown}")


if __name__ == "__main__":
    main()
