"""Atomic writes: a reader never sees half a file, nor half of a folder of files.

Temp names are `.<name>.tmp-<pid>-<8 hex>` beside their target, the pattern the TypeScript side
uses too, so whichever process comes next removes what a killed writer left (its pid is dead).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable, BinaryIO


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


def temp_name(target: Path) -> Path:
    return target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def previous_path(target: Path) -> Path:
    """Where `publish_dir` keeps the version a new one replaced (one step of rollback)."""
    return target.parent / f".{target.name}.prev"


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Call write(f) on a temp file beside `path`, fsync it, then rename it over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same directory so os.replace is a rename within one filesystem (atomic on POSIX).
    tmp = temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dir(target: Path) -> None:
    """A writer killed between `publish_dir`'s two renames leaves no `target`, its previous version
    as `.prev`, and the complete new version under its staging name: finish the publish. (A
    folder the user deleted has no such staging folder, and stays deleted.)"""
    if target.exists() or not previous_path(target).is_dir():
        return
    staged = []
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        m = re.fullmatch(r"\.(.+)\.tmp-(\d+)-[0-9a-f]{8}", p.name)
        if m and m.group(1) == target.name and p.is_dir() and not _pid_alive(int(m.group(2))):
            staged.append(p)
    if staged:
        os.replace(max(staged, key=lambda p: p.stat().st_mtime_ns), target)


def publish_dir(target: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write a whole folder (an expert: config, weights, metadata) so that it appears or changes
    in one step: `write` fills a staging folder beside `target`, which then takes target's place.
    The replaced version is kept as `.<name>.prev` for one step of rollback. Between the two
    renames `target` is briefly absent; a kill there is finished by `recover_dir`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(target)
    staging = temp_name(target)
    staging.mkdir(mode=DIR_MODE)
    try:
        write(staging)
        _fsync_dir(staging)
        if target.exists():
            prev = previous_path(target)
            if prev.exists():
                shutil.rmtree(prev)
            os.replace(target, prev)
        os.replace(staging, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
