"""Logged bandit feedback: a versioned decision-log format in Parquet, its streaming writer and its reader.

A log is two Parquet files side by side (see ``docs/logs.md``):

* ``<stem>.decisions.parquet``: one row per decision (a user served one slate at one step);
  :data:`DECISION_COLUMNS` lists the columns, their types and which are required.
* ``<stem>.items.parquet``: one row per item id ever offered (:data:`ITEM_COLUMNS`); an id
  is never reused, so the table is append-only and candidates are stored as ids, not as
  per-row features (12x less memory at read time; ``ope-research.md`` section 1).

File-level facts are Parquet key-value metadata under ``bubblegym.*`` keys
(:class:`LogMetadata`): the format version, what the ``propensity`` column means
(``conditional``: mu(s_j | x, s_<j) per slot; ``marginal``: mu(item s_j at slot j | x);
``joint``: mu(s | x), one value per slate), the action space (``candidates``: slate entries
index each row's ``candidate_item_ids``; ``catalog``: they index the items table, as in the
Open Bandit Dataset), the logging policy and the world.

:class:`DecisionLogWriter` streams row groups (memory stays flat however many steps are
written) into temporary files that are renamed into place only by :meth:`DecisionLogWriter.close`,
so a log that exists is complete. :func:`read_log` validates and returns a frozen
:class:`DecisionLog` of numpy arrays, refusing malformed input with :class:`LogError`
naming the column and the row.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from experiments.files import fsync_dir, temporary_name

FORMAT_VERSION = 1
"""Version of the decision-log format; :func:`read_log` refuses any other."""

PROPENSITY_KINDS = ("conditional", "marginal", "joint")
ACTION_SPACES = ("candidates", "catalog")

DECISIONS_SUFFIX = ".decisions.parquet"
ITEMS_SUFFIX = ".items.parquet"
META_PREFIX = "bubblegym."


class LogError(ValueError):
    """A decision log that cannot be used: a missing column, a bad value (named by column
    and row), another format version, or metadata that disagrees with the data."""


@dataclass(frozen=True)
class Column:
    """One column of the format: its name, Arrow type of one element, list width and use."""

    name: str
    dtype: str
    width: str | None
    required: bool
    meaning: str


DECISION_COLUMNS: tuple[Column, ...] = (
    Column("decision_id", "int64", None, True, "unique key of the decision"),
    Column("user_id", "int64", None, True, "the user (the unit the bootstrap resamples)"),
    Column("step", "int64", None, True, "time step of the decision (orders decisions)"),
    Column("session_id", "int64", None, False, "session the decision belongs to (unique over the log)"),
    Column("session_step", "int32", None, False, "0-based index of the decision within its session"),
    Column("user_features", "float32", "F_u", True, "context x: the user's observed features"),
    Column("candidate_item_ids", "int64", "C", False, "action set as item ids (absent: the whole catalog)"),
    Column("candidate_fresh", "bool", "C", False, "per-decision 'fresh' flag of each candidate (arrival worlds)"),
    Column("slate", "int16", "k", True, "0-based indices of the served items into the action set, slot 0 first"),
    Column("propensity", "float64", "k", True, "logging probability; meaning set by propensity_kind (1 wide if joint)"),
    Column("marginal_propensity", "float64", "k", False, "mu(item s_j at slot j | x), for IIPS / PI"),
    Column("position", "int16", None, False, "0-based display position of a one-item decision (OBD)"),
    Column("click", "int8", None, True, "clicked slot (0-based), -1 for no click"),
    Column("reward", "float32", None, True, "slate reward (minutes watched, or the click)"),
    Column("explored", "bool", None, False, "whether the logger explored (diagnostics)"),
    Column("terminated", "bool", None, False, "the session ended after this decision (budget or churn)"),
    Column("truncated", "bool", None, False, "the session was cut after this decision (max steps)"),
    Column("expected_reward", "float64", None, False, "simulator truth E[r | state, slate]; estimators never read it"),
)
"""The decisions table. ``width`` is the length of a list column (F_u, C or k), None for a scalar."""

ITEM_COLUMNS: tuple[Column, ...] = (
    Column("item_id", "int64", None, True, "unique item id, never reused"),
    Column("features", "float32", "F_i", True, "the item's observed features when first offered"),
    Column("topic", "int16", None, False, "the item's topic (simulator)"),
)
"""The items table."""

_BY_NAME = {c.name: c for c in DECISION_COLUMNS}
_ITEM_BY_NAME = {c.name: c for c in ITEM_COLUMNS}


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class LogMetadata:
    """File-level facts of a log, stored as Parquet key-value metadata (``bubblegym.<field>``).

    Attributes:
        propensity_kind: ``conditional`` | ``marginal`` | ``joint`` (what ``propensity`` holds).
        action_space: ``candidates`` (slates index ``candidate_item_ids``) | ``catalog``
            (slates index the items table in its stored order).
        slate_size: k, items per slate.
        logging_policy: the logging policy (registry spec and parameters, or a free description).
        world: the world (config, seed) or the data source.
        user_feature_names: names of the F_u user features (empty: unnamed).
        item_feature_names: names of the F_i item features (empty: unnamed).
        fresh_feature: index in the item features of the time-varying ``fresh`` flag that
            ``candidate_fresh`` overrides per decision; -1 if none.
        reward_unit: what the reward counts (``minutes``, ``click``...).
        format_version: :data:`FORMAT_VERSION` when written.
    """

    propensity_kind: str
    action_space: str
    slate_size: int
    logging_policy: Mapping[str, Any] = field(default_factory=dict)
    world: Mapping[str, Any] = field(default_factory=dict)
    user_feature_names: tuple[str, ...] = ()
    item_feature_names: tuple[str, ...] = ()
    fresh_feature: int = -1
    reward_unit: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.propensity_kind not in PROPENSITY_KINDS:
            raise LogError(f"propensity_kind must be one of {PROPENSITY_KINDS}; got {self.propensity_kind!r}")
        if self.action_space not in ACTION_SPACES:
            raise LogError(f"action_space must be one of {ACTION_SPACES}; got {self.action_space!r}")
        if not isinstance(self.slate_size, int | np.integer) or self.slate_size < 1:
            raise LogError(f"slate_size must be an integer >= 1; got {self.slate_size!r}")
        if self.format_version != FORMAT_VERSION:
            raise LogError(
                f"decision-log format version {self.format_version} is not supported; this reader reads "
                f"version {FORMAT_VERSION}"
            )

    @property
    def propensity_width(self) -> int:
        """Length of each ``propensity`` list: 1 for ``joint``, else k."""
        return 1 if self.propensity_kind == "joint" else self.slate_size

    def to_parquet(self) -> dict[bytes, bytes]:
        """The key-value metadata: each field as JSON under ``bubblegym.<field>``."""
        fields = {
            "format_version": self.format_version,
            "propensity_kind": self.propensity_kind,
            "action_space": self.action_space,
            "slate_size": int(self.slate_size),
            "logging_policy": dict(self.logging_policy),
            "world": dict(self.world),
            "user_feature_names": list(self.user_feature_names),
            "item_feature_names": list(self.item_feature_names),
            "fresh_feature": int(self.fresh_feature),
            "reward_unit": self.reward_unit,
        }
        return {
            (META_PREFIX + k).encode(): json.dumps(v, sort_keys=True, default=str).encode() for k, v in fields.items()
        }

    @classmethod
    def from_parquet(cls, meta: Mapping[bytes, bytes] | None, source: str) -> LogMetadata:
        """Parse :meth:`to_parquet`'s metadata; :class:`LogError` naming ``source`` and the key if absent or bad."""
        meta = meta or {}
        values: dict[str, Any] = {}
        for key in ("format_version", "propensity_kind", "action_space", "slate_size"):
            raw = meta.get((META_PREFIX + key).encode())
            if raw is None:
                raise LogError(
                    f"{source}: metadata key {META_PREFIX + key!r} is missing; a decision log (format "
                    f"{FORMAT_VERSION}) needs {META_PREFIX}format_version, propensity_kind, action_space and slate_size"
                )
            values[key] = raw
        for key in (
            "logging_policy",
            "world",
            "user_feature_names",
            "item_feature_names",
            "fresh_feature",
            "reward_unit",
        ):
            if (META_PREFIX + key).encode() in meta:
                values[key] = meta[(META_PREFIX + key).encode()]
        try:
            parsed = {k: json.loads(v) for k, v in values.items()}
        except ValueError as err:
            raise LogError(f"{source}: metadata is not JSON ({err})") from None
        for key in ("user_feature_names", "item_feature_names"):
            if key in parsed:
                parsed[key] = tuple(parsed[key])
        try:
            return cls(**parsed)
        except LogError as err:
            raise LogError(f"{source}: {err}") from None


