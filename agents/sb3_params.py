"""The parameters of the deep-RL agents ``ppo``, ``a2c`` and ``dqn`` (:mod:`agents.deep_rl`).

Declared here, apart from the agents, so that the registry, ``bubblegym list`` and the
scenario checks can read them without importing torch and stable-baselines3 (seconds).
Every parameter but ``n_envs`` (sessions of a world the agent builds from a config),
``net_arch`` (the policy's hidden layers), ``policy`` (the network shape: candidate scoring or
flat MLP), ``interaction`` and ``aligned`` (the scoring network's user-item features) is the SB3
algorithm's keyword argument of that name.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.params import AgentParams, choice, flag, integer, number, widths


@dataclass(frozen=True)
class SB3Params(AgentParams):
    """What every SB3 agent takes."""

    n_envs: int = integer(16, "training sessions of a world built from a config", ge=1)
    gamma: float = number(0.5, "discount per step (short: most of a slate's reward is immediate)", ge=0.0, le=1.0)
    net_arch: tuple[int, ...] = widths((64, 64), "hidden layer widths of the policy (and value) network")
    policy: str = choice(
        "scoring",
        "network shape: 'scoring' (one shared-weight network scores each candidate from (user, candidate); "
        "see agents.scoring) or 'mlp' (SB3's flat MLP over all features, one output per slot and candidate)",
        ("scoring", "mlp"),
    )
    interaction: int = integer(16, "multiplicative user-item features of the scoring network (policy 'scoring')", ge=0)
    aligned: bool = flag(
        True,
        "give the scoring network the products u_i e_i of the observed user coordinates and the item embedding's "
        "(the linear bandits' affinity features; policy 'scoring')",
    )


@dataclass(frozen=True)
class PPOParams(SB3Params):
    """PPO (Schulman et al. 2017): small defaults that train in seconds on one CPU thread."""

    learning_rate: float = number(3e-3, "Adam step size", ge=0.0)
    n_steps: int = integer(32, "steps per session between updates", ge=1)
    batch_size: int = integer(128, "minibatch size of a gradient step", ge=2)
    n_epochs: int = integer(4, "passes over each rollout", ge=1)
    gae_lambda: float = number(0.9, "GAE lambda of the advantage estimate", ge=0.0, le=1.0)
    clip_range: float = number(0.2, "clipping of the probability ratio", ge=0.0)
    ent_coef: float = number(0.0, "entropy bonus weight", ge=0.0)


@dataclass(frozen=True)
class A2CParams(SB3Params):
    """A2C (Mnih et al. 2016, synchronous)."""

    learning_rate: float = number(7e-4, "RMSprop step size", ge=0.0)
    n_steps: int = integer(8, "steps per session between updates", ge=1)
    gae_lambda: float = number(1.0, "GAE lambda of the advantage estimate", ge=0.0, le=1.0)
    ent_coef: float = number(0.0, "entropy bonus weight", ge=0.0)


@dataclass(frozen=True)
class DQNParams(SB3Params):
    """DQN (Mnih et al. 2015): slates of any size with ``policy: scoring``, size 1 with ``mlp``."""

    learning_rate: float = number(1e-3, "Adam step size", ge=0.0)
    buffer_size: int = integer(20_000, "replay buffer capacity (transitions)", ge=1)
    learning_starts: int = integer(256, "steps collected before learning starts", ge=0)
    batch_size: int = integer(64, "minibatch size of a gradient step", ge=1)
    train_freq: int = integer(1, "steps between updates", ge=1)
    gradient_steps: int = integer(1, "gradient steps per update", ge=1)
    target_update_interval: int = integer(256, "steps between target-network updates", ge=1)
    exploration_fraction: float = number(0.3, "share of training over which epsilon decays", ge=0.0, le=1.0)
    exploration_final_eps: float = number(0.05, "final epsilon (also the epsilon of serving)", ge=0.0, le=1.0)


PARAMS: dict[str, type[AgentParams]] = {"ppo": PPOParams, "a2c": A2CParams, "dqn": DQNParams}
"""The Params class of each deep-RL agent, by registry name."""
