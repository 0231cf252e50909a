"""The LinUCB / LinTS family over one shared ridge model: ``linear_egreedy``, ``linucb``,
``discounted_linucb``, ``dp_linucb`` and ``lints``.

Slates and propensities: candidates are ranked by their score (UCB, sampled or mean) and the
top k served, best first. The UCB agents are deterministic given the observation, so every
propensity is 1 and a decision counts as explored when its slate differs from the top-k by
the mean prediction (the width changed the slate). Epsilon-greedy explores per slot or per
slate with exact propensities; LinTS estimates its propensities by Monte Carlo (see
:class:`LinTS`). ``predicted`` is the model's mean reward of each served item (minutes, in an
engagement world).

Speed (``benchmarks/bench_agents.py``, B = 1,024, C = 50, k = 5, one BLAS thread): the top-k
of scores and means is one stacked argmax loop (:func:`top_k`), LinTS propensities take one
masked max over the candidates (:func:`slate_propensities`) and share their Monte Carlo
draws within small user groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular

from agents.bandits.features import FeatureMap, Projected, served_rows
from agents.bandits.ridge import DiscountedRidge, PrivateRidge, Ridge
from agents.base import Agent, Decision, Feedback, Observation
from agents.params import AgentParams, choice, integer, number
from agents.registry import register
from agents.slates import (
    epsilon_greedy_probabilities,
    epsilon_greedy_slates,
    greedy_probabilities,
    greedy_slates,
    plackett_luce_probabilities,
    plackett_luce_slates,
    slate_epsilon_greedy_probabilities,
    slate_epsilon_greedy_slates,
)
from simenv import WorldSpec


class LinearBandit(Agent):
    """Shared machinery: features, a ridge model, serving and learning from every shown item.

    Subclasses implement :meth:`choose` (scores to a Decision). ``predicted`` in every
    Decision is the model's mean reward x . theta of each served item (for a click-reward
    world, a click probability; for engagement, expected minutes when shown).
    """

    state_fields = ("model.A", "model.b", "model.A_inv", "model.theta", "model.n_rows")

    @dataclass(frozen=True)
    class Params(AgentParams):
        lam: float = number(1.0, "ridge regularisation: A starts at lam I", gt=0.0)

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        super().__init__(spec, **params)
        self.features = FeatureMap.from_spec(spec)
        self.model = self.make_model(self.features.dim, self.hparams.lam)

    def make_model(self, dim: int, lam: float) -> Ridge:
        """The statistics this agent keeps."""
        return Ridge(dim, lam)

    def context(self, user: np.ndarray, items: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """(B, n, D) contexts the model sees (the private agent rescales them)."""
        return self.features(user, items, dtype)

    def mean(self, x: Projected) -> np.ndarray:
        """(B, C) predicted reward of the candidates."""
        return x.linear(self.model.theta)

    def project(self, obs: Observation) -> Projected:
        """The candidates' contexts, factored (see :class:`Projected`)."""
        return Projected.of(self.features, obs)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        x = self.project(obs)
        mean = self.mean(x)
        d = self.choose(x, mean, rng)
        predicted = np.take_along_axis(mean, d.slates, axis=1).astype(np.float64)
        return Decision(slates=d.slates, propensities=d.propensities, explored=d.explored, predicted=predicted)

    def choose(self, x: Projected, mean: np.ndarray, rng: np.random.Generator) -> Decision:
        """Slates from the candidates' contexts x and predicted means (B, C)."""
        raise NotImplementedError

    def slot_probabilities(self, obs: Observation, slates: np.ndarray) -> np.ndarray | None:
        x = self.project(obs)
        return self.choice_probabilities(x, self.mean(x), slates)

    def choice_probabilities(self, x: Projected, mean: np.ndarray, slates: np.ndarray) -> np.ndarray | None:
        """(B, k) exact law of :meth:`choose` at ``slates``; None when there is no closed form."""
        return None

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        items, rewards = served_rows(obs, decision, feedback)
        x = self.context(obs["user"], items)
        self.model.add(x.reshape(-1, x.shape[-1]), rewards.reshape(-1))


