"""The item catalog: centred topics, unit embeddings at a set cosine to their topic,
click appeal against value, length.

The catalog holds M item slots in a ring ordered by age: slot ``(oldest + r) % M`` is the
r-th oldest item. An arriving item replaces the oldest one and gets a new, never reused
item id (item cold start: its features are known, its popularity is not).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numba import njit

from simenv.config import CatalogConfig, RetrievalConfig
from simenv.dynamics import normalize_rows
from simenv.kernels import Items

ITEM_EXTRA_FEATURES = ("appeal", "length", "fresh")
"""Item feature columns after the d embedding columns (value is hidden)."""


def topic_centroids(n_topics: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(K, d) float32 unit topic centroids that sum to (about) zero.

    For 2 <= K <= d: a regular simplex (pairwise cosine -1 / (K - 1), the most distinct
    K directions with a zero mean) in a random orientation. For K > d: directions
    uniform on the sphere, centred (their mean subtracted) and renormalised. For K = 1:
    one random direction (a single topic cannot be centred).
    """
    raw = rng.standard_normal((n_topics, dim))
    if n_topics == 1:
        return normalize_rows(raw).astype(np.float32)
    if n_topics <= dim:
        raw = np.linalg.qr(raw.T)[0].T  # K orthonormal rows
    return normalize_rows(raw - raw.mean(axis=0)).astype(np.float32)


def embed_around(
    centroids: np.ndarray, cosine: float, normal: np.ndarray, topic: np.ndarray | None = None
) -> np.ndarray:
    """Unit vectors at exactly ``cosine`` to their centroid, in a random direction.

    ``e = cosine * mu + sqrt(1 - cosine^2) * z_perp``, with ``z_perp`` the unit part of
    ``normal`` orthogonal to ``mu``. Given ``topic``, the orthogonal parts are centred
    within each topic first (their mean subtracted), so a topic's items average exactly
    onto their centroid's axis.

    Args:
        centroids: (n, d) unit centroid of each item. normal: (n, d) standard normal draws.
        topic: optional (n,) topic of each item, to centre the orthogonal parts per topic.

    Returns:
        (n, d) float64 unit embeddings.
    """
    perp = normalize_rows(normal - np.vecdot(normal, centroids)[:, None] * centroids)
    if topic is not None:
        counts = np.bincount(topic)[:, None]
        sums = np.zeros((len(counts), perp.shape[1]))
        np.add.at(sums, topic, perp)
        perp = perp - (sums / np.maximum(counts, 1))[topic]
        perp -= np.vecdot(perp, centroids)[:, None] * centroids  # still orthogonal
    return cosine * centroids + np.sqrt(1.0 - cosine * cosine) * normalize_rows(perp)


