"""The parameters of the torch agents ``reinforce`` and ``slateq_neural``.

Declared apart from the agents (:mod:`agents.reinforce`, :mod:`agents.slateq_neural`) so the
registry, ``bubblegym list`` and the scenario checks read them without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.params import AgentParams, choice, flag, integer, number, string, widths
from agents.slateq import SlateQAgent


@dataclass(frozen=True)
class ReinforceParams(AgentParams):
    """REINFORCE with top-K off-policy correction (Chen et al. 2019, WSDM)."""

    behaviour: str = choice(
        "logged",
        "behaviour propensity beta(a|s): the logged propensity of the clicked item, or a learned softmax head",
        ("logged", "learned"),
    )
    top_k_correction: bool = flag(True, "weight by lambda_K = K (1 - pi)^(K - 1) (False: plain importance weight)")
    weight_cap: float = number(10.0, "cap c of the importance weight min(pi / beta, c)", gt=0.0)
    discount: float = number(0.0, "gamma of the logged return R_t = sum_k gamma^k r_(t+k) per user", ge=0.0, lt=1.0)
    learning_rate: float = number(3e-3, "Adam step size of the policy (and behaviour head)", gt=0.0)
    epochs: int = integer(8, "passes over the logged events in fit_logged", ge=1)
    batch_size: int = integer(512, "logged events per gradient step", ge=1)
    hidden: tuple[int, ...] = widths((64, 64), "hidden widths of the shared candidate scorer")
    serve: str = choice("sample", "serving: Plackett-Luce samples from pi, or the top-K of pi", ("sample", "greedy"))
    logger: str = string("random", "registered agent whose slates are logged for train() (no ground truth)")
    log_users: int = integer(256, "concurrent sessions of the logging world in train()", ge=1)
    seed: int = integer(0, "seed of the network's initial weights and minibatch order", ge=0, le=2**31 - 1)


@dataclass(frozen=True)
class NeuralSlateQParams(SlateQAgent.Params):
    """SlateQ (Ie et al. 2019) whose item advantages come from the shared candidate scorer."""

    q_learning_rate: float = number(
        0.5, "normalised-LMS rate of the reward model (the item values use value_learning_rate)", gt=0.0, le=1.0
    )
    value_learning_rate: float = number(1e-2, "Adam step size of the item-value network", gt=0.0)
    minibatch: int = integer(16, "rows per SGD step (click model, reward model) and per Adam step", ge=1)
    hidden: tuple[int, ...] = widths((64, 64), "hidden widths of the item-value scorer")
    seed: int = integer(0, "seed of the network's initial weights", ge=0, le=2**31 - 1)


PARAMS: dict[str, type[AgentParams]] = {"reinforce": ReinforceParams, "slateq_neural": NeuralSlateQParams}
"""Params class of each torch agent, by registry name."""
