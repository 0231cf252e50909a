"""Frozen, validated configuration of the simulated world, and its named presets.

A :class:`WorldConfig` groups five small configs (catalog, users, choice, response,
dynamics) plus the retrieval shape (``n_candidates`` C, ``slate_size`` k). Every field is
checked at construction; a bad value raises :class:`ConfigError` naming the field, the
allowed range and the value seen. Overrides are applied with :func:`with_overrides`
from a nested mapping (what a scenario file holds), so nothing is ever half-configured.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration value is out of its allowed range or of the wrong kind."""


def _check_range(
    owner: str,
    name: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
) -> None:
    """Raise :class:`ConfigError` unless ``lo <= value <= hi`` (bounds optionally open)."""
    kind = "an integer" if integer else "a number"
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    allowed = f"{kind} in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
    ok_type = (
        isinstance(value, int | float) and not isinstance(value, bool)
        if not integer
        else isinstance(value, int) and not isinstance(value, bool)
    )
    if not ok_type or (not integer and not math.isfinite(value)):
        raise ConfigError(f"{owner}.{name} must be {allowed}; got {value!r}")
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        raise ConfigError(f"{owner}.{name} must be {allowed}; got {value!r}")


BIG = 1e3
"""Upper bound of weights, scales, stds and utilities: far beyond any sensible world, and
small enough that float32 utilities and float64 logits stay finite (``choice.beta: 1e300``
would overflow them)."""
HUGE = 1e6
"""Upper bound of rates, budgets and lengths."""