def appeal_and_value(config: CatalogConfig, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n,) appeal and (n,) value of new items.

    ``(a, v) = (appeal_std z_a, value_std (rho z_a + sqrt(1 - rho^2) z_v))`` with standard
    normals clipped at 4 sigma; a clickbait item (probability ``clickbait_share``) then
    gets ``a += gap`` and ``v -= gap`` (Ie et al. 2019's "chocolate" documents).
    """
    z = np.clip(rng.standard_normal((2, n)), -4.0, 4.0)
    rho = config.appeal_value_correlation
    appeal = config.appeal_std * z[0]
    value = config.value_std * (rho * z[0] + np.sqrt(1.0 - rho * rho) * z[1])
    clickbait = rng.random(n) < config.clickbait_share
    appeal += config.clickbait_gap * clickbait
    value -= config.clickbait_gap * clickbait
    return appeal, value


@dataclass
class Catalog:
    """Item state, arrays with a leading slot axis of length M.

    Attributes:
        centroids: (K, d) float32 topic centroids.
        embedding: (M, d) float32 unit item embeddings e_i.
        topic: (M,) int32 topic c_i.
        appeal: (M,) float32 click appeal a_i (observable).
        value: (M,) float32 value v_i (hidden: enters watch time and satisfaction).
        length: (M,) float32 length l_i in minutes.
        item_id: (M,) int64 unique id of the item now in each slot.
        birth_step: (M,) int64 step at which the item arrived (0 for the initial catalog).
        features: (M, d + 3) float32 observable features
            [embedding, appeal, length / length_mean, fresh (1 for the newest items)].
        oldest: slot of the oldest item (the next one an arrival replaces).
        next_id: id the next arriving item will get.
    """

    config: CatalogConfig
    centroids: np.ndarray
    embedding: np.ndarray
    topic: np.ndarray
    appeal: np.ndarray
    value: np.ndarray
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
            appeal=np.zeros(m, dtype=np.float32),
            value=np.zeros(m, dtype=np.float32),
            length=np.zeros(m, dtype=np.float32),
            item_id=np.arange(m, dtype=np.int64),
            birth_step=np.zeros(m, dtype=np.int64),
            features=features,
            oldest=0,
            next_id=m,
        )
        catalog._draw_items(np.arange(m), rng, balanced=True)
        if config.arrival_rate > 0 or config.fresh_share > 0:  # the newest items are fresh from the start
            features[m - min(config.fresh_pool, m) :, d + 2] = 1.0
        return catalog

    def __setstate__(self, state: dict) -> None:
        """Unpickle (or deep-copy), making ``embedding`` a view of ``features`` again:
        pickle stores the two arrays separately, and arrivals must reach both."""
        self.__dict__.update(state)
        self.embedding = self.features[:, : self.config.dim]

    @property
    def n_items(self) -> int:
        return self.config.n_items

    def arrays(self) -> Items:
        """The arrays the compiled step reads (views, not copies)."""
        return Items(self.features, self.item_id, self.topic, self.appeal, self.value, self.length)

    def _draw_items(self, slots: np.ndarray, rng: np.random.Generator, balanced: bool = False) -> None:
        """Fill ``slots`` with freshly drawn items (topic, embedding, appeal, value, length).

        ``balanced`` (the initial catalog): every topic gets an equal share of the items
        (up to one) and the off-centroid parts are centred per topic, so the catalog's
        mean embedding is (about) zero, not just zero in expectation. Arrivals draw topics
        at random.
        """
        cfg, n, d = self.config, len(slots), self.config.dim
        topic = rng.permutation(np.arange(n) % cfg.n_topics) if balanced else rng.integers(0, cfg.n_topics, n)
        self.topic[slots] = topic
        self.embedding[slots] = embed_around(
            self.centroids[topic].astype(np.float64),
            cfg.topic_concentration,
            rng.standard_normal((n, d)),
            topic if balanced else None,
        )
        self.appeal[slots], self.value[slots] = appeal_and_value(cfg, n, rng)
        self.length[slots] = cfg.length_mean * np.exp(0.25 * np.clip(rng.standard_normal(n), -4.0, 4.0) - 0.03125)
        self.features[slots, d] = self.appeal[slots]
        self.features[slots, d + 1] = self.length[slots] / cfg.length_mean

    def age_order_slots(self, ranks: np.ndarray) -> np.ndarray:
        """Slots of the items at age ranks ``ranks`` (0 = oldest, M - 1 = newest)."""
        if self.oldest == 0:
            return ranks
        ranks = ranks + self.oldest
        ranks %= self.n_items
        return ranks

    def arrive(self, n_new: int, step: int, rng: np.random.Generator) -> np.ndarray:
        """Replace the ``n_new`` oldest items with new ones; returns their slots.

        Costs O(n_new): only the new items and the ones they push out of the fresh pool
        change their ``fresh`` flag.
        """
        m, d, pool = self.n_items, self.config.dim, self.config.fresh_pool
        n_new = min(n_new, m)
        if n_new == 0:
            return np.empty(0, dtype=np.int64)
        slots = self.age_order_slots(np.arange(n_new))
        self._draw_items(slots, rng)
        self.item_id[slots] = np.arange(self.next_id, self.next_id + n_new)
        self.birth_step[slots] = step
        self.next_id += n_new
        # Before the move, age ranks [m - pool, m - pool + n_new) are the fresh items that
        # the arrivals push out of the pool (the oldest n_new ranks become the newest).
        leaving = np.arange(max(m - pool, n_new), min(m - pool + n_new, m))
        self.features[self.age_order_slots(leaving), d + 2] = 0.0
        self.features[slots, d + 2] = 1.0 if pool >= n_new else 0.0
        if pool < n_new:  # more arrivals than the pool holds: only the newest are fresh
            self.features[slots[n_new - pool :], d + 2] = 1.0
        self.oldest = (self.oldest + n_new) % m
        return slots


def item_feature_bounds(config: CatalogConfig) -> tuple[np.ndarray, np.ndarray]:
    """(F_i,) lower and upper bounds of the item features (draws are clipped at 4 sigma)."""
    d = config.dim
    gap = config.clickbait_gap if config.clickbait_share > 0 else 0.0
    appeal = 4.0 * config.appeal_std
    low = np.concatenate([np.full(d, -1.0), [-appeal, np.exp(-1.03125), 0.0]])
    high = np.concatenate([np.full(d, 1.0), [appeal + gap, np.exp(0.96875), 1.0]])
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


@dataclass(frozen=True)
class RelevanceDraws:
    """The relevance retriever's random draws for B users (see :func:`retrieve_relevant`).

    Attributes:
        pool: (B, pool + n_fresh) int64 catalog slots: the scored pool, then the fresh ones.
        normal: (B, d) float64 standard normals, the retriever's error on theta.
        explore: (B, n_explore) float64 uniforms for the explore share.
    """

    pool: np.ndarray
    normal: np.ndarray
    explore: np.ndarray

    def __getitem__(self, rows: np.ndarray) -> RelevanceDraws:
        return RelevanceDraws(self.pool[rows], self.normal[rows], self.explore[rows])


def draw_relevance(
    catalog: Catalog, n_users: int, n_candidates: int, n_fresh: int, config: RetrievalConfig, rng: np.random.Generator
) -> RelevanceDraws:
    """Draw what :func:`select_relevant` needs for ``n_users`` users (the pool by stratified
    sampling, as in :func:`retrieve_candidates`)."""
    n_explore = round(config.explore_share * (n_candidates - n_fresh))
    pool = retrieve_candidates(catalog, n_users, config.pool + n_fresh, n_fresh, rng)
    normal = rng.standard_normal((n_users, catalog.config.dim))
    return RelevanceDraws(pool, normal, rng.random((n_users, n_explore)))


def select_relevant(
    catalog: Catalog,
    interest: np.ndarray,
    draws: RelevanceDraws,
    n_candidates: int,
    config: RetrievalConfig,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The candidates of users of interests ``interest`` (B, d) from their ``draws``: the
    ``n_top`` pool items of largest ``(theta + interest_noise z) . e``, then the explore
    share, then the fresh ones (see :func:`retrieve_relevant`). No random draws."""
    n_fresh = draws.pool.shape[1] - config.pool
    n_top = n_candidates - n_fresh - draws.explore.shape[1]
    estimate = interest + config.interest_noise * draws.normal
    slots = np.empty((interest.shape[0], n_candidates), dtype=np.int64) if out is None else out
    _relevance_slots(draws.pool, config.pool, catalog.features, estimate, n_top, draws.explore, slots)
    return slots


def retrieve_relevant(
    catalog: Catalog,
    interest: np.ndarray,
    n_candidates: int,
    n_fresh: int,
    config: RetrievalConfig,
    rng: np.random.Generator,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Candidate retrieval by estimated relevance (a production-style two-stage retriever).

    Per user: ``config.pool`` distinct older items are drawn by stratified sampling (as in
    :func:`retrieve_candidates`) and scored by ``(theta + interest_noise z) . e`` with z
    standard normal (d,), the retriever's error on the user's interest; the best-scored
    ``n_top = C_old - n_explore`` come first, then ``n_explore = round(explore_share C_old)``
    drawn uniformly from the rest of the pool, then the ``n_fresh`` fresh candidates
    (stratified over the ``fresh_pool`` newest items). ``C_old = C - n_fresh``.
    :func:`draw_relevance` then :func:`select_relevant`.

    Args:
        interest: (B, d) interests theta of the users served.
        out: an optional (B, C) int64 buffer to write the slots into.

    Returns:
        (B, C) int64 distinct catalog slots (``out`` if given).
    """
    draws = draw_relevance(catalog, interest.shape[0], n_candidates, n_fresh, config, rng)
    return select_relevant(catalog, interest, draws, n_candidates, config, out)


@njit(cache=True, nogil=True)
def _relevance_slots(
    pool: np.ndarray, n_pool: int, features: np.ndarray, estimate: np.ndarray, n_top: int, explore: np.ndarray,
    out: np.ndarray,
) -> None:  # fmt: skip
    """Per row of ``pool`` (B, n_pool + n_fresh): the ``n_top`` pool slots of largest
    ``estimate[b] . e`` (ties to the earlier), then ``explore.shape[1]`` of the others by
    a partial Fisher-Yates shuffle on ``explore`` (B, n_explore) uniforms, then the fresh
    slots ``pool[b, n_pool:]``, into ``out`` (B, C)."""
    d = estimate.shape[1]
    n_explore = explore.shape[1]
    score = np.empty(n_pool)
    for b in range(pool.shape[0]):
        for i in range(n_pool):
            s = pool[b, i]
            dot = 0.0
            for f in range(d):
                dot += estimate[b, f] * features[s, f]
            score[i] = dot
        rest = pool[b, :n_pool].copy()
        order = np.argsort(-score, kind="mergesort")
        for j in range(n_top):
            out[b, j] = pool[b, order[j]]
        for j in range(n_pool - n_top):
            rest[j] = pool[b, order[n_top + j]]
        left = n_pool - n_top
        for j in range(n_explore):
            pick = j + int(explore[b, j] * (left - j))
            rest[j], rest[pick] = rest[pick], rest[j]
            out[b, n_top + j] = rest[j]
        for j in range(pool.shape[1] - n_pool):
            out[b, n_top + n_explore + j] = pool[b, n_pool + j]
