"""The Gymnasium faces: checkers, registration, spaces, determinism, pickling, ground truth, CLI."""

from __future__ import annotations

import copy
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env

import simenv
from experiments.cli import main
from simenv import ENV_IDS, PRESETS, RecEnv, RecVectorEnv, WorldSpec
from simenv.choice import (
    cascade_probs,
    engagement_share,
    expected_engagement,
    mnl_probs,
    no_click_utility,
    optimal_slate,
    position_penalty,
    slate_expected_reward,
)

N = 6
ALL_IDS = sorted(ENV_IDS.items())


def _step_single(env: RecEnv, rng: np.random.Generator, steps: int, copy_tree) -> list:
    """Run a RecEnv with slates from ``rng``, resetting (without seed) at episode ends."""
    c, k = env.config.n_candidates, env.config.slate_size
    records = []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(rng.permutation(c)[:k])
        records.append(copy_tree((obs, reward, terminated, truncated, info)))
        if terminated or truncated:
            records.append(copy_tree(env.reset()))
    return records


def _step_vector(env: RecVectorEnv, rng: np.random.Generator, steps: int, make_slates, copy_tree) -> list:
    c, k = env.config.n_candidates, env.config.slate_size
    return [copy_tree(env.step(make_slates(rng, env.num_envs, c, k))) for _ in range(steps)]


# ---------------------------------------------------------------------- registration and checkers


def test_every_preset_is_registered() -> None:
    assert set(ENV_IDS) == set(PRESETS)
    assert all(env_id.startswith("simenv/") and env_id.endswith("-v1") for env_id in ENV_IDS.values())
    assert ENV_IDS["default"] == "simenv/Rec-v1"
    assert len(set(ENV_IDS.values())) == len(ENV_IDS)


@pytest.mark.parametrize(("preset", "env_id"), ALL_IDS)
def test_gymnasium_check_env_passes_without_warnings(preset: str, env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id)
        assert isinstance(env.unwrapped, RecEnv)
        assert env.unwrapped.config == PRESETS[preset]
        check_env(env.unwrapped)


