"""Ie et al. 2019: long-horizon SlateQ beats myopic click-chasing in RecSim's clickbait world.

Ie, Jain, Wang, Narvekar, Agarwal, Wu, Cheng, Chandra and Boutilier (2019), "SlateQ: A
Tractable Decomposition for Reinforcement Learning with Recommendation Sets", IJCAI 2019;
with the long-term satisfaction ("choc/kale") environment of Ie et al. (2019), "RecSim: A
Configurable Simulation Platform for Recommender Systems", arXiv:1909.04847.

The world is the ``clickbait`` preset: a fifth of the items tempt (appeal +1.5, clicked
more) and disappoint (value -1.5, so a click on one pulls the user's lasting satisfaction
S down); S moves 30% of the way to each step's signal (RecSim's memory discount 0.7),
a dissatisfied user clicks less, and below S = 0.4 they may leave for good.

Arms, under common random numbers (every arm of a seed meets the same users, candidates
and noise):

* ``random``: uniform slates (reference).
* ``clickmax``: the click-maximiser, top-k candidates by true utility (it reads the
  world's ground truth): the slate of most likely clicks, blind to value.
* ``oracle``: the myopic oracle, the slate of largest expected immediate engagement.
* ``slateq_g0``: SlateQ with discount 0, an engagement-myopic learner.
* ``slateq_g09``: SlateQ with discount 0.9.

Both SlateQ arms learn first on a separately seeded copy of the world (``train_steps``
steps of ``users`` sessions, the same budget for both), then serve the evaluation world
and keep learning online. Run ``python -m experiments.reproductions.ie2019`` to print the
table of ``docs/reproductions/ie2019.md`` and redraw ``docs/figures/ie2019.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents import Agent, Decision, make_agent
from experiments import metrics
from experiments.reproductions import FIGURES, fmt_interval, paired_effect, plot_band, pyplot, save_figure
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec, get_preset

NAME = "ie2019"
PRESET = "clickbait"
ARMS = ("random", "avoider", "clickmax", "oracle", "slateq_g0", "slateq_g09")
"""Arm labels, in table order."""

SLATEQ_PARAMS: dict[str, dict[str, Any]] = {
    "slateq_g0": {"discount": 0.0, "n_step": 5},
    "slateq_g09": {"discount": 0.9, "n_step": 5},
}
"""SlateQ settings per arm (the rest are the agent's defaults). With discount 0 the
5-step target is the immediate reward, so ``slateq_g0`` is plain myopic SlateQ."""

SEEDS = (0, 1, 2, 3, 4)
USERS = 256
STEPS = 200
TRAIN_STEPS = 300
EARLY_STEPS = 3
"""The early window (the immediate payoff): satisfaction moves 30% per step, so the
myopic policies' edge lasts a few steps; the late window is the last quarter of the run."""

ABLATIONS: dict[str, dict[str, Any]] = {
    "slateq_g09_1step": {"discount": 0.9, "n_step": 1},
    "slateq_g09_null0": {"discount": 0.9, "n_step": 5, "null_value": False},
    "slateq_g09_nohistory": {"discount": 0.9, "n_step": 5, "history_rate": 0.0},
    "slateq_g09_linear": {"discount": 0.9, "n_step": 5, "quadratic_items": False},
    "slateq_g09_eps002": {"discount": 0.9, "n_step": 5, "epsilon": 0.02},
    "slateq_g095": {"discount": 0.95, "n_step": 5},
    "slateq_g099": {"discount": 0.99, "n_step": 5},
}
"""Variants of ``slateq_g09`` (docs only): four undo one change to SlateQ each (the
paper's one-step target; no learned null-item value, RecSim's Qbar(s, null) = 0; no
feedback history in the state; items linear in their features), one explores less and
two look further ahead."""

TRAINING_SEED_OFFSET = 10_000
"""A SlateQ arm of seed s trains on the world of seed ``s + TRAINING_SEED_OFFSET``."""

FIGURE = FIGURES / f"{NAME}.png"


class ClickMaximiser(Agent):
    """Top-k candidates by true utility ``theta . e + appeal_weight a - satiation``: the
    slate whose items are each the likeliest to be clicked (it reads the world's ground
    truth, like the oracle; value does not enter utility, so it is blind to value)."""

    name = "clickmax"
    needs_ground_truth = True

    def act(self, obs: dict[str, np.ndarray], rng: np.random.Generator) -> Decision:
        slates = np.argsort(-obs["candidate_utility"], axis=1, kind="stable")[:, : self.spec.slate_size]
        b = slates.shape[0]
        return Decision(slates=slates, propensities=np.ones(slates.shape), explored=np.zeros(b, dtype=bool))


class ClickbaitAvoider(Agent):
    """A hand-made reference that knows the trap: top-k candidates by true utility minus
    ``penalty`` times appeal (net appeal weight ``appeal_weight - penalty`` < 0), so it
    serves what the user likes and shuns what merely tempts. Reads ground truth; it shows
    what avoiding clickbait is worth in this world, it is not one of the compared learners."""

    name = "avoider"
    needs_ground_truth = True

    def __init__(self, spec: WorldSpec, penalty: float = 0.75) -> None:
        super().__init__(spec, penalty=penalty)
        self.penalty = penalty

    def act(self, obs: dict[str, np.ndarray], rng: np.random.Generator) -> Decision:
        appeal = obs["candidates"][:, :, self.spec.embedding_dim]
        score = obs["candidate_utility"] - self.penalty * appeal
        slates = np.argsort(-score, axis=1, kind="stable")[:, : self.spec.slate_size]
        b = slates.shape[0]
        return Decision(slates=slates, propensities=np.ones(slates.shape), explored=np.zeros(b, dtype=bool))


def tempting_appeal() -> float:
    """Appeal above which an item counts as tempting in the reports: half the clickbait
    gap, midway between the mean appeal of ordinary items (0) and of clickbait."""
    return get_preset(PRESET).catalog.clickbait_gap / 2


def make_arm(arm: str, spec: WorldSpec, seed: int, users: int, train_steps: int) -> Agent:
    """The agent of ``arm`` for a world of shape ``spec``; SlateQ arms come trained."""
    if arm == "clickmax":
        return ClickMaximiser(spec)
    if arm == "avoider":
        return ClickbaitAvoider(spec)
    if arm in SLATEQ_PARAMS or arm in ABLATIONS:
        agent = make_agent("slateq", spec, **{**SLATEQ_PARAMS, **ABLATIONS}[arm])
        if train_steps > 0:
            agent.train(get_preset(PRESET), train_steps * users, seed + TRAINING_SEED_OFFSET, n_envs=users)
        return agent
    return make_agent(arm, spec)


def run_arm(arm: str, seed: int, users: int = USERS, steps: int = STEPS, train_steps: int = TRAIN_STEPS) -> dict:
    """One arm on the evaluation world of ``seed``: its per-run numbers.

    Returns:
        Floats: ``cohort_engagement`` (reward per starting-cohort user per step, churned
        users count 0), ``retention`` (share of the cohort not churned by the end), ``ctr``,
        ``satisfaction`` (mean S of the users served) and ``churn_per_1000`` (churn events
        per 1,000 user-steps) over the second half of the run (the steady state),
        ``consumed_value`` (mean hidden value of the clicked items), ``served_tempting``
        and ``clicked_tempting`` (share of the served and of the clicked items whose appeal
        exceeds :func:`tempting_appeal`; about 24% of the candidates), ``early_*`` and
        ``late_*`` cohort engagement and clicks per cohort user-step over the first
        ``EARLY_STEPS`` and the last quarter of the steps; arrays (T,): ``step_engagement``,
        ``step_clicks`` (per cohort user), ``step_satisfaction`` and ``survival``.
    """
    env = RecVectorEnv(users, preset=PRESET)
    spec = WorldSpec.from_config(env.config)
    agent = make_arm(arm, spec, seed, users, train_steps)
    traj = rollout(agent, env, steps, np.random.default_rng(seed), seed=seed)
    r = traj.records
    cohort = metrics.starting_cohort(r["user_id"])
    n = len(cohort)
    churn_step = metrics.first_churn_step(r["user_id"], r["churned"], cohort)
    reward = metrics.cohort_reward(r["reward"], r["user_id"], cohort) / n
    clicked = r["click"] >= 0
    clicks = metrics.cohort_reward(clicked.astype(np.float64), r["user_id"], cohort) / n
    items = np.take_along_axis(r["slate_items"], np.maximum(r["click"], 0)[..., None], axis=2)[..., 0]
    catalog = env.sim.catalog  # a static catalog: item id = catalog slot
    value = catalog.value[items[clicked]]
    tempting = catalog.appeal > tempting_appeal()
    half, late = steps // 2, steps - max(steps // 4, 1)
    return {
        "cohort_engagement": metrics.cohort_engagement(reward * n, n),
        "retention": metrics.retention(churn_step, steps),
        "ctr": float(clicked.mean()),
        "satisfaction": float(r["satisfaction"][half:].mean()),
        "churn_per_1000": 1000.0 * metrics.churn_rate(r["churned"][half:]),
        "consumed_value": float(value.mean()),
        "served_tempting": float(tempting[r["slate_items"]].mean()),
        "clicked_tempting": float(tempting[items[clicked]].mean()),
        "early_engagement": float(reward[:EARLY_STEPS].mean()),
        "early_clicks": float(clicks[:EARLY_STEPS].mean()),
        "late_engagement": float(reward[late:].mean()),
        "late_clicks": float(clicks[late:].mean()),
        "step_engagement": reward,
        "step_clicks": clicks,
        "step_satisfaction": r["satisfaction"].mean(axis=1, dtype=np.float64),
        "survival": metrics.cohort_survival(churn_step, steps),
    }


def measure(
    seeds: Sequence[int] = SEEDS,
    users: int = USERS,
    steps: int = STEPS,
    train_steps: int = TRAIN_STEPS,
    arms: Sequence[str] = ARMS,
) -> dict[str, dict[str, np.ndarray]]:
    """Every arm on every seed.

    Returns:
        ``{arm: {metric: per-seed array}}``: scalars give (S,) arrays, the per-step
        series (S, steps); rows in the order of ``seeds``.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for arm in arms:
        runs = [run_arm(arm, int(s), users, steps, train_steps) for s in seeds]
        out[arm] = {key: np.array([run[key] for run in runs]) for key in runs[0]}
    return out


# ---------------------------------------------------------------------------- report
SCALARS = (
    "cohort_engagement",
    "retention",
    "ctr",
    "satisfaction",
    "churn_per_1000",
    "consumed_value",
    "served_tempting",
    "clicked_tempting",
)
PHASES = ("early_clicks", "late_clicks", "early_engagement", "late_engagement")
COMPARISONS = (
    ("slateq_g09", "slateq_g0"),
    ("slateq_g09", "clickmax"),
    ("slateq_g09", "oracle"),
    ("slateq_g09", "random"),
    ("avoider", "clickmax"),
)
"""(treatment, control) pairs of the paired-effects table."""


def table(results: dict[str, dict[str, np.ndarray]]) -> str:
    """Markdown tables: means with 95% intervals per arm, early vs late, paired effects."""
    lines = ["| arm | " + " | ".join(SCALARS) + " |", "|---" * (len(SCALARS) + 1) + "|"]
    for arm, res in results.items():
        lines.append(f"| {arm} | " + " | ".join(fmt_interval(res[m]) for m in SCALARS) + " |")
    lines += ["", "| arm | " + " | ".join(PHASES) + " |", "|---" * (len(PHASES) + 1) + "|"]
    for arm, res in results.items():
        lines.append(f"| {arm} | " + " | ".join(fmt_interval(res[m]) for m in PHASES) + " |")
    lines += ["", "| treatment - control | metric | paired effect [95% CI] (two-sided p) |", "|---|---|---|"]
    for treat, ctrl in COMPARISONS:
        if treat not in results or ctrl not in results:
            continue
        for m in ("cohort_engagement", "retention", *PHASES):
            lines.append(f"| {treat} - {ctrl} | {m} | {paired_effect(results[treat][m], results[ctrl][m])} |")
    return "\n".join(lines)


def steps_of(results: dict[str, dict[str, np.ndarray]]) -> int:
    """T, the steps of the runs in ``results``."""
    return next(iter(results.values()))["survival"].shape[1]


def moving_average(series: np.ndarray, width: int) -> np.ndarray:
    """Trailing mean over up to ``width`` steps along the last axis (shorter at the start)."""
    total = np.cumsum(series, axis=-1)
    out = total.copy()
    out[..., width:] -= total[..., :-width]
    return out / np.minimum(np.arange(1, series.shape[-1] + 1), width)


def figure(results: dict[str, dict[str, np.ndarray]], path: Path = FIGURE, smooth: int = 10) -> None:
    """Cohort engagement per step, cohort survival and the satisfaction of the users
    served, per arm (means and 95% bands over seeds)."""
    import seaborn as sns

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    palette = dict(zip(results, sns.color_palette("tab10", len(results)), strict=False))
    panels = (
        ("step_engagement", f"cohort engagement ({smooth}-step mean)\nminutes per starting-cohort user-step"),
        ("survival", "retention\nshare of the starting cohort not churned"),
        ("step_satisfaction", f"satisfaction S of the users served ({smooth}-step mean)\nS in [0, 1]"),
    )
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        for arm, res in results.items():
            series = res[key] if key == "survival" else moving_average(res[key], smooth)
            shown = np.unique(
                np.r_[0, np.arange(smooth // 2, series.shape[1], max(smooth // 2, 1)), series.shape[1] - 1]
            )
            plot_band(ax, shown + 1, series[:, shown], palette[arm], arm, lw=1.6)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
    threshold = get_preset(PRESET).dynamics.churn_threshold
    axes[2].axhline(threshold, color="grey", ls="--", lw=1)
    axes[2].text(steps_of(results) * 0.98, threshold + 0.002, "churn threshold", ha="right", va="bottom", fontsize=8)
    axes[1].legend(fontsize=8, loc="lower left")
    n = len(next(iter(results.values()))["cohort_engagement"])
    fig.suptitle(
        "Ie et al. 2019, clickbait world: SlateQ with discount 0.9 keeps the users myopic policies burn\n"
        f"({n} seeds, common random numbers, 95% bands; SlateQ arms trained {TRAIN_STEPS} steps first)",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, path)


def slateq_diagnostics(seed: int = 0, users: int = USERS, train_steps: int = TRAIN_STEPS, at_step: int = 50) -> str:
    """What each trained SlateQ arm believes about tempting vs other candidates after
    ``at_step`` steps of the evaluation world (users with a history): mean learned click
    logit ``log v``, advantage over no click ``x^T W z`` (minutes) and score ``v x^T W z``
    (what it ranks by), and the true click logit gap ``beta * appeal_weight * appeal``."""
    lines = [
        "| arm | click logit: tempting | other | advantage: tempting | other | score: tempting | other |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in SLATEQ_PARAMS:
        env = RecVectorEnv(users, preset=PRESET)
        spec = WorldSpec.from_config(env.config)
        agent = make_arm(arm, spec, seed, users, train_steps)
        rollout(agent, env, at_step, np.random.default_rng(seed), seed=seed)
        obs = env.sim.obs
        tempting = obs["candidates"][:, :, spec.embedding_dim] > tempting_appeal()
        logits, values = agent.item_values(obs)
        advantage = values - agent.null_values(agent.state_features(obs))[:, None]
        score = agent.scores(obs)
        cells = [f"{a[tempting].mean():.2f} | {a[~tempting].mean():.2f}" for a in (logits, advantage, score)]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    c = get_preset(PRESET).choice
    appeal = obs["candidates"][:, :, spec.embedding_dim]
    gap = c.beta * c.appeal_weight * (appeal[tempting].mean() - appeal[~tempting].mean())
    lines.append(f"| (truth) | click logit gap {gap:.2f} | | | | | |")
    return "\n".join(lines)


def main() -> None:
    results = measure()
    print(table(results))
    online = measure(arms=tuple(SLATEQ_PARAMS), train_steps=0)
    print("\nSlateQ learning online from scratch on the evaluation world (no training phase):\n")
    print(table(online))
    ablations = measure(arms=tuple(ABLATIONS))
    print("\nVariants of slateq_g09:\n")
    print(table({"slateq_g09": results["slateq_g09"], **ablations}).split("\n\n")[0])
    for arm in ABLATIONS:
        print(f"{arm} - slateq_g09 cohort_engagement: ", end="")
        print(paired_effect(ablations[arm]["cohort_engagement"], results["slateq_g09"]["cohort_engagement"]))
    for metric in ("cohort_engagement", "retention"):
        effect = paired_effect(ablations["slateq_g09_1step"][metric], results["slateq_g0"][metric])
        print(f"slateq_g09_1step - slateq_g0 {metric}: {effect}")
    print("\nWhat the trained SlateQ arms learned (seed 0, evaluation step 50):\n")
    print(slateq_diagnostics())
    figure(results)
    print(f"\nfigure: {FIGURE}")


if __name__ == "__main__":
    main()
