"""The item catalog: topics, unit embeddings around topic centroids, quality, length.

The catalog holds M item slots in a ring ordered by age: slot ``(oldest + r) % M`` is the
r-th oldest item. An arriving item replaces the oldest one and gets a new, never reused
item id (item cold start: its features are known, its popularity is not).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numba import njit

from simenv.config import CatalogConfig
from simenv.dynamics import normalize_rows

ITEM_EXTRA_FEATURES = ("quality", "length", "fresh")
"""Item feature columns after the d embedding columns."""


def topic_centroids(n_topics: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(K, d) float32 unit-norm topic centroids drawn uniformly on the sphere."""
    return normalize_rows(rng.standard_normal((n_topics, dim))).astype(np.float32)


@dataclass
class Catalog:
    """Item state, arrays with a leading slot axis of length M.

    Attributes:
        centroids: (K, d) float32 topic centroids.
        embedding: (M, d) float32 unit item embeddings e_i.
        topic: (M,) int32 topic c_i.
        quality: (M,) float32 quality q_i.
        length: (M,) float32 length l_i in minutes.
        item_id: (M,) int64 unique id of the item now in each slot.
        birth_step: (M,) int64 step at which the item arrived (0 for the initial catalog).
        features: (M, d + 3) float32 observable features
            [embedding, quality, length / length_mean, fresh (1 for the newest items)].
        oldest: slot of the oldest item (the next one an arrival replaces).
        next_id: id the next arriving item will get.
    """

    config: CatalogConfig
    centroids: np.ndarray
    embedding: np.ndarray
    topic: np.ndarray
    quality: np.ndarray
    length: np.ndarray
    item_id: np.ndarray
    birth_step: np.ndarray
    features: np.ndarray
    oldest: int
    next_id: int

    @classmethod
    def generate(cls, config: CatalogConfig, rng: np.random.Generator) -> Catalog:
        """Draw a catalog of ``config.n_items`` items from ``rng``."""
        m, d = config.n_items, config.dim
        centroids = topic_centroids(config.n_topics, d, rng)
        features = np.zeros((m, d + len(ITEM_EXTRA_FEATURES)), dtype=np.float32)
        catalog = cls(
            config=config,
            centroids=centroids,
            embedding=features[:, :d],
            topic=np.zeros(m, dtype=np.int32),
            quality=np.zeros(m, dtype=np.float32),
            length=np.zeros(m, dtype=np.float32),
            item_id=np.arange(m, dtype=np.int64),
            birth_step=np.zeros(m, dtype=np.int64),
            features=features,
            oldest=0,
            next_id=m,
        )
        catalog._draw_items(np.arange(m), rng)
        return catalog

    def __setstate__(self, state: dict) -> None:
        """Unpickle (or deep-copy), making ``embedding`` a view of ``features`` again:
        pickle stores the two arrays separately, and arrivals must reach both."""
        self.__dict__.update(state)
        self.embedding = self.features[:, : self.config.dim]

    @property
    def n_items(self) -> int:
        return self.config.n_items

    def _draw_items(self, slots: np.ndarray, rng: np.random.Generator) -> None:
        """Fill ``slots`` with freshly drawn items (topic, embedding, quality, length)."""
        cfg, n = self.config, len(slots)
        topic = rng.integers(0, cfg.n_topics, n)
        raw = self.centroids[topic] + cfg.topic_spread * rng.standard_normal((n, cfg.dim))
        self.topic[slots] = topic
        self.embedding[slots] = normalize_rows(raw)
        self.quality[slots] = cfg.quality_std * np.clip(rng.standard_normal(n), -4.0, 4.0)
        self.length[slots] = cfg.length_mean * np.exp(0.25 * np.clip(rng.standard_normal(n), -4.0, 4.0) - 0.03125)
        d = cfg.dim
        self.features[slots, d] = self.quality[slots]
        self.features[slots, d + 1] = self.length[slots] / cfg.length_mean

    def age_order_slots(self, ranks: np.ndarray) -> np.ndarray:
        """Slots of the items at age ranks ``ranks`` (0 = oldest, M - 1 = newest)."""
        if self.oldest == 0:
            return ranks
        ranks = ranks + self.oldest
        ranks %= self.n_items
        return ranks

    def arrive(self, n_new: int, step: int, rng: np.random.Generator) -> np.ndarray:
        """Replace the ``n_new`` oldest items with new ones; returns their slots."""
        m, d = self.n_items, self.config.dim
        n_new = min(n_new, m)
        if n_new == 0:
            return np.empty(0, dtype=np.int64)
        slots = self.age_order_slots(np.arange(n_new))
        self._draw_items(slots, rng)
        self.item_id[slots] = np.arange(self.next_id, self.next_id + n_new)
        self.birth_step[slots] = step
        self.next_id += n_new
        self.oldest = (self.oldest + n_new) % m
        # The newest `fresh_pool` items carry fresh = 1; the ones pushed out lose it.
        self.features[:, d + 2] = 0.0
        self.features[self.age_order_slots(np.arange(m - self.config.fresh_pool, m)), d + 2] = 1.0
        return slots


