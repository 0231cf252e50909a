"""Run a scenario: every agent x seed x grid point, in parallel, into one results directory.

Layout of a run directory::

    RUN_DIR/
      .lock                  held (flock) by the runner using the directory: {"pid", "host", "since"}
      manifest.json          scenario, resolved config, versions, git commit, seeds, provenance,
                             timings of every invocation, checksums of the merged tables
      tasks/<task>.windows.parquet   per-window metrics of one task
      tasks/<task>.summary.parquet   per-run summary of one task
      tasks/<task>.training.parquet  training curve of a task whose agent trained (agents.training_log)
      tasks/<task>.done.json         SHA-256 of the task's files (written last: the "done" mark)
      windows.parquet        all tasks' windows, merged at the end
      summary.parquet        all tasks' summaries, merged at the end
      training.parquet       all tasks' training curves, merged at the end (if any agent trained)

A task is one (world grid point, agent, agent variant, seed). Common random numbers: the
world seed of a task depends only on its seed, so under one seed every agent (and every
grid point) meets the same users, candidates and choice noise; the agent's own generator
and the training world's seed are separate children of the same
:class:`numpy.random.SeedSequence`.

Trust:

* Every file is written to a temporary name carrying the runner's pid, fsynced, renamed
  into place and its directory fsynced, so a half-written file never poses as complete.
* A task counts as done only when its two files match the SHA-256 sums of its
  ``done.json``; a damaged or truncated task file is recomputed (and said so on stderr).
* One runner at a time: a second one is refused, naming the holder of the lock.
* Resume mixes results only when the provenance fingerprint (scenario, resolved world
  configs and agent parameters, package versions, code version) is unchanged; a directory
  holding a different scenario's or setup's results is refused unless ``force`` (which
  replaces them).
* Re-running a finished run writes nothing: the manifest keeps its timings.
* Worker processes die with the runner (``kill -9`` included), ignore Ctrl-C (the runner
  stops them), and a worker that dies is reported with the task it was running.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import inspect
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.base import Agent, Decision, Feedback, Observation, Trainable
from experiments.files import (
    describe_os_error,
    file_sha256,
    parquet_bytes,
    write_bytes_atomic,
    write_json_atomic,
    write_parquet_atomic,
)
from experiments.scenario import Conditions, Scenario, thaw

ID_COLUMNS = (
    "scenario",
    "world",
    "world_label",
    "agent",
    "agent_name",
    "variant",
    "arm",
    "seed",
)
"""Identifier columns at the front of both result tables (then sweep columns, then metrics)."""

TASKS_DIR = "tasks"
LOGS_DIR = "logs"
"""``RUN_DIR/logs/<task>.{decisions,items}.parquet``: decision logs (``logging: {decisions: true}``)."""
MANIFEST = "manifest.json"
WINDOWS = "windows.parquet"
SUMMARY = "summary.parquet"
LOCK = ".lock"
DONE_SUFFIX = "done.json"
TASK_KINDS = ("windows", "summary")
OPTIONAL_KINDS = ("training",)
"""Task tables written only by some tasks (``training``: the curve of an agent that trained)."""
TRAINING = "training.parquet"
MANIFEST_FORMAT = 2
NAN_MEANS_MISSING = frozenset({"predicted"})
"""Trajectory records where NaN is a value (``predicted``: the agent made no prediction)."""
VERSIONED_PACKAGES = (
    "bubblegym",
    "numpy",
    "pandas",
    "pyarrow",
    "gymnasium",
    "stable-baselines3",
    "torch",
    "vowpalwabbit",
    "seaborn",
    "ray",
)


class RunError(RuntimeError):
    """A run cannot start or finish (a foreign or busy results directory, a failed task, ...)."""


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """One unit of work: an agent variant at a world grid point under one seed.

    Attributes:
        scenario: the whole scenario (small; it travels to the worker).
        label: the agent entry's label.
        world_index, world_point: index and ``{world key: value}`` of the grid point.
        variant_index, variant: index and ``{param: value}`` of the agent's swept params.
        seed: the run seed.
    """

    scenario: Scenario
    label: str
    world_index: int
    world_point: Mapping[str, Any]
    variant_index: int
    variant: Mapping[str, Any]
    seed: int

    @property
    def task_id(self) -> str:
        return f"w{self.world_index:03d}-{self.label}-v{self.variant_index:03d}-s{self.seed}"

    @property
    def world_label(self) -> str:
        return _point_label(self.world_point)

    @property
    def variant_label(self) -> str:
        return _point_label(self.variant)

    @property
    def arm(self) -> str:
        """The agent label plus its swept parameters: ``"vw_epsilon [epsilon=0.1]"``."""
        return f"{self.label} [{self.variant_label}]" if self.variant else self.label


def _point_label(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in point.items())


def _expected_cost(task: Task) -> int:
    """A rough cost to start long tasks first (agents that train before serving), so the
    last worker is not left alone with a long task at the end. The sort is stable: equal
    costs keep the order of :func:`make_tasks`."""
    from agents.registry import agent_class

    entry = task.scenario.agent(task.label)
    return task.scenario.training_steps(entry) if issubclass(agent_class(entry.name), Trainable) else 0


def make_tasks(scenario: Scenario) -> list[Task]:
    """Every task of ``scenario``, ordered world point, agent, variant, seed.

    An agent-parameter sweep multiplies only the agent it targets; the other agents run
    once per world point.
    """
    tasks = []
    for wi, point in enumerate(scenario.world_points()):
        for entry in scenario.agents:
            for vi, variant in enumerate(scenario.agent_variants(entry.label)):
                for seed in scenario.seeds:
                    tasks.append(Task(scenario, entry.label, wi, dict(point), vi, dict(variant), seed))
    return tasks


@dataclass(frozen=True)
class SeedPlan:
    """The seeds one task derives from its run seed (common random numbers).

    Attributes:
        world_seed: seeds the evaluated world; the same for every agent and grid point.
        agent: the agent's own generator's seed sequence.
        training_seed: seeds the training world of agents with ``train()``.
    """

    world_seed: int
    agent: np.random.SeedSequence
    training_seed: int

    @classmethod
    def from_seed(cls, seed: int) -> SeedPlan:
        world, agent, training = np.random.SeedSequence(seed).spawn(3)
        return cls(_as_int(world), agent, _as_int(training))


def _as_int(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1, dtype=np.uint64)[0])


# --------------------------------------------------------------------------- operating conditions


class ScheduledLearner(Agent):
    """Wrap an agent to apply the scenario's operating conditions to its updates.

    * ``feedback_delay`` d: the feedback of step t reaches the agent at the end of step t + d.
    * ``cadence="batched"``: feedback is collected and delivered (in step order) only at the
      end of every ``retrain_every``-th step: a periodic retrain on everything that arrived.
    * ``freeze_after`` n: the agent learns from feedback delivered during steps 0..n-1,
      then serves frozen (undelivered feedback is dropped).

    Online, undelayed and never frozen, updates pass straight through (no copies).
    Queued observations are copied, since the env reuses its observation buffers.
    """

    def __init__(self, inner: Agent, conditions: Conditions) -> None:
        super().__init__(inner.spec)
        self.inner = inner
        self.conditions = conditions
        self.name = inner.name  # type: ignore[misc]
        self.needs_ground_truth = inner.needs_ground_truth  # type: ignore[misc]
        self._step = 0
        self._queue: list[tuple[int, Observation, Decision, Feedback]] = []

    @property
    def params(self) -> dict[str, Any]:
        return self.inner.params

    @property
    def passthrough(self) -> bool:
        c = self.conditions
        return c.cadence == "online" and c.feedback_delay == 0 and c.freeze_after is None

    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        return self.inner.act(obs, rng)

    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        t = self._step
        self._step += 1
        if self.passthrough:
            self.inner.update(obs, decision, feedback)
            return
        c = self.conditions
        if c.freeze_after is not None and t >= c.freeze_after:
            self._queue.clear()
            return
        copied = Feedback(clicks=np.array(feedback.clicks), rewards=np.array(feedback.rewards))
        self._queue.append((t, {k: np.array(v) for k, v in obs.items()}, decision, copied))
        if c.cadence == "batched" and (t + 1) % c.retrain_every:
            return
        arrived = [item for item in self._queue if item[0] + c.feedback_delay <= t]
        self._queue = [item for item in self._queue if item[0] + c.feedback_delay > t]
        for _, past_obs, past_decision, past_feedback in arrived:
            self.inner.update(past_obs, past_decision, past_feedback)


# --------------------------------------------------------------------------- one task


def run_task(task: Task, out_dir: str, owner: int | None = None) -> dict[str, Any]:
    """Run one task and write its two result files and its done record; return its summary row.

    Runs in a worker process (spawn-safe: a module-level function of picklable args).
    ``owner`` is the runner's pid, which names the temporary files (default: this process).

    Raises:
        RunError: the trajectory holds a non-finite value (see :func:`check_finite`).
    """
    from agents.registry import agent_class
    from experiments import metrics
    from experiments.rollout import rollout
    from simenv import RecVectorEnv

    scenario = task.scenario
    entry = scenario.agent(task.label)
    agent_class(entry.name)  # imports the agent's module (torch for deep RL) before the clock starts
    started = time.perf_counter()  # after the imports: a fresh worker's start-up is not the task's time
    config = scenario.world_config(task.world_point)
    plan = SeedPlan.from_seed(task.seed)
    with _torch_setup(plan):
        from experiments.trained_models import prepare_agent

        agent, train_time, curve = prepare_agent(task, config, plan, Path(out_dir), owner)
        env = RecVectorEnv(scenario.horizon.users, config=config)
        learner = ScheduledLearner(agent, scenario.conditions_at(task.world_point))
        recorders = _decision_recorders(task, Path(out_dir), env, agent, plan, owner)
        try:
            traj = rollout(
                learner, env, scenario.horizon.steps, np.random.default_rng(plan.agent), seed=plan.world_seed,
                observers=recorders,
            )  # fmt: skip
            check_finite(traj, task.task_id)
            logs = {
                kind: path for recorder in recorders for kind, path in zip(LOG_KINDS, recorder.close(), strict=True)
            }
        except BaseException:
            for recorder in recorders:
                recorder.abort()  # no partial log is left behind
            raise
    kwargs = {"catalog_size": config.catalog.n_items, "choice_beta": config.choice.beta}
    windows, summary = metrics.metrics_tables(traj, scenario.window, **kwargs)
    summary = dict(summary)
    ids = _id_columns(task, agent)
    summary.update(
        world_seed=str(plan.world_seed),
        params=json.dumps(agent.params, sort_keys=True, default=str),
        train_time_s=train_time,
        wall_time_s=time.perf_counter() - started,
    )
    frames = {"windows": _with_ids(windows, ids), "summary": _with_ids(pd.DataFrame([summary]), ids)}
    if len(curve):
        frames["training"] = _with_ids(curve, ids)
    write_task_files(Path(out_dir), task, frames, owner, logs=logs)
    return frames["summary"].iloc[0].to_dict()


LOG_KINDS = ("decisions", "items")
"""The two files of a task's decision log, in the order :meth:`DecisionRecorder.close` returns them."""


