"""DQN over slates of k >= 1 candidates with a candidate-scoring Q-network.

:class:`SlateDQN` is SB3's DQN (Mnih et al. 2015) on ``MultiDiscrete([C] * k)`` slates with
an item-level Q-network ``Q(s, x)`` (:class:`agents.scoring_policy.ScoringDQNPolicy`). The
slate's value is the mean of its items' values (an additive decomposition, a simplification
of SlateQ's choice-weighted one, Ie et al. 2019, that needs no click model):

    Q(s, A) = (1 / k) sum_{x in A} Q(s, x),   max_A Q(s, A) = mean of the k largest Q(s, .)

so the greedy slate is the top k by Q and the TD target is
``r + gamma (1 - done) * mean(top-k Q_target(s', .))``; with k = 1 this is DQN exactly.
Exploration is per-slot epsilon-greedy (:func:`agents.slates.epsilon_greedy_slates`, exact
propensities; epsilon = 1 before ``learning_starts``) with a NumPy generator seeded from the
model's seed, so every collected slate is distinct.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from agents.slates import epsilon_greedy_slates


class SlateDQN(DQN):
    """SB3 ``DQN`` for ``MultiDiscrete([C] * k)`` slates (see the module docstring).

    Takes DQN's keyword arguments (same defaults). The action space must be
    ``MultiDiscrete([C] * k)`` and the policy's ``q_net`` must return (B, C) item values.
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        learning_rate: float = 1e-4,
        *,
        tau: float = 1.0,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        exploration_fraction: float = 0.1,
        target_update_interval: int = 10_000,
        max_grad_norm: float = 10.0,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        # DQN's own __init__ admits only Discrete actions: the same body, for slates
        OffPolicyAlgorithm.__init__(
            self,
            policy,
            env,
            learning_rate,
            tau=tau,
            action_noise=None,
            sde_support=False,
            supported_action_spaces=(spaces.MultiDiscrete,),
            support_multi_env=True,
            **kwargs,
        )
        nvec = self.action_space.nvec
        if len(set(nvec.tolist())) != 1 or nvec[0] < len(nvec):
            raise ValueError(f"SlateDQN needs MultiDiscrete([C] * k) with k <= C; got {self.action_space}")
        self.slots, self.n_choices = len(nvec), int(nvec[0])
        self.exploration_initial_eps = exploration_initial_eps
        self.exploration_final_eps = exploration_final_eps
        self.exploration_fraction = exploration_fraction
        self.target_update_interval = target_update_interval
        self._n_calls = 0
        self.max_grad_norm = max_grad_norm
        self.exploration_rate = 0.0
        self.slate_rng = np.random.default_rng(self.seed)
        if _init_setup_model:
            self._setup_model()

    def set_random_seed(self, seed: int | None = None) -> None:
        """Seed SB3's generators and the slate sampler's."""
        super().set_random_seed(seed)
        self.slate_rng = np.random.default_rng(seed)

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n_envs, k) epsilon-greedy slates on the online Q-values (epsilon 1 while warming up)."""
        epsilon = 1.0 if self.num_timesteps < learning_starts else float(self.exploration_rate)
        obs, _ = self.policy.obs_to_tensor(self._last_obs)
        with torch.no_grad():
            q = self.q_net(obs).numpy().astype(np.float64)
        slates = epsilon_greedy_slates(q, self.slots, epsilon, self.slate_rng).slates
        return slates, slates

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """DQN's update with slate values ``mean_{x in A} Q(s, x)`` and target
        ``r + gamma (1 - done) mean(top-k Q_target(s', .))`` (Huber loss, clipped gradients)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        for _ in range(gradient_steps):
            replay = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            discounts = replay.discounts if replay.discounts is not None else self.gamma
            with torch.no_grad():
                next_q = self.q_net_target(replay.next_observations).topk(self.slots, dim=1).values.mean(dim=1)
                target = replay.rewards + (1 - replay.dones) * discounts * next_q.reshape(-1, 1)
            current = self.q_net(replay.observations).gather(1, replay.actions.long()).mean(dim=1, keepdim=True)
            loss = F.smooth_l1_loss(current, target)
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))
