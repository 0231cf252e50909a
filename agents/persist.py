"""The agent file format: data only, so loading a file never runs code from it.

An agent file is one zip archive (what ``numpy.savez`` writes, so ``numpy.load(path,
allow_pickle=False)`` opens it too) with two kinds of members:

* ``header.json``: ``{"format": "bubblegym-agent", "format_version": 1, "agent": NAME,
  "params": {...}, "spec": {...}, "state": {...}, "arrays": [NAMES]}``: the registry name,
  the hyper-parameters, the :class:`simenv.WorldSpec`, the JSON part of the learned state
  (counters, random-generator states, ...) and the names of the array part;
* ``arrays/NAME.npy``: one numpy array per name, read with ``allow_pickle=False`` (so an
  object array, the one npy payload that would unpickle, is refused).

Nothing is unpickled: the header is JSON, checked against :data:`HEADER_SCHEMA`, and the
arrays are plain numbers. An agent says what its state is (:meth:`agents.base.Agent.get_state`:
arrays and JSON values; :func:`export_fields` / :func:`import_fields` cover the common case
of attributes); :meth:`agents.base.Agent.load` rebuilds the agent from its name, parameters
and spec through the registry (so every parameter is validated again) and then puts the
state back. Every problem with a file raises :class:`ModelFileError` naming the file, what
was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simenv import WorldSpec

FORMAT = "bubblegym-agent"
"""The ``format`` entry of every agent file's header."""

FORMAT_VERSION = 1
"""The layout written (and the only one read) by this version of BubbleGym."""

HEADER = "header.json"
"""The header member of the archive."""

_ARRAY_DIR = "arrays/"
_NAME = re.compile(r"^[A-Za-z0-9_.]+$")

HEADER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "format_version", "agent", "params", "spec", "state", "arrays"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": FORMAT},
        "format_version": {"type": "integer"},
        "agent": {"type": "string", "minLength": 1},
        "params": {"type": "object"},
        "spec": {
            "type": "object",
            "required": [f.name for f in dataclasses.fields(WorldSpec)],
            "additionalProperties": False,
            "properties": {f.name: {"type": "integer", "minimum": 0} for f in dataclasses.fields(WorldSpec)},
        },
        "state": {"type": "object", "propertyNames": {"pattern": _NAME.pattern}},
        "arrays": {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": _NAME.pattern}},
    },
}
"""JSON Schema of ``header.json``."""


class ModelFileError(ValueError):
    """An agent file that cannot be loaded: not an agent file, another agent, another world
    spec, another format version, truncated or tampered with."""


@dataclass(frozen=True)
class AgentRecord:
    """What an agent file holds.

    Attributes:
        agent: the registry name.
        params: the hyper-parameters (JSON values).
        spec: the world shape the agent was built for.
        state: learned state by field name: numpy arrays and JSON values.
    """

    agent: str
    params: dict[str, Any]
    spec: WorldSpec
    state: dict[str, Any]


# ---------------------------------------------------------------------------- writing


def write_agent(path: str | Path, record: AgentRecord) -> None:
    """Write ``record`` to ``path`` (exactly that name; replaced atomically).

    Raises:
        ModelFileError: a state value that is neither a numpy array (of numbers) nor a
            JSON value, or a parameter that is not a JSON value.
    """
    path = Path(path)
    arrays = {key: value for key, value in record.state.items() if isinstance(value, np.ndarray)}
    scalars = {key: value for key, value in record.state.items() if key not in arrays}
    for key in record.state:
        if not _NAME.match(key):
            raise ModelFileError(f"cannot save {record.agent}: state field {key!r} must match {_NAME.pattern}")
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "agent": record.agent,
        "params": json_value(record.params, f"{record.agent}.params"),
        "spec": dataclasses.asdict(record.spec),
        "state": json_value(scalars, f"{record.agent} state"),
        "arrays": sorted(arrays),
    }
    for key, value in arrays.items():
        if value.dtype.hasobject:
            raise ModelFileError(f"cannot save {record.agent}: state array {key!r} holds Python objects")
    _write_archive(path, header, arrays)


