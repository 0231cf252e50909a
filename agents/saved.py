"""A saved agent file as an agent of a scenario: ``{name: "agents.saved:SavedAgent", params: {path: ...}}``.

``bubblegym vet model.bgagent`` puts a saved policy into every scenario of a vetting
suite this way. The file is read with :meth:`agents.base.Agent.load` (data only, nothing
unpickled; every saved parameter validated again through the registry), once per task,
for the task's world shape: a file saved for another world shape is refused with a
:class:`agents.persist.ModelFileError` naming it. The loaded agent keeps learning from
feedback during the evaluated run like the agent it holds (freeze it with the scenario's
``conditions.freeze_after: 0`` to serve it as saved).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent, Decision, Feedback, Observation
from simenv import WorldSpec


class SavedAgent(Agent):
    """Serve the agent saved in ``path`` (any registered agent written by :meth:`Agent.save`).

    Args:
        spec: the world shape; the file must have been saved for exactly this shape.
        path: the agent file.

    Raises:
        ModelFileError: the file cannot be read, holds another world shape, or its
            parameters or state are refused.
    """

    name = "saved"

    def __init__(self, spec: WorldSpec, path: str) -> None:
        super().__init__(spec, path=str(path))
        self.inner = Agent.load(Path(path), spec=spec)
        self.needs_ground_truth = self.inner.needs_ground_truth  # type: ignore[misc]

    @property
    def params(self) -> dict[str, Any]:
        """The saved agent's name and parameters, plus the file they came from."""
        return {**self.inner.params, "path": self._params["path"]}

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        return self.inner.act(obs, rng)

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        self.inner.update(obs, decision, feedback)