def log_stem(out_dir: Path, task: Task) -> Path:
    """``RUN_DIR/logs/<task>``: the stem of the task's decision log (:mod:`experiments.logs`)."""
    return Path(out_dir) / LOGS_DIR / task.task_id


def _decision_recorders(task: Task, out_dir: Path, env: Any, agent: Agent, plan: SeedPlan, owner: int | None) -> list:
    """``[DecisionRecorder]`` streaming the task's decisions when the scenario asks
    (``logging: {decisions: true}``), else ``[]``."""
    if not task.scenario.log_decisions:
        return []
    from experiments.rollout import DecisionRecorder

    world = {"scenario": task.scenario.name, "task": task.task_id, "world_seed": plan.world_seed}
    return [DecisionRecorder(log_stem(out_dir, task), env, agent.params, owner=owner, world=world)]


def check_finite(traj: Any, task_id: str) -> None:
    """Refuse a trajectory holding NaN or ±inf before metrics average it away.

    Checks every float record of ``traj.records`` ((T, B, ...) arrays; NaN is allowed
    where it means "missing", see :data:`NAN_MEANS_MISSING`, but ±inf is not), the (T,)
    ``latency`` and the ``initial_interest`` / ``centroids`` arrays.

    Raises:
        RunError: naming the task, the record, the first offending step (and user) and the value.
    """
    for key, values in traj.records.items():
        _check_array(
            np.asarray(values), task_id, f"trajectory record {key!r}", stepped=True, nan_ok=key in NAN_MEANS_MISSING
        )
    _check_array(np.asarray(traj.latency), task_id, "trajectory latency", stepped=True, nan_ok=False)
    for name in ("initial_interest", "centroids"):
        _check_array(np.asarray(getattr(traj, name)), task_id, f"trajectory {name}", stepped=False, nan_ok=False)


