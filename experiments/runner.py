"""Run a scenario: every agent x seed x grid point, in parallel, into one results directory.

Layout of a run directory::

    RUN_DIR/
      manifest.json          scenario, resolved config, versions, git commit, seeds, timings
      tasks/<task>.windows.parquet   per-window metrics of one task (written atomically)
      tasks/<task>.summary.parquet   per-run summary of one task (written last: the "done" mark)
      windows.parquet        all tasks' windows, merged at the end
      summary.parquet        all tasks' summaries, merged at the end

A task is one (world grid point, agent, agent variant, seed). Common random numbers: the
world seed of a task depends only on its seed, so under one seed every agent (and every
grid point) meets the same users, candidates and choice noise; the agent's own generator
and the training world's seed are separate children of the same
:class:`numpy.random.SeedSequence`.

Resume: rerunning into the same directory skips tasks whose two files exist; files are
written to a temporary name and renamed, so a half-written result never poses as
complete. A directory holding a different scenario's results is refused unless ``force``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.base import Agent, Decision, Feedback, Observation
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
MANIFEST = "manifest.json"
WINDOWS = "windows.parquet"
SUMMARY = "summary.parquet"
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
    """A run cannot start or finish (a foreign results directory, a failed task, ...)."""


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
    return task.scenario.training_steps(entry) if hasattr(agent_class(entry.name), "train") else 0


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


def run_task(task: Task, out_dir: str) -> dict[str, Any]:
    """Run one task and write its two result files atomically; return its summary row.

    Runs in a worker process (spawn-safe: a module-level function of picklable args).
    """
    from agents.registry import agent_class
    from agents.rollout import rollout
    from experiments import metrics
    from simenv import RecVectorEnv

    scenario = task.scenario
    entry = scenario.agent(task.label)
    agent_class(entry.name)  # imports the agent's module (torch for deep RL) before the clock starts
    started = time.perf_counter()  # after the imports: a fresh worker's start-up is not the task's time
    config = scenario.world_config(task.world_point)
    plan = SeedPlan.from_seed(task.seed)
    with _torch_setup(plan):
        agent = _build_agent(entry.name, config, {**thaw(entry.params), **task.variant}, plan)
        train_time = _train_if_needed(agent, scenario, scenario.training_steps(entry), config, plan)
        env = RecVectorEnv(scenario.horizon.users, config=config)
        learner = ScheduledLearner(agent, scenario.conditions_at(task.world_point))
        traj = rollout(learner, env, scenario.horizon.steps, np.random.default_rng(plan.agent), seed=plan.world_seed)
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
    windows = _with_ids(windows, ids)
    summary_frame = _with_ids(pd.DataFrame([summary]), ids)
    folder = Path(out_dir) / TASKS_DIR
    write_parquet_atomic(windows, folder / f"{task.task_id}.windows.parquet")
    write_parquet_atomic(summary_frame, folder / f"{task.task_id}.summary.parquet")
    return summary_frame.iloc[0].to_dict()


def _build_agent(name: str, config: Any, params: dict[str, Any], plan: SeedPlan) -> Agent:
    """Build the agent; one that takes a ``seed`` the scenario does not fix gets one derived
    from the task's agent seed sequence (so seeds differ between runs, not between agents)."""
    from agents import agent_parameters, make_agent
    from simenv import WorldSpec

    if "seed" in agent_parameters(name) and "seed" not in params:
        params = {**params, "seed": int(plan.agent.generate_state(2)[1] % 2**31)}
    return make_agent(name, WorldSpec.from_config(config), **params)


def _train_if_needed(agent: Agent, scenario: Scenario, steps: int, config: Any, plan: SeedPlan) -> float:
    """Train an agent that has ``train()`` on a separately seeded copy of the world.

    The agent gets ``training.users`` concurrent sessions if the scenario sets them, else
    the world config (and builds its own sessions). Returns the seconds spent.
    """
    train = getattr(agent, "train", None)
    if train is None or steps <= 0:
        return 0.0
    started = time.perf_counter()
    target: Any = config
    if scenario.training.users is not None:
        from simenv import RecVectorEnv

        target = RecVectorEnv(scenario.training.users, config=config, oracle=False)
    _call_train(train, target, steps, plan.training_seed % 2**31)
    return time.perf_counter() - started