def deterministic_decision(scores: np.ndarray, mean: np.ndarray, k: int) -> Decision:
    """Top-k by ``scores``; propensity 1; explored = the slate differs from top-k by ``mean``."""
    b = len(scores)
    both = top_k(np.concatenate([scores, mean]), k)  # one pass for both rankings
    slates = both[:b]
    explored = (slates != both[b:]).any(axis=1)
    return Decision(slates=slates, propensities=np.ones(slates.shape), explored=explored)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) :func:`agents.slates.greedy_slates` (top-k, best first, ties to the lowest index)
    by k rounds of argmax, about twice as fast for the bandits' small k; scores holding
    non-finite values go to ``greedy_slates`` (an argmax round could not mask them)."""
    if k > 8 or k >= scores.shape[1] or not np.isfinite(scores).all():
        return greedy_slates(scores, k)
    masked = scores.copy()
    rows = np.arange(len(scores))
    out = np.empty((len(scores), k), dtype=np.int64)
    for j in range(k):
        out[:, j] = best = np.argmax(masked, axis=1)
        masked[rows, best] = -np.inf
    return out


@register
class LinearEpsilonGreedy(LinearBandit):
    """Epsilon-greedy over a ridge model of reward, exploring per slot or per slate.

    ``exploration="slot"``: per slot, the best remaining candidate by predicted reward with
    probability 1 - epsilon, else a uniform remaining one
    (:func:`agents.slates.epsilon_greedy_slates`). ``"slate"``: with probability epsilon
    the whole slate is uniformly random, else greedy
    (:func:`agents.slates.slate_epsilon_greedy_slates`). Propensities are exact for both.
    """

    name = "linear_egreedy"

    @dataclass(frozen=True)
    class Params(LinearBandit.Params):
        epsilon: float = number(0.1, "exploration probability per slot (or per whole slate)", ge=0.0, le=1.0)
        exploration: str = choice("slot", "explore each slot on its own, or the whole slate at once", ("slot", "slate"))

    def choose(self, x: Projected, mean: np.ndarray, rng: np.random.Generator) -> Decision:
        hp = self.hparams
        sampler = epsilon_greedy_slates if hp.exploration == "slot" else slate_epsilon_greedy_slates
        return sampler(mean, self.spec.slate_size, hp.epsilon, rng)

    def choice_probabilities(self, x: Projected, mean: np.ndarray, slates: np.ndarray) -> np.ndarray:
        hp = self.hparams
        law = epsilon_greedy_probabilities if hp.exploration == "slot" else slate_epsilon_greedy_probabilities
        return law(mean, slates, hp.epsilon)


@register
class LinearSoftmax(LinearBandit):
    """Softmax (Plackett-Luce) exploration over a ridge model of reward: slot j draws a
    remaining candidate with probability proportional to ``exp(mean / temperature)``
    (:func:`agents.slates.plackett_luce_slates`). Every slate has positive probability,
    given exactly (a good logging policy for off-policy evaluation).
    """

    name = "linear_softmax"

    @dataclass(frozen=True)
    class Params(LinearBandit.Params):
        temperature: float = number(0.5, "softmax temperature tau in reward units (smaller: greedier)", gt=0.0)

    def choose(self, x: Projected, mean: np.ndarray, rng: np.random.Generator) -> Decision:
        return plackett_luce_slates(mean, self.spec.slate_size, self.hparams.temperature, rng)

    def choice_probabilities(self, x: Projected, mean: np.ndarray, slates: np.ndarray) -> np.ndarray:
        return plackett_luce_probabilities(mean, slates, self.hparams.temperature)


@register
class LinUCB(LinearBandit):
    """LinUCB (Li et al. 2010, Alg. 1) over the shared context map: score
    ``x . theta + alpha sqrt(x^T A^-1 x)``, top-k by score. Deterministic: propensity 1;
    a decision explored when its slate differs from the top-k by the mean x . theta.
    """

    name = "linucb"
    deterministic = True

    @dataclass(frozen=True)
    class Params(LinearBandit.Params):
        alpha: float = number(1.0, "width multiplier of the confidence bound (reward units)", ge=0.0)

    def width(self, x: Projected) -> np.ndarray:
        """(B, C) confidence widths ``sqrt(x^T M x)``."""
        return np.sqrt(np.maximum(x.quadratic(x.gram(self.model.width_matrix())), 0.0))

    def choose(self, x: Projected, mean: np.ndarray, rng: np.random.Generator) -> Decision:
        return deterministic_decision(mean + self.hparams.alpha * self.width(x), mean, self.spec.slate_size)

    def choice_probabilities(self, x: Projected, mean: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """Indicators of the top-k by the upper confidence bound (deterministic)."""
        return greedy_probabilities(mean + self.hparams.alpha * self.width(x), slates)


@register
class DiscountedLinUCB(LinUCB):
    """D-LinUCB (Russac, Vernade & Cappé 2019): LinUCB on exponentially discounted statistics,
    so old evidence fades and drifting tastes are tracked (see :class:`DiscountedRidge`).
    The discount applies once per environment step (one batch of B users); the effective
    memory is about 1 / (1 - gamma) steps. ``alpha`` replaces the paper's beta_t.
    """

    name = "discounted_linucb"
    state_fields = (*LinearBandit.state_fields, "model.W")

    @dataclass(frozen=True)
    class Params(LinUCB.Params):
        gamma: float = number(0.99, "discount of old evidence per step (1 = plain LinUCB)", gt=0.0, le=1.0)

    def make_model(self, dim: int, lam: float) -> Ridge:
        return DiscountedRidge(dim, lam, self.hparams.gamma)


@register
class PrivateLinUCB(LinUCB):
    """LinUCB on differentially private statistics (Shariff & Sheffet 2018); calibration in
    :class:`PrivateRidge`. Contexts are clipped to norm ``feature_bound`` and divided by it,
    rewards clipped to [0, reward_bound] and divided by it; the score
    ``reward_bound (x~ . theta + alpha sqrt(x~^T A^-1 x~))`` is in reward units again
    (``lam`` is in the scaled units).
    """

    name = "dp_linucb"
    state_fields = (
        *LinearBandit.state_fields,
        "model._released_base",
        "model._block",
        "model._noise",
        "model._t",
        "model.rng",
    )

    @dataclass(frozen=True)
    class Params(LinUCB.Params):
        epsilon: float = number(1.0, "privacy budget epsilon of (epsilon, delta)-DP", gt=0.0)
        delta: float = number(1e-5, "privacy budget delta of (epsilon, delta)-DP", gt=0.0, lt=1.0)
        horizon: int = integer(1024, "steps per tree of the mechanism (longer runs start new trees)", ge=1)
        feature_bound: float = number(3.0, "contexts are clipped to this norm", gt=0.0)
        reward_bound: float = number(8.0, "rewards are clipped to [0, reward_bound] (reward units)", gt=0.0)
        seed: int = integer(0, "seed of the mechanism's noise generator", ge=0)

    def make_model(self, dim: int, lam: float) -> Ridge:
        hp = self.hparams
        return PrivateRidge(
            dim, lam, epsilon=hp.epsilon, delta=hp.delta, horizon=hp.horizon, rows_per_record=self.spec.slate_size,
            feature_bound=hp.feature_bound, reward_bound=hp.reward_bound, seed=hp.seed,
        )  # fmt: skip

    def context(self, user: np.ndarray, items: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        return self.model.scale(self.features(user, items, dtype))

    def project(self, obs: Observation) -> Projected:
        """Contexts with ``scale`` (B, C) = reward_bound / max(|x|, feature_bound): the
        clip-and-scale of each context, and the way back to reward units."""
        x = super().project(obs)
        norm = np.sqrt(x.squared_norm())
        scale = np.float32(self.model.reward_bound) / np.maximum(norm, np.float32(self.model.feature_bound))
        return Projected(items=x.items, row_scale=x.row_scale, observed=x.observed, scale=scale)

    def mean(self, x: Projected) -> np.ndarray:
        return x.scale * x.linear(self.model.theta)

    def width(self, x: Projected) -> np.ndarray:
        return x.scale * super().width(x)

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        items, rewards = served_rows(obs, decision, feedback)
        x = self.features(obs["user"], items)  # raw: PrivateRidge.add clips and scales
        self.model.add(x.reshape(-1, x.shape[-1]), rewards.reshape(-1))


@register
class LinTS(LinearBandit):
    """Linear Thompson sampling (Agrawal & Goyal 2013): per user and step one draw
    ``theta~ = theta_hat + v L^-T z`` (A = L L^T, z ~ N(0, I), so theta~ ~ N(theta_hat, v^2 A^-1)),
    slate = top-k by ``x . theta~``.

    Propensities: the slot-wise probability under this law has no closed form; it is
    estimated from ``propensity_draws`` further independent draws of theta~ (see
    :func:`prefix_propensities`: the share of the draws agreeing on the slate's prefix up to
    slot j among those agreeing up to slot j - 1, floored at 1 / (n + 1)). To keep the
    Gaussian sampling cheap, ``propensity_group`` consecutive users of a batch share the
    same m propensity draws (the served draw stays independent per user): each user's
    estimate has exactly the law of the unshared one (m draws independent of its served
    draw), only the Monte Carlo errors of users in one group are correlated; averages over
    many decisions still converge. ``propensity_group=1`` gives every user its own draws.
    ``explored``: the slate differs from the top-k by the mean.
    """

    name = "lints"

    @dataclass(frozen=True)
    class Params(LinearBandit.Params):
        v: float = number(0.5, "posterior scale: theta~ ~ N(theta_hat, v^2 A^-1) (0 = greedy)", ge=0.0)
        propensity_draws: int = integer(16, "Monte Carlo draws per decision for the propensities", ge=1)
        propensity_group: int = integer(16, "consecutive users sharing one set of propensity draws", ge=1)

    def choose(self, x: Projected, mean: np.ndarray, rng: np.random.Generator) -> Decision:
        b, dim = x.row_scale.shape
        hp = self.hparams
        k, m, group = self.spec.slate_size, hp.propensity_draws, hp.propensity_group
        groups = -(-b // group)
        z = rng.standard_normal((b + groups * m, dim), np.float32)
        theta = self.model.theta.astype(np.float32) + np.float32(hp.v) * self.posterior_noise(z)  # (n, D)
        served = x.linear(theta[:b, None, :], bias=False)[:, 0]  # (B, C), ranks as x . theta~
        copies = np.repeat(theta[b:].reshape(groups, m, dim), group, axis=0)[:b]  # (B, m, D)
        both = top_k(np.concatenate([served, mean]), k)
        slates = both[:b]
        props = slate_propensities(x.linear_t(copies), slates)
        explored = (slates != both[b:]).any(axis=1)
        return Decision(slates=slates, propensities=props, explored=explored)

    def posterior_noise(self, z: np.ndarray) -> np.ndarray:
        """(n, D) float32 rows ``L^-T z`` for standard normal rows z (n, D), A = L L^T (so each
        row ~ N(0, A^-1))."""
        lower = np.linalg.cholesky(self.model.A)
        lower_inv = solve_triangular(lower, np.eye(len(lower)), lower=True, check_finite=False)
        return z @ lower_inv.astype(np.float32)  # rows (L^-T z)^T = z^T L^-1


def prefix_propensities(scores: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """Slot-wise propensities of ``slates`` (B, k) estimated from score draws (B, 1 + m, C).

    Draw 0 is the one that produced the slates; draws 1..m are independent copies. With
    n_j = number of the m copies whose top-j candidates (in order) equal ``slates[:, :j]``
    (n_0 = m), the propensity of slot j is ``n_j / n_{j-1}`` (unbiased given n_{j-1} >= 1), or
    ``1 / (n_{j-1} + 1)`` when no copy agrees (n_j = 0: the served draw itself is the only
    evidence), so every propensity is in (0, 1]. The floor biases only rare prefixes upward.
    """
    return slate_propensities(scores[:, 1:].transpose(0, 2, 1).copy(), slates)


def slate_propensities(copies: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """:func:`prefix_propensities` from the m independent copies alone, laid out (B, C, m)
    (candidate-major: gathers and the max over candidates run on contiguous rows of m).
    ``copies`` is overwritten (the slate rows are set to -inf).

    One pass over the copies: a copy's top-(j+1) equals ``slates[:, :j+1]`` in order iff for
    every i <= j the served item i scores at least the best of the candidates still left
    after slot i - 1, i.e. the max of the slate items after i and of all non-slate candidates
    (the latter computed once).
    """
    b, _, m = copies.shape
    k = slates.shape[1]
    rows = np.arange(b)[:, None]
    served = copies[rows, slates]  # (B, k, m)
    copies[rows, slates] = -np.inf
    best_left = _max_over_middle(copies)  # (B, m): best non-slate candidate
    ok = np.empty(served.shape, dtype=bool)
    for j in range(k - 1, -1, -1):  # best_left = max over the non-slate and slots j + 1..k - 1
        np.greater_equal(served[:, j], best_left, out=ok[:, j])
        best_left = np.maximum(best_left, served[:, j])
    count = np.empty((b, k))
    agree = ok[:, 0]
    for j in range(k):
        agree = agree & ok[:, j] if j else agree
        count[:, j] = np.count_nonzero(agree, axis=1)
    count_prev = np.concatenate([np.full((b, 1), float(m)), count[:, :-1]], axis=1)
    return np.where(count > 0, count / np.maximum(count_prev, 1.0), 1.0 / (count_prev + 1.0))


def _max_over_middle(a: np.ndarray) -> np.ndarray:
    """``a.max(axis=1)`` for (B, C, m) by halving (elementwise maxima of contiguous blocks are
    several times faster in numpy than a reduction over a middle axis with a short inner one)."""
    while a.shape[1] > 1:
        half = a.shape[1] // 2
        top = np.maximum(a[:, :half], a[:, half : 2 * half])
        a = np.concatenate([top, a[:, 2 * half :]], axis=1) if a.shape[1] % 2 else top
    return a[:, 0]