def _check_array(values: np.ndarray, task_id: str, what: str, *, stepped: bool, nan_ok: bool) -> None:
    if values.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(values)
    if nan_ok:
        bad &= ~np.isnan(values)
    if not bad.any():
        return
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    value = values[index]
    if stepped:
        where = f"step {index[0]}" + (f" (user {index[1]})" if len(index) > 1 else "")
    else:
        where = f"index {index}"
    raise RunError(f"task {task_id}: non-finite value {value} in {what} at {where}; metrics need finite numbers")


def training_table(agent: Agent) -> pd.DataFrame:
    """The agent's training curve (:mod:`agents.training_log`: one row per interval), empty if none."""
    from agents.training_log import curve_rows

    inner = getattr(agent, "inner", agent)
    return pd.DataFrame(curve_rows(inner))


def _build_agent(name: str, config: Any, params: dict[str, Any], plan: SeedPlan) -> Agent:
    """Build the agent; one that takes a ``seed`` the scenario does not fix gets one derived
    from the task's agent seed sequence (so seeds differ between runs, not between agents)."""
    from agents import agent_parameters, make_agent
    from simenv import WorldSpec

    if "seed" in agent_parameters(name) and "seed" not in params:
        params = {**params, "seed": int(plan.agent.generate_state(2)[1] % 2**31)}
    return make_agent(name, WorldSpec.from_config(config), **params)


def _train_if_needed(
    agent: Agent, scenario: Scenario, steps: int, config: Any, plan: SeedPlan, tensorboard_log: str | None = None
) -> float:
    """Train a :class:`~agents.base.Trainable` agent on a separately seeded copy of the world.

    The agent gets ``training.users`` concurrent sessions if the scenario sets them, else
    the world config (and builds its own sessions). Returns the seconds spent.
    """
    if not isinstance(agent, Trainable) or steps <= 0:
        return 0.0
    started = time.perf_counter()
    target: Any = config
    if scenario.training.users is not None:
        from simenv import RecVectorEnv

        target = RecVectorEnv(scenario.training.users, config=config, oracle=False)
    extra = {"tensorboard_log": tensorboard_log} if tensorboard_log is not None else {}
    agent.train(target, total_timesteps=steps, seed=plan.training_seed % 2**31, **extra)
    return time.perf_counter() - started


@contextlib.contextmanager
def _torch_setup(plan: SeedPlan) -> Iterator[None]:
    """If an agent loaded torch: one compute thread during the task (workers run side by
    side and numbers stay reproducible; the caller's setting is restored after) and a
    torch seed derived from the agent's seed."""
    if "torch" not in sys.modules:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(int(plan.agent.generate_state(1)[0]))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _id_columns(task: Task, agent: Agent) -> dict[str, Any]:
    ids: dict[str, Any] = {
        "scenario": task.scenario.name,
        "world": task.world_index,
        "world_label": task.world_label,
        "agent": task.label,
        "agent_name": agent.name,
        "variant": task.variant_label,
        "arm": task.arm,
        "seed": task.seed,
    }
    for axis in task.scenario.sweep:
        if axis.is_shared:
            ids[axis.path] = task.world_point[axis.key]
        else:
            ids[axis.path] = task.variant.get(axis.key) if axis.agent_label == task.label else None
    return ids


def _with_ids(frame: pd.DataFrame, ids: Mapping[str, Any]) -> pd.DataFrame:
    front = pd.DataFrame({key: [value] * len(frame) for key, value in ids.items()}, index=frame.index)
    return pd.concat([front, frame.drop(columns=[c for c in ids if c in frame.columns])], axis=1)


def task_file(out_dir: Path, task: Task, kind: str) -> Path:
    """``RUN_DIR/tasks/<task>.<kind>.parquet`` (kind: ``windows`` or ``summary``)."""
    return Path(out_dir) / TASKS_DIR / f"{task.task_id}.{kind}.parquet"


def done_record_path(out_dir: Path, task: Task) -> Path:
    """``RUN_DIR/tasks/<task>.done.json``: the SHA-256 and size of the task's two files."""
    return Path(out_dir) / TASKS_DIR / f"{task.task_id}.{DONE_SUFFIX}"


