"""SlateQ: slate-aware long-horizon value learning (Ie et al. 2019, IJCAI, "SlateQ: A
Tractable Decomposition for Reinforcement Learning with Recommendation Sets").

The slate value decomposes over the user's choice: with a conditional-logit choice
model with a no-click option (the null item), ``P(i | s, A) = v(s, i) / (v_0 + sum_{j in A}
v(s, j))`` and ``P(null | s, A) = v_0 / (v_0 + sum_{j in A} v(s, j))``,

    Q(s, A) = sum_{i in A} P(i | s, A) Qbar(s, i) + P(null | s, A) Qbar(s, null),

so only item-level long-term values are learned (the paper's single-choice assumption:
the user consumes one item of the slate, possibly the null item). Here:

* State: ``x = [1, user features, history]`` (U,): the observation plus the agent's own
  memory of each user's recent feedback, an exponentially weighted mean (rate
  ``history_rate``) of ``[clicked, clicked item's features]``. The user's lasting state
  (e.g. satisfaction) is hidden; what they clicked lately is the agent's window on it.
* Items: ``z = [1, item features, squares of the non-embedding item features]`` (I,), so
  values can bend in appeal or length (a value that drops only for the most tempting
  items is not linear in appeal). Both models are bilinear, linear in ``x z^T``.
* Click model (learned): ``v(s, i) = exp(x^T Theta z_i)``, ``v_0 = exp(no_click_score)``;
  SGD on the conditional-logit log-likelihood of the observed choice (including no
  click), gradient ``sum_j (y_j - P_j) x z_j^T``.
* Item values: ``Qbar(s, null) = x^T w0`` and ``Qbar(s, i) = x^T w0 + x^T W z_i``, i.e. W
  is the item's advantage over no click. Trained by semi-gradient n-step SARSA on the
  consumed item (the clicked one, or the null item on a step without a click)::

      target = sum_{k < n} discount^k r_{t+k} + discount^n sum_{j in A'} P(j | s', A') Qbar(s', j)

  (``A'`` the slate served at t + n, the sum including the null item; n = ``n_step``, 1 in
  the paper). With ``null_value=False``, ``Qbar(s, null) = 0`` and only clicked items are
  updated (as in RecSim's implementation).
* Reward given a click: ``r(s, i) = x^T R z_i`` (normalised LMS on clicked items); it
  is what :class:`~agents.base.Decision` ``predicted`` reports.
* Slate optimisation: the paper's top-k: ``Q(s, A) - Qbar(s, null) = sum_{i in A} v_i
  (Qbar_i - Qbar_null) / (v_0 + sum_{j in A} v_j)``, so candidates are ranked by
  ``v(s, i) x^T W z_i`` and the top k served, with per-slot epsilon-greedy exploration
  (:func:`agents.slates.epsilon_greedy_slates`, exact propensities).
* :meth:`SlateQAgent.train` learns on a world of its own before serving (the runner's
  training budget).

Simplifications (documented, deliberate):

1. The next state of a transition is the observation the same env row shows at the next
   :meth:`SlateQAgent.update` call. A row whose user id changed (a churned user replaced
   or another user taking the slot) ends the episode (no later reward, no bootstrap). A
   user who returns to the same row for a new session continues it: the value is over the
   user's lifetime on the platform, discounted per step, not per session.
2. The last ``n_step`` transitions before the agent stops learning are never used.
3. Items shown but not consumed are not updated (as in the paper).
4. Every SGD step (click model, item values, reward model) uses the mean over a minibatch
   (``minibatch`` rows of the batch, in order) of per-sample normalised gradients
   (normalised LMS: step ``/ (1 + |phi|^2)`` with phi the sample's features), so the step
   size does not depend on the batch size or the feature scale. The click model's
   log-likelihood is concave, so its default rate (5) is larger than the TD rate (<= 1).
5. No target network or replay buffer: one on-policy pass over each batch.
6. The history is built from the feedback :meth:`update` receives: with delayed or
   batched feedback it lags, and a frozen agent (no updates) stops updating it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Decision, Feedback, Observation
from agents.params import AgentParams, flag, integer, number
from agents.recsys import Embeddings, _check_int, embedding_fields
from agents.registry import register
from agents.slates import epsilon_greedy_probabilities, epsilon_greedy_slates
from agents.training_log import TrainingCurve
from simenv import RecVectorEnv, WorldConfig, WorldSpec, get_preset

_MAX_LOGIT = 30.0
"""Click-model logits are clipped to +-this before ``exp`` (overflow guard)."""


def with_bias(features: np.ndarray) -> np.ndarray:
    """Prepend a constant-1 column: (..., F) -> (..., F + 1) float64."""
    ones = np.ones((*features.shape[:-1], 1), dtype=np.float64)
    return np.concatenate([ones, features.astype(np.float64)], axis=-1)


def bilinear(x: np.ndarray, weights: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``x_b^T weights z_bj`` for x (B, U), weights (U, I), z (B, n, I) -> (B, n)."""
    return np.matmul(z, (x @ weights)[:, :, None])[:, :, 0]


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
    weighted = np.matmul(coef[:, None, :], z)[:, 0, :]  # (B, I): sum_j coef_bj z_bj
    return (x / norm[:, None]).T @ weighted / x.shape[0]


