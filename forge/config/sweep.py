"""Sweeps: one config file fans out into a grid of runs.

    base: 01_kd.yaml
    sweep:
      grid:                                  # every combination of these values
        distillation.alpha: [0.25, 0.75]
        distillation.temperature: [1, 4]
      tied:                                  # values that change together, crossed with the grid
        - training.learning_rate: [1.0e-4, 3.0e-4]
          training.warmup_steps: [0, 20]
      seeds: [1, 2, 3]                       # `seed` of each point; reports aggregate over them
      names: {distillation.temperature: T}   # in run names (default: the key's last part)

Each point is a normal run named `<run_name>__<label>`, e.g. `01_kd__alpha0.25_T1__seed1`; its
config.yaml is its resolved config, as if written by hand. `SWEEP.yaml#<label>` names one point
wherever a config file is expected (`forge --config`, `forge stage`, Snakemake's rules).
Only the sweep block is read to name the points, so a plan of thousands stays cheap; each
point is validated as a whole config before anything runs.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge.config.loader import RawConfig, apply_override, resolved
from forge.errors import ConfigError
from forge.refs import REF, point_ref, split_ref  # noqa: F401 (split_ref: part of this module's interface)

KEY = "sweep"
MAX_POINTS = 10_000
# Keys a sweep may not vary: they name the run, or are its seeds.
FIXED = {"run_name": "every point's run name is derived from it", "seed": "use `seeds: [...]`", KEY: "a sweep"}
# Keys that place a run directory: a sweep's points live side by side, where its file places them.
PLACING = {"output_root", "task.name", "student.name"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Point:
    label: str  # e.g. "alpha0.25_T1__seed1"
    values: dict[str, Any]  # dotted key -> value, `seed` included when the sweep has seeds

    def run_name(self, base: str) -> str:
        return f"{base}__{self.label}"


@dataclass(frozen=True)
class Sweep:
    file: str
    axes: tuple[tuple[tuple[str, ...], list[tuple]], ...]  # (keys, their value rows) per axis
    seeds: tuple[int, ...]
    names: dict[str, str]

    @property
    def keys(self) -> list[str]:
        return [key for keys, _ in self.axes for key in keys]

    def size(self) -> int:
        return math.prod(len(rows) for _, rows in self.axes) * max(1, len(self.seeds))

    def points(self) -> list[Point]:
        points, seen = [], {}
        seeds = self.seeds or (None,)
        for combo in itertools.product(*(rows for _, rows in self.axes)):
            values = dict(_pairs(self.axes, combo))
            label = "_".join(f"{self.names[k]}{_shown(v)}" for k, v in values.items())
            for seed in seeds:
                full = values if seed is None else {**values, "seed": seed}
                name = label if seed is None else f"{label}__seed{seed}" if label else f"seed{seed}"
                if name in seen:
                    raise ConfigError(
                        f"{self.file}: {KEY}: points {_values(seen[name])} and {_values(full)} would both be "
                        f"named {name!r}: give the values distinct spellings"
                    )
                seen[name] = full
                points.append(Point(name, full))
        return points

    @functools.cached_property
    def by_label(self) -> dict[str, Point]:
        return {p.label: p for p in self.points()}

    def point(self, label: str) -> Point:
        if label in self.by_label:
            return self.by_label[label]
        some = ", ".join(list(self.by_label)[:3])
        raise ConfigError(f"{self.file}{REF}{label}: no such point in this sweep (its points are named like {some})")


def _pairs(axes, combo):
    """(key, value) of one combination: each axis' row of values, key by key."""
    for (keys, _), row in zip(axes, combo, strict=True):
        yield from zip(keys, row, strict=True)


def parse(block: Any, file: str) -> Sweep:
    """The sweep block of `file`, checked: one line naming the key for each kind of mistake."""
    where = f"{file}: {KEY}"
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: must be a mapping with grid:, tied: and/or seeds:")
    unknown = sorted(set(map(str, block)) - {"grid", "tied", "seeds", "names"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known keys here: grid, names, seeds, tied)")
    axes: list[tuple[tuple[str, ...], list[tuple]]] = []
    grid = block.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}.grid: must map dotted keys to lists of values")
    for key, values in grid.items():
        axes.append(((_key(key, f"{where}.grid"),), [(v,) for v in _values_of(values, f"{where}.grid.{key}")]))
    tied = block.get("tied") or []
    if not isinstance(tied, list) or not all(isinstance(group, dict) and group for group in tied):
        raise ConfigError(f"{where}.tied: must be a list of mappings, each of dotted keys to equally long lists")
    for i, group in enumerate(tied):
        keys = tuple(_key(k, f"{where}.tied[{i}]") for k in group)
        columns = [_values_of(v, f"{where}.tied[{i}].{k}") for k, v in group.items()]
        if len({len(c) for c in columns}) > 1:
            lengths = ", ".join(f"{k}: {len(c)}" for k, c in zip(keys, columns, strict=True))
            raise ConfigError(f"{where}.tied[{i}]: its lists change together, so they need one length (got {lengths})")
        axes.append((keys, list(zip(*columns, strict=True))))
    keys = [k for ks, _ in axes for k in ks]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"{where}: {twice[0]} is swept twice (grid and tied name it more than once)")
    clash = next(((a, b) for a in keys for b in keys if b.startswith(a + ".")), None)
    if clash:
        raise ConfigError(f"{where}: {clash[0]} and {clash[1]} overlap: sweep the leaf keys only")
    seeds = _seeds(block.get("seeds"), f"{where}.seeds")
    if not axes and not seeds:
        raise ConfigError(f"{where}: sweeps nothing: give grid:, tied: or seeds:")
    sweep = Sweep(file, tuple(axes), seeds, _names(block.get("names"), keys, f"{where}.names"))
    if sweep.size() > MAX_POINTS:
        raise ConfigError(f"{where}: {sweep.size():,} points; a sweep has at most {MAX_POINTS:,}")
    return sweep


