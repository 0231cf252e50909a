"""Standard clients work as written: SB3 on the registered ids, Gymnasium's sync/async vector modes.

The calls are the ones a user types from the SB3 and Gymnasium docs, on the registered ids and
the default world (no project helper in between).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from simenv import ENV_IDS, FLAT_ENV_IDS, PRESETS, RecEnv
from simenv.wrappers import FlatRecEnv, flat_observation_space


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _parameters(model: PPO) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()]).numpy().copy()


def test_every_preset_has_a_flat_id_beside_its_dict_id() -> None:
    assert set(FLAT_ENV_IDS) == set(ENV_IDS) == set(PRESETS)
    assert FLAT_ENV_IDS["default"] == "simenv/RecFlat-v1"
    assert FLAT_ENV_IDS["filter_bubble"] == "simenv/RecFilterBubbleFlat-v1"
    for preset, env_id in FLAT_ENV_IDS.items():
        env = gym.make(env_id)
        assert isinstance(env.unwrapped, FlatRecEnv)
        assert env.unwrapped.config == PRESETS[preset]
        assert env.observation_space == flat_observation_space(PRESETS[preset])


def test_single_env_user_id_has_a_sample_axis() -> None:
    """The 0-d ``user_id`` broke SB3's per-sample flatten; one session's id is now shape (1,)."""
    env = gym.make("simenv/Rec-v1")
    assert env.observation_space["user_id"].shape == (1,)
    obs, _ = env.reset(seed=3)
    assert obs["user_id"].shape == (1,) and obs in env.observation_space
    assert obs["user_id"][0] == env.unwrapped.sim.obs["user_id"][0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env_id", "policy"), [("simenv/Rec-v1", "MultiInputPolicy"), ("simenv/RecFlat-v1", "MlpPolicy")]
)
def test_ppo_trains_on_the_registered_id_as_written(env_id: str, policy: str) -> None:
    env = gym.make(env_id)
    model = PPO(policy, env, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu")
    before = _parameters(model)
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    assert not np.allclose(before, _parameters(model))  # gradient steps changed the policy
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
    assert isinstance(env.unwrapped, RecEnv if policy == "MultiInputPolicy" else FlatRecEnv)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", ["simenv/Rec-v1", "simenv/RecFlat-v1"])
def test_gymnasium_vector_modes_step_hundreds_of_steps(env_id: str, mode: str) -> None:
    """``gym.make_vec(id, vectorization_mode="sync" | "async")`` copies the single env; 200 steps
    with autoreset keep every observation in the batched space, and a seed fixes the rewards."""
    rewards = []
    for _ in range(2):
        env = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, overrides={"users": {"budget_mean": 6.0}})
        try:
            env.action_space.seed(0)
            obs, _ = env.reset(seed=7)
            assert obs in env.observation_space
            total, ended = np.zeros(2), 0
            for _ in range(200):
                obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                assert obs in env.observation_space
                total += reward
                ended += int((terminated | truncated).sum())
        finally:
            env.close()
        assert ended > 0  # sessions ended and the vector env reset them
        rewards.append(total)
    np.testing.assert_array_equal(rewards[0], rewards[1])