@pytest.mark.parametrize(("preset", "env_id"), ALL_IDS)
def test_make_vec_gives_native_vector_env(preset: str, env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(env.unwrapped, RecVectorEnv)
    assert env.num_envs == 3 and env.unwrapped.config == PRESETS[preset]
    obs, _ = env.reset(seed=1)
    assert obs in env.observation_space


def test_make_and_make_vec_pass_overrides() -> None:
    overrides = {"slate_size": 3, "n_candidates": 8}
    single = gym.make("simenv/Rec-v1", overrides=overrides)
    vector = gym.make_vec("simenv/Rec-v1", num_envs=4, vectorization_mode="vector_entry_point", overrides=overrides)
    assert single.action_space.shape == (3,)
    assert vector.action_space.shape == (4, 3)
    assert vector.observation_space["candidates"].shape[:2] == (4, 8)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_vector_env_spaces_hold_over_many_steps(preset: str) -> None:
    env = RecVectorEnv(N, preset=preset, overrides={"users": {"budget_mean": 6.0}})
    spec = WorldSpec.from_config(env.config)
    c, k, fu, fi = spec.n_candidates, spec.slate_size, spec.user_dim, spec.item_dim
    assert env.single_observation_space["user"].shape == (fu,)
    assert env.single_observation_space["candidates"].shape == (c, fi)
    assert env.action_space.shape == (N, k)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    ended_rows = 0
    for _ in range(25):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space, preset
        assert obs["user"].shape == (N, fu) and obs["candidates"].shape == (N, c, fi)
        assert obs["item_ids"].shape == (N, c) and obs["user_id"].shape == (N,)
        assert reward.shape == (N,) and reward.dtype == np.float32 and (reward >= 0).all()
        assert terminated.shape == truncated.shape == (N,) and terminated.dtype == truncated.dtype == np.bool_
        assert info["choice_probs"].shape == (N, k + 1) and info["best_slate"].shape == (N, k)
        assert info["candidate_utility"].shape == (N, c)
        if "final_obs" in info:
            mask = info["_final_obs"]
            np.testing.assert_array_equal(mask, terminated | truncated)
            final = info["final_obs"]
            for row in range(int(mask.sum())):
                assert {key: np.asarray(value[row]) for key, value in final.items()} in env.single_observation_space
            ended_rows += int(mask.sum())
    assert ended_rows > 0  # the autoreset path was exercised


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_single_env_observations_stay_in_space(preset: str) -> None:
    env = RecEnv(preset=preset, overrides={"users": {"budget_mean": 6.0}})
    env.action_space.seed(1)
    obs, _ = env.reset(seed=1)
    for _ in range(40):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs in env.observation_space
        assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
        if terminated or truncated:
            obs, _ = env.reset()
            assert obs in env.observation_space


def test_fresh_items_fill_their_share_of_candidates() -> None:
    env = RecVectorEnv(8, preset="cold_start")
    env.reset(seed=3)
    cfg = env.config
    for _ in range(4):
        obs, *_ = env.step(np.tile(np.arange(cfg.slate_size), (8, 1)))
    fresh = obs["candidates"][:, :, -1]
    np.testing.assert_array_equal(fresh.sum(axis=1), cfg.n_fresh_candidates)
    assert (obs["item_ids"][fresh == 1] >= cfg.catalog.n_items).any()  # new items get new ids


# ---------------------------------------------------------------------- ground truth


@pytest.mark.parametrize(
    "overrides",
    [
        {"users": {"budget_mean": 5.0}},
        {"choice": {"model": "cascade", "position_bias": 0.3}, "users": {"budget_mean": 5.0}},
        {"choice": {"model": "cascade"}, "catalog": {"clickbait_share": 0.3}},
        {"response": {"reward": "click"}, "dynamics": {"churn_threshold": 0.6, "churn_hazard": 0.3}},
    ],
    ids=["mnl", "cascade-position-bias", "cascade", "click-churn"],
)
def test_info_ground_truth_is_consistent_with_state_and_pure_functions(overrides, make_slates) -> None:
    """Every row, including rows refreshed by autoreset (and past the 128-row chunk)."""
    n = 150
    env = RecVectorEnv(n, overrides=overrides)
    cfg = env.config
    d, k = cfg.catalog.dim, cfg.slate_size
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=2)
    restarted = 0
    for _ in range(12):
        sim = env.sim
        cat, pop = sim.catalog, sim.population
        topic_of = np.full(cat.next_id, -1)
        topic_of[cat.item_id] = cat.topic
        value_of = np.full(cat.next_id, np.nan)
        value_of[cat.item_id] = cat.value
        users = sim.session_user.copy()
        acting_ids = obs["user_id"].copy()
        theta = pop.interest[users].astype(np.float64)
        cand = obs["candidates"].astype(np.float64)
        topics = topic_of[obs["item_ids"]]
        satiation = np.take_along_axis(pop.satiation[users], topics, axis=1)
        affinity_all = np.einsum("bcd,bd->bc", cand[:, :, :d], theta)
        utility = affinity_all + cfg.choice.appeal_weight * cand[:, :, d]
        utility -= cfg.dynamics.satiation * satiation
        np.testing.assert_allclose(info["candidate_utility"], utility, atol=1e-5)
        np.testing.assert_array_equal(obs["user_id"], pop.user_id[users])
        u0 = no_click_utility(cfg.choice.no_click_utility, cfg.choice.satisfaction_weight, pop.satisfaction[users])
        r = cfg.response
        all_lengths = cfg.catalog.length_mean * cand[:, :, d + 1]
        all_share = engagement_share(affinity_all, value_of[obs["item_ids"]], *_response_weights(r))
        all_value = (
            np.ones_like(all_share) if r.reward == "click" else expected_engagement(all_lengths, all_share, r.noise)
        )
        penalty = position_penalty(k, cfg.choice.position_bias)
        cascade = cfg.choice.model == "cascade"
        best = optimal_slate(utility, all_value, cfg.choice.beta, u0, penalty, cascade)
        # The same slate up to ties and float32 rounding: the same expected reward.
        ours, theirs = (
            slate_expected_reward(
                np.take_along_axis(utility, s, 1), np.take_along_axis(all_value, s, 1), cfg.choice.beta, u0, penalty,
                cascade,
            )
            for s in (info["best_slate"], best)
        )  # fmt: skip
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
        assert (info["best_slate"] == best).mean() > 0.95

        slate = make_slates(rng, n, cfg.n_candidates, k)
        lengths = np.take_along_axis(all_lengths, slate, 1)
        slate_utility = np.take_along_axis(utility, slate, 1) - penalty
        model = cascade_probs if cascade else mnl_probs
        probs = model(slate_utility, cfg.choice.beta, u0)
        value = np.take_along_axis(all_value, slate, 1)

        obs, reward, terminated, truncated, info = env.step(slate)
        np.testing.assert_allclose(info["choice_probs"], probs, atol=1e-5)
        np.testing.assert_allclose(info["expected_item_reward"], value, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(info["expected_reward"], (probs[:, :k] * value).sum(axis=1), rtol=1e-4, atol=1e-5)
        if not cascade or cfg.choice.position_bias == 0:  # where the oracle is exact, regret >= 0
            assert (info["oracle_expected_reward"] >= info["expected_reward"] - 1e-9).all()
        clicked = info["click"] >= 0
        rows = np.flatnonzero(clicked)
        np.testing.assert_array_equal(info["slate_topics"], topic_of[info["slate_items"]])
        np.testing.assert_array_equal(info["consumed_topic"][rows], info["slate_topics"][rows, info["click"][rows]])
        np.testing.assert_array_equal(info["consumed_topic"][~clicked], -1)
        assert (info["engagement"][~clicked] == 0).all()
        assert (info["engagement"][rows] <= lengths[rows, info["click"][rows]] + 1e-4).all()
        expected_reward = clicked.astype(np.float32) if r.reward == "click" else info["engagement"]
        np.testing.assert_array_equal(reward, expected_reward)
        np.testing.assert_array_equal(info["user_id"], acting_ids)
        threshold = cfg.dynamics.churn_threshold
        assert not info["churned"][info["satisfaction"] >= threshold].any()  # no hazard above the threshold
        restarted += int((terminated | truncated).sum())
    assert restarted > 0


def _response_weights(r) -> tuple[float, float, float]:
    return r.affinity_weight, r.value_weight, r.bias


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_best_slate_maximises_expected_reward(preset: str) -> None:
    """No slate beats the oracle's: not the top-k by utility, not random ones."""
    env = RecVectorEnv(64, preset=preset)
    _, info = env.reset(seed=4)
    best = info["best_slate"].copy()
    by_utility = np.argsort(-info["candidate_utility"], axis=1, kind="stable")[:, : env.config.slate_size]
    rng = np.random.default_rng(4)
    _, _, _, _, info = env.step(best)
    oracle = info["expected_reward"].copy()
    np.testing.assert_array_equal(info["oracle_expected_reward"], oracle)
    c, k = env.config.n_candidates, env.config.slate_size
    for slate in [by_utility] + [rng.permuted(np.tile(np.arange(c), (64, 1)), axis=1)[:, :k] for _ in range(5)]:
        env.reset(seed=4)
        _, _, _, _, info = env.step(slate)
        assert (info["expected_reward"] <= oracle + 1e-9).all()


# ---------------------------------------------------------------------- sessions and autoreset


def test_autoreset_returns_the_same_user_with_persistent_tastes(make_slates) -> None:
    env = RecVectorEnv(N, overrides={"users": {"budget_mean": 3.0, "budget_std": 0.0}})
    obs, _ = env.reset(seed=0)
    first_ids = obs["user_id"].copy()
    rng = np.random.default_rng(0)
    ended = np.zeros(N, dtype=bool)
    for _ in range(8):
        theta_before = env.sim.population.interest.copy()
        obs, _, terminated, truncated, info = env.step(make_slates(rng, N, 20, 5))
        done = terminated | truncated
        if done.any():
            np.testing.assert_array_equal(info["final_obs"]["user_id"], info["user_id"][done])
            # No churn in the default world: each row gets its own user back, tastes kept.
            np.testing.assert_array_equal(obs["user_id"], first_ids)
            np.testing.assert_allclose(env.sim.population.interest[done], info["interest"][done], atol=1e-6)
            assert not np.array_equal(env.sim.population.interest, theta_before)
        ended |= done
    assert ended.all()


def test_truncation_at_max_steps() -> None:
    env = RecVectorEnv(3, overrides={"users": {"max_steps": 4, "budget_mean": 1000.0}})
    env.reset(seed=0)
    flags = [env.step(np.tile(np.arange(5), (3, 1)))[2:4] for _ in range(8)]
    truncated = np.array([t for _, t in flags])
    assert not np.array([te for te, _ in flags]).any()
    np.testing.assert_array_equal(truncated.all(axis=1), [False, False, False, True] * 2)
    np.testing.assert_array_equal(truncated.any(axis=1), truncated.all(axis=1))


def test_reset_without_seed_restarts_sessions_and_keeps_population(make_slates) -> None:
    """Restarted rows get the next waiting users (new budgets, step counters at 0) on the
    candidates already retrieved for them: a restart draws no retrieval numbers."""
    env = RecVectorEnv(4, overrides={"users": {"population_size": 12}})
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(make_slates(rng, 4, 20, 5))
    theta = env.sim.population.interest.copy()
    ids, users = env.sim.obs["item_ids"].copy(), env.sim.obs["user_id"].copy()
    obs, _ = env.reset(options={"reset_mask": np.array([True, False, False, True])})
    np.testing.assert_array_equal(obs["user_id"] != users, [True, False, False, True])
    np.testing.assert_array_equal(obs["item_ids"], ids)
    np.testing.assert_array_equal(env.sim.session_steps == 0, [True, False, False, True])
    obs, _ = env.reset()
    assert (obs["user_id"] != users).all() and (env.sim.session_steps == 0).all()
    np.testing.assert_array_equal(env.sim.population.interest, theta)


def test_repeated_candidates_are_repaired_and_flagged() -> None:
    env = RecVectorEnv(2)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([[0, 0, 1, 2, 3], [4, 3, 2, 1, 0]]))
    np.testing.assert_array_equal(info["slate_repaired"], [True, False])
    # First occurrences stay; the repeat takes the lowest candidate not in the slate.
    np.testing.assert_array_equal(info["slate"], [[0, 4, 1, 2, 3], [4, 3, 2, 1, 0]])


