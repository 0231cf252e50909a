"""Candidate-scoring policies for stable-baselines3: PPO / A2C actor-critic and a DQN Q-network.

* :class:`PlackettLuceDistribution`: the slate law of the scoring actor. One score ``s_x``
  per candidate (a :class:`~agents.scoring.CandidateScorer` logit); slots are filled in
  order, each by a softmax over the candidates not yet shown (Plackett 1975, Luce 1959):

      P(x at j | U) = exp(s_x) / sum_{y not in U} exp(s_y),   U = candidates at slots < j

  so a slate's probability is the product of its k slot factors and every slate is distinct
  (the world never repairs one). It is exactly the law of
  :func:`agents.deep_rl.slot_sample_without_replacement` with every slot's categorical equal to
  ``softmax(s)``, which is how ``act`` serves it (exact per-slot propensities). Training
  draws with the Gumbel-top-k trick (Yellott 1977; Kool et al. 2019): the k largest of
  ``s_x + Gumbel noise``, in order, are a Plackett-Luce sample.
* :class:`ScoringSlatePolicy`: SB3 ``ActorCriticPolicy`` whose actor is a
  :class:`~agents.scoring.CandidateScorer` and whose critic sees the user and a pooled
  (mean, max) summary of a second scorer's candidate embeddings, so both are indifferent to
  candidate order (the actor equivariant, the critic invariant).
* :class:`ScoringQNetwork` / :class:`ScoringDQNPolicy`: a DQN Q-network ``Q(s, x)`` per
  candidate from a :class:`~agents.scoring.CandidateScorer`; used by ``dqn`` for any slate size
  (see :class:`agents.deep_rl.DQNAgent`).

Shapes: B rows, C candidates, k slots, F_u user and F_i item features.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from agents.deep_rl import SlatePolicy
from agents.scoring import CandidateScorer, pool_candidates, split_observation


class PlackettLuceDistribution(Distribution):
    """Plackett-Luce law over ordered slates of k distinct candidates from (B, C) scores.

    ``log_prob`` and ``entropy`` follow the slot chain rule. The entropy of a
    Plackett-Luce law has no closed form; :meth:`entropy` returns the sum over slots of the
    entropy of slot j's softmax given the slots before it, along the slates last passed to
    :meth:`log_prob` (an unbiased one-sample estimate of the slate entropy when those slates
    are draws of this law, as in PPO / A2C updates), else along the greedy slate.

    Args:
        slots: k >= 1. n_choices: C >= k.
    """

    def __init__(self, slots: int, n_choices: int) -> None:
        super().__init__()
        if not 1 <= slots <= n_choices:
            raise ValueError(f"a Plackett-Luce slate needs 1 <= k <= C; got k={slots}, C={n_choices}")
        self.slots, self.n_choices = int(slots), int(n_choices)
        self.logits: torch.Tensor | None = None
        self._last_actions: torch.Tensor | None = None

    def proba_distribution_net(self, *args: Any, **kwargs: Any) -> nn.Module:
        raise NotImplementedError("ScoringSlatePolicy builds the scores with a CandidateScorer")

    def proba_distribution(self, action_logits: torch.Tensor) -> PlackettLuceDistribution:
        """Set the (B, C) candidate scores.

        Raises:
            ValueError: NaN scores (a diverged network).
        """
        if torch.isnan(action_logits).any():
            raise ValueError("the policy's candidate scores hold NaN (a diverged network?)")
        self.logits = action_logits
        self._last_actions = None
        return self

    @property
    def probs(self) -> torch.Tensor:
        """(B, C) first-slot probabilities ``softmax(s)`` (every slot's categorical before
        renormalising over the candidates not yet shown)."""
        return torch.softmax(self.logits, dim=-1)

    def _slot_log_probs(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, k, C) log-softmax of each slot over the candidates not at earlier slots of
        ``actions`` (-inf for those)."""
        index = actions.long().view(-1, self.slots)
        shown = torch.nn.functional.one_hot(index, self.n_choices).to(torch.bool)
        earlier = (shown.cumsum(dim=1) - shown.to(torch.long)) > 0
        masked = self.logits.unsqueeze(1).masked_fill(earlier, -math.inf)
        return torch.log_softmax(masked, dim=-1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """(B,) log-probability of (B, k) ordered slates (-inf for a slate with a repeat)."""
        index = actions.long().view(-1, self.slots)
        self._last_actions = index
        return self._slot_log_probs(index).gather(-1, index.unsqueeze(-1)).sum(dim=(1, 2))

    def entropy(self) -> torch.Tensor:
        """(B,) chain-rule entropy along the last evaluated slates (or the greedy slate)."""
        actions = self._last_actions if self._last_actions is not None else self.mode()
        log_p = self._slot_log_probs(actions)
        p = log_p.exp()
        return -(p * log_p.clamp(min=torch.finfo(log_p.dtype).min)).sum(dim=(1, 2))

    def sample(self) -> torch.Tensor:
        """(B, k) int64 Plackett-Luce slates by Gumbel-top-k (``torch.rand``, seeded by
        ``torch.manual_seed``)."""
        u = torch.rand_like(self.logits).clamp_(min=torch.finfo(self.logits.dtype).tiny)
        return torch.topk(self.logits - torch.log(-torch.log(u)), self.slots, dim=-1).indices

    def mode(self) -> torch.Tensor:
        """(B, k) the most likely slate: the k best scores, best first."""
        return torch.topk(self.logits, self.slots, dim=-1).indices

    def actions_from_params(self, action_logits: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        self.proba_distribution(action_logits)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, action_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actions = self.actions_from_params(action_logits)
        return actions, self.log_prob(actions)


def _orthogonal_init(module: nn.Module, gain: float) -> None:
    """SB3's initialisation: orthogonal weights of ``gain``, zero biases, on every Linear."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=gain)
            if layer.bias is not None:
                layer.bias.data.fill_(0.0)


def _init_scorer(scorer: CandidateScorer, head_gain: float) -> None:
    """Hidden layers with gain sqrt(2), the score head with ``head_gain`` (SB3's 0.01 for a
    policy head: near-uniform first slates; 1 for a value or Q head)."""
    _orthogonal_init(scorer, math.sqrt(2))
    _orthogonal_init(scorer.head, head_gain)


class ScoringSlatePolicy(SlatePolicy):
    """Actor-critic over ``MultiDiscrete([C] * k)`` slates with a candidate-scoring actor.

    Actor: a :class:`CandidateScorer` gives (B, C) scores; the slate is Plackett-Luce
    (:class:`PlackettLuceDistribution`). Critic: a second scorer's (B, C, H) candidate
    embeddings, pooled (mean, max; :func:`pool_candidates`), concatenated with the user
    features, then one hidden layer of width H and a linear value. Networks and optimiser
    as :class:`SlatePolicy` (Adam, SB3's eps, fused when available) with SB3's orthogonal
    initialisation (policy head gain 0.01).

    Args:
        observation_space: flat ``Box`` of width F_u + C * F_i.
        action_space: ``MultiDiscrete([C] * k)``.
        lr_schedule: SB3's learning-rate schedule.
        user_dim: F_u (the item width follows from the observation width and C).
        net_arch: hidden widths of each scorer (a list; SB3's dict form is not accepted).
        interaction: multiplicative user-item features of each scorer.
        aligned: products of aligned user and item coordinates (see :class:`CandidateScorer`).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.MultiDiscrete,
        lr_schedule: Any,
        *args: Any,
        user_dim: int,
        net_arch: list[int] | None = None,
        interaction: int = 16,
        aligned: int = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.MultiDiscrete) or len(set(action_space.nvec.tolist())) != 1:
            raise ValueError(f"ScoringSlatePolicy needs MultiDiscrete([C] * k) slates; got {action_space}")
        self.slots, self.n_choices = len(action_space.nvec), int(action_space.nvec[0])
        width = int(np.prod(observation_space.shape)) - int(user_dim)
        if width <= 0 or width % self.n_choices:
            raise ValueError(
                f"observation width {observation_space.shape} is not user_dim {user_dim} + {self.n_choices} * F_i"
            )
        self.user_dim, self.item_dim, self.interaction = int(user_dim), width // self.n_choices, int(interaction)
        self.aligned = int(aligned)
        self.hidden = tuple(net_arch if net_arch is not None else (64, 64))
        super().__init__(observation_space, action_space, lr_schedule, *args, net_arch=list(self.hidden), **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        self.action_dist = PlackettLuceDistribution(self.slots, self.n_choices)
        shape = (self.user_dim, self.item_dim, self.hidden, self.interaction)
        self.actor = CandidateScorer(*shape, aligned=self.aligned)
        self.critic = CandidateScorer(*shape, aligned=self.aligned)
        width = self.critic.embed_dim
        self.value_net = nn.Sequential(nn.Linear(self.user_dim + 2 * width, width), nn.Tanh(), nn.Linear(width, 1))
        if self.ortho_init:
            _init_scorer(self.actor, 0.01)
            _init_scorer(self.critic, 1.0)
            _orthogonal_init(self.value_net[0], math.sqrt(2))
            _orthogonal_init(self.value_net[2], 1.0)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _parts(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = BasePolicy.extract_features(self, obs, self.features_extractor)
        return split_observation(flat, self.user_dim, self.item_dim)

    def _value(self, user: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        pooled = pool_candidates(self.critic.embed(user, candidates))
        return self.value_net(torch.cat([user, pooled], dim=-1))

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, ...]:
        """``(actions (B, k), values (B, 1), log_prob (B,))``."""
        user, candidates = self._parts(obs)
        distribution = self.action_dist.proba_distribution(self.actor(user, candidates))
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, self._value(user, candidates), distribution.log_prob(actions)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(values (B, 1), log_prob (B,), entropy (B,))`` of (B, k) slates."""
        user, candidates = self._parts(obs)
        distribution = self.action_dist.proba_distribution(self.actor(user, candidates))
        log_prob = distribution.log_prob(actions)
        return self._value(user, candidates), log_prob, distribution.entropy()

    def get_distribution(self, obs: torch.Tensor) -> PlackettLuceDistribution:
        return self.action_dist.proba_distribution(self.actor(*self._parts(obs)))

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self._value(*self._parts(obs))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            user_dim=self.user_dim, net_arch=list(self.hidden), interaction=self.interaction, aligned=self.aligned
        )
        return data


class ScoringQNetwork(QNetwork):
    """DQN Q-network ``Q(s, x)`` (B, C) from a :class:`CandidateScorer` (equivariant to
    candidate order). The action space is ``Discrete(C)`` or ``MultiDiscrete([C] * k)``
    (:class:`agents.slate_dqn.SlateDQN`)."""

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Discrete,
        features_extractor: nn.Module,
        features_dim: int,
        user_dim: int,
        net_arch: list[int] | None = None,
        interaction: int = 16,
        aligned: int = 0,
        activation_fn: type[nn.Module] = nn.Tanh,
        normalize_images: bool = True,
    ) -> None:
        BasePolicy.__init__(
            self,
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
        )
        n = int(action_space.n) if isinstance(action_space, spaces.Discrete) else int(action_space.nvec[0])
        width = features_dim - int(user_dim)
        if width <= 0 or width % n:
            raise ValueError(f"observation width {features_dim} is not user_dim {user_dim} + {n} * F_i")
        self.net_arch = list(net_arch if net_arch is not None else (64, 64))
        self.activation_fn, self.features_dim = activation_fn, features_dim
        self.user_dim, self.item_dim, self.interaction = int(user_dim), width // n, int(interaction)
        self.aligned = int(aligned)
        self.q_net = CandidateScorer(
            self.user_dim, self.item_dim, self.net_arch, self.interaction, activation_fn, aligned=self.aligned
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, C) Q-values."""
        flat = self.extract_features(obs, self.features_extractor)
        return self.q_net(*split_observation(flat, self.user_dim, self.item_dim))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(user_dim=self.user_dim, interaction=self.interaction, aligned=self.aligned)
        return data


class ScoringDQNPolicy(DQNPolicy):
    """SB3 ``DQNPolicy`` whose online and target networks are :class:`ScoringQNetwork` s.

    Args (beyond ``DQNPolicy``'s): user_dim (F_u), interaction, aligned (see :class:`CandidateScorer`).
    """

    def __init__(self, *args: Any, user_dim: int, interaction: int = 16, aligned: int = 0, **kwargs: Any) -> None:
        self.user_dim, self.interaction, self.aligned = int(user_dim), int(interaction), int(aligned)
        kwargs.setdefault("activation_fn", nn.Tanh)
        super().__init__(*args, **kwargs)

    def make_q_net(self) -> ScoringQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        net = ScoringQNetwork(**net_args, user_dim=self.user_dim, interaction=self.interaction, aligned=self.aligned)
        return net.to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(user_dim=self.user_dim, interaction=self.interaction, aligned=self.aligned)
        return data