# --------------------------------------------------------------------------- the log


@dataclass(frozen=True)
class DecisionLog:
    """A validated decision log as numpy arrays (n decisions, M items).

    Attributes:
        metadata: the file-level facts.
        decision_id, user_id, step: (n,) int64.
        user_features: (n, F_u) float32.
        slate: (n, k) int64 indices into the action set (0-based).
        propensity: (n, k) float64 in (0, 1] ((n, 1) when ``metadata.propensity_kind`` is ``joint``).
        click: (n,) int64 clicked slot or -1.
        reward: (n,) float64.
        item_ids: (M,) int64 ids of the items table, unique.
        item_features: (M, F_i) float32.
        candidate_item_ids: (n, C) item ids (int32 when read from a file and they fit, else
            int64), or None when the action space is the catalog.
        marginal_propensity: (n, k) float64 or None.
        session_id: (n,) int64 or None. session_step: (n,) int64 or None.
        candidate_fresh: (n, C) bool or None.
        position: (n,) int64 or None. explored, terminated, truncated: (n,) bool or None.
        expected_reward: (n,) float64 simulator truth, or None.
        item_topic: (M,) int64 or None.
    """

    metadata: LogMetadata
    decision_id: np.ndarray
    user_id: np.ndarray
    step: np.ndarray
    user_features: np.ndarray
    slate: np.ndarray
    propensity: np.ndarray
    click: np.ndarray
    reward: np.ndarray
    item_ids: np.ndarray
    item_features: np.ndarray
    candidate_item_ids: np.ndarray | None = None
    marginal_propensity: np.ndarray | None = None
    session_id: np.ndarray | None = None
    session_step: np.ndarray | None = None
    candidate_fresh: np.ndarray | None = None
    position: np.ndarray | None = None
    explored: np.ndarray | None = None
    terminated: np.ndarray | None = None
    truncated: np.ndarray | None = None
    expected_reward: np.ndarray | None = None
    item_topic: np.ndarray | None = None

    def __post_init__(self) -> None:
        validate(self, "DecisionLog")

    @property
    def n(self) -> int:
        """Number of decisions."""
        return len(self.reward)

    @property
    def slate_size(self) -> int:
        """k."""
        return self.metadata.slate_size

    @property
    def n_candidates(self) -> int:
        """C: candidates per decision (the catalog size M for a catalog action space)."""
        return len(self.item_ids) if self.candidate_item_ids is None else self.candidate_item_ids.shape[1]

    def candidate_ids(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """(r, C) int64 item ids of the action set of ``rows`` (the catalog, repeated, if no candidates column)."""
        if self.candidate_item_ids is not None:
            return self.candidate_item_ids[rows]
        count = len(np.arange(self.n)[rows])
        return np.broadcast_to(self.item_ids, (count, len(self.item_ids)))

    def item_rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id of ``ids`` (any shape) in the items table; :class:`LogError` for an unknown id."""
        order = np.argsort(self.item_ids, kind="stable")
        pos = np.searchsorted(self.item_ids, ids, sorter=order)
        pos = np.minimum(pos, len(order) - 1)
        rows = order[pos]
        bad = self.item_ids[rows] != ids
        if bad.any():
            raise LogError(f"item ids {np.unique(np.asarray(ids)[bad])[:5].tolist()} are not in the items table")
        return rows

    def candidate_features(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """(r, C, F_i) float32 features of the action set of ``rows``, joined from the items
        table, with the per-decision ``fresh`` flag put back when logged. Memory r * C * F_i * 4 bytes."""
        features = self.item_features[self.item_rows(self.candidate_ids(rows))]
        if self.candidate_fresh is not None and self.metadata.fresh_feature >= 0:
            features[..., self.metadata.fresh_feature] = self.candidate_fresh[rows]
        return features

    def slate_item_ids(self) -> np.ndarray:
        """(n, k) int64 item ids of the served slates."""
        if self.candidate_item_ids is None:
            return self.item_ids[self.slate]
        return np.take_along_axis(self.candidate_item_ids, self.slate, axis=1)

    def joint_propensity(self) -> np.ndarray:
        """(n,) float64 mu(s | x): the product of conditional per-slot propensities, or the
        stored joint one. :class:`LogError` for marginal propensities of slates (k > 1),
        whose product is not the slate's probability."""
        kind = self.metadata.propensity_kind
        if kind == "joint":
            return self.propensity[:, 0]
        if kind == "marginal" and self.slate_size > 1:
            raise LogError("the log holds marginal propensities: the probability of a whole slate is not their product")
        return np.prod(self.propensity, axis=1)


# --------------------------------------------------------------------------- validation


def _first(mask: np.ndarray) -> int:
    """Index of the first True row of ``mask`` (a row is bad if any of its entries is)."""
    flat = mask.reshape(len(mask), -1).any(axis=1) if mask.ndim > 1 else mask
    return int(np.flatnonzero(flat)[0])


def validate(log: DecisionLog, source: str) -> None:
    """Check a log's arrays against each other and the format; :class:`LogError` naming
    ``source``, the column and the first bad row (0-based) otherwise.

    Checks shapes (one n; list widths equal to k, C, F_u, F_i), propensities finite and in
    (0, 1], slate indices in [0, C) and distinct within a slate, clicks in [-1, k),
    unique item ids, and candidate ids present in the items table.
    """
    meta = log.metadata
    n, k = len(log.reward), meta.slate_size
    widths = {"k": k, "prop": meta.propensity_width}
    for name in ("decision_id", "user_id", "step", "click", "reward"):
        if np.shape(getattr(log, name)) != (n,):
            raise LogError(f"{source}: column {name!r} has shape {np.shape(getattr(log, name))}; want ({n},)")
    for name in ("session_id", "session_step", "position", "explored", "terminated", "truncated", "expected_reward"):
        value = getattr(log, name)
        if value is not None and np.shape(value) != (n,):
            raise LogError(f"{source}: column {name!r} has shape {np.shape(value)}; want ({n},)")
    if log.user_features.ndim != 2 or len(log.user_features) != n:
        raise LogError(f"{source}: column 'user_features' has shape {log.user_features.shape}; want ({n}, F_u)")
    if log.item_features.ndim != 2 or len(log.item_features) != len(log.item_ids):
        raise LogError(
            f"items of {source}: 'features' has shape {log.item_features.shape}; want ({len(log.item_ids)}, F_i)"
        )
    ids, counts = np.unique(log.item_ids, return_counts=True)
    if (counts > 1).any():
        raise LogError(f"items of {source}: column 'item_id' repeats id {int(ids[counts > 1][0])}; ids must be unique")
    if meta.action_space == "candidates":
        if log.candidate_item_ids is None:
            raise LogError(
                f"{source}: column 'candidate_item_ids' is missing; it is required when action_space is "
                "'candidates' (use action_space 'catalog' when every item is a candidate)"
            )
        if log.candidate_item_ids.ndim != 2 or len(log.candidate_item_ids) != n:
            raise LogError(
                f"{source}: column 'candidate_item_ids' has shape {log.candidate_item_ids.shape}; want ({n}, C)"
            )
        c = log.candidate_item_ids.shape[1]
        missing = ~np.isin(log.candidate_item_ids, log.item_ids)
        if missing.any():
            row = _first(missing)
            absent = log.candidate_item_ids[row][missing[row]][:5].tolist()
            raise LogError(
                f"{source}: column 'candidate_item_ids' row {row} names item ids {absent} absent from the items table"
            )
    else:
        c = len(log.item_ids)
    if c < k:
        raise LogError(f"{source}: {c} candidates cannot fill slates of k = {k}")
    if log.candidate_fresh is not None and log.candidate_fresh.shape != (n, c):
        raise LogError(
            f"{source}: column 'candidate_fresh' has shape {log.candidate_fresh.shape}; want ({n}, {c}) (C = {c})"
        )
    for name, width in (("slate", widths["k"]), ("propensity", widths["prop"]), ("marginal_propensity", k)):
        value = getattr(log, name)
        if value is not None and value.shape != (n, width):
            raise LogError(f"{source}: column {name!r} has shape {value.shape}; want ({n}, {width})")
    for name in ("propensity", "marginal_propensity"):
        value = getattr(log, name)
        if value is None:
            continue
        bad = ~((value > 0) & (value <= 1))  # NaN fails both comparisons
        if bad.any():
            row = _first(bad)
            slot = int(np.flatnonzero(bad[row])[0])
            raise LogError(
                f"{source}: column {name!r} row {row} slot {slot} is {float(value[row, slot])}; propensities must be "
                "in (0, 1] (not NaN): a logged item had to have a positive probability"
            )
    slate = log.slate
    out = (slate < 0) | (slate >= c)
    if out.any():
        row = _first(out)
        raise LogError(
            f"{source}: column 'slate' row {row} is {slate[row].tolist()}; indices must be in [0, {c}) (C = {c})"
        )
    if k > 1:
        ordered = np.sort(slate, axis=1)
        repeats = (np.diff(ordered, axis=1) == 0).any(axis=1)
        if repeats.any():
            row = _first(repeats)
            raise LogError(f"{source}: column 'slate' row {row} is {slate[row].tolist()}; a slate repeats an item")
    click = log.click
    bad_click = (click < -1) | (click >= k)
    if bad_click.any():
        row = _first(bad_click)
        raise LogError(
            f"{source}: column 'click' row {row} is {int(click[row])}; want a slot in [-1, {k - 1}] (-1: no click)"
        )
    if not np.isfinite(log.reward).all():
        row = _first(~np.isfinite(log.reward))
        raise LogError(f"{source}: column 'reward' row {row} is {log.reward[row]}; rewards must be finite")


# --------------------------------------------------------------------------- arrow conversion


def _arrow_type(column: Column) -> pa.DataType:
    return pa.from_numpy_dtype(np.dtype(column.dtype))


def _to_arrow(column: Column, values: np.ndarray) -> pa.Array:
    """A numpy column as Arrow: a scalar array, or a fixed-size list of the row width."""
    values = np.ascontiguousarray(values, dtype=column.dtype)
    if column.width is None:
        return pa.array(values)
    width = values.shape[1] if values.ndim == 2 else 1
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width)


