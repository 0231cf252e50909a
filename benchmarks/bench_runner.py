"""Benchmark the experiment runner: parallel speed-up of a sweep and the cost of metrics.

Run ``python benchmarks/bench_runner.py`` (``--quick`` for a short pass). It prints

1. **Sweep scaling.** One in-memory scenario, a sweep of ``linear_egreedy`` over
   ``--points`` epsilon values (``--users`` x ``--steps``, one seed), run by
   :func:`experiments.runner.run_scenario` at 1 and at 2 workers, each into a fresh
   temporary directory. For each: the wall time, the per-task time the worker measured
   (``wall_time_s`` in the summary: build, rollout, metrics, writing), the overhead (wall
   time minus the task time each worker carried), the CPU seconds of the run (this process
   plus its workers), cores used = CPU / wall, the CPU seconds other jobs on the machine
   used meanwhile (``others s``, from ``/proc/stat``: on a shared machine a large figure
   means the timing is not clean), and the speed-up wall(1) / wall(2).
   Workers are spawned processes, so a cold worker's start-up (imports of numpy, pandas,
   the agent registry and, through it, torch) is measured on its own and printed as well.
   A second, longer sweep (``--long-steps``) shows the scaling once tasks outweigh the
   start-up.
2. **Metrics share.** For a ``random`` and a ``linucb`` agent at 256 users x 200 steps on
   the default world: the rollout (world + agent, :func:`experiments.rollout.rollout`) and
   :func:`experiments.metrics.metrics_tables` timed separately, and their ratio
   (target: metrics under 20 % of the rollout).

BLAS threads are pinned to one (as the runner's workers are) so the 1-worker and 2-worker
runs do the same work per core. Figures are printed, never asserted; the machine is shared,
so the load average at start is printed too.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.scenario import DEFAULT_WINDOW, Scenario, parse_scenario

TARGET_SPEEDUP = 2.0
"""Linear scaling at 2 workers."""

TARGET_METRICS_SHARE = 0.20
"""Metrics time / rollout time should stay under this."""


# --------------------------------------------------------------------------- 1. sweep scaling


def sweep_scenario(points: int, users: int, steps: int) -> Scenario:
    """A one-seed scenario sweeping ``linear_egreedy``'s epsilon over ``points`` values in [0, 0.5].

    Args:
        points: grid points (tasks), >= 1.
        users: concurrent users N per task.
        steps: steps T per task.
    """
    if points < 1:
        raise ValueError(f"points must be >= 1; got {points}")
    epsilons = [round(float(e), 4) for e in np.linspace(0.0, 0.5, points)]
    return parse_scenario(
        {
            "name": "bench_runner_sweep",
            "agents": [{"name": "linear_egreedy", "label": "egreedy"}],
            "horizon": {"steps": steps, "users": users},
            "seeds": 1,
            "metrics": {"window": min(DEFAULT_WINDOW, steps)},
            "sweep": {"agents.egreedy.epsilon": epsilons},
        },
        source="<bench_runner>",
    )


@dataclass(frozen=True)
class SweepTiming:
    """One ``run_scenario`` call.

    Attributes:
        workers: worker processes asked for.
        wall_s: wall time of ``run_scenario`` (seconds).
        cpu_s: CPU seconds (user + system) of this process and its reaped workers meanwhile.
        others_s: CPU seconds the rest of the machine used meanwhile (other jobs; NaN off Linux).
        task_s: (n_tasks,) seconds each task took inside its worker.
    """

    workers: int
    wall_s: float
    cpu_s: float
    others_s: float
    task_s: np.ndarray

    @property
    def busy_s(self) -> float:
        """Task seconds per worker if the tasks were spread evenly (the ideal wall time)."""
        return float(self.task_s.sum()) / max(1, min(self.workers, len(self.task_s)))

    @property
    def overhead_s(self) -> float:
        """Wall time not explained by the tasks: start-up, scheduling, manifest, merge."""
        return self.wall_s - self.busy_s


def time_sweep(scenario: Scenario, workers: int) -> SweepTiming:
    """Run ``scenario`` with ``workers`` workers into a fresh temporary directory and time it."""
    from experiments.runner import run_scenario

    with tempfile.TemporaryDirectory(prefix="bench_runner_") as folder:
        cpu, machine = _cpu_seconds(), _machine_busy_seconds()
        start = time.perf_counter()
        result = run_scenario(scenario, Path(folder) / "run", workers=workers, progress=False)
        wall = time.perf_counter() - start
        cpu, machine = _cpu_seconds() - cpu, _machine_busy_seconds() - machine
        task_s = result.summary["wall_time_s"].to_numpy(dtype=float)
    return SweepTiming(workers, wall, cpu, max(0.0, machine - cpu), task_s)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished (joined) children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot, summed over cores (``/proc/stat``;
    NaN where it does not exist)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _worker_start() -> float:
    """In a fresh worker: seconds to import what :func:`experiments.runner.run_task` imports."""
    start = time.perf_counter()
    from agents.registry import agent_names
    from experiments import metrics  # noqa: F401

    agent_names()
    return time.perf_counter() - start


def time_worker_start(workers: int) -> tuple[float, float]:
    """(wall seconds from creating a spawn pool of ``workers`` until ``workers`` import jobs
    returned, the longest import inside a worker in seconds)."""
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_worker_start) for _ in range(workers)]
        imports = [f.result() for f in futures]
    return time.perf_counter() - start, max(imports)


def print_sweep(title: str, scenario: Scenario, workers: tuple[int, ...]) -> None:
    """Time the sweep at each worker count and print one row per count plus the speed-up."""
    n = len(scenario.agent_variants("egreedy"))
    print(f"\n{title}: {n} tasks of {scenario.horizon.users} users x {scenario.horizon.steps} steps")
    print(
        f"  {'workers':>7} {'wall s':>7} {'CPU s':>6} {'cores':>5} {'others s':>8} {'task s mean':>11} "
        f"{'min':>6} {'max':>6} {'sum':>6} {'overhead s':>10}"
    )
    timings = [time_sweep(scenario, w) for w in workers]
    for t in timings:
        print(
            f"  {t.workers:>7} {t.wall_s:>7.2f} {t.cpu_s:>6.2f} {t.cpu_s / t.wall_s:>5.2f} {t.others_s:>8.2f} "
            f"{t.task_s.mean():>11.3f} "
            f"{t.task_s.min():>6.3f} {t.task_s.max():>6.3f} {t.task_s.sum():>6.2f} {t.overhead_s:>10.2f}"
        )
    base = timings[0]
    for t in timings[1:]:
        print(
            f"  speed-up at {t.workers} workers: {base.wall_s / t.wall_s:.2f}x wall (target ~{TARGET_SPEEDUP:.1f}x); "
            f"{base.busy_s / t.busy_s:.2f}x on task time alone (start-up, scheduling and merge excluded)"
        )


# --------------------------------------------------------------------------- 2. metrics share


@dataclass(frozen=True)
class MetricsTiming:
    """Rollout and metrics seconds of one agent (one run)."""

    agent: str
    rollout_s: float
    act_s: float
    metrics_s: float

    @property
    def share(self) -> float:
        return self.metrics_s / self.rollout_s


def time_metrics(name: str, params: dict, users: int, steps: int, seed: int = 0) -> MetricsTiming:
    """Time one rollout of agent ``name`` (env build + :func:`experiments.rollout.rollout`) and then
    :func:`experiments.metrics.metrics_tables` on its trajectory (best of 3 calls), as
    :func:`experiments.runner.run_task` calls it."""
    from agents import make_agent
    from experiments.metrics import metrics_tables
    from experiments.rollout import rollout
    from simenv import RecVectorEnv, WorldSpec, get_preset

    config = get_preset("default")
    start = time.perf_counter()
    env = RecVectorEnv(users, config=config)
    agent = make_agent(name, WorldSpec.from_config(config), **params)
    traj = rollout(agent, env, steps, np.random.default_rng(seed), seed=seed)
    rollout_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        metrics_tables(traj, DEFAULT_WINDOW, catalog_size=config.catalog.n_items, choice_beta=config.choice.beta)
        best = min(best, time.perf_counter() - start)
    return MetricsTiming(name, rollout_s, float(traj.latency.sum()), best)


def print_metrics(users: int, steps: int) -> None:
    """Print rollout vs metrics seconds for ``random`` and ``linucb``."""
    print(f"\nMetrics share: default world, {users} users x {steps} steps, window {DEFAULT_WINDOW}")
    print(f"  {'agent':<8} {'rollout s':>9} {'(act s)':>8} {'metrics s':>9} {'metrics/rollout':>15}")
    for name, params in (("random", {}), ("linucb", {"alpha": 1.0})):
        t = time_metrics(name, params, users, steps)
        mark = "ok" if t.share < TARGET_METRICS_SHARE else f"over {TARGET_METRICS_SHARE:.0%}"
        print(
            f"  {t.agent:<8} {t.rollout_s:>9.2f} {t.act_s:>8.2f} {t.metrics_s:>9.3f} {t.share:>14.1%}  {mark}",
        )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short pass (4 points, 50 steps, no long sweep)")
    parser.add_argument("--points", type=int, default=8, help="grid points (tasks) of the sweep")
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="steps per sweep task")
    parser.add_argument("--long-steps", type=int, default=500, help="steps per task of the long sweep (0: skip)")
    parser.add_argument("--long-points", type=int, default=4, help="grid points of the long sweep")
    args = parser.parse_args(argv)
    if args.quick:
        args.points, args.steps, args.long_steps = 4, 50, 0

    began = time.perf_counter()
    print(f"cores: {os.cpu_count()}  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    spawn_wall, spawn_import = time_worker_start(2)
    print(
        f"cold start of 2 spawned workers: {spawn_wall:.2f} s wall until both ran one job "
        f"(imports inside a worker: {spawn_import:.2f} s)"
    )
    print_sweep("Sweep", sweep_scenario(args.points, args.users, args.steps), (1, 2))
    if args.long_steps > 0:
        print_sweep("Long sweep", sweep_scenario(args.long_points, args.users, args.long_steps), (1, 2))
    print_metrics(256, 50 if args.quick else 200)
    print(f"\ntotal benchmark time: {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