def write_task_files(
    out_dir: Path,
    task: Task,
    frames: Mapping[str, pd.DataFrame],
    owner: int | None = None,
    logs: Mapping[str, Path] | None = None,
) -> None:
    """Write a task's tables (two, and its training curve if ``frames`` has one), then its done
    record (checksums) last, each atomically.

    An earlier done record is removed first: the task is not done until the new one lands.
    ``logs`` (kind -> path) are files already in place (the decision log) whose checksums
    the done record also keeps, so a damaged log makes the task pending again.
    """
    record_path = done_record_path(out_dir, task)
    record_path.unlink(missing_ok=True)
    files = {}
    for kind in OPTIONAL_KINDS:
        if kind not in frames:
            task_file(out_dir, task, kind).unlink(missing_ok=True)
    for kind in (*TASK_KINDS, *(k for k in OPTIONAL_KINDS if k in frames)):
        path = task_file(out_dir, task, kind)
        data = parquet_bytes(frames[kind])
        write_bytes_atomic(data, path, owner)
        files[kind] = {"name": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    for kind, path in (logs or {}).items():
        files[f"log.{kind}"] = {"name": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size}
    write_json_atomic({"task": task.task_id, "files": files}, record_path, owner)


def task_problem(out_dir: Path, task: Task) -> str | None:
    """Why ``task`` is not done in ``out_dir``; None when both its files exist with the size
    and SHA-256 its done record gives."""
    record_path = done_record_path(out_dir, task)
    if not record_path.exists():
        return f"no done record {_relative(record_path)}"
    try:
        record = json.loads(record_path.read_bytes())
        kinds = (*TASK_KINDS, *(k for k in OPTIONAL_KINDS if k in record["files"]))
        expected = {kind: (str(record["files"][kind]["sha256"]), int(record["files"][kind]["bytes"])) for kind in kinds}
    except (ValueError, KeyError, TypeError) as err:
        return f"its done record {_relative(record_path)} is unreadable ({type(err).__name__}: {err})"
    if task.scenario.log_decisions:
        try:
            expected.update(
                {f"log.{k}": (str(record["files"][f"log.{k}"]["sha256"]), int(record["files"][f"log.{k}"]["bytes"]))
                 for k in LOG_KINDS}
            )  # fmt: skip
        except (KeyError, TypeError):
            return f"its done record {_relative(record_path)} lists no decision log"
    for kind, (digest, size) in expected.items():
        path = task_file(out_dir, task, kind) if not kind.startswith("log.") else _log_file(out_dir, task, kind[4:])
        if not path.exists():
            return f"{_relative(path)} is missing"
        found = path.stat().st_size
        if found != size:
            return f"{_relative(path)} has {found} bytes, its done record says {size} (truncated or replaced)"
        actual = file_sha256(path)
        if actual != digest:
            return (
                f"{_relative(path)} does not match its recorded checksum "
                f"(sha256 {digest[:12]}... recorded, {actual[:12]}... found)"
            )
    return None


def _log_file(out_dir: Path, task: Task, kind: str) -> Path:
    """``RUN_DIR/logs/<task>.<kind>.parquet`` (kind: one of :data:`LOG_KINDS`)."""
    stem = log_stem(out_dir, task)
    return stem.with_name(f"{stem.name}.{kind}.parquet")


def _relative(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def task_started(out_dir: Path, task: Task) -> bool:
    """Some file of ``task`` (a table or its done record) exists."""
    kinds = (*TASK_KINDS, *OPTIONAL_KINDS)
    paths = [done_record_path(out_dir, task), *(task_file(out_dir, task, kind) for kind in kinds)]
    return any(p.exists() for p in paths)


def task_done(out_dir: Path, task: Task) -> bool:
    """Both of the task's files match the checksums of its done record."""
    return task_problem(out_dir, task) is None


def remove_temporaries(out_dir: Path, owner: int | None = None) -> None:
    """Delete temporary files in ``out_dir`` and its ``tasks/``: those of runner ``owner``
    only, or every one when ``owner`` is None (only while holding the directory's lock:
    then no other runner is alive to own them)."""
    pattern = ".*.tmp-*" if owner is None else f".*.tmp-{owner}-*"
    for folder in (Path(out_dir), Path(out_dir) / TASKS_DIR, Path(out_dir) / LOGS_DIR):
        for tmp in folder.glob(pattern):
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the lock


class RunLock:
    """One runner at a time in a run directory: an exclusive ``flock`` on ``RUN_DIR/.lock``.

    While held, the lock file holds the holder's ``{"pid", "host", "since"}`` (emptied on
    release). The kernel releases the lock when its holder dies, however it dies, and
    worker processes do not inherit it.

    Raises (on entering):
        RunError: another runner holds the lock (naming its pid, host and start time).
        OSError: the lock file cannot be created or locked (naming it).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / LOCK
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:
            raise RunError(f"locking {self.path} needs fcntl (POSIX); not available on {sys.platform}") from None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise RunError(
                f"{self.path.parent} is in use by another runner ({holder}); "
                "wait for it to finish or stop it, then rerun"
            ) from None
        except OSError as err:
            os.close(fd)
            raise OSError(err.errno, err.strerror or str(err), str(self.path)) from err
        self._fd = fd
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            os.fsync(fd)
        except OSError as err:
            self.__exit__()
            raise OSError(err.errno, err.strerror or str(err), str(self.path)) from err
        return self

    def __exit__(self, *exc: object) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


def _lock_holder(fd: int) -> str:
    """``"pid N on HOST, since T"`` from a held lock file (read a few times: the holder
    writes it just after locking)."""
    for attempt in range(5):
        try:
            holder = json.loads(os.pread(fd, 4096, 0))
            return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05 * (attempt + 1))
    return "holder unknown: its lock file names none"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- manifest


REQUIRED_MANIFEST_KEYS = ("format", "status", "scenario", "fingerprint")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the numbers."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict[str, Any]:
    """The commit of the source tree (read-only git calls) and whether it has local changes."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def resolve(scenario: Scenario) -> dict[str, list[dict[str, Any]]]:
    """The scenario as it runs: every world grid point's full config and every agent's
    parameters with their defaults filled in (``{"worlds": [...], "agents": [...]}``)."""
    from agents.registry import agent_parameters, custom_agent_digest

    agents = []
    for entry in scenario.agents:
        try:
            defaults = {k: v for k, v in agent_parameters(entry.name).items() if v is not inspect.Parameter.empty}
        except Exception:
            defaults = {}
        agents.append(
            {
                "label": entry.label,
                "name": entry.name,
                "params": {**_jsonable(defaults), **thaw(entry.params)},
                "sweep": [axis.path for axis in scenario.agent_axes(entry.label)],
                "training_steps": scenario.training_steps(entry),
                **({"code": digest} if (digest := custom_agent_digest(entry.name, thaw(entry.params))) else {}),
            }
        )
        if entry.model is not None:  # a served model file: its content is part of what the numbers depend on
            agents[-1]["model"] = {"path": entry.model, "sha256": file_sha256(Path(entry.model))}
    worlds = [
        {"index": i, "point": point, "config": scenario.world_config(point).to_dict()}
        for i, point in enumerate(scenario.world_points())
    ]
    return {"worlds": worlds, "agents": agents}


def provenance(
    scenario: Scenario, resolved: Mapping[str, Any], versions: Mapping[str, Any], git: Mapping[str, Any]
) -> dict[str, Any]:
    """What a run's numbers depend on besides the seeds, and its fingerprint.

    Returns:
        ``{"fingerprint": sha256 hex, "parts": {"scenario", "worlds", "agents", "versions", "code"}}``:
        the scenario's fingerprint, SHA-256 of the resolved world configs and agent
        parameters, the package versions and the code version (git commit, local changes).
    """
    parts = {
        "scenario": scenario.fingerprint(),
        "worlds": _sha256_json(resolved["worlds"]),
        "agents": _sha256_json(resolved["agents"]),
        "versions": dict(versions),
        "code": dict(git),
    }
    return {"fingerprint": _sha256_json(parts), "parts": parts}


def _sha256_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def build_manifest(scenario: Scenario, tasks: Sequence[Task], *, backend: str, workers: int) -> dict[str, Any]:
    """The manifest of a run, status ``running`` (:func:`run_scenario` completes it at the end)."""
    resolved = resolve(scenario)
    versions = package_versions()
    git = git_state()
    return {
        "format": MANIFEST_FORMAT,
        "status": "running",
        "scenario": scenario.to_dict(),
        "scenario_file": scenario.source,
        "scenario_text": _read_text(scenario.source),
        "fingerprint": scenario.fingerprint(),
        "provenance": provenance(scenario, resolved, versions, git),
        "resolved": resolved,
        "seeds": {
            "run_seeds": list(scenario.seeds),
            "world_seeds": {str(s): str(SeedPlan.from_seed(s).world_seed) for s in scenario.seeds},
            "scheme": "SeedSequence(seed).spawn(3) -> world, agent, training; world seed shared by every agent",
        },
        "tasks": [t.task_id for t in tasks],
        "versions": versions,
        "git": git,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "backend": backend,
        "workers": workers,
        "started": _now(),
        "invocations": [],
    }


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(data), default=str))


