"""Gymnasium faces over the batched :class:`~simenv.simulator.Simulator`.

* :class:`RecEnv` — a ``gymnasium.Env``: one user's session per episode. The population
  persists across ``reset()`` calls (a returning user keeps the tastes it was left with);
  ``reset(seed=...)`` rebuilds the world from that seed.
* :class:`RecVectorEnv` — a native ``gymnasium.vector.VectorEnv`` stepping N sessions at
  once in numpy (not N env copies), with same-step autoreset.

Observation (one session): a flat ``Dict`` of
``user`` (F_u,) float32, ``candidates`` (C, F_i) float32, ``item_ids`` (C,) int64 and
``user_id`` (1,) int64 (shape (1,), not (), so stable-baselines3's ``MultiInputPolicy`` and
other learners that flatten every entry per sample accept the raw Dict; :class:`RecVectorEnv`
gives ``user_id`` as (N,)). Action: ``MultiDiscrete([C] * k)``, the candidate shown at each
slate position; a repeated candidate is replaced by a fixed rule and flagged in
``info["slate_repaired"]`` (see :func:`simenv.simulator.repair_slate`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from simenv.catalog import item_feature_bounds
from simenv.config import ConfigError, WorldConfig, get_preset, with_overrides
from simenv.population import user_feature_bounds
from simenv.simulator import Observation, Simulator

ID_BOUND = 2**62
"""Upper bound of the id boxes (ids are never reused, so they only grow)."""


def resolve_config(
    preset: str = "default", config: WorldConfig | None = None, overrides: dict[str, Any] | None = None
) -> WorldConfig:
    """A world from a preset name or an explicit config, plus nested overrides."""
    base = config if config is not None else get_preset(preset)
    return with_overrides(base, overrides)


def observation_space(config: WorldConfig, user_id_shape: tuple[int, ...] = (1,)) -> spaces.Dict:
    """The fixed observation space of one session.

    Args:
        config: the world.
        user_id_shape: shape of the ``user_id`` entry: (1,) for :class:`RecEnv` (every entry
            has a sample axis to flatten, as SB3's ``MultiInputPolicy`` needs), () for the
            single space of :class:`RecVectorEnv`, whose batched ``user_id`` is (N,).
    """
    c = config.n_candidates
    user_low, user_high = user_feature_bounds(config.users, config.catalog.n_topics)
    item_low, item_high = item_feature_bounds(config.catalog)
    return spaces.Dict(
        {
            "user": spaces.Box(user_low, user_high, dtype=np.float32),
            "candidates": spaces.Box(np.tile(item_low, (c, 1)), np.tile(item_high, (c, 1)), dtype=np.float32),
            "item_ids": spaces.Box(0, ID_BOUND, (c,), np.int64),
            "user_id": spaces.Box(0, ID_BOUND, user_id_shape, np.int64),
        }
    )


def action_space(config: WorldConfig) -> spaces.MultiDiscrete:
    """The fixed slate action space: k positions, each a candidate index in [0, C)."""
    return spaces.MultiDiscrete(np.full(config.slate_size, config.n_candidates, dtype=np.int64))


class RecEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """One user's session per episode, over a persistent population.

    Args:
        preset: name of a world preset (see :data:`simenv.config.PRESETS`).
        config: an explicit :class:`WorldConfig` (overrides ``preset``).
        overrides: nested field overrides, e.g. ``{"dynamics": {"drift": 0.1}}``.
        oracle: compute the myopic oracle's ground truth (``best_slate``,
            ``oracle_expected_reward``) each step; off is faster (see :class:`Simulator`).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        preset: str = "default",
        config: WorldConfig | None = None,
        overrides: dict[str, Any] | None = None,
        oracle: bool = True,
    ) -> None:
        self.config = resolve_config(preset, config, overrides)
        self.oracle = oracle
        self.sim: Simulator | None = None
        self._ended = False
        self.observation_space = observation_space(self.config)
        self.action_space = action_space(self.config)

    @staticmethod
    def _row(obs: Observation) -> dict[str, np.ndarray]:
        row = {key: np.array(value[0]) for key, value in obs.items()}
        row["user_id"] = row["user_id"].reshape(1)
        return row

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self.sim is None:
            if seed is None:
                seed = int(self.np_random.integers(2**63))
            self.sim = Simulator(self.config, 1, seed, oracle=self.oracle)
            obs, info = self.sim.obs, self.sim.decision_info()
        else:
            obs = self.sim.obs if self._ended else self.sim.restart(np.zeros(1, dtype=np.int64))
            info = self.sim.decision_info()
        self._ended = False
        return self._row(obs), {key: value[0] for key, value in info.items()}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self.sim is None:
            raise ResetNeeded("call reset() before step()")
        if self._ended:
            raise ResetNeeded("the episode has ended (terminated or truncated): call reset() before step()")
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape} (slate_size,); got {action.shape}")
        obs, reward, terminated, truncated, info = self.sim.step(action.reshape(1, -1))
        final = info.pop("final_obs", None)
        info.pop("_final_obs", None)
        self._ended = bool(terminated[0] or truncated[0])
        out = self._row(final if final is not None else obs)
        return out, float(reward[0]), bool(terminated[0]), bool(truncated[0]), {k: v[0] for k, v in info.items()}


