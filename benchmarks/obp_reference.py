"""obp's estimator values on fixed synthetic inputs, stored as the fixture ``tests/data/obp_reference.json``.

Dev-only: runs in a separate venv with obp (neither the package nor CI depends on obp). obp
0.5.7 declares Python < 3.11 and pins old numpy/pandas/torch, so install it without its
dependency pins:

    python3 -m venv /tmp/obp-venv
    /tmp/obp-venv/bin/pip install --no-deps --ignore-requires-python obp==0.5.7
    /tmp/obp-venv/bin/pip install -c constraints.txt numpy pandas scipy scikit-learn matplotlib \
        seaborn tqdm pyyaml torch
    /tmp/obp-venv/bin/python benchmarks/obp_reference.py

It needs only numpy and obp (not this project). ``tests/test_ope.py`` recomputes every value
with :mod:`experiments.ope` from the stored inputs.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from obp import __version__ as obp_version
from obp.ope import (
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SlateCascadeDoublyRobust,
    SlateIndependentIPS,
    SlateRewardInteractionIPS,
    SlateStandardIPS,
    SwitchDoublyRobust,
)

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "obp_reference.json"
PARAMS = {"clip": 3.0, "tau": 4.0, "lam": 2.0}


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def single_item(rng: np.random.Generator) -> tuple[dict, dict]:
    n, n_actions = 100, 4
    logger = softmax(rng.normal(size=(n, n_actions)) * 0.5)
    target = softmax(rng.normal(size=(n, n_actions)) * 1.5)
    action = np.array([rng.choice(n_actions, p=p) for p in logger])
    pscore = logger[np.arange(n), action]
    q_hat = rng.random((n, n_actions))
    reward = (rng.random(n) < q_hat[np.arange(n), action] * 0.8 + 0.1).astype(float)
    common = {"reward": reward, "action": action, "position": None, "pscore": pscore}
    dist = target[:, :, None]
    q3 = q_hat[:, :, None]
    values = {
        "ipw": InverseProbabilityWeighting().estimate_policy_value(**common, action_dist=dist),
        "ipw_clipped": InverseProbabilityWeighting(lambda_=PARAMS["clip"]).estimate_policy_value(
            **common, action_dist=dist
        ),
        "snipw": SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**common, action_dist=dist),
        "dm": DirectMethod().estimate_policy_value(position=None, action_dist=dist, estimated_rewards_by_reg_model=q3),
        "dr": DoublyRobust().estimate_policy_value(**common, action_dist=dist, estimated_rewards_by_reg_model=q3),
        "sndr": SelfNormalizedDoublyRobust().estimate_policy_value(
            **common, action_dist=dist, estimated_rewards_by_reg_model=q3
        ),
        "switch-dr": SwitchDoublyRobust(lambda_=PARAMS["tau"]).estimate_policy_value(
            **common, action_dist=dist, estimated_rewards_by_reg_model=q3
        ),
        "dr-os": DoublyRobustWithShrinkage(lambda_=PARAMS["lam"]).estimate_policy_value(
            **common, action_dist=dist, estimated_rewards_by_reg_model=q3
        ),
    }
    inputs = {"reward": reward, "action": action, "pscore": pscore, "target_dist": target, "q_hat": q_hat}
    return inputs, values


def plackett_luce(scores: np.ndarray, slate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conditional probabilities (k,) of ``slate`` and the conditional distributions (k, A)."""
    k, n_actions = len(slate), len(scores)
    dist = np.zeros((k, n_actions))
    avail = np.ones(n_actions, bool)
    for j in range(k):
        e = np.where(avail, np.exp(scores), 0.0)
        dist[j] = e / e.sum()
        avail[slate[j]] = False
    return dist[np.arange(k), slate], dist


def marginals(scores: np.ndarray, k: int) -> np.ndarray:
    """(k, A) probability of each item at each slot under Plackett-Luce, by enumeration."""
    table = np.zeros((k, len(scores)))
    for s in itertools.permutations(range(len(scores)), k):
        p = plackett_luce(scores, np.array(s))[0].prod()
        table[np.arange(k), list(s)] += p
    return table


