"""Agent.slate_probabilities: exact laws sum to 1 over every slate of a tiny world and match
sampling frequencies; deterministic agents give indicators and are refused as loggers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agents import AgentError, make_agent
from agents.base import monte_carlo_slate_probabilities, require_stochastic
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec

TINY = {"n_candidates": 4, "slate_size": 2, "catalog": {"n_items": 60, "dim": 4}, "users": {"observed_dims": 4}}
USERS = 3
DRAWS = 800

STOCHASTIC = [
    ("linear_egreedy", {"epsilon": 0.3}),
    ("linear_egreedy", {"epsilon": 0.3, "exploration": "slate"}),
    ("linear_softmax", {"temperature": 0.3}),
    ("random", {}),
    ("popularity", {"epsilon": 0.2}),
    ("vw_epsilon", {}),
    ("ppo", {}),
]
"""One agent per law: per-slot and whole-slate epsilon-greedy, Plackett-Luce, uniform,
epsilon-greedy with random tie-breaks, VW's pmf filled without replacement, SB3 slot categoricals."""
DETERMINISTIC = [("linucb", {}), ("static", {})]


def _world(overrides: dict | None = None) -> tuple[RecVectorEnv, dict]:
    env = RecVectorEnv(USERS, overrides={**TINY, **(overrides or {})})
    obs, _ = env.reset(seed=5)
    return env, obs


def _trained(name: str, params: dict, env: RecVectorEnv) -> object:
    """The agent after a few learning steps on the tiny world (so its scores are not flat)."""
    agent = make_agent(name, WorldSpec.from_config(env.config), **params)
    if name not in ("ppo",):
        rollout(agent, env, 6, np.random.default_rng(0), seed=1)
    return agent


def _all_slates(c: int, k: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(c), k)))  # (S, k), ordered slates


def _table(agent: object, obs: dict, slates: np.ndarray) -> np.ndarray:
    """(B, S) probability of every slate for every user."""
    return np.stack([agent.slate_probabilities(obs, np.tile(s, (USERS, 1))) for s in slates], axis=1)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params"), STOCHASTIC, ids=[f"{n}-{i}" for i, (n, _) in enumerate(STOCHASTIC)])
def test_exact_probabilities_sum_to_one_and_match_sampling_frequencies(name: str, params: dict) -> None:
    env, _ = _world()
    agent = _trained(name, params, env)
    obs = {key: value.copy() for key, value in env.sim.obs.items()}
    assert agent.slot_probabilities(obs, np.tile([0, 1], (USERS, 1))) is not None  # a closed form, not Monte Carlo
    slates = _all_slates(4, 2)
    table = _table(agent, obs, slates)
    np.testing.assert_allclose(table.sum(axis=1), 1.0, atol=1e-9)
    # frequencies of DRAWS fresh decisions: within 4.5 binomial SE (+ float slack) of the law,
    # for each of the B x 12 cells (a false alarm has probability ~ 2e-4 over the 36 cells)
    rng = np.random.default_rng(11)
    counts = np.zeros_like(table)
    index = {tuple(s): i for i, s in enumerate(slates)}
    draws = DRAWS // 3 if name == "ppo" else DRAWS  # a torch forward pass per draw
    for _ in range(draws):
        decision = agent.act(obs, rng)
        cols = [index[tuple(s)] for s in decision.slates]
        counts[np.arange(USERS), cols] += 1
        # the agent's own propensities are the same law
        np.testing.assert_allclose(decision.propensities.prod(axis=1), table[np.arange(USERS), cols], rtol=1e-6)
    freq = counts / draws
    tolerance = 4.5 * np.sqrt(table * (1 - table) / draws) + 1e-3
    assert (np.abs(freq - table) <= tolerance).all(), np.round(np.abs(freq - table) / tolerance, 2)


def test_dqn_and_repeated_or_malformed_slates() -> None:
    env, _ = _world({"slate_size": 1})
    agent = make_agent("dqn", WorldSpec.from_config(env.config), exploration_final_eps=0.2)
    obs = env.sim.obs
    table = np.stack([agent.slate_probabilities(obs, np.full((USERS, 1), i)) for i in range(4)], axis=1)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)
    assert set(np.round(table.ravel(), 12)) == {0.05, 0.85}  # eps / C, and 1 - eps + eps / C for the argmax
    env, obs = _world()
    agent = make_agent("linear_egreedy", WorldSpec.from_config(env.config), epsilon=0.3)
    np.testing.assert_array_equal(agent.slate_probabilities(obs, np.tile([2, 2], (USERS, 1))), 0.0)
    with pytest.raises(AgentError, match=r"slates row 1 is \[0, 4\]; candidate indices must be in \[0, 4\)"):
        agent.slate_probabilities(obs, np.array([[0, 1], [0, 4], [1, 2]]))
    with pytest.raises(AgentError, match=r"slates must be \(3, 2\)"):
        agent.slate_probabilities(obs, np.zeros((3, 3), dtype=int))


@pytest.mark.parametrize(("name", "params"), DETERMINISTIC)
def test_deterministic_agents_give_indicators_and_are_refused_as_loggers(name: str, params: dict) -> None:
    env, _ = _world()
    agent = _trained(name, params, env)
    obs = {key: value.copy() for key, value in env.sim.obs.items()}
    table = _table(agent, obs, _all_slates(4, 2))
    assert set(np.unique(table)) == {0.0, 1.0}
    np.testing.assert_array_equal(table.sum(axis=1), 1.0)
    served = agent.act(obs, np.random.default_rng(0)).slates
    np.testing.assert_array_equal(agent.slate_probabilities(obs, served), 1.0)
    with pytest.raises(AgentError, match=r"deterministic.*importance weight"):
        require_stochastic(agent)


def test_monte_carlo_fallback_matches_an_exact_law_and_serves_thompson_sampling() -> None:
    env, _ = _world()
    agent = _trained("linear_egreedy", {"epsilon": 0.5}, env)
    obs = {key: value.copy() for key, value in env.sim.obs.items()}
    slates = np.array([[0, 1], [2, 3], [3, 0]])
    exact = agent.slate_probabilities(obs, slates)
    estimate = monte_carlo_slate_probabilities(agent, obs, slates, np.random.default_rng(2), 2000)
    assert (np.abs(estimate - exact) <= 4.5 * np.sqrt(exact * (1 - exact) / 2000)).all(), (estimate, exact)
    # Thompson sampling has no closed form: slate_probabilities falls back to Monte Carlo
    agent = _trained("lints", {"v": 1.0}, env)
    assert agent.slot_probabilities(obs, slates) is None
    served = agent.act(obs, np.random.default_rng(3)).slates
    mc = agent.slate_probabilities(obs, served, rng=np.random.default_rng(4), samples=200)
    assert ((mc > 0) & (mc <= 1)).all()
    require_stochastic(agent)  # stochastic: accepted as a logger
