"""Agent files are data: loading one never runs code from it (:mod:`agents.persist`).

* every registered agent round-trips: same decisions on the same observation and rng, and
  the same decisions again after one more update with the same feedback;
* a crafted pickle, an object array inside an agent file, a tampered SB3 zip and a forged
  VW model header (each shown to run or write when handed to the library that would
  decode it) are refused by ``load`` and nothing they carry runs;
* VW flags from a file or a scenario pass an allow-list: every flag that reads or writes
  files is refused, and nothing is written;
* a file of another agent, another world spec, another format version, a truncated or a
  foreign file gives a :class:`ModelFileError` naming the file and what was expected.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents import Agent, Feedback, ModelFileError, agent_names, make_agent
from agents.bandits import LinUCB
from agents.registry import agent_class
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec

SMALL = {"n_candidates": 10, "slate_size": 2}
SINGLE_ITEM_ONLY = {"dqn"}
GROUND_TRUTH = ("candidate_utility", "best_slate")
SB3_TINY = {
    "ppo": {"n_steps": 8, "batch_size": 16},
    "a2c": {"n_steps": 8},
    "dqn": {"learning_starts": 8, "batch_size": 8},
}


def small_env(name: str = "linucb", users: int = 6) -> RecVectorEnv:
    overrides = {**SMALL, "slate_size": 1} if name in SINGLE_ITEM_ONLY else SMALL
    return RecVectorEnv(users, preset="default", overrides=overrides)


def learned(name: str, steps: int = 4) -> tuple[Agent, RecVectorEnv]:
    """Agent ``name`` after a short rollout on a tiny world (SB3 agents: a tiny training run)."""
    env = small_env(name)
    spec = WorldSpec.from_config(env.config)
    if name in ("ppo", "a2c", "dqn"):
        extra = (
            {"batch_size": 16} if name == "ppo" else {"learning_starts": 8, "batch_size": 8} if name == "dqn" else {}
        )
        agent = make_agent(name, spec, n_envs=4, **({"n_steps": 8} if name != "dqn" else {}), **extra)
        agent.train(env.config, 64, seed=0)
    else:
        agent = make_agent(name, spec)
    rollout(agent, env, steps, np.random.default_rng(1), seed=2)
    return agent, env


def observation(agent: Agent, env: RecVectorEnv, seed: int) -> dict[str, np.ndarray]:
    obs, info = env.reset(seed=seed)
    truth = {key: info[key] for key in GROUND_TRUTH if key in info} if agent.needs_ground_truth else {}
    return {key: np.array(value, copy=True) for key, value in {**obs, **truth}.items()}


def assert_same_decisions(a: Agent, b: Agent, obs: dict[str, np.ndarray], seed: int):
    da, db = a.act(obs, np.random.default_rng(seed)), b.act(obs, np.random.default_rng(seed))
    for field in ("slates", "propensities", "explored", "predicted"):
        x, y = getattr(da, field), getattr(db, field)
        assert (x is None) == (y is None), field
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=field)
    return da, db


# ---------------------------------------------------------------------------- file helpers


def npy_bytes(array: np.ndarray) -> bytes:
    """The .npy encoding of ``array``."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def rewrite(
    path: Path, *, header: Callable[[dict], dict] | None = None, members: dict[str, bytes | None] | None = None
) -> None:
    """Rewrite the zip at ``path``: ``header`` maps header.json; ``members`` replaces, adds or
    (None) removes members."""
    with zipfile.ZipFile(path) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    if header is not None:
        content["header.json"] = json.dumps(header(json.loads(content["header.json"]))).encode()
    for name, value in (members or {}).items():
        if value is None:
            content.pop(name, None)
        else:
            content[name] = value
    path.write_bytes(zip_bytes({k: v for k, v in content.items() if v is not None}))


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", agent_names())
def test_every_agent_round_trips(name: str, tmp_path: Path) -> None:
    agent, env = learned(name)
    path = tmp_path / f"{name}.agent"
    agent.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    loaded = type(agent).load(path, spec=agent.spec)
    generic = Agent.load(path)
    assert type(loaded) is type(agent) and type(generic) is type(agent)
    assert loaded.params == agent.params and loaded.spec == agent.spec
    obs = observation(agent, env, seed=9)
    da, db = assert_same_decisions(agent, loaded, obs, seed=7)
    # one more update with the same feedback: the whole learned state came back
    b = obs["user"].shape[0]
    feedback = Feedback(clicks=np.arange(b) % 3 - 1, rewards=np.linspace(0.5, 3.0, b))
    agent.update(obs, da, feedback)
    loaded.update(obs, db, feedback)
    assert_same_decisions(agent, loaded, observation(agent, env, seed=10), seed=8)


