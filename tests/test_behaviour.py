"""Behaviour the world model promises, checked statistically under fixed seeds.

* Preference amplification narrows tastes (interest entropy over topics falls) when a
  policy keeps serving the user's best items; with amplification off it does not move.
* Satiation lowers the click-through rate of a policy that repeats one topic.
* Churn empties the platform of its first users only when satisfaction is low.
* A user row of the vector env follows the same law as the single-user env.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats

from simenv import RecEnv, RecVectorEnv, topic_interest

Policy = Callable[[RecVectorEnv, dict[str, np.ndarray], dict[str, Any]], np.ndarray]


def best_policy(env: RecVectorEnv, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
    """The myopic oracle: the k candidates of highest true utility."""
    return info["best_slate"]


def worst_policy(env: RecVectorEnv, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
    """The k candidates of lowest true utility."""
    return np.argsort(info["candidate_utility"], axis=1, kind="stable")[:, : env.config.slate_size]


def one_topic_policy(env: RecVectorEnv, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
    """Candidates of the user's favourite topic (nearest centroid to theta) first, by utility."""
    sim = env.sim
    catalog = sim.catalog
    topic_of = np.full(catalog.next_id, -1)
    topic_of[catalog.item_id] = catalog.topic
    favourite = np.argmax(sim.population.interest[sim.session_user] @ catalog.centroids.T, axis=1)
    score = 100.0 * (topic_of[obs["item_ids"]] == favourite[:, None]) + info["candidate_utility"]
    return np.argsort(-score, axis=1, kind="stable")[:, : env.config.slate_size]


def mean_interest_entropy(env: RecVectorEnv) -> float:
    """Mean over the population of the entropy (nats) of softmax(beta theta . mu_k)."""
    sim = env.sim
    p = topic_interest(sim.population.interest, sim.catalog.centroids, env.config.choice.beta)
    return float(-(p * np.log(p)).sum(axis=1).mean())


