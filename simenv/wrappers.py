"""Flat faces of the world for stable-baselines3 (SB3) and other flat-vector learners.

SB3's MLP policies want one flat ``Box`` observation and a ``Discrete`` or
``MultiDiscrete`` action. :class:`FlatRecEnv` gives exactly that over a
:class:`~simenv.envs.RecEnv`:

* observation: ``Box`` float32 of length ``F_u + C * F_i``: the user features followed by
  the C candidates' features, row by row (the id fields ``item_ids`` / ``user_id`` are
  dropped: they are labels, not features). Bounds are the world's finite feature bounds.
* action: ``MultiDiscrete([C] * k)``, the candidate shown at each slate slot, which
  PPO / A2C learn as k independent categoricals; a repeated candidate is replaced by the
  world's fixed rule (:func:`simenv.simulator.repair_slate`). With ``discrete=True``
  (only for ``slate_size`` 1) the action is ``Discrete(C)``, which DQN accepts.

The batched helpers (:func:`flatten_observation`, :func:`slate_from_action`) are shared
with the SB3 ``VecEnv`` adapter in :mod:`agents.deep_rl`, which steps one batched world.
Only gymnasium is imported here; ``simenv`` does not depend on SB3.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from simenv.config import ConfigError, WorldConfig
from simenv.envs import RecEnv, observation_space, resolve_config

FLAT_ENTRY_POINT = "simenv.wrappers:FlatRecEnv"


def flat_observation_space(config: WorldConfig) -> spaces.Box:
    """The flat observation space of one session: ``Box`` float32 of shape (F_u + C * F_i,).

    Layout: ``[user (F_u), candidate 0 (F_i), ..., candidate C-1 (F_i)]``; the bounds are
    the world's user and item feature bounds (all finite).
    """
    space = observation_space(config)
    user, cand = space["user"], space["candidates"]
    low = np.concatenate([user.low, cand.low.ravel()]).astype(np.float32)
    high = np.concatenate([user.high, cand.high.ravel()]).astype(np.float32)
    return spaces.Box(low, high, dtype=np.float32)


def slate_action_space(config: WorldConfig, discrete: bool = False) -> spaces.MultiDiscrete | spaces.Discrete:
    """``MultiDiscrete([C] * k)``, or ``Discrete(C)`` when ``discrete`` (needs k = 1).

    Raises:
        ConfigError: ``discrete`` with ``slate_size`` other than 1.
    """
    c, k = config.n_candidates, config.slate_size
    if discrete:
        if k != 1:
            raise ConfigError(
                f"a Discrete(C) action (discrete=True, e.g. for DQN) needs slate_size 1; got slate_size={k}"
            )
        return spaces.Discrete(c)
    return spaces.MultiDiscrete(np.full(k, c, dtype=np.int64))


def flatten_observation(obs: dict[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Flat float32 features from an observation dict, batched or single.

    Args:
        obs: ``user`` (N, F_u) and ``candidates`` (N, C, F_i) (or one session: (F_u,),
            (C, F_i)); other keys are ignored.
        out: optional (N, F_u + C * F_i) float32 array to write into.

    Returns:
        (N, F_u + C * F_i) float32 (or (F_u + C * F_i,) for one session), a new array
        unless ``out`` is given.
    """
    user, cand = obs["user"], obs["candidates"]
    if user.ndim == 1:
        return np.concatenate([user, cand.ravel()]).astype(np.float32, copy=False)
    n, f_u = user.shape
    if out is None:
        out = np.empty((n, f_u + cand.shape[1] * cand.shape[2]), dtype=np.float32)
    out[:, :f_u] = user
    out[:, f_u:] = cand.reshape(n, -1)
    return out


def slate_from_action(action: Any, n_sessions: int, slate_size: int) -> np.ndarray:
    """(N, k) int64 slates from an SB3 action batch: (N,) for ``Discrete``, (N, k) for
    ``MultiDiscrete`` (one session: a scalar or (k,)).

    Raises:
        ValueError: the action does not hold ``n_sessions * slate_size`` entries.
    """
    slate = np.asarray(action, dtype=np.int64)
    if slate.size != n_sessions * slate_size:
        raise ValueError(
            f"action must hold n_sessions * slate_size = {n_sessions} * {slate_size} candidate indices; "
            f"got shape {slate.shape}"
        )
    return slate.reshape(n_sessions, slate_size)


def flat_env_id(preset: str) -> str:
    """The id carried by the spec of a :class:`FlatRecEnv` on ``preset``."""
    from simenv import FLAT_ENV_IDS

    return FLAT_ENV_IDS.get(preset, FLAT_ENV_IDS["default"])


class FlatRecEnv(gym.Env[np.ndarray, Any]):
    """One user's session per episode with a flat observation and slate action (for SB3).

    It owns a :class:`~simenv.envs.RecEnv` (``self.env``) and translates spaces, so it is
    its own ``unwrapped`` env and the checkers see no wrapper stack. Rewards, episode ends
    and ``info`` (the world's ground truth for the session) are the inner env's.

    Args:
        preset, config, overrides: the world, as for :class:`~simenv.envs.RecEnv`.
        discrete: ``Discrete(C)`` actions instead of ``MultiDiscrete([C] * k)``; only for
            ``slate_size`` 1 (DQN).
        env: an existing :class:`~simenv.envs.RecEnv` to wrap (then ``preset``, ``config``
            and ``overrides`` are ignored).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        preset: str = "default",
        config: WorldConfig | None = None,
        overrides: dict[str, Any] | None = None,
        discrete: bool = False,
        env: RecEnv | None = None,
    ) -> None:
        if env is not None and not isinstance(env, RecEnv):
            raise ConfigError(f"env must be a simenv.RecEnv; got {type(env).__name__}")
        self.env = env if env is not None else RecEnv(preset=preset, config=config, overrides=overrides)
        self.config = self.env.config
        self.discrete = bool(discrete)
        self.observation_space = flat_observation_space(self.config)
        self.action_space = slate_action_space(self.config, self.discrete)
        self.spec = EnvSpec(
            id=flat_env_id(preset),
            entry_point=FLAT_ENTRY_POINT,
            kwargs={"config": self.config, "discrete": self.discrete},
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start the next session (``seed`` rebuilds the world); returns the flat observation."""
        super().reset(seed=seed)
        obs, info = self.env.reset(seed=seed, options=options)
        return flatten_observation(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Serve one slate: a candidate index (``Discrete``) or k of them (``MultiDiscrete``)."""
        slate = slate_from_action(action, 1, self.config.slate_size)[0]
        obs, reward, terminated, truncated, info = self.env.step(slate)
        return flatten_observation(obs), reward, terminated, truncated, info


def make_sb3_env(
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
    *,
    config: WorldConfig | None = None,
    discrete: bool = False,
) -> FlatRecEnv:
    """A single-session SB3-ready env: flat ``Box`` observation, slate action.

    Args:
        preset: a preset name (see :data:`simenv.config.PRESETS`).
        overrides: nested field overrides, e.g. ``{"n_candidates": 10, "slate_size": 2}``.
        config: an explicit world (instead of ``preset``); ``overrides`` apply on top.
        discrete: ``Discrete(C)`` actions for DQN (needs ``slate_size`` 1).

    Example:
        >>> env = make_sb3_env("boredom", {"slate_size": 1}, discrete=True)
        >>> from stable_baselines3 import DQN; DQN("MlpPolicy", env)  # doctest: +SKIP
    """
    return FlatRecEnv(config=resolve_config(preset, config, overrides), discrete=discrete, preset=preset)