class RecVectorEnv(gym.vector.VectorEnv):
    """N sessions stepped at once by one batched simulator (same-step autoreset).

    When a session ends, the same ``step`` starts the next one (a returning user from the
    population, or a new user replacing a churned one) and returns its first
    observation; the ended sessions' last observations are in ``info["final_obs"]``, a
    dict of arrays over the ended rows only, with the mask ``info["_final_obs"]`` (N,).

    Observation arrays are reused buffers, alternating between two: an observation stays
    valid until the step after the next one; copy it to keep it longer.

    Args:
        num_envs: N, sessions stepped together.
        preset, config, overrides, oracle: the world, as for :class:`RecEnv`.
        observation_buffers: 2 (default, as above) or 1: one buffer that every step
            overwrites, for simulation at scale (a million sessions of the default shape
            step in under 3 GiB); see :class:`Simulator`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        preset: str = "default",
        config: WorldConfig | None = None,
        overrides: dict[str, Any] | None = None,
        oracle: bool = True,
        observation_buffers: int = 2,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ConfigError(f"num_envs (sessions stepped at once) must be an integer >= 1; got {num_envs!r}")
        self.config = resolve_config(preset, config, overrides)
        self.num_envs = int(num_envs)
        self.sim = Simulator(self.config, self.num_envs, seed=0, oracle=oracle, observation_buffers=observation_buffers)
        self._seeded = False
        self.single_observation_space = observation_space(self.config, user_id_shape=())
        self.single_action_space = action_space(self.config)
        self._observation_space: spaces.Dict | None = None
        self.action_space = batch_space(self.single_action_space, num_envs)

    @property
    def observation_space(self) -> spaces.Dict:
        """The batched observation space, built on first use.

        Gymnasium's batched ``Box`` stores per-element bounds: for the candidates alone that
        is two float32 arrays of shape (N, C, F_i), 2.9 GiB at a million sessions, which
        stepping never reads. Built lazily, a run that never asks for the space (the
        runner, the agents) never pays for it.
        """
        if self._observation_space is None:
            self._observation_space = batch_space(self.single_observation_space, self.num_envs)
        return self._observation_space

    @observation_space.setter
    def observation_space(self, space: spaces.Dict) -> None:
        self._observation_space = space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """``seed`` (an int) rebuilds the world; without one, every session restarts
        (or those in ``options["reset_mask"]``) over the persistent population."""
        if seed is not None and not isinstance(seed, int | np.integer):
            raise ConfigError(f"RecVectorEnv.reset seed must be one int for the whole world; got {seed!r}")
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            if seed is None:
                seed = int(self.np_random.integers(2**63))
            self._seeded = True
            return self.sim.reset(int(seed))
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},); "
                    f"got {mask.dtype} of shape {mask.shape}"
                )
        rows = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        obs = self.sim.restart(rows)
        return obs, self.sim.decision_info()

    def step(self, actions: np.ndarray) -> tuple[Observation, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._seeded:
            raise ResetNeeded("call reset() before step()")
        return self.sim.step(actions)
