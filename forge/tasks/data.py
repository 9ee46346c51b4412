"""A task's data, from wherever it is: a Hub id, a local directory in Hub format, a folder of
files, files named per split (`task.data_files`: csv, json, jsonl, parquet by suffix), or an
embedded dataset forge generates (forge/embedded/). `datasets.load_dataset` reads them all.

Local data is read fresh by every prepare_data (its own cache, removed after), so a file
rewritten in place is never read from a stale cache. The training split and the evaluation
splits come from `task.splits`, or by their usual names; a held-out split is carved from the
training rows when the data has none (`task.eval_split`, drawn with `task.data_seed`, the same
rows in every attempt). A run records a fingerprint of what it read (`fingerprint`): a resume
whose data has changed since is refused, as a changed config is.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge import embedded
from forge.errors import ConfigError, ForgeError
from forge.hub import is_hub_id, unreachable

log = logging.getLogger("forge.data")

BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
EVAL_NAMES = ("validation", "test", "eval", "dev")  # an evaluation split by its usual names, in this order
CARVED = "eval"  # the name of a held-out split carved from the training rows
DATA_SUFFIXES = tuple(BUILDERS) + (".arrow",)


class DataError(ForgeError):
    """The data cannot be read as configured (a file, a split, a column, a row): one line."""


def _first_line(exc: BaseException) -> str:
    """The first line of `exc`'s message that says something (datasets' may begin with a newline)."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return text[:300]


def is_local(task) -> bool:
    """The data is on this machine's disk (files or a folder), not a Hub id."""
    return task.data_files is not None or (task.dataset is not None and not is_hub_id(task.dataset))


def source_dir(task) -> Path | None:
    """The folder the data lives in (data_files are relative to it), or None for a Hub id."""
    if task.dataset is None:
        return None
    if embedded.is_embedded(task.dataset):
        return embedded.ensure(task.dataset)
    return None if is_hub_id(task.dataset) else Path(task.dataset).expanduser()


def data_files(task) -> dict[str, list[Path]] | None:
    """`task.data_files` with every path made absolute (relative to `task.dataset`)."""
    if task.data_files is None:
        return None
    base = source_dir(task) or Path.cwd()
    files = {}
    for split, paths in task.data_files.items():
        paths = [paths] if isinstance(paths, str) else list(paths)
        absolute = [p if p.is_absolute() else base / p for p in map(lambda x: Path(x).expanduser(), paths)]
        files[split] = [found for path in absolute for found in _matches(path)]
    return files


def _matches(path: Path) -> list[Path]:
    """A glob's files, sorted (itself when it matches none: the error names it); a path as it is."""
    if not any(c in str(path) for c in "*?["):
        return [path]
    anchor = Path(path.anchor)
    found = sorted(p for p in anchor.glob(str(path.relative_to(anchor))) if p.is_file())
    return found or [path]


def _builder(files: dict[str, list[Path]], where: str = "task.data_files") -> str:
    kinds = {BUILDERS.get(p.suffix.lower()) for paths in files.values() for p in paths}
    if None in kinds:
        odd = next(p for paths in files.values() for p in paths if p.suffix.lower() not in BUILDERS)
        raise DataError(f"{where}: {odd}: not a data file forge reads (csv, tsv, json, jsonl, parquet)")
    if len(kinds) > 1:
        raise DataError(f"{where}: mixes {' and '.join(sorted(kinds))} files; give one kind")
    return kinds.pop()


def _missing_files(files: dict[str, list[Path]]) -> list[str]:
    def why(path: Path) -> str:
        if path.is_dir():
            return "a folder; name its files (a glob, e.g. folder/*.csv, names them all)"
        return "no file matches" if any(c in path.name for c in "*?[") else "no such file"

    return [f"split {split}: {p}: {why(p)}" for split, paths in files.items() for p in paths if not p.is_file()]


