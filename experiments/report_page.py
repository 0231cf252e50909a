"""The report page of a run: paired-difference figures and tables, sweep plots, captions,
the metric glossary and the guardrail verdicts, as ``report.md`` and a responsive,
self-contained ``report.html`` (see ``docs/report.md`` for how to read it).

Statistics: every interval is a two-sided 95% Student-t interval over seeds. A *paired*
interval is computed from the per-seed differences ``arm - baseline`` (common random
numbers: both arms of a pair see the same users and noise), so it is usually much
narrower than the two arms' own between-seed intervals. A difference is marked
significant when its paired interval excludes zero (no correction for multiple
comparisons: read a mark as a pointer, not a verdict; the guardrail verdicts at the top
are corrected).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.glossary import GLOSSARY, METRIC_NOTES, clip_to_bounds, metric_info
from experiments.runner import RunError

VERDICT_FILE = "verdict.json"
"""The guardrail verdicts another command writes into a run directory (format 1)."""

TRAJECTORY_METRICS = (
    "cohort_engagement",
    "reward_per_user_step",
    "interest_entropy",
    "homogenization_cosine",
    "retention",
)
"""Per-window metrics drawn as trajectories (levels and paired differences)."""

SWEEP_METRICS = ("cohort_engagement", "reward_per_user_step", "slate_topic_entropy", "interest_entropy_decline")
"""Metrics drawn against each swept parameter."""


# --------------------------------------------------------------------------- numbers


def format_number(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits for a person: no e-notation, thousands
    separated (``5,989``, ``0.000577``, ``-1.25``); ``"n/a"`` for NaN."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = min(max(digits - 1 - magnitude, 0), 12)
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def interval_text(mean: float, low: float, high: float) -> str:
    """``"mean [low, high]"``, or the mean alone when the interval is a point or undefined."""
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)) or low == high:
        return format_number(mean)
    return f"{format_number(mean)} [{format_number(low)}, {format_number(high)}]"


def clip_intervals(long: pd.DataFrame) -> pd.DataFrame:
    """A copy of a long ``summary_table`` with ``low``/``high`` clipped to each metric's
    range (a share's interval never leaves [0, 1])."""
    out = long.copy()
    out["low"] = [clip_to_bounds(m, v) for m, v in zip(out["metric"], out["low"], strict=True)]
    out["high"] = [clip_to_bounds(m, v) for m, v in zip(out["metric"], out["high"], strict=True)]
    return out


def significance(metric: str, low: float, high: float) -> str:
    """``"better"``/``"worse"`` when the paired interval excludes 0 and the metric has a
    direction, ``"differs"`` when it excludes 0 without one, ``""`` otherwise."""
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 <= high:
        return ""
    info = metric_info(metric)
    if info is None or info.direction == "neither":
        return "differs"
    up = low > 0
    return "better" if up == (info.direction == "higher") else "worse"


SIGN_MARKS = {"better": "▲", "worse": "▼", "differs": "◆", "": ""}
"""Marks of :func:`significance` in the tables."""


def metric_label(metric: str) -> str:
    """``"ctr ↑"``: the metric with its better-direction arrow."""
    info = metric_info(metric)
    return f"{metric} {info.arrow}" if info is not None and info.arrow else metric


# --------------------------------------------------------------------------- labels and colours


def short_world_label(label: str) -> str:
    """A world label for a facet title: ``"dynamics.amplification=0.02"`` ->
    ``"amplification = 0.02"`` (the last part of each swept key)."""
    if not label:
        return "world"
    shown = []
    for part in label.split(", "):
        key, sep, value = part.partition("=")
        shown.append(f"{key.rsplit('.', 1)[-1]} = {value}" if sep else part)
    return ", ".join(shown)


def arm_palette(summary: pd.DataFrame) -> dict[str, Any]:
    """Arm -> colour, never repeated: each agent label gets its own hue (tab10, or husl
    beyond 10 agents) and its swept variants shades of that hue, light to dark in sweep order."""
    import seaborn as sns

    arms = list(dict.fromkeys(summary["arm"]))
    agent_of = dict(zip(summary["arm"], summary["agent"], strict=False))
    agents = list(dict.fromkeys(agent_of[a] for a in arms))
    base = sns.color_palette("tab10" if len(agents) <= 10 else "husl", n_colors=len(agents))
    palette: dict[str, Any] = {}
    for agent, colour in zip(agents, base, strict=True):
        mine = [a for a in arms if agent_of[a] == agent]
        if len(mine) == 1:
            palette[mine[0]] = colour
        else:
            shades = sns.light_palette(colour, n_colors=len(mine) + 2)[2:]
            palette.update(zip(mine, shades, strict=True))
    return palette


def arm_key(summary: pd.DataFrame) -> pd.Series:
    """A row's column in tables and figures: the arm, plus ``@ world`` with several worlds."""
    if summary["world_label"].nunique() > 1:
        return summary["arm"] + " @ " + summary["world_label"].map(short_world_label)
    return summary["arm"]


# --------------------------------------------------------------------------- statistics


def _t_interval(values: np.ndarray) -> tuple[float, float, float]:
    from experiments.report import t_interval

    return t_interval(values)


def paired_windows(windows: pd.DataFrame, baseline_arm: str, metric: str) -> pd.DataFrame:
    """Per window and seed, ``arm - baseline`` of ``metric`` (pairs share world point and
    seed). Returns ``world_label``, ``arm``, ``seed``, ``step_end``, ``diff``."""
    keys = ["world_label", "seed", "window"]
    base = windows.loc[windows["arm"] == baseline_arm, [*keys, metric]]
    merged = windows[windows["arm"] != baseline_arm].merge(base, on=keys, suffixes=("", "__base"))
    merged["diff"] = merged[metric] - merged[f"{metric}__base"]
    return merged[["world_label", "arm", "seed", "step_end", "diff"]]


def band_table(frame: pd.DataFrame, value: str, by: Sequence[str], clip: str | None = None) -> pd.DataFrame:
    """Mean and 95% t-interval over seeds of ``value`` per group ``by`` (clipped to the
    range of metric ``clip`` when given). Returns ``by`` + ``mean``, ``low``, ``high``."""
    rows = []
    for key, group in frame.groupby(list(by), sort=False):
        mean, low, high = _t_interval(group[value].to_numpy())
        if clip is not None:
            low, high = clip_to_bounds(clip, low), clip_to_bounds(clip, high)
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                "mean": mean,
                "low": low,
                "high": high,
            }
        )
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high"])


