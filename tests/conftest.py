"""Shared fixtures for the simulated-world tests: random slates and deep equality.

Each pytest-xdist worker runs single-threaded BLAS and torch: on a 2-core machine two
workers with multithreaded BLAS fight over the cores and small matrix products get 3-4x
slower.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest


def random_slates(rng: np.random.Generator, n: int, n_candidates: int, slate_size: int) -> np.ndarray:
    """(n, k) int64 distinct candidate indices per row, uniformly at random."""
    order = rng.permuted(np.tile(np.arange(n_candidates, dtype=np.int64), (n, 1)), axis=1)
    return order[:, :slate_size]


def assert_tree_equal(a: Any, b: Any, path: str = "") -> None:
    """Exact equality of nested dicts / tuples of arrays and scalars (NaN == NaN)."""
    if isinstance(a, Mapping):
        assert isinstance(b, Mapping), f"{path}: {type(b).__name__} is not a mapping"
        assert sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_tree_equal(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), f"{path}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_tree_equal(x, y, f"{path}[{i}]")
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)


def snapshot(tree: Any) -> Any:
    """A deep copy of a nested dict / tuple of arrays (observations are reused buffers)."""
    if isinstance(tree, Mapping):
        return {key: snapshot(value) for key, value in tree.items()}
    if isinstance(tree, tuple | list):
        return type(tree)(snapshot(value) for value in tree)
    return np.array(tree, copy=True)


@pytest.fixture
def make_slates() -> Callable[[np.random.Generator, int, int, int], np.ndarray]:
    """:func:`random_slates`: ``make_slates(rng, n, C, k)`` -> (n, k) distinct indices."""
    return random_slates


@pytest.fixture
def tree_equal() -> Callable[[Any, Any], None]:
    """:func:`assert_tree_equal`: exact deep equality of nested arrays."""
    return assert_tree_equal


@pytest.fixture
def copy_tree() -> Callable[[Any], Any]:
    """:func:`snapshot`: deep copy of nested arrays."""
    return snapshot
