"""Benchmark deep RL: PPO training with the candidate-scoring policy beside the flat MLP, and the
native vector adapter beside SB3's ``DummyVecEnv``.

Run ``python benchmarks/bench_sb3.py`` (``--quick`` for a short pass; ``--preset``,
``--envs`` to change the world or the number of sessions). Three tables, every figure printed,
none asserted:

1. **PPO training** (``ppo`` agent defaults, ``policy: scoring`` against ``policy: mlp``) on the
   native adapter (:class:`agents.sb3_env.SB3RecVecEnv`): training user-steps per second, wall
   and process CPU (CPU is steadier on a shared machine), after one untimed warm-up call.
2. **Environment stepping**: user-steps per second of ``VecEnv.step`` with uniform random slates,
   the native adapter (one batched world of N sessions) against ``DummyVecEnv`` over N copies of
   the single-session :class:`simenv.wrappers.FlatRecEnv`, measured side by side (alternating
   repeats, best kept). Target >= 10x.
3. **Rollout collection**: milliseconds per vector step of PPO's ``collect_rollouts`` (policy
   forward, sampling, env step, buffer writes) with the same policy on both envs, for the default
   scoring policy and the flat MLP. Target >= 4x.

Timings on a machine shared with other jobs are noisy; read CPU figures first.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

ENV_STEP_TARGET = 10.0
"""Environment stepping: native adapter / DummyVecEnv user-steps per second."""
ROLLOUT_TARGET = 4.0
"""Rollout collection: DummyVecEnv / native adapter milliseconds per vector step."""


@dataclass(frozen=True)
class Timing:
    """One timed run: ``work`` units in ``wall`` and ``cpu`` seconds."""

    work: float
    wall: float
    cpu: float

    @property
    def per_s(self) -> float:
        return self.work / self.wall

    @property
    def cpu_per_s(self) -> float:
        return self.work / self.cpu


def timed(run: Callable[[], float]) -> Timing:
    """Time ``run`` (which returns its amount of work) by wall and process CPU clocks."""
    wall, cpu = time.perf_counter(), time.process_time()
    work = run()
    return Timing(work, time.perf_counter() - wall, time.process_time() - cpu)


def best_of(runs: list[Timing]) -> Timing:
    """The fastest run by CPU time per unit of work."""
    return max(runs, key=lambda t: t.cpu_per_s)


def make_envs(preset: str, n: int, seed: int = 0) -> tuple[Any, Any]:
    """The native adapter and a ``DummyVecEnv`` of ``n`` single-session envs, both on ``preset``
    without the oracle's ground truth (as training builds them), both reset."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.sb3_env import SB3RecVecEnv
    from simenv import RecEnv, RecVectorEnv, get_preset
    from simenv.wrappers import FlatRecEnv

    config = get_preset(preset)
    native = SB3RecVecEnv(RecVectorEnv(n, config=config, oracle=False))
    dummy = DummyVecEnv([lambda: FlatRecEnv(env=RecEnv(config=config, oracle=False)) for _ in range(n)])
    for env in (native, dummy):
        env.seed(seed)
        env.reset()
    return native, dummy


def random_slates(n: int, c: int, k: int, steps: int, seed: int) -> np.ndarray:
    """(steps, n, k) int64 uniform random distinct slates."""
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((steps, n, c)), axis=2)[:, :, :k]


def bench_env_step(preset: str, n: int, steps: int, repeats: int) -> tuple[Timing, Timing]:
    """(native, dummy) best user-steps/s of ``VecEnv.step`` on the same random slates."""
    native, dummy = make_envs(preset, n)
    k, c = native.action_space.shape[0], int(native.action_space.nvec[0])
    actions = random_slates(n, c, k, steps, seed=1)

    def stepper(env: Any) -> Callable[[], float]:
        def run() -> float:
            for a in actions:
                env.step(a)
            return float(n * steps)

        return run

    runs = [(timed(stepper(native)), timed(stepper(dummy))) for _ in range(repeats)]
    return best_of([r[0] for r in runs]), best_of([r[1] for r in runs])


class _NoCallback:
    """Stand-in for SB3's callback in a direct ``collect_rollouts`` call (no hooks, never stops)."""

    def init_callback(self, model: Any) -> None:
        pass

    def update_locals(self, locals_: dict[str, Any]) -> None:
        pass

    def on_rollout_start(self) -> None:
        pass

    def on_rollout_end(self) -> None:
        pass

    def on_step(self) -> bool:
        return True