def _from_arrow(table: pa.Table, name: str, column: Column, source: str) -> np.ndarray:
    """A column of ``table`` as numpy: (n,) or (n, width) for list columns (fixed-size or
    plain lists of equal length); :class:`LogError` naming the column and first bad row."""
    data = table.column(name).combine_chunks()
    if data.null_count:
        row = int(np.flatnonzero(data.is_null().to_numpy(zero_copy_only=False))[0])
        raise LogError(f"{source}: column {name!r} row {row} is null")
    if column.width is None:
        if pa.types.is_list(data.type) or pa.types.is_fixed_size_list(data.type):
            raise LogError(f"{source}: column {name!r} holds lists; want one {column.dtype} per row")
        return _cast(data, name, column, source)
    if not (pa.types.is_list(data.type) or pa.types.is_large_list(data.type) or pa.types.is_fixed_size_list(data.type)):
        raise LogError(
            f"{source}: column {name!r} has type {data.type}; want a list of {column.dtype} ({column.width} wide)"
        )
    lengths = pc.list_value_length(data).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise LogError(
            f"{source}: column {name!r} row {row} has {lengths[row]} entries, row 0 has {lengths[0]}; "
            f"every row needs the same length ({column.width})"
        )
    flat = data.flatten()
    if flat.null_count:
        raise LogError(f"{source}: column {name!r} holds a null entry")
    width = int(lengths[0]) if len(lengths) else 0
    return _cast(flat, name, column, source).reshape(len(data), width)


