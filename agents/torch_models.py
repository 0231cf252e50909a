"""Torch helpers of the torch agents (:mod:`agents.reinforce`, :mod:`agents.slateq_neural`):
networks built reproducibly from a seed, their weights and Adam state as data (numpy arrays
and JSON, :mod:`agents.persist`), and serving from per-candidate probabilities."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.deep_rl import _load_optimizer, slot_sample_without_replacement
from agents.persist import ModelFileError


def seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``build()`` with torch's global generator seeded by ``seed`` for the initial weights,
    the caller's generator state restored after (same seed, same weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def torch_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``net.NAME`` arrays (the module's ``state_dict``), ``optimizer.I.KEY`` arrays (the
    optimizer's per-parameter state) and ``optimizer_groups`` (JSON)."""
    state: dict[str, Any] = {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
    saved = optimizer.state_dict()
    for index, slots in saved["state"].items():
        for key, value in slots.items():
            state[f"optimizer.{index}.{key}"] = value.detach().cpu().numpy().copy() if torch.is_tensor(value) else value
    state["optimizer_groups"] = json.loads(json.dumps(saved["param_groups"]))
    return state


def load_torch_state(module: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Put :func:`torch_state` back into ``module`` and ``optimizer`` (built alike).

    Raises:
        ModelFileError: a missing, unknown or misshapen entry.
    """
    net = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    slots = {k.removeprefix("optimizer."): v for k, v in state.items() if k.startswith("optimizer.")}
    extra = sorted(set(state) - {f"net.{k}" for k in net} - {f"optimizer.{k}" for k in slots} - {"optimizer_groups"})
    if extra:
        raise ModelFileError(f"unexpected state entries {extra}")
    try:
        module.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in net.items()}, strict=True)
    except RuntimeError as err:
        raise ModelFileError(f"the network's weights do not fit: {err}") from None
    _load_optimizer(optimizer, state.get("optimizer_groups"), slots)


def plackett_luce(probs: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k candidates drawn without replacement from one categorical per row (Plackett-Luce).

    Args:
        probs: (B, C) candidate probabilities (rows sum to 1).
        k: slate size.
        rng: one uniform per slot.

    Returns:
        ``(slates, propensities, greedy)``, each (B, k): slot j's propensity is
        ``pi(x) / (1 - sum_{y shown before} pi(y))`` (exact); greedy is the top-k of pi.
    """
    b, c = probs.shape
    return slot_sample_without_replacement(np.broadcast_to(probs[:, None, :], (b, k, c)), rng)
