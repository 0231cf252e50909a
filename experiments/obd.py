"""Read the Open Bandit Dataset's CSV layout as a :class:`~experiments.logs.DecisionLog`.

The Open Bandit Dataset (Saito, Aihara, Matsutani & Narita 2021, "Open Bandit Dataset and
Pipeline", NeurIPS Datasets and Benchmarks; ZOZOTOWN fashion recommendations) ships one CSV
per logging policy and campaign (``<policy>/<campaign>/<campaign>.csv``) plus
``item_context.csv``. Its layout, as in the public sample:

* decisions: an unnamed index column, ``timestamp``, ``item_id`` (0-based), ``position``
  (1-based slot of the 3-slot display), ``click`` (0/1), ``propensity_score`` (the
  *marginal* probability of that item at that position under the logging policy),
  ``user_feature_0..3`` (hashed categorical strings) and ``user-item_affinity_<id>`` floats;
* items: ``item_id``, ``item_feature_0`` (float) and ``item_feature_1..`` (hashed categorical).

Rows are single impressions (not grouped into slates), so each becomes a one-item decision
(k = 1) over the whole catalog (``action_space = catalog``) with its ``position`` kept
0-based and the propensity marked ``marginal``. The data carry no user id: each impression
is its own unit (``user_id`` = row). Categorical features are one-hot encoded (categories in
sorted order; names ``<column>=<value>``). obp's own loader does not run on pandas 3, so the
CSVs are read with pandas directly; the sample is not shipped with BubbleGym.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from experiments.logs import DecisionLog, LogError, LogMetadata

OBD_DECISION_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")
"""Columns every OBD decisions CSV must hold (plus ``user_feature_*`` columns)."""
OBD_ITEM_COLUMNS = ("item_id",)


def _one_hot(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """(n, sum of categories) float32 one-hot of the categorical ``columns`` and the feature names."""
    parts, names = [], []
    for column in columns:
        values = frame[column].astype(str).to_numpy()
        categories = np.unique(values)
        parts.append((values[:, None] == categories[None, :]).astype(np.float32))
        names += [f"{column}={value}" for value in categories]
    return (np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0), np.float32)), names


def _numeric(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise LogError(f"{source}: column {column!r} row {row} is {frame[column].iloc[row]!r}; want a number")
    return values


def _require(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LogError(f"{source}: missing column(s) {missing}; the Open Bandit Dataset layout has {list(columns)}")


def read_obd(
    decisions_csv: str | Path, item_context_csv: str | Path, *, logging_policy: str = "unknown"
) -> DecisionLog:
    """Read an OBD decisions CSV and its ``item_context.csv`` as a validated :class:`DecisionLog`.

    Args:
        decisions_csv: e.g. ``obd/random/all/all.csv``.
        item_context_csv: the ``item_context.csv`` beside it.
        logging_policy: the policy that logged it (``random`` or ``bts`` in OBD), for the metadata.

    Returns:
        n one-item decisions: ``slate`` (n, 1) index of the item in the items table (sorted by
        id), ``propensity`` (n, 1) marginal, ``position`` (n,) 0-based, ``click`` 0 or -1,
        ``reward`` the click, ``user_features`` the one-hot user features then the affinities.

    Raises:
        LogError: a missing column, an item id absent from the items table, a position below 1,
            or a propensity outside (0, 1] (naming the column and the data row, 0-based).
    """
    source, item_source = str(decisions_csv), str(item_context_csv)
    try:
        frame = pd.read_csv(decisions_csv, index_col=0)
        items = pd.read_csv(item_context_csv, index_col=None)
    except (OSError, ValueError) as err:
        raise LogError(f"cannot read the Open Bandit Dataset CSVs: {err}") from None
    items = items.drop(columns=[c for c in items.columns if c.startswith("Unnamed")])
    _require(frame, OBD_DECISION_COLUMNS, source)
    _require(items, OBD_ITEM_COLUMNS, item_source)
    n = len(frame)

    item_ids = _numeric(items, "item_id", item_source).astype(np.int64)
    order = np.argsort(item_ids)
    items, item_ids = items.iloc[order].reset_index(drop=True), item_ids[order]
    numeric_items = [c for c in items.columns if c != "item_id" and pd.api.types.is_numeric_dtype(items[c])]
    categorical_items = [c for c in items.columns if c != "item_id" and c not in numeric_items]
    item_onehot, item_onehot_names = _one_hot(items, categorical_items)
    item_features = np.concatenate([items[numeric_items].to_numpy(np.float32), item_onehot], axis=1)

    logged = _numeric(frame, "item_id", source).astype(np.int64)
    slot = np.searchsorted(item_ids, logged)
    unknown = (slot >= len(item_ids)) | (item_ids[np.minimum(slot, len(item_ids) - 1)] != logged)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise LogError(f"{source}: column 'item_id' row {row} is {logged[row]}, absent from {item_source}")
    position = _numeric(frame, "position", source).astype(np.int64)
    if (position < 1).any():
        row = int(np.flatnonzero(position < 1)[0])
        raise LogError(f"{source}: column 'position' row {row} is {position[row]}; OBD positions are 1-based (>= 1)")
    click = _numeric(frame, "click", source)
    if not np.isin(click, (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(click, (0, 1)))[0])
        raise LogError(f"{source}: column 'click' row {row} is {click[row]}; want 0 or 1")

    user_categorical = sorted(c for c in frame.columns if c.startswith("user_feature_"))
    affinity = [c for c in frame.columns if c.startswith("user-item_affinity_")]
    user_onehot, user_names = _one_hot(frame, user_categorical)
    user_features = np.concatenate([user_onehot, frame[affinity].to_numpy(np.float32)], axis=1)
    timestamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
    metadata = LogMetadata(
        propensity_kind="marginal",
        action_space="catalog",
        slate_size=1,
        logging_policy={"name": logging_policy, "source": "Open Bandit Dataset"},
        world={
            "source": source,
            "items": item_source,
            "note": "one impression per row; no user ids (user_id = row); step = row order by timestamp",
            "first_timestamp": str(timestamps.min()),
            "last_timestamp": str(timestamps.max()),
        },
        user_feature_names=(*user_names, *affinity),
        item_feature_names=(*numeric_items, *item_onehot_names),
        reward_unit="click",
    )
    rows = np.arange(n, dtype=np.int64)
    step = np.argsort(np.argsort(timestamps.to_numpy(), kind="stable"), kind="stable").astype(np.int64)
    try:
        return DecisionLog(
            metadata=metadata,
            decision_id=rows,
            user_id=rows,
            step=step,
            user_features=user_features,
            slate=slot[:, None],
            propensity=_numeric(frame, "propensity_score", source)[:, None],
            click=np.where(click == 1, 0, -1).astype(np.int64),
            reward=click,
            item_ids=item_ids,
            item_features=item_features,
            position=position - 1,
        )
    except LogError as err:
        message = str(err).replace("DecisionLog", source, 1).replace("'propensity'", "'propensity_score'")
        raise LogError(message) from None
