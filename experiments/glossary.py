"""What each metric of :mod:`experiments.metrics` means to a reader: definition, unit,
direction (is higher better?), the range it lives in and its source.

The definitions are :data:`experiments.metrics.METRICS` verbatim; this module adds the
unit, direction, bounds and source that the report needs to label tables, clip intervals
and mark a difference as better or worse. ``python -m experiments.glossary`` writes the
glossary as ``docs/metrics.md`` (``--check`` only reports whether that file is current).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from experiments.metrics import FINAL_STATE_METRICS, METRICS

Direction = Literal["higher", "lower", "neither"]

DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
"""Where :func:`main` writes the generated glossary."""

REGRET_NOTE = (
    "Regret is measured against the myopic oracle (the top-k slate by the true utility of this "
    "step only); an agent whose choices change later preferences, boredom or churn can earn more "
    "than that oracle, so regret can be negative."
)
"""Shown wherever ``regret`` is shown."""

EXPLORATION_NOTE = (
    "Exploration rate is the share of decisions whose served slate differs anywhere from that "
    "agent's own greedy slate, so its meaning is defined per agent and it is not comparable "
    "across agents: random explores on every decision (1); per-slot epsilon-greedy agents "
    "(popularity, linear_egreedy and the recsys agents) count a slate as explored if any of its "
    "k slots explored (about 1 - (1 - epsilon)^k of slates); Vowpal Wabbit agents in the default "
    "head mode explore through the first slot only (later slots are greedy); deep-RL agents "
    "whenever a slot differs from the policy's most likely item."
)
"""Shown wherever ``exploration_rate`` is shown."""

METRIC_NOTES = {"regret": REGRET_NOTE, "exploration_rate": EXPLORATION_NOTE}
"""Metric -> caveat the report prints wherever that metric appears."""


@dataclass(frozen=True)
class MetricInfo:
    """A metric as a reader needs it.

    Attributes:
        name: column name in the result tables.
        definition: what it measures (from :data:`experiments.metrics.METRICS`).
        unit: unit of a value (``"share"`` for a fraction in [0, 1]).
        direction: ``"higher"`` or ``"lower"`` when that side is better for users and the
            platform, ``"neither"`` when it depends on the question.
        bounds: ``(low, high)`` range a value can take (``math.inf`` when open).
        source: the paper the definition follows, or ``"BubbleGym"``.
    """

    name: str
    definition: str
    unit: str
    direction: Direction
    bounds: tuple[float, float]
    source: str

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower", "neither"):
            raise ValueError(f"{self.name}: direction must be higher, lower or neither; got {self.direction!r}")
        if not self.bounds[0] < self.bounds[1]:
            raise ValueError(f"{self.name}: bounds must be (low, high) with low < high; got {self.bounds}")

    @property
    def arrow(self) -> str:
        """``"↑"`` (higher is better), ``"↓"`` (lower is better) or ``""``."""
        return {"higher": "↑", "lower": "↓"}.get(self.direction, "")

    @property
    def bounded(self) -> bool:
        """Whether either end of the range is finite."""
        return math.isfinite(self.bounds[0]) or math.isfinite(self.bounds[1])


_INF = math.inf
_SHARE = (0.0, 1.0)
_BITS = (0.0, _INF)
_ANY = (-_INF, _INF)
_POS = (0.0, _INF)

# name -> (unit, direction, bounds, source)
_EXTRA: dict[str, tuple[str, Direction, tuple[float, float], str]] = {
    "user_steps": ("user-steps", "neither", _POS, "BubbleGym"),
    "reward_per_user_step": ("reward (minutes or clicks) per user-step", "higher", _POS, "BubbleGym"),
    "ctr": ("share", "higher", _SHARE, "standard click-through rate"),
    "session_length": ("steps", "higher", _POS, "BubbleGym"),
    "watch_time_total": ("minutes", "higher", _POS, "BubbleGym"),
    "regret": ("reward per user-step", "lower", _ANY, "myopic-oracle regret (Lattimore & Szepesvari 2020)"),
    "exploration_rate": ("share of decisions", "neither", _SHARE, "BubbleGym (per-agent definition)"),
    "policy_entropy": ("bits", "neither", _BITS, "Shannon 1948, from logged propensities"),
    "slate_entropy": ("bits", "neither", _BITS, "Shannon 1948, chain rule over slots"),
    "intra_list_diversity": ("1 - cosine", "higher", (0.0, 2.0), "Ziegler et al. 2005"),
    "catalog_coverage": ("share of items", "higher", _SHARE, "Herlocker et al. 2004"),
    "exposure_gini": ("Gini coefficient", "lower", _SHARE, "Fleder & Hosanagar 2009"),
    "topic_entropy": ("bits", "higher", _BITS, "Shannon 1948"),
    "slate_topic_entropy": ("bits", "higher", _BITS, "Ziegler et al. 2005 (on topics)"),
    "slate_topic_coverage": ("share of topics", "higher", _SHARE, "Zhai et al. 2003"),
    "novelty": ("bits", "higher", _BITS, "Zhou et al. 2010"),
    "interest_entropy": ("bits", "higher", _BITS, "BubbleGym (filter-bubble narrowing)"),
    "user_topic_entropy": ("bits", "higher", _BITS, "Nguyen et al. 2014"),
    "interest_entropy_decline": ("bits", "lower", _ANY, "BubbleGym (filter-bubble narrowing)"),
    "preference_shift": ("embedding distance (L2)", "lower", _POS, "BubbleGym"),
    "homogenization_cosine": ("cosine", "lower", (-1.0, 1.0), "Chaney et al. 2018"),
    "homogenization_jaccard": ("share of items", "lower", _SHARE, "Chaney et al. 2018"),
    "calibration_kl": ("bits", "lower", _BITS, "Steck 2018"),
    "retention": ("share of users", "higher", _SHARE, "survival analysis of the starting cohort"),
    "churn_rate": ("churn events per user-step", "lower", _SHARE, "BubbleGym"),
    "lifetime_engagement": ("reward per user", "higher", _POS, "BubbleGym"),
    "cohort_engagement": ("reward per cohort user-step", "higher", _POS, "BubbleGym (survival-weighted)"),
    "prediction_rmse": ("reward", "lower", _POS, "standard RMSE"),
    "prediction_mae": ("reward", "lower", _POS, "standard MAE"),
    "latency_decision_p50_ms": ("ms", "lower", _POS, "BubbleGym"),
    "latency_decision_p95_ms": ("ms", "lower", _POS, "BubbleGym"),
    "latency_batch_p50_ms": ("ms", "lower", _POS, "BubbleGym"),
    "latency_batch_p95_ms": ("ms", "lower", _POS, "BubbleGym"),
    "serendipity": ("share of consumed items", "higher", _SHARE, "Ge et al. 2010"),
}


def _build() -> dict[str, MetricInfo]:
    missing = sorted(set(METRICS) - set(_EXTRA))
    stale = sorted(set(_EXTRA) - set(METRICS))
    if missing or stale:  # a metric added to experiments.metrics must be described here too
        raise RuntimeError(f"experiments.glossary is out of step with METRICS: missing {missing}, stale {stale}")
    info = {name: MetricInfo(name, METRICS[name], *_EXTRA[name]) for name in METRICS}
    for name in FINAL_STATE_METRICS:
        base = info[name]
        info[f"{name}_final"] = MetricInfo(
            f"{name}_final", f"{base.definition}, at the last step", base.unit, base.direction, base.bounds, base.source
        )
    return info


GLOSSARY: dict[str, MetricInfo] = _build()
"""Every metric column of a run's tables -> its :class:`MetricInfo`."""


