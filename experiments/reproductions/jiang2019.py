"""Jiang, Chiappa, Lattimore, György and Kohli 2019, "Degenerate Feedback Loops in
Recommender Systems" (AIES 2019): under preference amplification a greedy learner
degenerates users' interests faster than random recommendation; continuous random
exploration and a growing candidate pool slow the degeneration.

Degeneration is measured as the decline of the users' topic-interest entropy
(:func:`experiments.metrics.interest_entropy`, bits) from the start of the run, and, as
in the paper, as the distance ``|theta_t - theta_0|`` of the interests from where they
started (the rollout's ``preference_shift``). "Faster" is read on the mean decline over
the horizon (the run's ``interest_entropy_decline``, the area under the decline curve
per step), the final decline is reported beside it.

Arms (every one on the ``filter_bubble`` world with ``catalog.fresh_share`` 0.2, so the
arrivals arm differs from the greedy one by the arrivals alone; one seed gives every arm
the same users, catalog and noise):

* ``greedy``: ``linear_egreedy`` with epsilon 0 (a ridge regression of reward, top-k).
* ``eps_01``, ``eps_03``, ``eps_06``: the same learner with per-slot epsilon-greedy
  exploration (:func:`agents.slates.epsilon_greedy_slates`: each slot is a uniformly
  random remaining candidate with probability epsilon).
* ``slate_01``, ``slate_03``: the same learner with whole-slate epsilon-greedy
  exploration (``exploration: slate``, :func:`agents.slates.slate_epsilon_greedy_slates`:
  the whole slate is uniformly random with probability epsilon).
* ``random``: uniformly random slates.
* ``arrivals``: the greedy learner while ``catalog.arrival_rate`` = 20 new items a step
  replace the oldest (the whole catalog is renewed over 100 steps; a fifth of the
  candidates come from the 100 newest items).
* ``relevance_c10``, ``relevance_c50``: the greedy learner with relevance retrieval
  (``retrieval.method: relevance``: the candidates are the top of 200 items scored by a
  noisy view of the user's interest, plus an explore share) and C = 10 or 50 candidates.
* ``uniform_c10``, ``uniform_c50``: the same with uniform (stratified) candidates, the
  old world's only retriever; reported, not asserted.

Run ``python -m experiments.reproductions.jiang2019`` to print the table and redraw
``docs/figures/jiang2019.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents import make_agent
from experiments.metrics import interest_entropy
from experiments.reproductions import FIGURES, fmt_effect, fmt_interval, paired_effect, plot_band, pyplot, save_figure
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec

PRESET = "filter_bubble"
WORLD: dict[str, Any] = {"catalog": {"fresh_share": 0.2}}
"""Overrides of the preset shared by every arm."""

SEEDS = tuple(range(8))
USERS = 256
STEPS = 100

_GREEDY = ("linear_egreedy", {"epsilon": 0.0})
_RELEVANCE = {"method": "relevance"}

ARMS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "greedy": (*_GREEDY, {}),
    "eps_01": ("linear_egreedy", {"epsilon": 0.1}, {}),
    "eps_03": ("linear_egreedy", {"epsilon": 0.3}, {}),
    "eps_06": ("linear_egreedy", {"epsilon": 0.6}, {}),
    "slate_01": ("linear_egreedy", {"epsilon": 0.1, "exploration": "slate"}, {}),
    "slate_03": ("linear_egreedy", {"epsilon": 0.3, "exploration": "slate"}, {}),
    "random": ("random", {}, {}),
    "arrivals": (*_GREEDY, {"catalog": {"arrival_rate": 20.0}}),
    "relevance_c10": (*_GREEDY, {"retrieval": _RELEVANCE, "n_candidates": 10}),
    "relevance_c50": (*_GREEDY, {"retrieval": _RELEVANCE, "n_candidates": 50}),
    "uniform_c10": (*_GREEDY, {"n_candidates": 10}),
    "uniform_c50": (*_GREEDY, {"n_candidates": 50}),
}
"""Arm label -> (agent name, agent parameters, world overrides on top of :data:`WORLD`)."""

TESTED_ARMS = ("greedy", "eps_03", "slate_03", "random", "relevance_c10", "relevance_c50")
"""The arms the slow test measures: those of the asserted comparisons (the others did not
show the paper's direction, see ``docs/reproductions/jiang2019.md``, and are for the docs)."""

METRICS = {
    "decline_mean": "interest-entropy decline, mean over the horizon (bits)",
    "decline_final": "interest-entropy decline at the last step (bits)",
    "shift_mean": "|theta_t - theta_0|, mean over the horizon",
    "reward": "reward per user-step (minutes)",
}

COMPARISONS = (
    ("greedy", "random", "greedy vs random"),
    ("eps_01", "greedy", "per-slot eps 0.1 vs greedy"),
    ("eps_03", "greedy", "per-slot eps 0.3 vs greedy"),
    ("eps_06", "greedy", "per-slot eps 0.6 vs greedy"),
    ("slate_01", "greedy", "whole-slate eps 0.1 vs greedy"),
    ("slate_03", "greedy", "whole-slate eps 0.3 vs greedy"),
    ("arrivals", "greedy", "arrivals 20/step vs none"),
    ("relevance_c50", "relevance_c10", "relevance retrieval: C 50 vs 10"),
    ("uniform_c50", "uniform_c10", "uniform retrieval: C 50 vs 10"),
)
"""(treatment, control, what) pairs of the table; the paper's direction is treatment < control
for every pair but the first (greedy degenerates faster than random: treatment > control)."""


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in extra.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


@dataclass(frozen=True)
class Result:
    """Per-seed numbers of every arm.

    Attributes:
        seeds: the seeds, in order. users: users (sessions) per run.
        per_seed: arm -> metric (:data:`METRICS`) -> (S,) values.
        decline: arm -> (S, T) interest-entropy decline after each step.
    """

    seeds: tuple[int, ...]
    users: int
    per_seed: dict[str, dict[str, np.ndarray]]
    decline: dict[str, np.ndarray]


def run_arm(
    arm: str, seed: int, users: int = USERS, steps: int = STEPS, world: dict[str, Any] | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """One arm under one seed: its :data:`METRICS` and its (T,) decline curve.
    ``world``: further overrides on top of the arm's (for :func:`mechanisms`)."""
    name, params, overrides = ARMS[arm]
    env = RecVectorEnv(users, preset=PRESET, overrides=_merge(_merge(WORLD, overrides), world or {}))
    agent = make_agent(name, WorldSpec.from_config(env.config), **params)
    trajectory = rollout(agent, env, steps, np.random.default_rng(seed), seed=seed)
    records, beta = trajectory.records, env.config.choice.beta
    start = interest_entropy(trajectory.initial_interest, trajectory.centroids, beta).mean()
    decline = start - interest_entropy(records["interest"], trajectory.centroids, beta).mean(axis=1)
    numbers = {
        "decline_mean": float(decline.mean()),
        "decline_final": float(decline[-1]),
        "shift_mean": float(records["preference_shift"].mean()),
        "reward": float(records["reward"].mean()),
    }
    return numbers, decline


def measure(
    seeds: tuple[int, ...] = SEEDS, users: int = USERS, steps: int = STEPS, arms: tuple[str, ...] = tuple(ARMS)
) -> Result:
    """Run ``arms`` under every seed (common random numbers) and collect per-seed numbers."""
    per_seed: dict[str, dict[str, list[float]]] = {arm: {m: [] for m in METRICS} for arm in arms}
    curves: dict[str, list[np.ndarray]] = {arm: [] for arm in arms}
    for seed in seeds:
        for arm in arms:
            numbers, decline = run_arm(arm, seed, users, steps)
            for metric, value in numbers.items():
                per_seed[arm][metric].append(value)
            curves[arm].append(decline)
    return Result(
        seeds=tuple(seeds),
        users=users,
        per_seed={arm: {m: np.array(v) for m, v in values.items()} for arm, values in per_seed.items()},
        decline={arm: np.stack(c) for arm, c in curves.items()},
    )


MECHANISMS: dict[str, dict[str, Any]] = {
    "amplification only": {"dynamics": {"exposure": 0.0, "skip_repulsion": 0.0}},
    "exposure only (0.05)": {"dynamics": {"amplification": 0.0, "exposure": 0.05, "skip_repulsion": 0.0}},
    "skip repulsion only (0.02)": {"dynamics": {"amplification": 0.0, "exposure": 0.0, "skip_repulsion": 0.02}},
}
"""The filter_bubble world with one of the three taste dynamics on at an explicit strength
(``filter_bubble`` itself has only amplification on; for :func:`mechanisms`)."""

MECHANISM_ARMS = ("greedy", "eps_06", "random")


def mechanisms(
    seeds: tuple[int, ...] = SEEDS, users: int = USERS, steps: int = STEPS
) -> dict[str, dict[str, np.ndarray]]:
    """Which taste dynamic lets exploration slow the degeneration: the mean decline
    (bits, per seed) of :data:`MECHANISM_ARMS` with one dynamic of :data:`MECHANISMS` on.

    Returns:
        world label -> arm -> (S,) mean interest-entropy decline over the horizon.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for label, world in MECHANISMS.items():
        out[label] = {
            arm: np.array([run_arm(arm, seed, users, steps, world)[0]["decline_mean"] for seed in seeds])
            for arm in MECHANISM_ARMS
        }
    return out


def mechanisms_table(numbers: dict[str, dict[str, np.ndarray]]) -> str:
    """Markdown: per isolated dynamic, the mean decline of each arm and the paired effect of
    exploration (eps 0.6 - greedy) and of the greedy learner (greedy - random)."""
    lines = [
        "| dynamics on | greedy | eps 0.6 | random | eps 0.6 - greedy | greedy - random |",
        "|---|---|---|---|---|---|",
    ]
    for label, arms in numbers.items():
        means = [f"{arms[arm].mean():+.3f}" for arm in MECHANISM_ARMS]
        explore = fmt_effect(paired_effect(arms["eps_06"], arms["greedy"]))
        greedy = fmt_effect(paired_effect(arms["greedy"], arms["random"]))
        lines.append(f"| {label} | " + " | ".join(means) + f" | {explore} | {greedy} |")
    return "\n".join(lines)


def table(result: Result) -> str:
    """Markdown: per arm the mean and 95% interval of each metric, then the paired effects."""
    lines = [
        "| arm | " + " | ".join(METRICS.values()) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for arm, numbers in result.per_seed.items():
        cells = [fmt_interval(numbers[metric]) for metric in METRICS]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    header = "| comparison (treatment - control) | mean decline | final decline | mean shift |"
    lines += ["", header, "|---|---|---|---|"]
    for treatment, control, what in COMPARISONS:
        if treatment in result.per_seed and control in result.per_seed:
            cells = [
                fmt_effect(paired_effect(result.per_seed[treatment][m], result.per_seed[control][m]))
                for m in ("decline_mean", "decline_final", "shift_mean")
            ]
            lines.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(result: Result, path: Path) -> None:
    """Decline curves (mean over seeds, 95% band) of the exploration and candidate-pool arms."""
    import seaborn as sns

    plt = pyplot()
    panels = (
        ("Exploration (per-slot and whole-slate epsilon)", ("random", "greedy", "eps_03", "eps_06", "slate_03")),
        ("Candidate pool", ("greedy", "arrivals", "relevance_c10", "relevance_c50", "uniform_c10", "uniform_c50")),
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    palette = dict(zip(ARMS, sns.color_palette("tab10", len(ARMS)), strict=True))
    for ax, (title, arms) in zip(axes, panels, strict=True):
        for arm in arms:
            if arm not in result.decline:
                continue
            curves = result.decline[arm]
            plot_band(ax, np.arange(1, curves.shape[1] + 1), curves, palette[arm], arm)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("interest-entropy decline (bits)")
    fig.suptitle(
        f"Jiang et al. 2019 in the filter_bubble world: degeneration of interests "
        f"({len(result.seeds)} seeds x {result.users} users; mean and 95% t-band over seeds)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    save_figure(fig, path)


def main() -> None:
    result = measure()
    print(table(result))
    print("\nMean interest-entropy decline (bits) with one taste dynamic on:\n")
    print(mechanisms_table(mechanisms()))
    path = FIGURES / "jiang2019.png"
    figure(result, path)
    print(f"\nfigure: {path}")


if __name__ == "__main__":
    main()