def _read_text(source: str) -> str | None:
    try:
        return Path(source).read_text()
    except OSError:
        return None


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path``: a JSON object with at least :data:`REQUIRED_MANIFEST_KEYS`.

    Raises:
        RunError: the file is missing, truncated, malformed or incomplete (naming it).
    """
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise RunError(f"{path.parent} holds no {MANIFEST}: not a BubbleGym run directory") from None
    except ValueError as err:
        detail = f"{err.msg} at line {err.lineno}, column {err.colno}" if isinstance(err, json.JSONDecodeError) else err
        raise RunError(
            f"{path}: not a readable manifest (truncated or malformed JSON: {detail}); "
            "restore it, or rerun with --force to start the run over"
        ) from None
    if not isinstance(data, dict):
        raise RunError(
            f"{path}: not a manifest: a JSON {type(data).__name__}, not an object; "
            "rerun with --force to start the run over"
        )
    missing = [key for key in REQUIRED_MANIFEST_KEYS if key not in data]
    if missing:
        raise RunError(
            f"{path}: not a complete manifest: {', '.join(missing)} missing; "
            "restore it, or rerun with --force to start the run over"
        )
    return data


def load_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a run directory (see :func:`read_manifest`)."""
    return read_manifest(Path(run_dir) / MANIFEST)


