"""Jiang, Chiappa, Lattimore, György and Kohli 2019 (AIES): degenerate feedback loops.
See ``docs/reproductions/jiang2019.md``."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.reproductions import jiang2019, paired_effect
from experiments.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "reproductions" / "jiang2019.yaml"


def test_scenario_covers_the_measured_arms() -> None:
    scenario = load_scenario(SCENARIO)
    assert scenario.preset == jiang2019.PRESET
    assert dict(scenario.overrides) == jiang2019.WORLD
    agents = {a.label: (a.name, dict(a.params)) for a in scenario.agents}
    worlds = [scenario.world_config(point) for point in scenario.world_points()]
    for arm, (name, params, overrides) in jiang2019.ARMS.items():
        if not overrides:  # the learner arms: an agent of the scenario on its base world
            assert agents[arm] == (name, params), arm
            continue
        # the world arms: the greedy learner on a grid point of the scenario
        assert agents["greedy"] == (name, params), arm
        target = jiang2019._merge(jiang2019.WORLD, overrides)
        assert any(
            config.n_candidates == target.get("n_candidates", 20)
            and config.retrieval.method == target.get("retrieval", {}).get("method", "stratified")
            and config.catalog.arrival_rate == target["catalog"].get("arrival_rate", 0.0)
            for config in worlds
        ), arm
    assert (scenario.horizon.steps, scenario.horizon.users) == (jiang2019.STEPS, jiang2019.USERS)
    assert scenario.seeds == jiang2019.SEEDS


@pytest.mark.slow
def test_greedy_degenerates_faster_and_exploration_and_larger_relevant_pools_slow_it() -> None:
    """Degeneration = the decline of the users' topic-interest entropy from the start,
    averaged over 100 steps (bits; 256 users in the ``filter_bubble`` world, 8 seeds with
    common random numbers). Asserted, each by a paired 95% t-interval wholly on the
    claimed side of zero:

    * the greedy learner (``linear_egreedy``, epsilon 0) degenerates faster than random;
    * per-slot epsilon-greedy exploration at epsilon 0.3 slows it;
    * whole-slate epsilon-greedy exploration at epsilon 0.3 slows it;
    * under relevance retrieval, C = 50 candidates slow it compared with C = 10.

    Not asserted, because they did not hold (numbers in the docs): epsilon 0.1 (per slot:
    an effect within +-0.01 bits, the interval across zero) and item arrivals (20 new
    items a step change nothing: new items sit in the same topics as the old ones).
    """
    result = jiang2019.measure(arms=jiang2019.TESTED_ARMS)
    decline = {arm: numbers["decline_mean"] for arm, numbers in result.per_seed.items()}

    greedy = paired_effect(decline["greedy"], decline["random"])
    assert greedy.low > 0, f"greedy - random, mean decline: {greedy}"
    explore = paired_effect(decline["eps_03"], decline["greedy"])
    assert explore.high < 0, f"per-slot eps 0.3 - greedy, mean decline: {explore}"
    whole = paired_effect(decline["slate_03"], decline["greedy"])
    assert whole.high < 0, f"whole-slate eps 0.3 - greedy, mean decline: {whole}"
    pool = paired_effect(decline["relevance_c50"], decline["relevance_c10"])
    assert pool.high < 0, f"relevance C 50 - C 10, mean decline: {pool}"