# --------------------------------------------------------------------------- figures


@dataclass
class Figure:
    """A drawn figure with the caption the report prints under it."""

    name: str
    title: str
    figure: Any
    caption: str


def _plt() -> Any:
    import matplotlib

    if os.environ.get("MPLBACKEND") is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def _legend_below(fig: Any, handles: list[Any], labels: list[str]) -> None:
    ncol = min(4, max(1, len(labels)))
    fig.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize="small", frameon=False
    )


def plot_paired_forest(diffs: pd.DataFrame, metrics: Sequence[str], palette: dict[str, Any]) -> Any:
    """One panel per metric: each arm's mean paired difference against the baseline with
    its paired 95% interval; filled markers where the interval excludes zero."""
    plt = _plt()
    metrics = [m for m in metrics if diffs.loc[diffs["metric"] == m, "diff"].notna().any()]
    rows_per_panel = diffs[["world_label", "arm"]].drop_duplicates()
    labels = list(dict.fromkeys(arm_key(rows_per_panel)))
    ncol = min(3, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    height = max(1.8, 0.32 * len(labels) + 1.0)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.7 * ncol, height * nrow), squeeze=False, sharey=True)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        part = diffs[diffs["metric"] == metric].assign(key=lambda f: arm_key(f))
        for _, row in part.iterrows():
            y = labels.index(row["key"])
            colour = palette.get(row["arm"], "0.3")
            significant = math.isfinite(row["low"]) and not row["low"] <= 0 <= row["high"]
            if math.isfinite(row["low"]):
                ax.plot([row["low"], row["high"]], [y, y], color=colour, linewidth=2)
            ax.plot(row["diff"], y, "o", color=colour, markerfacecolor=colour if significant else "white", markersize=7)
        ax.axvline(0.0, color="0.3", linewidth=1, linestyle="--")
        ax.set_title(metric_label(metric), fontsize="medium")
        ax.set_yticks(range(len(labels)), labels, fontsize="small")
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.tick_params(axis="x", labelsize="small")
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_trajectory(windows: pd.DataFrame, metric: str, baseline_arm: str | None, palette: dict[str, Any]) -> Any:
    """Left: ``metric`` per window, mean over seeds with the between-seed 95% band (clipped
    to the metric's range). Right (with a baseline): the paired difference ``arm -
    baseline`` per window with its paired 95% band. One row per world point."""
    plt = _plt()
    worlds = list(dict.fromkeys(windows["world_label"]))
    ncol = 2 if baseline_arm is not None else 1
    fig, axes = plt.subplots(len(worlds), ncol, figsize=(5.4 * ncol, 3.1 * len(worlds)), squeeze=False, sharex=True)
    levels = band_table(windows, metric, ["world_label", "arm", "step_end"], clip=metric)
    diffs = None
    if baseline_arm is not None:
        paired = paired_windows(windows, baseline_arm, metric)
        diffs = band_table(paired, "diff", ["world_label", "arm", "step_end"])
    handles: dict[str, Any] = {}
    for row, world in enumerate(worlds):
        panels = [(axes[row, 0], levels, metric_label(metric))]
        if diffs is not None:
            panels.append((axes[row, 1], diffs, f"{metric} − {baseline_arm} (paired)"))
        for ax, table, ylabel in panels:
            part = table[table["world_label"] == world]
            for arm, line in part.groupby("arm", sort=False):
                colour = palette.get(arm, "0.3")
                (h,) = ax.plot(line["step_end"], line["mean"], color=colour, linewidth=1.6)
                ax.fill_between(line["step_end"], line["low"], line["high"], color=colour, alpha=0.2, linewidth=0)
                handles.setdefault(arm, h)
            ax.set_ylabel(ylabel, fontsize="small")
            title = short_world_label(world) if len(worlds) > 1 else ""
            ax.set_title(title, fontsize="small")
        if diffs is not None:
            axes[row, 1].axhline(0.0, color="0.3", linewidth=1, linestyle="--")
    for ax in axes[-1]:
        ax.set_xlabel("step (window end)")
    fig.tight_layout()
    _legend_below(fig, list(handles.values()), list(handles))
    return fig


