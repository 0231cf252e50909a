"""Durable file writes: a file is afterwards either its old self or complete.

Every write goes to a temporary name carrying the writer's (and its runner's) pid, is
fsynced, renamed into place, and its directory is fsynced so the rename persists. Used by
the runner (task files, manifest), the decision-log writer and the verdict files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def describe_os_error(err: OSError) -> str:
    """One line for an ``OSError``: ``"<path>: <reason>"`` (or the error's text if no path)."""
    reason = err.strerror or str(err)
    return f"{err.filename}: {reason}" if err.filename is not None else reason


def temporary_name(name: str, owner: int | None = None) -> str:
    """``.<name>.tmp-<owner pid>-<writer pid>-<random>``: the runner ``owner`` (default this
    process) deletes its own temporaries by their pid."""
    return f".{name}.tmp-{owner or os.getpid()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_bytes_atomic(data: bytes, path: Path, owner: int | None = None) -> None:
    """Write ``data`` to ``path``, which is afterwards either its old self or complete.

    The bytes go to a temporary file (:func:`temporary_name`) in the same directory, which
    is fsynced, renamed over ``path``, and the directory is fsynced (the rename persists).

    Raises:
        OSError: naming ``path`` (not the temporary), e.g. a full or read-only disk.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temporary_name(path.name, owner))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Persist a directory's entries (a rename); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(folder)) from err
    finally:
        os.close(fd)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as a Parquet file's bytes (no index)."""
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_parquet_atomic(frame: pd.DataFrame, path: Path, owner: int | None = None) -> str:
    """Write ``frame`` to ``path`` atomically (:func:`write_bytes_atomic`); return the file's SHA-256 (hex)."""
    data = parquet_bytes(frame)
    write_bytes_atomic(data, path, owner)
    return hashlib.sha256(data).hexdigest()


def write_json_atomic(data: Any, path: Path, owner: int | None = None) -> None:
    """Write JSON atomically (:func:`write_bytes_atomic`)."""
    write_bytes_atomic(json.dumps(data, indent=2, sort_keys=False, default=str).encode(), path, owner)


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