def _check_files(files: dict[str, list[Path]]) -> None:
    """What can be told of a split's files before a reader opens them: one line for an empty
    file, for a csv header that names a column twice (pandas would rename the second), and for
    parquet files that disagree on a column's kind (numbers in one, text in another: forge check
    read the first file alone, and the run failed)."""
    first: tuple[Path, dict[str, str]] | None = None
    for split, paths in files.items():
        for path in paths:
            if path.stat().st_size == 0:
                raise DataError(f"split {split}: {path}: an empty file")
            if BUILDERS.get(path.suffix.lower()) == "parquet" and (kinds := _parquet_kinds(path)) is not None:
                first = first or (path, kinds)
                known = first[1]  # a column of nulls agrees with any
                odd = next(
                    (c for c, k in kinds.items() if k != "null" and known.get(c, "null") not in ("null", k)), None
                )
                if odd is not None:
                    raise DataError(
                        f"split {split}: {path} has the column {odd!r} as {kinds[odd]}; {first[0]} has it as "
                        f"{first[1][odd]}: a column needs one kind in every file"
                    )
            if BUILDERS.get(path.suffix.lower()) != "csv":
                continue
            header = _csv_header(path)
            twice = next((name for i, name in enumerate(header) if name in header[:i]), None)
            if twice is not None:
                raise DataError(f"split {split}: {path}: the header names the column {twice!r} twice")


