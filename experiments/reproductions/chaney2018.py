"""Chaney, Stewart and Engelhardt 2018, "How algorithmic confounding in recommendation
systems increases homogeneity and decreases utility" (RecSys 2018): recommenders trained
on the feedback they caused make users more alike than an ideal recommender does, while
random recommendation leaves them about as alike as they started.

Homogenization is measured both ways of the paper (:mod:`experiments.metrics`):

* interests: the mean pairwise cosine of the users' interests theta
  (:func:`~experiments.metrics.mean_pairwise_cosine`), before the first step and after
  the last one;
* consumption: the mean pairwise Jaccard overlap of the sets of items two users consumed
  (:func:`~experiments.metrics.jaccard_overlap`, over every pair of users), in the first
  and in the last :data:`WINDOW` steps.

The finding is about the *change* from the start to the end of the horizon, compared
between recommenders under the same seed (common random numbers: same catalog, users and
noise for every arm).

Arms on the ``filter_bubble`` world: ``random``; ``oracle``, the ideal recommender (the
exact myopic optimum of the step's expected reward under the true user model: it knows
every user's true interests); and three recommenders trained online on their own
feedback: ``linucb`` (linear contextual bandit), ``popularity`` (smoothed CTR, the same
ranking for everyone), ``mf`` (online matrix factorization on user and item ids).

Run ``python -m experiments.reproductions.chaney2018`` to print the table and redraw
``docs/figures/chaney2018.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents import make_agent
from experiments.metrics import jaccard_overlap, mean_pairwise_cosine
from experiments.reproductions import FIGURES, fmt_effect, fmt_interval, paired_effect, plot_band, pyplot, save_figure
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec

PRESET = "filter_bubble"
SEEDS = tuple(range(8))
USERS = 256
STEPS = 200
WINDOW = 20
"""Steps of the first and last consumption windows of the Jaccard overlap."""

ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "oracle": ("oracle", {}),
    "linucb": ("linucb", {}),
    "popularity": ("popularity", {}),
    "mf": ("mf", {}),
}
"""Arm label -> (agent name, parameters); every agent with its registry defaults."""

LEARNERS = ("linucb", "popularity", "mf")
"""The arms trained on their own feedback."""

METRICS = {
    "cosine_start": "interest cosine at the start",
    "cosine_end": "interest cosine at the end",
    "cosine_change": "change of interest cosine",
    "jaccard_start": "Jaccard, first window",
    "jaccard_end": "Jaccard, last window",
    "jaccard_change": "change of Jaccard",
    "reward": "reward per user-step (minutes)",
}


@dataclass(frozen=True)
class Result:
    """Per-seed numbers of every arm.

    Attributes:
        seeds: the seeds, in order. users: users (sessions) per run.
        per_seed: arm -> metric (:data:`METRICS`) -> (S,) values.
        cosine: arm -> (S, T + 1) mean pairwise interest cosine before the first step and
            after each step.
        jaccard: arm -> (S, W) Jaccard overlap of consumption per window of :data:`WINDOW` steps.
    """

    seeds: tuple[int, ...]
    users: int
    per_seed: dict[str, dict[str, np.ndarray]]
    cosine: dict[str, np.ndarray]
    jaccard: dict[str, np.ndarray]


def _window_jaccard(records: dict[str, np.ndarray], start: int, end: int) -> float:
    """Jaccard overlap of the items consumed in steps [start, end), over every user pair."""
    click = records["click"][start:end]
    clicked = click >= 0
    items = np.take_along_axis(records["slate_items"][start:end], np.maximum(click, 0)[..., None], axis=-1)[..., 0]
    users = records["user_id"][start:end][clicked]
    n = len(np.unique(users))
    return jaccard_overlap(users, items[clicked], n_pairs=n * (n - 1) // 2)


def run_arm(
    arm: str, seed: int, users: int = USERS, steps: int = STEPS
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """One arm under one seed: its :data:`METRICS`, its (T + 1,) cosine curve and its
    per-window Jaccard overlaps."""
    name, params = ARMS[arm]
    env = RecVectorEnv(users, preset=PRESET)
    agent = make_agent(name, WorldSpec.from_config(env.config), **params)
    trajectory = rollout(agent, env, steps, np.random.default_rng(seed), seed=seed)
    records = trajectory.records
    cosine = np.concatenate(
        [[mean_pairwise_cosine(trajectory.initial_interest)], mean_pairwise_cosine(records["interest"])]
    ).astype(np.float64)
    jaccard = np.array([_window_jaccard(records, lo, min(lo + WINDOW, steps)) for lo in range(0, steps, WINDOW)])
    first, last = jaccard[0], _window_jaccard(records, steps - WINDOW, steps)
    numbers = {
        "cosine_start": float(cosine[0]),
        "cosine_end": float(cosine[-1]),
        "cosine_change": float(cosine[-1] - cosine[0]),
        "jaccard_start": float(first),
        "jaccard_end": float(last),
        "jaccard_change": float(last - first),
        "reward": float(records["reward"].mean()),
    }
    return numbers, cosine, jaccard


def measure(
    seeds: tuple[int, ...] = SEEDS, users: int = USERS, steps: int = STEPS, arms: tuple[str, ...] = tuple(ARMS)
) -> Result:
    """Run ``arms`` under every seed (common random numbers) and collect per-seed numbers."""
    if steps < 2 * WINDOW:
        raise ValueError(f"steps must be >= {2 * WINDOW} (two Jaccard windows); got {steps}")
    per_seed: dict[str, dict[str, list[float]]] = {arm: {m: [] for m in METRICS} for arm in arms}
    cosines: dict[str, list[np.ndarray]] = {arm: [] for arm in arms}
    jaccards: dict[str, list[np.ndarray]] = {arm: [] for arm in arms}
    for seed in seeds:
        for arm in arms:
            numbers, cosine, jaccard = run_arm(arm, seed, users, steps)
            for metric, value in numbers.items():
                per_seed[arm][metric].append(value)
            cosines[arm].append(cosine)
            jaccards[arm].append(jaccard)
    return Result(
        seeds=tuple(seeds),
        users=users,
        per_seed={arm: {m: np.array(v) for m, v in values.items()} for arm, values in per_seed.items()},
        cosine={arm: np.stack(c) for arm, c in cosines.items()},
        jaccard={arm: np.stack(j) for arm, j in jaccards.items()},
    )


def table(result: Result) -> str:
    """Markdown: per arm the mean and 95% interval of each metric, then the paired effects
    of the changes (learners and random against the oracle, random against each learner)."""
    lines = ["| arm | " + " | ".join(METRICS.values()) + " |", "|---|" + "---|" * len(METRICS)]
    for arm, numbers in result.per_seed.items():
        cells = [fmt_interval(numbers[metric], 4) for metric in METRICS]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "| comparison (treatment - control) | change of cosine | change of Jaccard |", "|---|---|---|"]
    pairs = [(arm, "oracle") for arm in (*LEARNERS, "random")] + [("random", arm) for arm in LEARNERS]
    for treatment, control in pairs:
        if treatment in result.per_seed and control in result.per_seed:
            cells = [
                fmt_effect(paired_effect(result.per_seed[treatment][m], result.per_seed[control][m]), 4)
                for m in ("cosine_change", "jaccard_change")
            ]
            lines.append(f"| {treatment} - {control} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(result: Result, path: Path) -> None:
    """Interest cosine per step and consumption Jaccard per window, mean over seeds with 95% bands."""
    import seaborn as sns

    plt = pyplot()
    arms = list(result.per_seed)
    palette = dict(zip(arms, sns.color_palette("colorblind", len(arms)), strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for arm in arms:
        plot_band(axes[0], np.arange(result.cosine[arm].shape[1]), result.cosine[arm], palette[arm], arm)
        windows = result.jaccard[arm].shape[1]
        x = (np.arange(windows) + 0.5) * WINDOW
        plot_band(axes[1], x, result.jaccard[arm], palette[arm], arm, marker="o")
    axes[0].set_title("Interests: mean pairwise cosine")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("mean pairwise cosine (unitless, symlog)")
    axes[0].set_yscale("symlog", linthresh=0.01)
    axes[1].set_title(f"Consumption: Jaccard overlap per {WINDOW}-step window")
    axes[1].set_xlabel("step (window centre)")
    axes[1].set_ylabel("mean pairwise Jaccard (share of items)")
    axes[1].legend(fontsize=8)
    fig.suptitle(
        f"Chaney et al. 2018 in the filter_bubble world: homogenization "
        f"({len(result.seeds)} seeds x {result.users} users; mean and 95% t-band over seeds)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    save_figure(fig, path)


def main() -> None:
    result = measure()
    print(table(result))
    path = FIGURES / "chaney2018.png"
    figure(result, path)
    print(f"\nfigure: {path}")


if __name__ == "__main__":
    main()
