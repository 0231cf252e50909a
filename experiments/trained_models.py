"""Trained models of a run: train once, save as data, reuse (``training.reuse``), or serve a
model file a scenario names (``agents[i].model``).

Layout in a run directory::

    RUN_DIR/models/<key>.agent              a trained agent (agents.persist: JSON + npy, no pickle)
    RUN_DIR/models/<key>.training.parquet   its training curve (agents.training_log)

``key`` (:func:`model_key`): the task id under ``per_task``; ``w<world>-<label>-v<variant>``
under ``across_seeds``; ``<label>-v<variant>`` under ``across_seeds_and_worlds``. A shared
model is trained by the first task that needs it (others wait on ``<key>.lock``), always
with the training seed of the scenario's first seed (and, across worlds, at the first world
point), so which task trains it does not change a number; every task that shares it,
the one that trained it included, serves the model as read back from its file.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from agents.base import Agent, Trainable
from agents.persist import ModelFileError
from experiments.runner import (
    RunError,
    SeedPlan,
    Task,
    _build_agent,
    _train_if_needed,
    training_table,
    write_parquet_atomic,
)
from experiments.scenario import thaw

MODELS_DIR = "models"


def model_key(task: Task) -> str:
    """The file stem of the model ``task`` serves, by the scenario's ``training.reuse``."""
    reuse = task.scenario.training.reuse
    if reuse == "per_task":
        return task.task_id
    if reuse == "across_seeds":
        return f"w{task.world_index:03d}-{task.label}-v{task.variant_index:03d}"
    return f"{task.label}-v{task.variant_index:03d}"


def training_source(task: Task) -> tuple[dict[str, Any], int]:
    """The (world point, seed) whose world and training seed train the model ``task`` serves."""
    scenario = task.scenario
    reuse = scenario.training.reuse
    seed = task.seed if reuse == "per_task" else scenario.seeds[0]
    point = scenario.world_points()[0] if reuse == "across_seeds_and_worlds" else dict(task.world_point)
    return point, seed


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) while inside."""
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def load_model_file(path: str | Path, name: str, config: Any) -> Agent:
    """The agent saved at ``path``, checked to be a ``name`` agent for ``config``'s world shape.

    Raises:
        RunError: naming the file and what does not fit (ModelFileError's text).
    """
    from agents.registry import agent_class
    from simenv import WorldSpec

    try:
        return agent_class(name).load(path, spec=WorldSpec.from_config(config))
    except ModelFileError as err:
        raise RunError(f"cannot serve the model file for agent {name!r}: {err}") from None


def prepare_agent(
    task: Task, config: Any, plan: SeedPlan, out_dir: Path, owner: int | None
) -> tuple[Agent, float, pd.DataFrame]:
    """The agent ``task`` serves, its training seconds and its training curve.

    A named model file is read; an agent that does not train is built; a trained agent is
    trained per task (and saved) or, under a shared ``training.reuse``, trained once and read
    back by every task (see the module docstring).
    """
    from agents.registry import agent_class

    scenario = task.scenario
    entry = scenario.agent(task.label)
    params = {**thaw(entry.params), **task.variant}
    if entry.model is not None:
        return load_model_file(entry.model, entry.name, config), 0.0, pd.DataFrame()
    steps = scenario.training_steps(entry)
    if not issubclass(agent_class(entry.name), Trainable) or steps <= 0:
        return _build_agent(entry.name, config, params, plan), 0.0, pd.DataFrame()
    folder = Path(out_dir) / MODELS_DIR
    folder.mkdir(exist_ok=True)
    key = model_key(task)
    model, curve_path = folder / f"{key}.agent", folder / f"{key}.training.parquet"
    board = _tensorboard_dir(task, out_dir, key)
    if scenario.training.reuse == "per_task":
        agent = _build_agent(entry.name, config, params, plan)
        seconds = _train_if_needed(agent, scenario, steps, config, plan, board)
        agent.save(model)
        return agent, seconds, training_table(agent)
    seconds = 0.0
    with _locked(folder / f"{key}.lock"):
        if not (model.exists() and curve_path.exists() and _readable(model, entry.name, config)):
            point, seed = training_source(task)
            source_config = scenario.world_config(point)
            source_plan = SeedPlan.from_seed(seed)
            started = time.perf_counter()
            agent = _build_agent(entry.name, source_config, params, source_plan)
            _train_if_needed(agent, scenario, steps, source_config, source_plan, board)
            write_parquet_atomic(training_table(agent), curve_path, owner)
            agent.save(model)
            seconds = time.perf_counter() - started
    return load_model_file(model, entry.name, config), seconds, pd.read_parquet(curve_path)


def _tensorboard_dir(task: Task, out_dir: Path, key: str) -> str | None:
    """``RUN_DIR/tensorboard/<key>`` for an SB3 agent when the scenario asks for TensorBoard, else None."""
    from agents.registry import agent_class

    if not task.scenario.training.tensorboard:
        return None
    train = agent_class(task.scenario.agent(task.label).name).train
    if "tensorboard_log" not in inspect.signature(train).parameters:
        return None
    return str(Path(out_dir) / "tensorboard" / key)


def _readable(path: Path, name: str, config: Any) -> bool:
    """The model file loads as a ``name`` agent for ``config`` (a damaged one is retrained)."""
    try:
        load_model_file(path, name, config)
    except RunError:
        return False
    return True
