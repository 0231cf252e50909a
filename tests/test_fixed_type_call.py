"""The simulator's kernels called past numba's dispatcher (kernels.FixedTypeCall)."""

from __future__ import annotations

import copy

import numpy as np

from simenv import RecVectorEnv, kernels


def test_a_copy_types_its_own_calls_and_steps_like_the_original() -> None:
    env = RecVectorEnv(8)
    env.reset(seed=3)
    twin = copy.deepcopy(env.sim)
    assert twin._serve_kernel._entry is None and twin._serve_kernel.kernel is kernels.serve
    slate = np.tile(np.arange(env.config.slate_size), (8, 1))
    for _ in range(5):
        ours = env.sim.step(slate)
        theirs = twin.step(slate)
        np.testing.assert_array_equal(ours[1], theirs[1])
        np.testing.assert_array_equal(ours[4]["interest"], theirs[4]["interest"])


def test_restart_takes_strided_and_read_only_rows() -> None:
    """Rows of another layout are copied to the kernels' fixed type, not misread."""
    env = RecVectorEnv(8)
    env.reset(seed=3)
    reference = copy.deepcopy(env.sim)
    rows = np.arange(8)[::2]
    rows.flags.writeable = False
    obs = env.sim.restart(rows)
    expected = reference.restart(np.array([0, 2, 4, 6]))
    for key in obs:
        np.testing.assert_array_equal(obs[key], expected[key])
