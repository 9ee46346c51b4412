"""How a run's config is named: a config file's path, or one point of a sweep, `SWEEP.yaml#label`
(forge/config/sweep.py). Here, without imports, for the readers that must stay light: `forge
status` and the Snakefile's planning."""

from __future__ import annotations

import os

REF = "#"


def split_ref(ref: str) -> tuple[str, str | None]:
    """`SWEEP.yaml#label` -> (SWEEP.yaml, label); a plain path -> (path, None), also one with a
    '#' in a folder's name or in an existing file's name."""
    path, sep, label = str(ref).rpartition(REF)
    if not sep or "/" in label or os.path.isfile(ref):
        return str(ref), None
    return path, label


def point_ref(file: str, label: str) -> str:
    return f"{file}{REF}{label}"
