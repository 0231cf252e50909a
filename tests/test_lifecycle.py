"""The population life cycle (``users.arrival_rate``): an open population where churned
users leave for good and newcomers arrive at a Poisson rate.

Checked: the arrival counts are exactly the documented stream's Poisson draws and their
mean and variance match the rate; churned ids never come back; the population grows by
exactly the arrivals without churn (capacity doubling, no loop per user); an empty queue
is filled by newcomers at once; the j-th newcomer is the same person under two policies;
cohort metrics count a churned user as zero; and rate 0 keeps the closed population.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from experiments.metrics import cohort_engagement, cohort_reward, first_churn_step, retention, starting_cohort
from simenv import Simulator, WorldConfig, get_preset, with_overrides
from simenv.population import ReturnQueue
from simenv.simulator import STREAMS

SMALL = {"catalog": {"n_items": 200, "dim": 8}, "users": {"observed_dims": 4}}
"""A small world, so a test steps thousands of times in about a second."""


CHURNY = {"churn_threshold": 0.8, "churn_hazard": 0.05}
"""Churn of about 2% a step at the initial satisfaction 0.5: 0.05 (1 - 0.5 / 0.8)."""


def small_world(churn: bool = False, **users: Any) -> WorldConfig:
    overrides = {**SMALL, "users": {**SMALL["users"], **users}, "dynamics": CHURNY if churn else {}}
    return with_overrides(get_preset("default"), overrides)


def random_slates(sim: Simulator, rng: np.random.Generator) -> np.ndarray:
    cfg = sim.config
    return rng.permuted(np.tile(np.arange(cfg.n_candidates), (sim.n_sessions, 1)), axis=1)[:, : cfg.slate_size]


def greedy_slates(sim: Simulator, info: dict[str, Any]) -> np.ndarray:
    """The candidates of largest true utility, best first (a policy different from random)."""
    return np.argsort(-info["candidate_utility"], axis=1)[:, : sim.config.slate_size]


def drive(sim: Simulator, steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random slates for ``steps`` steps; returns (T, N) records and (T,) user arrivals."""
    rng = np.random.default_rng(seed)
    keys = ("user_id", "reward", "churned", "next_user_id")
    out: dict[str, list[np.ndarray]] = {key: [] for key in (*keys, "user_arrivals")}
    for _ in range(steps):
        obs, reward, _, _, info = sim.step(random_slates(sim, rng))
        out["user_id"].append(info["user_id"])
        out["reward"].append(reward.copy())
        out["churned"].append(info["churned"])
        out["next_user_id"].append(obs["user_id"].copy())
        assert (info["user_arrivals"] == info["user_arrivals"][0]).all()  # one count per step
        out["user_arrivals"].append(info["user_arrivals"][0])
    return {key: np.asarray(value) for key, value in out.items()}


def test_arrival_counts_are_the_newcomer_streams_poisson_draws() -> None:
    """Without churn every arrival is scheduled: the counts are exactly Poisson(rate) draws
    of the newcomers stream's child, hand-replicated; mean and variance within 4 sd."""
    rate, steps, seed = 3.0, 2000, 5
    sim = Simulator(small_world(arrival_rate=rate), 8, seed=seed)
    counts = drive(sim, steps)["user_arrivals"]
    newcomers = np.random.SeedSequence(seed).spawn(len(STREAMS))[STREAMS.index("newcomers")]
    expected = np.random.default_rng(newcomers).spawn(1)[0].poisson(rate, steps)
    np.testing.assert_array_equal(counts, expected)
    # Poisson: the total has sd sqrt(rate T) = 77; the variance/mean ratio sd sqrt(2 / T) = 0.032.
    assert abs(counts.sum() - rate * steps) < 4 * np.sqrt(rate * steps), counts.sum()
    assert abs(counts.var(ddof=1) / counts.mean() - 1.0) < 4 * np.sqrt(2 / steps)
    # same seed, same world: the same counts and the same people
    twin = Simulator(small_world(arrival_rate=rate), 8, seed=seed)
    np.testing.assert_array_equal(drive(twin, steps)["user_arrivals"], counts)
    np.testing.assert_array_equal(twin.population.interest, sim.population.interest)


