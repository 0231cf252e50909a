"""Benchmark agents: decisions per second of ``act`` + ``update`` on a batch of users.

Run ``python benchmarks/bench_agents.py`` (``--quick`` for a short pass, ``--family NAME``
to run some families only, ``--users/--candidates/--slate`` to change the shape). The
default shape is B = 1,024 users, C = 50 candidates, k = 5 on the ``default`` preset.

Each agent is stepped against a live :class:`~simenv.RecVectorEnv`; only the agent's own
``act`` and ``update`` calls are timed (the world's step is not). A *decision* is one
user's slate, so decisions/s = B * steps / (act + update seconds). Two figures: from wall
time and from the process's CPU time (steadier on a machine shared with other jobs; with one
BLAS thread the two agree on an idle machine). Figures are printed, never asserted.

Adding a family: write ``bench_<family>(setup: BenchSetup) -> list[BenchRow]`` (use
:func:`time_agent` for each agent) and add it to :data:`BENCHMARKS` under its name.

BLAS threads: on a small shared machine OpenBLAS threads spinning against each other make
tiny (D x D) products far slower, so this script sets ``OPENBLAS_NUM_THREADS=1`` unless the
variable is already set (a single-threaded figure per agent is also the fair comparison).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from agents import Agent, Feedback, make_agent
from simenv import RecVectorEnv, WorldSpec

TARGET_DECISIONS_PER_S = 100_000
"""Throughput goal for the numpy bandits at the default shape (act + update)."""


@dataclass(frozen=True)
class BenchSetup:
    """The shape and length of one benchmark pass.

    Attributes:
        n_users: B, users stepped at once. n_candidates: C. slate_size: k.
        preset: world preset. steps: timed steps per agent. warmup: untimed steps first.
        seed: world seed (agent rng uses seed + 1).
    """

    n_users: int = 1024
    n_candidates: int = 50
    slate_size: int = 5
    preset: str = "default"
    steps: int = 40
    warmup: int = 5
    seed: int = 0

    def make_env(self) -> RecVectorEnv:
        """A fresh vector env of this shape."""
        overrides = {"n_candidates": self.n_candidates, "slate_size": self.slate_size}
        return RecVectorEnv(self.n_users, preset=self.preset, overrides=overrides)

    def spec(self) -> WorldSpec:
        return WorldSpec.from_config(self.make_env().config)


@dataclass
class BenchRow:
    """One line of the table: throughput and per-step milliseconds of act and update."""

    family: str
    agent: str
    decisions_per_s: float
    cpu_decisions_per_s: float
    act_ms: float
    update_ms: float
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def time_agent(agent: Agent, setup: BenchSetup, family: str, note: str = "") -> BenchRow:
    """Step ``agent`` on a live world of shape ``setup``; time only its act and update."""
    env = setup.make_env()
    obs, _ = env.reset(seed=setup.seed)
    rng = np.random.default_rng(setup.seed + 1)
    act_s = update_s = cpu_s = 0.0
    for t in range(setup.warmup + setup.steps):
        cpu_start, start = time.process_time(), time.perf_counter()
        decision = agent.act(obs, rng)
        mid, cpu_mid = time.perf_counter(), time.process_time()
        next_obs, reward, _, _, info = env.step(decision.slates)
        feedback = Feedback(clicks=info["click"], rewards=reward)
        cpu_before, before_update = time.process_time(), time.perf_counter()
        agent.update(obs, decision, feedback)
        end, cpu_end = time.perf_counter(), time.process_time()
        if t >= setup.warmup:
            act_s += mid - start
            update_s += end - before_update
            cpu_s += (cpu_mid - cpu_start) + (cpu_end - cpu_before)
        obs = next_obs
    decisions = setup.n_users * setup.steps
    return BenchRow(
        family=family,
        agent=agent.name,
        decisions_per_s=decisions / (act_s + update_s),
        cpu_decisions_per_s=decisions / max(cpu_s, 1e-9),
        act_ms=1e3 * act_s / setup.steps,
        update_ms=1e3 * update_s / setup.steps,
        params={k: v for k, v in agent.params.items() if k != "agent"},
        note=note,
    )


# ---------------------------------------------------------------------------- families

NUMPY_BANDITS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("linear_egreedy", {}),
    ("linucb", {}),
    ("linucb_hybrid", {}),
    ("lints", {}),
    ("lints", {"propensity_group": 1}),
    ("lints", {"propensity_draws": 1}),
    ("discounted_linucb", {}),
    ("dp_linucb", {}),
)
"""(registered name, hyper-parameters) of the numpy bandits benchmarked (agents.bandits).
``lints`` by default shares its 16 propensity draws within groups of 16 users;
``propensity_group=1`` draws them per user (the unshared estimator, for comparison)."""


def bench_numpy_bandits(setup: BenchSetup) -> list[BenchRow]:
    """The numpy contextual bandits of :mod:`agents.bandits`."""
    spec = setup.spec()
    rows = []
    for name, params in NUMPY_BANDITS:
        agent = make_agent(name, spec, **params)
        rows.append(time_agent(agent, setup, "numpy bandits", note=", ".join(f"{k}={v}" for k, v in params.items())))
    return rows


class VWTextLoop(Agent):
    """Reference for the VW rows: the plain pyvw text loop, one decision at a time.

    Each decision's text is formatted in Python, ``Workspace.predict(text)`` parses and
    predicts it; after feedback the text with the label spliced into the chosen line goes
    to ``Workspace.learn(text)`` (parsed again). Same VW command line and slate law as
    ``agents.vw.VWAgent`` (greedy ties by index: ``predict`` returns no cost estimates).
    """

    name = "vw_text_loop"

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        from agents.vw import VWAgent, vw_arguments

        template = VWAgent(spec, **params)
        super().__init__(spec, **template.params)
        template.close()
        from vowpalwabbit import pyvw

        self._ws = pyvw.Workspace(vw_arguments(self._params))
        self._texts: list[str] = []

    def act(self, obs: dict[str, np.ndarray], rng: np.random.Generator) -> Any:
        from agents.base import Decision
        from agents.vw import fill_slates

        self._texts = [
            "\n".join(
                ["shared |u " + " ".join(f"{j}:{v:.3f}" for j, v in enumerate(user))]
                + ["|a " + " ".join(f"{j}:{v:.3f}" for j, v in enumerate(item)) for item in items]
            )
            for user, items in zip(obs["user"].tolist(), obs["candidates"].tolist(), strict=True)
        ]
        pmf = np.array([self._ws.predict(text) for text in self._texts])
        mode = self._params["slate_mode"]
        slates, props, explored = fill_slates(pmf, np.zeros_like(pmf), self.spec.slate_size, rng, mode=mode)
        return Decision(slates=slates, propensities=props, explored=explored)

    def update(self, obs: dict[str, np.ndarray], decision: Any, feedback: Feedback) -> None:
        rows = np.arange(len(self._texts))
        slot = np.maximum(feedback.clicks, 0)
        items = decision.slates[rows, slot].tolist()
        costs = np.where(feedback.clicks >= 0, -feedback.rewards / self._params["reward_scale"], 0.0).tolist()
        probs = decision.propensities[rows, slot].tolist()
        for text, item, cost, prob in zip(self._texts, items, costs, probs, strict=True):
            lines = text.split("\n")
            lines[1 + item] = f"0:{cost:.6g}:{prob:.6g} {lines[1 + item]}"
            self._ws.learn("\n".join(lines))


VW_AGENTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("vw_epsilon", {}),
    ("vw_epsilon", {"hold_examples": True}),
    ("vw_squarecb", {}),
    ("vw_epsilon", {"slate_mode": "ccb"}),
)
"""(registered name, hyper-parameters) of the VW agents benchmarked (agents.vw)."""


def bench_vw(setup: BenchSetup) -> list[BenchRow]:
    """VW cb_explore_adf agents against the plain pyvw text loop on the same world and seed.

    VW decides one user at a time in C++, so this family runs at most 8 timed steps (+2
    warm-up: the first step of ``hold_examples=True`` allocates VW's example pool, about
    35 kB per held example).
    """
    setup = replace(setup, steps=min(setup.steps, 8), warmup=min(setup.warmup, 2))
    spec = setup.spec()
    baseline = time_agent(
        VWTextLoop(spec, exploration="epsilon"),
        setup,
        "vw",
        note=f"plain pyvw text loop, epsilon; {setup.steps} timed steps",
    )
    rows = [baseline]
    for name, params in VW_AGENTS:
        agent = make_agent(name, spec, **params)
        row = time_agent(agent, setup, "vw")
        wall = row.decisions_per_s / baseline.decisions_per_s
        cpu = row.cpu_decisions_per_s / baseline.cpu_decisions_per_s
        speedup = f"{wall:.2f}x wall, {cpu:.2f}x CPU vs text loop"
        row.note = ", ".join([*(f"{k}={v}" for k, v in params.items()), speedup])
        rows.append(row)
        agent.close()
    return rows


SB3_ENVS = 64
"""Sessions stepped together in the SB3 training benchmark (both sides)."""

SB3_PPO: dict[str, Any] = {"n_steps": 32, "batch_size": 512, "n_epochs": 4, "learning_rate": 3e-3, "gamma": 0.5}
"""PPO settings shared by both sides of the SB3 benchmark (MLP 64-64): 4 minibatches of
512 per rollout of 64 x 32 steps, as the ``ppo`` agent's defaults split its rollout."""

