"""The steady state of each preset under the ``random`` and ``oracle`` agents.

Runs every preset of :data:`simenv.PRESETS` under two reference policies (``random``: a
uniformly random slate; ``oracle``: the world's myopic best slate) and prints, per preset
and policy, the mean over seeds of where the world settles:

* ``satisfaction``: mean lasting satisfaction S of the users served, over the last
  ``window`` steps (S in [0, 1]; a new user starts at ``users.initial_satisfaction``);
* ``churn_per_1k``: churn events per 1,000 user-steps over the whole run;
* ``ctr``: share of served slates that got a click, over the last ``window`` steps;
* ``reward``: mean reward per user-step (minutes watched), over the last ``window`` steps;
* ``entropy_decline``: mean topic-interest entropy (bits) of the starting users at t = 0
  minus that of the users served at the last step (positive = tastes narrowed);
* ``cosine_end``: mean pairwise cosine between the interests of the users served at the
  last step (homogenisation; about 0 for a fresh, centred population).

The metric functions are those of :mod:`experiments.metrics`. Run it as
``python -m experiments.steady_state`` (``--help`` for sizes); ``docs/model.md`` quotes
its table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from agents import make_agent
from experiments.metrics import (
    churn_rate,
    click_through_rate,
    interest_entropy,
    mean_pairwise_cosine,
    reward_per_user_step,
)
from experiments.rollout import rollout
from simenv import PRESETS, RecVectorEnv, WorldSpec

POLICIES = ("random", "oracle")
"""The reference policies: no knowledge at all, and the myopic optimum."""

COLUMNS = ("satisfaction", "churn_per_1k", "ctr", "reward", "entropy_decline", "cosine_end")
"""The measured columns of :func:`steady_state` (see the module docstring)."""


def _one_run(preset: str, policy: str, seed: int, users: int, steps: int, window: int) -> dict[str, float]:
    """The :data:`COLUMNS` of one run of ``policy`` on ``preset`` under ``seed``."""
    env = RecVectorEnv(users, preset=preset)  # the oracle on: rollout records its expected reward
    agent = make_agent(policy, WorldSpec.from_config(env.config))
    traj = rollout(agent, env, steps=steps, rng=np.random.default_rng(seed), seed=seed)
    r = traj.records
    last = slice(steps - window, steps)
    centroids, beta = traj.centroids, env.config.choice.beta
    start_entropy = float(interest_entropy(traj.initial_interest, centroids, beta).mean())
    end_entropy = float(interest_entropy(r["interest"][-1], centroids, beta).mean())
    return {
        "satisfaction": float(np.mean(r["satisfaction"][last])),
        "churn_per_1k": 1000.0 * churn_rate(r["churned"]),
        "ctr": click_through_rate(r["click"][last]),
        "reward": reward_per_user_step(r["reward"][last]),
        "entropy_decline": start_entropy - end_entropy,
        "cosine_end": float(mean_pairwise_cosine(r["interest"][-1])),
    }


def steady_state(
    preset: str, policy: str, seeds: Sequence[int] = (0, 1), users: int = 256, steps: int = 300, window: int = 100
) -> pd.DataFrame:
    """Where ``preset`` settles under ``policy``: one row per seed.

    Args:
        preset: a name of :data:`simenv.PRESETS`.
        policy: an agent name (``"random"`` or ``"oracle"``; any agent that needs no
            training works).
        seeds: world seeds (the agent's generator is seeded with the same number).
        users: sessions stepped together (and the population size).
        steps: steps per run (T).
        window: the last steps over which satisfaction, CTR and reward are averaged
            (``min(window, steps)``).

    Returns:
        Columns ``preset``, ``policy``, ``seed`` and :data:`COLUMNS`, one row per seed.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {sorted(PRESETS)}")
    if steps < 1 or users < 2:
        raise ValueError(f"need steps >= 1 and users >= 2; got steps={steps}, users={users}")
    window = max(1, min(window, steps))
    rows = []
    for seed in seeds:
        measured = _one_run(preset, policy, int(seed), users, steps, window)
        rows.append({"preset": preset, "policy": policy, "seed": int(seed), **measured})
    return pd.DataFrame(rows, columns=["preset", "policy", "seed", *COLUMNS])


def table(
    presets: Sequence[str] = tuple(PRESETS),
    policies: Sequence[str] = POLICIES,
    seeds: Sequence[int] = (0, 1),
    users: int = 256,
    steps: int = 300,
    window: int = 100,
) -> pd.DataFrame:
    """Mean over seeds of :func:`steady_state`, one row per preset and policy."""
    runs = pd.concat(
        [steady_state(p, a, seeds, users, steps, window) for p in presets for a in policies], ignore_index=True
    )
    means = runs.groupby(["preset", "policy"], sort=False)[list(COLUMNS)].mean()
    return means.reset_index()


def to_markdown(frame: pd.DataFrame) -> str:
    """A Markdown table of :func:`table`'s frame (3 significant decimals)."""
    head = ["preset", "policy", *COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in frame.itertuples(index=False):
        cells = [f"`{row.preset}`", f"`{row.policy}`"]
        cells += [f"{getattr(row, c):.3f}" if c != "churn_per_1k" else f"{getattr(row, c):.2f}" for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=list(PRESETS), help="presets (default: all)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..S-1 (default 2)")
    parser.add_argument("--users", type=int, default=256, help="sessions stepped together (default 256)")
    parser.add_argument("--steps", type=int, default=300, help="steps per run (default 300)")
    parser.add_argument("--window", type=int, default=100, help="last steps averaged (default 100)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    frame = table(args.presets, POLICIES, range(args.seeds), args.users, args.steps, args.window)
    print(
        f"Steady state: {args.users} users, {args.steps} steps, {args.seeds} seeds; "
        f"satisfaction, CTR and reward over the last {min(args.window, args.steps)} steps; "
        f"churn over the whole run; entropy decline and cosine at the last step."
    )
    print(to_markdown(frame))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
