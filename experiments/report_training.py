"""Training curves in the report: what the agents that trained saw while they trained.

Reads ``training.parquet`` of a run (:mod:`experiments.runner`; rows from
:mod:`agents.training_log`) and draws one panel per recorded quantity (reward per user-step,
cohort engagement, policy entropy, losses) against training user-steps, one line per arm,
95% t-bands over seeds.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from experiments.runner import ID_COLUMNS, TRAINING

CURVE_ORDER = ("reward_per_user_step", "cohort_engagement", "entropy", "td_loss", "policy_loss", "value_loss", "loss")
"""Panels first in this order, then any other recorded column."""

_NOT_CURVES = frozenset({*ID_COLUMNS, "task", "step"})


def load_training(run_path: Any) -> pd.DataFrame | None:
    """The run's merged training curves, or None if no agent trained."""
    path = run_path / TRAINING
    return pd.read_parquet(path) if path.exists() else None


def curve_columns(curves: pd.DataFrame) -> list[str]:
    """The recorded quantities of ``curves`` that hold a number somewhere, in :data:`CURVE_ORDER` first."""
    present = [c for c in curves.columns if c not in _NOT_CURVES and curves[c].notna().any()]
    present = [c for c in present if pd.api.types.is_numeric_dtype(curves[c])]
    return [c for c in CURVE_ORDER if c in present] + [c for c in present if c not in CURVE_ORDER]


def plot_training(curves: pd.DataFrame) -> Any:
    """One panel per quantity (y scales apart) against training user-steps; lines per arm, 95% t-bands over seeds."""
    from experiments.report import _seaborn, t_band

    sns = _seaborn()
    columns = curve_columns(curves)
    long = curves.melt(id_vars=["arm", "seed", "step"], value_vars=columns, var_name="quantity").dropna()
    grid = sns.relplot(
        data=long,
        x="step",
        y="value",
        hue="arm",
        col="quantity",
        col_order=columns,
        col_wrap=min(3, len(columns)),
        kind="line",
        errorbar=t_band,
        height=3.0,
        aspect=1.3,
        facet_kws={"sharey": False},
    )
    grid.set_axis_labels("training user-steps", "")
    grid.set_titles("{col_name}")
    grid.figure.suptitle("Training curves", y=1.03)
    return grid.figure


def training_figures(run: Any) -> dict[str, Any]:
    """``{"training": figure}`` for a run whose agents trained; empty otherwise."""
    curves = load_training(run.path)
    if curves is None or curves.empty or not curve_columns(curves):
        return {}
    return {"training": plot_training(curves)}