def test_sb3_optimizer_state_and_counters_come_back(tmp_path: Path) -> None:
    agent, _ = learned("ppo")
    agent.save(tmp_path / "ppo.agent")
    loaded = agent_class("ppo").load(tmp_path / "ppo.agent")
    want, got = agent.model.policy.optimizer.state_dict(), loaded.model.policy.optimizer.state_dict()
    assert want["state"] and sorted(want["state"]) == sorted(got["state"])
    for index, slots in want["state"].items():
        for key, value in slots.items():
            np.testing.assert_array_equal(value.numpy(), got["state"][index][key].numpy(), err_msg=f"{index}.{key}")
    assert loaded.model.num_timesteps == agent.model.num_timesteps > 0
    assert loaded.model._n_updates == agent.model._n_updates > 0
    assert loaded.trained and loaded.training == agent.training


def test_an_agent_file_is_a_zip_of_json_and_npy(tmp_path: Path) -> None:
    agent, _ = learned("linucb")
    agent.save(tmp_path / "a")
    with zipfile.ZipFile(tmp_path / "a") as archive:
        header = json.loads(archive.read("header.json"))
    assert header["format"] == "bubblegym-agent" and header["format_version"] == 1
    assert header["agent"] == "linucb" and header["spec"]["n_candidates"] == 10
    assert header["state"] == {"model.n_rows": agent.model.n_rows}
    with np.load(tmp_path / "a", allow_pickle=False) as npz:  # numpy opens it as an npz too
        np.testing.assert_array_equal(npz["arrays/model.A"], agent.model.A)


# ---------------------------------------------------------------------------- code in files


