"""Benchmark ``bubblegym vet``: one bandit against its baseline over the shipped suite.

Run ``python benchmarks/bench_vet.py`` (``--policy``, ``--seeds``, ``--workers`` to change
the setup). It vets the policy (default ``linear_egreedy``, against each scenario's
incumbent ``linucb``) over ``scenarios/vetting/`` with the suite's default seeds, into a
fresh temporary folder, and prints the wall time (target: under 10 minutes on 2 cores),
the CPU seconds of this process and its workers, the load average at the start (the
machine may be shared: other jobs inflate the wall time), the task count, and the verdict
table. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    from experiments.guardrails import format_verdict
    from experiments.vet import vet

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="linear_egreedy")
    parser.add_argument("--suite", default="vetting")
    parser.add_argument("--seeds", type=int, default=None, help="default: each scenario's own")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        started, cpu = time.perf_counter(), _cpu_seconds()
        result = vet(args.policy, args.suite, out=folder, seeds=args.seeds, workers=args.workers)
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        tasks = sum(len(list((run / "tasks").glob("*.done.json"))) for run in result.runs.values())
    print(format_verdict(result.verdict))
    print(
        f"\nvet {args.policy} over {args.suite}: {len(result.runs)} scenarios, {tasks} tasks, wall {wall:.1f} s "
        f"(target < 600 s on 2 cores), CPU {cpu:.1f} s, load average at start {load:.2f} on {os.cpu_count()} cores; "
        f"exit code {result.exit_code}"
    )


if __name__ == "__main__":
    main()
