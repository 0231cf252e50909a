"""The user population: latent interests, satiation, satisfaction and history, batched.

All arrays have a leading user axis of length P (the population size). A user keeps its
row across sessions, so a returning user meets the platform with the tastes the last
sessions left. In a closed population (``users.arrival_rate`` 0) a churned user's row is
refilled with a brand-new user (new id, no history: user cold start); in an open one
(rate > 0) churned users leave for good and newcomers are appended as new rows
(:meth:`Population.add`), so P grows with the arrivals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simenv.config import UserConfig
from simenv.dynamics import normalize_rows
from simenv.kernels import Users


@dataclass
class Population:
    """Per-user state.

    Attributes:
        interest: (P, d) float32 unit latent interests theta.
        initial_interest: (P, d) float32 theta at arrival (for preference shift).
        satiation: (P, K) float32 topic satiation s in [0, 1].
        satisfaction: (P,) float32 lasting satisfaction S in [0, 1].
        observed: (P, observed_dims) float32 noisy view of theta taken at arrival.
        history: (P, K) float32 count of consumed items per topic.
        user_id: (P,) int64 unique user id (never reused).
        next_id: id the next new user gets.

    The arrays are views of the first P rows of larger stores once :meth:`add` has grown
    them (capacity doubling); read them afresh after an ``add``, never keep old views.
    """

    config: UserConfig
    interest: np.ndarray
    initial_interest: np.ndarray
    satiation: np.ndarray
    satisfaction: np.ndarray
    observed: np.ndarray
    history: np.ndarray
    user_id: np.ndarray
    next_id: int
    _stores: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def generate(cls, config: UserConfig, size: int, centroids: np.ndarray, rng: np.random.Generator) -> Population:
        """``size`` new users whose interests are mixtures of the topic ``centroids`` (K, d)."""
        k, d = centroids.shape
        pop = cls(
            config=config,
            interest=np.zeros((size, d), dtype=np.float32),
            initial_interest=np.zeros((size, d), dtype=np.float32),
            satiation=np.zeros((size, k), dtype=np.float32),
            satisfaction=np.zeros(size, dtype=np.float32),
            observed=np.zeros((size, config.observed_dims), dtype=np.float32),
            history=np.zeros((size, k), dtype=np.float32),
            user_id=np.zeros(size, dtype=np.int64),
            next_id=0,
        )
        pop.replace(np.arange(size), centroids, rng)
        return pop

    @property
    def size(self) -> int:
        return len(self.user_id)

    def arrays(self) -> Users:
        """The arrays the compiled step reads and updates (views, not copies)."""
        return Users(self.interest, self.satiation, self.history, self.satisfaction, self.observed, self.user_id)

    def replace(self, rows: np.ndarray, centroids: np.ndarray, source: np.random.Generator | Newcomers) -> None:
        """Fill ``rows`` with brand-new users, drawn from ``rng`` or taken in order from
        a :class:`Newcomers` queue (drawn in chunks to bound memory)."""
        cfg = self.config
        for lo in range(0, len(rows), 65536):
            part = rows[lo : lo + 65536]
            if isinstance(source, Newcomers):
                theta, observed = source.take(len(part))
            else:
                theta, observed = draw_users(cfg, centroids, len(part), source)
            self.interest[part] = theta
            self.initial_interest[part] = theta
            self.observed[part] = observed
        self.satiation[rows] = 0.0
        self.satisfaction[rows] = cfg.initial_satisfaction
        self.history[rows] = 0.0
        self.user_id[rows] = np.arange(self.next_id, self.next_id + len(rows))
        self.next_id += len(rows)

    def add(self, n: int, centroids: np.ndarray, newcomers: Newcomers) -> np.ndarray:
        """Append ``n`` newcomers (the next ones of ``newcomers``, new ids) as new rows.

        Storage grows by capacity doubling, so P arrivals cost O(P) copies in all (no
        quadratic reallocation) and no Python loop per user.

        Returns:
            (n,) int64 row indices of the new users.
        """
        start = self.size
        self._resize(start + n)
        rows = np.arange(start, start + n, dtype=np.int64)
        self.replace(rows, centroids, newcomers)
        return rows

    def _resize(self, rows: int) -> None:
        """Make every per-user array a view of the first ``rows`` rows of its store,
        doubling a store (at least to ``rows``) when it is too small."""
        for name in ROW_FIELDS:
            view = getattr(self, name)
            store = self._stores.get(name, view)
            if len(store) < rows:
                grown = np.zeros((max(rows, 2 * len(store)), *view.shape[1:]), dtype=view.dtype)
                grown[: len(view)] = view
                self._stores[name] = store = grown
            setattr(self, name, store[:rows])

    def features(self, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Observable user features of ``rows`` written into ``out`` (B, F_u).

        Layout: [noisy partial interests (observed_dims), share of consumption per topic
        (K; zeros for a new user), log1p(items consumed)].
        """
        o = self.config.observed_dims
        k = self.history.shape[1]
        out[:, :o] = self.observed[rows]
        history = self.history[rows]
        total = history.sum(axis=1)
        np.divide(history, np.maximum(total, 1.0)[:, None], out=out[:, o : o + k])
        np.log1p(total, out=out[:, o + k])
        return out


