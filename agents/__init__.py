"""BubbleGym's policies behind one batched interface (see :mod:`agents.base`)."""

from agents.base import Agent, Decision, Feedback
from agents.persist import ModelFileError
from agents.registry import AgentError, agent_names, agent_parameters, make_agent, register
from agents.rollout import Trajectory, rollout

__all__ = [
    "Agent",
    "AgentError",
    "Decision",
    "Feedback",
    "ModelFileError",
    "Trajectory",
    "agent_names",
    "agent_parameters",
    "make_agent",
    "register",
    "rollout",
]
