"""Load a task's dataset by the call that reads the Hub's: a Hub id, a local directory in
Hub format, or an embedded dataset forge generates (forge/embedded/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forge import embedded
from forge.hub import is_hub_id, unreachable


def load(ref: str, config: str, splits: tuple[str, ...]):
    """The DatasetDict of `ref`; a one-line error when it is unreachable or lacks one of `splits`."""
    from datasets import load_dataset

    source = str(embedded.ensure(ref)) if embedded.is_embedded(ref) else ref
    try:
        data = load_dataset(source, config)
    except ConnectionError:
        raise unreachable(ref, "dataset") from None
    except (FileNotFoundError, ValueError) as exc:
        message = str(exc).lower()
        if is_hub_id(ref) and ("offline" in message or "connect" in message):
            raise unreachable(ref, "dataset") from None
        raise
    missing = [s for s in splits if s not in data]
    if missing:
        raise ValueError(f"dataset {ref!r} (config {config!r}) lacks the split(s) {', '.join(missing)}")
    return data


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
    import logging

    from datasets import Value, concatenate_datasets

    if limit >= len(split):  # no row left beyond the labelled ones: exactly what `subset` gives
        logging.getLogger("forge.data").warning(
            "transfer set: %d rows asked for, none left beyond the %d labelled ones", transfer, len(split)
        )
        return split
    drawn = split.shuffle(seed=seed)
    labelled = drawn.select(range(limit))
    rest = drawn.select(range(len(labelled), min(len(drawn), limit + transfer)))
    if len(rest) < transfer:
        logging.getLogger("forge.data").warning(
            "transfer set: %d rows asked for, %d left beyond the %d labelled ones", transfer, len(rest), len(labelled)
        )
    as_int = labelled.cast_column(label_column, Value("int64"))
    rest = rest.cast_column(label_column, Value("int64")).map(
        lambda batch: {label_column: [UNLABELLED] * len(batch[label_column])}, batched=True
    )
    return concatenate_datasets([as_int, rest])


@dataclass(frozen=True)
class Needs:
    """What a task needs of its dataset (its `data_needs(cfg)`), for `forge check`: the
    dataset config, the splits, their columns, and the values a label column may hold."""

    config: str | None
    splits: tuple[str, ...]
    columns: tuple[str, ...]
    label_column: str | None = None
    labels: frozenset[int] | None = None


def problems(ref: str, needs: Needs, offline: bool) -> tuple[list[str], list[str]]:
    """(problems, notes) of the dataset `ref` against `needs`, from its layout and parquet
    metadata (and the label column alone), without loading or converting the data.
    `offline`: the Hub cannot be reached, so a Hub dataset must be in the local cache."""
    if embedded.is_embedded(ref):
        return ([] if embedded.known(ref) else [f"unknown embedded dataset {ref!r}"]), []
    if is_hub_id(ref):
        return _cached_on_this_machine(ref, needs, offline)
    path = Path(ref).expanduser()
    if not path.is_dir():
        return [f"{ref}: no such dataset folder"], []
    try:
        from datasets import load_dataset_builder

        files = load_dataset_builder(str(path), needs.config).config.data_files or {}
    except Exception as exc:  # datasets raises many kinds for a folder it cannot read
        return [f"{ref}: cannot be read as a dataset ({type(exc).__name__}: {_first_line(exc)})"], []
    found, notes = [], []
    for split in needs.splits:
        if split not in files:
            found.append(f"{ref}: no split {split!r} (has: {', '.join(files) or 'none'})")
            continue
        if not all(str(f).endswith(".parquet") for f in files[split]):
            notes.append(f"split {split} is not parquet: its rows are checked when the run prepares its data")
            continue
        try:
            found.extend(_parquet_problems(ref, split, [str(f) for f in files[split]], needs))
        except Exception as exc:  # pyarrow's errors for a damaged or empty file
            found.append(f"{ref}: split {split}: unreadable parquet ({type(exc).__name__}: {_first_line(exc)})")
    return found, notes


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]


def _parquet_problems(ref: str, split: str, files: list[str], needs: Needs) -> list[str]:
    import pyarrow.parquet as pq

    rows, columns = 0, None
    for file in files:
        meta = pq.read_metadata(file)
        rows += meta.num_rows
        columns = set(meta.schema.names) if columns is None else columns & set(meta.schema.names)
    missing = [c for c in needs.columns if c not in (columns or ())]
    if missing:
        return [f"{ref}: split {split} lacks the column(s) {', '.join(missing)}"]
    if rows == 0:
        return [f"{ref}: split {split} is empty"]
    if needs.label_column is None or needs.labels is None:
        return []
    values = set()
    for file in files:
        values.update(pq.read_table(file, columns=[needs.label_column]).column(0).to_pylist())
    outside = sorted((v for v in values if v not in needs.labels), key=str)  # None sorts too
    if outside:
        shown = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
        allowed = f"{min(needs.labels)} to {max(needs.labels)}"
        return [f"{ref}: split {split}: {needs.label_column} values outside {allowed}: {shown}"]
    return []


def _cached_on_this_machine(ref: str, needs: Needs, offline: bool) -> tuple[list[str], list[str]]:
    if not offline:
        return [], [f"dataset {ref} is on the Hub: checked when the run loads it"]
    import datasets.config
    import huggingface_hub.constants
    from datasets import load_dataset_builder

    # Look in the cache only. The libraries read HF_HUB_OFFLINE once, at import: setting the
    # variable now would leave ~30 s of retries per dataset; their flags are set for this call.
    flags = [(datasets.config, "HF_HUB_OFFLINE"), (huggingface_hub.constants, "HF_HUB_OFFLINE")]
    saved = [getattr(module, name) for module, name in flags]
    for module, name in flags:
        setattr(module, name, True)
    try:
        load_dataset_builder(ref, needs.config)
    except Exception:
        return [str(unreachable(ref, "dataset"))], []
    finally:
        for (module, name), value in zip(flags, saved, strict=True):
            setattr(module, name, value)
    return [], []
