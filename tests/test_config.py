"""World configuration: presets, overrides, and bad input that names field, range and value."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import simenv
from simenv import (
    PRESETS,
    CatalogConfig,
    ConfigError,
    RecEnv,
    RecVectorEnv,
    Simulator,
    UserConfig,
    WorldConfig,
    WorldSpec,
    get_preset,
    with_overrides,
)

# (overrides, substrings the message must contain: field, allowed range, value seen)
BAD_OVERRIDES: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    # negative or out-of-range rates
    ({"dynamics": {"amplification": -0.1}}, ("dynamics.amplification", "[0, 1]", "-0.1")),
    ({"dynamics": {"exposure": 1.5}}, ("dynamics.exposure", "[0, 1]", "1.5")),
    ({"dynamics": {"drift": -1.0}}, ("dynamics.drift", "[0, 1000.0]", "-1.0")),
    ({"dynamics": {"satiation": -0.5}}, ("dynamics.satiation", "[0, 1000.0]", "-0.5")),
    ({"dynamics": {"satiation_decay": 1.0}}, ("dynamics.satiation_decay", "[0, 1)", "1.0")),
    ({"dynamics": {"satisfaction_rate": 0.0}}, ("dynamics.satisfaction_rate", "(0, 1]", "0.0")),
    ({"dynamics": {"churn_threshold": 1.5}}, ("dynamics.churn_threshold", "[0, 1]", "1.5")),
    ({"dynamics": {"budget_cost": -1.0}}, ("dynamics.budget_cost", "[0, 1000000.0]", "-1.0")),
    ({"catalog": {"arrival_rate": -2.0}}, ("catalog.arrival_rate", "[0, 1000000.0]", "-2.0")),
    ({"catalog": {"fresh_share": 1.2}}, ("catalog.fresh_share", "[0, 1]", "1.2")),
    ({"catalog": {"topic_concentration": 1.1}}, ("catalog.topic_concentration", "[0, 1]", "1.1")),
    ({"catalog": {"appeal_value_correlation": -2}}, ("catalog.appeal_value_correlation", "[-1, 1]", "-2")),
    ({"catalog": {"clickbait_share": float("nan")}}, ("catalog.clickbait_share", "[0, 1]", "nan")),
    ({"users": {"interest_concentration": 0.0}}, ("users.interest_concentration", "(0, 1000000.0]", "0.0")),
    ({"dynamics": {"churn_hazard": 2}}, ("dynamics.churn_hazard", "[0, 1]", "2")),
    ({"dynamics": {"skip_repulsion": -1}}, ("dynamics.skip_repulsion", "[0, 1]", "-1")),
    ({"retrieval": {"method": "topk"}}, ("retrieval.method", "stratified", "topk")),
    ({"retrieval": {"method": "relevance", "pool": 5}}, ("retrieval.pool", "5")),
    ({"catalog": {"length_mean": 0.0}}, ("catalog.length_mean", "(0, 1000000.0]", "0.0")),
    ({"choice": {"beta": 0.0}}, ("choice.beta", "(0, 1000.0]", "0.0")),
    ({"choice": {"position_bias": -1.0}}, ("choice.position_bias", "[0, 1000.0]", "-1.0")),
    ({"response": {"noise": -0.1}}, ("response.noise", "[0, 1000.0]", "-0.1")),
    ({"users": {"budget_mean": -3.0}}, ("users.budget_mean", "(0, 1000000.0]", "-3.0")),
    ({"users": {"initial_satisfaction": 1.1}}, ("users.initial_satisfaction", "[0, 1]", "1.1")),
    ({"users": {"arrival_rate": -1.0}}, ("users.arrival_rate", "[0, 1000000.0]", "-1.0")),
    ({"users": {"arrival_rate": float("nan")}}, ("users.arrival_rate", "[0, 1000000.0]", "nan")),
    ({"users": {"arrival_rate": float("inf")}}, ("users.arrival_rate", "[0, 1000000.0]", "inf")),
    # retrieval shape: k <= C <= M
    ({"slate_size": 21}, ("world.slate_size", "[1, 20]", "21")),
    ({"slate_size": 0}, ("world.slate_size", "[1, 20]", "0")),
    ({"n_candidates": 3000}, ("world.n_candidates", "[1, 2000]", "3000")),
    ({"catalog": {"n_items": 10, "fresh_pool": 5}}, ("world.n_candidates", "[1, 10]", "20")),
    ({"n_candidates": 4}, ("world.slate_size", "[1, 4]", "5")),
    ({"users": {"observed_dims": 17}}, ("users.observed_dims", "[0, 16]", "17")),
    ({"catalog": {"fresh_share": 0.5, "fresh_pool": 5}}, ("catalog.fresh_pool", "= 10", "got 5")),
    # zero users
    ({"users": {"population_size": 0}}, ("users.population_size", "[1, 2147483647]", "0")),
    ({"users": {"max_steps": 0}}, ("users.max_steps", "[1, 2147483647]", "0")),
    # wrong types
    ({"catalog": {"n_items": "100"}}, ("catalog.n_items", "[1, 16777216]", "'100'")),
    ({"catalog": {"n_items": 2.5}}, ("catalog.n_items", "[1, 16777216]", "2.5")),
    ({"users": {"max_steps": True}}, ("users.max_steps", "[1, 2147483647]", "True")),
    ({"choice": {"beta": None}}, ("choice.beta", "(0, 1000.0]", "None")),
    ({"choice": {"beta": float("nan")}}, ("choice.beta", "a number", "nan")),
    ({"choice": {"beta": "4"}}, ("choice.beta", "(0, 1000.0]", "'4'")),
    ({"choice": {"model": "logit"}}, ("choice.model", "['mnl', 'cascade']", "'logit'")),
    ({"response": {"reward": "clicks"}}, ("response.reward", "['engagement', 'click']", "'clicks'")),
    ({"slate_size": 2.0}, ("world.slate_size", "an integer", "2.0")),
    ({"dynamics": 0.1}, ("world.dynamics", "mapping", "0.1")),
    # unknown keys
    ({"dynamic": {"drift": 0.1}}, ("unknown key 'dynamic'", "allowed", "'dynamics'")),
    ({"dynamics": {"amplify": 0.1}}, ("world.dynamics", "unknown field(s) ['amplify']", "'amplification'")),
]


@pytest.mark.parametrize(("overrides", "parts"), BAD_OVERRIDES, ids=[str(o) for o, _ in BAD_OVERRIDES])
def test_bad_override_names_field_range_and_value(overrides: dict[str, Any], parts: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as err:
        with_overrides(WorldConfig(), overrides)
    for part in parts:
        assert part in str(err.value), f"{part!r} not in {str(err.value)!r}"


@pytest.mark.parametrize(("overrides", "parts"), BAD_OVERRIDES[:6], ids=[str(o) for o, _ in BAD_OVERRIDES[:6]])
def test_envs_reject_bad_overrides_before_building(overrides: dict[str, Any], parts: tuple[str, ...]) -> None:
    for make in (lambda: RecEnv(overrides=overrides), lambda: RecVectorEnv(2, overrides=overrides)):
        with pytest.raises(ConfigError) as err:
            make()
        assert all(part in str(err.value) for part in parts), str(err.value)


BAD_CALLS: list[tuple[str, Any, tuple[str, ...]]] = [
    ("vector env with 0 users", lambda: RecVectorEnv(0), ("num_envs", ">= 1", "got 0")),
    ("vector env with -3 users", lambda: RecVectorEnv(-3), ("num_envs", ">= 1", "got -3")),
    ("vector env with 2.0 users", lambda: RecVectorEnv(2.0), ("num_envs", "integer", "got 2.0")),
    ("simulator with 0 sessions", lambda: Simulator(WorldConfig(), 0), ("n_sessions", ">= 1", "got 0")),
    ("simulator with True sessions", lambda: Simulator(WorldConfig(), True), ("n_sessions", "integer", "True")),
    (
        "population smaller than sessions",
        lambda: Simulator(WorldConfig(users=UserConfig(population_size=2)), 4),
        ("users.population_size", ">= n_sessions (4)", "got 2"),
    ),
    (
        "three observation buffers",
        lambda: Simulator(WorldConfig(), 2, observation_buffers=3),
        ("observation_buffers", "1 (one buffer", "2 (alternating", "got 3"),
    ),
    ("simulator without a WorldConfig", lambda: Simulator({"slate_size": 3}, 1), ("config", "WorldConfig", "dict")),
    ("section of the wrong type", lambda: WorldConfig(catalog={"n_items": 5}), ("world.catalog", "CatalogConfig")),
    ("unknown preset", lambda: get_preset("bubble"), ("unknown preset 'bubble'", "allowed", "'filter_bubble'")),
    ("unknown preset in RecEnv", lambda: RecEnv(preset="bubble"), ("unknown preset 'bubble'", "'default'")),
    ("unknown preset in vector env", lambda: RecVectorEnv(2, preset="nope"), ("unknown preset 'nope'", "'boredom'")),
    ("overrides not a mapping", lambda: with_overrides(WorldConfig(), [("slate_size", 3)]), ("mapping", "slate_size")),
    ("vector reset with per-env seeds", lambda: RecVectorEnv(2).reset(seed=[1, 2]), ("seed", "one int", "[1, 2]")),
    ("direct CatalogConfig", lambda: CatalogConfig(n_topics=0), ("catalog.n_topics", "[1, 10000]", "0")),
    (
        "direct CatalogConfig fresh_pool",
        lambda: CatalogConfig(n_items=50, arrival_rate=1.0),
        ("catalog.fresh_pool", "[1, 50]", "100"),
    ),
]


def test_small_catalog_without_fresh_items_needs_no_fresh_pool() -> None:
    assert CatalogConfig(n_items=50).fresh_pool == 100


@pytest.mark.parametrize(("make", "parts"), [(m, p) for _, m, p in BAD_CALLS], ids=[n for n, _, _ in BAD_CALLS])
def test_bad_call_names_field_range_and_value(make: Any, parts: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as err:
        make()
    for part in parts:
        assert part in str(err.value), f"{part!r} not in {str(err.value)!r}"


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_gym_make_passes_bad_preset_through_to_the_error() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'bubble'"):
        gym.make(simenv.ENV_IDS["default"], preset="bubble")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_roundtrip_through_to_dict(name: str) -> None:
    config = get_preset(name)
    assert isinstance(config, WorldConfig)
    assert with_overrides(WorldConfig(), config.to_dict()) == config
    spec = WorldSpec.from_config(config)
    assert (spec.n_candidates, spec.slate_size, spec.n_topics) == (20, 5, config.catalog.n_topics)


def test_presets_differ_in_what_they_promise() -> None:
    assert PRESETS["filter_bubble"].dynamics.amplification > PRESETS["default"].dynamics.amplification
    assert PRESETS["filter_bubble"].dynamics.satiation == 0.0
    assert PRESETS["boredom"].dynamics.satiation > PRESETS["default"].dynamics.satiation
    assert PRESETS["drifting_tastes"].dynamics.drift > PRESETS["default"].dynamics.drift
    assert PRESETS["cold_start"].catalog.arrival_rate > 0 and PRESETS["cold_start"].catalog.fresh_share > 0
    assert PRESETS["churn_prone"].dynamics.churn_threshold > 0
    assert PRESETS["default"].dynamics.churn_threshold == 0


def test_with_overrides_changes_only_named_fields_and_keeps_base() -> None:
    base = get_preset("filter_bubble")
    new = with_overrides(base, {"dynamics": {"drift": 0.3}, "slate_size": 3})
    assert new.dynamics.drift == 0.3 and new.slate_size == 3
    assert new.dynamics.amplification == base.dynamics.amplification
    assert base.dynamics.drift == 0.0 and base.slate_size == 5
    assert with_overrides(base, None) is base and with_overrides(base, {}) is base


def test_configs_are_frozen() -> None:
    config = WorldConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.slate_size = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.dynamics.drift = 1.0  # type: ignore[misc]


def test_numpy_integers_are_accepted_as_sizes() -> None:
    env = RecVectorEnv(np.int64(3))
    assert env.num_envs == 3 and isinstance(env.num_envs, int)


FLOAT32_SAFETY: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"choice": {"beta": 1e300}}, ("choice.beta", "(0, 1000.0]", "1e+300")),
    ({"catalog": {"appeal_std": 1e300}}, ("catalog.appeal_std", "[0, 1000.0]", "1e+300")),
    ({"choice": {"no_click_utility": -1e9}}, ("choice.no_click_utility", "[-1000.0, 1000.0]", "-1000000000.0")),
    ({"users": {"budget_mean": float("inf")}}, ("users.budget_mean", "(0, 1000000.0]", "inf")),
]


@pytest.mark.parametrize(("overrides", "parts"), FLOAT32_SAFETY)
def test_values_float32_arithmetic_cannot_survive_are_refused(
    overrides: dict[str, Any], parts: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as err:
        with_overrides(WorldConfig(), overrides)
    for part in parts:
        assert part in str(err.value), f"{part!r} not in {str(err.value)!r}"


@pytest.mark.parametrize("model", ["mnl", "cascade"])
def test_a_world_at_the_edge_of_every_range_steps_with_finite_numbers(model: str) -> None:
    """Every weight, scale and utility at its upper bound: probabilities and rewards stay finite."""
    edge = {
        "catalog": {"appeal_std": 1e3, "value_std": 1e3, "clickbait_share": 0.5, "clickbait_gap": 1e3},
        "choice": {"model": model, "beta": 1e3, "no_click_utility": -1e3, "appeal_weight": 1e3, "position_bias": 1e3},
        "response": {"affinity_weight": 1e3, "value_weight": 1e3, "bias": 1e3, "noise": 1e3},
        "dynamics": {
            "satiation": 1e3,
            "drift": 1e3,
            "value_satisfaction": 1e3,
            "churn_threshold": 1,
            "churn_hazard": 1,
        },
        "users": {"interest_noise": 1e3, "observation_noise": 1e3},
    }
    env = RecVectorEnv(16, overrides=edge)
    obs, info = env.reset(seed=0)
    for _ in range(3):
        obs, reward, _, _, info = env.step(info["best_slate"])
        for key in ("choice_probs", "expected_reward", "oracle_expected_reward", "interest", "satisfaction"):
            assert np.isfinite(info[key]).all(), key
        np.testing.assert_allclose(info["choice_probs"].sum(axis=1), 1.0)
        assert np.isfinite(reward).all() and np.isfinite(obs["user"]).all()