def metric_info(name: str) -> MetricInfo | None:
    """The glossary entry of a metric column, None for a column it does not know."""
    return GLOSSARY.get(name)


def clip_to_bounds(metric: str, value: float) -> float:
    """``value`` clipped to the metric's range (unchanged for unknown metrics or NaN)."""
    info = GLOSSARY.get(metric)
    if info is None or not math.isfinite(value):
        return value
    return min(max(value, info.bounds[0]), info.bounds[1])


def _range_text(bounds: tuple[float, float]) -> str:
    def end(v: float) -> str:
        return "∞" if v == _INF else "-∞" if v == -_INF else f"{v:g}"

    return f"[{end(bounds[0])}, {end(bounds[1])}]"


def glossary_rows(metrics: Sequence[str] | None = None) -> list[dict[str, str]]:
    """One row per metric (all, or ``metrics`` that the glossary knows, in that order):
    ``metric``, ``definition``, ``unit``, ``better``, ``range``, ``source``."""
    names = list(GLOSSARY) if metrics is None else [m for m in metrics if m in GLOSSARY]
    rows = []
    for name in names:
        info = GLOSSARY[name]
        better = {"higher": "higher ↑", "lower": "lower ↓"}.get(info.direction, "depends")
        definition = info.definition + (f" ({METRIC_NOTES[name]})" if name in METRIC_NOTES else "")
        rows.append(
            {
                "metric": name,
                "definition": definition,
                "unit": info.unit,
                "better": better,
                "range": _range_text(info.bounds),
                "source": info.source,
            }
        )
    return rows


def glossary_markdown() -> str:
    """The whole glossary as the Markdown page ``docs/metrics.md``."""
    lines = [
        "# Metrics",
        "",
        "<!-- generated by `python -m experiments.glossary` from experiments/metrics.py and "
        "experiments/glossary.py; do not edit by hand -->",
        "",
        "Every metric BubbleGym computes per window of steps and per run "
        "(`experiments/metrics.py`); the `_final` columns are the state "
        "metrics at the last step. *Better* says which side is better for users and the platform "
        "(*depends*: it is a knob, not a goal). The report clips confidence intervals to *range*. "
        "See [how to read the report](report.md).",
        "",
        "| metric | definition | unit | better | range | source |",
        "|---|---|---|---|---|---|",
    ]
    for row in glossary_rows():
        cells = [f"`{row['metric']}`", *(row[k].replace("|", "\\|") for k in ("definition", "unit", "better"))]
        cells += [row["range"], row["source"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Caveats", "", f"- **regret**: {REGRET_NOTE}", f"- **exploration_rate**: {EXPLORATION_NOTE}", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``docs/metrics.md``; with ``--check``, exit 1 if it is missing or stale."""
    parser = argparse.ArgumentParser(prog="python -m experiments.glossary", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="only check that docs/metrics.md is up to date")
    args = parser.parse_args(argv)
    text = glossary_markdown()
    if args.check:
        current = DOCS_FILE.read_text() if DOCS_FILE.exists() else ""
        if current != text:
            print(f"{DOCS_FILE} is stale: run `python -m experiments.glossary`", file=sys.stderr)
            return 1
        return 0
    DOCS_FILE.write_text(text)
    print(f"wrote {DOCS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