def _check_choice(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{owner}.{name} must be one of {list(allowed)}; got {value!r}")


@dataclass(frozen=True)
class CatalogConfig:
    """The item catalog: M items in K topics with d-dimensional unit embeddings.

    Geometry (see ``docs/model.md``): the K topic centroids are centred (they sum to
    zero: a regular simplex when K <= d), and every item sits at cosine
    ``topic_concentration`` to its topic's centroid, so the catalog's mean embedding is
    near zero and no direction is favoured by consuming at random.

    Each item has a click *appeal* a (how tempting it looks; observable) and a *value* v
    (how much it satisfies once consumed; hidden), jointly normal with correlation
    ``appeal_value_correlation``. A ``clickbait_share`` of items is shifted by
    ``clickbait_gap``: appeal up, value down (RecSim's long-term satisfaction
    environment, Ie et al. 2019).

    Attributes:
        n_items: catalog size M (items alive at any time; arrivals replace the oldest).
        n_topics: number of topics K.
        dim: embedding dimension d shared by items and user interests.
        topic_concentration: cosine of each item's embedding to its topic centroid, in
            [0, 1] (1 = every item on its centroid; 0 = topics carry no direction).
        appeal_std: std of item appeal a (utility units before ``choice.appeal_weight``).
        value_std: std of item value v.
        appeal_value_correlation: correlation of a and v across (non-clickbait) items.
        clickbait_share: share of items that are clickbait, in [0, 1].
        clickbait_gap: a clickbait item's appeal is raised and its value lowered by this.
        length_mean: mean item length l in minutes (log-normal, sigma 0.25).
        arrival_rate: expected new items per step (Poisson); each replaces the oldest
            item (item cold start). 0 = a static catalog.
        fresh_share: share of the C candidates drawn from the ``fresh_pool`` newest items.
        fresh_pool: how many of the newest items count as fresh for retrieval.
    """

    n_items: int = 2000
    n_topics: int = 10
    dim: int = 16
    topic_concentration: float = 0.8
    appeal_std: float = 0.5
    value_std: float = 0.5
    appeal_value_correlation: float = 0.5
    clickbait_share: float = 0.0
    clickbait_gap: float = 1.5
    length_mean: float = 4.0
    arrival_rate: float = 0.0
    fresh_share: float = 0.0
    fresh_pool: int = 100

    def __post_init__(self) -> None:
        o = "catalog"
        _check_range(o, "n_items", self.n_items, 1, 2**24, integer=True)
        _check_range(o, "n_topics", self.n_topics, 1, 10_000, integer=True)
        _check_range(o, "dim", self.dim, 2, 4096, integer=True)
        _check_range(o, "topic_concentration", self.topic_concentration, 0, 1)
        _check_range(o, "appeal_std", self.appeal_std, 0, BIG)
        _check_range(o, "value_std", self.value_std, 0, BIG)
        _check_range(o, "appeal_value_correlation", self.appeal_value_correlation, -1, 1)
        _check_range(o, "clickbait_share", self.clickbait_share, 0, 1)
        _check_range(o, "clickbait_gap", self.clickbait_gap, 0, BIG)
        _check_range(o, "length_mean", self.length_mean, 0, HUGE, lo_open=True)
        _check_range(o, "arrival_rate", self.arrival_rate, 0, HUGE)
        _check_range(o, "fresh_share", self.fresh_share, 0, 1)
        _check_range(o, "fresh_pool", self.fresh_pool, 1, integer=True)
        if self.fresh_share > 0 or self.arrival_rate > 0:
            _check_range(o, "fresh_pool", self.fresh_pool, 1, self.n_items, integer=True)


@dataclass(frozen=True)
class UserConfig:
    """The user population.

    A new user's interest is a topic mixture: weights w ~ Dirichlet(interest_concentration
    * 1_K) over the centroids, plus Gaussian noise, normalised:
    ``theta = normalize(sum_k w_k mu_k + interest_noise * z)``. A small concentration
    gives users with one or two favourite topics; the population as a whole starts
    diverse (its mean interest is near zero).

    Attributes:
        population_size: users on the platform; ``None`` = one per concurrent session.
            Sessions draw returning users from this population, so tastes persist.
        interest_concentration: Dirichlet concentration alpha > 0 of the topic mixture.
        interest_noise: std per coordinate of the noise added to the mixture.
        observed_dims: how many of theta's d coordinates the observable user features
            reveal (a partial view), at most ``catalog.dim``.
        observation_noise: std of the Gaussian noise on those revealed coordinates.
        budget_mean: mean session budget tau in step units (a session ends at <= 0).
        budget_std: std of the session budget across sessions.
        max_steps: a session is truncated after this many steps.
        initial_satisfaction: the lasting satisfaction S a new user starts with, in [0, 1].
        arrival_rate: expected new users per step (Poisson) joining the queue of waiting
            users; with it > 0 churned users leave for good (the population grows and
            shrinks). 0 = today's closed population: a churned user's row is refilled
            at once with a newcomer (see ``docs/model.md``, population life cycle).
    """

    population_size: int | None = None
    interest_concentration: float = 0.3
    interest_noise: float = 0.1
    observed_dims: int = 8
    observation_noise: float = 0.3
    budget_mean: float = 20.0
    budget_std: float = 5.0
    max_steps: int = 100
    initial_satisfaction: float = 0.5
    arrival_rate: float = 0.0

    def __post_init__(self) -> None:
        o = "users"
        if self.population_size is not None:
            _check_range(o, "population_size", self.population_size, 1, 2**31 - 1, integer=True)
        _check_range(o, "interest_concentration", self.interest_concentration, 0, HUGE, lo_open=True)
        _check_range(o, "interest_noise", self.interest_noise, 0, BIG)
        _check_range(o, "observed_dims", self.observed_dims, 0, integer=True)
        _check_range(o, "observation_noise", self.observation_noise, 0, BIG)
        _check_range(o, "budget_mean", self.budget_mean, 0, HUGE, lo_open=True)
        _check_range(o, "budget_std", self.budget_std, 0, HUGE)
        _check_range(o, "max_steps", self.max_steps, 1, 2**31 - 1, integer=True)
        _check_range(o, "initial_satisfaction", self.initial_satisfaction, 0, 1)
        _check_range(o, "arrival_rate", self.arrival_rate, 0, HUGE)


@dataclass(frozen=True)
class ChoiceConfig:
    """How a user picks from a slate.

    Utility of item j for user b at slate position p (0-based):
    ``u = theta_b . e_j + appeal_weight * a_j - satiation * s_b[c_j]
    - position_bias * log2(1 + p)``; the no-click option has utility
    ``u_0 = no_click_utility - satisfaction_weight * (S_b - 0.5)``, so a satisfied user
    clicks more and a dissatisfied one less.

    Attributes:
        model: ``"mnl"`` (multinomial logit with a no-click option) or ``"cascade"``
            (Craswell et al. 2008: scan top-down, click with sigmoid(beta (u - u0)),
            stop at the first click).
        beta: choice sensitivity (inverse temperature), > 0.
        no_click_utility: the no-click utility of a user at satisfaction 0.5.
        appeal_weight: weight of item appeal a_j in utility.
        position_bias: utility lost per log2(1 + position); 0 = no position effect.
        satisfaction_weight: how much lasting satisfaction S lowers the no-click
            utility (``u_0 -= w (S - 0.5)``); 0 = satisfaction does not change clicking.
    """

    model: Literal["mnl", "cascade"] = "mnl"
    beta: float = 4.0
    no_click_utility: float = 0.5
    appeal_weight: float = 0.5
    position_bias: float = 0.0
    satisfaction_weight: float = 1.0

    def __post_init__(self) -> None:
        o = "choice"
        _check_choice(o, "model", self.model, ("mnl", "cascade"))
        _check_range(o, "beta", self.beta, 0, BIG, lo_open=True)
        _check_range(o, "no_click_utility", self.no_click_utility, -BIG, BIG)
        _check_range(o, "appeal_weight", self.appeal_weight, 0, BIG)
        _check_range(o, "position_bias", self.position_bias, 0, BIG)
        _check_range(o, "satisfaction_weight", self.satisfaction_weight, 0, BIG)


@dataclass(frozen=True)
class ResponseConfig:
    """Engagement after a click: watch time y in minutes, clipped to [0, l_j].

    ``y = clip(l_j * (f + noise * v), 0, l_j)`` with
    ``f = sigmoid(affinity_weight * theta.e_j + value_weight * value_j + bias)`` and v a
    uniform noise of mean 0 and variance 1 (so the expected engagement has a cheap
    closed form, see :func:`simenv.choice.expected_engagement`). Appeal does not enter:
    a tempting item is clicked, a valuable one is watched.

    Attributes:
        affinity_weight: how strongly engagement grows with affinity theta.e_j.
        value_weight: how strongly engagement grows with item value v_j.
        bias: offset of the logit f.
        noise: std of the engagement noise as a share of the item length.
        reward: what the environment returns as reward: ``"engagement"`` (minutes) or
            ``"click"`` (1 for a click, else 0).
    """

    affinity_weight: float = 3.0
    value_weight: float = 1.0
    bias: float = 0.0
    noise: float = 0.1
    reward: Literal["engagement", "click"] = "engagement"

    def __post_init__(self) -> None:
        o = "response"
        _check_range(o, "affinity_weight", self.affinity_weight, 0, BIG)
        _check_range(o, "value_weight", self.value_weight, 0, BIG)
        _check_range(o, "bias", self.bias, -BIG, BIG)
        _check_range(o, "noise", self.noise, 0, BIG)
        _check_choice(o, "reward", self.reward, ("engagement", "click"))


@dataclass(frozen=True)
class DynamicsConfig:
    """How users change. Every strength at 0 turns its mechanism off.

    Attributes:
        amplification: eta, pull of theta toward a consumed item's embedding per click
            (Jiang et al. 2019, degenerate feedback loops), in [0, 1].
        amplification_by_watch: w in [0, 1]; the pull is ``eta (1 - w + w y / l)``, so
            with w = 1 an item that was barely watched barely moves the user.
        exposure: eta_x, mere-exposure pull toward the mean embedding of the whole served
            slate, clicked or not, in [0, 1].
        skip_repulsion: eta_s, push away from the mean embedding of the shown items the
            user did not click (negative feedback, Jiang et al. 2019), in [0, 1].
        satiation: gamma, utility lost per unit of topic satiation (boredom), >= 0.
        satiation_decay: rho, satiation memory per step; s <- rho s + (1 - rho) onehot.
        drift: sigma, std of the Gaussian random walk on theta per step (exogenous).
        budget_cost: session budget spent per step.
        budget_restore: budget restored per unit of engagement fraction y / l_j.
        satisfaction_rate: lambda in (0, 1], speed of the lasting satisfaction S:
            ``S <- (1 - lambda) S + lambda g`` each step.
        value_satisfaction: w_v, how the consumed item's value sets g: on a click
            ``g = sigmoid(w_v v_j)``.
        idle_satisfaction: g on a step without a click, in [0, 1].
        churn_threshold: tau in [0, 1]: below it a user may leave for good.
        churn_hazard: h in [0, 1], the per-step probability of leaving at S = 0; the
            hazard is ``h * max(0, 1 - S / tau)`` (0 when tau or h is 0).
    """

    amplification: float = 0.02
    amplification_by_watch: float = 0.0
    exposure: float = 0.005
    skip_repulsion: float = 0.0
    satiation: float = 0.5
    satiation_decay: float = 0.8
    drift: float = 0.005
    budget_cost: float = 1.0
    budget_restore: float = 0.5
    satisfaction_rate: float = 0.02
    value_satisfaction: float = 2.0
    idle_satisfaction: float = 0.3
    churn_threshold: float = 0.0
    churn_hazard: float = 0.0

    def __post_init__(self) -> None:
        o = "dynamics"
        _check_range(o, "amplification", self.amplification, 0, 1)
        _check_range(o, "amplification_by_watch", self.amplification_by_watch, 0, 1)
        _check_range(o, "exposure", self.exposure, 0, 1)
        _check_range(o, "skip_repulsion", self.skip_repulsion, 0, 1)
        _check_range(o, "satiation", self.satiation, 0, BIG)
        _check_range(o, "satiation_decay", self.satiation_decay, 0, 1, hi_open=True)
        _check_range(o, "drift", self.drift, 0, BIG)
        _check_range(o, "budget_cost", self.budget_cost, 0, HUGE)
        _check_range(o, "budget_restore", self.budget_restore, 0, HUGE)
        _check_range(o, "satisfaction_rate", self.satisfaction_rate, 0, 1, lo_open=True)
        _check_range(o, "value_satisfaction", self.value_satisfaction, 0, BIG)
        _check_range(o, "idle_satisfaction", self.idle_satisfaction, 0, 1)
        _check_range(o, "churn_threshold", self.churn_threshold, 0, 1)
        _check_range(o, "churn_hazard", self.churn_hazard, 0, 1)


@dataclass(frozen=True)
class RetrievalConfig:
    """Candidate generation: how the C candidates of a user-step are chosen.

    ``"stratified"``: one candidate from each equal stratum of the age-ordered catalog
    (uniform over the catalog, distinct by construction). ``"relevance"``: a two-stage
    retriever as in production: ``pool`` items are drawn as above and scored by a noisy
    estimate of the user's interest, ``(theta + interest_noise z) . e``; the candidates
    are the best-scored ones, except a share ``explore_share`` drawn at random from the
    rest of the pool.

    Attributes:
        method: ``"stratified"`` or ``"relevance"``.
        pool: items scored per user-step by the relevance retriever (>= C, <= n_items).
        interest_noise: std per coordinate of the retriever's error on theta.
        explore_share: share of the candidates drawn at random from the pool, in [0, 1].
    """

    method: Literal["stratified", "relevance"] = "stratified"
    pool: int = 200
    interest_noise: float = 0.3
    explore_share: float = 0.2

    def __post_init__(self) -> None:
        o = "retrieval"
        _check_choice(o, "method", self.method, ("stratified", "relevance"))
        _check_range(o, "pool", self.pool, 1, 2**24, integer=True)
        _check_range(o, "interest_noise", self.interest_noise, 0, BIG)
        _check_range(o, "explore_share", self.explore_share, 0, 1)


@dataclass(frozen=True)
class WorldConfig:
    """The whole world: catalog, users, choice, response, dynamics and retrieval.

    Attributes:
        n_candidates: C, candidates retrieved per user-step (C <= n_items).
        slate_size: k, distinct candidates the policy shows (k <= C).
    """

    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    users: UserConfig = field(default_factory=UserConfig)
    choice: ChoiceConfig = field(default_factory=ChoiceConfig)
    response: ResponseConfig = field(default_factory=ResponseConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    n_candidates: int = 20
    slate_size: int = 5

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"world.{name} must be a {cls.__name__}; got {getattr(self, name)!r}")
        _check_range("world", "n_candidates", self.n_candidates, 1, self.catalog.n_items, integer=True)
        _check_range("world", "slate_size", self.slate_size, 1, self.n_candidates, integer=True)
        _check_range("users", "observed_dims", self.users.observed_dims, 0, self.catalog.dim, integer=True)
        n_fresh = self.n_fresh_candidates
        if n_fresh > self.catalog.fresh_pool:
            raise ConfigError(
                f"catalog.fresh_pool must be >= the fresh candidates per step "
                f"(fresh_share * n_candidates = {n_fresh}); got {self.catalog.fresh_pool}"
            )
        older = self.catalog.n_items - (self.catalog.fresh_pool if n_fresh else 0)
        if n_fresh and self.n_candidates - n_fresh > older:
            raise ConfigError(
                "catalog.fresh_pool leaves too few older items for the non-fresh candidates: "
                f"need n_items - fresh_pool >= {self.n_candidates - n_fresh}; got {older}"
            )
        if self.retrieval.method == "relevance":
            _check_range("retrieval", "pool", self.retrieval.pool, self.n_candidates - n_fresh, older, integer=True)

    @property
    def n_fresh_candidates(self) -> int:
        """Candidates per step drawn from the newest items."""
        return round(self.catalog.fresh_share * self.n_candidates)

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (for manifests and result rows)."""
        return dataclasses.asdict(self)


_SECTIONS: dict[str, type] = {
    "catalog": CatalogConfig,
    "users": UserConfig,
    "choice": ChoiceConfig,
    "response": ResponseConfig,
    "dynamics": DynamicsConfig,
    "retrieval": RetrievalConfig,
}


def with_overrides(base: WorldConfig, overrides: Mapping[str, Any] | None) -> WorldConfig:
    """Return ``base`` with a nested mapping of overrides applied and validated.

    ``overrides`` looks like ``{"dynamics": {"amplification": 0.1}, "slate_size": 3}``.
    Unknown keys raise :class:`ConfigError` listing the allowed keys.
    """
    if not overrides:
        return base
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"world overrides must be a mapping; got {overrides!r}")
    top: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _SECTIONS:
            section = getattr(base, key)
            if not isinstance(value, Mapping):
                raise ConfigError(f"world.{key} must be a mapping of fields; got {value!r}")
            allowed = [f.name for f in dataclasses.fields(section)]
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                raise ConfigError(f"world.{key} has unknown field(s) {unknown}; allowed: {allowed}")
            top[key] = dataclasses.replace(section, **value)
        elif key in ("n_candidates", "slate_size"):
            top[key] = value
        else:
            allowed = [*_SECTIONS, "n_candidates", "slate_size"]
            raise ConfigError(f"world has unknown key {key!r}; allowed: {allowed}")
    return dataclasses.replace(base, **top)


def _preset(**overrides: Any) -> WorldConfig:
    return with_overrides(WorldConfig(), overrides)


_CHURN = {"churn_threshold": 0.45, "churn_hazard": 0.1}
"""Lasting dissatisfaction makes users leave: up to 10% a step at S = 0, none above 0.45."""

PRESETS: dict[str, WorldConfig] = {
    # Moderate amplification, satiation and drift; no churn, static catalog.
    "default": WorldConfig(),
    # Strong preference amplification alone (no exposure pull, skip repulsion, boredom or
    # drift): what a user consumes narrows their tastes, so what a policy serves decides
    # how fast.
    "filter_bubble": _preset(
        dynamics={"amplification": 0.1, "exposure": 0.0, "skip_repulsion": 0.0, "satiation": 0.0, "drift": 0.0}
    ),
    # Strong satiation: repeating a topic quickly bores users.
    "boredom": _preset(dynamics={"satiation": 2.0, "satiation_decay": 0.7, "amplification": 0.0, "exposure": 0.0}),
    # Tastes wander on their own; a frozen policy goes stale.
    "drifting_tastes": _preset(dynamics={"drift": 0.05, "amplification": 0.0, "exposure": 0.0}),
    # Many new items and users: fresh items in every slate, noisy partial user views.
    "cold_start": _preset(
        catalog={"arrival_rate": 5.0, "fresh_share": 0.3, "fresh_pool": 100},
        users={"observed_dims": 4, "observation_noise": 0.5},
        dynamics=_CHURN,
    ),
    # Demanding users who leave when lasting satisfaction is low.
    "churn_prone": _preset(dynamics={**_CHURN, "satisfaction_rate": 0.05}),
    # RecSim's long-term satisfaction world (Ie et al. 2019): a fifth of the items tempt
    # and disappoint. Clicks on them pay now (clicked more, watched as long: value does not
    # enter watch time) and cost later: S moves 30% of the way to each step's signal
    # (RecSim's memory discount 0.7), a clickbait click pulls it toward ~0.05 while other
    # clicks and idle steps hold it near 0.5, a dissatisfied user clicks much less, and
    # below S = 0.4 leaves (up to 5% a step). Avoiding clickbait keeps S near 0.5.
    "clickbait": _preset(
        catalog={"clickbait_share": 0.2, "clickbait_gap": 1.5, "appeal_value_correlation": 0.0},
        choice={"appeal_weight": 0.25, "satisfaction_weight": 4.0},
        response={"value_weight": 0.0},
        dynamics={
            "satisfaction_rate": 0.3,
            "idle_satisfaction": 0.5,
            "churn_threshold": 0.4,
            "churn_hazard": 0.05,
        },
    ),
    # Boredom, drifting tastes and new items: what was best yesterday is stale today,
    # so a policy that keeps exploring keeps up.
    "exploration_pays": _preset(
        catalog={"arrival_rate": 5.0, "fresh_share": 0.2, "fresh_pool": 100},
        dynamics={"satiation": 1.5, "satiation_decay": 0.8, "drift": 0.05, "amplification": 0.0, "exposure": 0.0},
    ),
}


def get_preset(name: str) -> WorldConfig:
    """The named preset; an unknown name raises :class:`ConfigError` listing the presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; allowed: {sorted(PRESETS)}") from None


@dataclass(frozen=True)
class WorldSpec:
    """What a policy may know about a world's shape (no ground truth).

    Attributes:
        n_candidates: C. slate_size: k. user_dim: F_u. item_dim: F_i.
        embedding_dim: d, the first d item-feature columns are the item embedding.
        n_topics: K.
    """

    n_candidates: int
    slate_size: int
    user_dim: int
    item_dim: int
    embedding_dim: int
    n_topics: int

    @classmethod
    def from_config(cls, config: WorldConfig) -> WorldSpec:
        from simenv.catalog import ITEM_EXTRA_FEATURES
        from simenv.population import user_feature_dim

        return cls(
            n_candidates=config.n_candidates,
            slate_size=config.slate_size,
            user_dim=user_feature_dim(config.users, config.catalog.n_topics),
            item_dim=config.catalog.dim + len(ITEM_EXTRA_FEATURES),
            embedding_dim=config.catalog.dim,
            n_topics=config.catalog.n_topics,
        )