def _cast(data: pa.Array, name: str, column: Column, source: str) -> np.ndarray:
    try:
        values = data.to_numpy(zero_copy_only=False)
        target = np.dtype(column.dtype)
        if target.kind in "iu" and values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
            raise TypeError("non-integer values")
        if target.kind == "b":
            if values.dtype.kind != "b":
                raise TypeError(f"values of type {values.dtype}, not booleans")
            return values.astype(bool)
        return values.astype(np.float64 if target.kind == "f" else np.int64)
    except (TypeError, ValueError, pa.ArrowException) as err:
        raise LogError(f"{source}: column {name!r} cannot be read as {column.dtype}: {err}") from None


# --------------------------------------------------------------------------- reading


def log_paths(path: str | Path) -> tuple[Path, Path]:
    """``(decisions, items)`` paths of the log at ``path``: a stem (``logs/task``), or either file."""
    path = Path(path)
    name = path.name
    for suffix in (DECISIONS_SUFFIX, ITEMS_SUFFIX):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + DECISIONS_SUFFIX), path.with_name(name + ITEMS_SUFFIX)


def _read_table(path: Path, what: str) -> pa.Table:
    if not path.exists():
        raise LogError(f"{path}: no such {what} file")
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise LogError(f"{path}: not a readable Parquet {what} file ({err})") from None


