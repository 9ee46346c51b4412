"""Config loading: inheritance → overrides → strict validation → resolved dict.

    cfg = load_config("configs/classification/mnli/tiny/00_sft.yaml", {"training.max_steps": 10})

Errors are `ConfigError`s with one line per problem, naming file and key.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from forge.config import legacy, sweep
from forge.config.loader import CLI, RawConfig, load_raw
from forge.config.schema import RESUME_SAFE_KEYS, TASK_TYPES, ForgeConfig, rule_violations
from forge.errors import ConfigError

__all__ = [
    "ForgeConfig",
    "load_config",
    "sweep_points",
    "validate",
    "to_dict",
    "config_hash",
    "dump_yaml",
    "diff_configs",
    "RESUME_SAFE_KEYS",
]


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ForgeConfig:
    """Load, merge and validate a config file (or one point of a sweep: `SWEEP.yaml#label`).
    `overrides` use dotted keys."""
    file, label = sweep.split_ref(str(path))
    raw = load_raw(file, overrides)
    raw.data.setdefault("run_name", Path(file).stem)
    return validate(one_run(raw, file, label))


def one_run(raw: RawConfig, file: str, label: str | None) -> RawConfig:
    """The config of one run: `raw` itself, or the point `label` of the sweep `raw` is. A sweep
    without a label, or a label for a single run's config, is a ConfigError."""
    found = sweep.of(raw)
    if found is None and label is not None:
        raise ConfigError(f"{file}#{label}: {file} is not a sweep (it has no `sweep:` block)")
    if found is None:
        return raw
    if label is None:
        raise ConfigError(
            f"{file}: is a sweep of {found.size()} runs: name one as {file}#<point> "
            f"(e.g. {file}#{found.points()[0].label}), or run them all with forge --config {file}"
        )
    return sweep.apply(raw, found, found.point(label), sweep.point_ref(file, label))


def sweep_points(raw: RawConfig, file: str) -> list[tuple[str, ForgeConfig]] | None:
    """Every point of the sweep `raw` (read from `file`) as (its `file#label`, its validated
    config), or None when `raw` is a single run. All points are validated before this returns:
    a ConfigError with one line per problem, each naming the point and the key."""
    found = sweep.of(raw)
    if found is None:
        return None
    raw.data.setdefault("run_name", Path(file).stem)
    unknown = [line for key in found.keys if (line := _unknown_key(key))]
    if unknown:  # once, naming the sweep, not once per point
        raise ConfigError("\n".join(f"{found.file}: {sweep.KEY}: {line}" for line in unknown))
    points, problems = [], {}
    for point in found.points():
        ref = sweep.point_ref(file, point.label)
        try:
            points.append((ref, validate(sweep.apply(raw, found, point, ref))))
        except ConfigError as exc:
            problems.update(dict.fromkeys(str(exc).splitlines()))  # a base's problem: once, not per point
    if problems:
        raise ConfigError("\n".join(problems))
    return points


MAX_NAME = 100  # characters of run_name and student.name in a new config


def validate(raw: RawConfig, check_upstream: bool = True) -> ForgeConfig:
    """The checked config. `check_upstream` (a config a run starts from): the config files of
    the runs this one needs first (student.run, a distilling teacher.run) must exist, and
    names are at most MAX_NAME characters; off for a run's own stored config.yaml, whose
    later stages need no upstream run and whose names were accepted when it began."""
    if legacy.is_old(raw.data.get("task")):  # a task from before tasks were types (forge/config/legacy.py)
        raw.data["task"] = legacy.upgrade(raw.data["task"])
    try:
        cfg = ForgeConfig.model_validate(raw.data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_explain(err, raw) for err in exc.errors())) from None
    problems = rule_violations(cfg)
    for key, name in ((("run_name",), cfg.run_name), (("student", "name"), cfg.student.name)):
        if check_upstream and len(name) > MAX_NAME:
            problems.append((key, f"should have at most {MAX_NAME} characters (got {_cut(repr(name))})"))
    if check_upstream and not problems:
        for role, path in cfg.upstream_runs.items():
            if problem := _upstream_problem(path):
                problems.append(((role, "run"), problem))
    if problems:
        lines = [f"{raw.setter_of(key)}: {'.'.join(key)}: {msg}" for key, msg in problems]
        raise ConfigError("\n".join(lines))
    return cfg


