"""Figures, tables and reports of a run directory (see :mod:`experiments.runner`).

* :func:`load_run` reads a run (manifest, per-window and per-run tables).
* :func:`summary_table` gives the mean and 95% CI per arm and metric over seeds;
  :func:`paired_differences` the seed-paired differences against a baseline agent (common
  random numbers make the pairs share users and noise, so the paired CI is narrow).
* ``plot_*`` draw the seaborn figures, bands are 95% t-intervals over seeds.
* :func:`write_report` writes ``figures/*.png``, ``report.md`` and a self-contained
  ``report.html`` (images embedded as base64); :func:`compare_runs` compares two runs.

An *arm* is an agent label plus its swept parameters (``"vw_epsilon [epsilon=0.1]"``);
``world_label`` names a world grid point (empty without a world sweep).
"""

from __future__ import annotations

import base64
import html
import io
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
    """``"mean [low, high]"`` (style ``interval``) or ``"mean ± half-width"`` (style ``pm``)."""
    if not np.isfinite(mean):
        return "n/a"
    if low == high or not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:.4g}"
    if style == "pm":
        return f"{mean:.4g} ± {(high - low) / 2:.3g}"
    return f"{mean:.4g} [{low:.4g}, {high:.4g}]"


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


def write_report(run_dir: str | Path, baseline: str = "random", *, dpi: int = 110) -> ReportFiles:
    """Write ``figures/*.png``, ``report.md`` and a self-contained ``report.html``.

    The summary table gives mean and 95% CI per arm and metric over seeds; the paired
    differences against ``baseline`` are skipped (with a note) when the run lacks it.
    """
    import matplotlib.pyplot as plt

    run = load_run(run_dir)
    folder = run.path / "figures"
    folder.mkdir(exist_ok=True)
    pngs: dict[str, Path] = {}
    encoded: dict[str, str] = {}
    for name, fig in draw_figures(run).items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        pngs[name] = folder / f"{name}.png"
        pngs[name].write_bytes(buffer.getvalue())
        encoded[name] = base64.b64encode(buffer.getvalue()).decode("ascii")
    summary = wide_table(summary_table(run.summary))
    summary.index.name = "metric"
    try:
        diffs: pd.DataFrame | None = paired_differences(run.summary, baseline)
        diff_note = f"Seed-paired differences (arm - {baseline}), mean and 95% CI over seeds."
    except RunError as err:
        diffs, diff_note = None, f"No paired differences: {err}."
    diff_table = None
    if diffs is not None and not diffs.empty:
        diff_table = wide_table(diffs.rename(columns={"diff": "mean"}))
        diff_table.index.name = "metric"
    notes = list(figure_notes(run).values())
    md = _markdown(run, summary, diff_table, diff_note, pngs, notes)
    page = _html(run, summary, diff_table, diff_note, encoded, notes)
    (run.path / "report.md").write_text(md)
    (run.path / "report.html").write_text(page)
    return ReportFiles(run.path / "report.md", run.path / "report.html", pngs)


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


def _markdown(
    run: RunData,
    summary: pd.DataFrame,
    diffs: pd.DataFrame | None,
    note: str,
    pngs: dict[str, Path],
    figure_notes: Sequence[str] = (),
) -> str:
    parts = [f"# BubbleGym report: {run.manifest['scenario']['name']}", "", *_header_lines(run), ""]
    parts += ["## Summary (mean [95% CI] over seeds)", "", format_markdown_table(summary), ""]
    parts += ["## Paired differences against the baseline", "", note, ""]
    if diffs is not None:
        parts += [format_markdown_table(diffs), ""]
    parts += ["## Figures", ""]
    for name, path in pngs.items():
        parts += [f"![{name}](figures/{path.name})", ""]
    for line in figure_notes:
        parts += [line, ""]
    return "\n".join(parts)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; margin: 1em 0; }
"""


def _html(
    run: RunData,
    summary: pd.DataFrame,
    diffs: pd.DataFrame | None,
    note: str,
    images: dict[str, str],
    figure_notes: Sequence[str] = (),
) -> str:
    name = html.escape(run.manifest["scenario"]["name"])
    head = "".join(f"<p>{_md_inline(line)}</p>" for line in _header_lines(run))
    body = [f"<h1>BubbleGym report: {name}</h1>", head, "<h2>Summary (mean [95% CI] over seeds)</h2>"]
    body.append(summary.to_html(escape=True))
    body += ["<h2>Paired differences against the baseline</h2>", f"<p>{html.escape(note)}</p>"]
    if diffs is not None:
        body.append(diffs.to_html(escape=True))
    body.append("<h2>Figures</h2>")
    for fig_name, data in images.items():
        body.append(f'<h3>{html.escape(fig_name)}</h3><img alt="{fig_name}" src="data:image/png;base64,{data}">')
    body += [f"<p>{html.escape(line)}</p>" for line in figure_notes]
    manifest = html.escape(json.dumps({k: run.manifest[k] for k in ("versions", "git", "seeds")}, indent=2))
    body.append(f"<h2>Provenance</h2><pre>{manifest}</pre>")
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>BubbleGym report: {name}</title>'
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )


def _md_inline(text: str) -> str:
    """Escape and render ``**bold**`` and ```code``` of a header line."""
    out = html.escape(text)
    for mark, tag in (("**", "b"), ("`", "code")):
        pieces = out.split(mark)
        out = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(pieces))
    return out


# --------------------------------------------------------------------------- compare


def compare_runs(run_a: str | Path, run_b: str | Path, metrics: Sequence[str] = KEY_METRICS) -> pd.DataFrame:
    """Arms present in both runs (same arm and world label): B - A per metric with a 95% CI.

    When both runs have the same seeds the difference is paired by seed (same world
    seeds, so common random numbers if the worlds match); otherwise Welch's interval.

    Returns:
        Long table: ``world_label``, ``arm``, ``metric``, ``a``, ``b``, ``diff``, ``low``,
        ``high``, ``paired``.
    """
    a, b = load_run(run_a).summary, load_run(run_b).summary
    metrics = [m for m in metrics if m in a and m in b]
    rows = []
    for (world, arm), group_a in a.groupby(["world_label", "arm"], sort=False):
        group_b = b[(b["world_label"] == world) & (b["arm"] == arm)]
        if group_b.empty:
            continue
        paired = sorted(group_a["seed"]) == sorted(group_b["seed"])
        for metric in metrics:
            if paired:
                joined = group_a[["seed", metric]].merge(group_b[["seed", metric]], on="seed", suffixes=("_a", "_b"))
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
                }
            )
    return pd.DataFrame(rows, columns=["world_label", "arm", "metric", "a", "b", "diff", "low", "high", "paired"])


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
    if table.empty:
        return "no arm (agent and world point) appears in both runs"
    shown = pd.DataFrame(
        {
            "world": table["world_label"],
            "arm": table["arm"],
            "metric": table["metric"],
            "A": table["a"].map(lambda v: f"{v:.4g}"),
            "B": table["b"].map(lambda v: f"{v:.4g}"),
            "B - A [95% CI]": [
                _cell(d, lo, hi) for d, lo, hi in zip(table["diff"], table["low"], table["high"], strict=True)
            ],
            "paired": table["paired"].map({True: "yes", False: "no"}),
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
