"""Trustworthy runs: checksums, locking, provenance, processes that end, errors in one line.

The process tests start ``python -m experiments.cli run`` on a small scenario with two
workers, freeze it (SIGSTOP to its process group) once a task has finished, and then stop
it the way a person or a scheduler would; every process it started must be gone within a
few seconds. They read ``/proc`` (Linux).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import inspect
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from agents.base import Trainable
from agents.registry import agent_class, agent_names
from experiments import files, runner
from experiments.cli import main
from experiments.runner import (
    RunError,
    RunLock,
    SeedPlan,
    check_finite,
    load_manifest,
    make_tasks,
    remove_temporaries,
    run_scenario,
    write_bytes_atomic,
)
from experiments.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "name": "tiny_safety",
    "description": "a tiny scenario for the runner's safety tests",
    "world": {"preset": "default", "overrides": {"catalog": {"n_items": 200}}},
    "agents": [{"name": "random"}, {"name": "linucb"}],
    "horizon": {"steps": 12, "users": 8},
    "seeds": 2,
    "metrics": {"window": 4},
}
SLOW = {**TINY, "name": "tiny_slow", "horizon": {"steps": 60, "users": 8}, "seeds": 3}
"""Six tasks on two workers: when the first is done, others are still queued or running."""

FIRST = "w000-random-v000-s0"
"""The first task of TINY (sequential runs start with it: no agent trains, so no reordering)."""


def timing_free(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop the columns that measure wall time (never reproducible)."""
    return frame[[c for c in frame.columns if not c.startswith("latency_") and not c.endswith("_time_s")]]


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def done_run(tiny_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "done"
    run_scenario(load_scenario(tiny_file), out, workers=1, progress=False)
    return out


@pytest.fixture
def run_copy(done_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(done_run, copy)
    return copy


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- checksums


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _damage(kind: str, tasks: Path, task: str) -> str:
    """Damage one task's files; return the reason the runner must give (before '; recomputing it')."""
    windows, summary, record = (
        tasks / f"{task}.{name}" for name in ("windows.parquet", "summary.parquet", "done.json")
    )
    recorded = json.loads(record.read_text())["files"]
    if kind == "flipped byte":
        _flip_byte(windows)
        return (
            f"tasks/{task}.windows.parquet does not match its recorded checksum "
            f"(sha256 {recorded['windows']['sha256'][:12]}... recorded, {_sha(windows)[:12]}... found)"
        )
    if kind == "truncated table":
        size = summary.stat().st_size
        _truncate(summary)
        return (
            f"tasks/{task}.summary.parquet has {size // 2} bytes, its done record says {size} (truncated or replaced)"
        )
    if kind == "truncated record":
        _truncate(record)
        return f"its done record tasks/{task}.done.json is unreadable (JSONDecodeError: "
    if kind == "no record":
        record.unlink()
        return f"no done record tasks/{task}.done.json"
    windows.unlink()
    return f"tasks/{task}.windows.parquet is missing"


@pytest.mark.parametrize("kind", ["flipped byte", "truncated table", "truncated record", "no record", "missing table"])
def test_a_damaged_task_is_recomputed_on_resume_and_said_so(
    kind: str, tiny_file: Path, done_run: Path, run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = make_tasks(load_scenario(tiny_file))[1].task_id
    reason = _damage(kind, run_copy / "tasks", victim)
    (run_copy / "summary.parquet").unlink()  # the merged table must be rebuilt from the recomputed task
    before = load_manifest(run_copy)

    resumed = run_scenario(load_scenario(tiny_file), run_copy, workers=1, progress=False)

    err = capsys.readouterr().err
    assert f"bubblegym: task {victim}: {reason}" in err
    assert err.rstrip().endswith("; recomputing it") and err.count("recomputing") == 1
    assert resumed.ran == [victim] and len(resumed.skipped) == 3
    assert runner.task_done(run_copy, make_tasks(load_scenario(tiny_file))[1])
    original = pd.read_parquet(done_run / "summary.parquet")
    pd.testing.assert_frame_equal(timing_free(resumed.summary), timing_free(original))
    # a resumed run keeps its first start, the tasks' own timings, and adds an invocation
    after = load_manifest(run_copy)
    assert after["started"] == before["started"] and len(after["invocations"]) == 2
    kept = {t: s for t, s in before["timings"]["task_wall_s"].items() if t != victim}
    assert {t: after["timings"]["task_wall_s"][t] for t in kept} == kept


# --------------------------------------------------------------------------- manifest


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncate, ": not a readable manifest (truncated or malformed JSON: "),
        (lambda path: path.write_text("[]"), ": not a manifest: a JSON list, not an object; "),
        (
            lambda path: path.write_text('{"format": 2}'),
            ": not a complete manifest: status, scenario, fingerprint missing; ",
        ),
    ],
    ids=["truncated", "a list", "incomplete"],
)
def test_a_bad_manifest_is_an_error_naming_it(
    damage: Callable[[Path], Any], message: str, tiny_file: Path, run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run_copy / "manifest.json"
    damage(path)
    with pytest.raises(RunError) as info:
        run_scenario(load_scenario(tiny_file), run_copy, workers=1, progress=False)
    assert str(info.value).startswith(f"{path}{message}")
    assert main(["report", str(run_copy)]) == 2
    assert capsys.readouterr().err.startswith(f"bubblegym report: {path}{message}")
    forced = run_scenario(load_scenario(tiny_file), run_copy, workers=1, progress=False, force=True)
    assert len(forced.ran) == 4 and load_manifest(run_copy)["status"] == "complete"


def _edit_provenance(change: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(manifest: dict) -> None:
        change(manifest["provenance"]["parts"])
        manifest["provenance"]["fingerprint"] = "f" * 64

    return edit


def _set_fingerprint(manifest: dict) -> None:
    manifest["provenance"]["fingerprint"] = "0" * 64


def _old_format(manifest: dict) -> None:
    manifest["format"] = 1
    del manifest["provenance"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set_fingerprint, "the provenance fingerprint differs (stored 000000000000, now "),
        (
            _edit_provenance(lambda parts: parts.update(worlds="0" * 64)),
            "the resolved world configs (a world default or preset changed) changed since; ",
        ),
        (
            _edit_provenance(lambda parts: parts["versions"].update(numpy="1.0.0")),
            f"package versions (numpy 1.0.0 -> {np.__version__}) changed since; ",
        ),
        (
            _edit_provenance(lambda parts: parts["code"].update(commit="0123456789abcdef", dirty=True)),
            "the code (commit 0123456789ab with local changes then, ",
        ),
        (
            _edit_provenance(lambda parts: parts.update(agents="0" * 64)),
            "the resolved agent parameters (an agent default changed) changed since; ",
        ),
        (_old_format, "has format 1 without a provenance fingerprint (this runner writes format 2); "),
    ],
    ids=["fingerprint", "world default", "package version", "code", "agent default", "old format"],
)
def test_results_of_another_setup_are_never_mixed_without_force(
    edit: Callable[[dict], None], message: str, tiny_file: Path, run_copy: Path
) -> None:
    manifest = json.loads((run_copy / "manifest.json").read_text())
    edit(manifest)
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    (run_copy / "tasks" / f"{FIRST}.done.json").unlink()  # one task to compute: it would mix without the check
    before = (run_copy / "summary.parquet").read_bytes()
    with pytest.raises(RunError) as info:
        run_scenario(load_scenario(tiny_file), run_copy, workers=1, progress=False)
    text = str(info.value)
    assert message in text
    assert text.endswith("choose another --out, or pass --force to replace them")
    assert (run_copy / "summary.parquet").read_bytes() == before
    assert not (run_copy / "tasks" / f"{FIRST}.done.json").exists()
    forced = run_scenario(load_scenario(tiny_file), run_copy, workers=1, progress=False, force=True)
    assert len(forced.ran) == 4  # replaced, not mixed
    current = runner.build_manifest(
        load_scenario(tiny_file), make_tasks(load_scenario(tiny_file)), backend="local", workers=1
    )
    assert load_manifest(run_copy)["provenance"] == current["provenance"]