def _upstream_problem(ref: str) -> str | None:
    """Why `ref` (a config file, or a sweep's point `SWEEP.yaml#label`) names no run to train
    first, or None. Only the file and the point's label are checked here: the run's config
    itself is validated when this run is planned or created."""
    file, label = sweep.split_ref(ref)
    if not Path(file).is_file():
        return f"file not found: {file} (the config of the run to train first)"
    if label is not None:
        try:
            one_run(load_raw(file), file, label)  # the sweep's own errors: not a sweep, no such point
        except ConfigError as exc:
            return str(exc).splitlines()[0]
    return None


def _unknown_key(dotted: str) -> str | None:
    """Why the dotted key names no setting of the schema, or None when it does (or leads into a
    free-form mapping)."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        known = _fields_at(ForgeConfig, tuple(parts[:i]))
        if not known:
            return None
        if part not in known:
            hint = difflib.get_close_matches(part, sorted(known), n=1, cutoff=0.6)
            if hint:
                return f"{dotted}: unknown key (did you mean '{'.'.join([*parts[:i], hint[0]])}'?)"
            return f"{dotted}: unknown key (known keys here: {', '.join(sorted(known))})"
    return None


TYPE_NAMES = " or ".join(", ".join(repr(t) for t in TASK_TYPES).rsplit(", ", 1))


def _explain(err: dict[str, Any], raw: RawConfig) -> str:
    loc = tuple(str(p) for p in err["loc"])
    tag = None
    if len(loc) > 1 and loc[0] == "task" and loc[1] in TASK_TYPES:  # pydantic names the union's member
        tag, loc = loc[1], (loc[0], *loc[2:])
    key = ".".join(loc)
    source = raw.source_of(loc) or CLI
    kind = err["type"]
    if kind == "no_data":  # said of the section: the file that took the data away (or named none)
        source = raw.source_of(("task", "dataset")) or raw.source_of(("task", "data_files")) or raw.leaf_file
        return f"{source}: task: {err['msg']}"
    if kind == "union_tag_not_found":
        return (f"{source}: task.type: required key is missing: the kind of task, {TYPE_NAMES} "
                "(task.name is the run's label)")  # fmt: skip
    if kind == "union_tag_invalid":
        got = (err.get("ctx") or {}).get("tag")
        return f"{raw.source_of(('task', 'type')) or CLI}: task.type: Input should be {TYPE_NAMES} (got {got!r})"
    if kind == "extra_forbidden":
        known = sorted(_fields_at(ForgeConfig, loc[:-1], tag))
        hint = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else f" (known keys here: {', '.join(known)})"
        return f"{source}: {key}: unknown key{suggestion}"
    if kind == "missing":
        return f"{source}: {key}: required key is missing"
    value = err.get("input")
    shown = f" (got {_cut(repr(value))})" if not isinstance(value, (dict, list)) else ""
    return f"{source}: {key}: {err['msg']}{shown}"


def _cut(text: str, limit: int = 80) -> str:
    """A value as a message shows it: a long one cut, with its length said."""
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


def _fields_at(model: type[BaseModel], path: tuple[str, ...], task_type: str | None = None) -> set[str]:
    """Names of the fields of the (nested) model found at `path`; under `task`, those of the
    task type `task_type` (None: of any type)."""
    models = [model]
    for part in path:
        found = []
        for current in models:
            field = current.model_fields.get(part)
            if field is None:
                continue
            if current is ForgeConfig and part == "task":
                found.extend([TASK_TYPES[task_type]] if task_type in TASK_TYPES else TASK_TYPES.values())
            elif (sub := _model_in(field.annotation)) is not None:
                found.append(sub)
        if not found:
            return set()
        models = found
    return {name for m in models for name in m.model_fields}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def to_dict(cfg: ForgeConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def config_hash(cfg: ForgeConfig) -> str:
    """A hash of what the config means, not how it is written: comments, order, and keys
    left at (or set to) their defaults don't count, so a key forge adds later with a
    default that keeps today's behaviour does not make Snakemake rerun finished runs."""
    meaning = cfg.model_dump(mode="json", exclude_defaults=True)
    old = legacy.contract(cfg.task)  # a task an old config said by name hashes as it did then
    if old is not None:
        meaning["task"] = old
    canonical = json.dumps(meaning, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def dump_yaml(cfg: ForgeConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def _flatten(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            flat.update(_flatten(v, (*prefix, k)))
        else:
            flat[(*prefix, k)] = v
    return flat


def diff_configs(old: ForgeConfig, new: ForgeConfig) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Leaf keys whose values differ, as (key, old, new)."""
    a, b = _flatten(to_dict(old)), _flatten(to_dict(new))
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
