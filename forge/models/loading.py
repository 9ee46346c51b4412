"""Load students (and later teachers) through `from_pretrained`, whatever their source:
a Hub id, a local directory in Hub format, or an embedded model forge builds."""

from __future__ import annotations

from pathlib import Path

from forge import embedded
from forge.config.schema import ModelConfig
from forge.hub import is_hub_id, unreachable


def resolve(ref: str) -> str:
    """A path or Hub id that `from_pretrained` understands."""
    if embedded.is_embedded(ref):
        return str(embedded.ensure(ref))
    return str(Path(ref).expanduser()) if not is_hub_id(ref) else ref


def _from_pretrained(factory, ref: str, kind: str, **kwargs):
    try:
        return factory.from_pretrained(resolve(ref), **kwargs)
    except OSError as exc:
        if is_hub_id(ref) and ("offline" in str(exc).lower() or "connect" in str(exc).lower()):
            raise unreachable(ref, kind) from None
        raise


def load_tokenizer(model: ModelConfig):
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, model.path, "tokenizer", revision=model.revision)


def load_sequence_classifier(model: ModelConfig | str, labels: tuple[str, ...], revision: str | None = None):
    """A model with a classification head for `labels` (a fresh head when the checkpoint has none)."""
    from transformers import AutoModelForSequenceClassification

    ref, revision = (model, revision) if isinstance(model, str) else (model.path, model.revision)
    return _from_pretrained(
        AutoModelForSequenceClassification,
        ref,
        "model",
        revision=revision,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
