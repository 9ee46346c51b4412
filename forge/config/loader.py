"""Load a YAML config: its `base:` chain, a deep merge, then command-line overrides.

Every leaf value remembers the file (or "command line") that set it, so a
validation error can name the file a user has to edit.
"""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from forge.errors import ConfigError

BASE_KEY = "base"
CLI = "command line"

# Values of these keys that look like paths ("./x", "../x", "~/x") are resolved
# against the directory of the file that set them. Hub ids ("org/name") and
# "embedded:..." references are left alone.
PATH_KEYS = {("student", "path"), ("teacher", "path"), ("task", "dataset")}
# Values of these keys are always config files: relative ones are resolved against
# the directory of the file that set them ("00_sft.yaml" is a sibling).
FILE_KEYS = {("student", "run"), ("teacher", "run")}
# Values of these keys that end in .yaml / .yml are files (lm-eval task files), resolved as
# FILE_KEYS; others are names.
NAMED_FILE_KEYS = {("eval", "tasks")}
# Mappings a config sets whole: a file's replaces its base's instead of merging with it (the
# files of a data set: a base's `test` file would otherwise stay among a child's own splits).
WHOLE_KEYS = {("task", "data_files")}


@dataclass
class RawConfig:
    """A merged, not yet validated config and where each leaf came from."""

    data: dict[str, Any]
    origin: dict[tuple[str, ...], str] = field(default_factory=dict)
    leaf_file: str = ""

    def setter_of(self, key: tuple[str, ...]) -> str:
        """The file to edit about `key` as a whole: the command line or the leaf config when
        they set it or anything below it, else the file that set it."""
        below = {source for k, source in self.origin.items() if k[: len(key)] == key}
        for source in (CLI, self.leaf_file):
            if source in below:
                return source
        return self.source_of(key)

    def source_of(self, key: tuple[str | int, ...]) -> str:
        """The file that set `key`, or the nearest parent that has one, or the leaf config."""
        key = tuple(str(k) for k in key)
        while key:
            if key in self.origin:
                return self.origin[key]
            key = key[:-1]
        return self.leaf_file


try:  # libyaml's loader: the same safe subset of YAML, many times faster
    _SafeLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _SafeLoader = yaml.SafeLoader

# Nodes a document may hold once its aliases are expanded: a config has hundreds; a
# "billion laughs" file, built from a few nested aliases, has billions.
ALIAS_BUDGET = 100_000


class _StrictSafeLoader(_SafeLoader):
    """The safe loader, stricter: a key twice in one mapping is an error naming both lines
    (YAML would let the later one win silently), and a document whose aliases expand beyond
    ALIAS_BUDGET nodes is refused before anything is built from it. Both are checked on the
    composed document, before construction (merge keys, `<<`, are YAML's own and allowed)."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        _check_document(node)
        return self.construct_document(node)


MERGE_TAG = "tag:yaml.org,2002:merge"


def _check_document(root) -> None:
    """Refuse duplicate keys, and count the nodes of `root` with every alias expanded (each
    shared node counted once per use, computed once per node)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.constructor.ConstructorError(None, None, "an alias refers to itself", node.start_mark)
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            _no_duplicate_keys(node)
            total += sum(size(k) + size(v) for k, v in node.value)
        open_nodes.discard(key)
        sizes[key] = total
        if total > ALIAS_BUDGET:
            raise yaml.constructor.ConstructorError(
                None, None, f"its aliases expand to more than {ALIAS_BUDGET:,} values", node.start_mark
            )
        return total

    size(root)


def _no_duplicate_keys(node) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = (key_node.tag, key_node.value)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key_node.value[:60]!r} appears twice in one mapping (lines {seen[key] + 1} "
                f"and {key_node.start_mark.line + 1}); keep one",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line


def _read_yaml(path: Path, referrer: str | None) -> dict[str, Any]:
    """The mapping in a YAML file. Parsed once per file version: planning thousands of
    runs that share base files reads each base once. Callers must not mutate it."""
    if not path.is_file():
        where = f"{referrer}: {BASE_KEY}" if referrer else "config"
        raise ConfigError(f"{where}: file not found: {path}")
    stat = path.stat()
    return _parse_yaml(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4096)
def _parse_yaml(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_StrictSafeLoader)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML file (not UTF-8 text)") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    return _read_yaml(Path(path), None)


def load_stored(path: str | Path) -> RawConfig:
    """A run's own resolved config.yaml (no `base:` chain), as a RawConfig to validate."""
    return RawConfig(data=copy.deepcopy(read_yaml(path)), leaf_file=str(path))


def _resolve_path_value(value: Any, file: Path) -> Any:
    if isinstance(value, str) and value.startswith(("./", "../", "~")):
        return str((file.parent / Path(value).expanduser()).resolve())
    return value


def _merge(
    dst: dict[str, Any],
    src: dict[str, Any],
    origin: dict[tuple[str, ...], str],
    source: str,
    prefix: tuple[str, ...] = (),
    file: Path | None = None,
) -> None:
    """Deep-merge `src` into `dst`: mappings merge (but those of WHOLE_KEYS), everything else replaces."""
    for key, value in src.items():
        key = str(key)
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(dst.get(key), dict) and path not in WHOLE_KEYS:
            _merge(dst[key], value, origin, source, path, file)
            continue
        if isinstance(dst.get(key), dict):  # a replaced subtree forgets where its leaves came from
            for old in [k for k in origin if k[: len(path)] == path]:
                del origin[old]
        dst[key] = _copy(value, path, file)
        _record(origin, path, dst[key], source)


def _copy(value: Any, path: tuple[str, ...], file: Path | None) -> Any:
    """A deep copy of a YAML value, with path-like values of PATH_KEYS and the files of
    FILE_KEYS made absolute."""
    if isinstance(value, dict):
        return {str(k): _copy(v, (*path, str(k)), file) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v, path, file) for v in value]
    if file is not None and path in PATH_KEYS:
        return _resolve_path_value(value, file)
    if file is not None and isinstance(value, str) and _is_file(path, value):
        return str((file.parent / Path(value).expanduser()).resolve())
    return value


