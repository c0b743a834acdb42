"""Atomic writes: a file is either its old content or its whole new content, never half of it.

Every writer of the project goes through `atomic_write`: the content goes to a temporary file
with a unique name beside the target (two writers of one path never share a temporary), then
`os.replace` puts it in place. With `durable`, the file and its folder are fsynced too, so the
write survives a power loss (checkpoints, reports, done markers).
"""
from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["AtomicTarget", "atomic_write", "atomic_write_json", "atomic_write_text", "fsync_folder",
           "remove_stale_temporaries", "temporary_path"]


def temporary_path(path: str | Path) -> Path:
    """A unique hidden name beside `path` for its temporary file, `.name.<pid>-<random>.tmp<suffix>`
    (the suffix kept: encoders pick the format from it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


#: a temporary file's name: `.name.<pid>-<8 hex>.tmp<suffix>` (`temporary_path`)
_TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp(\.[^.]*)?$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files under `folder` whose writer is gone (its process no longer
    exists): what a process killed mid-write leaves. Returns what was removed."""
    removed = []
    for path in Path(folder).rglob(".*.tmp*"):
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def fsync_folder(folder: str | Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


class AtomicTarget:
    """A file written under `temporary` (a unique name beside `path`) and moved to `path` by
    `commit()`, or removed by `discard()`: for a writer that streams its content over time (an
    encoder). `durable`: `commit` fsyncs the file before the move and its folder after it."""

    def __init__(self, path: str | Path, durable: bool = False):
        self.path = Path(path)
        self.temporary = temporary_path(self.path)
        self.durable = durable

    def commit(self) -> Path:
        if self.durable:
            with open(self.temporary, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(self.temporary, self.path)
        if self.durable:
            fsync_folder(self.path.parent)
        return self.path

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Path], Any], durable: bool = False) -> Path:
    """Call `write(temporary)` to write the content, then move it to `path` atomically.

    `durable`: fsync the file before the move and its folder after it. The temporary file is
    removed when `write` fails. Returns `path`."""
    target = AtomicTarget(path, durable)
    try:
        write(target.temporary)
        return target.commit()
    except BaseException:
        target.discard()
        raise


def atomic_write_text(path: str | Path, text: str, durable: bool = False) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), durable)


def atomic_write_json(path: str | Path, value: Any, durable: bool = False) -> Path:
    """Write `value` as indented JSON (with a final newline) to `path` atomically."""
    return atomic_write_text(path, json.dumps(value, indent=2) + "\n", durable)