@pytest.mark.parametrize(
    ("action", "exception", "message"),
    [
        (np.array([[0, 1, 2, 3, 20]] * 2), ValueError, "[0, 19]"),
        (np.array([[-1, 1, 2, 3, 4]] * 2), ValueError, "-1"),
        (np.array([[0, 1, 2]] * 2), ValueError, "(2, 5)"),
        (np.array([[0, 1, 2, 3, 4]] * 3), ValueError, "(2, 5)"),
    ],
)
def test_bad_actions_raise_with_the_range_and_value(action, exception, message) -> None:
    env = RecVectorEnv(2)
    env.reset(seed=0)
    with pytest.raises(exception) as err:
        env.step(action)
    assert message in str(err.value)


def test_step_before_reset_raises() -> None:
    with pytest.raises(ResetNeeded, match="reset"):
        RecVectorEnv(2).step(np.zeros((2, 5), dtype=np.int64))
    with pytest.raises(ResetNeeded, match="reset"):
        RecEnv().step(np.arange(5))


# ---------------------------------------------------------------------- determinism and pickling


def test_single_env_twin_runs_are_identical(copy_tree, tree_equal) -> None:
    runs = []
    for _ in range(2):
        env = RecEnv(overrides={"users": {"budget_mean": 8.0}})
        first = copy_tree(env.reset(seed=7))
        runs.append([first, *_step_single(env, np.random.default_rng(1), 60, copy_tree)])
    tree_equal(runs[0], runs[1])