def run(
    policy: Policy, n: int, steps: int, preset: str, overrides: dict[str, Any] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Drive a vector env; return per-step CTR, click probability, churn and entropy."""
    env = RecVectorEnv(n, preset=preset, overrides=overrides)
    obs, info = env.reset(seed=seed)
    first_users = env.sim.population.user_id.copy()
    entropy_start = mean_interest_entropy(env)
    ctr, p_click, churn = [], [], 0
    for _ in range(steps):
        obs, _, _, _, info = env.step(policy(env, obs, info))
        ctr.append(float((info["click"] >= 0).mean()))
        p_click.append(float(1.0 - info["choice_probs"][:, -1].mean()))
        churn += int(info["churned"].sum())
        high = info["satisfaction"] >= env.config.dynamics.churn_threshold
        assert not info["churned"][high].any()  # no churn hazard above the threshold
    return {
        "ctr": np.array(ctr),
        "p_click": np.array(p_click),
        "churn": churn,
        "retained": float(np.isin(first_users, env.sim.population.user_id).mean()),
        "entropy_start": entropy_start,
        "entropy_end": mean_interest_entropy(env),
        "population": env.sim.population.size,
    }


NO_DYNAMICS = {"amplification": 0.0, "exposure": 0.0, "skip_repulsion": 0.0, "drift": 0.0}


# ---------------------------------------------------------------------- amplification


def test_amplification_narrows_interests_under_a_best_item_policy() -> None:
    on = run(best_policy, 64, 100, "filter_bubble")
    assert on["entropy_end"] < on["entropy_start"] - 0.05, on


def test_without_amplification_interests_do_not_move() -> None:
    off = run(best_policy, 64, 100, "filter_bubble", {"dynamics": NO_DYNAMICS})
    assert off["entropy_end"] == pytest.approx(off["entropy_start"], abs=1e-9)


def test_stronger_amplification_narrows_more() -> None:
    declines = []
    for eta in (0.0, 0.03, 0.1):
        r = run(best_policy, 48, 60, "filter_bubble", {"dynamics": {**NO_DYNAMICS, "amplification": eta}})
        declines.append(r["entropy_start"] - r["entropy_end"])
    assert declines[0] == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < declines[1] < declines[2], declines


# ---------------------------------------------------------------------- satiation


def test_satiation_lowers_ctr_under_repeated_topics() -> None:
    bored = run(one_topic_policy, 128, 30, "boredom")
    fresh = run(one_topic_policy, 128, 30, "boredom", {"dynamics": {"satiation": 0.0}})
    # Nobody is satiated yet at the first step: the two worlds agree exactly.
    assert bored["p_click"][0] == pytest.approx(fresh["p_click"][0], abs=1e-12)
    assert bored["p_click"][5:].mean() < fresh["p_click"][5:].mean() - 0.04, (bored["p_click"], fresh["p_click"])
    assert bored["ctr"][5:].mean() < fresh["ctr"][5:].mean() - 0.03


def test_repeating_a_topic_bores_more_than_serving_the_best_items() -> None:
    """Under strong satiation, the one-topic policy's click probability decays from its start."""
    bored = run(one_topic_policy, 128, 30, "boredom")
    assert bored["p_click"][10:].mean() < bored["p_click"][0] - 0.03


# ---------------------------------------------------------------------- churn


def test_churn_follows_low_satisfaction() -> None:
    bad = run(worst_policy, 64, 100, "churn_prone")
    good = run(best_policy, 64, 100, "churn_prone")
    never = run(worst_policy, 64, 100, "churn_prone", {"dynamics": {"churn_threshold": 0.0}})
    user_steps = 64 * 100
    assert bad["churn"] / user_steps > 0.01, bad["churn"]  # a hazard of a few % a step, not a coin flip
    assert good["churn"] / user_steps < 0.001, good["churn"]
    assert good["churn"] * 10 < bad["churn"]
    assert bad["retained"] < 0.3 < 0.9 < good["retained"], (bad["retained"], good["retained"])
    assert never["churn"] == 0 and never["retained"] == 1.0
    assert bad["population"] == good["population"] == 64  # churned users are replaced by new ones


# ---------------------------------------------------------------------- single vs vector law

SHORT_SESSIONS = {"users": {"budget_mean": 6.0, "budget_std": 2.0}}


def _single_sessions(n_worlds: int, rng: np.random.Generator) -> np.ndarray:
    """(n_worlds, 2, 3) [length, reward, clicks] of the first two sessions of RecEnv's user."""
    env = RecEnv(overrides=SHORT_SESSIONS)
    c, k = env.config.n_candidates, env.config.slate_size
    out = np.zeros((n_worlds, 2, 3))
    for world in range(n_worlds):
        env.reset(seed=10_000 + world)
        for session in range(2):
            if session:
                env.reset()  # the same user returns with the tastes it was left with
            done = False
            while not done:
                _, reward, terminated, truncated, info = env.step(rng.permutation(c)[:k])
                out[world, session] += (1.0, reward, info["click"] >= 0)
                done = terminated or truncated
    return out


def _vector_sessions(n: int, seeds: range, rng: np.random.Generator) -> np.ndarray:
    """(n * len(seeds), 2, 3) the same statistics for every row of RecVectorEnv."""
    outs = []
    for seed in seeds:
        env = RecVectorEnv(n, overrides=SHORT_SESSIONS)
        env.reset(seed=seed)
        c, k = env.config.n_candidates, env.config.slate_size
        out = np.zeros((n, 2, 3))
        session = np.zeros(n, dtype=np.int64)
        rows = np.arange(n)
        while (session < 2).any():
            slates = rng.permuted(np.tile(np.arange(c), (n, 1)), axis=1)[:, :k]
            _, reward, terminated, truncated, info = env.step(slates)
            live = session < 2
            step = np.stack([np.ones(n), reward, info["click"] >= 0], axis=1)
            out[rows[live], session[live]] += step[live]
            session += terminated | truncated
        outs.append(out)
    return np.concatenate(outs)


@pytest.mark.slow
def test_vector_rows_follow_the_single_env_law() -> None:
    single = _single_sessions(150, np.random.default_rng(1))
    vector = _vector_sessions(100, range(3), np.random.default_rng(2))
    for session in range(2):
        for stat, name in enumerate(("length", "reward", "clicks")):
            p = stats.ks_2samp(single[:, session, stat], vector[:, session, stat]).pvalue
            assert p > 0.01, f"session {session} {name}: KS p = {p:.4f}"
    # Sanity: the test has power, the statistics are not degenerate.
    assert single[:, 0, 0].std() > 0.5 and vector[:, 0, 1].std() > 1.0
