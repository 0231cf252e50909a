"""SlateQ: slate-aware long-horizon value learning (Ie et al. 2019, IJCAI, "SlateQ: A
Tractable Decomposition for Reinforcement Learning with Recommendation Sets").

The slate value decomposes over the user's choice: with a conditional-logit choice
model with a no-click option, ``P(i | s, A) = v(s, i) / (v_0 + sum_{j in A} v(s, j))``,

    Q(s, A) = sum_{i in A} P(i | s, A) Qbar(s, i),

so only the item-level long-term value ``Qbar(s, i)`` is learned. Here:

* Features: ``x = [1, user features]`` (F_u + 1,) and ``z = [1, item features]``
  (F_i + 1,); both models are bilinear, i.e. linear in the outer product ``x z^T``.
* Click model (learned): ``v(s, i) = exp(x^T Theta z_i)``, ``v_0 = exp(no_click_score)``;
  one SGD step per batch on the conditional-logit log-likelihood of the observed
  choice (including no click), gradient ``sum_j (y_j - P_j) x z_j^T``.
* Item value: ``Qbar(s, i) = x^T W z_i``, trained by semi-gradient TD(0) on the
  clicked item only (the paper's decomposed SARSA update)::

      target = r + discount * sum_{j in A'} P(j | s', A') Qbar(s', j)

  where ``A'`` is the slate actually served next (on-policy SARSA) and ``P`` is the
  learned click model.
* Reward given a click: ``r(s, i) = x^T R z_i`` (normalised LMS on clicked items); it
  is what :class:`~agents.base.Decision` ``predicted`` reports.
* Slate optimisation: the paper's greedy top-k: rank candidates by
  ``v(s, i) Qbar(s, i)`` and take the top k, with per-slot epsilon-greedy exploration
  (:func:`agents.slates.epsilon_greedy_slates`, exact propensities).

Simplifications (documented, deliberate):

1. The next state of a transition is the observation the same env row shows at the next
   :meth:`SlateQAgent.update` call. A row whose user id changed (a churned user replaced
   or another user taking the slot) ends the episode (target = r). A user who returns to
   the same row for a new session continues it: the value is over the user's lifetime
   on the platform, discounted per step, not per session.
2. The transition of the last step before the agent stops learning is never used.
3. Non-clicked items are not updated (as in the paper); a no-click step trains the click
   model only.
4. Every SGD step (click model, item value, reward model) uses the batch mean of
   per-sample normalised gradients (normalised LMS: step ``/ (1 + |x|^2 |z|^2)``), so the
   step size does not depend on the batch size or the feature scale. The click model's
   log-likelihood is concave, so its default rate (5) is larger than the TD rate (<= 1).
5. No target network or replay buffer: one on-policy pass over each batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Agent, Decision, Feedback, Observation
from agents.recsys import check_range
from agents.registry import register
from agents.slates import epsilon_greedy_slates
from simenv import WorldSpec

_MAX_LOGIT = 30.0
"""Click-model logits are clipped to +-this before ``exp`` (overflow guard)."""


def with_bias(features: np.ndarray) -> np.ndarray:
    """Prepend a constant-1 column: (..., F) -> (..., F + 1) float64."""
    ones = np.ones((*features.shape[:-1], 1), dtype=np.float64)
    return np.concatenate([ones, features.astype(np.float64)], axis=-1)


def bilinear(x: np.ndarray, weights: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``x_b^T weights z_bj`` for x (B, U), weights (U, I), z (B, n, I) -> (B, n)."""
    return np.einsum("bi,bni->bn", x @ weights, z)


def conditional_logit(logits: np.ndarray, no_click_logit: float) -> np.ndarray:
    """Choice probabilities with a no-click option (McFadden 1974), as in SlateQ.

    Args:
        logits: (B, n) item logits ``log v(s, i)``.
        no_click_logit: ``log v_0``.

    Returns:
        (B, n + 1) probabilities; the last column is no click. Rows sum to 1.
    """
    b, n = logits.shape
    full = np.empty((b, n + 1), dtype=np.float64)
    full[:, :n] = np.clip(logits, -_MAX_LOGIT, _MAX_LOGIT)
    full[:, n] = no_click_logit
    full -= full.max(axis=1, keepdims=True)
    np.exp(full, out=full)
    return full / full.sum(axis=1, keepdims=True)