def item_feature_bounds(config: CatalogConfig) -> tuple[np.ndarray, np.ndarray]:
    """(F_i,) lower and upper bounds of the item features (draws are clipped at 4 sigma)."""
    d = config.dim
    low = np.concatenate([np.full(d, -1.0), [-4.0 * config.quality_std, np.exp(-1.03125), 0.0]])
    high = np.concatenate([np.full(d, 1.0), [4.0 * config.quality_std, np.exp(0.96875), 1.0]])
    return low.astype(np.float32), high.astype(np.float32)


def retrieve_candidates(
    catalog: Catalog,
    n_users: int,
    n_candidates: int,
    n_fresh: int,
    rng: np.random.Generator,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Candidate retrieval: C distinct catalog slots per user, by stratified sampling.

    The age-ordered ring is cut into strata: the ``C - n_fresh`` regular candidates come
    one from each equal stratum of the older items, the ``n_fresh`` ones one from each
    stratum of the ``fresh_pool`` newest items. Every item then has the same chance of
    being retrieved within its group, and a user's C candidates are distinct by
    construction (no per-user sampling without replacement needed).

    Args:
        out: an optional (n_users, C) int64 buffer to write the slots into.

    Returns:
        (n_users, C) int64 catalog slots (``out`` if given).
    """
    start, size = _strata(catalog.n_items, catalog.config.fresh_pool, n_candidates, n_fresh)
    draws = rng.random((n_users, n_candidates), dtype=np.float32)
    slots = np.empty((n_users, n_candidates), dtype=np.int64) if out is None else out
    _draws_to_slots(draws, start, size, catalog.oldest, catalog.n_items, slots)
    return slots


@njit(cache=True, nogil=True)
def _draws_to_slots(
    draws: np.ndarray, start: np.ndarray, size: np.ndarray, oldest: int, n_items: int, out: np.ndarray
) -> None:
    """Slot of each draw (B, C) in [0, 1): age rank ``start[c] + floor(draw * size[c])`` (the
    float32 product, as in numpy) moved onto the ring by ``oldest``, into ``out`` (B, C)."""
    for b in range(draws.shape[0]):
        for c in range(draws.shape[1]):
            slot = start[c] + np.int64(draws[b, c] * size[c]) + oldest
            out[b, c] = slot - n_items if slot >= n_items else slot


@functools.cache
def _strata(n_items: int, fresh_pool: int, n_candidates: int, n_fresh: int) -> tuple[np.ndarray, np.ndarray]:
    """(C,) int64 first age rank and float32 size of each candidate's stratum (a float32
    draw in [0, 1) times a size below 2**24 floors to a rank inside the stratum)."""
    pool = fresh_pool if n_fresh else 0
    groups = [(0, n_items - pool, n_candidates - n_fresh), (n_items - pool, pool, n_fresh)]
    starts, sizes = [], []
    for begin, span, count in groups:
        if count:
            edges = begin + (np.arange(count + 1) * span) // count
            starts.append(edges[:-1])
            sizes.append(np.diff(edges))
    return np.concatenate(starts), np.concatenate(sizes).astype(np.float32)