def check_resumable(out_dir: Path, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Refuse to add results to ``out_dir`` (manifest ``old``) that a run with manifest
    ``new`` would compute under another scenario or setup.

    Raises:
        RunError: another scenario; a manifest of an older format (no provenance); or a
            provenance fingerprint that differs (naming what changed).
    """
    if old["fingerprint"] != new["fingerprint"]:
        scenario = old["scenario"].get("name") if isinstance(old["scenario"], dict) else None
        raise RunError(
            f"{out_dir} holds results of a different scenario ({scenario!r}, "
            f"from {old.get('scenario_file')}); choose another --out, or pass --force to replace them"
        )
    stored = old.get("provenance")
    if old["format"] != MANIFEST_FORMAT or not isinstance(stored, dict):
        raise RunError(
            f"{out_dir / MANIFEST} has format {old['format']!r} without a provenance fingerprint "
            f"(this runner writes format {MANIFEST_FORMAT}); its results cannot be checked: "
            "choose another --out, or pass --force to replace them"
        )
    current = new["provenance"]
    if stored.get("fingerprint") != current["fingerprint"]:
        raise RunError(
            f"{out_dir} holds results computed under another setup: {_what_changed(stored, current)}; "
            "mixing old and new results is refused: choose another --out, or pass --force to replace them"
        )


def _what_changed(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    old = stored.get("parts") if isinstance(stored.get("parts"), dict) else {}
    new = current["parts"]
    changes = []
    if old.get("code") != new["code"]:
        changes.append(f"the code ({_code_text(old.get('code'))} then, {_code_text(new['code'])} now)")
    old_versions = old.get("versions") if isinstance(old.get("versions"), dict) else {}
    moved = [
        f"{name} {old_versions.get(name)} -> {new['versions'].get(name)}"
        for name in sorted(set(old_versions) | set(new["versions"]))
        if old_versions.get(name) != new["versions"].get(name)
    ]
    if moved:
        changes.append(f"package versions ({', '.join(moved)})")
    if old.get("worlds") != new["worlds"]:
        changes.append("the resolved world configs (a world default or preset changed)")
    if old.get("agents") != new["agents"]:
        changes.append("the resolved agent parameters (an agent default changed)")
    if not changes:
        return (
            f"the provenance fingerprint differs (stored {str(stored.get('fingerprint'))[:12]}, "
            f"now {current['fingerprint'][:12]})"
        )
    return f"{'; '.join(changes)} changed since"


def _code_text(code: Any) -> str:
    if not isinstance(code, dict) or not code.get("commit"):
        return "no git commit"
    return f"commit {str(code['commit'])[:12]}" + (" with local changes" if code.get("dirty") else "")


# --------------------------------------------------------------------------- workers


class _WorkerPool:
    """``n`` spawned worker processes that run one task at a time and die with the runner.

    Each worker talks to the runner over its own pipe, so a worker that dies is known with
    the task it was running. Workers ignore SIGINT (Ctrl-C reaches the whole process group;
    the runner stops them), exit when the runner dies (``PR_SET_PDEATHSIG`` on Linux plus a
    watchdog thread polling the parent pid), and are terminated when the pool is left early.
    """

    def __init__(self, n: int, out_dir: Path, owner: int) -> None:
        self.n = n
        self.out_dir = str(out_dir)
        self.owner = owner
        self.workers: list[tuple[Any, Any]] = []  # (process, connection)

    def __enter__(self) -> _WorkerPool:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        try:
            with _thread_env(), _sigint_ignored():
                for _ in range(self.n):
                    mine, theirs = context.Pipe()
                    process = context.Process(
                        target=_worker_main, args=(theirs, os.getpid(), self.out_dir, self.owner), daemon=True
                    )
                    process.start()
                    theirs.close()
                    self.workers.append((process, mine))
        except BaseException as err:
            self.__exit__(type(err))  # stop the workers already started
            raise
        return self

    def run(self, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        """Yield the summary row of each task as it finishes (longest-first order of ``tasks``).

        Raises:
            RunError: a task failed, or a worker died (naming the task it was running).
        """
        from multiprocessing.connection import wait

        queue = deque(tasks)
        idle = list(self.workers)
        busy: dict[Any, tuple[Any, Task]] = {}  # connection -> (process, task)
        while queue or busy:
            while queue and idle:
                process, conn = idle.pop()
                task = queue.popleft()
                busy[conn] = (process, task)
                try:
                    conn.send(task)
                except OSError:
                    raise self._died(process, task) from None
            ready = set(wait([*busy, *(process.sentinel for process, _ in busy.values())]))
            for conn, (process, task) in list(busy.items()):
                if conn not in ready and process.sentinel not in ready:
                    continue
                status, payload = self._receive(conn, process, task)
                del busy[conn]
                idle.append((process, conn))
                if status == "failed":
                    raise RunError(payload)
                yield payload

    def _receive(self, conn: Any, process: Any, task: Task) -> tuple[str, Any]:
        try:
            if conn.poll():
                return conn.recv()
        except Exception:  # EOFError, OSError, a half-sent reply of a dying worker
            pass
        raise self._died(process, task)

    @staticmethod
    def _died(process: Any, task: Task) -> RunError:
        process.join(timeout=5)
        return RunError(
            f"task {task.task_id}: its worker process (pid {process.pid}) died ({_exit_text(process.exitcode)}) "
            "while running it; finished tasks are kept: rerun to resume"
        )

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            for _, conn in self.workers:
                with contextlib.suppress(OSError):
                    conn.send(None)
            for process, _ in self.workers:
                process.join(timeout=10)
        for process, _ in self.workers:
            if process.is_alive():
                process.terminate()
        for process, conn in self.workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
            conn.close()


def _exit_text(code: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code is None:
        return "exit status unknown"
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}" + (", e.g. by the out-of-memory killer" if name == "SIGKILL" else "")


def _worker_main(conn: Any, parent: int, out_dir: str, owner: int) -> None:
    """A worker's loop: receive a task, run it, send ``("done", row)`` or ``("failed", message)``;
    stop on ``None`` or when the runner's end of the pipe closes."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            reply: tuple[str, Any] = ("done", _guarded(task, out_dir, owner))
        except RunError as err:
            reply = ("failed", str(err))
        conn.send(reply)


PR_SET_PDEATHSIG = 1
"""``prctl`` option (linux/prctl.h): the signal a process gets when its parent dies."""


def _die_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """End this process when ``parent`` dies: SIGKILL from the kernel on Linux, and a
    watchdog thread polling ``os.getppid()`` every ``poll_s`` seconds everywhere."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="bubblegym-parent-watchdog", daemon=True).start()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while starting workers, so they start with it ignored (a spawned
    Python keeps an ignored SIGINT) and never print a KeyboardInterrupt traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------- backends


def _execute_local(tasks: Sequence[Task], out_dir: Path, workers: int, owner: int) -> Iterator[dict[str, Any]]:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _guarded(task, str(out_dir), owner)
        return
    with _WorkerPool(min(workers, len(tasks)), out_dir, owner) as pool:
        yield from pool.run(tasks)


def _execute_ray(tasks: Sequence[Task], out_dir: Path, workers: int, owner: int) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise RunError("the ray backend needs Ray: pip install 'bubblegym[ray]' (or use --backend local)") from None
    started_here = not ray.is_initialized()
    if started_here:
        root = str(Path(__file__).resolve().parent.parent)
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"PYTHONPATH": root, **_THREAD_VARS}},
        )
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_guarded)
        pending = [remote.remote(task, str(out_dir), owner) for task in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


BACKENDS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {"local": _execute_local, "ray": _execute_ray}

_THREAD_VARS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@contextlib.contextmanager
def _thread_env() -> Iterator[None]:
    """Spawned workers inherit one-thread BLAS settings (set before they start)."""
    saved = {key: os.environ.get(key) for key in _THREAD_VARS}
    os.environ.update(_THREAD_VARS)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _guarded(task: Task, out_dir: str, owner: int | None = None) -> dict[str, Any]:
    """Run a task; re-raise failures as a RunError naming the task (picklable): one line
    for a file system error (naming the path) or ``MemoryError``, else with the traceback."""
    try:
        return run_task(task, out_dir, owner)
    except RunError:
        raise
    except OSError as err:
        raise RunError(f"task {task.task_id}: {describe_os_error(err)}") from None
    except MemoryError:
        raise RunError(f"task {task.task_id}: out of memory (MemoryError) while running it") from None
    except Exception as err:
        raise RunError(f"task {task.task_id} failed: {type(err).__name__}: {err}\n{traceback.format_exc()}") from None


# --------------------------------------------------------------------------- the run


@dataclass
class RunResult:
    """Where a run wrote its results and what it did.

    Attributes:
        path: the run directory.
        ran, skipped: task ids executed now and those already done (resume).
        seconds: wall time of this invocation.
        changed: whether this invocation wrote the merged tables and the manifest (False
            when the run was already complete: nothing was rewritten).
    """

    path: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    changed: bool = True

    @property
    def summary(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / SUMMARY)

    @property
    def windows(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / WINDOWS)


def default_workers(n_tasks: int) -> int:
    """As many workers as cores, at most one per task."""
    return max(1, min(os.cpu_count() or 1, n_tasks))


def _say(message: str) -> None:
    """One line for the person running: on stderr, prefixed ``bubblegym:``."""
    print(f"bubblegym: {message}", file=sys.stderr, flush=True)


def run_scenario(
    scenario: Scenario,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    backend: str = "local",
    force: bool = False,
    progress: bool = True,
) -> RunResult:
    """Run every task of ``scenario`` not yet done in ``out_dir``, then merge the tables.

    Holds the directory's :class:`RunLock` throughout. Resumes a directory holding the same
    scenario computed under the same setup (:func:`check_resumable`); a task counts as
    done only if its files match their checksums (:func:`task_problem`; damaged ones are
    recomputed, said on stderr). A run already complete is left untouched.

    Args:
        scenario: a validated scenario.
        out_dir: the run directory (created; resumed when it holds the same scenario).
        workers: parallel worker processes (default: cores, at most one per task).
        backend: ``"local"`` (processes) or ``"ray"``.
        force: replace a different scenario's (or setup's) results in ``out_dir``.
        progress: show a tqdm progress bar.

    Raises:
        RunError: a foreign, busy or unreadable results directory, an unknown backend, or
            a failed task.
        OSError: a file cannot be written (naming it).
    """
    if backend not in BACKENDS:
        raise RunError(f"backend must be one of {sorted(BACKENDS)}; got {backend!r}")
    from experiments.scenario import check_agent_names

    check_agent_names(scenario)
    started = time.perf_counter()
    out = Path(out_dir)
    tasks = make_tasks(scenario)
    n_workers = workers or default_workers(len(tasks))
    if n_workers < 1:
        raise RunError(f"workers must be >= 1; got {n_workers}")
    if not force:
        _refuse_foreign(out)  # before the lock file is made in someone else's directory
    out.mkdir(parents=True, exist_ok=True)
    owner = os.getpid()
    with RunLock(out):
        try:
            return _run_locked(scenario, out, tasks, backend, n_workers, force, progress, started, owner)
        finally:
            remove_temporaries(out, owner)


def _run_locked(
    scenario: Scenario,
    out: Path,
    tasks: Sequence[Task],
    backend: str,
    n_workers: int,
    force: bool,
    progress: bool,
    started: float,
    owner: int,
) -> RunResult:
    """:func:`run_scenario` once the directory is locked."""
    manifest = build_manifest(scenario, tasks, backend=backend, workers=n_workers)
    old = _open_run_dir(out, manifest, force)
    pending = _pending(out, tasks)
    if old is not None and not pending and _complete(out, old, manifest):
        return RunResult(out, skipped=[t.task_id for t in tasks], seconds=time.perf_counter() - started, changed=False)
    invocation = {
        "started": manifest["started"],
        "pid": owner,
        "host": socket.gethostname(),
        "backend": backend,
        "workers": n_workers,
        "tasks_run": len(pending),
        "tasks_skipped": len(tasks) - len(pending),
    }
    if old is not None:
        manifest["started"] = old.get("started", manifest["started"])
        manifest["invocations"] = [i for i in old.get("invocations", []) if isinstance(i, dict)]
    manifest["invocations"].append(invocation)
    write_json_atomic(manifest, out / MANIFEST, owner)
    (out / TASKS_DIR).mkdir(exist_ok=True)
    ordered = sorted(pending, key=_expected_cost, reverse=True)
    with contextlib.closing(BACKENDS[backend](ordered, out, n_workers, owner)) as results:
        _drive(results, len(ordered), progress, scenario.name)
    summary, outputs = merge_results(out, tasks, owner)
    seconds = time.perf_counter() - started
    invocation.update(finished=_now(), wall_s=seconds)
    manifest.update(
        status="complete",
        finished=invocation["finished"],
        outputs=outputs,
        timings={
            "wall_s": sum(float(i.get("wall_s", 0.0)) for i in manifest["invocations"]),
            "task_wall_s": dict(zip(summary["task"], summary["wall_time_s"].astype(float), strict=True)),
            "task_train_s": dict(zip(summary["task"], summary["train_time_s"].astype(float), strict=True)),
        },
    )
    write_json_atomic(manifest, out / MANIFEST, owner)
    ran = [t.task_id for t in ordered]
    return RunResult(out, ran=ran, skipped=[t.task_id for t in tasks if t.task_id not in ran], seconds=seconds)


def _open_run_dir(out: Path, manifest: Mapping[str, Any], force: bool) -> dict[str, Any] | None:
    """Check (or, with ``force``, clear) the locked directory ``out`` for a run with
    ``manifest``; return the manifest of the results it resumes (None: a fresh run).
    Leftover temporaries are deleted: the lock proves their runners are gone."""
    manifest_path = out / MANIFEST
    if force:
        _clear(out)
        return None
    remove_temporaries(out)
    if manifest_path.exists():
        old = read_manifest(manifest_path)
        check_resumable(out, old, manifest)
        return old
    _refuse_foreign(out)
    return None


def _refuse_foreign(out: Path) -> None:
    """Refuse a directory holding files but no manifest (someone else's files).

    Raises:
        RunError: naming the directory.
    """
    if out.is_dir() and not (out / MANIFEST).exists() and any(p.name != LOCK for p in out.iterdir()):
        raise RunError(f"{out} is not empty and holds no BubbleGym manifest; choose another --out or pass --force")


def _clear(out: Path) -> None:
    """Delete a run's files from ``out`` (not the lock, not unrelated files)."""
    for name in (TASKS_DIR, LOGS_DIR, "figures", "models", "tensorboard"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (MANIFEST, WINDOWS, SUMMARY, TRAINING, "report.md", "report.html", "summary.csv"):
        (out / name).unlink(missing_ok=True)
    remove_temporaries(out)


def _pending(out: Path, tasks: Sequence[Task]) -> list[Task]:
    """The tasks not done in ``out``; a task with damaged or partial files is said on stderr."""
    pending = []
    for task in tasks:
        problem = task_problem(out, task)
        if problem is None:
            continue
        if task_started(out, task):
            _say(f"task {task.task_id}: {problem}; recomputing it")
        pending.append(task)
    return pending


def _complete(out: Path, old: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    """The run in ``out`` is finished for exactly these tasks and its merged tables match
    their recorded checksums (then nothing needs rewriting)."""
    outputs = old.get("outputs")
    if old.get("status") != "complete" or old.get("tasks") != manifest["tasks"] or not isinstance(outputs, dict):
        return False
    for name in (WINDOWS, SUMMARY, *((TRAINING,) if TRAINING in outputs else ())):
        path = out / name
        if not path.exists() or outputs.get(name) != file_sha256(path):
            return False
    return True


def _drive(results: Iterator[dict[str, Any]], total: int, progress: bool, name: str) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=f"run {name}", unit="task", disable=not progress or total == 0) as bar:
        for _ in results:
            bar.update(1)


def merge_results(
    out_dir: Path, tasks: Sequence[Task], owner: int | None = None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Concatenate the tasks' files (in task order) into windows.parquet and summary.parquet.

    Returns:
        The merged summary table and ``{file name: SHA-256}`` of the two merged files.

    Raises:
        RunError: some task is not done (its files missing or not matching their checksums).
    """
    missing = [t.task_id for t in tasks if not task_done(out_dir, t)]
    if missing:
        raise RunError(f"cannot merge: {len(missing)} task(s) unfinished, e.g. {missing[:3]}; rerun to resume")
    frames: dict[str, list[pd.DataFrame]] = {kind: [] for kind in TASK_KINDS}
    for task in tasks:
        for kind, parts in frames.items():
            frame = pd.read_parquet(task_file(out_dir, task, kind))
            frame.insert(0, "task", task.task_id)
            parts.append(frame)
    windows = pd.concat(frames["windows"], ignore_index=True)
    summary = pd.concat(frames["summary"], ignore_index=True)
    outputs = {
        WINDOWS: write_parquet_atomic(windows, out_dir / WINDOWS, owner),
        SUMMARY: write_parquet_atomic(summary, out_dir / SUMMARY, owner),
    }
    curves = [_task_curve(out_dir, task) for task in tasks]
    curves = [frame for frame in curves if frame is not None]
    if curves:
        outputs[TRAINING] = write_parquet_atomic(pd.concat(curves, ignore_index=True), out_dir / TRAINING, owner)
    else:
        (out_dir / TRAINING).unlink(missing_ok=True)
    return summary, outputs


def _task_curve(out_dir: Path, task: Task) -> pd.DataFrame | None:
    """The task's training curve (checked by :func:`task_done` against its done record), or None."""
    path = task_file(out_dir, task, "training")
    record = json.loads(done_record_path(out_dir, task).read_bytes())
    if "training" not in record["files"]:
        return None
    frame = pd.read_parquet(path)
    frame.insert(0, "task", task.task_id)
    return frame