SB3_PPO_FULL_BATCH: dict[str, Any] = {**SB3_PPO, "batch_size": 2048}
"""The same with one full-batch gradient step per epoch: fewer, larger gradient steps
(the same samples and epochs) cost less per user-step, so the environment's share shows more."""


@dataclass
class PPOTiming:
    """Throughput and per-vector-step wall milliseconds of one PPO training run.

    Attributes:
        steps_per_s, cpu_steps_per_s: training user-steps per second (wall, process CPU).
        env_ms: the VecEnv's ``step`` (world step + adapter / single-env loop).
        policy_ms: the rest of rollout collection (policy forward and sampling, buffer writes,
            SB3's info handling and time-limit bootstrap).
        update_ms: the gradient epochs (and advantage computation).
    """

    steps_per_s: float
    cpu_steps_per_s: float
    env_ms: float
    policy_ms: float
    update_ms: float

    @property
    def collect_ms(self) -> float:
        return self.env_ms + self.policy_ms


class PPOTrainingClock:
    """One SB3 PPO model (``policy``, MLP 64-64, one torch thread) on ``vec_env`` with
    ``settings``, warmed up by one rollout; :meth:`run` times further training.

    Collection and update are split by the callback's rollout start/end hooks; the env's
    share of collection by timing ``vec_env.step_wait`` (``VecEnv.step`` calls it).
    """

    def __init__(self, vec_env: Any, settings: dict[str, Any], policy: Any) -> None:
        import torch
        from stable_baselines3 import PPO

        self.env_s = 0.0
        self._step_wait = vec_env.step_wait
        vec_env.step_wait = self._timed_step_wait
        torch.set_num_threads(1)
        self.n_steps = settings["n_steps"]
        self.model = PPO(policy, vec_env, seed=0, device="cpu", policy_kwargs={"net_arch": [64, 64]}, **settings)
        self.per_rollout = vec_env.num_envs * self.n_steps
        self.model.learn(self.per_rollout)

    def _timed_step_wait(self) -> Any:
        start = time.perf_counter()
        out = self._step_wait()
        self.env_s += time.perf_counter() - start
        return out

    def run(self, rollouts: int) -> PPOTiming:
        """Train ``rollouts`` more rollouts; their throughput and split."""
        from stable_baselines3.common.callbacks import BaseCallback

        class RolloutClock(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.collect_s = 0.0
                self._start = 0.0

            def _on_rollout_start(self) -> None:
                self._start = time.perf_counter()

            def _on_rollout_end(self) -> None:
                self.collect_s += time.perf_counter() - self._start

            def _on_step(self) -> bool:
                return True

        clock = RolloutClock()
        self.env_s = 0.0
        steps = self.per_rollout * rollouts
        start, cpu_start = time.perf_counter(), time.process_time()
        self.model.learn(steps, callback=clock, reset_num_timesteps=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        ms = 1e3 / (rollouts * self.n_steps)
        env, collect = self.env_s * ms, clock.collect_s * ms
        return PPOTiming(steps / wall, steps / cpu, env, collect - env, wall * ms - collect)


SB3_REPEATS = 3
"""Timed runs per side (alternating adapter / DummyVecEnv); the fastest by CPU time is kept."""


def _sb3_shapes(setup: BenchSetup) -> list[tuple[int, int]]:
    """(C, k) shapes of the SB3 training rows: the setup's and the preset's own (if different)."""
    from simenv import get_preset

    preset = get_preset(setup.preset)
    shapes = [(setup.n_candidates, setup.slate_size), (preset.n_candidates, preset.slate_size)]
    return list(dict.fromkeys(shapes))


def _ms_note(t: PPOTiming) -> str:
    return f"ms/vec step: env {t.env_ms:.2f}, policy {t.policy_ms:.2f}, update {t.update_ms:.2f}"


def bench_sb3_training(
    setup: BenchSetup, n_candidates: int, slate_size: int, settings: dict[str, Any], policy: Any = None
) -> list[BenchRow]:
    """Two rows: PPO trained over the batched adapter and over SB3's DummyVecEnv.

    Both sides train the same PPO (``policy``, default the ``ppo`` agent's
    :class:`agents.deep_rl.SlatePolicy`; ``"MlpPolicy"`` for SB3's stock one) on worlds
    without the oracle's ground truth, as :meth:`agents.deep_rl.SB3Agent.train` builds them.
    """
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.deep_rl import SB3RecVecEnv, SlatePolicy
    from simenv import RecEnv
    from simenv.wrappers import FlatRecEnv

    policy = SlatePolicy if policy is None else policy
    n = min(setup.n_users, SB3_ENVS)
    config = replace(setup, n_candidates=n_candidates, slate_size=slate_size).make_env().config
    rollouts, repeats = (1, 1) if setup.steps <= 5 else (2, SB3_REPEATS)
    adapter_env = SB3RecVecEnv(RecVectorEnv(n, config=config, oracle=False))
    dummy_env = DummyVecEnv([lambda: FlatRecEnv(env=RecEnv(config=config, oracle=False)) for _ in range(n)])
    clocks = [PPOTrainingClock(env, settings, policy) for env in (adapter_env, dummy_env)]
    runs = [[clock.run(rollouts) for clock in clocks] for _ in range(repeats)]
    adapter, dummy = (max(side, key=lambda t: t.cpu_steps_per_s) for side in zip(*runs, strict=True))
    name = policy if isinstance(policy, str) else policy.__name__
    steps = rollouts * settings["n_steps"] * n
    shape = f"C={n_candidates} k={slate_size}, {n} envs, best of {repeats} x {steps} steps"
    shape += f", batch {settings['batch_size']}, {name}"
    wall, cpu = adapter.steps_per_s / dummy.steps_per_s, adapter.cpu_steps_per_s / dummy.cpu_steps_per_s
    speed = f"{wall:.1f}x wall, {cpu:.1f}x CPU"
    # Amdahl: with a free environment the adapter side would cost policy + update only.
    bound = (dummy.collect_ms + dummy.update_ms) / (adapter.policy_ms + adapter.update_ms)
    learner = f"env {dummy.env_ms / adapter.env_ms:.0f}x; bound with a free env {bound:.1f}x"

    def row(agent: str, t: PPOTiming, note: str) -> BenchRow:
        return BenchRow(
            "sb3 train", agent, t.steps_per_s, t.cpu_steps_per_s, t.collect_ms, t.update_ms, dict(settings), note
        )

    return [
        row("ppo SB3RecVecEnv", adapter, f"{shape}; {speed}; {learner}; {_ms_note(adapter)}"),
        row("ppo DummyVecEnv", dummy, f"{shape} (single envs); {_ms_note(dummy)}"),
    ]


def bench_sb3(setup: BenchSetup) -> list[BenchRow]:
    """SB3 PPO training throughput: the batched adapter against SB3's DummyVecEnv.

    Both sides train the same PPO (:data:`SB3_PPO`, then :data:`SB3_PPO_FULL_BATCH`; the
    ``ppo`` agent's :class:`agents.deep_rl.SlatePolicy`, plus one pair with SB3's stock
    ``MlpPolicy``) over ``min(n_users, 64)`` sessions: :class:`agents.deep_rl.SB3RecVecEnv`
    steps one batched world, ``DummyVecEnv`` steps that many single-session
    :class:`simenv.wrappers.FlatRecEnv` copies in a Python loop; on the setup's shape and on
    the preset's own (C, k); both worlds without the oracle's ground truth. Each side is
    timed :data:`SB3_REPEATS` times, alternating, and its fastest run (CPU time) kept. In
    these rows *decisions/s* is training user-steps per second; ``act ms`` is rollout
    collection and ``update ms`` the gradient epochs, both wall ms per vector step; the note
    splits collection into the env's step (for DummyVecEnv: the Python loop over the single
    envs, their auto-resets and SB3's deep copy of their info dicts) and the rest (policy
    forward and sampling, rollout buffer).

    Reading the ratio: the policy and the gradient epochs cost the same on both sides
    (same network, same samples), so the speed-up is ``(env_dummy + L) / (env_adapter + L)``
    with L the learner's ms per vector step, and it cannot exceed ``(env_dummy + L) / L``
    (printed as the bound with a free env). L grows with the observation width
    (F_u + C * F_i: the first layer dominates), with the epochs and with more, smaller
    minibatches, so the ratio is highest for small C and full batches and falls for large
    C. A last row times the trained ``ppo`` agent's ``act`` (serving decisions/s, no
    training) on the full setup.
    """
    rows = [
        row
        for c, k in _sb3_shapes(setup)
        for settings in (SB3_PPO, SB3_PPO_FULL_BATCH)
        for row in bench_sb3_training(setup, c, k, settings)
    ]
    rows += bench_sb3_training(setup, setup.n_candidates, setup.slate_size, SB3_PPO, "MlpPolicy")
    n = min(setup.n_users, SB3_ENVS)
    agent = make_agent("ppo", setup.spec(), n_envs=n, **SB3_PPO)
    agent.train(setup.make_env().config, n * SB3_PPO["n_steps"], seed=setup.seed)
    rows.append(time_agent(agent, setup, "sb3 act", note="trained 1 rollout; act only (update is a no-op)"))
    return rows


BENCHMARKS: dict[str, Callable[[BenchSetup], list[BenchRow]]] = {
    "numpy_bandits": bench_numpy_bandits,
    "vw": bench_vw,
    "sb3": bench_sb3,
}
"""Family name -> benchmark function. Other families (VW, SB3, ...) add their entry here."""


# ---------------------------------------------------------------------------- report


def format_table(rows: list[BenchRow], setup: BenchSetup) -> str:
    """The printed table, one line per agent, with the throughput target marked."""
    header = (
        f"{'family':<16} {'agent':<20} {'decisions/s':>12} {'CPU dec/s':>12} {'act ms':>8} {'update ms':>10}  "
        f"{'>=target':<8} note"
    )
    lines = [
        f"B = {setup.n_users} users, C = {setup.n_candidates}, k = {setup.slate_size}, preset {setup.preset!r}, "
        f"{setup.steps} timed steps (+{setup.warmup} warm-up); target {TARGET_DECISIONS_PER_S:,} decisions/s "
        "(CPU time); act/update ms are wall time per step; "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}",
        header,
        "-" * len(header),
    ]
    for r in rows:
        ok = "yes" if r.cpu_decisions_per_s >= TARGET_DECISIONS_PER_S else "no"
        lines.append(
            f"{r.family:<16} {r.agent:<20} {r.decisions_per_s:>12,.0f} {r.cpu_decisions_per_s:>12,.0f} "
            f"{r.act_ms:>8.2f} {r.update_ms:>10.2f}  "
            f"{ok:<8} {r.note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke pass)")
    parser.add_argument("--family", action="append", choices=sorted(BENCHMARKS), help="run only these families")
    parser.add_argument("--users", type=int, default=BenchSetup.n_users)
    parser.add_argument("--candidates", type=int, default=BenchSetup.n_candidates)
    parser.add_argument("--slate", type=int, default=BenchSetup.slate_size)
    parser.add_argument("--preset", default=BenchSetup.preset)
    args = parser.parse_args(argv)
    steps, warmup = (5, 1) if args.quick else (BenchSetup.steps, BenchSetup.warmup)
    setup = BenchSetup(
        n_users=args.users,
        n_candidates=args.candidates,
        slate_size=args.slate,
        preset=args.preset,
        steps=steps,
        warmup=warmup,
    )
    rows: list[BenchRow] = []
    for family in args.family or list(BENCHMARKS):
        rows.extend(BENCHMARKS[family](setup))
    print(format_table(rows, setup))


if __name__ == "__main__":
    main()