def _parquet_kinds(path: Path) -> dict[str, str] | None:
    """column -> its kind (text, number, true/false, or arrow's own name) in a parquet file's
    schema; None when it is not one (its reader says why), or holds no row (its types say
    nothing: pandas writes an empty text column as floats)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        schema = meta.schema.to_arrow_schema()
    except Exception:  # not parquet, or damaged
        return None
    if meta.num_rows == 0:
        return None

    def kind(t) -> str:
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "text"
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return "numbers"
        return "true/false" if pa.types.is_boolean(t) else str(t)

    return {field.name: kind(field.type) for field in schema}


def _warn_of_shared_files(files: dict[str, list[Path]]) -> None:
    """Two splits reading one file (train and eval both train.jsonl) evaluate on rows the model
    learned: said, since it may be meant (a check that a model can learn its data at all)."""
    seen: dict[Path, str] = {}
    for split, paths in files.items():
        for path in paths:
            first = seen.setdefault(path.resolve(), split)
            if first != split:
                log.warning("splits %s and %s read the same file (%s): the evaluation is on rows the model trains on",
                            first, split, path)  # fmt: skip


def _csv_header(path: Path) -> list[str]:
    """The column names of a csv / tsv file's first line ([] when it cannot be read: the reader's
    own error says more, and where)."""
    import csv

    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ","), [])
    except (UnicodeDecodeError, csv.Error):
        return []


# The cells pandas reads as missing by default (its documented list).
NA_CELLS = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
     "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)  # fmt: skip


def text_columns(task) -> set[str]:
    """The columns a task reads as text: each column its columns map names (a role's own name
    where unmapped) but a classifier's label, and each field a prompt template writes as it is
    ({question}, not {a:03d})."""
    import string

    names = {name or role for role, name in task.columns.model_dump().items() if role != "label"}
    template = getattr(task, "prompt_template", None) or ""
    return names | {
        field for _, field, spec, _ in string.Formatter().parse(template) if field and field.isidentifier() and not spec
    }


def read_options(task, files: dict[str, list[Path]]) -> dict[str, Any]:
    """The reader's options for `files`: for csv / tsv, the cells of the task's text columns kept
    as written ('037' stays text, not the number 37; 'NA', 'None' and 'null' are text there: only
    an empty cell is missing), and a label's cell missing when empty or one of pandas' missing
    words that is not one of task.labels; tab-separated when every file is a .tsv."""
    paths = [p for ps in files.values() for p in ps]
    if _builder(files) != "csv":
        return {}
    header = list(dict.fromkeys(name for path in paths for name in _csv_header(path)))
    text = text_columns(task)
    labels = {str(v) for v in getattr(task, "labels", None) or []}
    return {
        **({"delimiter": "\t"} if all(p.suffix.lower() == ".tsv" for p in paths) else {}),
        "converters": {name: str for name in header if name in text},
        "keep_default_na": False,
        "na_values": {name: [""] if name in text else sorted(NA_CELLS - labels) for name in header},
    }


def load(task, cache: Path | None = None):
    """The DatasetDict of the task's data as it is on disk (or the Hub). Local data goes
    through `cache`, a folder of the caller's (removed by it), never the shared HF cache."""
    from datasets import load_dataset

    ref = task.dataset
    try:
        # the checks peek makes: each file there, one kind, none empty, none of a folder left unread
        files = _split_files(task) if task.data_files is not None else None
        if files is not None:
            _warn_of_shared_files(files)
            with datasets_quiet():
                return load_dataset(
                    _builder(files),
                    data_files={k: [str(p) for p in v] for k, v in files.items()},
                    cache_dir=str(cache) if cache else None,
                    **read_options(task, files),
                )
        options = {}
        if is_local(task) and not embedded.is_embedded(ref or ""):
            options = read_options(task, _split_files(task))
        source = str(source_dir(task)) if not is_hub_id(ref) else ref
        if not is_hub_id(ref) and not Path(source).is_dir():
            raise DataError(f"task.dataset: {ref}: no such folder")
        local = {"cache_dir": str(cache)} if cache is not None and not is_hub_id(ref) else {}
        with datasets_quiet():
            return load_dataset(source, task.dataset_config, **local, **options)
    except DataError:
        raise
    except ConnectionError:
        raise unreachable(ref, "dataset") from None
    except (FileNotFoundError, ValueError) as exc:
        message = str(exc).lower()
        if ref is not None and is_hub_id(ref) and ("offline" in message or "connect" in message):
            raise unreachable(ref, "dataset") from None
        if "builderconfig" in message or "config name" in message:
            raise DataError(f"task.dataset_config: {task.dataset_config!r}: {_first_line(exc)}") from None
        raise DataError(f"task.dataset: {ref or 'data_files'}: cannot be read: {_first_line(exc)}") from None
    except Exception as exc:  # datasets' generation errors: an undecodable or malformed file
        try:
            undecodable = _unreadable(_split_files(task)) if is_local(task) else None
        except Exception:  # the files cannot even be listed: the reader's own error says more
            undecodable = None
        if undecodable:
            raise DataError(undecodable) from None
        cause = exc.__cause__ or exc.__context__ or exc
        said = f"{type(cause).__name__}: {_first_line(cause)}"
        if "cast" in said.lower() or "failed to parse" in said.lower():  # files that disagree
            odd = _odd_columns(_split_files(task)) if is_local(task) else None
            raise DataError(
                f"task data cannot be read: {odd or 'its files disagree on a column type'} ({said}); every "
                "file needs the same columns, and a column one type in every file (the labels all text, or all numbers)"
            ) from None
        raise DataError(f"task data cannot be read ({said}); is every file valid UTF-8 csv / json / parquet?") from None


@dataclass(frozen=True)
class Splits:
    """The source's splits a task reads: the training split and the evaluation splits, and
    whether the evaluation split is carved from the training rows."""

    train: str
    eval: tuple[str, ...]
    carved: bool = False