def _write_archive(path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """The zip of ``header`` and ``arrays`` at ``path``, written to a sibling file first and
    renamed into place (a crash leaves no partial file under ``path``)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(HEADER, json.dumps(header, indent=2))
            for key, value in sorted(arrays.items()):
                with archive.open(f"{_ARRAY_DIR}{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def json_value(value: Any, where: str) -> Any:
    """``value`` with numpy scalars made Python scalars, checked to be JSON (raises
    :class:`ModelFileError` naming ``where`` otherwise)."""

    def plain(item: Any) -> Any:
        if isinstance(item, np.generic):
            return item.item()
        raise TypeError(f"{type(item).__name__} {item!r}")

    try:
        return json.loads(json.dumps(value, default=plain))
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"cannot save {where}: not a JSON value ({err})") from None


# ---------------------------------------------------------------------------- reading


def read_agent(path: str | Path) -> AgentRecord:
    """Read an agent file written by :func:`write_agent`.

    Raises:
        ModelFileError: naming ``path`` and the problem: missing, not a zip archive
            (a pickle, an image, a truncated file), no header, a header of another format
            or version, a missing, extra or corrupt array.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such agent file")
    try:
        with zipfile.ZipFile(path) as archive:
            header = _read_header(path, archive)
            state = dict(header["state"])
            state.update(_read_arrays(path, archive, header["arrays"]))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
        raise ModelFileError(
            f"{path}: not a readable BubbleGym agent file (want a zip archive with {HEADER}, format "
            f"{FORMAT!r} version {FORMAT_VERSION}; pickles and stable-baselines3 zips are not read): {err}"
        ) from None
    return AgentRecord(agent=header["agent"], params=header["params"], spec=WorldSpec(**header["spec"]), state=state)


def _read_header(path: Path, archive: zipfile.ZipFile) -> dict[str, Any]:
    names = archive.namelist()
    if HEADER not in names:
        raise ModelFileError(
            f"{path}: not a BubbleGym agent file: no {HEADER} among its members {names[:5]} (want format "
            f"{FORMAT!r} version {FORMAT_VERSION}; pickles and stable-baselines3 zips are not read)"
        )
    try:
        header = json.loads(archive.read(HEADER).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: {HEADER} is not JSON: {err}") from None
    if isinstance(header, dict) and header.get("format") == FORMAT and header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: agent file format version {header.get('format_version')!r}; "
            f"this BubbleGym reads version {FORMAT_VERSION}"
        )
    import jsonschema  # a header is read rarely: keep the import off every agent import

    errors = sorted(jsonschema.Draft202012Validator(HEADER_SCHEMA).iter_errors(header), key=lambda e: e.path)
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(top level)"
        raise ModelFileError(f"{path}: {HEADER} at {where}: {errors[0].message}; got {errors[0].instance!r:.80}")
    members = {f"{_ARRAY_DIR}{key}.npy" for key in header["arrays"]}
    extra = sorted(set(names) - members - {HEADER})
    if extra:
        raise ModelFileError(f"{path}: unexpected members {extra}; want {HEADER} and {sorted(members)}")
    clash = sorted(set(header["arrays"]) & set(header["state"]))
    if clash:
        raise ModelFileError(f"{path}: state fields {clash} are both arrays and JSON values")
    return header


def _read_arrays(path: Path, archive: zipfile.ZipFile, keys: list[str]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    names = set(archive.namelist())
    for key in keys:
        member = f"{_ARRAY_DIR}{key}.npy"
        if member not in names:
            raise ModelFileError(f"{path}: array {key!r} is listed in {HEADER} but {member} is missing")
        try:
            with archive.open(member) as f:
                arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
        except ValueError as err:  # not an npy file, an object array, a short payload
            raise ModelFileError(f"{path}: array {key!r} is not a plain numpy array: {err}") from None
    return arrays


# ---------------------------------------------------------------------------- attribute state


def export_fields(owner: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The state of ``owner`` at the dotted attribute paths ``fields``.

    Arrays stay arrays; a ``numpy.random.Generator`` becomes its bit generator's state (a
    JSON dict); numpy scalars become Python scalars; other values must be JSON values.
    """
    state: dict[str, Any] = {}
    for field in fields:
        value = _get(owner, field)
        if isinstance(value, np.random.Generator):
            value = value.bit_generator.state
        elif isinstance(value, np.generic):
            value = value.item()
        state[field] = value
    return state


def import_fields(owner: Any, state: dict[str, Any], fields: tuple[str, ...], growable: tuple[str, ...] = ()) -> None:
    """Put ``state`` (from :func:`export_fields` of a twin) into ``owner``, a freshly built agent.

    Each value must be of the kind the fresh attribute is: an array of the same dtype and
    shape (for a field in ``growable``, any length along the first axis), a generator state
    of the same bit generator, or a JSON value of the same type.

    Raises:
        ModelFileError: a missing or unknown field, or a value of another kind, dtype or shape.
    """
    missing, extra = sorted(set(fields) - set(state)), sorted(set(state) - set(fields))
    if missing or extra:
        seen = ", ".join(f"{what} {names}" for what, names in (("missing", missing), ("unexpected", extra)) if names)
        raise ModelFileError(f"state fields: want {sorted(fields)}; {seen}")
    for field in fields:
        current, value = _get(owner, field), state[field]
        if isinstance(current, np.random.Generator):
            _set_generator(field, current, value)
            continue
        _check_kind(field, current, value, field in growable)
        parent, _, name = field.rpartition(".")
        setattr(_get(owner, parent) if parent else owner, name, value)


def _get(owner: Any, field: str) -> Any:
    for name in field.split(".") if field else ():
        owner = getattr(owner, name)
    return owner


def _check_kind(field: str, current: Any, value: Any, growable: bool) -> None:
    """Raise :class:`ModelFileError` unless ``value`` can replace ``current``."""
    if isinstance(current, np.ndarray):
        if not isinstance(value, np.ndarray) or value.dtype != current.dtype or value.ndim != current.ndim:
            got = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
            want = f"a {current.dtype} array of shape {current.shape}"
            raise ModelFileError(f"state field {field!r}: want {want}; got {got}")
        same = value.shape[1:] == current.shape[1:] if growable else value.shape == current.shape
        if not same:
            want = f"(any, {', '.join(map(str, current.shape[1:]))})" if growable else str(current.shape)
            raise ModelFileError(f"state field {field!r}: want shape {want}; got {value.shape}")
        return
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,), dict: (dict,), list: (list,)}
    allowed = next((k for t, k in kinds.items() if type(current) is t), None) if current is not None else None
    if allowed is None and current is not None:
        raise TypeError(f"state field {field!r} holds a {type(current).__name__}: not an array or a JSON value")
    ok = (
        value is None
        if current is None
        else isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    )
    if not ok:
        want = "null" if current is None else " or ".join(t.__name__ for t in allowed)
        raise ModelFileError(f"state field {field!r}: want {want}; got {type(value).__name__} {value!r:.80}")


def _set_generator(field: str, generator: np.random.Generator, value: Any) -> None:
    name = type(generator.bit_generator).__name__
    if not isinstance(value, dict) or value.get("bit_generator") != name:
        raise ModelFileError(f"state field {field!r}: want a {name} generator state; got {value!r:.80}")
    try:
        generator.bit_generator.state = value
    except (TypeError, ValueError, KeyError) as err:
        raise ModelFileError(f"state field {field!r}: not a {name} state: {err}") from None
