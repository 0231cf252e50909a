"""stable-baselines3 integration: flat env wrapper, batched VecEnv adapter, SB3 agents."""

from __future__ import annotations

import itertools
import pickle
import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import VecCheckNan, VecMonitor

from agents import AgentError, make_agent
from agents.deep_rl import (
    SB3Agent,
    SB3RecVecEnv,
    SlateCategoricalDistribution,
    SlatePolicy,
    slot_sample_without_replacement,
)
from experiments.rollout import rollout
from simenv import ENV_IDS, ConfigError, RecEnv, RecVectorEnv, WorldSpec, get_preset, with_overrides
from simenv.wrappers import FlatRecEnv, flatten_observation, make_sb3_env

SMALL = {"n_candidates": 10, "slate_size": 2, "catalog": {"n_items": 200, "dim": 4}, "users": {"observed_dims": 4}}
"""A small world: C = 10, k = 2, d = 4 (a 85-feature flat observation)."""

LEARNABLE = {
    "n_candidates": 10,
    "slate_size": 2,
    "catalog": {"dim": 4, "appeal_std": 1.0, "value_std": 1.0, "appeal_value_correlation": 1.0},
    "users": {"observed_dims": 4},
}
"""A small world where the observable appeal predicts value (correlation 1): learnable in seconds."""


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_config(**extra):
    return with_overrides(with_overrides(get_preset("default"), SMALL), extra or None)


# ---------------------------------------------------------------------------- wrapper


@pytest.mark.parametrize("discrete", [False, True], ids=["multidiscrete", "discrete"])
@pytest.mark.parametrize("preset", sorted(ENV_IDS))
def test_flat_env_passes_both_checkers_without_warnings(preset, discrete):
    env = make_sb3_env(preset, {"slate_size": 1} if discrete else None, discrete=discrete)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env)
        sb3_check_env(env, warn=True)


def test_flat_observation_is_user_then_candidates_without_ids():
    config = small_config()
    flat, inner = FlatRecEnv(config=config), RecEnv(config=config)
    obs, _ = flat.reset(seed=3)
    ref, _ = inner.reset(seed=3)
    f_u = ref["user"].shape[0]
    assert obs.dtype == np.float32 and obs.shape == (f_u + 10 * ref["candidates"].shape[1],)
    np.testing.assert_array_equal(obs[:f_u], ref["user"])
    np.testing.assert_array_equal(obs[f_u:].reshape(10, -1), ref["candidates"])
    action = np.array([4, 7])
    obs, reward, *_ = flat.step(action)
    ref, ref_reward, *_ = inner.step(action)
    assert reward == ref_reward
    np.testing.assert_array_equal(obs, flatten_observation(ref))


def test_discrete_actions_need_slate_size_one():
    with pytest.raises(ConfigError, match=r"slate_size 1.*slate_size=2"):
        make_sb3_env("default", {"slate_size": 2}, discrete=True)
    env = make_sb3_env("default", {"slate_size": 1, "n_candidates": 10}, discrete=True)
    assert env.action_space.n == 10


# ---------------------------------------------------------------------------- VecEnv adapter


def twin_envs(n, **extra):
    config = small_config(**extra)
    return SB3RecVecEnv(RecVectorEnv(n, config=config)), RecVectorEnv(n, config=config)


def test_vec_env_matches_the_world_and_reset_seed_is_reproducible():
    vec, ref = twin_envs(8)
    vec.seed(11)
    obs = vec.reset()
    ref_obs, _ = ref.reset(seed=11)
    assert obs.shape == (8, vec.observation_space.shape[0]) and obs.dtype == np.float32
    assert all(vec.observation_space.contains(row) for row in obs)
    np.testing.assert_array_equal(obs, flatten_observation(ref_obs))
    actions = np.random.default_rng(0).integers(0, 10, (5, 8, 2))
    for a in actions:
        obs, reward, _, infos = vec.step(a)
        ref_obs, ref_reward, *_ = ref.step(a)
        np.testing.assert_array_equal(obs, flatten_observation(ref_obs))
        np.testing.assert_array_equal(reward, ref_reward)
        assert len(infos) == 8 and all(isinstance(i, dict) for i in infos)
    vec.seed(11)
    np.testing.assert_array_equal(vec.reset(), flatten_observation(ref.reset(seed=11)[0]))


