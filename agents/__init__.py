"""BubbleGym's policies behind one batched interface (see :mod:`agents.base`)."""

from agents.base import Agent, Decision, Feedback
from agents.persist import ModelFileError
from agents.registry import AgentError, agent_names, agent_parameters, make_agent, register

__all__ = [
    "Agent",
    "AgentError",
    "Decision",
    "Feedback",
    "ModelFileError",
    "agent_names",
    "agent_parameters",
    "make_agent",
    "register",
]
