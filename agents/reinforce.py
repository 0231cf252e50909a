"""REINFORCE recommender with top-K off-policy correction, trained on logged feedback.

Chen, Beutel, Covington, Jain, Belletti and Chi (2019), "Top-K Off-Policy Correction for a
REINFORCE Recommender System", WSDM 2019.

Policy: ``pi(a | s) = softmax_a f(s, a)`` over the C candidates, f the shared-weight
:class:`agents.scoring.CandidateScorer` (one network scores each (user, candidate) pair).

Training data are logs of another policy beta (the logger): per served slate, the user
and candidate features, the slate, the logger's per-slot propensities, the click and the
reward. Each click is an event (s, a, R) with a the clicked candidate and R its return
``R_t = sum_k gamma^k r_{t+k}`` over the same user's later logged steps (``discount``;
0: the immediate reward). The policy gradient of the paper (eq. 6 with the top-K
correction of section 4.3 and the weight capping of section 4.4)::

    sum_events  min(pi(a|s) / beta(a|s), c) * lambda_K(s, a) * R * grad log pi(a|s),
    lambda_K(s, a) = K (1 - pi(a|s))^(K - 1)

(weights and lambda_K held constant in the gradient). lambda_K comes from the slate being
K draws of pi: the chance a appears in it is ``alpha = 1 - (1 - pi)^K`` and
``grad alpha = lambda_K grad pi``; it stops pushing an item whose pi is already large
(it will be in the slate anyway) and lets the policy spread mass over K items.

Behaviour propensity beta(a|s) (``behaviour``):

* ``"logged"``: the logger's propensity of the clicked item at its slot, as logged
  (exact for the slot's draw given the earlier slots).
* ``"learned"``: the paper's estimate when propensities are not logged, a second softmax
  head on the scorer's candidate embeddings (gradient stopped into the scorer, as the
  paper's "blocked" beta), fitted by maximum likelihood on every served (slot, item).

Serving: ``serve="sample"`` draws K candidates from pi without replacement (Plackett-Luce,
exact per-slot propensities); ``"greedy"`` serves the top-K of pi.
:meth:`Agent.update` is a no-op: the agent learns from logs (:meth:`ReinforceAgent.fit_logged`)
or, in a scenario, from logs of the named ``logger`` agent it collects on its own,
separately seeded world (:meth:`ReinforceAgent.train`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.base import Agent, AgentError, Decision, Feedback, Observation
from agents.registry import register
from agents.scoring import CandidateScorer
from agents.torch_models import load_torch_state, plackett_luce, seeded, torch_state
from agents.torch_params import ReinforceParams
from agents.training_log import TrainingCurve
from simenv import RecVectorEnv, WorldConfig, WorldSpec, get_preset


@dataclass(frozen=True)
class LoggedFeedback:
    """Logged feedback of a logging policy, one row per served slate (N rows).

    Attributes:
        user: (N, F_u) float user features.
        candidates: (N, C, F_i) float candidate features.
        slates: (N, K) int64 served candidate indices.
        propensities: (N, K) float64 in (0, 1]: the logger's probability of each served
            item at its slot, given the earlier slots.
        clicks: (N,) int64 clicked slot, -1 for none.
        rewards: (N,) float64 reward of the step.
        returns: (N,) float64 return credited to the click (the reward, or a discounted
            sum over the user's later logged steps: :func:`discounted_returns`).
    """

    user: np.ndarray
    candidates: np.ndarray
    slates: np.ndarray
    propensities: np.ndarray
    clicks: np.ndarray
    rewards: np.ndarray
    returns: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.user)
        k = self.slates.shape[1] if self.slates.ndim == 2 else -1
        want = {
            "user": (n, None),
            "candidates": (n, None, None),
            "slates": (n, k),
            "propensities": (n, k),
            "clicks": (n,),
            "rewards": (n,),
            "returns": (n,),
        }
        for key, shape in want.items():
            got = np.shape(getattr(self, key))
            if len(got) != len(shape) or any(w is not None and g != w for g, w in zip(got, shape, strict=True)):
                raise AgentError(f"logged {key} must have shape {shape} (N = {n} rows, K = {k}); got {got}")
        props = self.propensities
        if not ((props > 0) & (props <= 1 + 1e-9)).all():
            raise AgentError("logged propensities must lie in (0, 1]; got values outside it")
        if self.clicks.min(initial=0) < -1 or self.clicks.max(initial=-1) >= k:
            raise AgentError(f"logged clicks must be slot positions in [-1, {k - 1}]")
        for key in ("rewards", "returns"):
            if not np.isfinite(getattr(self, key)).all():
                raise AgentError(f"logged {key} must be finite")


def discounted_returns(rewards: np.ndarray, user_id: np.ndarray, discount: float) -> np.ndarray:
    """``R_t = sum_k discount^k r_{t+k}`` along each session row, cut where its user changes.

    Args:
        rewards: (T, B) rewards of T consecutive steps of B sessions.
        user_id: (T, B) user of each session at each step.
        discount: gamma in [0, 1).

    Returns:
        (T, B) float64 returns (the rewards when discount is 0).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    out = rewards.copy()
    for t in range(len(rewards) - 2, -1, -1):
        same = user_id[t + 1] == user_id[t]
        out[t] += discount * np.where(same, out[t + 1], 0.0)
    return out


def collect_logs(
    logger: Agent, env: RecVectorEnv, steps: int, rng: np.random.Generator, seed: int, discount: float
) -> tuple[LoggedFeedback, TrainingCurve]:
    """Serve ``steps`` steps of ``env`` (reset with ``seed``) with ``logger`` (learning online
    as it would) and log what it served.

    Returns:
        The :class:`LoggedFeedback` (N = steps x sessions rows, features as float32) and the
        logger's curve on that world (reward per user-step, cohort engagement).
    """
    obs, _ = env.reset(seed=int(seed))
    curve = TrainingCurve(steps)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("user", "candidates", "slates", "propensities", "clicks", "rewards", "user_id")
    }
    for _ in range(steps):
        decision = logger.act(obs, rng)
        parts["user"].append(np.asarray(obs["user"], dtype=np.float32).copy())
        parts["candidates"].append(np.asarray(obs["candidates"], dtype=np.float32).copy())
        parts["user_id"].append(np.asarray(obs["user_id"]).copy())
        next_obs, reward, _, _, info = env.step(decision.slates)
        feedback = Feedback(
            clicks=np.asarray(info["click"], dtype=np.int64), rewards=np.asarray(reward, dtype=np.float64)
        )
        logger.update(obs, decision, feedback)
        curve.step(feedback.rewards, parts["user_id"][-1])
        parts["slates"].append(decision.slates)
        parts["propensities"].append(decision.propensities)
        parts["clicks"].append(feedback.clicks)
        parts["rewards"].append(feedback.rewards)
        obs = next_obs
    curve.flush()
    stacked = {key: np.stack(value) for key, value in parts.items()}
    returns = discounted_returns(stacked["rewards"], stacked["user_id"], discount)
    flat = {key: value.reshape(-1, *value.shape[2:]) for key, value in stacked.items() if key != "user_id"}
    return LoggedFeedback(**flat, returns=returns.reshape(-1)), curve