def _is_file(path: tuple[str, ...], value: str) -> bool:
    return path in FILE_KEYS or (path in NAMED_FILE_KEYS and value.endswith((".yaml", ".yml")))


def resolved(value: Any, path: tuple[str, ...], file: Path) -> Any:
    """`value` as set at `path` by `file`: a copy, with relative paths resolved as in a config file."""
    return _copy(value, path, file)


def _record(origin: dict[tuple[str, ...], str], path: tuple[str, ...], value: Any, source: str) -> None:
    origin[path] = source
    if isinstance(value, dict):
        for k, v in value.items():
            _record(origin, (*path, k), v, source)


def _load_chain(path: Path, stack: tuple[Path, ...], referrer: str | None) -> RawConfig:
    path = path.resolve()
    if path in stack:
        cycle = " -> ".join(str(p) for p in (*stack, path))
        raise ConfigError(f"{stack[-1]}: {BASE_KEY}: inheritance cycle: {cycle}")
    data = dict(_read_yaml(path, referrer))  # the cached mapping stays as parsed
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        bases = []
    elif isinstance(bases, str):
        bases = [bases]
    elif not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
        raise ConfigError(f"{path}: {BASE_KEY}: must be a path or a list of paths")

    merged = RawConfig(data={}, leaf_file=str(path))
    for base in bases:
        parent = _load_chain(path.parent / base, (*stack, path), str(path))
        _merge(merged.data, parent.data, merged.origin, "", file=None)
        # keep the parent's provenance (its values are already path-resolved)
        merged.origin.update(parent.origin)
    _merge(merged.data, data, merged.origin, str(path), file=path)
    return merged


def load_raw(path: str | Path, overrides: dict[str, Any] | None = None) -> RawConfig:
    """Read `path` with its base chain and apply dotted-key `overrides` (e.g. "training.max_steps")."""
    raw = _load_chain(Path(path), (), None)
    if not raw.data:
        raise ConfigError(f"{raw.leaf_file}: the config is empty; a run needs at least task: and student: (or a base:)")
    for dotted, value in (overrides or {}).items():
        apply_override(raw, dotted, value)
    return raw


def apply_override(raw: RawConfig, dotted: str, value: Any, source: str = CLI) -> None:
    """Set the dotted key to `value` (the command line's, or `source`'s: a sweep's point)."""
    keys = tuple(dotted.split("."))
    node = raw.data
    for i, k in enumerate(keys[:-1]):
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: {'.'.join(keys[: i + 1])}: is not a mapping, so {dotted} cannot be set")
    node[keys[-1]] = value
    raw.origin[keys] = source


def _merged(below: Any, above: Any) -> Any:
    """`above` deep-merged onto `below` (mappings merge, anything else replaces), as `_merge` does."""
    if not (isinstance(below, dict) and isinstance(above, dict)):
        return above
    return {**below, **{k: _merged(below.get(k), v) for k, v in above.items()}}


def placement(path: str | Path, _stack: tuple[str, ...] = ()) -> dict[str, Any]:
    """output_root, task (task.name), student (student.name) and run_name of a config file,
    following `base:`, and its `sweep:` block if it has one, and nothing else: where a run
    lives, read cheaply enough to place thousands of runs while planning (the whole config is
    validated when the run starts)."""
    key = os.path.abspath(path)  # no syscalls: this runs for every config of a plan
    if key in _stack:
        raise ConfigError(f"{path}: {BASE_KEY}: inheritance cycle")
    data = _read_yaml(Path(key), _stack[-1] if _stack else None)  # a missing base names its referrer
    found: dict[str, str] = {}
    bases = data.get(BASE_KEY) or []
    for base in [bases] if isinstance(bases, str) else bases:
        found.update(placement(os.path.join(os.path.dirname(key), base), (*_stack, key)))
    if "output_root" in data:
        found["output_root"] = data["output_root"]
    for section in ("task", "student"):
        if isinstance(data.get(section), dict) and "name" in data[section]:
            found[section] = data[section]["name"]
    if "run_name" in data:
        found["run_name"] = data["run_name"]
    if data.get("sweep") is not None:  # merged into a base's block, as the loader merges it
        below = found["sweep"][0] if isinstance(found.get("sweep"), tuple) else {}
        found["sweep"] = (_merged(below, data["sweep"]), key)  # the block, and the file that sets it last
    elif "sweep" in data:  # `sweep: null` below a sweep: a single run
        found.pop("sweep", None)
    if not _stack:
        missing = [k for k in ("task", "student") if k not in found]
        if missing:
            raise ConfigError(f"{path}: {', '.join(k + '.name' for k in missing)}: required key is missing")
        found.setdefault("output_root", "outputs")
        found.setdefault("run_name", Path(path).stem)
    return found
