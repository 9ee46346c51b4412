"""A registry of runs that have started and not completed, for `forge status`.

One small JSON file per run under $FORGE_HOME/runs (default ~/.cache/forge),
so concurrent runs never write the same file.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from forge.home import forge_home
from forge.run.files import atomic_write_json, read_json


def _entry(run_root: Path) -> Path:
    key = hashlib.sha1(str(run_root.resolve()).encode()).hexdigest()[:16]
    return forge_home() / "runs" / f"{key}.json"


def register(run_root: Path, **info: Any) -> None:
    atomic_write_json(
        _entry(run_root),
        {"run_dir": str(run_root.resolve()), "status": "incomplete", "updated": time.time(), **info},
    )


def unregister(run_root: Path) -> None:
    _entry(run_root).unlink(missing_ok=True)


def incomplete_runs() -> list[dict[str, Any]]:
    folder = forge_home() / "runs"
    entries = (read_json(p) for p in sorted(folder.glob("*.json"))) if folder.is_dir() else ()
    return [e for e in entries if e]