def _require(table: pa.Table, columns: tuple[Column, ...], source: str) -> None:
    missing = [c.name for c in columns if c.required and c.name not in table.column_names]
    if missing:
        raise LogError(
            f"{source}: missing required column(s) {missing}; a decision log needs "
            f"{[c.name for c in columns if c.required]} (see docs/logs.md)"
        )


def read_log(path: str | Path) -> DecisionLog:
    """Read and validate the log at ``path`` (its stem or either of its two files).

    Extra columns are ignored; optional ones are read when present.

    Raises:
        LogError: a missing file or column, another format version, or a bad value
            (naming the column and the first bad row; see :func:`validate`).
    """
    decisions_path, items_path = log_paths(path)
    table = _read_table(decisions_path, "decisions")
    source = str(decisions_path)
    meta = LogMetadata.from_parquet(table.schema.metadata, source)
    _require(table, DECISION_COLUMNS, source)
    items = _read_table(items_path, "items")
    _require(items, ITEM_COLUMNS, str(items_path))
    arrays = {c.name: _from_arrow(table, c.name, c, source) for c in DECISION_COLUMNS if c.name in table.column_names}
    item_arrays = {
        c.name: _from_arrow(items, c.name, c, str(items_path)) for c in ITEM_COLUMNS if c.name in items.column_names
    }
    ids = arrays.get("candidate_item_ids")
    if ids is not None and ids.size and 0 <= ids.min() and ids.max() < 2**31:
        arrays["candidate_item_ids"] = ids.astype(np.int32)  # half the memory: 400 MB at 2M decisions x C = 50
    try:
        return DecisionLog(
            metadata=meta,
            item_ids=item_arrays["item_id"],
            item_features=item_arrays["features"].astype(np.float32),
            item_topic=item_arrays.get("topic"),
            user_features=arrays.pop("user_features").astype(np.float32),
            **arrays,
        )
    except LogError as err:
        raise LogError(str(err).replace("DecisionLog", source, 1)) from None