def swept_columns(summary: pd.DataFrame) -> list[str]:
    """``world.*``/``agents.*`` columns that take more than one value in the run."""
    return [c for c in summary.columns if c.startswith(("world.", "agents.")) and summary[c].dropna().nunique() > 1]


def _without(label: str, key: str) -> str:
    """A ``k=v, k2=v2`` label without the ``key=...`` entry."""
    return ", ".join(p for p in label.split(", ") if p and not p.startswith(f"{key}="))


def plot_sweep(summary: pd.DataFrame, column: str, metrics: Sequence[str], palette: dict[str, Any]) -> Any:
    """Each metric against the swept parameter ``column`` (mean over seeds, 95% t-interval
    whiskers clipped to the metric's range); one line per other setting (world point or
    arm), arms that do not vary with the parameter as dashed horizontal references."""
    plt = _plt()
    metrics = [m for m in metrics if m in summary and summary[m].notna().any()]
    frame = summary.copy()
    if column.startswith("agents."):
        param = column.split(".", 2)[2]
        rows = frame[frame[column].notna()]
        line_key = rows["agent"] + rows["variant"].map(
            lambda v: f" [{_without(v, param)}]" if _without(v, param) else ""
        )
        refs = frame[frame[column].isna()]
    else:
        param = column.split(".", 1)[1]
        rows = frame
        line_key = rows["arm"]
        refs = frame.iloc[0:0]
    worlds = rows["world_label"].map(lambda w: _without(w, param))
    several_worlds = worlds.nunique() > 1
    rows = rows.assign(line=line_key + (" @ " + worlds.map(short_world_label) if several_worlds else ""))
    ncol = min(2, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.4 * ncol, 3.3 * nrow), squeeze=False)
    lines = list(dict.fromkeys(rows["line"]))
    import seaborn as sns

    colours = dict(
        zip(lines, sns.color_palette("tab10" if len(lines) <= 10 else "husl", n_colors=len(lines)), strict=True)
    )
    handles: dict[str, Any] = {}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        table = band_table(rows, metric, ["line", column], clip=metric).sort_values(["line", column])
        for line, part in table.groupby("line", sort=False):
            x = part[column].astype(float).to_numpy()
            err = [part["mean"] - part["low"], part["high"] - part["mean"]]
            h = ax.errorbar(x, part["mean"], yerr=err, color=colours[line], marker="o", capsize=3, linewidth=1.5)
            handles.setdefault(line, h)
        for arm, group in refs.groupby("arm", sort=False):
            key = arm + (f" @ {short_world_label(group['world_label'].iloc[0])}" if several_worlds else "")
            mean = float(group[metric].mean())
            h = ax.axhline(mean, color=palette.get(arm, "0.4"), linestyle="--", linewidth=1)
            handles.setdefault(f"{key} (not swept)", h)
        ax.set_xlabel(param)
        ax.set_ylabel(metric_label(metric), fontsize="small")
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    _legend_below(fig, list(handles.values()), list(handles))
    return fig


