"""Load a task's dataset by the call that reads the Hub's: a Hub id, a local directory in
Hub format, or an embedded dataset forge generates (forge/embedded/)."""

from __future__ import annotations

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