@pytest.mark.parametrize(
    ("extra", "truncated"),
    [
        # budget 2, no restore: every session is terminated after its second step
        ({"users": {"budget_mean": 2.0, "budget_std": 0.0}, "dynamics": {"budget_restore": 0.0}}, False),
        # a large budget and max_steps 3: every session is truncated after its third step
        ({"users": {"budget_mean": 1e6, "max_steps": 3}}, True),
    ],
    ids=["terminated", "truncated"],
)
def test_ended_sessions_carry_terminal_observation_and_time_limit_flag(extra, truncated):
    vec, ref = twin_envs(6, **extra)
    vec.seed(5)
    vec.reset()
    ref.reset(seed=5)
    length = 3 if truncated else 2
    rewards = np.zeros(6)
    for t in range(length):
        action = np.tile([t % 10, (t + 1) % 10], (6, 1))
        obs, reward, done, infos = vec.step(action)
        ref_obs, *_, ref_info = ref.step(action)
        rewards += reward
        if t < length - 1:
            assert not done.any() and all(info == {} for info in infos)
    assert done.all()
    final = flatten_observation(ref_info["final_obs"])
    for i, info in enumerate(infos):
        np.testing.assert_array_equal(info["terminal_observation"], final[i])
        assert info["TimeLimit.truncated"] is truncated
        assert info["episode"]["l"] == length
        assert info["episode"]["r"] == pytest.approx(rewards[i], rel=1e-5)
    # the returned observation is already the next session's first one
    np.testing.assert_array_equal(obs, flatten_observation(ref_obs))
    assert (ref.sim.session_steps == 0).all()  # every row began a new session


def test_vec_env_works_under_sb3_vec_wrappers():
    vec, _ = twin_envs(4)
    wrapped = VecMonitor(VecCheckNan(vec, raise_exception=True))
    wrapped.seed(0)
    obs = wrapped.reset()
    for _ in range(3):
        obs, *_ = wrapped.step(np.zeros((4, 2), dtype=np.int64))
    assert obs.shape == (4, vec.observation_space.shape[0])
    assert wrapped.get_attr("num_envs") == [4] * 4
    assert wrapped.env_is_wrapped(VecMonitor) == [False] * 4


# ---------------------------------------------------------------------------- slate policy