@register
class SlateQAgent(Agent):
    """SlateQ with bilinear item values and a learned conditional-logit click model.

    See the module docstring for the model, the update rules and the simplifications.
    ``Decision.predicted`` is the immediate reward given a click, ``x^T R z_i``, from a
    third bilinear model trained (normalised LMS) on the clicked items' rewards.

    Args:
        discount: gamma in [0, 1).
        q_learning_rate: normalised-LMS rate of the item values and the reward model, (0, 1].
        click_learning_rate: SGD rate of the click model, > 0.
        no_click_score: ``log v_0`` of the click model.
        epsilon: per-slot exploration probability.
        history_rate: rate of the per-user feedback history in the state, in [0, 1]
            (0 = no history: the state is the observation alone).
        null_value: learn ``Qbar(s, null)``, the value of a step without a click (True), or
            take it as 0 (False, RecSim's implementation).
        minibatch: rows per SGD step (a batch of B rows makes ``ceil(B / minibatch)`` steps).
        n_step: n of the n-step SARSA target (1 = the paper's one-step SARSA).
        quadratic_items: add the squares of the non-embedding item features to ``z``.
    """

    name = "slateq"
    state_fields = ("click_weights", "q_weights", "null_weights", "reward_weights", *embedding_fields("history"))
    growable_fields = embedding_fields("history")
    _TRACE = ("user_id", "rows", "clicks", "x", "z", "reward")
    """Arrays of each batch in the n-step trace awaiting its target (saved with the weights)."""

    @dataclass(frozen=True)
    class Params(AgentParams):
        discount: float = number(0.9, "gamma, the discount of future reward", ge=0.0, lt=1.0)
        q_learning_rate: float = number(
            0.5, "normalised-LMS rate of the item values and the reward model (stable <= 1)", gt=0.0, le=1.0
        )
        click_learning_rate: float = number(5.0, "SGD rate of the conditional-logit click model", gt=0.0)
        no_click_score: float = number(0.0, "log v_0, the click model's no-click score", ge=-_MAX_LOGIT, le=_MAX_LOGIT)
        epsilon: float = number(0.1, "exploration probability per slot", ge=0.0, le=1.0)
        history_rate: float = number(
            0.2, "rate of the per-user feedback history in the state (0: none)", ge=0.0, le=1.0
        )
        null_value: bool = flag(True, "learn the value of a step without a click (False: take it as 0, as RecSim)")
        minibatch: int = integer(16, "rows per SGD step", ge=1)
        n_step: int = integer(1, "n of the n-step SARSA target (1: the paper's one-step SARSA)", ge=1)
        quadratic_items: bool = flag(True, "add the squares of the non-embedding item features to z")

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        super().__init__(spec, **params)
        hp = self.hparams
        self.discount = hp.discount
        self.q_learning_rate = hp.q_learning_rate
        self.click_learning_rate = hp.click_learning_rate
        self.no_click_score = hp.no_click_score
        self.epsilon = hp.epsilon
        self.history_rate = hp.history_rate
        self.null_value = hp.null_value
        self.minibatch = hp.minibatch
        self.n_step = hp.n_step
        history_rate, quadratic_items = hp.history_rate, hp.quadratic_items
        self.history_dim = (1 + spec.item_dim) if history_rate > 0 else 0
        self.n_squares = (spec.item_dim - spec.embedding_dim) if quadratic_items else 0
        shape = (spec.user_dim + self.history_dim + 1, spec.item_dim + self.n_squares + 1)
        self.click_weights = np.zeros(shape)  # Theta: click logit x^T Theta z
        self.q_weights = np.zeros(shape)  # W: advantage of an item over no click, x^T W z
        self.null_weights = np.zeros(shape[0])  # w0: value of no click, Qbar(s, null) = x^T w0
        self.reward_weights = np.zeros(shape)  # R: immediate reward given a click, x^T R z
        self.forget_users()
        self.last_td_loss = float("nan")  # of the latest TD step (training curves)

    def forget_users(self) -> None:
        """Drop the per-user memory: the feedback histories and the transitions awaiting
        their target (e.g. after training, before serving other users with reused ids)."""
        self.history = Embeddings(max(self.history_dim, 1))
        self._trace: list[dict[str, np.ndarray]] = []  # the last n_step batches, oldest first

    # ------------------------------------------------------------------ features
    def state_features(self, obs: Observation) -> np.ndarray:
        """(B, U) ``x = [1, user features, history]`` (history zeros for a user not served yet)."""
        b, f = obs["user"].shape
        x = np.empty((b, 1 + f + self.history_dim))
        x[:, 0] = 1.0
        x[:, 1 : 1 + f] = obs["user"]
        if self.history_dim:
            x[:, 1 + f :] = self.history.gather(obs["user_id"])[0][:, : self.history_dim]
        return x

    def item_features(self, candidates: np.ndarray) -> np.ndarray:
        """(..., I) ``z = [1, item features, squares of the non-embedding item features]``."""
        f = candidates.shape[-1]
        z = np.empty((*candidates.shape[:-1], 1 + f + self.n_squares))
        z[..., 0] = 1.0
        z[..., 1 : 1 + f] = candidates
        if self.n_squares:
            np.square(z[..., 1 + f - self.n_squares : 1 + f], out=z[..., 1 + f :])
        return z

    def _remember_feedback(self, user_id: np.ndarray, z: np.ndarray, clicks: np.ndarray) -> None:
        """Move each user's history toward ``[clicked, clicked item's features]`` (zeros
        without a click). ``z`` (B, k, I) are the served items' features."""
        if not self.history_dim:
            return
        rows, _ = self.history.add(user_id)
        clicked = clicks >= 0
        signal = np.zeros((len(user_id), self.history_dim))
        signal[:, 0] = clicked
        signal[clicked, 1:] = z[np.flatnonzero(clicked), clicks[clicked], 1 : self.history_dim]
        h = self.history.vectors[rows, : self.history_dim]
        self.history.vectors[rows, : self.history_dim] = h + self.history_rate * (signal - h)

    # ------------------------------------------------------------------ scoring
    def null_values(self, x: np.ndarray) -> np.ndarray:
        """(B,) ``Qbar(s, null) = x^T w0``, the value of a step without a click (0 if not learned)."""
        return x @ self.null_weights

    def item_values(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """Click logits ``log v(s, i)`` and item values ``Qbar(s, i)`` of every candidate, each (B, C)."""
        x, z = self.state_features(obs), self.item_features(obs["candidates"])
        return bilinear(x, self.click_weights, z), self.null_values(x)[:, None] + self.advantages(x, z)

    def advantages(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(B, n) ``Qbar(s, i) - Qbar(s, null) = x^T W z_i`` of items z (B, n, I) in states x (B, U)."""
        return bilinear(x, self.q_weights, z)

    def _scores(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        logits, advantage = bilinear(x, self.click_weights, z), self.advantages(x, z)
        return np.exp(np.clip(logits, -_MAX_LOGIT, _MAX_LOGIT)) * advantage

    def scores(self, obs: Observation) -> np.ndarray:
        """(B, C) the top-k key ``v(s, i) (Qbar(s, i) - Qbar(s, null)) = v(s, i) x^T W z_i``."""
        return self._scores(self.state_features(obs), self.item_features(obs["candidates"]))

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        x, z = self.state_features(obs), self.item_features(obs["candidates"])
        decision = epsilon_greedy_slates(self._scores(x, z), self.spec.slate_size, self.epsilon, rng)
        predicted = np.take_along_axis(bilinear(x, self.reward_weights, z), decision.slates, axis=1)
        return Decision(decision.slates, decision.propensities, decision.explored, predicted)

    def slot_probabilities(self, obs: Observation, slates: np.ndarray) -> np.ndarray:
        """Exact per-slot epsilon-greedy law over :meth:`scores`."""
        return epsilon_greedy_probabilities(self.scores(obs), slates, self.epsilon)

    # ------------------------------------------------------------------ training
    def train(self, env_or_config: Any, total_timesteps: int, seed: int, n_envs: int = 256) -> SlateQAgent:
        """Learn online on a world of its own before serving (train, then serve).

        Args:
            env_or_config: a :class:`simenv.RecVectorEnv`, a :class:`simenv.WorldConfig`
                or a preset name (the last two get ``n_envs`` sessions, no oracle).
            total_timesteps: user-steps to learn from (summed over sessions), >= 1; the
                world is stepped ``ceil(total_timesteps / sessions)`` times.
            seed: seeds the training world and the exploration draws.
            n_envs: sessions when a config or preset name is given.

        Returns:
            ``self``, trained. Its memory of the training world's users (histories,
            transitions awaiting their target) is dropped at the end: the users it serves
            next are others.
        """
        _check_int("slateq", "total_timesteps", total_timesteps, 1)
        if isinstance(env_or_config, RecVectorEnv):
            env = env_or_config
        else:
            config = get_preset(env_or_config) if isinstance(env_or_config, str) else env_or_config
            if not isinstance(config, WorldConfig):
                raise TypeError(
                    "env_or_config must be a simenv.RecVectorEnv, a WorldConfig or a preset name; "
                    f"got {type(env_or_config).__name__}"
                )
            env = RecVectorEnv(n_envs, config=config, oracle=False)
        world = WorldSpec.from_config(env.config)
        if world != self.spec:
            raise ValueError(f"slateq: the environment's shape {world} differs from the agent's spec {self.spec}")
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=int(seed))
        steps = -(-int(total_timesteps) // env.num_envs)
        self.training_curve = TrainingCurve(steps)
        for _ in range(steps):
            decision = self.act(obs, rng)
            users = np.array(obs["user_id"])
            next_obs, reward, _, _, info = env.step(decision.slates)
            self.last_td_loss = float("nan")
            self.update(obs, decision, Feedback(clicks=info["click"], rewards=reward))
            self.training_curve.step(reward, users, td_loss=self.last_td_loss)
            obs = next_obs
        self.training_curve.flush()
        self.forget_users()
        return self

    # ------------------------------------------------------------------ learning
    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        x = self.state_features(obs)
        z = self.item_features(np.take_along_axis(obs["candidates"], decision.slates[:, :, None], axis=1))
        probs = conditional_logit(bilinear(x, self.click_weights, z), self.no_click_score)
        # V(s) = sum_j P_j Qbar_j + P_null Qbar_null, with Qbar_j = Qbar_null + x^T W z_j
        value = self.null_values(x) + np.einsum("bn,bn->b", probs[:, :-1], self.advantages(x, z))
        self._td_step(obs["user_id"], value)
        self._click_step(x, z, feedback.clicks)
        self._reward_step(x, z, feedback)
        self._remember(obs["user_id"], x, z, feedback)
        self._remember_feedback(obs["user_id"], z, feedback.clicks)

    def _chunks(self, n: int) -> Iterator[slice]:
        """Row slices of the SGD minibatches of a batch of ``n`` rows, in order."""
        for lo in range(0, n, self.minibatch):
            yield slice(lo, min(lo + self.minibatch, n))

    def _click_step(self, x: np.ndarray, z: np.ndarray, clicks: np.ndarray) -> None:
        """SGD ascent steps (one per minibatch) on the conditional-logit log-likelihood of the observed choices."""
        k = z.shape[1]
        chosen = (clicks[:, None] == np.arange(k)[None, :]).astype(np.float64)
        for part in self._chunks(len(x)):
            probs = conditional_logit(bilinear(x[part], self.click_weights, z[part]), self.no_click_score)
            grad = normalised_outer_mean(x[part], chosen[part] - probs[:, :k], z[part])
            self.click_weights += self.click_learning_rate * grad

    def _reward_step(self, x: np.ndarray, z: np.ndarray, feedback: Feedback) -> None:
        """Normalised-LMS steps of the reward-given-click model on the clicked items."""
        rows = np.flatnonzero(feedback.clicks >= 0)
        x_clicked, z_clicked = x[rows], z[rows, feedback.clicks[rows]][:, None, :]
        rewards = np.asarray(feedback.rewards, dtype=np.float64)[rows]
        for part in self._chunks(len(rows)):
            error = rewards[part] - bilinear(x_clicked[part], self.reward_weights, z_clicked[part])[:, 0]
            step = normalised_outer_mean(x_clicked[part], error[:, None], z_clicked[part])
            self.reward_weights += self.q_learning_rate * step

    def _td_step(self, user_id: np.ndarray, next_value: np.ndarray) -> None:
        """Semi-gradient n-step SARSA on the batch served ``n_step`` steps ago.

        The target of a row is ``sum_{k < n} discount^k r_{t+k} + discount^n V(s_{t+n})``,
        cut where the row's user changes (the episode ends: no later reward, no bootstrap).
        Clicked rows update ``Qbar(s, i) = x^T w0 + x^T W z_i`` (w0 and W), rows without a
        click ``Qbar(s, null) = x^T w0`` (with ``null_value``; else only clicked rows, W).

        Args:
            user_id: (B,) users now in each row.
            next_value: (B,) ``V(s') = sum_{j in A' + null} P(j | s', A') Qbar(s', j)`` of
                the slates just served.
        """
        trace = self._trace
        if len(trace) < self.n_step:
            return
        if any(step["user_id"].shape != user_id.shape for step in trace):
            self._trace = []
            return
        oldest = trace[0]
        alive = np.ones(user_id.shape, dtype=bool)
        target = np.zeros(user_id.shape)
        for k, step in enumerate(trace):
            alive &= step["user_id"] == oldest["user_id"]
            target += np.where(alive, self.discount**k * step["reward"], 0.0)
        alive &= user_id == oldest["user_id"]
        target += np.where(alive, self.discount**self.n_step * next_value, 0.0)
        self.last_td_loss = self._td_loss(oldest, target)
        self._fit_values(oldest, target)

    def _td_loss(self, oldest: dict[str, np.ndarray], target: np.ndarray) -> float:
        """Mean squared TD error ``(target - Qbar(s, consumed))^2`` of the batch ``oldest``
        before its step (over the clicked rows only without ``null_value``)."""
        x, rows = oldest["x"], oldest["rows"]
        consumed = self.null_values(x) if self.null_value else np.zeros(len(x))
        if len(rows):
            consumed[rows] += self.advantages(x[rows], oldest["z"][:, None, :])[:, 0]
        error = (target - consumed) if self.null_value else (target - consumed)[rows]
        return float(np.mean(error**2)) if len(error) else float("nan")

    def _fit_values(self, oldest: dict[str, np.ndarray], target: np.ndarray) -> None:
        """Normalised-LMS steps of the item values toward ``target`` (B,), the n-step
        targets of the batch ``oldest`` of the trace (see :meth:`_td_step`)."""
        rows = oldest["rows"]
        if not self.null_value:
            x, z = oldest["x"][rows], oldest["z"][:, None, :]
            for part in self._chunks(len(rows)):
                delta = target[rows][part] - bilinear(x[part], self.q_weights, z[part])[:, 0]
                self.q_weights += self.q_learning_rate * normalised_outer_mean(x[part], delta[:, None], z[part])
            return
        # every row: features phi = [x, clicked x z^T] of Qbar = x^T w0 + clicked x^T W z
        x = oldest["x"]
        z = np.zeros((len(x), self.q_weights.shape[1]))
        z[rows] = oldest["z"]
        for part in self._chunks(len(x)):
            xp, zp = x[part], z[part]
            xw = xp @ self.q_weights
            delta = target[part] - xp @ self.null_weights - np.einsum("bi,bi->b", xw, zp)
            coef = delta / (1.0 + np.einsum("bu,bu->b", xp, xp) * (1.0 + np.einsum("bi,bi->b", zp, zp)))
            scaled = xp * coef[:, None]
            self.null_weights += self.q_learning_rate * scaled.mean(axis=0)
            self.q_weights += self.q_learning_rate * (scaled.T @ zp) / len(xp)

    def get_state(self) -> dict[str, Any]:
        """The weights, the users' histories and the n-step trace (``trace{i}_{key}`` arrays)."""
        state = super().get_state()
        state["trace_length"] = len(self._trace)
        for i, step in enumerate(self._trace):
            state.update({f"trace{i}_{key}": step[key] for key in self._TRACE})
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        length = state.pop("trace_length")
        if not isinstance(length, int) or not 0 <= length <= self.n_step:
            raise ValueError(f"trace_length must be an integer in [0, {self.n_step}]; got {length!r}")
        trace = [{key: np.asarray(state.pop(f"trace{i}_{key}")) for key in self._TRACE} for i in range(length)]
        super().set_state(state)
        self._trace = trace

    def _remember(self, user_id: np.ndarray, x: np.ndarray, z: np.ndarray, feedback: Feedback) -> None:
        """Keep this batch's (state, consumed item, reward) until its target is complete."""
        rows = np.flatnonzero(feedback.clicks >= 0)
        if len(self._trace) == self.n_step:
            self._trace.pop(0)
        self._trace.append(
            {
                "user_id": np.asarray(user_id).copy(),
                "rows": rows,
                "clicks": np.asarray(feedback.clicks).copy(),
                "x": x,
                "z": z[rows, feedback.clicks[rows]],
                "reward": np.asarray(feedback.rewards, dtype=np.float64).copy(),
            }
        )
