"""REINFORCE with top-K off-policy correction (Chen et al. 2019) trained on logged feedback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import AgentError, make_agent
from agents.reinforce import LoggedFeedback, collect_logs, discounted_returns
from experiments.reproductions import paired_effect
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec, get_preset

SPEC = WorldSpec.from_config(get_preset("default"))


def test_correction_weights_are_capped_importance_weights_times_lambda_k() -> None:
    """min(pi / beta, c) * K (1 - pi)^(K - 1), by hand for K = 5, c = 10."""
    agent = make_agent("reinforce", SPEC, weight_cap=10.0)
    pi, beta = torch.tensor([0.1, 0.5, 0.2], dtype=torch.float64), torch.tensor([0.05, 0.5, 0.01], dtype=torch.float64)
    got = agent.correction_weights(pi, beta).numpy()
    want = [2.0 * 5 * 0.9**4, 1.0 * 5 * 0.5**4, 10.0 * 5 * 0.8**4]  # the third weight (20) is capped at 10
    np.testing.assert_allclose(got, want, rtol=1e-12)
    plain = make_agent("reinforce", SPEC, weight_cap=10.0, top_k_correction=False)
    np.testing.assert_allclose(plain.correction_weights(pi, beta).numpy(), [2.0, 1.0, 10.0], rtol=1e-12)


def test_returns_are_discounted_along_a_user_and_cut_where_the_user_changes() -> None:
    rewards = np.array([[1.0, 2.0], [3.0, 0.0], [5.0, 1.0]])
    users = np.array([[7, 8], [7, 9], [4, 9]])  # row 0: user 7 leaves after step 1; row 1: 8 leaves after step 0
    got = discounted_returns(rewards, users, 0.5)
    np.testing.assert_allclose(got, [[1.0 + 0.5 * 3.0, 2.0], [3.0, 0.0 + 0.5 * 1.0], [5.0, 1.0]])
    np.testing.assert_array_equal(discounted_returns(rewards, users, 0.0), rewards)


def test_logs_of_the_wrong_shape_are_refused_with_a_named_error() -> None:
    n, c, f, k = 4, SPEC.n_candidates, SPEC.item_dim, SPEC.slate_size
    good = {
        "user": np.zeros((n, SPEC.user_dim)),
        "candidates": np.zeros((n, c, f)),
        "slates": np.tile(np.arange(k), (n, 1)),
        "propensities": np.full((n, k), 0.25),
        "clicks": np.array([-1, 0, 4, 2]),
        "rewards": np.ones(n),
        "returns": np.ones(n),
    }
    with pytest.raises(AgentError, match="logged propensities must lie in"):
        LoggedFeedback(**{**good, "propensities": np.zeros((n, k))})
    with pytest.raises(AgentError, match=r"logged clicks must be slot positions in \[-1, 4\]"):
        LoggedFeedback(**{**good, "clicks": np.array([0, 0, 5, 0])})
    with pytest.raises(AgentError, match="logged returns must have shape"):
        LoggedFeedback(**{**good, "returns": np.ones(n + 1)})
    agent = make_agent("reinforce", SPEC)
    with pytest.raises(AgentError, match="this agent's world wants"):
        agent.fit_logged(LoggedFeedback(**{**good, "candidates": np.zeros((n, c + 1, f))}))


def test_a_logger_that_reads_ground_truth_is_refused() -> None:
    agent = make_agent("reinforce", SPEC, logger="oracle")
    with pytest.raises(AgentError, match="reads the world's ground truth"):
        agent.train("default", 16, seed=0)


def _trained(seed: int, users: int = 64, steps: int = 8, **params: object):
    agent = make_agent("reinforce", SPEC, seed=seed, log_users=users, **params)
    return agent.train("default", users * steps, seed=seed)


def test_same_seed_same_model() -> None:
    first, second = _trained(3, epochs=2), _trained(3, epochs=2)
    a, b = first.get_state(), second.get_state()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert first.training_curve.rows == second.training_curve.rows and len(first.training_curve.rows) == 2


def test_the_learned_behaviour_head_recovers_a_uniform_logger() -> None:
    """On logs of the random logger the learned beta(a|s) of every candidate is near 1 / C."""
    agent = _trained(0, users=128, steps=10, behaviour="learned", epochs=6)
    env = RecVectorEnv(64, preset="default")
    obs, _ = env.reset(seed=5)
    with torch.no_grad():
        _, logits = agent.nets(torch.as_tensor(obs["user"]), torch.as_tensor(obs["candidates"]))
    beta = torch.softmax(logits, dim=-1).numpy()
    np.testing.assert_allclose(beta, 1.0 / SPEC.n_candidates, atol=0.02)


@pytest.mark.slow
def test_reinforce_on_random_logs_beats_the_logger() -> None:
    """Trained on logs of the uniform random logger (its own world: 40 steps x 128 users),
    REINFORCE serves more reward per user-step than that logger on a fresh world (30 steps
    x 128 users). Common random numbers: per seed both meet the same evaluation world.
    Paired over 3 seeds, the 95% interval of the difference excludes zero."""
    learner, logger = [], []
    for seed in range(3):
        agent = _trained(seed, users=128, steps=40)
        for scores, policy in ((learner, agent), (logger, make_agent("random", SPEC))):
            env = RecVectorEnv(128, preset="default")
            scores.append(
                rollout(policy, env, 30, np.random.default_rng(seed), seed=100 + seed).records["reward"].mean()
            )
    effect = paired_effect(np.array(learner), np.array(logger))
    assert effect.low > 0, (effect, learner, logger)


def test_collected_logs_hold_the_loggers_exact_propensities() -> None:
    """A uniform random logger's per-slot propensity is 1 / (C - j) at slot j."""
    env = RecVectorEnv(8, preset="default")
    logs, curve = collect_logs(make_agent("random", SPEC), env, 3, np.random.default_rng(0), seed=0, discount=0.0)
    c, k = SPEC.n_candidates, SPEC.slate_size
    np.testing.assert_allclose(logs.propensities, np.tile(1.0 / (c - np.arange(k)), (24, 1)))
    np.testing.assert_array_equal(logs.returns, logs.rewards)
    assert logs.candidates.shape == (24, c, SPEC.item_dim) and len(curve.rows) == 3


def test_a_scenario_trains_reinforce_on_its_loggers_logs(tmp_path) -> None:
    """The runner's training budget collects logs from the named logger on the training world
    and fits them; the fit's epochs are the task's training curve."""
    import pandas as pd
    import yaml

    from experiments.runner import TRAINING, run_scenario
    from experiments.scenario import load_scenario

    data = {
        "name": "logged",
        "world": {"preset": "default", "overrides": {"catalog": {"n_items": 200}}},
        "agents": [{"name": "reinforce", "params": {"logger": "linear_egreedy", "epochs": 3}}],
        "horizon": {"steps": 4, "users": 8},
        "training": {"steps": 8 * 5, "users": 8},
        "seeds": 1,
    }
    path = tmp_path / "logged.yaml"
    path.write_text(yaml.safe_dump(data))
    run_scenario(load_scenario(path), tmp_path / "run", workers=1, progress=False)
    curve = pd.read_parquet(tmp_path / "run" / TRAINING)
    assert len(curve) == 3 and curve["step"].is_monotonic_increasing
    assert np.isfinite(curve[["policy_loss", "weight", "entropy"]].to_numpy()).all()
    assert (tmp_path / "run" / "models" / "w000-reinforce-v000-s0.agent").exists()
