"""Training budgets: how many steps a deep-RL agent needs to reach a share of its final engagement.

Trains one agent in chunks (``SB3Agent.train`` continues training), and after each chunk
measures its reward per user-step on a fresh evaluation world (``users`` sessions x ``steps``
steps, seeded apart from training, no learning during evaluation). The budget is the first
checkpoint whose engagement reaches ``share`` (0.95) of the final checkpoint's, measured
above random's: ``(e_t - e_random) >= share * (e_final - e_random)`` (so a policy that learns
nothing has no budget to quote). Reported per preset and seed.

Usage::

    python -m experiments.training_budget --presets default clickbait --seeds 0 1 2 \\
        --total 100000 --chunk 10000 [--agent ppo] [--param learning_rate=0.003 ...]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BudgetCurve:
    """Engagement (reward per user-step) of one agent after each training chunk.

    Attributes:
        preset, agent, seed: what was trained.
        steps: (T,) cumulative training user-steps at each checkpoint.
        engagement: (T,) evaluation reward per user-step at each checkpoint.
        random: the uniform-random policy's reward per user-step on the same evaluation world.
        seconds: wall-clock training seconds (noisy on a shared machine).
    """

    preset: str
    agent: str
    seed: int
    steps: tuple[int, ...]
    engagement: tuple[float, ...]
    random: float
    seconds: float


def steps_to_share(steps: Sequence[int], engagement: Sequence[float], baseline: float, share: float = 0.95) -> int:
    """First checkpoint's steps whose gain over ``baseline`` reaches ``share`` of the final gain.

    Args:
        steps: (T,) cumulative steps, increasing. engagement: (T,) engagement at each.
        baseline: the engagement of no learning (random). share: in (0, 1].

    Returns:
        The steps of the first checkpoint t with ``e_t - baseline >= share (e_T - baseline)``.

    Raises:
        ValueError: empty or mismatched inputs, a share outside (0, 1], or no gain at the end.
    """
    e = np.asarray(engagement, dtype=np.float64)
    if len(steps) != len(e) or not len(e) or not 0.0 < share <= 1.0:
        raise ValueError(f"want equal non-empty steps and engagement and 0 < share <= 1; got {len(steps)}, {share}")
    gain = e - baseline
    if gain[-1] <= 0:
        raise ValueError(f"the final engagement {e[-1]:.4f} does not beat the baseline {baseline:.4f}")
    return int(steps[int(np.argmax(gain >= share * gain[-1]))])


def evaluate(agent: Any, config: Any, users: int, steps: int, seed: int) -> float:
    """Mean reward per user-step of ``agent`` (not learning) on a fresh world of ``users`` sessions."""
    from experiments.rollout import rollout
    from simenv import RecVectorEnv

    env = RecVectorEnv(users, config=config)
    trajectory = rollout(agent, env, steps, np.random.default_rng(seed), seed=seed, learn=False)
    return float(trajectory.records["reward"].mean())


def budget_curve(
    preset: str,
    seed: int,
    total: int,
    chunk: int,
    agent_name: str = "ppo",
    params: dict[str, Any] | None = None,
    eval_users: int = 64,
    eval_steps: int = 100,
) -> BudgetCurve:
    """Train ``agent_name`` on ``preset`` for ``total`` steps in ``chunk`` s and evaluate after each."""
    import torch

    from agents import make_agent
    from simenv import WorldSpec, get_preset

    torch.set_num_threads(1)
    config = get_preset(preset)
    spec = WorldSpec.from_config(config)
    eval_seed = 10_000 + seed
    random = evaluate(make_agent("random", spec), config, eval_users, eval_steps, eval_seed)
    agent = make_agent(agent_name, spec, **(params or {}))
    done, steps, engagement, seconds = 0, [], [], 0.0
    while done < total:
        n = min(chunk, total - done)
        started = time.perf_counter()
        agent.train(config, n, seed=seed)
        seconds += time.perf_counter() - started
        done += n
        steps.append(done)
        engagement.append(evaluate(agent, config, eval_users, eval_steps, eval_seed))
    return BudgetCurve(preset, agent_name, seed, tuple(steps), tuple(engagement), random, seconds)


def _parse_param(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    return key, json.loads(value) if value[:1] in "0123456789-[{tf" else value


def main(argv: Sequence[str] | None = None) -> None:
    """Print one JSON line per (preset, seed) curve and the steps to 95% of final engagement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["default"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--agent", default="ppo")
    parser.add_argument("--param", action="append", default=[], help="agent parameter KEY=VALUE")
    parser.add_argument("--share", type=float, default=0.95)
    args = parser.parse_args(argv)
    params = dict(_parse_param(p) for p in args.param)
    for preset in args.presets:
        for seed in args.seeds:
            curve = budget_curve(preset, seed, args.total, args.chunk, args.agent, params)
            try:
                budget: int | None = steps_to_share(curve.steps, curve.engagement, curve.random, args.share)
            except ValueError:
                budget = None
            print(json.dumps({**asdict(curve), "steps_to_share": budget, "share": args.share}), flush=True)


if __name__ == "__main__":
    main()
