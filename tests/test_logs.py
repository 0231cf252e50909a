"""The decision-log format: round trip, streaming row groups, atomic close, and the reader's refusals."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from experiments.logs import (
    DecisionLog,
    DecisionLogWriter,
    LogError,
    LogMetadata,
    log_paths,
    read_log,
    write_log,
)


def tiny_log(n: int = 6, c: int = 4, k: int = 2, seed: int = 0) -> DecisionLog:
    """A valid log of ``n`` decisions over ``c`` candidates drawn from 10 items."""
    rng = np.random.default_rng(seed)
    item_ids = np.arange(100, 110, dtype=np.int64)
    candidates = np.stack([rng.choice(item_ids, c, replace=False) for _ in range(n)])
    slate = np.stack([rng.permutation(c)[:k] for _ in range(n)])
    return DecisionLog(
        metadata=LogMetadata(
            propensity_kind="conditional", action_space="candidates", slate_size=k, logging_policy={"agent": "x"}
        ),
        decision_id=np.arange(n, dtype=np.int64),
        user_id=np.arange(n, dtype=np.int64) // 2,
        step=np.arange(n, dtype=np.int64) % 2,
        user_features=rng.normal(size=(n, 3)).astype(np.float32),
        slate=slate,
        propensity=np.full((n, k), 0.5),
        click=np.array([-1, 0, 1, -1, 0, -1])[:n],
        reward=rng.random(n),
        item_ids=item_ids,
        item_features=rng.normal(size=(10, 2)).astype(np.float32),
        candidate_item_ids=candidates,
        marginal_propensity=np.full((n, k), 0.25),
        explored=rng.random(n) < 0.5,
    )


def test_round_trip_keeps_every_array_and_the_metadata(tmp_path: Path) -> None:
    log = tiny_log()
    decisions, items = write_log(tmp_path / "run", log, rows_per_group=4)
    assert (decisions.name, items.name) == ("run.decisions.parquet", "run.items.parquet")
    assert pq.ParquetFile(decisions).num_row_groups == 2  # 6 rows in groups of 4
    back = read_log(tmp_path / "run")
    assert back.metadata == log.metadata
    for f in dataclasses.fields(DecisionLog):
        a, b = getattr(log, f.name), getattr(back, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_allclose(np.asarray(b, float), np.asarray(a, float), rtol=1e-6, err_msg=f.name)
    # joins: the slate's item ids and candidate features come from the items table
    np.testing.assert_array_equal(back.slate_item_ids(), np.take_along_axis(log.candidate_item_ids, log.slate, 1))
    feats = back.candidate_features()
    assert feats.shape == (6, 4, 2)
    np.testing.assert_array_equal(feats[2, 1], log.item_features[log.candidate_item_ids[2, 1] - 100])
    np.testing.assert_allclose(back.joint_propensity(), 0.25)


def test_writer_streams_row_groups_and_leaves_nothing_on_abort(tmp_path: Path) -> None:
    log = tiny_log()
    writer = DecisionLogWriter(
        tmp_path / "a", log.metadata, user_dim=3, item_dim=2, n_candidates=4, optional=("explored",), rows_per_group=2
    )
    cols = {
        "decision_id": log.decision_id,
        "user_id": log.user_id,
        "step": log.step,
        "user_features": log.user_features,
        "candidate_item_ids": log.candidate_item_ids,
        "slate": log.slate,
        "propensity": log.propensity,
        "click": log.click,
        "reward": log.reward,
        "explored": log.explored,
    }
    for start in range(0, 6, 2):
        writer.write({k: v[start : start + 2] for k, v in cols.items()})
        writer.add_items(
            log.candidate_item_ids[start : start + 2],
            log.item_features[log.candidate_item_ids[start : start + 2] - 100],
        )
        assert writer._buffered == 0  # each group went to disk
    assert not log_paths(tmp_path / "a")[0].exists()  # not a log until closed
    writer.close()
    back = read_log(tmp_path / "a.decisions.parquet")
    assert back.n == 6 and pq.ParquetFile(tmp_path / "a.decisions.parquet").num_row_groups == 3
    assert set(back.item_ids) == set(np.unique(log.candidate_item_ids))

    with pytest.raises(RuntimeError):
        with DecisionLogWriter(tmp_path / "b", log.metadata, user_dim=3, item_dim=2, n_candidates=4) as w:
            w.write({k: v for k, v in cols.items() if k != "explored"})
            raise RuntimeError("crash mid-run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.decisions.parquet", "a.items.parquet"]


def _rewrite(path: Path, name: str, array: pa.Array | None) -> None:
    """Replace (or with None drop) column ``name`` of the decisions file, keeping the metadata."""
    table = pq.read_table(path)
    meta = table.schema.metadata
    index = table.column_names.index(name)
    table = table.remove_column(index) if array is None else table.set_column(index, name, array)
    pq.write_table(table.replace_schema_metadata(meta), path)


def _lists(rows: list[list[float]], type_: pa.DataType) -> pa.Array:
    return pa.array(rows, type=pa.list_(type_))


BAD_LOGS = [
    # (column, replacement (None drops it), words the error must contain)
    ("reward", None, ["missing required column", "reward"]),
    ("propensity", None, ["missing required column", "propensity"]),
    (
        "propensity",
        _lists([[0.5, 0.5]] * 3 + [[0.5, 0.0]] + [[0.5, 0.5]] * 2, pa.float64()),
        ["'propensity' row 3 slot 1", "(0, 1]"],
    ),
    (
        "propensity",
        _lists([[0.5, 0.5]] * 4 + [[float("nan"), 0.5]] + [[0.5, 0.5]], pa.float64()),
        ["'propensity' row 4 slot 0", "NaN"],
    ),
    ("propensity", _lists([[0.5, 0.5]] * 5 + [[0.5, 1.5]], pa.float64()), ["'propensity' row 5 slot 1"]),
    (
        "propensity",
        _lists([[0.5, 0.5]] * 2 + [[0.5]] + [[0.5, 0.5]] * 3, pa.float64()),
        ["'propensity' row 2 has 1 entries"],
    ),
    ("slate", _lists([[0, 1]] * 4 + [[0, 4]] + [[0, 1]], pa.int16()), ["'slate' row 4", "[0, 4)"]),
    ("slate", _lists([[0, 1]] + [[2, 2]] + [[0, 1]] * 4, pa.int16()), ["'slate' row 1", "repeats"]),
    ("slate", _lists([[0, 1, 2]] * 6, pa.int16()), ["'slate'", "want (6, 2)"]),
    ("slate", _lists([[0, -1]] + [[0, 1]] * 5, pa.int16()), ["'slate' row 0"]),
    ("candidate_item_ids", _lists([[100]] * 6, pa.int64()), ["1 candidates cannot fill slates of k = 2"]),
    (
        "candidate_item_ids",
        _lists([[100, 101, 102, 103]] * 5 + [[100, 101, 102]], pa.int64()),
        ["'candidate_item_ids' row 5 has 3 entries"],
    ),
    ("marginal_propensity", _lists([[0.2, 0.2, 0.2]] * 6, pa.float64()), ["'marginal_propensity'", "want (6, 2)"]),
    (
        "candidate_item_ids",
        _lists([[100, 101, 102, 103]] * 3 + [[100, 101, 102, 999]] * 3, pa.int64()),
        ["row 3", "999", "items table"],
    ),
    ("candidate_item_ids", None, ["'candidate_item_ids' is missing", "catalog"]),
    ("click", pa.array([0, 0, 2, 0, 0, 0], pa.int8()), ["'click' row 2", "[-1, 1]"]),
    ("reward", pa.array([0.0, None, 1, 1, 1, 1], pa.float32()), ["'reward' row 1 is null"]),
]


@pytest.mark.parametrize(
    ("column", "replacement", "words"), BAD_LOGS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BAD_LOGS)]
)
def test_reader_refuses_malformed_logs_naming_column_and_row(
    tmp_path: Path, column: str, replacement: pa.Array | None, words: list[str]
) -> None:
    log = tiny_log()
    log = dataclasses.replace(log, slate=np.tile([0, 1], (6, 1)))  # every case starts from a known slate
    decisions, _ = write_log(tmp_path / "bad", log)
    _rewrite(decisions, column, replacement)
    with pytest.raises(LogError) as err:
        read_log(decisions)
    for word in words:
        assert word in str(err.value), str(err.value)
    assert str(decisions) in str(err.value)


def test_reader_refuses_missing_metadata_another_version_and_missing_items(tmp_path: Path) -> None:
    decisions, items = write_log(tmp_path / "m", tiny_log())
    table = pq.read_table(decisions)
    pq.write_table(table.replace_schema_metadata({}), tmp_path / "x.decisions.parquet")
    with pytest.raises(LogError, match=r"bubblegym\.format_version"):
        read_log(tmp_path / "x")
    meta = dict(table.schema.metadata)
    meta[b"bubblegym.format_version"] = b"99"
    pq.write_table(table.replace_schema_metadata(meta), decisions)
    with pytest.raises(LogError, match="version 99 is not supported"):
        read_log(decisions)
    pq.write_table(table, decisions)
    items.unlink()
    with pytest.raises(LogError, match="no such items file"):
        read_log(tmp_path / "m")


def test_metadata_refuses_unknown_kinds() -> None:
    with pytest.raises(LogError, match="propensity_kind must be one of"):
        LogMetadata(propensity_kind="posterior", action_space="candidates", slate_size=2)
    with pytest.raises(LogError, match="action_space must be one of"):
        LogMetadata(propensity_kind="joint", action_space="everything", slate_size=2)


def test_a_deterministic_logging_policy_is_refused_for_importance_weighting() -> None:
    from experiments.logs import require_stochastic_log

    log = tiny_log()
    require_stochastic_log(log)  # propensities 0.5: fine
    by_name = dataclasses.replace(
        log, metadata=dataclasses.replace(log.metadata, logging_policy={"agent": "linucb", "alpha": 1.0})
    )
    with pytest.raises(LogError, match=r"'linucb' is deterministic\..*no outcome of any other slate"):
        require_stochastic_log(by_name, "IPS")
    ones = dataclasses.replace(log, propensity=np.ones_like(log.propensity))
    with pytest.raises(LogError, match="chose every logged slate with probability 1"):
        require_stochastic_log(ones)