def test_vector_env_twin_runs_are_identical(make_slates, copy_tree, tree_equal) -> None:
    runs = []
    for _ in range(2):
        env = RecVectorEnv(N, preset="cold_start")
        first = copy_tree(env.reset(seed=7))
        runs.append([first, *_step_vector(env, np.random.default_rng(1), 40, make_slates, copy_tree)])
    tree_equal(runs[0], runs[1])


def test_make_vec_twin_matches_direct_construction(make_slates, copy_tree, tree_equal) -> None:
    direct = RecVectorEnv(N, preset="boredom")
    made = gym.make_vec(ENV_IDS["boredom"], num_envs=N, vectorization_mode="vector_entry_point")
    runs = []
    for env in (direct, made):
        first = copy_tree(env.reset(seed=3))
        runs.append([first, *_step_vector(env, np.random.default_rng(2), 10, make_slates, copy_tree)])
    tree_equal(runs[0], runs[1])


def test_different_seeds_give_different_worlds(make_slates, copy_tree) -> None:
    obs = {}
    rewards = {}
    for seed in (0, 1):
        env = RecVectorEnv(N)
        obs[seed] = copy_tree(env.reset(seed=seed)[0])
        steps = _step_vector(env, np.random.default_rng(5), 10, make_slates, copy_tree)
        rewards[seed] = np.array([s[1] for s in steps])
    assert not np.array_equal(obs[0]["candidates"], obs[1]["candidates"])
    assert not np.array_equal(obs[0]["user"], obs[1]["user"])
    assert not np.array_equal(rewards[0], rewards[1])
    single = [RecEnv().reset(seed=seed)[0]["candidates"] for seed in (0, 1)]
    assert not np.array_equal(single[0], single[1])