def test_slate_distribution_matches_sb3_multicategorical_and_hand_computation():
    logits = torch.randn(6, 3 * 4, generator=torch.Generator().manual_seed(0))
    ours = SlateCategoricalDistribution([4, 4, 4]).proba_distribution(logits)
    sb3 = MultiCategoricalDistribution([4, 4, 4]).proba_distribution(logits)
    actions = torch.tensor([[0, 1, 2], [3, 3, 3], [1, 0, 0], [2, 2, 1], [0, 0, 0], [3, 1, 2]])
    # by hand: sum over slots of log softmax(logits of the slot)[chosen]
    log_softmax = torch.log_softmax(logits.view(6, 3, 4), dim=-1).numpy().astype(np.float64)
    hand = [sum(log_softmax[i, j, actions[i, j]] for j in range(3)) for i in range(6)]
    np.testing.assert_allclose(ours.log_prob(actions).numpy(), hand, rtol=1e-5)
    np.testing.assert_allclose(ours.log_prob(actions).numpy(), sb3.log_prob(actions).numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.entropy().numpy(), sb3.entropy().numpy(), rtol=1e-5)
    np.testing.assert_array_equal(ours.mode().numpy(), sb3.mode().numpy())
    np.testing.assert_allclose(ours.probs.sum(dim=-1).numpy(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="equal slot sizes"):
        SlateCategoricalDistribution([4, 5])
    # a zero-probability candidate (a -inf logit) adds nothing to the entropy, as in torch
    zero = torch.tensor([[0.0, float("-inf"), 0.0, 0.0] * 3])
    want = MultiCategoricalDistribution([4, 4, 4]).proba_distribution(zero).entropy()
    got = SlateCategoricalDistribution([4, 4, 4]).proba_distribution(zero).entropy()
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    np.testing.assert_allclose(got.numpy(), 3 * np.log(3), rtol=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        SlateCategoricalDistribution([4, 4, 4]).proba_distribution(torch.full((2, 12), float("nan")))


def test_slate_distribution_samples_each_slot_from_its_categorical():
    # slot 0: (0.5, 0, 0.3, 0.2), slot 1: all mass on candidate 2
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2], [0.0, 0.0, 1.0, 0.0]])
    logits = torch.log(probs).view(1, 8).expand(40_000, 8)
    dist = SlateCategoricalDistribution([4, 4]).proba_distribution(logits)
    torch.manual_seed(0)
    draws = dist.sample()
    torch.manual_seed(0)
    np.testing.assert_array_equal(dist.sample().numpy(), draws.numpy())  # seeded by torch
    assert draws.shape == (40_000, 2) and draws.dtype == torch.int64
    freq = [np.bincount(draws[:, j].numpy(), minlength=4) / 40_000 for j in range(2)]
    np.testing.assert_allclose(freq[0], [0.5, 0.0, 0.3, 0.2], atol=0.01)  # 4 sigma ~ 0.01
    assert freq[0][1] == 0.0
    np.testing.assert_array_equal(freq[1], [0.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_ppo_and_a2c_train_the_slate_policy_and_act_from_its_probabilities(name):
    config = small_config()
    extra = {"batch_size": 32} if name == "ppo" else {}
    agent = make_agent(name, WorldSpec.from_config(config), policy="mlp", n_envs=4, n_steps=8, **extra)
    agent.train(config, 32, seed=0)
    policy = agent.model.policy
    assert isinstance(policy, SlatePolicy) and isinstance(policy.action_dist, SlateCategoricalDistribution)
    if name == "ppo":  # Adam with SB3's eps (a2c keeps SB3's RMSprop)
        assert isinstance(policy.optimizer, torch.optim.Adam) and policy.optimizer.defaults["eps"] == 1e-5
    obs, _ = RecVectorEnv(5, config=config).reset(seed=1)
    flat = torch.as_tensor(flatten_observation(obs))
    with torch.no_grad():
        latent_pi = policy.mlp_extractor.forward_actor(policy.extract_features(flat))
        want = torch.softmax(policy.action_net(latent_pi).view(5, 2, 10), dim=-1).numpy()
    np.testing.assert_allclose(agent._probabilities(obs), want, rtol=1e-5, atol=1e-7)


def test_slate_policy_fused_adam_takes_the_same_steps_as_sb3_adam():
    vec = SB3RecVecEnv(RecVectorEnv(1, config=small_config()))
    policies = []
    for kwargs in ({}, {"optimizer_kwargs": {"eps": 1e-5}}):  # ours (fused if available), SB3's default Adam
        torch.manual_seed(0)
        policies.append(SlatePolicy(vec.observation_space, vec.action_space, lambda _: 1e-2, net_arch=[8], **kwargs))
    assert policies[0].optimizer.defaults["eps"] == 1e-5
    start = [p.detach().clone() for p in policies[0].parameters()]
    x = torch.randn(32, vec.observation_space.shape[0], generator=torch.Generator().manual_seed(1))
    actions = torch.randint(0, 10, (32, 2), generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        for policy in policies:
            values, log_prob, entropy = policy.evaluate_actions(x, actions)
            loss = values.pow(2).mean() - log_prob.mean() - 0.01 * entropy.mean()
            policy.optimizer.zero_grad()
            loss.backward()
            policy.optimizer.step()
    for ours, sb3, before in zip(policies[0].parameters(), policies[1].parameters(), start, strict=True):
        np.testing.assert_allclose(ours.detach().numpy(), sb3.detach().numpy(), rtol=1e-5, atol=1e-6)
        assert not torch.equal(ours, before)  # three steps of lr 1e-2 moved every tensor


def test_models_with_sb3_stock_policy_still_act():
    # e.g. a zip saved before SlatePolicy: the k slot Categoricals of SB3's MultiCategorical
    config = small_config()
    agent = make_agent("ppo", WorldSpec.from_config(config), policy="mlp")
    agent.policy_class = "MlpPolicy"
    policy = agent.ensure_model().policy
    assert type(policy.action_dist) is MultiCategoricalDistribution
    obs, _ = RecVectorEnv(5, config=config).reset(seed=1)
    with torch.no_grad():
        latent_pi = policy.mlp_extractor.forward_actor(
            policy.extract_features(torch.as_tensor(flatten_observation(obs)))
        )
        want = torch.softmax(policy.action_net(latent_pi).view(5, 2, 10), dim=-1).numpy()
    np.testing.assert_allclose(agent._probabilities(obs), want, rtol=1e-5, atol=1e-7)
    assert agent.act(obs, np.random.default_rng(0)).slates.shape == (5, 2)


# ---------------------------------------------------------------------------- sampling law


def test_slot_sampling_without_replacement_reports_exact_propensities():
    # k = 2, C = 3: slot 0 draws from pi_0, slot 1 from pi_1 restricted to the other two.
    pi = np.array([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3]])
    exact = {
        (a0, a1): pi[0, a0] * pi[1, a1] / (1.0 - pi[1, a0])
        for a0, a1 in itertools.product(range(3), repeat=2)
        if a0 != a1
    }
    assert exact[(0, 1)] == pytest.approx(0.5 * 0.1 / 0.4)
    assert sum(exact.values()) == pytest.approx(1.0)
    probs = np.broadcast_to(pi, (20_000, 2, 3))
    slates, props, greedy = slot_sample_without_replacement(probs, np.random.default_rng(0))
    joint = props.prod(axis=1)
    for i in range(50):
        assert joint[i] == pytest.approx(exact[tuple(slates[i])])
    np.testing.assert_array_equal(greedy[0], [0, 2])  # modes (0, 0): slot 1 takes its best free one
    served, counts = np.unique(slates, axis=0, return_counts=True)
    assert len(served) == len(exact)
    for slate, count in zip(served, counts, strict=True):
        assert count / len(slates) == pytest.approx(exact[tuple(slate)], abs=0.01)


def test_slot_whose_mass_is_all_used_falls_back_to_uniform():
    pi = np.array([[[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]])
    slates, props, _ = slot_sample_without_replacement(np.repeat(pi, 300, axis=0), np.random.default_rng(1))
    assert (slates[:, 0] == 0).all() and (slates[:, 1] != 0).all()
    np.testing.assert_allclose(props, np.tile([1.0, 1 / 3], (300, 1)))


# ---------------------------------------------------------------------------- agents


def test_bad_hyper_parameters_and_dqn_slates_raise_named_errors():
    spec = WorldSpec.from_config(small_config())
    with pytest.raises(AgentError, match=r"ppo\.learning_rate.*-1"):
        make_agent("ppo", spec, learning_rate=-1)
    with pytest.raises(AgentError, match=r"a2c\.net_arch"):
        make_agent("a2c", spec, net_arch=())
    with pytest.raises(AgentError, match=r"dqn with policy 'mlp' needs slate_size 1.*slate_size=2"):
        make_agent("dqn", spec, policy="mlp")
    agent = make_agent("ppo", spec)
    with pytest.raises(AgentError, match="differs from the agent's spec"):
        agent.train(with_overrides(small_config(), {"n_candidates": 12}), 64, seed=0)


def decisions(agent, config, seed=7, n=16):
    env = RecVectorEnv(n, config=config)
    obs, _ = env.reset(seed=seed)
    return agent.act(obs, np.random.default_rng(seed))


def test_same_seed_same_model_and_decisions():
    config = small_config()
    spec = WorldSpec.from_config(config)
    runs = [make_agent("ppo", spec, n_envs=8, n_steps=16).train(config, 256, seed=s) for s in (3, 3, 4)]
    same = [decisions(a, config) for a in runs]
    np.testing.assert_array_equal(same[0].slates, same[1].slates)
    np.testing.assert_array_equal(same[0].propensities, same[1].propensities)
    assert not np.array_equal(same[0].propensities, same[2].propensities)
    d = same[0]
    assert d.slates.shape == (16, 2) and (d.slates[:, 0] != d.slates[:, 1]).all()
    assert ((d.propensities > 0) & (d.propensities <= 1)).all()


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_save_load_and_pickle_make_the_same_decisions(name, tmp_path):
    config = small_config()
    extra = {"batch_size": 64} if name == "ppo" else {}
    agent = make_agent(name, WorldSpec.from_config(config), n_envs=8, n_steps=8, **extra).train(config, 128, seed=1)
    agent.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # one file, no SB3 zip
    loaded = SB3Agent.load(tmp_path / "model")
    pickled = pickle.loads(pickle.dumps(agent))
    want = decisions(agent, config)
    for other in (loaded, pickled):
        assert other.params == agent.params and other.trained
        got = decisions(other, config)
        np.testing.assert_array_equal(got.slates, want.slates)
        np.testing.assert_array_equal(got.propensities, want.propensities)
        np.testing.assert_array_equal(got.explored, want.explored)


def test_training_continues_on_another_env_and_logs_to_tensorboard(tmp_path):
    config = small_config()
    agent = make_agent("a2c", WorldSpec.from_config(config), n_envs=8)
    before = decisions(agent, config)  # an untrained policy can act (and be saved)
    assert before.slates.shape == (16, 2) and not agent.trained
    agent.train(config, 128, seed=0)
    # 4 sessions instead of 8 and other observation bounds: the model is re-attached
    other = with_overrides(config, {"users": {"observation_noise": 0.5}})
    agent.train(RecVectorEnv(4, config=other), 128, seed=1, tensorboard_log=str(tmp_path))
    assert agent.model.n_envs == 4 and agent.model.num_timesteps >= 256
    assert agent.training == {"total_timesteps": 256, "seed": 1}
    assert any(tmp_path.iterdir())


def test_dqn_trains_on_single_item_slates_and_acts_epsilon_greedily():
    config = small_config(slate_size=1)
    spec = WorldSpec.from_config(config)
    agent = make_agent("dqn", spec, n_envs=8, learning_starts=64, exploration_final_eps=0.2)
    agent.train(config, 1024, seed=0)
    assert agent.model.num_timesteps >= 1024
    env = RecVectorEnv(64, config=config)
    trajectory = rollout(agent, env, 5, np.random.default_rng(0), seed=2, learn=False)
    slates, props = trajectory.records["slate"], trajectory.records["propensity"]
    explored = trajectory.records["explored"]
    assert slates.shape == (5, 64, 1)
    # epsilon-greedy law: greedy item (1 - eps) + eps / C, any other eps / C
    np.testing.assert_allclose(props[~explored], 0.8 + 0.2 / 10)
    np.testing.assert_allclose(props[explored], 0.2 / 10)
    assert 0.05 < explored.mean() < 0.4


@pytest.mark.slow
def test_ppo_beats_random_engagement_over_seeds():
    config = with_overrides(get_preset("default"), LEARNABLE)
    spec = WorldSpec.from_config(config)
    env = RecVectorEnv(16, config=config)

    def engagement(agent):
        return rollout(agent, env, 100, np.random.default_rng(0), seed=5, learn=False).records["reward"].mean()

    random_engagement = engagement(make_agent("random", spec))
    # the flat MLP (the candidate-scoring default has its own test in test_deep_policies.py)
    trained = [make_agent("ppo", spec, policy="mlp").train(config, 16384, seed=seed) for seed in range(3)]
    gains = [engagement(agent) - random_engagement for agent in trained]
    assert min(gains) > 0.05, gains  # every seed beats random (about 1.4 min/step)
    assert np.mean(gains) > 0.1, gains