def normalised_outer_mean(x: np.ndarray, coef: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Batch mean of ``sum_j coef_bj x_b z_bj^T / (1 + |x_b|^2 mean_j |z_bj|^2)``.

    Args:
        x: (B, U). coef: (B, n). z: (B, n, I).

    Returns:
        (U, I) the normalised-LMS mean gradient (zeros for an empty batch).
    """
    if not x.shape[0]:
        return np.zeros((x.shape[1], z.shape[2]))
    norm = 1.0 + np.einsum("bu,bu->b", x, x) * np.einsum("bni,bni->b", z, z) / z.shape[1]
    return np.einsum("bu,bn,bni->ui", x / norm[:, None], coef, z) / x.shape[0]


@register
class SlateQAgent(Agent):
    """SlateQ with a bilinear item value and a learned conditional-logit click model.

    See the module docstring for the model, the update rules and the simplifications.
    ``Decision.predicted`` is the immediate reward given a click, ``x^T R z_i``, from a
    third bilinear model trained (normalised LMS, like W) on the clicked items' rewards.
    """

    name = "slateq"
    state_fields = ("click_weights", "q_weights", "reward_weights")
    _PENDING = ("user_id", "rows", "x", "z", "reward")
    """Arrays of the TD transition that waits for its next state (saved with the weights)."""

    def __init__(
        self,
        spec: WorldSpec,
        *,
        discount: float = 0.9,
        q_learning_rate: float = 0.5,
        click_learning_rate: float = 5.0,
        no_click_score: float = 0.0,
        epsilon: float = 0.1,
    ) -> None:
        check_range("slateq", "discount", discount, 0.0, 1.0)
        if discount >= 1.0:
            raise ValueError(f"slateq.discount must be in [0, 1); got {discount!r}")
        # normalised LMS is stable for rates <= 1
        check_range("slateq", "q_learning_rate", q_learning_rate, 0.0, 1.0, lo_open=True)
        check_range("slateq", "click_learning_rate", click_learning_rate, 0.0, lo_open=True)
        check_range("slateq", "no_click_score", no_click_score, -_MAX_LOGIT, _MAX_LOGIT)
        check_range("slateq", "epsilon", epsilon, 0.0, 1.0)
        super().__init__(
            spec,
            discount=discount,
            q_learning_rate=q_learning_rate,
            click_learning_rate=click_learning_rate,
            no_click_score=no_click_score,
            epsilon=epsilon,
        )
        self.discount = discount
        self.q_learning_rate = q_learning_rate
        self.click_learning_rate = click_learning_rate
        self.no_click_score = no_click_score
        self.epsilon = epsilon
        shape = (spec.user_dim + 1, spec.item_dim + 1)
        self.click_weights = np.zeros(shape)  # Theta: click logit x^T Theta z
        self.q_weights = np.zeros(shape)  # W: item value Qbar = x^T W z
        self.reward_weights = np.zeros(shape)  # R: immediate reward given a click, x^T R z
        self._pending: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ scoring
    def item_values(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """Click logits ``log v(s, i)`` and item values ``Qbar(s, i)`` of every candidate, each (B, C)."""
        x, z = with_bias(obs["user"]), with_bias(obs["candidates"])
        return bilinear(x, self.click_weights, z), bilinear(x, self.q_weights, z)

    def scores(self, obs: Observation) -> np.ndarray:
        """(B, C) the greedy top-k key ``v(s, i) Qbar(s, i)`` (the greedy method of Ie et al. 2019)."""
        logits, q = self.item_values(obs)
        return np.exp(np.clip(logits, -_MAX_LOGIT, _MAX_LOGIT)) * q

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        decision = epsilon_greedy_slates(self.scores(obs), self.spec.slate_size, self.epsilon, rng)
        x = with_bias(obs["user"])
        served = with_bias(np.take_along_axis(obs["candidates"], decision.slates[:, :, None], axis=1))
        predicted = bilinear(x, self.reward_weights, served)
        return Decision(decision.slates, decision.propensities, decision.explored, predicted)

    # ------------------------------------------------------------------ learning
    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        x = with_bias(obs["user"])
        z = with_bias(np.take_along_axis(obs["candidates"], decision.slates[:, :, None], axis=1))
        probs = conditional_logit(bilinear(x, self.click_weights, z), self.no_click_score)
        q = bilinear(x, self.q_weights, z)
        self._td_step(obs["user_id"], np.einsum("bn,bn->b", probs[:, :-1], q))
        self._click_step(x, z, probs, feedback.clicks)
        self._reward_step(x, z, feedback)
        self._remember(obs["user_id"], x, z, feedback)

    def _click_step(self, x: np.ndarray, z: np.ndarray, probs: np.ndarray, clicks: np.ndarray) -> None:
        """One SGD ascent step on the conditional-logit log-likelihood of the observed choices."""
        k = z.shape[1]
        chosen = (clicks[:, None] == np.arange(k)[None, :]).astype(np.float64)
        grad = normalised_outer_mean(x, chosen - probs[:, :k], z)
        self.click_weights += self.click_learning_rate * grad

    def _reward_step(self, x: np.ndarray, z: np.ndarray, feedback: Feedback) -> None:
        """One normalised-LMS step of the reward-given-click model on the clicked items."""
        rows = np.flatnonzero(feedback.clicks >= 0)
        z_clicked = z[rows, feedback.clicks[rows]][:, None, :]
        error = (
            np.asarray(feedback.rewards, dtype=np.float64)[rows]
            - bilinear(x[rows], self.reward_weights, z_clicked)[:, 0]
        )
        self.reward_weights += self.q_learning_rate * normalised_outer_mean(x[rows], error[:, None], z_clicked)

    def _td_step(self, user_id: np.ndarray, next_value: np.ndarray) -> None:
        """Semi-gradient TD(0) on the clicked items of the previous batch.

        Args:
            user_id: (B,) users now in each row (a changed id ends the episode).
            next_value: (B,) ``sum_j P(j | s', A') Qbar(s', j)`` of the slates just served.
        """
        pending, self._pending = self._pending, None
        if pending is None or pending["user_id"].shape != user_id.shape:
            return
        rows = pending["rows"]
        if not rows.size:
            return
        same_user = pending["user_id"][rows] == user_id[rows]
        target = pending["reward"] + self.discount * np.where(same_user, next_value[rows], 0.0)
        x, z = pending["x"], pending["z"][:, None, :]
        delta = target - bilinear(x, self.q_weights, z)[:, 0]
        self.q_weights += self.q_learning_rate * normalised_outer_mean(x, delta[:, None], z)

    def get_state(self) -> dict[str, Any]:
        """The weights and the pending TD transition (``pending_*`` arrays, empty when none)."""
        state = super().get_state()
        state["has_pending"] = self._pending is not None
        for key in self._PENDING:
            state[f"pending_{key}"] = self._pending[key] if self._pending is not None else np.zeros(0)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        has_pending = state.pop("has_pending")
        pending = {key: np.asarray(state.pop(f"pending_{key}")) for key in self._PENDING}
        if not isinstance(has_pending, bool):
            raise TypeError(f"has_pending must be a bool; got {has_pending!r}")
        super().set_state(state)
        self._pending = pending if has_pending else None

    def _remember(self, user_id: np.ndarray, x: np.ndarray, z: np.ndarray, feedback: Feedback) -> None:
        """Keep the clicked (state, item, reward) of this batch until its next state arrives."""
        rows = np.flatnonzero(feedback.clicks >= 0)
        self._pending = {
            "user_id": user_id.copy(),
            "rows": rows,
            "x": x[rows],
            "z": z[rows, feedback.clicks[rows]],
            "reward": np.asarray(feedback.rewards, dtype=np.float64)[rows],
        }