def test_reseeding_rebuilds_the_same_world(copy_tree, tree_equal) -> None:
    env = RecEnv()
    first = copy_tree(env.reset(seed=11))
    _step_single(env, np.random.default_rng(0), 15, copy_tree)
    tree_equal(copy_tree(env.reset(seed=11)), first)


def test_single_env_pickles_mid_episode(copy_tree, tree_equal) -> None:
    env = RecEnv(preset="churn_prone")
    env.reset(seed=4)
    _step_single(env, np.random.default_rng(0), 7, copy_tree)
    clone = pickle.loads(pickle.dumps(env))
    runs = [_step_single(e, np.random.default_rng(9), 40, copy_tree) for e in (env, clone)]
    tree_equal(runs[0], runs[1])


def test_vector_env_pickles_mid_episode(make_slates, copy_tree, tree_equal) -> None:
    env = RecVectorEnv(N, preset="cold_start")
    env.reset(seed=4)
    _step_vector(env, np.random.default_rng(0), 7, make_slates, copy_tree)
    clones = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    runs = [_step_vector(e, np.random.default_rng(9), 30, make_slates, copy_tree) for e in (env, *clones)]
    tree_equal(runs[0], runs[1])
    tree_equal(runs[0], runs[2])


def test_observations_from_consecutive_steps_are_distinct_buffers(make_slates) -> None:
    env = RecVectorEnv(N)
    obs0, _ = env.reset(seed=0)
    keep = obs0["candidates"].copy()
    obs1, *_ = env.step(make_slates(np.random.default_rng(0), N, 20, 5))
    np.testing.assert_array_equal(obs0["candidates"], keep)  # valid until the step after next
    assert obs1["candidates"] is not obs0["candidates"]


