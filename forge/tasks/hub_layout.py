"""Datasets in the Hub's layout. Generated ones are written the way a Hub dataset
repository stores them: one parquet file per split under `<config>/`, and a README
whose `configs:` block names them, so `datasets.load_dataset(<dir>, <config>)` reads
them by the call that reads the Hub's. `load` is that call, for every task."""

from __future__ import annotations

from pathlib import Path

from forge import embedded
from forge.hub import is_hub_id, unreachable


def load(ref: str, config: str, splits: tuple[str, ...]):
    """The DatasetDict of a Hub id, a local directory in Hub format or an embedded
    dataset; a one-line error when it is unreachable or lacks one of `splits`."""
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


def write(root: Path, config: str, splits: dict[str, dict[str, list]], features, description: str) -> None:
    from datasets import Dataset

    (root / config).mkdir(parents=True, exist_ok=True)
    files = []
    for split, rows in splits.items():
        Dataset.from_dict(rows, features=features).to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
        files.append(f"  - split: {split}\n    path: {config}/{split}-*")
    front = f"---\nconfigs:\n- config_name: {config}\n  data_files:\n" + "\n".join(files) + "\n---\n"
    (root / "README.md").write_text(f"{front}\n{description}")