class Payload:
    """Unpickling this opens (creates) ``marker`` for writing: a stand-in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


LOADERS = [Agent.load, LinUCB.load, agent_class("vw").load, agent_class("ppo").load]


@pytest.mark.parametrize("load", LOADERS, ids=lambda f: f.__self__.__name__)
def test_a_crafted_pickle_is_refused_without_running(load: Callable, tmp_path: Path) -> None:
    marker, path = tmp_path / "marker", tmp_path / "agent.pkl"
    path.write_bytes(pickle.dumps(Payload(marker)))
    pickle.loads(path.read_bytes()).close()  # the payload is live: pickle runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ModelFileError, match=re.escape(f"{path}: not a readable BubbleGym agent file")):
        load(path)
    assert not marker.exists()


def test_an_object_array_in_an_agent_file_is_refused_without_running(tmp_path: Path) -> None:
    marker, path = tmp_path / "marker", tmp_path / "agent"
    make_agent("linucb", WorldSpec.from_config(small_env().config)).save(path)
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    rewrite(path, members={"arrays/model.A.npy": evil.read_bytes()})
    with pytest.raises(ModelFileError, match=re.escape("array 'model.A' is not a plain numpy array")):
        Agent.load(path)
    assert not marker.exists()


def tampered_sb3_zip(tmp_path: Path, marker: Path) -> Path:
    """An SB3 zip whose JSON ``data`` holds a cloudpickled payload (SB3's own encoding)."""
    import cloudpickle

    agent = make_agent("ppo", WorldSpec.from_config(small_env().config), n_envs=2, n_steps=8, batch_size=16)
    path = tmp_path / "model.zip"
    agent.ensure_model().save(path)
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    blob = base64.b64encode(cloudpickle.dumps(Payload(marker))).decode()
    data["marker"] = {":type:": "<class 'object'>", ":serialized:": blob}
    rewrite(path, members={"data": json.dumps(data).encode()})
    return path


def test_a_tampered_sb3_zip_is_refused_without_running(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    marker = tmp_path / "marker"
    path = tampered_sb3_zip(tmp_path, marker)
    PPO.load(path, device="cpu")  # the payload is live: SB3's loader runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ModelFileError, match=re.escape(f"{path}: not a BubbleGym agent file: no header.json")):
        agent_class("ppo").load(path)
    assert not marker.exists()
    # an agent file carrying the same SB3 member: refused, the member never read
    agent_file = tmp_path / "agent"
    make_agent("ppo", WorldSpec.from_config(small_env().config), n_envs=2).save(agent_file)
    with zipfile.ZipFile(path) as archive:
        rewrite(agent_file, members={"data": archive.read("data")})
    with pytest.raises(ModelFileError, match=re.escape("unexpected members ['data']")):
        Agent.load(agent_file)
    assert not marker.exists()


# ---------------------------------------------------------------------------- VW flags

REFUSED_FLAGS = [
    ("-f model.vw", "flag '-f' is not allowed"),
    ("-i model.vw", "flag '-i' is not allowed"),
    ("-d data.txt", "flag '-d' is not allowed"),
    ("-c", "flag '-c' is not allowed"),
    ("-p predictions.txt", "flag '-p' is not allowed"),
    ("-r raw.txt", "flag '-r' is not allowed"),
    ("--readable_model out.txt", "flag '--readable_model' is not allowed"),
    ("--readable_model=out.txt", "flag '--readable_model' is not allowed"),
    ("--invert_hash out.txt", "flag '--invert_hash' is not allowed"),
    ("--audit_regressor out.txt", "flag '--audit_regressor' is not allowed"),
    ("--cache_file out.cache", "flag '--cache_file' is not allowed"),
    ("--final_regressor out.vw", "flag '--final_regressor' is not allowed"),
    ("--initial_regressor in.vw", "flag '--initial_regressor' is not allowed"),
    ("--data data.txt", "flag '--data' is not allowed"),
    ("--predictions out.txt", "flag '--predictions' is not allowed"),
    ("--raw_predictions out.txt", "flag '--raw_predictions' is not allowed"),
    ("--output_feature_regularizer_binary out", "flag '--output_feature_regularizer_binary' is not allowed"),
    ("--output_feature_regularizer_text out", "flag '--output_feature_regularizer_text' is not allowed"),
    ("--input_feature_regularizer in", "flag '--input_feature_regularizer' is not allowed"),
    ("--dictionary a:dict.txt", "flag '--dictionary' is not allowed"),
    ("--dictionary_path .", "flag '--dictionary_path' is not allowed"),
    ("--feature_mask mask.vw", "flag '--feature_mask' is not allowed"),
    ("--daemon", "flag '--daemon' is not allowed"),
    ("--port 26542", "flag '--port' is not allowed"),
    ("--pid_file out.pid", "flag '--pid_file' is not allowed"),
    ("--id x", "flag '--id' is not allowed"),
    ("--adaptive data.txt", "'data.txt' is not a flag"),
    ("--bag two", "--bag takes an integer >= 0; got 'two'"),
    ("--bag", "--bag takes an integer >= 0; got None"),
    ("--adaptive=1", "--adaptive takes no value; got '1'"),
    ("-q u", "-q takes 2 namespace letters (or ':'); got 'u'"),
    ("--cb_type evil", "--cb_type takes one of ['ips', 'dm', 'dr', 'mtr', 'sm']; got 'evil'"),
]


@pytest.mark.parametrize(("extra_args", "message"), REFUSED_FLAGS, ids=[f for f, _ in REFUSED_FLAGS])
def test_vw_flags_that_touch_files_are_refused(extra_args: str, message: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = WorldSpec.from_config(small_env("vw").config)
    with pytest.raises(ValueError, match=re.escape(f"vw.extra_args: {message}")) as err:
        make_agent("vw", spec, extra_args=extra_args)
    if "is not" in message:
        assert "allowed: --adaptive --bag" in str(err.value)  # the list of what is allowed
    assert list(tmp_path.iterdir()) == []


def test_vw_interactions_are_namespace_pairs_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = WorldSpec.from_config(small_env("vw").config)
    with pytest.raises(ValueError, match=re.escape("vw.interactions: -q takes 2 namespace letters (or ':'); got '--")):
        make_agent("vw", spec, interactions="ua --readable_model out.txt")
    assert list(tmp_path.iterdir()) == []


def test_allowed_vw_flags_reach_vw(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = small_env("vw")
    extra = "--l2 1e-6 --power_t=0.5 -b 18 --adaptive --normalized --cb_min_cost -1 --quadratic aa --save_resume"
    agent = make_agent("vw", WorldSpec.from_config(env.config), extra_args=extra)
    rollout(agent, env, 2, np.random.default_rng(0), seed=0)
    args = agent._ws.get_arguments()  # every flag VW took, as one string
    assert all(flag in args for flag in ("--l2", "--bit_precision 18", "--quadratic aa", "--cb_min_cost -1"))
    assert list(tmp_path.iterdir()) == []


def test_a_vw_header_naming_a_file_flag_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    agent, _ = learned("vw_epsilon")
    path, target = tmp_path / "vw.agent", tmp_path / "written.txt"
    agent.save(path)
    rewrite(path, header=lambda h: {**h, "params": {**h["params"], "extra_args": f"--readable_model {target}"}})
    with pytest.raises(ModelFileError, match=re.escape(f"{path}: the saved parameters of 'vw_epsilon' are refused")):
        Agent.load(path)
    with pytest.raises(ModelFileError, match=re.escape("flag '--readable_model' is not allowed")):
        Agent.load(path)
    assert not target.exists()


# A VW model file stores flags (and an id) that VW turns into command-line options when it
# loads the model, guarded by a checksum anyone can recompute: VW's chained MurmurHash3.


def murmur3_32(data: bytes, seed: int) -> int:
    """MurmurHash3 x86 32-bit (Appleby), VW's ``uniform_hash``."""
    mask, c1, c2 = 0xFFFFFFFF, 0xCC9E2D51, 0x1B873593

    def scramble(k: int) -> int:
        k = (k * c1) & mask
        return (((k << 15) | (k >> 17)) & mask) * c2 & mask

    h, blocks = seed, len(data) // 4
    for (k,) in struct.iter_unpack("<I", data[: 4 * blocks]):
        h ^= scramble(k)
        h = ((((h << 13) | (h >> 19)) & mask) * 5 + 0xE6546B64) & mask
    if tail := data[4 * blocks :]:
        h ^= scramble(int.from_bytes(tail, "little"))
    h ^= len(data)
    for shift, factor in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = ((h ^ (h >> shift)) * factor) & mask
    return h ^ (h >> 16)


def forge_vw_model(model: bytes, *, flags: str = "", model_id: str = "") -> bytes:
    """``model`` with ``flags`` appended to its stored flags and its id set, checksum fixed."""
    at, chunks = 0, []

    def take(n: int) -> bytes:
        nonlocal at
        at += n
        return model[at - n : at]

    def u32(raw: bytes) -> int:
        return struct.unpack("<I", raw)[0]

    version = take(4)
    version += take(u32(version))
    take(u32(take(4)))  # the id, replaced
    chunks += [struct.pack("<I", len(model_id) + 1), model_id.encode() + b"\0"]
    chunks += [take(1), take(4), take(4), take(4), take(4)]
    for _ in range(2):  # ngram and skip definitions
        count = take(4)
        chunks += [count, *(take(3) for _ in range(u32(count)))]
    stored = take(u32(take(4)))
    stored = stored[:-1] + flags.encode() + b"\0"
    chunks += [struct.pack("<I", len(stored)), stored]
    take(8)  # the old checksum (length 4 + value)
    h = 0
    for chunk in chunks:  # VW hashes each read after the version, chained
        h = murmur3_32(chunk, h) if chunk else h
    return version + b"".join(chunks) + struct.pack("<II", 4, h) + model[at:]


@pytest.mark.parametrize(
    ("forgery", "message"),
    [
        (
            {"flags": " --readable_model {target}"},
            "the VW model's stored flags: flag '--readable_model' is not allowed",
        ),
        ({"model_id": "x --readable_model {target}"}, "the VW model has an id 'x --readable_model"),
    ],
    ids=["stored-flags", "id"],
)
def test_a_forged_vw_model_header_is_refused_and_writes_nothing(forgery: dict, message: str, tmp_path: Path) -> None:
    from vowpalwabbit import pyvw

    agent, _ = learned("vw")
    path, target = tmp_path / "vw.agent", tmp_path / "written.txt"
    agent.save(path)
    with zipfile.ZipFile(path) as archive, archive.open("arrays/vw_model.npy") as f:
        model = np.lib.format.read_array(f, allow_pickle=False).tobytes()
    forged = forge_vw_model(model, **{key: value.format(target=target) for key, value in forgery.items()})
    raw = tmp_path / "forged.vw"
    raw.write_bytes(forged)
    pyvw.Workspace(f"--quiet -i {raw}").finish()  # the forgery is live: VW itself writes the file
    assert target.exists()
    target.unlink()
    rewrite(path, members={"arrays/vw_model.npy": npy_bytes(np.frombuffer(forged, dtype=np.uint8))})
    with pytest.raises(ModelFileError, match=re.escape(message)):
        Agent.load(path)
    assert not target.exists()


# ---------------------------------------------------------------------------- wrong files

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def other_spec() -> WorldSpec:
    return WorldSpec.from_config(RecVectorEnv(2, preset="default", overrides={"n_candidates": 12}).config)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _header(change: Callable[[dict], dict]) -> Callable[[Path], None]:
    return lambda path: rewrite(path, header=change)


def _member(name: str, content: bytes | None) -> Callable[[Path], None]:
    return lambda path: rewrite(path, members={name: content})


WRONG_FILES = [
    # (id, change to a saved linucb file, loader, expected message with {path})
    ("missing", lambda p: p.unlink(), LinUCB.load, "{path}: no such agent file"),
    ("truncated", _truncate, LinUCB.load, "{path}: not a readable BubbleGym agent file"),
    ("png", lambda p: p.write_bytes(PNG), LinUCB.load, "{path}: not a readable BubbleGym agent file"),
    (
        "foreign-zip",
        lambda p: p.write_bytes(zip_bytes({"a.txt": b"hi"})),
        Agent.load,
        "{path}: not a BubbleGym agent file: no header.json among its members ['a.txt']",
    ),
    ("header-not-json", _member("header.json", b"{oops"), Agent.load, "{path}: header.json is not JSON"),
    (
        "version",
        _header(lambda h: {**h, "format_version": 2}),
        Agent.load,
        "{path}: agent file format version 2; this BubbleGym reads version 1",
    ),
    (
        "format",
        _header(lambda h: {**h, "format": "other"}),
        Agent.load,
        "{path}: header.json at format: 'bubblegym-agent' was expected; got 'other'",
    ),
    (
        "no-spec",
        _header(lambda h: {k: v for k, v in h.items() if k != "spec"}),
        Agent.load,
        "{path}: header.json at (top level): 'spec' is a required property",
    ),
    ("unknown-agent", _header(lambda h: {**h, "agent": "nope"}), Agent.load, "{path}: unknown agent 'nope'"),
    (
        "other-agent",
        _header(lambda h: {**h, "agent": "linear_egreedy"}),
        LinUCB.load,
        "{path} holds a 'linear_egreedy' agent (LinearEpsilonGreedy); expected a LinUCB",
    ),
    (
        "bad-param",
        _header(lambda h: {**h, "params": {**h["params"], "alpha": -1.0}}),
        Agent.load,
        "{path}: the saved parameters of 'linucb' are refused: linucb.alpha must be a number in [0.0, inf]; got -1.0",
    ),
    (
        "extra-param",
        _header(lambda h: {**h, "params": {**h["params"], "bogus": 1}}),
        Agent.load,
        "{path}: 'linucb' does not accept the saved parameters ['bogus']",
    ),
    (
        "missing-field",
        _header(lambda h: {**h, "state": {}}),
        Agent.load,
        "{path}: the state of 'linucb' does not fit: state fields: want ['model.A', 'model.A_inv', 'model.b', "
        "'model.n_rows', 'model.theta']; missing ['model.n_rows']",
    ),
    (
        "missing-array",
        _member("arrays/model.A.npy", None),
        Agent.load,
        "{path}: array 'model.A' is listed in header.json but arrays/model.A.npy is missing",
    ),
    ("extra-member", _member("evil.py", b"import os"), Agent.load, "{path}: unexpected members ['evil.py']"),
    (
        "array-shape",
        _member("arrays/model.A.npy", npy_bytes(np.eye(3))),
        Agent.load,
        "{path}: the state of 'linucb' does not fit: state field 'model.A': want shape (28, 28); got (3, 3)",
    ),
    (
        "array-dtype",
        _member("arrays/model.A.npy", npy_bytes(np.eye(3, dtype=np.float32))),
        Agent.load,
        "state field 'model.A': want a float64 array of shape (28, 28); got float32 (3, 3)",
    ),
    (
        "not-npy",
        _member("arrays/model.A.npy", b"not an array"),
        Agent.load,
        "{path}: array 'model.A' is not a plain numpy array: the magic string is not correct",
    ),
]


@pytest.mark.parametrize(("change", "load", "message"), [c[1:] for c in WRONG_FILES], ids=[c[0] for c in WRONG_FILES])
def test_wrong_files_give_named_errors(change: Callable, load: Callable, message: str, tmp_path: Path) -> None:
    path = tmp_path / "linucb.agent"
    agent, _ = learned("linucb", steps=1)
    agent.save(path)
    change(path)
    with pytest.raises(ModelFileError, match=re.escape(message.format(path=path))):
        load(path)


def test_another_world_spec_is_refused(tmp_path: Path) -> None:
    agent, _ = learned("linucb", steps=1)
    agent.save(tmp_path / "a")
    want = other_spec()
    with pytest.raises(ModelFileError, match=re.escape(f"an agent for the world shape {agent.spec}; expected {want}")):
        LinUCB.load(tmp_path / "a", spec=want)


def test_an_unsaveable_state_is_named(tmp_path: Path) -> None:
    agent = make_agent("linucb", WorldSpec.from_config(small_env().config))
    agent.model.n_rows = object()
    with pytest.raises(ModelFileError, match="cannot save linucb state: not a JSON value"):
        agent.save(tmp_path / "a")
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
