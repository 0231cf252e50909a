"""The compiled step (simenv.kernels) against the model's pure numpy functions.

The pure functions of simenv.choice and simenv.dynamics are the specification (hand-checked
in test_choice_dynamics.py); a world step must equal their composition. The choice law
and ground truth are checked in test_envs.py; here: the sampled outcome, every dynamics
update and the session ends, over presets that switch different dynamics on.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from simenv import RecVectorEnv, dynamics, kernels
from simenv.choice import engagement_share, sample_choice, sample_engagement

CASES = {
    "default": {},
    "all dynamics strong": {
        "dynamics": {
            "amplification": 0.2,
            "amplification_by_watch": 0.7,
            "exposure": 0.1,
            "skip_repulsion": 0.05,
            "drift": 0.1,
            "satiation": 1.0,
            "churn_threshold": 0.6,
            "churn_hazard": 0.5,
            "satisfaction_rate": 0.3,
        },
        "catalog": {"clickbait_share": 0.3},
        "users": {"budget_mean": 4.0, "max_steps": 3},
    },
    "cascade, clicks, no noise": {
        "choice": {"model": "cascade", "position_bias": 0.5},
        "response": {"reward": "click", "noise": 0.0},
        "dynamics": {"drift": 0.0, "exposure": 0.0},
    },
}


def _reference_step(sim, slate: np.ndarray, info: dict) -> dict[str, np.ndarray]:
    """Everything a step changes, from the pure functions and a copy ``sim`` of the
    pre-step world (its generators replay the step's own random draws)."""
    cfg, cat, pop = sim.config, sim.catalog, sim.population
    dyn, resp = cfg.dynamics, cfg.response
    n, k, d = sim.n_sessions, cfg.slate_size, cfg.catalog.dim
    users = sim.session_user.copy()
    rows = np.arange(n)
    slots = sim._slots[rows[:, None], slate]

    streams = sim.streams
    position = sample_choice(info["choice_probs"], streams.choice.random(n))
    response_uniform = streams.response.random(n)
    normal = streams.dynamics.standard_normal((n, d)) if dyn.drift else None
    churn_uniform = streams.dynamics.random(n) if dyn.churn_threshold and dyn.churn_hazard else np.ones(n)
    clicked = position >= 0
    chosen = slots[rows, np.where(clicked, position, 0)]
    length = cat.length[chosen].astype(np.float64)
    affinity = np.einsum("bd,bd->b", pop.interest[users].astype(np.float64), cat.embedding[chosen])
    share = engagement_share(affinity, cat.value[chosen], resp.affinity_weight, resp.value_weight, resp.bias)
    watch = np.where(clicked, sample_engagement(length, share, resp.noise, response_uniform), 0.0)
    engaged = np.where(clicked, watch / length, 0.0)
    topic = np.where(clicked, cat.topic[chosen], -1)

    theta = pop.interest[users].astype(np.float64)
    eta = dynamics.watch_scaled(dyn.amplification, engaged, dyn.amplification_by_watch)
    theta = dynamics.amplify(theta, cat.embedding[chosen].astype(np.float64), clicked, eta)
    shown = cat.embedding[slots].astype(np.float64).sum(axis=1)
    theta = dynamics.expose(theta, shown / k, dyn.exposure)
    skipped = k - clicked
    skipped_sum = shown - clicked[:, None] * cat.embedding[chosen]
    theta = dynamics.repel(theta, skipped_sum / np.maximum(skipped, 1)[:, None], skipped > 0, dyn.skip_repulsion)
    if normal is not None:
        theta = dynamics.drift(theta, normal, dyn.drift)
    signal = dynamics.satisfaction_signal(cat.value[chosen], clicked, dyn.value_satisfaction, dyn.idle_satisfaction)
    satisfaction = dynamics.update_satisfaction(
        pop.satisfaction[users].astype(np.float64), signal, dyn.satisfaction_rate
    )
    budget = dynamics.spend_budget(sim.budget.astype(np.float64), engaged, dyn.budget_cost, dyn.budget_restore)
    churn = dynamics.churned(satisfaction, dyn.churn_threshold, dyn.churn_hazard, churn_uniform)
    terminated = (budget <= 0) | churn
    history = pop.history[users].copy()
    history[rows[clicked], topic[clicked]] += 1
    return {
        "click": position,
        "engagement": watch,
        "engaged_share": engaged,
        "consumed_topic": topic,
        "interest_before": pop.interest[users],
        "interest": theta,
        "satiation": dynamics.satiate(pop.satiation[users].astype(np.float64), topic, dyn.satiation_decay),
        "history": history,
        "satisfaction": satisfaction,
        "churned": churn,
        "budget": budget,
        "terminated": terminated,
        "truncated": (sim.session_steps + 1 >= cfg.users.max_steps) & ~terminated,
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_equals_the_composition_of_the_pure_functions(case: str, make_slates) -> None:
    n = 300
    env = RecVectorEnv(n, overrides=CASES[case])
    _, info = env.reset(seed=11)
    rng = np.random.default_rng(5)
    cfg = env.config
    for _ in range(6):
        sim = env.sim
        users = sim.session_user.copy()
        slate = make_slates(rng, n, cfg.n_candidates, cfg.slate_size)
        before = copy.deepcopy(sim)
        _, reward, terminated, truncated, info = env.step(slate)
        ref = _reference_step(before, slate, info)
        np.testing.assert_array_equal(info["click"], ref["click"])
        np.testing.assert_array_equal(info["consumed_topic"], ref["consumed_topic"])
        np.testing.assert_allclose(info["engagement"], ref["engagement"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(info["engaged_share"], ref["engaged_share"], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(info["interest_before"], ref["interest_before"])
        np.testing.assert_allclose(info["interest"], ref["interest"], atol=1e-5)
        stayed = ~info["churned"]  # a churned user's row now holds a new user
        pop = sim.population
        np.testing.assert_allclose(pop.interest[users[stayed]], ref["interest"][stayed], atol=1e-5)
        np.testing.assert_allclose(pop.satiation[users[stayed]], ref["satiation"][stayed], atol=1e-6)
        np.testing.assert_array_equal(pop.history[users[stayed]], ref["history"][stayed])
        np.testing.assert_allclose(info["satisfaction"], ref["satisfaction"], atol=1e-6)
        np.testing.assert_array_equal(info["churned"], ref["churned"])
        np.testing.assert_array_equal(terminated, ref["terminated"])
        np.testing.assert_array_equal(truncated, ref["truncated"])
        going_on = ~(terminated | truncated)
        np.testing.assert_allclose(sim.budget[going_on], ref["budget"][going_on], atol=1e-5)
        expected_reward = (ref["click"] >= 0) if cfg.response.reward == "click" else ref["engagement"]
        np.testing.assert_allclose(reward, expected_reward, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_observed_user_features_follow_the_population_layout(case: str, make_slates) -> None:
    n = 200
    env = RecVectorEnv(n, overrides=CASES[case])
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(5):  # histories fill up; ended sessions bring other users
        sim = env.sim
        expected = sim.population.features(sim.session_user, np.empty_like(obs["user"]))
        np.testing.assert_allclose(obs["user"], expected, rtol=1e-6, atol=1e-6)
        obs, *_ = env.step(make_slates(rng, n, env.config.n_candidates, env.config.slate_size))


def test_top_k_keeps_the_lower_index_on_ties() -> None:
    scores = np.array([1.0, 2.0, 2.0, 0.0, 2.0], dtype=np.float32)
    out, work = np.empty(3, dtype=np.int64), np.empty(12, dtype=np.float32)
    kernels._top_k_into(scores, out, work)
    np.testing.assert_array_equal(out, [1, 2, 4])
    kernels._top_k_into(scores, out[:2], work)
    np.testing.assert_array_equal(out[:2], [1, 2])
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.integers(0, 4, 12).astype(np.float32)  # many ties
        kernels._top_k_into(scores, out, work)
        np.testing.assert_array_equal(out, np.argsort(-scores, kind="stable")[:3])


@pytest.mark.parametrize("shape", [(3, 4), (300, 32)])  # numpy's fill and the compiled one
def test_standard_normal_into_draws_numpys_stream(shape: tuple[int, int]) -> None:
    ours, theirs = np.random.default_rng(9), np.random.default_rng(9)
    out = kernels.standard_normal_into(ours, np.empty(shape))
    np.testing.assert_array_equal(out, theirs.standard_normal(shape))
    assert ours.random() == theirs.random()  # the generators moved on alike