def splits_of(task, available: list[str]) -> Splits:
    """Which of the `available` source splits are the training and the evaluation ones."""
    wanted = task.splits
    train = wanted.train if wanted is not None and wanted.train else "train"
    if train not in available:
        raise DataError(f"task.splits.train: no split {train!r} in the data (it has: {', '.join(available)})")
    if wanted is not None and wanted.eval is not None:
        evals = (wanted.eval,) if isinstance(wanted.eval, str) else tuple(wanted.eval)
        missing = [s for s in evals if s not in available]
        if missing:
            raise DataError(f"task.splits.eval: no split {missing[0]!r} in the data (it has: {', '.join(available)})")
        return Splits(train, evals)
    if task.eval_split is not None:
        found = [name for name in EVAL_NAMES if name in available and name != train]
        named = [name for name in found if name in (task.data_files or {})]
        if named:  # the user's own file for it, and a carve: say which
            raise DataError(
                f"task.data_files names an evaluation split ({named[0]!r}) and task.eval_split asks to carve one "
                "from the training rows: keep one (task.eval_split: null to evaluate on the file)"
            )
        if found:  # e.g. a held-out test split kept out of the run on purpose: say so, once
            log.warning("the data's %r split is not used: task.eval_split carves the evaluation rows from %r",
                        found[0], train)  # fmt: skip
        return Splits(train, (CARVED,), carved=True)
    found = [name for name in EVAL_NAMES if name in available and name != train]
    if task.data_files is not None:  # every file the user named is read: each other split evaluates
        found += [name for name in task.data_files if name in available and name not in (train, *found)]
    if not found:
        raise DataError(
            f"the data has no evaluation split (it has: {', '.join(available)}): name one in task.splits.eval, "
            "or carve one from the training rows with task.eval_split (e.g. 0.1)"
        )
    return Splits(train, tuple(found) if task.data_files is not None else found[:1])


def select(task, raw) -> dict[str, Any]:
    """{"train": rows, <eval split>: rows, ...}: the splits a run prepares, drawn from `raw`
    (a carved evaluation split first, then max_train_samples / max_eval_samples)."""
    roles = splits_of(task, list(raw))
    train = raw[roles.train]
    chosen = {}
    if roles.carved:
        _check_carve(task.eval_split, len(train), roles.train)
        parts = train.train_test_split(test_size=task.eval_split, seed=task.data_seed, shuffle=True)
        train, chosen[CARVED] = parts["train"], parts["test"]
        log.info(
            "carved %d evaluation rows from %d training rows (task.eval_split %s, data_seed %d)",
            len(chosen[CARVED]),
            len(raw[roles.train]),
            task.eval_split,
            task.data_seed,
        )
    else:
        chosen.update({name: raw[name] for name in roles.eval})
    for name, rows in chosen.items():
        if len(rows) == 0:
            raise DataError(f"split {name}: no rows")
    if len(train) == 0:
        raise DataError(f"split {roles.train}: no rows")
    evals = {name: subset(rows, task.max_eval_samples, task.data_seed) for name, rows in chosen.items()}
    return {"train": train, **evals}


def _check_carve(share: float, rows: int, split: str) -> None:
    """One line when carving `share` of `rows` would leave the training or the evaluation split
    empty (datasets takes ceil(share · rows) rows for evaluation)."""
    import math

    held_out = math.ceil(share * rows)
    if rows - held_out < 1 or held_out < 1:
        left = "no training row" if rows - held_out < 1 else "no evaluation row"
        raise DataError(
            f"split {split}: task.eval_split {share} of its {rows} row(s) leaves {left}; "
            "give a smaller share, or more rows"
        )


def fresh_cache():
    """A folder for `load`'s cache of local data, outside the data (removed by `remove`)."""
    return Path(tempfile.mkdtemp(prefix="forge-data-"))


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def subset(split, limit: int | None, seed: int):
    """At most `limit` rows of `split`, drawn at random with `seed` (all when limit is None)."""
    if limit is None or limit >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(limit))


UNLABELLED = -100  # what a label column holds on a transfer-set row: the CE losses ignore it


