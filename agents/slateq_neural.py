"""SlateQ with a neural item-value scorer (Ie et al. 2019, IJCAI, "SlateQ: A Tractable
Decomposition for Reinforcement Learning with Recommendation Sets").

:class:`NeuralSlateQAgent` is :class:`agents.slateq.SlateQAgent` (state with the per-user
feedback history, learned conditional-logit click model, n-step SARSA, top-k by
``v(s, i) (Qbar(s, i) - Qbar(s, null))``) whose item values are networks instead of bilinear
forms:

* ``Qbar(s, i) - Qbar(s, null) = f(x, z_i)``, f the shared-weight
  :class:`agents.scoring.CandidateScorer` on the state x and the item features z (the
  paper's item-level long-term value, one network for every item);
* ``Qbar(s, null) = g(x)``, a linear head on the state (0 with ``null_value=False``).

The decomposition is kept exact, with the choice model the agent assumes (its learned
conditional logit with a no-click item)::

    Q(s, A) = sum_{i in A} P(i | s, A) Qbar(s, i) + P(null | s, A) Qbar(s, null)

and the slate bootstrap of the n-step SARSA target is this Q of the slate served next. The
networks are fitted by Adam steps (``value_learning_rate``, ``minibatch`` rows each) on the
squared TD error of the consumed item (the clicked one, or the null item), targets held fixed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from agents.registry import register
from agents.scoring import CandidateScorer
from agents.slateq import SlateQAgent
from agents.torch_models import load_torch_state, seeded, torch_state
from agents.torch_params import NeuralSlateQParams
from simenv import WorldSpec


class ItemValueNet(nn.Module):
    """``f(x, z)`` advantages of items over no click (the candidate scorer) and ``g(x)`` the null value.

    Args:
        state_dim: U, the width of SlateQ's state ``x = [1, user, history]``.
        item_dim: I, the width of its item features ``z = [1, item, squares]``.
        hidden: the scorer's hidden widths.
    """

    def __init__(self, state_dim: int, item_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.scorer = CandidateScorer(state_dim, item_dim, hidden)
        self.null = nn.Linear(state_dim, 1)
        nn.init.zeros_(self.null.weight)
        nn.init.zeros_(self.null.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g(x) (B,), f(x, z) (B, n))`` for x (B, U) and z (B, n, I)."""
        return self.null(x).squeeze(-1), self.scorer(x, z)


@register
class NeuralSlateQAgent(SlateQAgent):
    """SlateQ whose item values are the shared candidate scorer (see the module docstring)."""

    name = "slateq_neural"
    Params = NeuralSlateQParams
    state_fields = tuple(f for f in SlateQAgent.state_fields if f not in ("q_weights", "null_weights"))

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        super().__init__(spec, **params)
        hp = self.hparams
        state_dim, item_dim = self.click_weights.shape
        self.values = seeded(lambda: ItemValueNet(state_dim, item_dim, hp.hidden), hp.seed)
        self.optimizer = torch.optim.Adam(self.values.parameters(), lr=hp.value_learning_rate)
        del self.q_weights, self.null_weights  # the networks replace the bilinear values

    @property
    def value_scale(self) -> float:
        """``1 / (1 - discount)``: the networks output values in units of a per-step reward
        (a discounted sum of rewards r is about r / (1 - discount)), so their scale does not
        depend on the discount."""
        return 1.0 / (1.0 - self.discount)

    def null_values(self, x: np.ndarray) -> np.ndarray:
        """(B,) ``Qbar(s, null) = g(x)`` (0 without ``null_value``)."""
        if not self.null_value:
            return np.zeros(len(x))
        with torch.no_grad():
            null = self.values.null(torch.as_tensor(x, dtype=torch.float32)).squeeze(-1)
        return self.value_scale * null.double().numpy()

    def advantages(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(B, n) ``f(x, z_i)``, the items' values over no click."""
        with torch.no_grad():
            scores = self.values.scorer(
                torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(z, dtype=torch.float32)
            )
        return self.value_scale * scores.double().numpy()

    def _fit_values(self, oldest: dict[str, np.ndarray], target: np.ndarray) -> None:
        """Adam steps on ``(target - Qbar(s, consumed))^2`` over minibatches of the rows
        (only the clicked rows, with ``null_value=False``)."""
        rows = oldest["rows"]
        n = len(oldest["x"])
        clicked = np.zeros(n, dtype=bool)
        clicked[rows] = True
        z = np.zeros((n, oldest["z"].shape[-1] if len(rows) else self.click_weights.shape[1]))
        z[rows] = oldest["z"]
        keep = np.arange(n) if self.null_value else rows
        x_t = torch.as_tensor(oldest["x"][keep], dtype=torch.float32)
        z_t = torch.as_tensor(z[keep], dtype=torch.float32)[:, None, :]
        mask = torch.as_tensor(clicked[keep], dtype=torch.float32)
        y = torch.as_tensor(target[keep] / self.value_scale, dtype=torch.float32)
        for part in self._chunks(len(keep)):
            null, advantage = self.values(x_t[part], z_t[part])
            predicted = (null if self.null_value else 0.0) + mask[part] * advantage[:, 0]
            loss = torch.mean((y[part] - predicted) ** 2)  # in per-step reward units
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    def get_state(self) -> dict[str, Any]:
        """SlateQ's state (click and reward models, histories, n-step trace) and the networks with Adam's state."""
        return {**super().get_state(), **torch_state(self.values, self.optimizer)}

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        torch_keys = [k for k in state if k.startswith(("net.", "optimizer.")) or k == "optimizer_groups"]
        load_torch_state(self.values, self.optimizer, {k: state.pop(k) for k in torch_keys})
        super().set_state(state)