ROW_FIELDS = ("interest", "initial_interest", "satiation", "satisfaction", "observed", "history", "user_id")
"""The :class:`Population` arrays with one row per user."""


def initial_interests(config: UserConfig, centroids: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, d) unit interests of new users: topic mixtures.

    ``theta = normalize(sum_k w_k mu_k + interest_noise z)`` with topic weights
    ``w ~ Dirichlet(interest_concentration * 1_K)`` and z standard normal (d,).
    """
    k, d = centroids.shape
    weights = rng.dirichlet(np.full(k, config.interest_concentration), n) if k > 1 else np.ones((n, 1))
    mixture = weights @ centroids.astype(np.float64)
    return normalize_rows(mixture + config.interest_noise * rng.standard_normal((n, d)))


def draw_users(
    config: UserConfig, centroids: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` new users: (n, d) interests (:func:`initial_interests`) and (n, o) observed
    features, theta's first o coordinates plus Gaussian noise clipped at 4 sigma."""
    theta = initial_interests(config, centroids, n, rng)
    noise = config.observation_noise * np.clip(rng.standard_normal((n, config.observed_dims)), -4.0, 4.0)
    return theta, theta[:, : config.observed_dims] + noise


class Newcomers:
    """New users in a fixed order, drawn in blocks from their own generator.

    The j-th newcomer is the same person however many arrive per step, so under one seed
    every policy meets the same sequence of new users (common random numbers), whenever
    its churn lets them in.
    """

    BLOCK = 256

    def __init__(self, config: UserConfig, centroids: np.ndarray, rng: np.random.Generator) -> None:
        self._config, self._centroids, self._rng = config, centroids, rng
        self._theta = np.empty((0, centroids.shape[1]))
        self._observed = np.empty((0, config.observed_dims))

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n`` newcomers: (n, d) interests and (n, o) observed features."""
        while len(self._theta) < n:
            theta, observed = draw_users(self._config, self._centroids, self.BLOCK, self._rng)
            self._theta = np.concatenate([self._theta, theta])
            self._observed = np.concatenate([self._observed, observed])
        theta, self._theta = self._theta[:n], self._theta[n:]
        observed, self._observed = self._observed[:n], self._observed[n:]
        return theta, observed


def user_feature_dim(config: UserConfig, n_topics: int) -> int:
    """F_u, the length of a user's observable feature vector."""
    return config.observed_dims + n_topics + 1


MAX_LOG_CONSUMED = 64.0
"""Upper bound of the log1p(items consumed) feature."""


def user_feature_bounds(config: UserConfig, n_topics: int) -> tuple[np.ndarray, np.ndarray]:
    """(F_u,) lower and upper bounds of the user features (noise is clipped at 4 sigma)."""
    o, bound = config.observed_dims, 1.0 + 4.0 * config.observation_noise
    low = np.concatenate([np.full(o, -bound), np.zeros(n_topics + 1)])
    high = np.concatenate([np.full(o, bound), np.ones(n_topics), [MAX_LOG_CONSUMED]])
    return low.astype(np.float32), high.astype(np.float32)


class ReturnQueue:
    """FIFO of users not in a session: users whose session ends go to the back, new
    sessions take users from the front. With as many users as sessions, every slot
    gets its own user back, in order.

    A ring buffer of population rows; :meth:`push` doubles it when full (an open
    population, where arrivals join without anyone leaving)."""

    def __init__(self, size: int, waiting: np.ndarray) -> None:
        self._buf = np.empty(size, dtype=np.int64)
        self._head = 0
        self._count = len(waiting)
        self._buf[: self._count] = waiting

    def push_pop(self, users: np.ndarray) -> np.ndarray:
        """Return ``users`` to the queue, then take as many from the front."""
        n, size = len(users), len(self._buf)
        tail = (self._head + self._count + np.arange(n)) % size
        self._buf[tail] = users
        front = (self._head + np.arange(n)) % size
        taken = self._buf[front]
        self._head = (self._head + n) % size
        return taken

    @property
    def waiting(self) -> int:
        """How many users wait for a session."""
        return self._count

    def waiting_rows(self) -> np.ndarray:
        """(W,) population rows of the waiting users, front first (a copy)."""
        return self._buf[(self._head + np.arange(self._count)) % len(self._buf)]

    def push(self, users: np.ndarray) -> None:
        """Add ``users`` (rows) to the back, growing the buffer by doubling if needed."""
        n = len(users)
        if self._count + n > len(self._buf):
            waiting = self.waiting_rows()
            self._buf = np.empty(max(self._count + n, 2 * len(self._buf)), dtype=np.int64)
            self._buf[: self._count] = waiting
            self._head = 0
        self._buf[(self._head + self._count + np.arange(n)) % len(self._buf)] = users
        self._count += n

    def pop(self, n: int) -> np.ndarray:
        """Take ``n`` users (rows) from the front.

        Raises:
            ValueError: fewer than ``n`` users wait.
        """
        if n > self._count:
            raise ValueError(f"cannot take {n} users from a queue of {self._count}")
        taken = self._buf[(self._head + np.arange(n)) % len(self._buf)]
        self._head = (self._head + n) % len(self._buf)
        self._count -= n
        return taken