def with_transfer_set(split, limit: int, transfer: int, seed: int, label_column: str):
    """`subset(split, limit, seed)` (the labelled rows, the same ones as without a transfer
    set), followed by up to `transfer` more rows of the same draw with their labels dropped
    (UNLABELLED): a KD student learns them from its teacher alone."""
    from datasets import Value, concatenate_datasets

    if limit >= len(split):  # no row left beyond the labelled ones: exactly what `subset` gives
        log.warning("transfer set: %d rows asked for, none left beyond the %d labelled ones", transfer, len(split))
        return split
    drawn = split.shuffle(seed=seed)
    labelled = drawn.select(range(limit))
    rest = drawn.select(range(len(labelled), min(len(drawn), limit + transfer)))
    if len(rest) < transfer:
        log.warning(
            "transfer set: %d rows asked for, %d left beyond the %d labelled ones", transfer, len(rest), len(labelled)
        )
    as_int = labelled.cast_column(label_column, Value("int64"))
    rest = rest.cast_column(label_column, Value("int64")).map(
        lambda batch: {label_column: [UNLABELLED] * len(batch[label_column])}, batched=True
    )
    return concatenate_datasets([as_int, rest])


def require_columns(rows, split: str, columns: dict[str, str]) -> None:
    """Every mapped column (role -> column name) is in the split: one line naming what is not."""
    have = rows.column_names
    missing = [f"{column!r} (task.columns.{role})" for role, column in columns.items() if column not in have]
    if missing:
        raise DataError(f"split {split}: no column {', '.join(missing)}; its columns are {listed(have)}")


def listed(names) -> str:
    """Column names for a message, comma-separated; one a reader could misread (a space at an
    end, a comma, empty) quoted: a csv header `text, label` has the column ' label'."""
    return ", ".join(repr(n) if not n or n != n.strip() or "," in n else n for n in map(str, names))


def not_text(value, what: str = "text") -> str:
    """What a cell that should hold text holds instead: nothing, a number (a json number, a
    parquet number column: to be written as text), or something else."""
    if value is None:
        return f"no {what}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'{value!r} is a number, not text (write it as text in the data: "{value}")'
    return f"not text ({value!r})"


def row_name(task, split: str, row: int) -> str:
    """'split S, row N' (N counts the split's rows from 0), and its file when the split is one file
    of task.data_files (N: its row after the header)."""
    files = (data_files(task) or {}).get(split, [])
    return f"split {split}, row {row}" + (f" of {files[0]}" if len(files) == 1 else "")


def source_row(rows, i: int) -> int:
    """Row i of `rows` as its source split numbers it: a carved or drawn split is a view of the
    source's rows, and datasets keeps which (its indices mapping; no public accessor)."""
    mapping = getattr(rows, "_indices", None)
    return i if mapping is None else mapping.column(0)[i].as_py()


class BadRows:
    """Rows a type cannot use, per split: an error naming the first (task.bad_rows: error),
    or skipped with a count in the log (task.bad_rows: skip), never dropped unsaid. A row is
    named as its source split and file number it, not by its place in a carved or drawn split."""

    def __init__(self, task):
        self.task = task
        self.skip = task.bad_rows == "skip"

    def source(self, split: str) -> str:
        """The source split of a prepared one: the training split and a carved one are rows of the
        source's training split."""
        if split == "train" or (split == CARVED and self.task.eval_split is not None):
            return self.task.splits.train if self.task.splits is not None and self.task.splits.train else "train"
        return split

    def keep(self, rows, split: str, problem_of) -> Any:
        """`rows` without those `problem_of(row) -> str | None` finds a problem in."""
        bad = []
        for i, row in enumerate(rows):
            problem = problem_of(row)
            if problem:
                bad.append((i, problem))
                if not self.skip:
                    rest = rows.select(range(i + 1, len(rows))) if i + 1 < len(rows) else []
                    more = sum(1 for r in rest if problem_of(r))
                    extra = f" (and {more} more row(s))" if more else ""
                    where = row_name(self.task, self.source(split), source_row(rows, i))
                    if split == CARVED and self.source(split) != split:
                        where += " (carved into the evaluation split by task.eval_split)"
                    raise DataError(
                        f"{where}: {problem}{extra}; fix the data, or set task.bad_rows: skip to leave such rows out"
                    )
        if not bad:
            return rows
        for i, problem in bad[:5]:
            log.warning("skipping %s row %d: %s", self.source(split), source_row(rows, i), problem)
        log.warning("skipped %d of %d %s rows (task.bad_rows: skip)", len(bad), len(rows), split)
        kept = sorted(set(range(len(rows))) - {i for i, _ in bad})
        if not kept:
            raise DataError(f"split {split}: every one of its {len(rows)} rows is unusable ({bad[0][1]})")
        return rows.select(kept)