def bench_rollouts(preset: str, n: int, n_steps: int, repeats: int, policy: str = "scoring") -> tuple[Timing, Timing]:
    """(native, dummy) best vector steps/s of PPO's ``collect_rollouts`` (the ``ppo`` agent's
    ``policy`` and default hyper-parameters but ``n_envs`` = n)."""
    import torch

    from agents import make_agent
    from simenv import WorldSpec, get_preset

    torch.set_num_threads(1)
    spec = WorldSpec.from_config(get_preset(preset))
    timings: dict[str, list[Timing]] = {"native": [], "dummy": []}
    native, dummy = make_envs(preset, n)
    models = {}
    for side, env in (("native", native), ("dummy", dummy)):
        agent = make_agent("ppo", spec, n_envs=n, n_steps=n_steps, policy=policy)
        model = agent._build(env, 0, None)
        model._setup_learn(n * n_steps, callback=None)
        models[side] = model
    for _ in range(repeats):
        for side, env in (("native", native), ("dummy", dummy)):
            model = models[side]
            callback = _NoCallback()
            callback.init_callback(model)

            def run(model: Any = model, env: Any = env, callback: Any = callback) -> float:
                model.collect_rollouts(env, callback, model.rollout_buffer, n_rollout_steps=n_steps)
                return float(n_steps)

            timings[side].append(timed(run))
    return best_of(timings["native"]), best_of(timings["dummy"])


def bench_ppo_training(preset: str, total: int, repeats: int) -> dict[str, Timing]:
    """Training user-steps/s of the default ``ppo`` agent, per ``policy`` (scoring, mlp)."""
    import torch

    from agents import make_agent
    from simenv import WorldSpec, get_preset

    torch.set_num_threads(1)
    config = get_preset(preset)
    spec = WorldSpec.from_config(config)
    out: dict[str, list[Timing]] = {"scoring": [], "mlp": []}
    agents = {policy: make_agent("ppo", spec, policy=policy) for policy in out}
    for agent in agents.values():  # warm-up: builds the model, compiles the world's kernels
        agent.train(config, agent.hparams.n_envs * agent.hparams.n_steps, seed=0)
    for _ in range(repeats):
        for policy, agent in agents.items():
            out[policy].append(timed(lambda agent=agent: float(agent.train(config, total, seed=1) and total)))
    return {policy: best_of(runs) for policy, runs in out.items()}


def verdict(ratio: float, target: float) -> str:
    return f"{'met' if ratio >= target else 'NOT MET'} (target >= {target:g}x)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="PPO scoring vs MLP; native adapter vs DummyVecEnv")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--envs", type=int, default=64, help="sessions N of both vector envs (tables 2, 3)")
    parser.add_argument("--quick", action="store_true", help="a short pass (smoke test)")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 3
    total = 1024 if args.quick else 8192
    steps = 5 if args.quick else 100

    print(f"preset {args.preset}; one torch thread; best of {repeats} by CPU time; a shared machine is noisy\n")
    print(f"1. PPO training, native adapter, ppo defaults, {total} user-steps per run")
    training = bench_ppo_training(args.preset, total, repeats)
    for policy, t in training.items():
        print(f"   policy {policy:8s} {t.per_s:9.0f} steps/s wall {t.cpu_per_s:9.0f} steps/s CPU")
    ratio = training["mlp"].cpu_per_s / training["scoring"].cpu_per_s
    print(f"   scoring costs {ratio:.2f}x the MLP's CPU per training step\n")

    native, dummy = bench_env_step(args.preset, args.envs, steps, repeats)
    ratio = native.cpu_per_s / dummy.cpu_per_s
    print(f"2. Environment stepping, N = {args.envs} sessions, {steps} random-slate steps")
    print(f"   native adapter {native.per_s:10.0f} user-steps/s wall {native.cpu_per_s:10.0f} CPU")
    print(f"   DummyVecEnv    {dummy.per_s:10.0f} user-steps/s wall {dummy.cpu_per_s:10.0f} CPU")
    print(f"   speed-up {native.per_s / dummy.per_s:.1f}x wall, {ratio:.1f}x CPU: {verdict(ratio, ENV_STEP_TARGET)}\n")

    n_steps = 4 if args.quick else 32
    print(f"3. Rollout collection (PPO collect_rollouts), N = {args.envs}, {n_steps} vector steps")
    for policy in ("scoring", "mlp"):
        native, dummy = bench_rollouts(args.preset, args.envs, n_steps, repeats, policy)
        ratio = native.cpu_per_s / dummy.cpu_per_s
        print(f"   policy {policy}")
        print(f"   native adapter {1e3 / native.per_s:8.2f} ms/vector step wall {1e3 / native.cpu_per_s:8.2f} CPU")
        print(f"   DummyVecEnv    {1e3 / dummy.per_s:8.2f} ms/vector step wall {1e3 / dummy.cpu_per_s:8.2f} CPU")
        print(f"   speed-up {native.per_s / dummy.per_s:.1f}x wall, {ratio:.1f}x CPU: {verdict(ratio, ROLLOUT_TARGET)}")


if __name__ == "__main__":
    main()