def test_population_grows_by_the_arrivals_without_churn() -> None:
    n, steps = 8, 300
    sim = Simulator(small_world(arrival_rate=1.5, population_size=12), n, seed=2)
    rec = drive(sim, steps)
    assert not rec["churned"].any()
    pop = sim.population
    assert pop.size == 12 + rec["user_arrivals"].sum()
    np.testing.assert_array_equal(pop.user_id, np.arange(pop.size))  # new ids, in order of arrival
    assert pop.next_id == pop.size
    assert sim._queue.waiting == pop.size - n  # everyone is on the platform
    np.testing.assert_array_equal(np.sort(sim.present_user_ids()), np.arange(pop.size))
    # capacity doubling: stores at most twice what is used, arrays are views into them
    for name, store in pop._stores.items():
        assert pop.size <= len(store) <= 2 * pop.size, name
        assert np.shares_memory(getattr(pop, name), store)
    # newcomers start as new users: initial satisfaction, no history, theta at arrival
    fresh = pop.history.sum(axis=1) == 0
    assert fresh[12:].mean() > 0.5  # most arrivals are still waiting in the queue
    np.testing.assert_array_equal(pop.interest[fresh], pop.initial_interest[fresh])
    np.testing.assert_allclose(pop.satisfaction[fresh], pop.config.initial_satisfaction)


def test_churned_users_leave_for_good() -> None:
    n, steps = 16, 300
    sim = Simulator(small_world(True, arrival_rate=0.5), n, seed=3)
    rec = drive(sim, steps)
    step, row = np.nonzero(rec["churned"])
    churn_at = dict(zip(rec["user_id"][step, row].tolist(), step.tolist(), strict=True))
    assert len(churn_at) > 20, "the churny world should lose users in 300 steps"
    assert rec["churned"].sum() == len(churn_at)  # nobody churns twice
    for user, t in churn_at.items():
        assert not (rec["user_id"][t + 1 :] == user).any(), f"user {user} churned at {t} and came back"
        assert not (rec["next_user_id"][t:] == user).any()
    gone = np.fromiter(churn_at, dtype=np.int64)
    assert not np.isin(gone, sim.present_user_ids()).any()
    # the population keeps every row ever used; the ids on the platform are those not churned
    assert len(sim.present_user_ids()) == sim.population.size - len(gone)


def test_an_empty_queue_is_filled_by_newcomers_at_once() -> None:
    """A rate far below the churn: nobody waits (P = N), so each churned session takes a
    newcomer at once, counted as an arrival; every session is still served by a distinct
    present user."""
    n = 16
    sim = Simulator(small_world(True, arrival_rate=1e-9), n, seed=4)
    rec = drive(sim, 200)
    np.testing.assert_array_equal(rec["user_arrivals"], rec["churned"].sum(axis=1))
    assert rec["churned"].sum() > 10
    assert sim._queue.waiting == 0 and sim.population.size == n + rec["user_arrivals"].sum()
    for ids in rec["next_user_id"]:
        assert len(np.unique(ids)) == n