# --------------------------------------------------------------------------- writing


def _temporary(path: Path, owner: int | None) -> Path:
    return path.with_name(temporary_name(path.name, owner))


class DecisionLogWriter:
    """Stream decisions into a log's two Parquet files, one row group at a time.

    Rows given to :meth:`write` are buffered until ``rows_per_group`` are held, then written
    as one row group, so memory does not grow with the number of steps. Items given to
    :meth:`add_items` are kept once per id (first features win; the items table is small)
    and written at :meth:`close`. Both files are written under temporary names and renamed
    into place by :meth:`close` (items first, decisions last), each fsynced: a log whose
    decisions file exists is complete. :meth:`abort` (or leaving a ``with`` block on an
    exception) deletes the temporaries.

    Args:
        path: the log's stem, e.g. ``RUN_DIR/logs/<task>`` (or either file name).
        metadata: the file-level facts.
        user_dim, item_dim: F_u and F_i.
        n_candidates: C, or None for a catalog action space.
        optional: the optional decision columns that will be written (each :meth:`write`
            must give exactly the required plus these).
        rows_per_group: rows per Parquet row group.
        owner: pid that names the temporaries (the runner's), default this process.
        background: encode and compress row groups in one writer thread (pyarrow releases
            the GIL), overlapping the caller's work; at most one group is in flight, so
            memory stays at two row groups. An error in the thread is raised by the next
            :meth:`write` or by :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path,
        metadata: LogMetadata,
        *,
        user_dim: int,
        item_dim: int,
        n_candidates: int | None,
        optional: tuple[str, ...] = (),
        rows_per_group: int = 1 << 16,
        owner: int | None = None,
        background: bool = True,
    ) -> None:
        unknown = [name for name in optional if name not in _BY_NAME or _BY_NAME[name].required]
        if unknown:
            raise LogError(
                f"unknown optional column(s) {unknown}; allowed: {[c.name for c in DECISION_COLUMNS if not c.required]}"
            )
        if (n_candidates is None) != (metadata.action_space == "catalog"):
            raise LogError("n_candidates must be None exactly when the action space is 'catalog'")
        if "candidate_item_ids" not in optional and metadata.action_space == "candidates":
            optional = (*optional, "candidate_item_ids")
        self.metadata = metadata
        self.decisions_path, self.items_path = log_paths(path)
        self._owner = owner
        widths = {
            "F_u": user_dim,
            "C": n_candidates or 0,
            "k": metadata.slate_size,
        }
        self._columns = [c for c in DECISION_COLUMNS if c.required or c.name in optional]
        self._widths = {
            c.name: (metadata.propensity_width if c.name == "propensity" else widths[c.width])
            for c in self._columns
            if c.width is not None
        }
        self.schema = pa.schema(
            [
                pa.field(c.name, _arrow_type(c) if c.width is None else pa.list_(_arrow_type(c), self._widths[c.name]))
                for c in self._columns
            ],
            metadata=metadata.to_parquet(),
        )
        self._item_dim = item_dim
        self._rows_per_group = rows_per_group
        self._buffer: list[dict[str, np.ndarray]] = []
        self._buffered = 0
        self._items: dict[str, list[np.ndarray]] = {"item_id": [], "features": []}
        self._seen = np.zeros(0, dtype=bool)
        self.rows_written = 0
        self.decisions_path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temporary(self.decisions_path, owner)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            self._tmp, self.schema, compression="zstd", **_encodings(self._columns)
        )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decision-log") if background else None
        self._in_flight: tuple[Future, int] | None = None

    def __enter__(self) -> DecisionLogWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append decisions: ``columns`` maps each column of the log to an (r,) or (r, width) array.

        Raises:
            LogError: a column missing or unexpected, or rows of unequal count or wrong width.
        """
        if self._writer is None:
            raise LogError("the log writer is closed")
        names = {c.name for c in self._columns}
        if set(columns) != names:
            raise LogError(
                f"write() got columns {sorted(set(columns) - names)} not in this log and lacks "
                f"{sorted(names - set(columns))}"
            )
        rows = len(columns["reward"])
        for name, width in self._widths.items():
            shape = np.shape(columns[name])
            if shape != (rows, width):
                raise LogError(f"write(): column {name!r} has shape {shape}; want ({rows}, {width})")
        self._buffer.append({name: np.array(value) for name, value in columns.items()})  # callers reuse buffers
        self._buffered += rows
        if self._buffered >= self._rows_per_group:
            self._flush()

    def add_items(self, item_ids: np.ndarray, features: np.ndarray) -> None:
        """Record items by id (first time seen only): ``item_ids`` (r,) int64 >= 0, ``features`` (r, F_i).

        Cost O(r) plus a sort of the ids not seen before (few after the first call).
        """
        ids = np.asarray(item_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return
        features = np.asarray(features, dtype=np.float32).reshape(ids.size, self._item_dim)
        top = int(ids.max())
        if ids.min() < 0:
            raise LogError("item ids must be >= 0")
        if top >= len(self._seen):
            self._seen = np.concatenate([self._seen, np.zeros(max(top + 1 - len(self._seen), len(self._seen)), bool)])
        new = ~self._seen[ids]
        if not new.any():
            return
        fresh_ids, first = np.unique(ids[new], return_index=True)
        self._seen[fresh_ids] = True
        self._items["item_id"].append(fresh_ids)
        self._items["features"].append(features[new][first])

    def _flush(self) -> None:
        """Hand the buffered rows to the writer thread (or write them here without one)."""
        if not self._buffer:
            return
        parts, rows = self._buffer, self._buffered
        self._buffer, self._buffered = [], 0
        if self._pool is None:
            self._encode(parts)
            self.rows_written += rows
            return
        self._wait()  # one group in flight at most
        self._in_flight = (self._pool.submit(self._encode, parts), rows)

    def _wait(self) -> None:
        """Wait for the group in flight; re-raise its error here."""
        if self._in_flight is not None:
            (future, rows), self._in_flight = self._in_flight, None
            future.result()
            self.rows_written += rows

    def _encode(self, parts: list[dict[str, np.ndarray]]) -> None:
        """Concatenate buffered parts into one row group and write it (runs in the writer thread)."""
        merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        arrays = [_to_arrow(c, merged[c.name]) for c in self._columns]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def _stop_thread(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def close(self) -> tuple[Path, Path]:
        """Write the last row group and the items table, then rename both into place.

        Returns:
            ``(decisions path, items path)``.
        """
        if self._writer is None:
            raise LogError("the log writer is already closed")
        items_tmp = _temporary(self.items_path, self._owner)
        try:
            self._flush()
            self._wait()
            self._stop_thread()
            self._writer.close()
            self._writer = None
            ids = np.concatenate(self._items["item_id"]) if self._items["item_id"] else np.zeros(0, np.int64)
            feats = (
                np.concatenate(self._items["features"])
                if self._items["features"]
                else np.zeros((0, self._item_dim), np.float32)
            )
            item_table = pa.Table.from_arrays(
                [_to_arrow(ITEM_COLUMNS[0], ids), _to_arrow(ITEM_COLUMNS[1], feats.reshape(len(ids), self._item_dim))],
                schema=pa.schema(
                    [pa.field("item_id", pa.int64()), pa.field("features", pa.list_(pa.float32(), self._item_dim))],
                    metadata=self.metadata.to_parquet(),
                ),
            )
            pq.write_table(item_table, items_tmp, compression="zstd")
            for tmp, final in ((items_tmp, self.items_path), (self._tmp, self.decisions_path)):
                _fsync_file(tmp)
                os.replace(tmp, final)
            fsync_dir(self.decisions_path.parent)
        except BaseException:
            items_tmp.unlink(missing_ok=True)
            self.abort()
            raise
        return self.decisions_path, self.items_path

    def abort(self) -> None:
        """Stop and delete the temporaries (nothing is left that looks like a log)."""
        with contextlib.suppress(Exception):
            self._wait()
        self._in_flight = None
        self._stop_thread()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        self._tmp.unlink(missing_ok=True)
        self._buffer = []


DELTA_COLUMNS = ("decision_id", "step", "user_id", "session_id", "session_step")
"""Integer columns that mostly grow row to row: delta-encoded (about 5 B a decision less)."""
PLAIN_COLUMNS = ("candidate_item_ids",)
"""Columns left out of dictionary encoding: near-random ids compress better plain + zstd
(about 9 B a decision less at C = 50)."""


def _encodings(columns: list[Column]) -> dict[str, Any]:
    """ParquetWriter options: dictionary encoding except for :data:`DELTA_COLUMNS` (delta
    binary packed) and :data:`PLAIN_COLUMNS`; keys are leaf paths (``name.list.element`` for lists).
    Measured at 10,000 users x 14 steps x C = 50: 110 B a decision against 125 B with the defaults."""
    leaf = {c.name: c.name if c.width is None else f"{c.name}.list.element" for c in columns}
    skip = set(DELTA_COLUMNS) | set(PLAIN_COLUMNS)
    return {
        "use_dictionary": [leaf[c.name] for c in columns if c.name not in skip],
        "column_encoding": {c.name: "DELTA_BINARY_PACKED" for c in columns if c.name in DELTA_COLUMNS},
    }


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def log_columns(log: DecisionLog) -> dict[str, np.ndarray]:
    """The decision columns of ``log`` that it holds (for :class:`DecisionLogWriter.write`)."""
    out = {}
    for column in DECISION_COLUMNS:
        value = getattr(log, column.name)
        if value is not None:
            out[column.name] = value
    return out


def write_log(path: str | Path, log: DecisionLog, *, rows_per_group: int = 1 << 16) -> tuple[Path, Path]:
    """Write a whole in-memory :class:`DecisionLog` to ``path`` (a stem or either file name), atomically.

    Returns:
        ``(decisions path, items path)``.
    """
    columns = log_columns(log)
    optional = tuple(name for name in columns if not _BY_NAME[name].required)
    writer = DecisionLogWriter(
        path,
        log.metadata,
        user_dim=log.user_features.shape[1],
        item_dim=log.item_features.shape[1],
        n_candidates=None if log.candidate_item_ids is None else log.candidate_item_ids.shape[1],
        optional=optional,
        rows_per_group=rows_per_group,
    )
    with writer:
        for start in range(0, max(log.n, 1), rows_per_group):
            part = {name: value[start : start + rows_per_group] for name, value in columns.items()}
            if len(part["reward"]):
                writer.write(part)
        writer._items["item_id"].append(log.item_ids)
        writer._items["features"].append(log.item_features)
    return writer.decisions_path, writer.items_path


# --------------------------------------------------------------------------- overlap


def require_stochastic_log(log: DecisionLog, estimator: str = "an importance-weighted estimator") -> None:
    """Refuse a log whose logging policy was deterministic; importance-weighted estimators
    (IPS, SNIPS, DR, the slate IPS family) call this before weighting.

    A log is refused when its metadata names a registered agent declared ``deterministic``
    (LinUCB, static, oracle...), or when every logged slate had probability 1. Why: a
    deterministic logger shows one slate per context, so the log holds no outcome of any
    other slate and the weight pi_target(slate | x) / pi_logger(slate | x) is undefined
    (division by 0) wherever the target would act differently; no reweighting can recover
    the target's value (the overlap assumption fails).

    Raises:
        LogError: naming the logging policy and what to do instead.
    """
    policy = dict(log.metadata.logging_policy)
    name = policy.get("agent")
    deterministic = False
    if isinstance(name, str):
        from agents.registry import AgentError, agent_class

        try:
            deterministic = bool(agent_class(name).deterministic)
        except AgentError:
            deterministic = False
    joint = log.joint_propensity() if log.metadata.propensity_kind != "marginal" or log.slate_size == 1 else None
    all_one = joint is not None and log.n > 0 and bool(np.all(joint == 1.0))
    if deterministic or all_one:
        who = f"the logging policy {name!r}" if isinstance(name, str) else "the logging policy"
        how = "is deterministic" if deterministic else "chose every logged slate with probability 1"
        raise LogError(
            f"{estimator} cannot use this log: {who} {how}. A deterministic logger shows one slate per "
            "context, so the log holds no outcome of any other slate, and the importance weight "
            "pi_target(slate) / pi_logger(slate) is undefined wherever the target would act differently "
            "(no overlap). Log with a stochastic policy (linear_egreedy, linear_softmax, vw_epsilon, "
            "random...) or use the direct method (a reward model), which does not weight."
        )