def _key(key: Any, where: str) -> str:
    key = str(key)
    parts = key.split(".")
    if not all(parts) or parts[0] in FIXED:
        why = FIXED.get(parts[0], "a dotted key such as training.learning_rate")
        raise ConfigError(f"{where}: {key!r} cannot be swept ({why})")
    if key in PLACING:
        raise ConfigError(
            f"{where}: {key!r} cannot be swept (it places the run directory; a sweep's points live side by side, "
            "named by their values): write one sweep file per value"
        )
    return key


def _values_of(values: Any, where: str) -> list:
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: must be a non-empty list of values")
    for value in values:
        if isinstance(value, dict):
            raise ConfigError(f"{where}: {value!r} is a mapping: sweep its leaf keys instead")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {value} is not a finite number")
    return values


def _seeds(seeds: Any, where: str) -> tuple[int, ...]:
    if seeds is None:
        return ()
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in seeds)
    ):
        raise ConfigError(f"{where}: must be a non-empty list of integers from 0 to 2**32-1 (got {seeds!r})")
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"{where}: a seed appears twice (got {seeds!r})")
    return tuple(seeds)


def _names(given: Any, keys: list[str], where: str) -> dict[str, str]:
    given = given or {}
    if not isinstance(given, dict):
        raise ConfigError(f"{where}: must map swept keys to short names")
    for key, name in given.items():
        if key not in keys:
            raise ConfigError(f"{where}.{key}: not a swept key")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]*", name):
            raise ConfigError(f"{where}.{key}: a short name of letters, digits, '.', '_' or '-' (got {name!r})")
    names = {k: given.get(k, k.rsplit(".", 1)[-1]) for k in keys}
    shared = sorted({n for n in names.values() if list(names.values()).count(n) > 1 and n})
    if shared:
        both = [k for k in keys if names[k] == shared[0]]
        raise ConfigError(f"{where}: {' and '.join(both)} would both be called {shared[0]!r} in run names: name them")
    return names


def _shown(value: Any) -> str:
    """A value as it appears in a run name: numbers exactly (repr), anything else made safe."""
    if value is None:
        return "null"  # as YAML spells them
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "-".join(_shown(v) for v in value)
    return _UNSAFE.sub("-", str(value)).strip("-") or "-"


def _values(values: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in values.items()) + ")"


def of(raw: RawConfig) -> Sweep | None:
    """The sweep of a merged config, or None when it is a single run. Parsed once per block:
    planning loads each of a sweep's points, and each looks itself up among all of them."""
    if KEY not in raw.data:
        return None
    if raw.data[KEY] is None:  # `sweep: null`: a config built on a sweep that is a single run
        del raw.data[KEY]
        return None
    file = raw.setter_of((KEY,))
    key = (file, repr(raw.data[KEY]))
    if key not in _parsed:
        if len(_parsed) > 64:  # a long-lived process reading many sweeps
            _parsed.clear()
        _parsed[key] = parse(raw.data[KEY], file)
    return _parsed[key]


_parsed: dict[tuple[str, str], Sweep] = {}


def apply(raw: RawConfig, sweep: Sweep, point: Point, ref: str) -> RawConfig:
    """`raw` (a sweep's merged config) as the config of one point: the sweep block gone, the
    point's values set (a mistake in them names `ref`), and the point's run name."""
    data = {k: v for k, v in raw.data.items() if k != KEY}
    out = RawConfig(data=copy.deepcopy(data), origin=dict(raw.origin), leaf_file=raw.leaf_file)
    for dotted, value in point.values.items():  # ./paths: resolved against the sweep's file
        apply_override(out, dotted, resolved(value, tuple(dotted.split(".")), Path(sweep.file)), source=ref)
    apply_override(out, "run_name", point.run_name(str(raw.data.get("run_name"))), source=ref)
    return out