# ---------------------------------------------------------------------- CLI


def test_cli_simulate_prints_the_summary_table(capsys) -> None:
    assert main(["simulate", "--users", "16", "--steps", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Random policy on the 'default' world (seed 0)" in out
    for row in ("users x steps", "16 x 5", "engagement (min / user-step)", "CTR", "topic entropy", "retention"):
        assert row in out
    ctr = float(next(line for line in out.splitlines() if "CTR" in line).split()[-1])
    assert 0.0 < ctr <= 1.0


def test_cli_simulate_is_deterministic_per_seed(capsys) -> None:
    outs = []
    for seed in ("3", "3", "4"):
        main(["simulate", "--users", "8", "--steps", "4", "--quiet", "--seed", seed, "--preset", "boredom"])
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] != outs[2]


def test_cli_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"bubblegym {simenv.__version__}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "--users", "0"], "must be an integer >= 1; got 0"),
        (["simulate", "--steps", "two"], "got 'two'"),
        (["simulate", "--preset", "bubble"], "invalid choice: 'bubble'"),
    ],
)
def test_cli_rejects_bad_arguments(capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_switching_the_oracle_off_changes_nothing_but_the_oracle_keys() -> None:
    rng = np.random.default_rng(5)
    with_oracle, without = RecVectorEnv(16, preset="cold_start"), RecVectorEnv(16, preset="cold_start", oracle=False)
    obs_a, info_a = with_oracle.reset(seed=9)
    obs_b, info_b = without.reset(seed=9)
    assert "best_slate" in info_a and "best_slate" not in info_b
    for _ in range(40):
        action = np.argsort(rng.random((16, with_oracle.config.n_candidates)), axis=1)[:, :5]
        obs_a, reward_a, term_a, trunc_a, info_a = with_oracle.step(action)
        obs_b, reward_b, term_b, trunc_b, info_b = without.step(action)
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key])
        np.testing.assert_array_equal(reward_a, reward_b)
        np.testing.assert_array_equal(term_a | trunc_a, term_b | trunc_b)
        np.testing.assert_allclose(info_a["expected_reward"], info_b["expected_reward"], rtol=1e-6)
        assert "oracle_expected_reward" in info_a and "oracle_expected_reward" not in info_b


def test_one_observation_buffer_gives_the_same_numbers_in_one_array(make_slates) -> None:
    """``observation_buffers=1`` overwrites one buffer in place and changes no number."""
    double, single = RecVectorEnv(16, preset="boredom"), RecVectorEnv(16, preset="boredom", observation_buffers=1)
    obs_d, _ = double.reset(seed=3)
    obs_s, _ = single.reset(seed=3)
    first = obs_s["candidates"]
    rng = np.random.default_rng(0)
    for _ in range(6):
        slates = make_slates(rng, 16, double.config.n_candidates, double.config.slate_size)
        obs_d, reward_d, *_ = double.step(slates)
        obs_s, reward_s, *_ = single.step(slates)
        assert obs_s["candidates"] is first  # one buffer, written in place
        np.testing.assert_array_equal(reward_s, reward_d)
        for key in obs_d:
            np.testing.assert_array_equal(obs_s[key], obs_d[key])


def test_batched_observation_space_is_built_only_when_asked_for() -> None:
    """Gymnasium's batched Box holds (N, C, F_i) bounds; stepping never needs them."""
    env = RecVectorEnv(8)
    env.reset(seed=0)
    env.step(np.tile(np.arange(env.config.slate_size), (8, 1)))
    assert env._observation_space is None
    space = env.observation_space
    assert space == gym.vector.utils.batch_space(env.single_observation_space, 8)
    assert env.observation_space is space
