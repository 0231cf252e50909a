"""Benchmark: every single-item estimator with a user bootstrap on a large log.

Default: 1,000,000 logged decisions (10,000 users x 100 decisions, C = 50 candidates),
IPS, clipped IPS, SNIPS, DM, DR, SNDR, Switch-DR and DR-os, 1,000 user-bootstrap
resamples, the Thomas et al. (2015) bound and diagnostics, all through
:func:`experiments.ope.estimate`. The target is < 30 s (obp's decision-level bootstrap,
a Python loop per resample and estimator, takes about 930 s for the same; see
``docs/ope.md``). The reward model's predictions are given (fitting it is not timed).

    python benchmarks/bench_ope.py [--decisions 1000000] [--users 10000] [--boot 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from experiments import ope


def synthetic_log(n: int, n_users: int, n_candidates: int, seed: int) -> dict[str, np.ndarray]:
    """A softmax logger and target over random scores, Bernoulli rewards, a noisy reward model."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, n_candidates)).astype(np.float32)
    logger = np.exp(0.5 * scores)
    logger /= logger.sum(axis=1, keepdims=True)
    target = np.exp(1.5 * scores)
    target /= target.sum(axis=1, keepdims=True)
    u = rng.random(n)[:, None]
    action = np.minimum((u > np.cumsum(logger, axis=1)).sum(axis=1), n_candidates - 1)
    p_click = 1.0 / (1.0 + np.exp(-scores))
    rows = np.arange(n)
    reward = (rng.random(n) < p_click[rows, action]).astype(np.float64)
    q_hat = p_click + rng.normal(scale=0.05, size=p_click.shape).astype(np.float32)
    return {
        "user_id": np.sort(rng.integers(0, n_users, n)),
        "reward": reward,
        "logging_prob": logger[rows, action].astype(np.float64),
        "target_prob": target[rows, action].astype(np.float64),
        "q_logged": q_hat[rows, action].astype(np.float64),
        "q_expected": np.einsum("nc,nc->n", target, q_hat).astype(np.float64),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args(argv)
    log = synthetic_log(args.decisions, args.users, args.candidates, seed=0)
    t0 = time.perf_counter()
    terms = ope.single_item_estimators(
        log["reward"], log["logging_prob"], log["target_prob"], log["q_logged"], log["q_expected"], clip=20.0
    )
    t1 = time.perf_counter()
    out = ope.estimate(terms, log["user_id"], n_boot=args.boot, rng=np.random.default_rng(1))
    t2 = time.perf_counter()
    print(
        f"{args.decisions:,} decisions, {args.users:,} users, {len(terms)} estimators, "
        f"{args.boot:,} user-bootstrap resamples"
    )
    for e in out.values():
        d = e.diagnostics
        diag = (
            "" if d is None else f"  ESS/n {d.ess_fraction:.3f}  max w {d.max_weight:.1f}  mean w {d.mean_weight:.4f}"
        )
        print(f"  {e.name:<18} {e.value:.5f}  [{e.ci_low:.5f}, {e.ci_high:.5f}]{diag}")
    print(
        f"terms: {t1 - t0:.2f} s; intervals + bound + diagnostics: {t2 - t1:.2f} s; "
        f"total {t2 - t0:.2f} s (target < 30 s)"
    )


if __name__ == "__main__":
    main()