def _call_train(train: Callable[..., Any], target: Any, steps: int, seed: int) -> None:
    """Call ``agent.train(env_or_config, total_timesteps, seed)`` (names as its signature has them)."""
    names = list(inspect.signature(train).parameters)
    kwargs: dict[str, Any] = {}
    for key in ("total_timesteps", "steps", "timesteps"):
        if key in names:
            kwargs[key] = steps
            break
    if "seed" in names:
        kwargs["seed"] = seed
    train(target, **kwargs)


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


# --------------------------------------------------------------------------- files


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` via a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_json_atomic(data: Any, path: Path) -> None:
    """Write JSON via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
    os.replace(tmp, path)


def task_done(out_dir: Path, task: Task) -> bool:
    """Both of the task's result files exist (each was renamed into place complete)."""
    folder = out_dir / TASKS_DIR
    return all((folder / f"{task.task_id}.{kind}.parquet").exists() for kind in ("windows", "summary"))


def prepare_run_dir(scenario: Scenario, out_dir: Path, *, force: bool = False) -> bool:
    """Make ``out_dir`` ready for ``scenario``; return True when resuming earlier results.

    Raises:
        RunError: the directory holds another scenario's results (or unknown files) and
            ``force`` is not set.
    """
    manifest_path = out_dir / MANIFEST
    if manifest_path.exists() and not force:
        old = json.loads(manifest_path.read_text())
        if old.get("fingerprint") != scenario.fingerprint():
            raise RunError(
                f"{out_dir} holds results of a different scenario ({old.get('scenario', {}).get('name')!r}, "
                f"from {old.get('scenario_file')}); choose another --out, or pass --force to replace them"
            )
        _remove_temporaries(out_dir)
        return True
    if out_dir.exists() and any(out_dir.iterdir()) and not force and not manifest_path.exists():
        raise RunError(f"{out_dir} is not empty and holds no BubbleGym manifest; choose another --out or pass --force")
    if force and out_dir.exists():
        for name in (TASKS_DIR, "figures"):
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in (MANIFEST, WINDOWS, SUMMARY, "report.md", "report.html", "summary.csv"):
            (out_dir / name).unlink(missing_ok=True)
    (out_dir / TASKS_DIR).mkdir(parents=True, exist_ok=True)
    return False


def _remove_temporaries(out_dir: Path) -> None:
    for tmp in (out_dir / TASKS_DIR).glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- manifest


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


def build_manifest(scenario: Scenario, tasks: Sequence[Task], *, backend: str, workers: int) -> dict[str, Any]:
    """The manifest of a run, status ``running`` (:func:`run_scenario` completes it at the end)."""
    from agents.registry import agent_parameters

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
            }
        )
    worlds = [
        {"index": i, "point": point, "config": scenario.world_config(point).to_dict()}
        for i, point in enumerate(scenario.world_points())
    ]
    return {
        "format": 1,
        "status": "running",
        "scenario": scenario.to_dict(),
        "scenario_file": scenario.source,
        "scenario_text": _read_text(scenario.source),
        "fingerprint": scenario.fingerprint(),
        "resolved": {"worlds": worlds, "agents": agents},
        "seeds": {
            "run_seeds": list(scenario.seeds),
            "world_seeds": {str(s): str(SeedPlan.from_seed(s).world_seed) for s in scenario.seeds},
            "scheme": "SeedSequence(seed).spawn(3) -> world, agent, training; world seed shared by every agent",
        },
        "tasks": [t.task_id for t in tasks],
        "versions": package_versions(),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "backend": backend,
        "workers": workers,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(data), default=str))


def _read_text(source: str) -> str | None:
    try:
        return Path(source).read_text()
    except OSError:
        return None


# --------------------------------------------------------------------------- backends


def _execute_local(tasks: Sequence[Task], out_dir: Path, workers: int, progress: bool) -> Iterator[dict[str, Any]]:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _guarded(task, str(out_dir))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with (
        _thread_env(),
        ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        futures = {pool.submit(_guarded, task, str(out_dir)): task for task in tasks}
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _execute_ray(tasks: Sequence[Task], out_dir: Path, workers: int, progress: bool) -> Iterator[dict[str, Any]]:
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
        pending = [remote.remote(task, str(out_dir)) for task in tasks]
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


def _guarded(task: Task, out_dir: str) -> dict[str, Any]:
    """Run a task; re-raise failures as a RunError naming the task (picklable)."""
    try:
        return run_task(task, out_dir)
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
    """

    path: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def summary(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / SUMMARY)

    @property
    def windows(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / WINDOWS)


def default_workers(n_tasks: int) -> int:
    """As many workers as cores, at most one per task."""
    return max(1, min(os.cpu_count() or 1, n_tasks))


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

    Args:
        scenario: a validated scenario.
        out_dir: the run directory (created; resumed when it holds the same scenario).
        workers: parallel worker processes (default: cores, at most one per task).
        backend: ``"local"`` (processes) or ``"ray"``.
        force: replace a different scenario's results in ``out_dir``.
        progress: show a tqdm progress bar.

    Raises:
        RunError: a foreign results directory, an unknown backend, or a failed task.
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
    prepare_run_dir(scenario, out, force=force)
    manifest = build_manifest(scenario, tasks, backend=backend, workers=n_workers)
    write_json_atomic(manifest, out / MANIFEST)
    pending = sorted((t for t in tasks if not task_done(out, t)), key=_expected_cost, reverse=True)
    result = RunResult(out, skipped=[t.task_id for t in tasks if t not in pending])
    _drive(BACKENDS[backend](pending, out, n_workers, progress), len(pending), progress, scenario.name)
    result.ran = [t.task_id for t in pending]
    summary = merge_results(out, tasks)
    result.seconds = time.perf_counter() - started
    manifest.update(
        status="complete",
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        timings={
            "wall_s": result.seconds,
            "tasks_run": len(result.ran),
            "tasks_skipped": len(result.skipped),
            "task_wall_s": dict(zip(summary["task"], summary["wall_time_s"].astype(float), strict=True)),
            "task_train_s": dict(zip(summary["task"], summary["train_time_s"].astype(float), strict=True)),
        },
    )
    write_json_atomic(manifest, out / MANIFEST)
    return result


def _drive(results: Iterator[dict[str, Any]], total: int, progress: bool, name: str) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=f"run {name}", unit="task", disable=not progress or total == 0) as bar:
        for _ in results:
            bar.update(1)


def merge_results(out_dir: Path, tasks: Sequence[Task]) -> pd.DataFrame:
    """Concatenate the tasks' files (in task order) into windows.parquet and summary.parquet."""
    folder = out_dir / TASKS_DIR
    missing = [t.task_id for t in tasks if not task_done(out_dir, t)]
    if missing:
        raise RunError(f"cannot merge: {len(missing)} task(s) unfinished, e.g. {missing[:3]}; rerun to resume")
    frames = {kind: [] for kind in ("windows", "summary")}
    for task in tasks:
        for kind, parts in frames.items():
            frame = pd.read_parquet(folder / f"{task.task_id}.{kind}.parquet")
            frame.insert(0, "task", task.task_id)
            parts.append(frame)
    windows = pd.concat(frames["windows"], ignore_index=True)
    summary = pd.concat(frames["summary"], ignore_index=True)
    write_parquet_atomic(windows, out_dir / WINDOWS)
    write_parquet_atomic(summary, out_dir / SUMMARY)
    return summary


def load_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a run directory."""
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        raise RunError(f"{run_dir} holds no {MANIFEST}: not a BubbleGym run directory")
    return json.loads(path.read_text())
