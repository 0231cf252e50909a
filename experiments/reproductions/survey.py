"""The project's seed survey, tested claim by claim in the rebuilt world.

Four claims, four measurements, all over seeds with common random numbers (under one
seed every arm meets the same catalog, users, candidates and choice noise; the agents'
own draws come from a generator seeded by the same seed):

(a) :func:`measure_bandits`: "contextual bandits give +9-15% engagement over static
    recommendation". LinUCB (and VW epsilon-greedy) against a static, non-personalised
    ranking by item appeal and against popularity, on the ``default`` world.
(b) :func:`measure_exploration`: "an exploration rate of 10-20% balances engagement and
    discovery". ``linear_egreedy`` at epsilon 0..0.5 on four worlds; long-run engagement
    against discovery (catalog coverage, per-user topic entropy).
    :func:`measure_hidden_value_search` (``python -m experiments.reproductions.survey
    --search``) looks for a world with an interior optimum: hidden item value and
    learners that learn per item.
(c) :func:`measure_diversity`: "user satisfaction falls when diversity falls below a
    threshold". A ground-truth policy that serves the best items of exactly m topics
    (m = 1..k) per slate; lasting satisfaction and engagement against slate topic entropy,
    under ``boredom`` and the same world without satiation.
(d) :func:`measure_freeze`: "quality degrades without retraining as tastes drift". LinUCB
    kept online against the same LinUCB frozen after a learning phase (the runner's
    ``conditions.freeze_after``), at several drift strengths of ``drifting_tastes``.

Run ``python -m experiments.reproductions.survey`` to print the tables of
``docs/reproductions/survey.md`` and draw ``docs/figures/survey.png``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents import make_agent
from agents.base import Agent, Decision, Observation
from experiments import metrics
from experiments.report import t_interval
from experiments.reproductions import (
    FIGURES,
    fmt_effect,
    fmt_interval,
    fmt_percent,
    md_table,
    paired_effect,
    plot_band,
    pyplot,
    save_figure,
)
from experiments.rollout import Trajectory, rollout
from experiments.runner import ScheduledLearner
from experiments.scenario import Conditions
from simenv import RecVectorEnv, WorldConfig, WorldSpec, get_preset, with_overrides

SEEDS = tuple(range(5))
"""Seeds of the published tables (the tests use the same ones)."""

USERS = 256
"""Concurrent sessions (= users: the population is one user per session)."""

STEPS = 200
"""Horizon of (a), (b) and (c)."""

FREEZE_STEPS = 300
"""Horizon of (d): a learning phase of :data:`FREEZE_AFTER` steps, then 250 steps frozen."""

FREEZE_AFTER = 50
"""Steps the frozen arm of (d) learns before it stops (the runner's ``freeze_after``)."""

WINDOW = 10
"""Steps per metrics window (as in the scenario files)."""

BANDIT_ARMS = ("static", "popularity", "linucb", "vw_epsilon", "random", "oracle")
"""Arms of (a): the claim's baseline (static), a non-personalised learner (popularity), the
two contextual bandits, and the random and myopic-oracle references."""

EPSILONS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
"""Exploration rates of (b)."""

EXPLORATION_PRESETS = ("default", "boredom", "drifting_tastes", "exploration_pays")
"""Worlds of (b)."""

TOPIC_COUNTS = (1, 2, 3, 4, 5)
"""Topics per slate in (c): 1 = a one-topic slate, 5 = k distinct topics."""

TOPIC_RULES = ("favourite", "best_now")
"""How (c) picks a slate's m topics: the user's m favourite topics (by true interest),
or the m topics whose best candidate has the highest true utility at this step
(satiation included, so this rule moves away from a topic the user is tired of)."""

DIVERSITY_CANDIDATES = 100
"""Candidates per user-step in (c) (about 10 per topic, so a one-topic slate of k = 5
exists); the rest of the world is the preset's."""

DIVERSITY_WORLDS: dict[str, dict[str, Any]] = {
    "boredom": {},
    "boredom, satiation off": {"dynamics": {"satiation": 0.0}},
}
"""Worlds of (c) (overrides of the ``boredom`` preset): the mechanism and its control."""

DRIFTS = (0.0, 0.005, 0.02, 0.05)
"""Drift strengths of (d): none, the default world's, an intermediate one, and the
``drifting_tastes`` preset's."""

FREEZE_AGENT = "linucb"
"""The bandit of (d)."""

FIGURE = FIGURES / "survey.png"


# --------------------------------------------------------------------------- shared helpers


def agent_rng(seed: int) -> np.random.Generator:
    """The agents' own generator for ``seed`` (independent of the world's streams)."""
    return np.random.default_rng([seed, 2026])


def run_agent(
    agent: Agent | str,
    config: WorldConfig,
    users: int,
    steps: int,
    seed: int,
    params: Mapping[str, Any] | None = None,
) -> Trajectory:
    """Roll ``agent`` (an agent or a registry name) on a fresh world of ``config``."""
    env = RecVectorEnv(users, config=config)
    if isinstance(agent, str):
        agent = make_agent(agent, WorldSpec.from_config(config), **dict(params or {}))
    return rollout(agent, env, steps, agent_rng(seed), seed=seed)


def relative_gain(treatment: np.ndarray, control: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds of ``treatment / control - 1`` in percent."""
    return t_interval(100.0 * (np.asarray(treatment) / np.asarray(control) - 1.0))


def _late(values: np.ndarray) -> float:
    """Mean over the second half of the steps of a (T, ...) array."""
    return float(np.mean(values[len(values) // 2 :]))


# --------------------------------------------------------------------------- (a) bandits vs static


def measure_bandits(
    seeds: Sequence[int] = SEEDS,
    users: int = USERS,
    steps: int = STEPS,
    agents: Sequence[str] = BANDIT_ARMS,
    preset: str = "default",
) -> dict[str, dict[str, np.ndarray]]:
    """Claim (a): reward per user-step of each arm, per seed.

    Returns:
        ``{agent: {"reward": (S,), "reward_late": (S,)}}``: minutes watched per user-step
        over the whole run (learning included) and over its second half.
    """
    config = get_preset(preset)
    out: dict[str, dict[str, list[float]]] = {name: {"reward": [], "reward_late": []} for name in agents}
    for seed in seeds:
        for name in agents:
            reward = run_agent(name, config, users, steps, seed).records["reward"]
            out[name]["reward"].append(float(reward.mean()))
            out[name]["reward_late"].append(_late(reward))
    return {name: {k: np.array(v) for k, v in cols.items()} for name, cols in out.items()}


# --------------------------------------------------------------------------- (b) exploration rate


def measure_exploration(
    seeds: Sequence[int] = SEEDS,
    users: int = USERS,
    steps: int = STEPS,
    presets: Sequence[str] | Mapping[str, WorldConfig] = EXPLORATION_PRESETS,
    epsilons: Sequence[float] = EPSILONS,
    window: int = WINDOW,
    agent: str = "linear_egreedy",
) -> dict[str, dict[str, np.ndarray]]:
    """Claim (b): long-run engagement and discovery of ``agent`` (any agent with an
    ``epsilon``) per exploration rate, in each world (preset names, or labelled configs).

    "Long run" is the second half of the run: the mean over its windows of ``window``
    steps. With one user per session and no churn in these worlds, reward per user-step
    equals the starting cohort's engagement (``cohort_engagement``).

    Returns:
        ``{world: {metric: (S, E)}}`` with metrics ``engagement`` (minutes per
        user-step), ``coverage`` (distinct items shown / items in the catalog, per window),
        ``user_topic_entropy`` (bits, per window) and ``slate_topic_entropy`` (bits).
    """
    names = ("engagement", "coverage", "user_topic_entropy", "slate_topic_entropy")
    columns = ("reward_per_user_step", "catalog_coverage", "user_topic_entropy", "slate_topic_entropy")
    worlds = dict(presets) if isinstance(presets, Mapping) else {name: get_preset(name) for name in presets}
    out: dict[str, dict[str, np.ndarray]] = {}
    for label, config in worlds.items():
        table = {name: np.zeros((len(seeds), len(epsilons))) for name in names}
        for i, seed in enumerate(seeds):
            for j, eps in enumerate(epsilons):
                traj = run_agent(agent, config, users, steps, seed, {"epsilon": eps})
                frame = metrics.window_metrics(traj, window, config.catalog.n_items, config.choice.beta)
                late = frame[frame["step_start"] >= steps // 2]
                for name, column in zip(names, columns, strict=True):
                    table[name][i, j] = late[column].mean()
        out[label] = table
    return out


EXPLORATION_PAYS_VARIANTS: dict[str, dict[str, Any]] = {
    "satiation 3, decay 0.9": {"dynamics": {"satiation": 3.0, "satiation_decay": 0.9}},
    "satiation 5, decay 0.95": {"dynamics": {"satiation": 5.0, "satiation_decay": 0.95}},
    "relevance retrieval": {"retrieval": {"method": "relevance"}},
    "relevance retrieval, no explore share, satiation 4, decay 0.9": {
        "retrieval": {"method": "relevance", "explore_share": 0.0},
        "dynamics": {"satiation": 4.0, "satiation_decay": 0.9},
    },
    "amplification 0.1": {"dynamics": {"amplification": 0.1}},
}
"""Variants of ``exploration_pays`` (overrides) tried in search of a world where
exploration pays: stronger and longer boredom, a relevance retriever that narrows the
candidates (so greedy slates repeat topics), and preference amplification."""

VARIANT_SEEDS = SEEDS[:3]
VARIANT_EPSILONS = (0.0, 0.05, 0.1, 0.2)


def measure_exploration_variants(
    seeds: Sequence[int] = VARIANT_SEEDS, users: int = USERS, steps: int = STEPS
) -> dict[str, dict[str, np.ndarray]]:
    """(b), the search: :func:`measure_exploration` of ``linear_egreedy`` on the variants of
    :data:`EXPLORATION_PAYS_VARIANTS` at epsilon 0..0.2, and of the matrix-factorisation
    agent ``mf`` (per-user and per-item parameters: something to learn by exploring) on
    ``exploration_pays`` at every epsilon of :data:`EPSILONS` (key ``"mf on exploration_pays"``)."""
    base = get_preset("exploration_pays")
    worlds = {label: with_overrides(base, over) for label, over in EXPLORATION_PAYS_VARIANTS.items()}
    out = measure_exploration(seeds, users, steps, worlds, VARIANT_EPSILONS)
    mf = measure_exploration(seeds, users, steps, ("exploration_pays",), EPSILONS, agent="mf")
    out["mf on exploration_pays"] = mf["exploration_pays"]
    return out


_HIDDEN = {"catalog": {"appeal_value_correlation": 0.0, "value_std": 1.0}, "response": {"value_weight": 2.0}}
_HIDDEN_STRONG = {
    "catalog": {"appeal_value_correlation": 0.0, "value_std": 1.5},
    "response": {"value_weight": 3.0, "affinity_weight": 1.0},
}
_BORED = {"dynamics": {"satiation": 3.0, "satiation_decay": 0.9}}


def _overrides(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """Merge nested override mappings section by section (later parts win)."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = {**out.get(key, {}), **value} if isinstance(value, Mapping) else value
    return out


HIDDEN_VALUE_SEARCH: dict[str, tuple[str, dict[str, Any]]] = {
    "as it is": ("mf", {}),
    "hidden value": ("mf", _HIDDEN),
    "hidden value, satiation 3 (decay 0.9)": ("mf", _overrides(_HIDDEN, _BORED)),
    "no value spread (control), satiation 3 (decay 0.9)": (
        "mf",
        _overrides(_HIDDEN, _BORED, {"catalog": {"value_std": 0.0}}),
    ),
    "strong hidden value": ("mf", _HIDDEN_STRONG),
    "strong hidden value, satiation 3 (decay 0.9)": ("mf", _overrides(_HIDDEN_STRONG, _BORED)),
    "strong hidden value, 20 arrivals a step (30% fresh)": (
        "mf",
        _overrides(_HIDDEN_STRONG, {"catalog": {"arrival_rate": 20.0, "fresh_share": 0.3, "fresh_pool": 200}}),
    ),
    "strong hidden value, 20 arrivals a step (30% fresh), hybrid": (
        "hybrid",
        _overrides(_HIDDEN_STRONG, {"catalog": {"arrival_rate": 20.0, "fresh_share": 0.3, "fresh_pool": 200}}),
    ),
    "strong hidden value, 20,000 items": ("mf", _overrides(_HIDDEN_STRONG, {"catalog": {"n_items": 20_000}})),
    "strong hidden value, relevance retrieval (no explore share)": (
        "mf",
        _overrides(_HIDDEN_STRONG, {"retrieval": {"method": "relevance", "explore_share": 0.0}}),
    ),
    "strong hidden value, popularity": ("popularity", _HIDDEN_STRONG),
    "strong hidden value, vw_epsilon": ("vw_epsilon", _HIDDEN_STRONG),
}
"""(b), the search for a world where exploration pays (label -> (agent, overrides of
``exploration_pays``)): item value made hidden and uncorrelated with appeal (``appeal_value_
correlation`` 0) and made to drive watch time (``value_weight``), so an item's worth can
only be learned by showing it, with learners that learn per item (``mf``, ``hybrid``,
``popularity``) or by their own exploration (``vw_epsilon``); with more boredom, faster
arrivals, a larger catalog, or a narrowing retriever; and ``mf`` on the preset as it is.
The control turns the value spread off (nothing about items to discover)."""

SEARCH_EPSILONS = (0.0, 0.05, 0.1, 0.2, 0.5)
"""Exploration rates of the search (0.5 is the upper end of the claimed optimum's range)."""


def measure_hidden_value_search(
    seeds: Sequence[int] = SEEDS,
    users: int = USERS,
    steps: int = STEPS,
    search: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """(b), the search: :func:`measure_exploration` of each world and learner of
    :data:`HIDDEN_VALUE_SEARCH` at :data:`SEARCH_EPSILONS` (``{label: {metric: (S, E)}}``)."""
    base = get_preset("exploration_pays")
    out: dict[str, dict[str, np.ndarray]] = {}
    for label, (agent, overrides) in (search or HIDDEN_VALUE_SEARCH).items():
        worlds = {label: with_overrides(base, overrides)}
        out.update(measure_exploration(seeds, users, steps, worlds, SEARCH_EPSILONS, agent=agent))
    return out


def interior_optimum(engagement: np.ndarray, epsilons: Sequence[float]) -> float | None:
    """The interior epsilon (0 < epsilon < max) that beats both ends on (S, E) per-seed
    ``engagement`` with both seed-paired 95% intervals above zero (the best such by mean),
    or None: what claim (b) needs."""
    winners = []
    for j in range(1, len(epsilons) - 1):
        low_end = paired_effect(engagement[:, j], engagement[:, 0])
        high_end = paired_effect(engagement[:, j], engagement[:, -1])
        if low_end.low > 0 and high_end.low > 0:
            winners.append((engagement[:, j].mean(), epsilons[j]))
    return max(winners)[1] if winners else None


# --------------------------------------------------------------------------- (c) slate diversity


class TopicLimitedPolicy(Agent):
    """Serve the best items (by true utility) of exactly ``m`` topics per slate.

    A ground-truth policy for (c), not a registered agent: it reads the true candidate
    utilities (``obs["candidate_utility"]``), the candidates' topics (from the world's
    catalog by item id) and, for ``rule="favourite"``, the users' true interests.

    Topics: ``"favourite"`` takes the user's m topics of highest affinity theta . mu_c;
    ``"best_now"`` the m topics whose best candidate has the highest utility this step
    (utility includes satiation). Slot j takes the best remaining candidate of the
    (j mod m)-th topic, so a slate holds m topics in near-equal shares; if that topic has
    no candidate left, the best remaining candidate of any chosen topic, else of any
    topic. ``m = None`` serves the plain top-k by utility (no topic constraint).
    """

    name = "topic_limited"
    needs_ground_truth = True

    def __init__(self, spec: WorldSpec, env: RecVectorEnv, m: int | None, rule: str = "favourite") -> None:
        if rule not in TOPIC_RULES:
            raise ValueError(f"rule must be one of {TOPIC_RULES}; got {rule!r}")
        if m is not None and not 1 <= m <= spec.slate_size:
            raise ValueError(f"m must be None or in [1, {spec.slate_size}]; got {m!r}")
        super().__init__(spec, m=m, rule=rule)
        self.env, self.m, self.rule = env, m, rule

    def candidate_topics(self, item_ids: np.ndarray) -> np.ndarray:
        """(B, C) topic of each candidate, looked up in the world's catalog by item id."""
        catalog = self.env.sim.catalog
        slot_of = np.empty(catalog.next_id, dtype=np.int64)
        slot_of[catalog.item_id] = np.arange(len(catalog.item_id))
        return catalog.topic[slot_of[item_ids]].astype(np.int64)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        utility = np.asarray(obs["candidate_utility"], dtype=np.float64)
        b, c = utility.shape
        k, rows = self.spec.slate_size, np.arange(b)
        ones = (np.ones((b, k)), np.zeros(b, dtype=bool))
        if self.m is None:
            return Decision(np.argsort(-utility, axis=1, kind="stable")[:, :k], *ones)
        topics = self.candidate_topics(obs["item_ids"])
        sim = self.env.sim
        n_topics = sim.catalog.centroids.shape[0]
        if self.rule == "favourite":
            rank_by = sim.population.interest[sim.session_user] @ sim.catalog.centroids.T
        else:
            rank_by = np.full((b, n_topics), -np.inf)
            np.maximum.at(rank_by, (np.repeat(rows, c), topics.ravel()), utility.ravel())
        chosen = np.argsort(-rank_by, axis=1, kind="stable")[:, : self.m]  # (B, m)
        allowed = (topics[:, :, None] == chosen[:, None, :]).any(axis=2)
        slates = np.empty((b, k), dtype=np.int64)
        free = np.ones((b, c), dtype=bool)
        for j in range(k):
            score = np.where((topics == chosen[:, j % self.m, None]) & free, utility, -np.inf)
            fallback = np.where(allowed & free, utility, -np.inf)
            fallback = np.where(
                np.isfinite(fallback).any(axis=1, keepdims=True), fallback, np.where(free, utility, -np.inf)
            )
            score = np.where(np.isfinite(score).any(axis=1, keepdims=True), score, fallback)
            slates[:, j] = pick = np.argmax(score, axis=1)
            free[rows, pick] = False
        return Decision(slates, *ones)


def _served_value(env: RecVectorEnv, items: np.ndarray) -> float:
    """Mean hidden value of served items (ids, any shape) in a world without arrivals
    (NaN with arrivals: replaced items are gone from the catalog)."""
    catalog = env.sim.catalog
    if env.config.catalog.arrival_rate:
        return float("nan")
    slot_of = np.empty(catalog.next_id, dtype=np.int64)
    slot_of[catalog.item_id] = np.arange(len(catalog.item_id))
    return float(catalog.value[slot_of[items]].mean())


def measure_diversity(
    seeds: Sequence[int] = SEEDS,
    users: int = USERS,
    steps: int = STEPS,
    worlds: Mapping[str, Mapping[str, Any]] = DIVERSITY_WORLDS,
    rules: Sequence[str] = TOPIC_RULES,
    topic_counts: Sequence[int] = TOPIC_COUNTS,
    unrestricted: bool = True,
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Claim (c): lasting satisfaction and engagement against slate topic diversity.

    Arms: every rule x topic count m (labelled ``"<rule> m=<m>"``), plus the unconstrained
    top-k by true utility (``"top-k"``) if ``unrestricted``. Each world is the ``boredom``
    preset with :data:`DIVERSITY_CANDIDATES` candidates and the given overrides.
    Second-half means of: ``satisfaction`` (lasting satisfaction S of the served users, in
    [0, 1]), ``engagement`` (minutes per user-step), ``ctr``, ``slate_topic_entropy``
    (bits), ``slate_topic_coverage`` (share) and ``served_value`` (mean hidden value of the
    served items: restricting a slate to m topics also restricts the pool it is drawn from).

    Returns:
        ``{world: {arm: {metric: (S,)}}}``.
    """
    arms: list[tuple[str, str, int | None]] = [(f"{r} m={m}", r, m) for r in rules for m in topic_counts]
    if unrestricted:
        arms.append(("top-k", "favourite", None))
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for world, overrides in worlds.items():
        config = with_overrides(get_preset("boredom"), {"n_candidates": DIVERSITY_CANDIDATES, **overrides})
        n_topics = config.catalog.n_topics
        table: dict[str, dict[str, list[float]]] = {label: {} for label, _, _ in arms}
        for seed in seeds:
            for label, rule, m in arms:
                env = RecVectorEnv(users, config=config)
                policy = TopicLimitedPolicy(WorldSpec.from_config(config), env, m, rule)
                r = rollout(policy, env, steps, agent_rng(seed), seed=seed).records
                half = slice(steps // 2, None)
                row = {
                    "satisfaction": _late(r["satisfaction"]),
                    "engagement": _late(r["reward"]),
                    "ctr": float(np.mean(r["click"][half] >= 0)),
                    "slate_topic_entropy": float(metrics.slate_topic_entropy(r["slate_topics"][half], n_topics).mean()),
                    "slate_topic_coverage": float(
                        metrics.slate_topic_coverage(r["slate_topics"][half], n_topics).mean()
                    ),
                    "served_value": _served_value(env, r["slate_items"][half]),
                }
                for key, value in row.items():
                    table[label].setdefault(key, []).append(value)
        out[world] = {label: {k: np.array(v) for k, v in cols.items()} for label, cols in table.items()}
    return out


# --------------------------------------------------------------------------- (d) train then freeze


def measure_freeze(
    seeds: Sequence[int] = SEEDS,
    users: int = USERS,
    steps: int = FREEZE_STEPS,
    drifts: Sequence[float] = DRIFTS,
    freeze_after: int = FREEZE_AFTER,
    agent: str = FREEZE_AGENT,
) -> dict[float, dict[str, np.ndarray]]:
    """Claim (d): per-step engagement of a bandit kept online and of the same bandit frozen
    after ``freeze_after`` steps (:class:`experiments.runner.ScheduledLearner`, the runner's
    ``conditions.freeze_after``), on ``drifting_tastes`` at each drift strength.

    The two arms are identical until the freeze (same seed, deterministic agent), so every
    difference after it is the freeze's.

    Returns:
        ``{drift: {"online": (S, T), "frozen": (S, T)}}``: minutes per user-step at each step.
    """
    out: dict[float, dict[str, np.ndarray]] = {}
    for drift in drifts:
        config = with_overrides(get_preset("drifting_tastes"), {"dynamics": {"drift": drift}})
        spec = WorldSpec.from_config(config)
        arms = {"online": Conditions(), "frozen": Conditions(freeze_after=freeze_after)}
        curves: dict[str, list[np.ndarray]] = {arm: [] for arm in arms}
        for seed in seeds:
            for arm, conditions in arms.items():
                learner = ScheduledLearner(make_agent(agent, spec), conditions)
                reward = run_agent(learner, config, users, steps, seed).records["reward"]
                curves[arm].append(reward.mean(axis=1, dtype=np.float64))
        out[drift] = {arm: np.stack(v) for arm, v in curves.items()}
    return out


def freeze_summary(curves: Mapping[str, np.ndarray], freeze_after: int = FREEZE_AFTER) -> dict[str, np.ndarray]:
    """Per-seed summaries of one drift level of :func:`measure_freeze`.

    Returns (each (S,)):
        ``gap_rate``: OLS slope of the relative gap ``frozen_t / online_t - 1`` over the
        frozen steps, in percent per 1,000 steps; ``frozen_rate``: OLS slope of the frozen
        arm's engagement over the frozen steps, in percent of its level in the
        ``freeze_after`` steps before the freeze, per 1,000 steps; ``online_rate``: the same
        for the online arm; ``final_gap``: the relative gap over the last 100 steps (%);
        ``frozen_final`` / ``online_final``: their engagement over the last 100 steps.
    """
    online, frozen = np.asarray(curves["online"]), np.asarray(curves["frozen"])
    t = np.arange(freeze_after, online.shape[1], dtype=float)
    after = slice(freeze_after, None)
    before = slice(0, freeze_after)

    def slope(y: np.ndarray) -> np.ndarray:
        tc = t - t.mean()
        return ((y - y.mean(axis=1, keepdims=True)) @ tc) / (tc @ tc)

    gap = 100.0 * (frozen / online - 1.0)
    last = slice(-100, None)
    return {
        "gap_rate": 1000.0 * slope(gap[:, after]),
        "frozen_rate": 1000.0 * 100.0 * slope(frozen[:, after]) / frozen[:, before].mean(axis=1),
        "online_rate": 1000.0 * 100.0 * slope(online[:, after]) / online[:, before].mean(axis=1),
        "final_gap": gap[:, last].mean(axis=1),
        "frozen_final": frozen[:, last].mean(axis=1),
        "online_final": online[:, last].mean(axis=1),
    }


# --------------------------------------------------------------------------- all four


def measure(seeds: Sequence[int] = SEEDS, users: int = USERS, steps: int = STEPS) -> dict[str, Any]:
    """All the published numbers: ``{"bandits", "exploration", "exploration_variants",
    "diversity", "freeze"}`` (see each ``measure_*``). The variants use the first three
    seeds; (d) runs ``steps + 100`` steps (50 learning, the rest frozen)."""
    return {
        "bandits": measure_bandits(seeds, users, steps),
        "exploration": measure_exploration(seeds, users, steps),
        "exploration_variants": measure_exploration_variants(seeds[:3], users, steps),
        "diversity": measure_diversity(seeds, users, steps),
        "freeze": measure_freeze(seeds, users, steps + 100),
    }


# --------------------------------------------------------------------------- report


def _bandit_lines(bandits: Mapping[str, Mapping[str, np.ndarray]]) -> list[str]:
    static, pop = bandits["static"]["reward"], bandits.get("popularity", {}).get("reward")
    rows = []
    for name, cols in bandits.items():
        others = name != "static"
        rows.append(
            [
                name,
                fmt_interval(cols["reward"]),
                fmt_interval(cols["reward_late"]),
                fmt_effect(paired_effect(cols["reward"], static)) if others else "",
                fmt_percent(relative_gain(cols["reward"], static)) if others else "",
                fmt_percent(relative_gain(cols["reward_late"], bandits["static"]["reward_late"])) if others else "",
                fmt_percent(relative_gain(cols["reward"], pop)) if pop is not None and name != "popularity" else "",
            ]
        )
    header = (
        "arm",
        "reward / user-step (min), whole run",
        "second half",
        "minus static, whole run",
        "gain vs static, whole run",
        "gain vs static, second half",
        "gain vs popularity, whole run",
    )
    return md_table(header, rows)


def _exploration_lines(table: Mapping[str, np.ndarray], epsilons: Sequence[float], label: str) -> list[str]:
    eng, cov = table["engagement"], table["coverage"]
    ute, ste = table["user_topic_entropy"], table["slate_topic_entropy"]
    best = {key: epsilons[int(np.argmax(table[key].mean(axis=0)))] for key in table}
    lines = [
        f"`{label}`: optimum epsilon for engagement {best['engagement']}, for catalog coverage "
        f"{best['coverage']}, for user topic entropy {best['user_topic_entropy']}.",
        "",
    ]
    rows = [
        [
            str(eps),
            fmt_interval(eng[:, j]),
            "" if j == 0 else fmt_effect(paired_effect(eng[:, j], eng[:, 0])),
            "" if j == 0 else fmt_percent(relative_gain(eng[:, j], eng[:, 0])),
            fmt_interval(cov[:, j]),
            fmt_interval(ute[:, j]),
            fmt_interval(ste[:, j], 2),
        ]
        for j, eps in enumerate(epsilons)
    ]
    header = (
        "epsilon",
        "engagement (min / user-step)",
        "minus epsilon = 0",
        "vs epsilon = 0",
        "catalog coverage",
        "user topic entropy (bits)",
        "slate topic entropy (bits)",
    )
    return lines + md_table(header, rows)


def _exploration_summary(
    main: Mapping[str, Mapping[str, np.ndarray]], variants: Mapping[str, Mapping[str, np.ndarray]]
) -> list[str]:
    """One row per world: the engagement optimum and each epsilon's paired change of
    engagement (%) and its catalog coverage."""
    shown = (0.05, 0.1, 0.2, 0.5)
    rows = []
    for group, worlds in (("linear_egreedy", main), ("variant", variants)):
        for label, table in worlds.items():
            n = table["engagement"].shape[1]
            epsilons = EPSILONS if n == len(EPSILONS) else VARIANT_EPSILONS
            eng, cov = table["engagement"], table["coverage"]
            agent = "mf" if label.startswith("mf ") else "linear_egreedy"
            world = "exploration_pays" if agent == "mf" else label
            if group == "variant" and agent != "mf":
                world = f"exploration_pays + {label}"
            cells = []
            for eps in shown:
                if eps not in epsilons:
                    cells.append("")
                    continue
                j = epsilons.index(eps)
                cells.append(f"{fmt_percent(relative_gain(eng[:, j], eng[:, 0]))}; coverage {cov[:, j].mean():.2f}")
            best = epsilons[int(np.argmax(eng.mean(axis=0)))]
            rows.append([world, agent, str(eng.shape[0]), str(best), f"{cov[:, 0].mean():.2f}", *cells])
    header = ("world", "agent", "seeds", "engagement optimum", "coverage at 0", *(f"epsilon = {e}" for e in shown))
    return md_table(header, rows)


def _diversity_lines(table: Mapping[str, Mapping[str, np.ndarray]]) -> list[str]:
    rows = []
    for label, cols in table.items():
        base = f"{label.split(' m=')[0]} m=1" if " m=" in label else f"{TOPIC_RULES[0]} m=1"
        versus = (
            "" if label == base else fmt_effect(paired_effect(cols["satisfaction"], table[base]["satisfaction"]), 4)
        )
        rows.append(
            [
                label,
                fmt_interval(cols["slate_topic_entropy"], 2),
                fmt_interval(cols["slate_topic_coverage"], 2),
                fmt_interval(cols["satisfaction"], 4),
                versus,
                fmt_interval(cols["engagement"]),
                fmt_interval(cols["ctr"]),
                fmt_interval(cols["served_value"], 2),
            ]
        )
    header = (
        "arm",
        "slate topic entropy (bits)",
        "slate topic coverage",
        "satisfaction S",
        "S minus the rule's m = 1 (top-k: favourite m = 1)",
        "engagement (min / user-step)",
        "CTR",
        "served items' value",
    )
    lines = md_table(header, rows)
    for rule in TOPIC_RULES:
        if f"{rule} m=1" not in table:
            continue
        counts = [m for m in TOPIC_COUNTS if f"{rule} m={m}" in table]
        steps_ = [
            f"{a}->{b}: "
            + fmt_effect(
                paired_effect(table[f"{rule} m={b}"]["satisfaction"], table[f"{rule} m={a}"]["satisfaction"]), 4
            )
            for a, b in itertools.pairwise(counts)
        ]
        lines.append(f"- `{rule}`, satisfaction gained per extra topic: " + "; ".join(steps_))
    return [*lines, ""]


def _freeze_lines(freeze: Mapping[float, Mapping[str, np.ndarray]], width: int = 25) -> list[str]:
    rows = []
    for drift, curves in freeze.items():
        s = freeze_summary(curves)
        rows.append(
            [
                str(drift),
                fmt_interval(s["online_final"]),
                fmt_interval(s["frozen_final"]),
                fmt_effect(paired_effect(s["frozen_final"], s["online_final"]), 4),
                fmt_interval(s["final_gap"], 2),
                fmt_interval(s["gap_rate"], 1),
                fmt_interval(s["frozen_rate"], 1),
                fmt_interval(s["online_rate"], 1),
            ]
        )
    header = (
        "drift",
        "online, last 100 steps (min / user-step)",
        "frozen, last 100 steps",
        "frozen minus online",
        "frozen vs online (%)",
        "gap trend (% points / 1,000 steps)",
        "frozen's own trend (% / 1,000 steps)",
        "online's own trend (% / 1,000 steps)",
    )
    lines = md_table(header, rows)
    steps = next(iter(freeze.values()))["online"].shape[1]
    ends = list(range(width, steps + 1, width))
    rows = []
    for drift, curves in freeze.items():
        gap = 100.0 * (curves["frozen"] / curves["online"] - 1.0)
        rows.append(
            [str(drift)] + [fmt_interval(gap[:, e - width : e].mean(axis=1), 2) for e in ends[FREEZE_AFTER // width :]]
        )
    header = ("drift", *(f"steps {e - width}-{e - 1}" for e in ends[FREEZE_AFTER // width :]))
    return [*lines, "Frozen vs online engagement (%) per 25-step window after the freeze:", "", *md_table(header, rows)]


def tables(results: Mapping[str, Any]) -> str:
    """The markdown tables of ``docs/reproductions/survey.md`` from :func:`measure`."""
    lines = ["### (a) Contextual bandits against a static ranking (`default`)", ""]
    lines += _bandit_lines(results["bandits"])
    lines += ["### (b) Exploration rate (second half of the run)", ""]
    lines += _exploration_lines(results["exploration"]["exploration_pays"], EPSILONS, "exploration_pays")
    lines += ["Every world, relative to epsilon = 0 (the variants and `mf` on the first 3 seeds):", ""]
    lines += _exploration_summary(results["exploration"], results.get("exploration_variants", {}))
    lines += ["### (c) Slate topic diversity and lasting satisfaction (second half of the run)", ""]
    for world, table in results["diversity"].items():
        lines += [f"`{world}`:", "", *_diversity_lines(table)]
    worlds = list(results["diversity"].values())
    if len(worlds) == 2:
        for rule in TOPIC_RULES:
            hi, lo = f"{rule} m={TOPIC_COUNTS[-1]}", f"{rule} m={TOPIC_COUNTS[0]}"
            if hi in worlds[0] and lo in worlds[0]:
                gaps = [w[hi]["satisfaction"] - w[lo]["satisfaction"] for w in worlds]
                lines.append(
                    f"- `{rule}`: the satisfaction gap (m = {TOPIC_COUNTS[-1]} minus m = {TOPIC_COUNTS[0]}) with "
                    f"satiation minus without: {fmt_effect(paired_effect(*gaps), 4)}"
                )
        lines.append("")
    lines += ["### (d) Frozen against online LinUCB on `drifting_tastes` (frozen after 50 steps)", ""]
    lines += _freeze_lines(results["freeze"])
    return "\n".join(lines)


def draw(results: Mapping[str, Any], path: str | Path = FIGURE) -> None:
    """The six-panel figure of ``docs/reproductions/survey.md`` (Agg backend, dpi 100)."""
    import seaborn as sns

    plt = pyplot(font_scale=0.85)
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    colors = sns.color_palette(n_colors=6)

    # (a) paired gain over the static ranking, per arm
    ax = axes[0, 0]
    bandits = results["bandits"]
    names = [name for name in bandits if name != "static"]
    for i, name in enumerate(names):
        for j, key in enumerate(("reward", "reward_late")):
            mean, low, high = relative_gain(bandits[name][key], bandits["static"][key])
            ax.bar(
                i + 0.4 * j - 0.2,
                mean,
                width=0.38,
                color=colors[j],
                yerr=[[mean - low], [high - mean]],
                capsize=4,
                label=("whole run", "second half")[j] if i == 0 else None,
            )
    ax.axhspan(9, 15, color="0.85", zorder=0, label="claimed +9-15%")
    ax.axhline(0, color="0.3", linewidth=1)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set(
        ylabel="reward per user-step vs static ranking (%)",
        title="(a) gain over the static ranking (appeal), default world",
    )
    ax.legend(fontsize="small")

    # (b) engagement and coverage against epsilon
    ax_e, ax_c = axes[0, 1], axes[0, 2]
    for i, (preset, table) in enumerate(results["exploration"].items()):
        eng, cov = table["engagement"], table["coverage"]
        rel = 100.0 * (eng / eng[:, :1] - 1.0)
        plot_band(ax_e, EPSILONS, rel, colors[i], preset, marker="o")
        plot_band(ax_c, EPSILONS, cov, colors[i], preset, marker="o")
    ax_e.axvspan(0.1, 0.2, color="0.85", zorder=0, label="claimed 10-20%")
    ax_e.set(
        xlabel="exploration rate epsilon",
        ylabel="long-run engagement vs epsilon = 0 (%)",
        title="(b) linear_egreedy: engagement, second half of 200 steps",
    )
    ax_e.legend(fontsize="small")
    ax_c.axvspan(0.1, 0.2, color="0.85", zorder=0)
    ax_c.set(
        xlabel="exploration rate epsilon",
        ylabel="catalog coverage per 10-step window (share)",
        title="(b) linear_egreedy: discovery (items shown / catalog)",
    )

    # (c) satisfaction and engagement against slate topic entropy
    ax_s, ax_g = axes[1, 0], axes[1, 1]
    styles = {"favourite": "-", "best_now": "--"}
    for i, (world, table) in enumerate(results["diversity"].items()):
        for rule in TOPIC_RULES:
            labels = [f"{rule} m={m}" for m in TOPIC_COUNTS if f"{rule} m={m}" in table]
            if not labels:
                continue
            x = [table[label]["slate_topic_entropy"].mean() for label in labels]
            for ax, key in ((ax_s, "satisfaction"), (ax_g, "engagement")):
                bands = np.array([t_interval(table[label][key]) for label in labels])
                ax.errorbar(
                    x,
                    bands[:, 0],
                    yerr=[bands[:, 0] - bands[:, 1], bands[:, 2] - bands[:, 0]],
                    color=colors[i],
                    linestyle=styles[rule],
                    marker="o",
                    capsize=3,
                    label=f"{world}: {rule}",
                )
        if "top-k" in table:
            for ax, key in ((ax_s, "satisfaction"), (ax_g, "engagement")):
                ax.plot(
                    table["top-k"]["slate_topic_entropy"].mean(),
                    table["top-k"][key].mean(),
                    marker="*",
                    markersize=12,
                    color=colors[i],
                    linestyle="none",
                    label=f"{world}: unconstrained top-k",
                )
    ax_s.set(
        xlabel="slate topic entropy (bits; m topics -> log2 m)",
        ylabel="lasting satisfaction S (0-1)",
        title="(c) satisfaction vs slate diversity (m = 1..5 topics)",
    )
    ax_g.set(
        xlabel="slate topic entropy (bits; m topics -> log2 m)",
        ylabel="reward per user-step (minutes)",
        title="(c) engagement vs slate diversity",
    )
    ax_s.legend(fontsize="x-small")

    # (d) relative gap frozen vs online over time
    ax = axes[1, 2]
    for i, (drift, curves) in enumerate(results["freeze"].items()):
        gap = 100.0 * (curves["frozen"] / curves["online"] - 1.0)
        steps = gap.shape[1]
        width = 25
        ends = np.arange(width, steps + 1, width)
        windows = np.stack([gap[:, e - width : e].mean(axis=1) for e in ends], axis=1)
        plot_band(ax, ends, windows, colors[i], f"drift {drift}", marker="o")
    ax.axvline(FREEZE_AFTER, color="0.3", linestyle=":", label="freeze")
    ax.set(
        xlabel="step (end of a 25-step window)",
        ylabel="frozen vs online engagement (%)",
        title="(d) LinUCB frozen after 50 steps vs kept online, drifting_tastes",
    )
    ax.legend(fontsize="small")

    n_seeds = len(next(iter(bandits.values()))["reward"])
    fig.suptitle(f"The seed survey's claims in BubbleGym ({n_seeds} seeds; bands and bars: 95% t-intervals over seeds)")
    fig.tight_layout()
    save_figure(fig, path)


def search_table(search: Mapping[str, Mapping[str, np.ndarray]], epsilons: Sequence[float] = SEARCH_EPSILONS) -> str:
    """Markdown: per world and learner of the search, engagement at epsilon = 0 and each
    epsilon's seed-paired change of long-run engagement against epsilon = 0 (minutes per
    user-step, 95% interval), and the interior optimum if there is one."""
    rows = []
    for label, table in search.items():
        eng = table["engagement"]
        agent = HIDDEN_VALUE_SEARCH[label][0] if label in HIDDEN_VALUE_SEARCH else ""
        cells = [fmt_effect(paired_effect(eng[:, j], eng[:, 0])) for j in range(1, len(epsilons))]
        best = interior_optimum(eng, epsilons)
        rows.append([label, agent, fmt_interval(eng[:, 0]), *cells, "none" if best is None else str(best)])
    header = (
        "world (`exploration_pays` +)",
        "learner",
        "engagement at epsilon = 0",
        *(f"epsilon = {e} minus 0" for e in epsilons[1:]),
        "interior epsilon beating 0 and 0.5",
    )
    return "\n".join(md_table(header, rows))


def main(argv: Sequence[str] | None = None) -> None:
    """Print the tables and draw the figure (about 6 minutes on 2 cores); with
    ``--search``, only the table of :func:`measure_hidden_value_search` (about 8 minutes)."""
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    if "--search" in args:
        print(search_table(measure_hidden_value_search()))
        return
    results = measure()
    print(tables(results))
    draw(results)
    print(f"figure: {FIGURE}")


if __name__ == "__main__":
    main()