class _Networks(nn.Module):
    """The policy's candidate scorer and the learned behaviour head (on its embeddings)."""

    def __init__(self, spec: WorldSpec, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.scorer = CandidateScorer(spec.user_dim, spec.item_dim, hidden)
        self.behaviour = nn.Linear(self.scorer.embed_dim, 1)

    def forward(self, user: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C) policy logits and (B, C) behaviour logits (the latter blind to the scorer's gradient)."""
        embedding = self.scorer.embed(user, candidates)
        return self.scorer.head(embedding).squeeze(-1), self.behaviour(embedding.detach()).squeeze(-1)


@register
class ReinforceAgent(Agent):
    """REINFORCE with top-K off-policy correction on the shared candidate scorer (see the module docstring)."""

    name = "reinforce"
    Params = ReinforceParams

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        super().__init__(spec, **params)
        hp = self.hparams
        self.nets = seeded(lambda: _Networks(spec, hp.hidden), hp.seed)
        self.optimizer = torch.optim.Adam(self.nets.parameters(), lr=hp.learning_rate)
        self.fitted_events = 0
        self.training_curve = TrainingCurve(1)

    # ------------------------------------------------------------------ serving
    def policy(self, obs: Observation) -> np.ndarray:
        """(B, C) float64 ``pi(a | s)``, the softmax of the candidate scores."""
        with torch.no_grad():
            logits, _ = self.nets(
                torch.as_tensor(obs["user"], dtype=torch.float32),
                torch.as_tensor(obs["candidates"], dtype=torch.float32),
            )
        return torch.softmax(logits.double(), dim=-1).numpy()

    def scores(self, obs: Observation) -> np.ndarray:
        """(B, C) the policy's probabilities (a top-K key)."""
        return self.policy(obs)

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        pi = self.policy(obs)
        slates, props, greedy = plackett_luce(pi, self.spec.slate_size, rng)
        if self.hparams.serve == "greedy":
            return Decision(
                slates=greedy, propensities=np.ones(greedy.shape), explored=np.zeros(len(greedy), dtype=bool)
            )
        return Decision(slates=slates, propensities=props, explored=(slates != greedy).any(axis=1))

    # ------------------------------------------------------------------ learning
    def correction_weights(self, pi: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """The gradient weight of each event, ``min(pi / beta, c) * lambda_K`` (Chen et al.
        2019, eq. 6 with sections 4.3-4.4), held constant in the gradient.

        Args:
            pi: (n,) policy probability of each event's item. beta: (n,) behaviour probability.

        Returns:
            (n,) weights (lambda_K = 1 without the top-K correction).
        """
        hp = self.hparams
        weight = torch.clamp(pi / beta, max=hp.weight_cap)
        if hp.top_k_correction:
            k = self.spec.slate_size
            weight = weight * k * (1.0 - pi) ** (k - 1)
        return weight.detach()

    def fit_logged(self, logs: LoggedFeedback, epochs: int | None = None) -> ReinforceAgent:
        """Learn from logged feedback: ``epochs`` passes (default the ``epochs`` parameter) of
        minibatch Adam steps on the corrected REINFORCE loss over the clicked events (and, with
        ``behaviour="learned"``, the behaviour head's log-likelihood of every served item).

        Args:
            logs: the logger's feedback (its shapes must match the agent's world).
            epochs: passes over the logs, >= 1.

        Returns:
            ``self``. One training curve row per epoch: loss, mean weight, policy entropy.

        Raises:
            AgentError: logs of another world's shape or slate size.
        """
        hp, spec = self.hparams, self.spec
        epochs = hp.epochs if epochs is None else int(epochs)
        if epochs < 1:
            raise AgentError(f"reinforce: epochs must be >= 1; got {epochs}")
        want = (spec.n_candidates, spec.item_dim)
        if (
            logs.user.shape[1] != spec.user_dim
            or logs.candidates.shape[1:] != want
            or logs.slates.shape[1] != spec.slate_size
        ):
            raise AgentError(
                f"reinforce: logs of shape user {logs.user.shape}, candidates {logs.candidates.shape}, slates "
                f"{logs.slates.shape}; this agent's world wants F_u = {spec.user_dim}, (C, F_i) = {want}, "
                f"K = {spec.slate_size}"
            )
        rows = np.arange(len(logs.clicks)) if hp.behaviour == "learned" else np.flatnonzero(logs.clicks >= 0)
        user = torch.as_tensor(logs.user[rows], dtype=torch.float32)
        candidates = torch.as_tensor(logs.candidates[rows], dtype=torch.float32)
        slates = torch.as_tensor(logs.slates[rows], dtype=torch.long)
        clicks = torch.as_tensor(logs.clicks[rows], dtype=torch.long)
        slot_prop = torch.as_tensor(logs.propensities[rows], dtype=torch.float32)
        returns = torch.as_tensor(logs.returns[rows], dtype=torch.float32)
        order_rng = np.random.default_rng(hp.seed + self.fitted_events)
        for _ in range(epochs):
            totals = {"policy_loss": 0.0, "behaviour_loss": 0.0, "weight": 0.0, "entropy": 0.0}
            batches = 0
            for part in np.array_split(order_rng.permutation(len(rows)), max(1, -(-len(rows) // hp.batch_size))):
                if not len(part):
                    continue
                idx = torch.as_tensor(part)
                losses = self._step(user[idx], candidates[idx], slates[idx], clicks[idx], slot_prop[idx], returns[idx])
                for key, value in losses.items():
                    totals[key] += value
                batches += 1
            self.fitted_events += int((logs.clicks[rows] >= 0).sum())
            self.training_curve.add_row(
                step=float(self.fitted_events), **{k: v / max(batches, 1) for k, v in totals.items()}
            )
        return self

    def _step(
        self,
        user: torch.Tensor,
        candidates: torch.Tensor,
        slates: torch.Tensor,
        clicks: torch.Tensor,
        slot_prop: torch.Tensor,
        returns: torch.Tensor,
    ) -> dict[str, float]:
        """One Adam step on a minibatch of logged rows; returns its numbers."""
        logits, behaviour_logits = self.nets(user, candidates)
        log_pi = torch.log_softmax(logits, dim=-1)
        clicked = torch.nonzero(clicks >= 0).squeeze(-1)
        item = slates[clicked, clicks[clicked]]
        log_pi_a = log_pi[clicked, item]
        if self.hparams.behaviour == "learned":
            log_beta = torch.log_softmax(behaviour_logits, dim=-1)
            behaviour_loss = -log_beta.gather(1, slates).mean()
            beta_a = log_beta[clicked, item].exp().detach()
        else:
            behaviour_loss = torch.zeros(())
            beta_a = slot_prop[clicked, clicks[clicked]]
        weight = self.correction_weights(log_pi_a.exp().detach(), beta_a)
        policy_loss = -(weight * returns[clicked] * log_pi_a).sum() / max(len(clicks), 1)
        self.optimizer.zero_grad()
        (policy_loss + behaviour_loss).backward()
        self.optimizer.step()
        entropy = -(log_pi.exp() * log_pi).sum(dim=-1).mean()
        return {
            "policy_loss": float(policy_loss.detach()),
            "behaviour_loss": float(behaviour_loss.detach()),
            "weight": float(weight.mean()) if len(weight) else 0.0,
            "entropy": float(entropy.detach()),
        }

    def train(self, env_or_config: Any, total_timesteps: int, seed: int) -> ReinforceAgent:
        """Collect logs from the ``logger`` agent on a world of its own, then :meth:`fit_logged`.

        Args:
            env_or_config: a :class:`simenv.RecVectorEnv`, a :class:`simenv.WorldConfig` or a
                preset name (the last two get ``log_users`` sessions).
            total_timesteps: logged user-steps (the world steps ``ceil(total / sessions)`` times).
            seed: seeds the logging world and the logger's draws.

        Returns:
            ``self``, fitted; :attr:`logger_curve` keeps the logger's own curve on the logging
            world (reward per user-step, cohort engagement), :attr:`training_curve` the fit's epochs.

        Raises:
            AgentError: a logger that is unknown, reads ground truth, or a world of another shape.
        """
        from agents.registry import make_agent

        if (
            isinstance(total_timesteps, bool)
            or not isinstance(total_timesteps, int | np.integer)
            or total_timesteps < 1
        ):
            raise AgentError(f"reinforce: total_timesteps must be an integer >= 1; got {total_timesteps!r}")
        env = _as_env(env_or_config, self.hparams.log_users)
        world = WorldSpec.from_config(env.config)
        if world != self.spec:
            raise AgentError(f"reinforce: the environment's shape {world} differs from the agent's spec {self.spec}")
        logger = make_agent(self.hparams.logger, self.spec)
        if logger.needs_ground_truth:
            raise AgentError(
                f"reinforce.logger {self.hparams.logger!r} reads the world's ground truth; name a policy that does not"
            )
        steps = -(-int(total_timesteps) // env.num_envs)
        logs, logger_curve = collect_logs(logger, env, steps, np.random.default_rng(seed), seed, self.hparams.discount)
        self.logger_curve = logger_curve
        return self.fit_logged(logs)

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        return {**torch_state(self.nets, self.optimizer), "fitted_events": self.fitted_events}

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        fitted = state.pop("fitted_events", None)
        if isinstance(fitted, bool) or not isinstance(fitted, int):
            raise ValueError(f"fitted_events must be an integer; got {fitted!r}")
        load_torch_state(self.nets, self.optimizer, state)
        self.fitted_events = fitted


def _as_env(env_or_config: Any, sessions: int) -> RecVectorEnv:
    """A :class:`RecVectorEnv` as given, or one of ``sessions`` sessions from a config or preset name."""
    if isinstance(env_or_config, RecVectorEnv):
        return env_or_config
    config = get_preset(env_or_config) if isinstance(env_or_config, str) else env_or_config
    if not isinstance(config, WorldConfig):
        raise AgentError(
            "env_or_config must be a simenv.RecVectorEnv, a WorldConfig or a preset name; "
            f"got {type(env_or_config).__name__}"
        )
    return RecVectorEnv(sessions, config=config, oracle=False)
