"""Benchmark the open population (``users.arrival_rate``): step cost and growth cost.

Run ``python benchmarks/bench_lifecycle.py`` (add ``--quick`` for a short pass). It prints

* user-steps/s of ``Simulator.step`` in RecSim's shape (C = 10, k = 2, d = 20) at N
  sessions, in a churning world, closed (rate 0) against open at several rates;
* the cost per arrival of growing a population by ``Population.add`` in batches of 100
  users, for 10^4 .. 10^6 arrivals in all: flat in the total when growth is amortised
  O(1) per user (capacity doubling), rising with it if it were quadratic.

Figures are printed, never asserted; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import simenv
from simenv import Simulator, with_overrides
from simenv.catalog import topic_centroids
from simenv.population import Newcomers, Population

RECSIM = {"n_candidates": 10, "slate_size": 2, "catalog": {"dim": 20, "n_topics": 20, "n_items": 2_000}}
CHURN = {"churn_threshold": 0.8, "churn_hazard": 0.05}


def steps_per_second(n: int, rate: float, steps: int) -> float:
    """User-steps/s of ``Simulator.step`` on pre-drawn random slates (best of 3 passes)."""
    overrides = {**RECSIM, "dynamics": CHURN, "users": {"arrival_rate": rate}}
    config = with_overrides(simenv.get_preset("default"), overrides)
    sim = Simulator(config, n, seed=0)
    rng = np.random.default_rng(1)
    pool = [np.argsort(rng.random((n, config.n_candidates)), axis=1)[:, : config.slate_size] for _ in range(8)]
    sim.step(pool[0])  # warm-up (compilation)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for t in range(steps):
            sim.step(pool[t % len(pool)])
        best = min(best, time.perf_counter() - start)
    return n * steps / best


def growth_seconds_per_user(total: int, batch: int = 100) -> float:
    """Seconds per arrival of growing a population from 64 users by ``total`` newcomers,
    ``batch`` at a time (newcomers pre-drawn, so only the growth is timed)."""
    config = with_overrides(simenv.get_preset("default"), RECSIM)
    rng = np.random.default_rng(0)
    centroids = topic_centroids(config.catalog.n_topics, config.catalog.dim, rng)
    pop = Population.generate(config.users, 64, centroids, rng)
    newcomers = Newcomers(config.users, centroids, rng)
    newcomers.take(0)
    theta = np.zeros((batch, config.catalog.dim))
    observed = np.zeros((batch, config.users.observed_dims))
    newcomers.take = lambda n: (theta[:n], observed[:n])  # type: ignore[method-assign]
    start = time.perf_counter()
    for _ in range(total // batch):
        pop.add(batch, centroids, newcomers)
    return (time.perf_counter() - start) / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short pass")
    args = parser.parse_args()
    n, steps = (1_024, 20) if args.quick else (16_384, 50)
    print(f"Simulator.step, RecSim shape, churn on, N = {n}: user-steps/s")
    for rate in (0.0, 10.0, 100.0, 1_000.0):
        label = "closed (rate 0)" if rate == 0 else f"open, {rate:g} users/step"
        print(f"  {label:<26} {steps_per_second(n, rate, steps):>14,.0f}")
    print("Population.add in batches of 100: microseconds per arrival")
    for total in (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000):
        print(f"  {total:>9,} arrivals  {1e6 * growth_seconds_per_user(total):8.3f}")


if __name__ == "__main__":
    main()