def plot_scatter(summary: pd.DataFrame, x: str, y: str, palette: dict[str, Any]) -> Any:
    """One point per arm (and world point) at the seed means, with between-seed 95%
    whiskers on both axes clipped to the metrics' ranges; swept variants of an agent joined."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    markers = dict(zip(summary["world_label"].unique(), "osD^vP*Xph", strict=False))
    joined: dict[tuple[str, str], list[tuple[float, float]]] = {}
    handles: dict[str, Any] = {}
    for (world, arm), group in summary.groupby(["world_label", "arm"], sort=False):
        mx, xl, xh = _t_interval(group[x].to_numpy())
        my, yl, yh = _t_interval(group[y].to_numpy())
        xl, xh = clip_to_bounds(x, xl), clip_to_bounds(x, xh)
        yl, yh = clip_to_bounds(y, yl), clip_to_bounds(y, yh)
        h = ax.errorbar(
            mx,
            my,
            xerr=[[mx - xl], [xh - mx]],
            yerr=[[my - yl], [yh - my]],
            fmt=markers.get(world, "o"),
            color=palette.get(arm, "0.3"),
            capsize=3,
        )
        label = f"{arm} @ {short_world_label(world)}" if len(markers) > 1 else arm
        handles.setdefault(label, h)
        joined.setdefault((world, group["agent"].iloc[0]), []).append((mx, my))
    for points in joined.values():
        if len(points) > 1:
            ax.plot(*zip(*points, strict=True), color="0.6", linewidth=1, zorder=0)
    ax.set(xlabel=metric_label(x), ylabel=metric_label(y))
    ax.legend(list(handles.values()), list(handles), fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


BETWEEN_SEEDS = (
    "Bands and whiskers: 95% Student-t intervals of the mean over seeds (between-seed spread), "
    "clipped to the metric's range."
)
PAIRED = (
    "Paired bands: 95% Student-t intervals of the mean per-seed difference arm − baseline (common "
    "random numbers: same users and noise), the interval that decides whether two arms differ."
)


def draw_report_figures(
    run: Any, baseline_arm: str | None, diffs: pd.DataFrame | None
) -> tuple[list[Figure], list[str]]:
    """Every figure of the report, in order, with captions; and the lines that say which
    figures were left out and why."""
    from experiments.report import KEY_METRICS, figure_notes, plot_retention

    summary, windows = run.summary, run.windows
    palette = arm_palette(summary)
    figures: list[Figure] = []
    notes = list(figure_notes(run).values())
    no_retention = "retention" in figure_notes(run)
    if diffs is not None and not diffs.empty:
        metrics = [m for m in KEY_METRICS if m in set(diffs["metric"])]
        figures.append(
            Figure(
                "paired_differences",
                f"Paired differences against {baseline_arm}",
                plot_paired_forest(diffs, metrics, palette),
                f"Each arm's mean difference from the baseline {baseline_arm} over seeds (dot) with its paired 95% "
                "interval (line); a filled dot's interval excludes zero. ↑/↓: higher/lower is better. " + PAIRED,
            )
        )
    for metric in TRAJECTORY_METRICS:
        if metric not in windows or (metric == "retention" and no_retention):
            continue
        if metric == "reward_per_user_step" and _same_columns(windows, metric, "cohort_engagement"):
            continue  # without churn both count the same users: one figure is enough
        data = _survival_from_one(windows) if metric == "retention" else windows
        fig = plot_trajectory(data, metric, baseline_arm, palette)
        info = GLOSSARY.get(metric)
        right = f" Right: difference from {baseline_arm}. {PAIRED}" if baseline_arm else ""
        figures.append(
            Figure(
                f"trajectory_{metric}",
                f"{metric} over time",
                fig,
                f"Left: {info.definition if info else metric}, per window of steps. {BETWEEN_SEEDS}{right}",
            )
        )
    if _same_columns(windows, "reward_per_user_step", "cohort_engagement"):
        notes.append(
            "Engagement per user-step trajectory left out: it equals cohort engagement in every window (no churn)."
        )
    for column in swept_columns(summary):
        figures.append(
            Figure(
                f"sweep_{re.sub(r'[^A-Za-z0-9]+', '_', column)}",
                f"Metrics against {column}",
                plot_sweep(summary, column, SWEEP_METRICS, palette),
                f"Each metric against the swept parameter {column}: mean over seeds with 95% Student-t whiskers "
                "(between seeds, clipped to the metric's range); dashed lines are arms that do not vary with it.",
            )
        )
    for x, y, title in (
        ("exploration_rate", "reward_per_user_step", "Exploration vs engagement"),
        ("intra_list_diversity", "reward_per_user_step", "Diversity vs engagement"),
    ):
        if x in summary and y in summary:
            caption = f"One point per arm at its mean over seeds. {BETWEEN_SEEDS}"
            if x in METRIC_NOTES:
                caption += " " + METRIC_NOTES[x]
            figures.append(
                Figure(title.lower().replace(" ", "_"), title, plot_scatter(summary, x, y, palette), caption)
            )
    if not no_retention and "retention" in windows and "retention" not in TRAJECTORY_METRICS:
        figures.append(Figure("retention", "Survival", plot_retention(run), BETWEEN_SEEDS))
    figures += training_report_figures(run)
    return figures, notes


def training_report_figures(run: Any) -> list[Figure]:
    """The training curves of the agents that trained before serving (none if no agent trained)."""
    from experiments.report_training import training_figures

    return [
        Figure(
            name,
            "Training curves",
            figure,
            "What each training agent saw while it trained (on its own separately seeded world), against "
            f"training user-steps: one panel per recorded quantity, one line per arm. {BETWEEN_SEEDS}",
        )
        for name, figure in training_figures(run).items()
    ]


def _survival_from_one(windows: pd.DataFrame) -> pd.DataFrame:
    """``windows`` plus a first row per run at step 0 with retention 1 (the survival curve's start)."""
    runs = [c for c in ("world", "world_label", "arm", "seed") if c in windows]
    start = windows.drop_duplicates(runs).assign(step_end=0, window=-1, retention=1.0)
    return pd.concat([start, windows], ignore_index=True)


def _same_columns(frame: pd.DataFrame, a: str, b: str) -> bool:
    """Whether columns ``a`` and ``b`` exist and agree in every row (to rounding)."""
    return a in frame and b in frame and bool(np.allclose(frame[a], frame[b], equal_nan=True))


# --------------------------------------------------------------------------- verdicts


def load_verdict(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``verdict.json`` (format 1), None if absent.

    Raises:
        RunError: the file exists but is not valid JSON of format 1.
    """
    path = run_dir / VERDICT_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunError(f"{path} is not valid JSON ({err}); rerun the vetting to rewrite it") from None
    if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(data.get("guardrails"), list):
        raise RunError(f"{path} is not a format-1 verdict (want keys format=1, overall, guardrails: [...])")
    return data


def _threshold_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_number(float(v)) for v in value) + "]"
    return format_number(float(value)) if value is not None else ""


def verdict_rows(verdict: dict[str, Any]) -> list[dict[str, str]]:
    """One display row per guardrail of a verdict."""
    rows = []
    for g in verdict["guardrails"]:
        relative = g.get("kind") == "relative"
        against = f" vs {g['baseline']}" if g.get("baseline") else ""
        rule = f"{'change' if relative else 'value'}{against} {g.get('op', '')} {_threshold_text(g.get('threshold'))}"
        needed = g.get("seeds_needed")
        rows.append(
            {
                "verdict": str(g.get("verdict", "")).upper(),
                "metric": metric_label(str(g.get("metric", ""))),
                "arm": str(g.get("arm", "")),
                "guardrail": rule,
                "estimate": format_number(float(g["estimate"])) if g.get("estimate") is not None else "n/a",
                "bound": _threshold_text(g.get("bound")),
                "seeds": f"{g.get('seeds', '')}" + (f" (need {needed})" if needed else ""),
                "explanation": str(g.get("explanation", "")),
            }
        )
    return rows


def verdict_heading(verdict: dict[str, Any]) -> str:
    level = verdict.get("level", 0.95)
    correction = verdict.get("correction") or "no"
    return (
        f"Guardrails: overall **{str(verdict.get('overall', '?')).upper()}** "
        f"({format_number(100 * float(level))}% level, {correction} correction for multiple guardrails)"
    )


# --------------------------------------------------------------------------- tables


def summary_cells(long: pd.DataFrame) -> tuple[list[str], list[str], list[list[str]]]:
    """A long ``summary_table`` as (row labels, column labels, cells ``mean [low, high]``),
    intervals clipped to each metric's range, metrics as rows with their direction arrow."""
    frame = clip_intervals(long).assign(column=lambda f: arm_key(f))
    metrics = list(dict.fromkeys(frame["metric"]))
    columns = list(dict.fromkeys(frame["column"]))
    lookup = {(r.metric, r.column): interval_text(r.mean, r.low, r.high) for r in frame.itertuples()}
    cells = [[lookup.get((m, c), "") for c in columns] for m in metrics]
    return [metric_label(m) for m in metrics], columns, cells


def difference_cells(diffs: pd.DataFrame) -> tuple[list[str], list[str], list[list[tuple[str, str]]]]:
    """Paired differences as (row labels, column labels, cells (text, significance))."""
    frame = diffs.assign(column=lambda f: arm_key(f))
    metrics = list(dict.fromkeys(frame["metric"]))
    columns = list(dict.fromkeys(frame["column"]))
    lookup = {}
    for r in frame.itertuples():
        sign = significance(r.metric, r.low, r.high)
        text = interval_text(r.diff, r.low, r.high)
        lookup[(r.metric, r.column)] = (f"{text} {SIGN_MARKS[sign]}".rstrip(), sign)
    cells = [[lookup.get((m, c), ("", "")) for c in columns] for m in metrics]
    return [metric_label(m) for m in metrics], columns, cells


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(corner: str, rows: list[str], columns: list[str], cells: list[list[str]]) -> str:
    """A single-header GitHub Markdown table."""
    lines = ["| " + " | ".join(_md_escape(c) for c in [corner, *columns]) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += ["| " + " | ".join(_md_escape(c) for c in [r, *row]) + " |" for r, row in zip(rows, cells, strict=True)]
    return "\n".join(lines)


def html_table(
    corner: str,
    rows: list[str],
    columns: list[str],
    cells: list[list[str]],
    classes: list[list[str]] | None = None,
    table_id: str = "",
) -> str:
    """A single-header HTML table inside a horizontally scrolling wrapper (the page itself
    never scrolls sideways)."""
    e = html.escape
    head = "".join(f"<th scope='col'>{e(c)}</th>" for c in [corner, *columns])
    body = []
    for i, (label, row) in enumerate(zip(rows, cells, strict=True)):
        tds = "".join(
            f"<td class='{e(classes[i][j])}'>{e(c)}</td>" if classes and classes[i][j] else f"<td>{e(c)}</td>"
            for j, c in enumerate(row)
        )
        body.append(f"<tr><th scope='row'>{e(label)}</th>{tds}</tr>")
    ident = f" id='{e(table_id)}'" if table_id else ""
    return (
        f"<div class='scroll'><table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def metric_notes(metrics: Sequence[str]) -> list[str]:
    """The caveats (regret, exploration rate) of the metrics shown."""
    return [f"{m}: {METRIC_NOTES[m]}" for m in METRIC_NOTES if m in metrics]


# --------------------------------------------------------------------------- page


@dataclass
class Page:
    """Everything the report shows, before rendering."""

    title: str
    header: list[str]
    verdict: dict[str, Any] | None
    summary: tuple[list[str], list[str], list[list[str]]]
    diff_note: str
    diffs: tuple[list[str], list[str], list[list[tuple[str, str]]]] | None
    notes: list[str]
    figures: list[Figure]
    figure_notes: list[str]
    glossary: list[dict[str, str]]
    provenance: dict[str, Any]


SUMMARY_HEADING = "Summary: mean [95% interval] over seeds"
DIFF_HEADING = "Paired differences against the baseline"
SIGN_LEGEND = (
    "▲ better / ▼ worse than the baseline (paired 95% interval excludes zero, by the metric's direction); "
    "◆ differs, no better direction; unmarked: the interval includes zero. ↑/↓ after a metric: higher/lower is better."
)


def render_markdown(page: Page, images: dict[str, str]) -> str:
    """``report.md``; ``images`` maps a figure name to its relative PNG path."""
    parts = [f"# {page.title}", "", *page.header, ""]
    if page.verdict is not None:
        rows = verdict_rows(page.verdict)
        parts += ["## " + verdict_heading(page.verdict).replace("**", ""), ""]
        if rows:
            cols = [k for k in rows[0] if k != "verdict"]
            parts += [
                markdown_table("verdict", [r["verdict"] for r in rows], cols, [[r[c] for c in cols] for r in rows]),
                "",
            ]
    parts += [f"## {SUMMARY_HEADING}", "", markdown_table("metric", *page.summary), ""]
    parts += [f"- {n}" for n in page.notes] + ([""] if page.notes else [])
    parts += [f"## {DIFF_HEADING}", "", page.diff_note, ""]
    if page.diffs is not None:
        rows, cols, cells = page.diffs
        parts += [markdown_table("metric", rows, cols, [[c[0] for c in row] for row in cells]), "", SIGN_LEGEND, ""]
    parts += ["## Figures", ""]
    for fig in page.figures:
        parts += [f"### {fig.title}", "", f"![{fig.title}]({images[fig.name]})", "", f"*{fig.caption}*", ""]
    parts += [f"- {n}" for n in page.figure_notes] + ([""] if page.figure_notes else [])
    parts += ["## Metric glossary", ""]
    cols = ["definition", "unit", "better", "range", "source"]
    parts += [
        markdown_table(
            "metric", [r["metric"] for r in page.glossary], cols, [[r[c] for c in cols] for r in page.glossary]
        ),
        "",
    ]
    return "\n".join(parts)


CSS = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em 1.5em; max-width: 1200px;
       color: #222; line-height: 1.4; }
.scroll { max-width: 100%; overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }
thead th { background: #f3f3f3; position: sticky; top: 0; }
tbody th { text-align: left; font-weight: normal; font-family: ui-monospace, monospace; background: #fafafa; }
td.better { background: #e3f4e3; font-weight: 600; } td.worse { background: #fbe3e3; font-weight: 600; }
td.differs { background: #eef; font-weight: 600; }
td.PASS { background: #e3f4e3; font-weight: 600; } td.FAIL { background: #fbe3e3; font-weight: 600; }
td.INCONCLUSIVE { background: #fff5d6; font-weight: 600; }
table.glossary td { white-space: normal; text-align: left; min-width: 8em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 0.9em; color: #444; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.8em; background: #f7f7f7; padding: 0.6em; }
.note { color: #444; font-size: 0.9em; }
.verdict-pass { color: #1a7f37; } .verdict-fail { color: #b42318; } .verdict-inconclusive { color: #9a6700; }
"""


def _inline(text: str) -> str:
    """Escape ``text`` and render its ``**bold**`` and ```code``` spans."""
    out = html.escape(text)
    for mark, tag in (("**", "b"), ("`", "code")):
        pieces = out.split(mark)
        out = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(pieces))
    return out


def render_html(page: Page, images: dict[str, str]) -> str:
    """``report.html``, self-contained; ``images`` maps a figure name to base64 PNG data."""
    e = html.escape
    body = [f"<h1>{e(page.title)}</h1>", *(f"<p>{_inline(line)}</p>" for line in page.header)]
    if page.verdict is not None:
        overall = str(page.verdict.get("overall", "")).lower()
        body.append(f"<h2 id='verdict' class='verdict-{e(overall)}'>{_inline(verdict_heading(page.verdict))}</h2>")
        rows = verdict_rows(page.verdict)
        if rows:
            cols = [k for k in rows[0] if k != "verdict"]
            cells = [[r[c] for c in cols] for r in rows]
            body.append(
                html_table("verdict", [r["verdict"] for r in rows], cols, cells, table_id="verdicts")
                .replace("<th scope='row'>PASS", "<th scope='row' class='verdict-pass'>PASS")
                .replace("<th scope='row'>FAIL", "<th scope='row' class='verdict-fail'>FAIL")
                .replace("<th scope='row'>INCONCLUSIVE", "<th scope='row' class='verdict-inconclusive'>INCONCLUSIVE")
            )
    body += [f"<h2>{e(SUMMARY_HEADING)}</h2>", html_table("metric", *page.summary, table_id="summary")]
    body += [f"<p class='note'>{e(n)}</p>" for n in page.notes]
    body += [f"<h2>{e(DIFF_HEADING)}</h2>", f"<p>{e(page.diff_note)}</p>"]
    if page.diffs is not None:
        rows, cols, cells = page.diffs
        body.append(
            html_table(
                "metric",
                rows,
                cols,
                [[c[0] for c in row] for row in cells],
                [[c[1] for c in row] for row in cells],
                "differences",
            )
        )
        body.append(f"<p class='note'>{e(SIGN_LEGEND)}</p>")
    body.append("<h2>Figures</h2>")
    for fig in page.figures:
        body.append(
            f"<figure id='{e(fig.name)}'><h3>{e(fig.title)}</h3>"
            f"<img alt='{e(fig.title)}' src='data:image/png;base64,{images[fig.name]}'>"
            f"<figcaption>{e(fig.caption)}</figcaption></figure>"
        )
    body += [f"<p class='note'>{e(n)}</p>" for n in page.figure_notes]
    cols = ["definition", "unit", "better", "range", "source"]
    glossary = html_table(
        "metric",
        [r["metric"] for r in page.glossary],
        cols,
        [[r[c] for c in cols] for r in page.glossary],
        table_id="glossary",
    )
    body += [
        "<h2>Metric glossary</h2>",
        glossary.replace("<table id='glossary'>", "<table id='glossary' class='glossary'>"),
    ]
    body.append(f"<h2>Provenance</h2><pre>{e(json.dumps(page.provenance, indent=2))}</pre>")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(page.title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )


def figure_png(fig: Any, dpi: int) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def encode_png(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write ``path`` through a temporary file and a rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    tmp.replace(path)