def test_newcomers_and_arrival_counts_are_common_random_numbers() -> None:
    """Two policies under one seed: the scheduled arrival counts are the same step for step
    (a queue that never empties: no forced arrivals) and user id j is the same person."""
    cfg = small_world(True, arrival_rate=4.0, population_size=64)
    worlds = [Simulator(cfg, 16, seed=7) for _ in range(2)]
    counts: list[list[int]] = [[], []]
    churned = [0, 0]
    for i, sim in enumerate(worlds):
        rng, info = np.random.default_rng(i), sim.decision_info()
        for _ in range(150):
            slates = random_slates(sim, rng) if i == 0 else greedy_slates(sim, info)
            _, _, _, _, info = sim.step(slates)
            counts[i].append(int(info["user_arrivals"][0]))
            churned[i] += int(info["churned"].sum())
    assert churned[0] != churned[1], "the two policies should lose different numbers of users"
    assert counts[0] == counts[1]
    shared = min(w.population.size for w in worlds)
    np.testing.assert_array_equal(*(w.population.initial_interest[:shared] for w in worlds))
    np.testing.assert_array_equal(*(w.population.user_id[:shared] for w in worlds))


def test_cohort_metrics_count_a_churned_user_as_zero() -> None:
    """Open population, P = N: the starting cohort is every initial user. Metrics from the
    record agree with the simulator's ground truth and a per-user hand computation."""
    n, steps = 16, 100
    sim = Simulator(small_world(True, arrival_rate=1.0), n, seed=6)
    rec = drive(sim, steps)
    cohort = starting_cohort(rec["user_id"])
    np.testing.assert_array_equal(np.sort(cohort), np.arange(n))
    churn_step = first_churn_step(rec["user_id"], rec["churned"], cohort)
    assert (churn_step < steps).sum() >= 3
    # retention from the record equals who is still on the platform
    assert retention(churn_step, steps) == np.isin(cohort, sim.present_user_ids()).mean()
    # by hand: each cohort user's total reward over the horizon, zero after churning
    per_user = np.array([rec["reward"][rec["user_id"] == u].sum(dtype=np.float64) for u in cohort])
    for u, t in zip(cohort, churn_step, strict=True):
        assert not (rec["user_id"][t + 1 :] == u).any()  # nothing earned after leaving
    engagement = cohort_engagement(cohort_reward(rec["reward"], rec["user_id"], cohort), len(cohort))
    assert engagement == pytest.approx(per_user.sum() / (n * steps), rel=1e-12)
    served = np.isin(rec["user_id"], cohort)
    assert engagement < rec["reward"][served].mean()  # the zeros of the churned pull it down


def test_rate_zero_keeps_a_closed_population() -> None:
    """Rate 0: each churned row is refilled with a newcomer (counted in user_arrivals), the
    population size never changes, and the newcomers stream gets no child for counts."""
    n = 16
    sim = Simulator(small_world(True), n, seed=3)
    assert sim._arrival_counts is None
    rec = drive(sim, 200)
    assert rec["churned"].sum() > 10
    np.testing.assert_array_equal(rec["user_arrivals"], rec["churned"].sum(axis=1))
    assert sim.population.size == n and sim.population.next_id == n + rec["churned"].sum()
    assert sim.population._stores == {}


def test_return_queue_push_pop_grows_in_fifo_order() -> None:
    queue = ReturnQueue(3, np.array([7, 8]))
    np.testing.assert_array_equal(queue.pop(1), [7])
    queue.push(np.array([1, 2, 3, 4]))  # 5 waiting in a buffer of 3: doubles
    assert queue.waiting == 5
    np.testing.assert_array_equal(queue.waiting_rows(), [8, 1, 2, 3, 4])
    np.testing.assert_array_equal(queue.push_pop(np.array([9])), [8])
    np.testing.assert_array_equal(queue.pop(5), [1, 2, 3, 4, 9])
    with pytest.raises(ValueError, match="cannot take 1 users from a queue of 0"):
        queue.pop(1)


def test_bench_lifecycle_pieces_run_on_a_tiny_world() -> None:
    """``benchmarks/bench_lifecycle.py`` still runs (its figures are printed, not asserted)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_lifecycle.py"
    spec = importlib.util.spec_from_file_location("bench_lifecycle", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.steps_per_second(8, 2.0, 3) > 0
    assert bench.growth_seconds_per_user(1_000) > 0
