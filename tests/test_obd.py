"""The Open Bandit Dataset adapter, on a small file of that layout written by the test."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.logs import LogError, read_log, write_log
from experiments.obd import read_obd

N_ITEMS = 6


def _hash(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # OBD's categorical values are hashes


def write_obd(folder: Path, n: int = 40, seed: int = 0) -> tuple[Path, Path]:
    """An OBD-layout pair of CSVs: ``all.csv`` (unnamed index first) and ``item_context.csv``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2019-11-24", periods=n, freq="37s", tz="UTC").astype(str),
            "item_id": rng.integers(0, N_ITEMS, n),
            "position": rng.integers(1, 4, n),
            "click": (rng.random(n) < 0.2).astype(int),
            "propensity_score": np.full(n, 1 / N_ITEMS),
            **{f"user_feature_{j}": [_hash(f"u{j}-{v}") for v in rng.integers(0, 3, n)] for j in range(2)},
            **{f"user-item_affinity_{i}": rng.random(n) for i in range(N_ITEMS)},
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(N_ITEMS)[::-1],  # not in id order: the adapter sorts
            "item_feature_0": rng.normal(size=N_ITEMS),
            "item_feature_1": [_hash(f"i-{v}") for v in np.arange(N_ITEMS) % 2],
        }
    )
    decisions, context = folder / "all.csv", folder / "item_context.csv"
    frame.to_csv(decisions)  # with the unnamed index column, as OBD's files
    items.to_csv(context, index=False)
    return decisions, context


def test_obd_layout_becomes_a_catalog_wide_marginal_one_item_log(tmp_path: Path) -> None:
    decisions, context = write_obd(tmp_path)
    raw = pd.read_csv(decisions, index_col=0)
    log = read_obd(decisions, context, logging_policy="random")
    meta = log.metadata
    assert (meta.propensity_kind, meta.action_space, meta.slate_size) == ("marginal", "catalog", 1)
    assert log.n == 40 and log.n_candidates == N_ITEMS and log.candidate_item_ids is None
    np.testing.assert_array_equal(log.item_ids, np.arange(N_ITEMS))
    np.testing.assert_array_equal(log.slate_item_ids()[:, 0], raw["item_id"])
    np.testing.assert_array_equal(log.position, raw["position"] - 1)  # 0-based
    np.testing.assert_array_equal(log.click, np.where(raw["click"] == 1, 0, -1))
    np.testing.assert_allclose(log.propensity[:, 0], 1 / N_ITEMS)
    np.testing.assert_allclose(log.joint_propensity(), 1 / N_ITEMS)  # k = 1: marginal is the slate's
    # user features: one-hot of 2 hashed columns (3 values each) then 6 affinities
    assert log.user_features.shape == (40, 3 + 3 + N_ITEMS)
    np.testing.assert_array_equal(log.user_features[:, :6].sum(axis=1), 2.0)
    assert meta.user_feature_names[0].startswith("user_feature_0=")
    # item features: the float then the one-hot of the hashed column; candidates are the catalog
    assert log.item_features.shape == (N_ITEMS, 1 + 2)
    assert log.candidate_features(np.arange(3)).shape == (3, N_ITEMS, 3)
    # and it is a first-class log: written and read back in the BubbleGym format
    write_log(tmp_path / "obd", log)
    back = read_log(tmp_path / "obd")
    np.testing.assert_array_equal(back.position, log.position)
    assert back.metadata == meta


@pytest.mark.parametrize(
    ("column", "row", "value", "words"),
    [
        ("propensity_score", 7, 0.0, "'propensity_score' row 7 slot 0 is 0.0"),
        ("propensity_score", 3, 1.5, "'propensity_score' row 3 slot 0 is 1.5"),
        ("position", 5, 0, "'position' row 5 is 0; OBD positions are 1-based"),
        ("item_id", 9, 99, "'item_id' row 9 is 99, absent from"),
        ("click", 2, 3, "'click' row 2 is 3.0; want 0 or 1"),
    ],
)
def test_obd_adapter_refuses_bad_rows(tmp_path: Path, column: str, row: int, value: float, words: str) -> None:
    decisions, context = write_obd(tmp_path)
    frame = pd.read_csv(decisions, index_col=0)
    frame[column] = frame[column].astype(float)
    frame.loc[row, column] = value
    frame.to_csv(decisions)
    with pytest.raises(LogError) as err:
        read_obd(decisions, context)
    assert words in str(err.value) and str(decisions) in str(err.value)


def test_obd_adapter_names_a_missing_column(tmp_path: Path) -> None:
    decisions, context = write_obd(tmp_path)
    pd.read_csv(decisions, index_col=0).drop(columns="propensity_score").to_csv(decisions)
    with pytest.raises(LogError, match=r"missing column\(s\) \['propensity_score'\]"):
        read_obd(decisions, context)