def slates(rng: np.random.Generator) -> tuple[dict, dict]:
    n, k, n_actions = 60, 3, 5
    rows = {name: [] for name in ("slot_reward", "logging_cond", "target_cond", "logging_marginal", "target_marginal")}
    rows |= {"q_logged": [], "q_expected": []}
    flat_action, flat_q, flat_dist = [], [], []
    for _ in range(n):
        ls, ts = rng.normal(size=n_actions) * 0.5, rng.normal(size=n_actions) * 1.5
        avail = list(range(n_actions))
        picked = []
        for _j in range(k):
            e = np.exp(ls[avail])
            picked.append(avail.pop(int(rng.choice(len(avail), p=e / e.sum()))))
        slate = np.array(picked)
        lc, _ = plackett_luce(ls, slate)
        tc, tdist = plackett_luce(ts, slate)
        q = rng.random((k, n_actions))
        rows["slot_reward"].append((rng.random(k) < 0.3).astype(float))
        rows["logging_cond"].append(lc)
        rows["target_cond"].append(tc)
        rows["logging_marginal"].append(marginals(ls, k)[np.arange(k), slate])
        rows["target_marginal"].append(marginals(ts, k)[np.arange(k), slate])
        rows["q_logged"].append(q[np.arange(k), slate])
        rows["q_expected"].append((tdist * q).sum(axis=1))
        flat_action.append(slate)
        flat_q.append(q.ravel())
        flat_dist.append(tdist.ravel())
    s = {name: np.array(v) for name, v in rows.items()}
    slate_id = np.repeat(np.arange(n), k)
    position = np.tile(np.arange(k), n)
    reward = s["slot_reward"].ravel()
    joint_l = np.repeat(s["logging_cond"].prod(1), k)
    joint_t = np.repeat(s["target_cond"].prod(1), k)
    values = {
        "sips": SlateStandardIPS(len_list=k).estimate_policy_value(
            slate_id=slate_id, reward=reward, position=position, pscore=joint_l, evaluation_policy_pscore=joint_t
        ),
        "iips": SlateIndependentIPS(len_list=k).estimate_policy_value(
            slate_id=slate_id,
            reward=reward,
            position=position,
            pscore_item_position=s["logging_marginal"].ravel(),
            evaluation_policy_pscore_item_position=s["target_marginal"].ravel(),
        ),
        "rips": SlateRewardInteractionIPS(len_list=k).estimate_policy_value(
            slate_id=slate_id,
            reward=reward,
            position=position,
            pscore_cascade=np.cumprod(s["logging_cond"], 1).ravel(),
            evaluation_policy_pscore_cascade=np.cumprod(s["target_cond"], 1).ravel(),
        ),
        "cascade-dr": SlateCascadeDoublyRobust(len_list=k, n_unique_action=n_actions).estimate_policy_value(
            slate_id=slate_id,
            action=np.concatenate(flat_action),
            reward=reward,
            position=position,
            pscore_cascade=np.cumprod(s["logging_cond"], 1).ravel(),
            evaluation_policy_pscore_cascade=np.cumprod(s["target_cond"], 1).ravel(),
            q_hat=np.concatenate(flat_q),
            evaluation_policy_action_dist=np.concatenate(flat_dist),
        ),
    }
    return s, values


def main() -> None:
    rng = np.random.default_rng(20260101)
    inputs, values = single_item(rng)
    slate_inputs, slate_values = slates(rng)
    fixture = {
        "source": f"obp {obp_version}, benchmarks/obp_reference.py",
        "params": PARAMS,
        "inputs": {k: v.tolist() for k, v in inputs.items()},
        "slate_inputs": {k: v.tolist() for k, v in slate_inputs.items()},
        "obp": {k: float(v) for k, v in (values | slate_values).items()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")
    for name, v in fixture["obp"].items():
        print(f"  {name:<12} {v:.12g}")


if __name__ == "__main__":
    main()
