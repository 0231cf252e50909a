"""Stable-baselines3's view of one batched world: :class:`SB3RecVecEnv`, an SB3 ``VecEnv`` over
a :class:`simenv.RecVectorEnv` (one world stepping N sessions in numpy, not N env copies),
and the helpers the deep-RL agents (:mod:`agents.deep_rl`) build their training worlds with.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from simenv import RecVectorEnv, WorldConfig, get_preset
from simenv.wrappers import flat_observation_space, flatten_observation, slate_action_space, slate_from_action


class SB3RecVecEnv(VecEnv):
    """SB3 ``VecEnv`` over one batched :class:`simenv.RecVectorEnv`.

    ``step_wait`` runs one batched world step. Sessions that end restart in the same step
    (same-step autoreset): their last observation goes into their info dict as
    ``"terminal_observation"`` with ``"TimeLimit.truncated"`` (True when the session hit
    ``users.max_steps`` without terminating) and an ``"episode"`` summary
    (``r`` return, ``l`` length, ``t`` seconds since reset, as SB3's Monitor writes it).
    Sessions still running get a fresh empty dict (one per env, as SB3 requires; building
    N empty dicts costs a few microseconds). The world's batched ground truth of the last
    step is kept, uncopied, in :attr:`last_info`.

    ``reset()`` rebuilds the world from the seed set by :meth:`seed` (SB3 passes its
    ``seed`` there); without a pending seed it restarts every session over the persistent
    population (a fresh random world if the env was never seeded).

    Args:
        env: the batched world.
        discrete: ``Discrete(C)`` actions (DQN, needs ``slate_size`` 1) instead of
            ``MultiDiscrete([C] * k)``.
    """

    def __init__(self, env: RecVectorEnv, discrete: bool = False) -> None:
        if not isinstance(env, RecVectorEnv):
            raise TypeError(f"env must be a simenv.RecVectorEnv; got {type(env).__name__}")
        self.venv = env
        self.config: WorldConfig = env.config
        self.discrete = bool(discrete)
        n = env.num_envs
        self._slate_size = self.config.slate_size
        self._empty = [None] * n
        self._ep_return = np.zeros(n, dtype=np.float64)
        self._ep_length = np.zeros(n, dtype=np.int64)
        self._t0 = time.perf_counter()
        self._actions: np.ndarray | None = None
        self.last_info: dict[str, Any] = {}
        super().__init__(n, flat_observation_space(self.config), slate_action_space(self.config, self.discrete))

    # -- stepping
    def reset(self) -> np.ndarray:
        """(N, D) float32 first observations of N new sessions."""
        seed = self._seeds[0]
        obs, info = self.venv.reset(seed=None if seed is None else int(seed))
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in self._empty]
        self.last_info = info
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        self._t0 = time.perf_counter()
        return flatten_observation(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """``(obs (N, D) float32, rewards (N,) float32, dones (N,) bool, infos)``."""
        if self._actions is None:
            raise RuntimeError("step_wait() called without a pending step_async()")
        slates = slate_from_action(self._actions, self.num_envs, self._slate_size)
        self._actions = None
        obs, reward, terminated, truncated, info = self.venv.step(slates)
        self.last_info = info
        self._ep_return += reward
        self._ep_length += 1
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in self._empty]
        if "_final_obs" in info:
            self._write_final_infos(infos, info, terminated, truncated)
        return flatten_observation(obs), reward.astype(np.float32, copy=False), dones, infos

    def _write_final_infos(
        self, infos: list[dict[str, Any]], info: dict[str, Any], terminated: np.ndarray, truncated: np.ndarray
    ) -> None:
        """Fill the info dicts of the ended rows (a loop over ended rows only)."""
        rows = np.flatnonzero(info["_final_obs"])
        final = flatten_observation(info["final_obs"])
        timeout = (truncated[rows] & ~terminated[rows]).tolist()
        returns = self._ep_return[rows].tolist()
        lengths = self._ep_length[rows].tolist()
        elapsed = round(time.perf_counter() - self._t0, 6)
        for j, i in enumerate(rows.tolist()):
            infos[i] = {
                "terminal_observation": final[j],
                "TimeLimit.truncated": timeout[j],
                "episode": {"r": returns[j], "l": lengths[j], "t": elapsed},
            }
        self._ep_return[rows] = 0.0
        self._ep_length[rows] = 0

    def close(self) -> None:
        self.venv.close()

    # -- attribute plumbing: one world serves every index
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


class SpacesOnlyVecEnv(VecEnv):
    """A VecEnv that only carries spaces: lets an untrained model be built from a
    :class:`WorldSpec` alone (for ``act`` before ``train``). It cannot be stepped."""

    render_mode = None

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        super().__init__(1, observation_space, action_space)

    @staticmethod
    def _no_env(*_: Any) -> Any:
        raise RuntimeError("this agent has no environment yet: call train(env_or_config, ...) first")

    def reset(self) -> np.ndarray:
        return self._no_env()

    def step_async(self, actions: np.ndarray) -> None:
        self._no_env(actions)

    def step_wait(self) -> VecEnvStepReturn:
        return self._no_env()

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        raise RuntimeError("this agent has no environment yet")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False]


def as_sb3_vec_env(env_or_config: Any, n_envs: int, discrete: bool = False) -> SB3RecVecEnv:
    """An :class:`SB3RecVecEnv` from an adapter, a ``RecVectorEnv``, a ``WorldConfig`` or a
    preset name (the last two with ``n_envs`` sessions)."""
    if isinstance(env_or_config, SB3RecVecEnv):
        if env_or_config.discrete != discrete:
            raise ValueError(f"env_or_config has discrete={env_or_config.discrete}; this agent needs {discrete}")
        return env_or_config
    if isinstance(env_or_config, RecVectorEnv):
        return SB3RecVecEnv(env_or_config, discrete)
    if isinstance(env_or_config, str):
        env_or_config = get_preset(env_or_config)
    if isinstance(env_or_config, WorldConfig):
        return SB3RecVecEnv(RecVectorEnv(n_envs, config=env_or_config, oracle=False), discrete)
    raise TypeError(
        "env_or_config must be an SB3RecVecEnv, a simenv.RecVectorEnv, a WorldConfig or a preset name; "
        f"got {type(env_or_config).__name__}"
    )