# ---------------------------------------------------------------- data identity


def _local_files(task) -> list[Path]:
    files = data_files(task)
    if files is not None:  # the files there: a named one gone is told as gone, not read
        return sorted({p for paths in files.values() for p in paths if p.is_file()})
    folder = source_dir(task)
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(task) -> dict[str, Any]:
    """What identifies the data a run reads: every local data file's size, mtime and sha256;
    or the Hub id and the revision cached here; or the embedded dataset's versioned name."""
    if task.dataset is not None and embedded.is_embedded(task.dataset):
        return {"embedded": source_dir(task).name}
    if not is_local(task):
        return {"hub": task.dataset, "config": task.dataset_config, "revision": _cached_revision(task.dataset)}
    return {
        "files": {
            str(p): {"size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns, "sha256": _sha256(p)}
            for p in _local_files(task)
        }
    }


def _cached_revision(ref: str) -> str | None:
    """The commit of the Hub dataset `ref` in this machine's cache (its refs/main), or None."""
    try:
        from huggingface_hub import constants

        ref_file = Path(constants.HF_HUB_CACHE) / f"datasets--{ref.replace('/', '--')}" / "refs" / "main"
        return ref_file.read_text().strip() or None
    except OSError:
        return None


def changes(recorded: dict[str, Any], task) -> list[str]:
    """How the data differs from the `recorded` fingerprint, one line per difference (empty:
    the same). Files whose size and mtime match are taken as they were, without reading them."""
    if "files" not in recorded:
        now = fingerprint(task)
        return [] if now == recorded else [f"was {recorded}, now {now}"]
    found = []
    current = {str(p): p for p in _local_files(task)}
    for name, was in recorded["files"].items():
        path = current.pop(name, None)
        if path is None:
            found.append(f"{name}: gone")
            continue
        stat = path.stat()
        if (stat.st_size, stat.st_mtime_ns) != (was["size"], was["mtime_ns"]) and _sha256(path) != was["sha256"]:
            found.append(f"{name}: changed ({was['size']} bytes then, {stat.st_size} now)")
    found.extend(f"{name}: new" for name in current)
    return found


def check_unchanged(recorded: dict[str, Any] | None, task, where: str) -> None:
    """Refuse to go on with a run whose data changed since it was prepared."""
    if not recorded:
        return
    differ = changes(recorded, task)
    if differ:
        shown = "; ".join(differ[:3]) + (f"; and {len(differ) - 3} more" if len(differ) > 3 else "")
        raise ConfigError(
            f"{where}: the task's data changed since this run prepared it ({shown}). Resume with the data it "
            "began with, or start a new run (--run_name)"
        )


# ---------------------------------------------------------------- a look before anything is created


@dataclass
class Peek:
    """What `forge check` sees of a task's data without converting it: each split's column
    names and first rows, or why it could not look."""

    columns: dict[str, list[str]]
    rows: dict[str, list[dict]]


def peek(task, rows: int = 100) -> Peek:
    """The column names and first `rows` rows of each split, read from the files without
    converting or caching anything (parquet through its own reader, csv and json streamed); a
    DataError when the data cannot be read as configured."""
    files = _split_files(task)
    options = read_options(task, files)
    with datasets_quiet():
        columns, first = {}, {}
        for split, paths in files.items():
            try:
                columns[split], first[split] = _first_rows(paths, rows, options)
            except DataError:
                raise
            except Exception as exc:  # the readers' many errors for a damaged file
                undecodable = _unreadable({split: paths})
                if undecodable:
                    raise DataError(undecodable) from None
                cause = exc.__cause__ or exc
                raise DataError(
                    f"split {split}: {paths[0]}: cannot be read ({type(cause).__name__}: {_first_line(cause)})"
                ) from None
            if not first[split]:
                raise DataError(f"split {split}: {paths[0]}{' and the others' if len(paths) > 1 else ''}: no rows")
        return Peek(columns, first)


@contextlib.contextmanager
def datasets_quiet():
    """datasets logs a file it fails to read ("Failed to read file ...") as well as raising the
    error, which forge turns into its one line: keep that log line off the console."""
    import datasets  # noqa: F401 (its import sets its logger's level: first)

    quiet = logging.getLogger("datasets")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # setLevel, not .level: it clears the child loggers' caches
    try:
        yield
    finally:
        quiet.setLevel(level)


def _split_files(task) -> dict[str, list[Path]]:
    """split -> its data files, as `load` would read them (a folder's files by datasets' own rules)."""
    files = data_files(task)
    if files is not None:
        missing = _missing_files(files)
        if missing:
            raise DataError(f"task.data_files: {missing[0]}")
        _builder(files)  # one known format
        _check_files(files)
        return files
    folder = source_dir(task)
    if folder is None or not folder.is_dir():
        raise DataError(f"task.dataset: {task.dataset}: no such folder")
    from datasets import load_dataset_builder

    try:
        found = load_dataset_builder(str(folder), task.dataset_config).config.data_files or {}
    except Exception as exc:  # datasets raises many kinds for a folder it cannot read
        if "builderconfig" in str(exc).lower() or "config name" in str(exc).lower():
            raise DataError(f"task.dataset_config: {task.dataset_config!r}: {_first_line(exc)}") from None
        raise DataError(f"task.dataset: {task.dataset}: cannot be read as a dataset ({_first_line(exc)})") from None
    if not found:
        raise DataError(f"task.dataset: {task.dataset}: no data files in it (csv, json, jsonl, parquet)")
    files = {split: [Path(str(f)) for f in paths] for split, paths in found.items()}
    _builder(files, f"task.dataset: {task.dataset}")
    _check_files(files)
    if not _names_its_files(folder):  # a folder of files (a Hub-format one's README says what is read)
        read = {p.resolve() for paths in files.values() for p in paths}
        unread = [p for p in _data_files_in(folder) if p.resolve() not in read]
        if unread:
            raise DataError(
                f"task.dataset: {task.dataset}: {unread[0].name}"
                + (f" and {len(unread) - 1} more file(s)" if len(unread) > 1 else "")
                + " would not be read (datasets reads one kind of file, and splits by file name: train, "
                "validation, test); name each split's files in task.data_files"
            )
    return files


def _names_its_files(folder: Path) -> bool:
    """Whether `folder`'s README.md names the files datasets reads (`configs:` in its YAML
    front matter, as a Hub dataset's card does); a README without it is only a note."""
    import yaml

    card = folder / "README.md"
    if not card.is_file():
        return False
    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return False
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except (yaml.YAMLError, IndexError):
        return False
    return isinstance(meta, dict) and bool(meta.get("configs"))


def _odd_columns(files: dict[str, list[Path]]) -> str | None:
    """'FILE has the columns A, B; FIRST has C, D' for the first file whose columns differ from the
    first file's, or None."""
    seen = None
    for paths in files.values():
        for path in paths:
            try:
                columns, _ = _first_rows([path], 1)
            except Exception:  # its own reader's error is another story
                continue
            if seen is None:
                seen = (path, columns)
            elif sorted(columns) != sorted(seen[1]):
                return f"{path} has the columns {listed(columns)}; {seen[0]} has {listed(seen[1])}"
    return None


METADATA = ("dataset_info.json", "dataset_dict.json", "state.json")  # datasets' own files, not data


def _data_files_in(folder: Path) -> list[Path]:
    """The csv / json / parquet files of `folder` (not hidden ones, not datasets' metadata)."""
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and p.suffix.lower() in BUILDERS
        and p.name not in METADATA
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def _unreadable(files: dict[str, list[Path]]) -> str | None:
    """Why a reader failed on `files`, found by reading them ourselves: the first file that is not
    UTF-8, or the first json line that does not parse (the readers' own errors name neither file
    nor line; pyarrow counts its rows from the start of a block); None when neither is the cause."""
    return _not_utf8(files) or _not_json(files)


def _not_json(files: dict[str, list[Path]]) -> str | None:
    """'split S: FILE, line N: not JSON (why)' for the first json / jsonl file of `files` that does
    not parse, as JSON Lines (its first line a value of its own) or as one document; None when
    each one does. Lines are read one at a time: a file of JSON Lines may be larger than memory."""
    import json

    def problem(split, path, line, exc):
        return f"split {split}: {path}, line {line}: not JSON ({exc.msg})"

    for split, paths in files.items():
        for path in paths:
            if BUILDERS.get(path.suffix.lower()) != "json":
                continue
            with path.open(encoding="utf-8-sig") as fh:
                first = next((line for line in fh if line.strip()), "")
            try:
                json.loads(first)
            except (json.JSONDecodeError, RecursionError):  # one document, read as one
                with path.open(encoding="utf-8-sig") as fh:
                    try:
                        json.load(fh)
                    except json.JSONDecodeError as exc:
                        return problem(split, path, exc.lineno, exc)
                    except RecursionError:
                        return f"split {split}: {path}: nested too deeply to read"
                continue
            with path.open(encoding="utf-8-sig") as fh:
                for number, line in enumerate(fh, 1):
                    try:
                        if line.strip():
                            json.loads(line)
                    except json.JSONDecodeError as exc:
                        return problem(split, path, number, exc)
    return None


def _not_utf8(files: dict[str, list[Path]]) -> str | None:
    """The first csv / json file of `files` that is not UTF-8, where, and what to do; None when
    every one is. Read only once a reader has failed: the readers say neither file nor byte."""
    for split, paths in files.items():
        for path in paths:
            if BUILDERS.get(path.suffix.lower()) in ("csv", "json") and (where := _first_bad_byte(path)):
                return f"split {split}: {path} is not UTF-8 ({where}); save it as UTF-8"
    return None


def _first_bad_byte(path: Path) -> str | None:
    """'byte 0xe9 at position N, line L' of the first byte of `path` that is no UTF-8, or None."""
    import codecs

    decoder, offset, lines = codecs.getincrementaldecoder("utf-8")(), 0, 1
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            pending = len(decoder.getstate()[0])  # the start of a character the last block cut
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                at = offset - pending + exc.start
                line = lines + exc.object[: exc.start].count(b"\n")
                return f"byte {exc.object[exc.start]:#04x} at position {at}, line {line}"
            offset, lines = offset + len(block), lines + block.count(b"\n")
    cut = len(decoder.getstate()[0])
    return f"a character cut short at position {offset - cut}, line {lines}" if cut else None


def _first_rows(paths: list[Path], rows: int, options: dict | None = None) -> tuple[list[str], list[dict]]:
    if all(p.suffix.lower() == ".parquet" for p in paths):
        import pyarrow.parquet as pq

        names, first = None, []
        for path in paths:
            handle = pq.ParquetFile(path)
            names = names or list(handle.schema_arrow.names)
            for batch in handle.iter_batches(batch_size=rows):
                first += batch.to_pylist()
                break
            if len(first) >= rows:
                break
        return names or [], first[:rows]
    from datasets import load_dataset

    builder = _builder({"split": paths})
    if options is None:  # the columns alone
        options = {"delimiter": "\t"} if all(p.suffix.lower() == ".tsv" for p in paths) else {}
    stream = load_dataset(builder, data_files={"split": [str(p) for p in paths]}, streaming=True, **options)["split"]
    first = list(stream.take(rows))
    names = list(stream.features) if stream.features is not None else (list(first[0]) if first else [])
    return names, first
