"""Benchmark decision logging: storage on disk and the time it adds to a run.

Run ``python benchmarks/bench_logging.py`` (``--quick`` for a short pass). On the default
world with ``--candidates`` C (50) and the runner's own settings (oracle on), it runs the
same ``linear_egreedy`` rollout (``--users`` x ``--steps``, default 10,000 x 200, one seed)
twice in one process, alternately ``--repeats`` times: without logging, and with a
:class:`experiments.rollout.DecisionRecorder` streaming every decision to a log in a
temporary directory (closed, i.e. fsynced and renamed, inside the timing). It prints

1. **Storage**: bytes of ``<stem>.decisions.parquet`` and ``<stem>.items.parquet``, GiB in
   all, bytes per decision, row groups (target: about 0.2 GiB for 10,000 x 200 x 50).
2. **Time**: best-of-``repeats`` wall time of each rollout and the overhead
   (with / without - 1; target: under 25 %).
3. **Memory**: peak resident set size of the process after each kind of run (the log's
   buffer is one row group, so logging adds at most a few row groups' worth).

Figures are printed, never asserted; the machine is shared (load average printed), so
timings are noisy.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from agents import make_agent
from experiments.rollout import DecisionRecorder, rollout
from simenv import RecVectorEnv, WorldSpec

TARGET_GIB = 0.2
TARGET_OVERHEAD = 0.25


def run_once(users: int, steps: int, candidates: int, log_stem: Path | None) -> float:
    """Wall seconds of one seeded rollout (env build excluded), logging to ``log_stem`` if given."""
    env = RecVectorEnv(users, overrides={"n_candidates": candidates})
    agent = make_agent("linear_egreedy", WorldSpec.from_config(env.config), epsilon=0.1)
    recorder = DecisionRecorder(log_stem, env, agent.params) if log_stem is not None else None
    start = time.perf_counter()
    rollout(agent, env, steps, np.random.default_rng(0), seed=0, observers=[recorder] if recorder else [])
    if recorder is not None:
        recorder.close()
    return time.perf_counter() - start


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="256 users x 20 steps, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.steps, args.repeats = 256, 20, 1
    print(f"load average at start: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    print(f"linear_egreedy, default world, {args.users} users x {args.steps} steps x C = {args.candidates}")
    plain, logged = [], []
    with tempfile.TemporaryDirectory() as tmp:
        stem = Path(tmp) / "bench"
        rss_plain = rss_logged = 0.0
        for _ in range(args.repeats):
            plain.append(run_once(args.users, args.steps, args.candidates, None))
            rss_plain = peak_rss_mib()
            logged.append(run_once(args.users, args.steps, args.candidates, stem))
            rss_logged = peak_rss_mib()
        decisions, items = stem.with_name("bench.decisions.parquet"), stem.with_name("bench.items.parquet")
        size_d, size_i = decisions.stat().st_size, items.stat().st_size
        groups = pq.ParquetFile(decisions).num_row_groups
    n = args.users * args.steps
    gib = (size_d + size_i) / 2**30
    overhead = min(logged) / min(plain) - 1
    print(f"storage: decisions {size_d / 2**20:.1f} MiB ({groups} row groups), items {size_i / 2**10:.0f} KiB")
    print(f"         {gib:.3f} GiB in all, {(size_d + size_i) / n:.1f} B per decision (target about {TARGET_GIB} GiB)")
    print(f"time:    without log {min(plain):.2f} s, with log {min(logged):.2f} s (best of {args.repeats})")
    verdict = "met" if overhead < TARGET_OVERHEAD else "NOT MET"
    print(f"         overhead {overhead:+.1%} (target < {TARGET_OVERHEAD:.0%}): {verdict}")
    print(f"memory:  peak RSS {rss_plain:.0f} MiB after the plain runs, {rss_logged:.0f} MiB after the logged ones")
    return {"gib": gib, "overhead": overhead, "bytes_per_decision": (size_d + size_i) / n}


if __name__ == "__main__":
    main()
