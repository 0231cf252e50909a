"""Training curves: what an agent saw while it trained, one row per interval.

Agents that train before serving (:class:`agents.base.Trainable`) keep a
:class:`TrainingCurve` in their ``training_curve`` attribute; the runner writes its rows as
the task's ``training`` table (:mod:`experiments.runner`) and the report draws them
(:mod:`experiments.report_training`).

Columns of every row:

* ``step``: user-steps of training so far (summed over the training world's sessions) at
  the end of the interval.
* ``reward_per_user_step``: mean reward per user-step over the interval (minutes or clicks).
* ``cohort_engagement``: reward earned over the interval by the training world's starting
  cohort (the users of its first step), per cohort user per step; a churned user counts 0
  (as :func:`experiments.metrics.cohort_engagement` on the evaluated run).
* further numbers an agent reports per step (policy entropy in nats, losses), averaged
  over the interval; NaN where the agent reported none in it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

CURVE_POINTS = 50
"""Rows a curve aims at over a whole training run."""


class TrainingCurve:
    """Accumulates per-step training signals into one row per ``interval`` environment steps.

    Args:
        total_steps: environment steps (batches of B user-steps) the training will take;
            the interval is ``ceil(total_steps / CURVE_POINTS)``.
    """

    def __init__(self, total_steps: int) -> None:
        self.interval = max(1, math.ceil(int(total_steps) / CURVE_POINTS))
        self.rows: list[dict[str, float]] = []
        self._cohort: np.ndarray | None = None
        self._user_steps = 0
        self._reset_interval()

    def _reset_interval(self) -> None:
        self._steps = 0
        self._reward = 0.0
        self._count = 0
        self._cohort_reward = 0.0
        self._extra: dict[str, list[float]] = {}

    def step(self, rewards: np.ndarray, user_id: np.ndarray, **extra: float) -> None:
        """Add one environment step.

        Args:
            rewards: (B,) reward of each session this step.
            user_id: (B,) user of each session this step (the first call's users are the cohort).
            extra: named numbers of this step (entropy, losses); NaN values are skipped.
        """
        rewards = np.asarray(rewards, dtype=np.float64)
        user_id = np.asarray(user_id)
        if self._cohort is None:
            self._cohort = np.unique(user_id)
        self._steps += 1
        self._user_steps += len(rewards)
        self._reward += float(rewards.sum())
        self._count += len(rewards)
        self._cohort_reward += float(rewards[np.isin(user_id, self._cohort, assume_unique=False)].sum())
        for key, value in extra.items():
            if value is not None and math.isfinite(float(value)):
                self._extra.setdefault(key, []).append(float(value))
        if self._steps >= self.interval:
            self.flush()

    def note(self, **extra: float) -> None:
        """Add named numbers that arrive between steps (e.g. an SB3 update's losses) to the current interval."""
        for key, value in extra.items():
            if value is not None and math.isfinite(float(value)):
                self._extra.setdefault(key, []).append(float(value))

    def add_row(self, **values: float) -> None:
        """Append a whole row (for training that does not step a world, e.g. fitting logs);
        ``step`` counts what that training counts (logged events)."""
        self.flush()
        self.rows.append({key: float(value) for key, value in values.items()})

    def flush(self) -> None:
        """Close the current interval as a row (nothing if it holds no step)."""
        if not self._steps:
            return
        n_cohort = len(self._cohort) if self._cohort is not None else 0
        row: dict[str, float] = {
            "step": float(self._user_steps),
            "reward_per_user_step": self._reward / max(self._count, 1),
            "cohort_engagement": self._cohort_reward / (n_cohort * self._steps) if n_cohort else math.nan,
        }
        row.update({key: float(np.mean(values)) for key, values in self._extra.items()})
        self.rows.append(row)
        self._reset_interval()

    def columns(self) -> dict[str, list[float]]:
        """The rows as columns (every key of any row; NaN where a row lacks it)."""
        keys: list[str] = []
        for row in self.rows:
            keys += [key for key in row if key not in keys]
        return {key: [row.get(key, math.nan) for row in self.rows] for key in keys}


def curve_rows(agent: Any) -> list[dict[str, float]]:
    """The training curve rows of ``agent`` (empty if it kept none)."""
    curve = getattr(agent, "training_curve", None)
    return list(curve.rows) if isinstance(curve, TrainingCurve) else []
