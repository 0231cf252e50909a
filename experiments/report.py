"""Figures, tables and reports of a run directory (see :mod:`experiments.runner`).

* :func:`load_run` reads a run (manifest, per-window and per-run tables).
* :func:`summary_table` gives the mean and 95% CI per arm and metric over seeds;
  :func:`paired_differences` the seed-paired differences against a baseline agent (common
  random numbers make the pairs share users and noise, so the paired CI is narrow).
* ``plot_*`` draw the seaborn figures, bands are 95% t-intervals over seeds.
* :func:`write_report` writes ``figures/*.png``, ``report.md`` and a self-contained
  ``report.html`` (images embedded as base64; page content in :mod:`experiments.report_page`,
  how to read it in ``docs/report.md``); :func:`compare_runs` compares two runs.

An *arm* is an agent label plus its swept parameters (``"vw_epsilon [epsilon=0.1]"``);
``world_label`` names a world grid point (empty without a world sweep).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.runner import ID_COLUMNS, MANIFEST, SUMMARY, WINDOWS, RunError, load_manifest

KEY_METRICS = (
    "cohort_engagement",
    "reward_per_user_step",
    "ctr",
    "regret",
    "exploration_rate",
    "slate_topic_entropy",
    "catalog_coverage",
    "interest_entropy_decline",
    "homogenization_cosine",
    "retention",
)
"""The metrics printed after a run and compared by ``bubblegym compare``. The long-run
headline comes first: ``cohort_engagement`` counts a user who churned as zero from then on
(``reward_per_user_step`` counts the newcomers who take churned users' places)."""

NON_METRICS = frozenset(
    {*ID_COLUMNS, "task", "world_seed", "params", "window", "step_start", "step_end"}
    | {"user_steps", "train_time_s", "wall_time_s"}
)
"""Columns of the result tables that are not metrics."""


@dataclass
class RunData:
    """A run directory in memory.

    Attributes:
        path: the directory. manifest: its manifest.json.
        windows: per-window metrics, one row per (task, window).
        summary: per-run summary, one row per task.
    """

    path: Path
    manifest: dict[str, Any]
    windows: pd.DataFrame
    summary: pd.DataFrame

    @property
    def metrics(self) -> list[str]:
        """Metric columns of the summary table."""
        return metric_columns(self.summary)

    @property
    def arms(self) -> list[str]:
        return list(dict.fromkeys(self.summary["arm"]))


def load_run(run_dir: str | Path) -> RunData:
    """Read a finished run directory.

    Raises:
        RunError: not a run directory, or the run has not finished (merged tables missing).
    """
    path = Path(run_dir)
    manifest = load_manifest(path)
    if manifest.get("status") != "complete" or not (path / SUMMARY).exists() or not (path / WINDOWS).exists():
        raise RunError(f"{path} has no merged {SUMMARY}/{WINDOWS}: the run did not finish; rerun it to resume")
    return RunData(path, manifest, pd.read_parquet(path / WINDOWS), pd.read_parquet(path / SUMMARY))


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric metric columns (not identifiers, sweep columns or timings)."""
    return [
        col
        for col in frame.columns
        if col not in NON_METRICS
        and not col.startswith(("world.", "agents."))
        and pd.api.types.is_numeric_dtype(frame[col])
    ]


# --------------------------------------------------------------------------- statistics


def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of independent values.

    ``mean +- t_{(1+level)/2, n-1} s / sqrt(n)``; with one value the interval is the point;
    NaNs are ignored (all NaN gives NaNs).

    Returns:
        ``(mean, low, high)``.
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(x.mean())
    if x.size == 1:
        return (mean, mean, mean)
    half = float(stats.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return (mean, mean - half, mean + half)


def t_band(values: np.ndarray) -> tuple[float, float]:
    """seaborn ``errorbar`` callable: the 95% t-interval over seeds."""
    _, low, high = t_interval(values)
    return (low, high)


def summary_table(summary: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and 95% CI over seeds per world point, arm and metric.

    Returns:
        Long table: ``world_label``, ``arm``, ``metric``, ``mean``, ``low``, ``high``, ``n``.
    """
    metrics = list(metrics) if metrics is not None else metric_columns(summary)
    rows = []
    for (world, arm), group in summary.groupby(["world_label", "arm"], sort=False):
        for metric in metrics:
            if metric not in group:
                continue
            mean, low, high = t_interval(group[metric].to_numpy())
            rows.append(
                {
                    "world_label": world,
                    "arm": arm,
                    "metric": metric,
                    "mean": mean,
                    "low": low,
                    "high": high,
                    "n": len(group),
                }
            )
    return pd.DataFrame(rows, columns=["world_label", "arm", "metric", "mean", "low", "high", "n"])


def paired_differences(
    summary: pd.DataFrame, baseline: str = "random", metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per arm and metric, the mean seed-paired difference ``arm - baseline`` with a 95% CI.

    Pairs share a world point and a seed, hence the same users and noise (common random
    numbers). ``baseline`` is an agent label (one variant) or an arm name.

    Returns:
        Long table: ``world_label``, ``arm``, ``metric``, ``diff``, ``low``, ``high``,
        ``pairs``.

    Raises:
        RunError: the baseline is not in the run or is swept (ambiguous).
    """
    metrics = list(metrics) if metrics is not None else metric_columns(summary)
    base = summary[(summary["arm"] == baseline) | ((summary["agent"] == baseline) & (summary["variant"] == ""))]
    if base.empty:
        raise RunError(f"baseline {baseline!r} is not in this run; choose one of {sorted(set(summary['arm']))}")
    if base["arm"].nunique() > 1:
        raise RunError(f"baseline {baseline!r} names several arms {sorted(set(base['arm']))}; pass one arm name")
    keys = ["world_label", "seed"]
    merged = summary.merge(base[keys + metrics], on=keys, suffixes=("", "__base"))
    merged = merged[merged["arm"] != base["arm"].iloc[0]]
    rows = []
    for (world, arm), group in merged.groupby(["world_label", "arm"], sort=False):
        for metric in metrics:
            diff, low, high = t_interval((group[metric] - group[f"{metric}__base"]).to_numpy())
            rows.append(
                {
                    "world_label": world,
                    "arm": arm,
                    "metric": metric,
                    "diff": diff,
                    "low": low,
                    "high": high,
                    "pairs": len(group),
                }
            )
    return pd.DataFrame(rows, columns=["world_label", "arm", "metric", "diff", "low", "high", "pairs"])


def _cell(mean: float, low: float, high: float, style: str = "interval") -> str:
    """``"mean [low, high]"`` (style ``interval``) or ``"mean ± half-width"`` (style ``pm``),
    numbers without e-notation (:func:`experiments.report_page.format_number`)."""
    from experiments.report_page import format_number

    if not np.isfinite(mean):
        return "n/a"
    if low == high or not (np.isfinite(low) and np.isfinite(high)):
        return format_number(mean)
    if style == "pm":
        return f"{format_number(mean)} ± {format_number((high - low) / 2, 3)}"
    return f"{format_number(mean)} [{format_number(low)}, {format_number(high)}]"


def wide_table(long: pd.DataFrame, value: str = "mean", style: str = "interval") -> pd.DataFrame:
    """Metrics as rows, arms (with world labels when there are several) as columns,
    cells ``"mean [low, high]"`` (or ``"mean ± half-width"`` with ``style="pm"``)."""
    frame = long.copy()
    several_worlds = frame["world_label"].nunique() > 1
    frame["column"] = frame["arm"] + (" @ " + frame["world_label"] if several_worlds else "")
    frame["cell"] = [
        _cell(m, lo, hi, style) for m, lo, hi in zip(frame[value], frame["low"], frame["high"], strict=True)
    ]
    table = frame.pivot(index="metric", columns="column", values="cell")
    return table.reindex(index=list(dict.fromkeys(frame["metric"])), columns=list(dict.fromkeys(frame["column"])))


def format_text_table(table: pd.DataFrame) -> str:
    """A plain-text table (index as the first column) for the terminal."""
    header = [table.index.name or "", *map(str, table.columns)]
    rows = [[str(idx), *map(str, row)] for idx, row in zip(table.index, table.to_numpy(), strict=True)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (index as the first column)."""
    header = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in zip(table.index, table.to_numpy(), strict=True):
        lines.append("| " + " | ".join([str(idx), *map(str, row)]) + " |")
    return "\n".join(lines)


def run_summary_text(run: RunData, metrics: Sequence[str] = KEY_METRICS) -> str:
    """The key metrics per arm (mean ± 95% CI half-width over seeds) as a terminal table."""
    present = [m for m in metrics if m in run.summary]
    table = wide_table(summary_table(run.summary, present), style="pm").T
    table.index.name = "arm"
    return format_text_table(table)


# --------------------------------------------------------------------------- figures


def _seaborn() -> Any:
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return sns


def _line_figure(windows: pd.DataFrame, metric: str, title: str, ylabel: str) -> Any:
    """A metric over time (window end step), one line per arm, 95% t-bands over seeds."""
    sns = _seaborn()
    several = windows["world_label"].nunique() > 1
    grid = sns.relplot(
        data=windows,
        x="step_end",
        y=metric,
        hue="arm",
        kind="line",
        errorbar=t_band,
        col="world_label" if several else None,
        col_wrap=min(3, windows["world_label"].nunique()) if several else None,
        height=3.6,
        aspect=1.5,
        facet_kws={"sharey": True},
    )
    grid.set_axis_labels("step", ylabel)
    grid.figure.suptitle(title, y=1.03)
    return grid.figure


def _scatter_figure(summary: pd.DataFrame, x: str, y: str, title: str, xlabel: str, ylabel: str) -> Any:
    """One point per arm (and world point) at the seed means, with 95% CI whiskers on both axes."""
    sns = _seaborn()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    palette = dict(zip(summary["arm"].unique(), sns.color_palette(n_colors=summary["arm"].nunique()), strict=True))
    markers = dict(zip(summary["world_label"].unique(), "osD^vP*Xph", strict=False))
    means: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for (world, arm), group in summary.groupby(["world_label", "arm"], sort=False):
        mx, xl, xh = t_interval(group[x])
        my, yl, yh = t_interval(group[y])
        means.setdefault((world, group["agent"].iloc[0]), []).append((mx, my))
        label = f"{arm} @ {world}" if len(markers) > 1 else arm
        ax.errorbar(
            mx,
            my,
            xerr=[[mx - xl], [xh - mx]],
            yerr=[[my - yl], [yh - my]],
            fmt=markers.get(world, "o"),
            color=palette[arm],
            capsize=3,
            label=label,
        )
    for points in means.values():  # join the swept variants of one agent
        if len(points) > 1:
            ax.plot(*zip(*points, strict=True), color="0.6", linewidth=1, zorder=0)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_engagement(run: RunData) -> Any:
    """Engagement (reward per user-step) over time per arm."""
    return _line_figure(run.windows, "reward_per_user_step", "Engagement over time", "reward per user-step")


def plot_exploration(run: RunData) -> Any:
    """Exploration rate against engagement, one point per arm."""
    return _scatter_figure(
        run.summary,
        "exploration_rate",
        "reward_per_user_step",
        "Exploration vs engagement",
        "exploration rate",
        "reward per user-step",
    )


def plot_diversity_frontier(run: RunData) -> Any:
    """Intra-list diversity against engagement: the diversity-engagement frontier."""
    return _scatter_figure(
        run.summary,
        "intra_list_diversity",
        "reward_per_user_step",
        "Diversity vs engagement",
        "intra-list diversity",
        "reward per user-step",
    )


def plot_interest_entropy(run: RunData) -> Any:
    """Users' topic-interest entropy over time (a falling line is a narrowing bubble)."""
    return _line_figure(run.windows, "interest_entropy", "Interest entropy over time", "interest entropy (bits)")


def plot_homogenization(run: RunData) -> Any:
    """Mean pairwise cosine of users' interests over time (Chaney et al. 2018)."""
    return _line_figure(
        run.windows, "homogenization_cosine", "Homogenization over time", "mean pairwise cosine of interests"
    )


def plot_retention(run: RunData) -> Any:
    """Survival curve of the starting cohort per arm: the share of the first step's users
    not yet churned (the ``retention`` column at each window's end), from 1 at step 0."""
    windows = run.windows
    runs = [col for col in ("world", "world_label", "arm", "seed") if col in windows]
    start = windows.drop_duplicates(runs).assign(step_end=0, retention=1.0)
    curve = pd.concat([start, windows], ignore_index=True)
    fig = _line_figure(curve, "retention", "Survival of the starting cohort", "share of first users not churned")
    for ax in fig.axes:  # a share: t-bands over few seeds may overshoot [0, 1]
        ax.set_ylim(-0.02, 1.02)
    return fig


def figure_notes(run: RunData) -> dict[str, str]:
    """Figures left out because they would carry no information: name -> one-line reason."""
    notes = {}
    if "retention" in run.windows and run.windows["retention"].eq(1.0).all():
        notes["retention"] = "Retention figure left out: no agent lost a user of the starting cohort (survival 1)."
    return notes


FIGURES: dict[str, tuple[Callable[[RunData], Any], tuple[str, ...]]] = {
    "engagement": (plot_engagement, ("reward_per_user_step",)),
    "exploration_vs_engagement": (plot_exploration, ("exploration_rate", "reward_per_user_step")),
    "diversity_vs_engagement": (plot_diversity_frontier, ("intra_list_diversity", "reward_per_user_step")),
    "interest_entropy": (plot_interest_entropy, ("interest_entropy",)),
    "homogenization": (plot_homogenization, ("homogenization_cosine",)),
    "retention": (plot_retention, ("retention",)),
}
"""Figure name -> (drawing function, metric columns it needs)."""


def draw_figures(run: RunData) -> dict[str, Any]:
    """Every figure whose metrics the run has, except those of :func:`figure_notes`:
    name -> matplotlib Figure."""
    from experiments.report_training import training_figures

    skip = figure_notes(run)
    figures = {
        name: draw(run)
        for name, (draw, needs) in FIGURES.items()
        if name not in skip and all(col in run.windows and col in run.summary for col in needs)
    }
    return {**figures, **training_figures(run)}


# --------------------------------------------------------------------------- reports


@dataclass
class ReportFiles:
    """Paths written by :func:`write_report`."""

    markdown: Path
    html: Path
    figures: dict[str, Path]


def resolve_baseline(summary: pd.DataFrame, baseline: str | None) -> str | None:
    """The arm the report pairs differences against.

    ``baseline`` is an agent label (one variant) or an arm name; None picks ``random`` when
    the run has it, else no baseline (the report then shows no paired differences).

    Raises:
        RunError: an explicit ``baseline`` is not an arm (or unswept agent) of the run, or
            names several arms; the message lists the arms allowed.
    """
    arms = list(dict.fromkeys(summary["arm"]))
    if baseline is None:
        return "random" if "random" in arms else None
    base = summary[(summary["arm"] == baseline) | ((summary["agent"] == baseline) & (summary["variant"] == ""))]
    if base.empty:
        raise RunError(f"baseline {baseline!r} is not an arm of this run; allowed: {', '.join(arms)}")
    if base["arm"].nunique() > 1:
        raise RunError(f"baseline {baseline!r} names several arms {sorted(set(base['arm']))}; pass one arm name")
    return str(base["arm"].iloc[0])


def write_report(run_dir: str | Path, baseline: str | None = None, *, dpi: int = 110) -> ReportFiles:
    """Write ``figures/*.png``, ``report.md`` and a self-contained ``report.html``.

    The page (:mod:`experiments.report_page`) shows the guardrail verdicts when the run
    has a ``verdict.json``, the summary (mean and 95% interval per arm and metric over
    seeds), the seed-paired differences against ``baseline`` with significance marks,
    figures with captions and the metric glossary. Everything is checked before any file
    is written, and each file is replaced atomically, so a bad baseline leaves an earlier
    report intact.

    Raises:
        RunError: the run did not finish, ``baseline`` is not in it (see
            :func:`resolve_baseline`) or its ``verdict.json`` is malformed.
    """
    from experiments import report_page as page_lib
    from experiments.glossary import glossary_rows

    run = load_run(run_dir)
    baseline_arm = resolve_baseline(run.summary, baseline)
    verdict = page_lib.load_verdict(run.path)
    metrics = _ordered_metrics(run.metrics)
    diffs: pd.DataFrame | None = None
    if baseline_arm is None:
        diff_note = f"No paired differences: the run has no random arm; pass --baseline, one of {', '.join(run.arms)}."
    elif run.summary["arm"].nunique() < 2:
        diff_note = "No paired differences: the run has a single arm."
    else:
        diffs = paired_differences(run.summary, baseline_arm, metrics)
        seeds = int(diffs["pairs"].min()) if not diffs.empty else 0
        diff_note = (
            f"Seed-paired differences (arm − {baseline_arm}): mean and paired 95% interval over {seeds} seed pair(s); "
            "pairs share a world point and seed, hence users and noise (common random numbers)."
        )
    figures, fig_notes = page_lib.draw_report_figures(run, baseline_arm, diffs)
    pngs = {fig.name: page_lib.figure_png(fig.figure, dpi) for fig in figures}
    page = page_lib.Page(
        title=f"BubbleGym report: {run.manifest['scenario']['name']}",
        header=_header_lines(run),
        verdict=verdict,
        summary=page_lib.summary_cells(summary_table(run.summary, metrics)),
        diff_note=diff_note,
        diffs=page_lib.difference_cells(diffs) if diffs is not None and not diffs.empty else None,
        notes=page_lib.metric_notes(metrics),
        figures=figures,
        figure_notes=fig_notes,
        glossary=glossary_rows(metrics),
        provenance={k: run.manifest[k] for k in ("versions", "git", "seeds") if k in run.manifest},
    )
    md = page_lib.render_markdown(page, {name: f"figures/{name}.png" for name in pngs})
    text = page_lib.render_html(page, {name: page_lib.encode_png(data) for name, data in pngs.items()})
    folder = run.path / "figures"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.png"):
        if old.stem not in pngs:
            old.unlink()
    paths = {}
    for name, data in pngs.items():
        paths[name] = folder / f"{name}.png"
        page_lib.write_atomically(paths[name], data)
    page_lib.write_atomically(run.path / "report.md", md)
    page_lib.write_atomically(run.path / "report.html", text)
    return ReportFiles(run.path / "report.md", run.path / "report.html", paths)


def _ordered_metrics(metrics: Sequence[str]) -> list[str]:
    """The key metrics first (in :data:`KEY_METRICS` order), then the rest as in the table."""
    return [m for m in KEY_METRICS if m in metrics] + [m for m in metrics if m not in KEY_METRICS]


def _header_lines(run: RunData) -> list[str]:
    m = run.manifest
    scenario = m["scenario"]
    horizon = scenario["horizon"]
    git = m.get("git", {})
    description = scenario.get("description", "").strip()
    return [
        f"Scenario **{scenario['name']}** ({m.get('scenario_file')}){': ' + description if description else '.'}",
        f"World preset `{scenario['world']['preset']}`; {horizon['users']} users x {horizon['steps']} steps; "
        f"seeds {m['seeds']['run_seeds']}; metrics window {scenario['metrics']['window']} steps.",
        f"Commit `{git.get('commit')}`{' (with local changes)' if git.get('dirty') else ''}; "
        f"bubblegym {m['versions'].get('bubblegym')}; run {m.get('started')} to {m.get('finished')}.",
    ]


# --------------------------------------------------------------------------- compare


def compare_runs(run_a: str | Path, run_b: str | Path, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Arms present in both runs (same arm and world label): B - A per metric with a 95% CI.

    The difference is paired by seed on the seeds both runs have (at least two) when the
    two runs' world point has the same configuration and world seeds, so that a pair
    shares users and noise (common random numbers); otherwise (different worlds, or fewer
    than two shared seeds) Welch's interval over all seeds of each run.

    Args:
        metrics: metric names; None: the :data:`KEY_METRICS` both runs have.

    Returns:
        Long table: ``world_label``, ``arm``, ``metric``, ``a``, ``b``, ``diff``, ``low``,
        ``high``, ``paired``, ``pairs`` (seeds paired, 0 when unpaired), ``why`` (why
        unpaired, else empty).

    Raises:
        RunError: a run did not finish, or a requested metric is not in both runs (the
            message lists the metrics both have).
    """
    run_a_data, run_b_data = load_run(run_a), load_run(run_b)
    a, b = run_a_data.summary, run_b_data.summary
    known = [m for m in run_a_data.metrics if m in set(run_b_data.metrics)]
    if metrics is None:
        metrics = [m for m in KEY_METRICS if m in known]
    else:
        unknown = [m for m in metrics if m not in known]
        if unknown:
            raise RunError(
                f"unknown metric(s) {', '.join(unknown)}: not in both runs; known metrics: {', '.join(known)}"
            )
    worlds_a, worlds_b = _world_identities(run_a_data), _world_identities(run_b_data)
    rows = []
    for (world, arm), group_a in a.groupby(["world_label", "arm"], sort=False):
        group_b = b[(b["world_label"] == world) & (b["arm"] == arm)]
        if group_b.empty:
            continue
        shared = sorted(set(group_a["seed"]) & set(group_b["seed"]))
        world_a, world_b = int(group_a["world"].iloc[0]), int(group_b["world"].iloc[0])
        same_world = all(
            worlds_a.get((world_a, s)) is not None and worlds_a.get((world_a, s)) == worlds_b.get((world_b, s))
            for s in shared
        )
        why = "" if same_world and len(shared) >= 2 else ("worlds differ" if not same_world else "under 2 shared seeds")
        paired = not why
        for metric in metrics:
            if paired:
                cols = ["seed", metric]
                joined = group_a[cols].merge(group_b[cols], on="seed", suffixes=("_a", "_b"))
                diff, low, high = t_interval((joined[f"{metric}_b"] - joined[f"{metric}_a"]).to_numpy())
            else:
                diff, low, high = _welch(group_a[metric].to_numpy(), group_b[metric].to_numpy())
            rows.append(
                {
                    "world_label": world,
                    "arm": arm,
                    "metric": metric,
                    "a": float(group_a[metric].mean()),
                    "b": float(group_b[metric].mean()),
                    "diff": diff,
                    "low": low,
                    "high": high,
                    "paired": paired,
                    "pairs": len(shared) if paired else 0,
                    "why": why,
                }
            )
    columns = ["world_label", "arm", "metric", "a", "b", "diff", "low", "high", "paired", "pairs", "why"]
    return pd.DataFrame(rows, columns=columns)


def _world_identities(run: RunData) -> dict[tuple[int, int], str]:
    """(world index, seed) -> the world's configuration and world seed as one JSON string:
    equal strings mean the same users and noise for that seed."""
    worlds = {int(w["index"]): w.get("config") for w in run.manifest.get("resolved", {}).get("worlds", [])}
    out = {}
    for row in run.summary[["world", "seed", "world_seed"]].drop_duplicates().itertuples():
        config = worlds.get(int(row.world))
        out[(int(row.world), int(row.seed))] = json.dumps([config, str(row.world_seed)], sort_keys=True, default=str)
    return out


def _welch(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of b - a with Welch's t-interval (unequal variances, Welch 1947)."""
    from scipy import stats

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    diff = float(b.mean() - a.mean()) if a.size and b.size else np.nan
    if a.size < 2 or b.size < 2:
        return (diff, np.nan, np.nan)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = np.sqrt(va + vb)
    if se == 0:
        return (diff, diff, diff)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf((1 + level) / 2, dof) * se)
    return (diff, diff - half, diff + half)


def format_comparison(table: pd.DataFrame) -> str:
    """The comparison as a terminal table."""
    from experiments.report_page import format_number

    if table.empty:
        return "no arm (agent and world point) appears in both runs"
    shown = pd.DataFrame(
        {
            "world": table["world_label"],
            "arm": table["arm"],
            "metric": table["metric"],
            "A": table["a"].map(format_number),
            "B": table["b"].map(format_number),
            "B - A [95% CI]": [
                _cell(d, lo, hi) for d, lo, hi in zip(table["diff"], table["low"], table["high"], strict=True)
            ],
            "paired": [
                f"yes ({n} seeds)" if p else f"no: {why}"
                for p, n, why in zip(table["paired"], table["pairs"], table["why"], strict=True)
            ],
        }
    )
    if shown["world"].eq("").all():
        shown = shown.drop(columns="world")
    return format_text_table(shown.set_index("arm"))


__all__ = [
    "KEY_METRICS",
    "MANIFEST",
    "RunData",
    "compare_runs",
    "draw_figures",
    "figure_notes",
    "load_run",
    "paired_differences",
    "summary_table",
    "t_interval",
    "write_report",
]
