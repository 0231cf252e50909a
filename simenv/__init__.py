"""BubbleGym's simulated world: users with evolving preferences meet a recommender.

Environment ids (``gymnasium.make`` / ``gymnasium.make_vec``): ``simenv/Rec-v1`` on the
default world and one id per preset (``simenv/RecFilterBubble-v1``, ...), see
:data:`ENV_IDS`; beside each, a flat id (``simenv/RecFlat-v1``, ``simenv/RecFilterBubbleFlat-v1``,
...: one ``Box`` observation, :class:`simenv.wrappers.FlatRecEnv`), see :data:`FLAT_ENV_IDS`.
Version 1 is the world of ``docs/model.md`` (centred topics, appeal against value, lasting
satisfaction, the expected-reward oracle); version 0 was the first model and is no longer
registered.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from simenv.config import (
    PRESETS,
    CatalogConfig,
    ChoiceConfig,
    ConfigError,
    DynamicsConfig,
    ResponseConfig,
    UserConfig,
    WorldConfig,
    WorldSpec,
    get_preset,
    with_overrides,
)
from simenv.envs import RecEnv, RecVectorEnv
from simenv.simulator import Simulator, repair_slate, topic_interest

__version__ = "0.1.0"

ENV_IDS: dict[str, str] = {
    preset: "simenv/Rec" + "".join(part.capitalize() for part in preset.split("_") if preset != "default") + "-v1"
    for preset in PRESETS
}
"""Preset name -> registered environment id."""

FLAT_ENV_IDS: dict[str, str] = {preset: env_id.replace("-v1", "Flat-v1") for preset, env_id in ENV_IDS.items()}
"""Preset name -> registered id of its flat face (:class:`simenv.wrappers.FlatRecEnv`: a flat
``Box`` observation for ``MlpPolicy`` learners; ``gymnasium.make_vec`` with ``"sync"`` or
``"async"`` vectorizes it)."""

for _preset, _env_id in ENV_IDS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="simenv.envs:RecEnv",
            vector_entry_point="simenv.envs:RecVectorEnv",
            kwargs={"preset": _preset},
        )
    if FLAT_ENV_IDS[_preset] not in registry:
        register(id=FLAT_ENV_IDS[_preset], entry_point="simenv.wrappers:FlatRecEnv", kwargs={"preset": _preset})

__all__ = [
    "ENV_IDS",
    "FLAT_ENV_IDS",
    "PRESETS",
    "CatalogConfig",
    "ChoiceConfig",
    "ConfigError",
    "DynamicsConfig",
    "RecEnv",
    "RecVectorEnv",
    "ResponseConfig",
    "Simulator",
    "UserConfig",
    "WorldConfig",
    "WorldSpec",
    "get_preset",
    "repair_slate",
    "topic_interest",
    "with_overrides",
]