def test_rerunning_a_finished_run_rewrites_nothing(
    tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "finished"
    args = ["run", str(tiny_file), "--out", str(out), "--workers", "1", "--seeds", "1", "--quiet"]
    assert main([*args, "--no-report"]) == 0
    (out / "report.html").write_text("the report of the first run")  # (drawing a real one takes seconds)
    files = ("manifest.json", "summary.parquet", "windows.parquet", "report.html")

    def state() -> dict[str, tuple[bytes, int]]:
        return {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in files}

    before = state()
    capsys.readouterr()
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "ran 0 task(s), 2 already done" in text
    assert (
        f"report unchanged: {out / 'report.html'} (the run was complete; `bubblegym report {out}` rewrites it)" in text
    )
    assert state() == before  # the manifest keeps its timings; nothing is rewritten
    manifest = load_manifest(out)
    assert len(manifest["invocations"]) == 1 and manifest["timings"]["wall_s"] == manifest["invocations"][0]["wall_s"]


# --------------------------------------------------------------------------- files


def test_files_are_fsynced_around_the_rename(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_bytes_atomic(b"data", tmp_path / "f.bin")
    assert events == ["fsync file", "rename", "fsync directory"]
    assert (tmp_path / "f.bin").read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_runner_removes_only_its_own_temporaries(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    mine = tmp_path / "tasks" / f".a.parquet.tmp-{os.getpid()}-77-abcd"
    theirs = tmp_path / "tasks" / ".a.parquet.tmp-999999-77-abcd"
    for path in (mine, theirs):
        path.write_bytes(b"x")
    remove_temporaries(tmp_path, owner=os.getpid())
    assert not mine.exists() and theirs.exists()
    name = files.temporary_name("manifest.json")
    assert name.startswith(f".manifest.json.tmp-{os.getpid()}-{os.getpid()}-")


def test_a_locked_directory_is_refused_naming_the_holder(tiny_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    with RunLock(out), pytest.raises(RunError) as info:
        run_scenario(load_scenario(tiny_file), out, workers=1, progress=False)
    assert str(info.value).startswith(
        f"{out} is in use by another runner (pid {os.getpid()} on {socket.gethostname()}, since "
    )
    assert str(info.value).endswith("; wait for it to finish or stop it, then rerun")
    assert (out / ".lock").read_text() == ""  # released and emptied
    assert len(run_scenario(load_scenario(tiny_file).with_seeds(1), out, workers=1, progress=False).ran) == 2


def test_a_foreign_directory_gets_no_lock_file(tiny_file: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="is not empty and holds no BubbleGym manifest"):
        run_scenario(load_scenario(tiny_file), tmp_path, workers=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# --------------------------------------------------------------------------- errors in one line


def _fail_fsync_of(fragment: str, code: int) -> Callable[[int], None]:
    real = os.fsync

    def fsync(fd: int) -> None:
        if fragment in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(code, os.strerror(code))
        real(fd)

    return fsync


def _no_memory(*args: Any, **kwargs: Any) -> Any:
    raise MemoryError


@pytest.mark.parametrize(
    ("target", "replacement", "line"),
    [
        (
            "os.fsync",
            _fail_fsync_of(".windows.parquet.tmp-", errno.ENOSPC),
            "task {first}: {out}/tasks/{first}.windows.parquet: No space left on device",
        ),
        ("os.fsync", _fail_fsync_of("manifest.json.tmp-", errno.EROFS), "{out}/manifest.json: Read-only file system"),
        (
            "experiments.metrics.metrics_tables",
            _no_memory,
            "task {first}: out of memory (MemoryError) while running it",
        ),
        (None, None, "{out}: Not a directory"),
    ],
    ids=["full disk in a task", "read-only manifest", "out of memory", "out under a file"],
)
def test_file_system_and_memory_errors_end_with_code_2_and_one_line(
    target: str | None,
    replacement: Any,
    line: str,
    tiny_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd")
    out = tmp_path / "run"
    if target is None:
        (tmp_path / "file").write_text("a file, not a directory")
        out = tmp_path / "file" / "run"
    else:
        monkeypatch.setattr(target, replacement)
    assert main(["run", str(tiny_file), "--out", str(out), "--workers", "1", "--quiet"]) == 2
    assert capsys.readouterr().err == f"bubblegym run: {line.format(out=out, first=FIRST)}\n"
    if target is not None:
        assert not list(out.rglob(".*.tmp-*"))  # the runner removed its temporaries


# --------------------------------------------------------------------------- metrics guard


def _trajectory(steps: int = 5, users: int = 3, k: int = 2) -> SimpleNamespace:
    return SimpleNamespace(
        records={
            "reward": np.ones((steps, users), dtype=np.float32),
            "propensity": np.full((steps, users, k), 0.5),
            "predicted": np.full((steps, users, k), np.nan),
            "click": np.zeros((steps, users), dtype=np.int64),
        },
        latency=np.full(steps, 1e-3),
        initial_interest=np.zeros((users, 4)),
        centroids=np.zeros((3, 4)),
    )


def _put(path: tuple[str, ...], index: tuple[int, ...], value: float) -> Callable[[SimpleNamespace], None]:
    def edit(traj: SimpleNamespace) -> None:
        array = traj.records[path[1]] if path[0] == "records" else getattr(traj, path[0])
        array[index] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _put(("records", "reward"), (3, 2), np.nan),
            "non-finite value nan in trajectory record 'reward' at step 3 (user 2)",
        ),
        (
            _put(("records", "propensity"), (0, 1, 0), np.inf),
            "non-finite value inf in trajectory record 'propensity' at step 0 (user 1)",
        ),
        (
            _put(("records", "predicted"), (1, 0, 1), -np.inf),
            "non-finite value -inf in trajectory record 'predicted' at step 1 (user 0)",
        ),
        (_put(("latency",), (4,), np.nan), "non-finite value nan in trajectory latency at step 4"),
        (_put(("centroids",), (1, 0), np.inf), "non-finite value inf in trajectory centroids at index (1, 0)"),
        (_put(("records", "predicted"), (2, 2, 0), np.nan), None),  # NaN = no prediction: allowed
        (lambda traj: None, None),
    ],
    ids=["reward nan", "propensity inf", "predicted -inf", "latency nan", "centroids inf", "predicted nan", "finite"],
)
def test_the_metrics_guard_names_task_step_and_record(
    edit: Callable[[SimpleNamespace], None], message: str | None
) -> None:
    traj = _trajectory()
    edit(traj)
    if message is None:
        check_finite(traj, "t")
        return
    with pytest.raises(RunError) as info:
        check_finite(traj, "w000-x-v000-s0")
    assert str(info.value) == f"task w000-x-v000-s0: {message}; metrics need finite numbers"


def test_a_non_finite_trajectory_stops_the_task_before_metrics(
    tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module("experiments.rollout")
    real = module.rollout

    def poisoned(*args: Any, **kwargs: Any) -> Any:
        traj = real(*args, **kwargs)
        traj.records["reward"][2, 1] = np.nan
        return traj

    monkeypatch.setattr(module, "rollout", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(
        RunError,
        match=re.escape(f"task {FIRST}: non-finite value nan in trajectory record 'reward' at step 2 (user 1)"),
    ):
        run_scenario(load_scenario(tiny_file), out, workers=1, progress=False)
    assert not list((out / "tasks").glob("*"))


# --------------------------------------------------------------------------- Trainable


def test_trainable_is_the_declared_capability_of_the_agents_that_train() -> None:
    trainable = {name for name in agent_names() if issubclass(agent_class(name), Trainable)}
    assert trainable == {"a2c", "dqn", "ppo", "reinforce", "slateq", "slateq_neural"}
    for name in trainable:  # the runner's call binds to every trainable agent's signature
        inspect.signature(agent_class(name).train).bind(object(), None, total_timesteps=1, seed=0)


def test_the_runner_trains_through_the_protocol(tiny_file: Path) -> None:
    from agents import make_agent
    from simenv import WorldSpec

    scenario = load_scenario(tiny_file)
    config = scenario.world_config({})
    plan = SeedPlan.from_seed(0)
    calls: list[tuple[Any, int, int]] = []

    class Learner:
        def train(self, env_or_config: Any, total_timesteps: int, seed: int) -> None:
            calls.append((env_or_config, total_timesteps, seed))

    assert isinstance(Learner(), Trainable)
    assert runner._train_if_needed(Learner(), scenario, 50, config, plan) >= 0.0
    assert calls == [(config, 50, plan.training_seed % 2**31)]
    assert (
        runner._train_if_needed(make_agent("random", WorldSpec.from_config(config)), scenario, 50, config, plan) == 0.0
    )


# --------------------------------------------------------------------------- processes that end


def _ppid_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                text = (entry / "stat").read_text()
                children.setdefault(int(text[text.rindex(")") + 2 :].split()[1]), []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    children, found, todo = _ppid_map(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _state(pid: int) -> str:
    """The /proc state letter of ``pid`` ("" when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return text[text.rindex(")") + 2]


def _alive(pid: int) -> bool:
    return _state(pid) not in ("", "Z")


def _is_worker(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = 240.0) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` seconds
    (a deadline against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"gave up waiting for {what} after {timeout} s")


@contextlib.contextmanager
def _frozen_runner(scenario_file: Path, out: Path) -> Iterator[subprocess.Popen]:
    """Start ``bubblegym run`` with two workers in its own process group; yield it frozen
    (SIGSTOP to the group) once its first task is done. Kills the group on the way out."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "experiments.cli", "run", str(scenario_file), "--out", str(out)]
    proc = subprocess.Popen(
        [*command, "--workers", "2", "--quiet", "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    try:
        _wait_for(lambda: proc.poll() is not None or list(out.glob("tasks/*.done.json")), "a finished task")
        assert proc.poll() is None, f"the runner ended early: {proc.communicate()[1].decode()}"
        os.killpg(proc.pid, signal.SIGSTOP)  # runner and workers: the run cannot end under the test
        _wait_for(lambda: _state(proc.pid) == "T", "the runner to stop")
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
        proc.communicate(timeout=60)


@pytest.fixture
def slow_file(tmp_path: Path) -> Path:
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads /proc (Linux)")
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(SLOW))
    return path


INTERRUPTED = "bubblegym run: interrupted by {}; finished tasks are kept: rerun the same command to resume"


@pytest.mark.parametrize(
    ("how", "code", "last_line"),
    [
        ("kill -9", -signal.SIGKILL, None),
        ("kill -TERM", 128 + signal.SIGTERM, INTERRUPTED.format("SIGTERM")),
        ("Ctrl-C", 128 + signal.SIGINT, INTERRUPTED.format("SIGINT")),
    ],
    ids=["kill -9", "kill -TERM", "Ctrl-C"],
)
def test_a_stopped_runner_leaves_no_process_behind_and_a_second_runner_is_refused(
    how: str, code: int, last_line: str | None, slow_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    with _frozen_runner(slow_file, out) as proc:
        family = _descendants(proc.pid)
        assert len([pid for pid in family if _is_worker(pid)]) == 2
        # while it holds the directory, a second runner is refused, naming it
        assert main(["run", str(slow_file), "--out", str(out), "--quiet", "--workers", "1"]) == 2
        refusal = capsys.readouterr().err
        assert refusal.startswith(
            f"bubblegym run: {out} is in use by another runner (pid {proc.pid} on {socket.gethostname()}, since "
        )
        if how == "Ctrl-C":
            os.killpg(proc.pid, signal.SIGINT)  # a terminal signals the whole foreground group
        else:
            os.kill(proc.pid, signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
        _, stderr = proc.communicate(timeout=120)  # returns only once nothing holds its output
    assert proc.returncode == code
    if last_line is not None:
        text = stderr.decode()
        assert text.strip().splitlines()[-1] == last_line and "Traceback" not in text
    _wait_for(lambda: not [pid for pid in family if _alive(pid)], "the workers and the resource tracker to exit", 10)
    if how != "kill -9":  # a killed runner cannot clean up: the next one does (holding the lock)
        assert not list(out.rglob(f".*.tmp-{proc.pid}-*"))


def test_a_worker_that_dies_is_reported_with_its_task(slow_file: Path, tmp_path: Path) -> None:
    with _frozen_runner(slow_file, tmp_path / "run") as proc:
        family = _descendants(proc.pid)
        victim = next(pid for pid in family if _is_worker(pid))
        os.kill(victim, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGCONT)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(
        rf"bubblegym run: task w000-(random|linucb)-v000-s[0-2]: its worker process \(pid {victim}\) died "
        r"\(killed by SIGKILL, e\.g\. by the out-of-memory killer\) while running it; "
        r"finished tasks are kept: rerun to resume",
        lines[0],
    ), lines[0]
    _wait_for(
        lambda: not [pid for pid in family if _alive(pid)], "the other worker and the resource tracker to exit", 10
    )
