"""Small, crash-safe file writes: a reader sees the old file or the new one, never half of one.
Every file forge leaves in a run directory has the modes the user's umask gives a new file
(a teammate reading a teacher run's final model needs that), also where a library wrote
it with tighter ones (transformers 5 saves model.safetensors with 0600)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def umask() -> int:
    """This process's umask, read without changing it (Linux); else set and restored at once."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give `path` (and everything below a directory) the modes of a newly created file or
    directory under the umask: rw-r--r-- / rwxr-xr-x under 022, rw------- / rwx------ under 077."""
    path, mask = Path(path), umask()
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if item.is_symlink():
            continue
        keep = item.stat().st_mode & (stat.S_ISGID | stat.S_ISVTX)  # a shared folder's group and sticky bits
        os.chmod(item, keep | ((0o777 if item.is_dir() else 0o666) & ~mask))


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 is for the temporary name only
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, NotADirectoryError):  # no such file, or a file where a folder should be
        return default


def keep_damaged(path: Path) -> Path:
    """A copy of a damaged file beside it (<name>.damaged), before forge writes the file again."""
    kept = path.with_name(path.name + ".damaged")
    shutil.copyfile(path, kept)
    return kept


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a fully written directory into place (the old one, if any, goes first)."""
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
