"""Training curves of the SB3 agents: an SB3 callback feeding a :class:`~agents.training_log.TrainingCurve`."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.training_log import TrainingCurve

SB3_LOSSES = {
    "train/loss": "loss",
    "train/policy_gradient_loss": "policy_loss",
    "train/policy_loss": "policy_loss",
    "train/value_loss": "value_loss",
    "train/approx_kl": "approx_kl",
}
"""SB3 logger keys recorded in the curve, by the curve's column name."""


class CurveCallback(BaseCallback):
    """Per environment step: the rewards and users of the :class:`~agents.sb3_env.SB3RecVecEnv`
    (its ``last_info["user_id"]``); per rollout: the losses and the policy entropy (nats,
    ``-train/entropy_loss``) SB3 logged for the update before it.

    Args:
        curve: the curve to fill.
    """

    def __init__(self, curve: TrainingCurve) -> None:
        super().__init__(verbose=0)
        self.curve = curve

    def _on_step(self) -> bool:
        rewards = np.asarray(self.locals["rewards"], dtype=np.float64)
        info = getattr(self.training_env, "last_info", {}) or {}
        user_id = info.get("user_id", np.arange(len(rewards)))
        self.curve.step(rewards, user_id)
        return True

    def _on_rollout_start(self) -> None:
        values = self.model.logger.name_to_value
        noted = {name: values[key] for key, name in SB3_LOSSES.items() if key in values}
        if "train/entropy_loss" in values:
            noted["entropy"] = -values["train/entropy_loss"]
        self.curve.note(**noted)

    def _on_training_end(self) -> None:
        self._on_rollout_start()
        self.curve.flush()
