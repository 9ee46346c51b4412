"""Load students, teachers and final models through `from_pretrained`, whatever their
source: a Hub id, a local directory in Hub format, an embedded model forge builds, a
PEFT adapter directory (`adapter_config.json`: its base is loaded, then the adapter),
or another forge run's final model (`student.run`).

A task with labels gets a sequence classifier with a head for them; a task without
(reasoning) gets a causal LM."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from forge import embedded
from forge.config.schema import ModelConfig
from forge.errors import ConfigError
from forge.hub import is_hub_id, unreachable

log = logging.getLogger("forge.models")

ADAPTER_CONFIG = "adapter_config.json"


def resolve(ref: str) -> str:
    """A path or Hub id that `from_pretrained` understands."""
    if embedded.is_embedded(ref):
        return str(embedded.ensure(ref))
    return str(Path(ref).expanduser()) if not is_hub_id(ref) else ref


def adapter_base(ref: str) -> str | None:
    """The base model of a PEFT adapter directory, or None when `ref` is no adapter."""
    if is_hub_id(ref) or embedded.is_embedded(ref):
        return None
    config = Path(ref).expanduser() / ADAPTER_CONFIG
    if not config.is_file():
        return None
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{config}: no base_model_name_or_path; forge cannot tell which model it adapts")
    return base


def _from_pretrained(factory, ref: str, kind: str, **kwargs):
    try:
        return factory.from_pretrained(resolve(ref), **kwargs)
    except OSError as exc:
        if is_hub_id(ref) and ("offline" in str(exc).lower() or "connect" in str(exc).lower()):
            raise unreachable(ref, kind) from None
        raise


def default_device() -> str:
    """Where a model runs outside the Trainer (evaluation by generation, the teacher-logit
    cache): the GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_ref(model: ModelConfig | str) -> tuple[str, str | None]:
    """(what `from_pretrained` loads, revision) of a model config or a plain reference."""
    if isinstance(model, str):
        return model, None
    if model.run is not None:
        from forge.models.upstream import final_model_of

        return final_model_of(model.run, "student"), None
    return model.path, model.revision


def load_tokenizer(model: ModelConfig | str):
    """The tokenizer of a model; an adapter without its own tokenizer uses its base's."""
    from transformers import AutoTokenizer

    ref, revision = model_ref(model)
    base = adapter_base(ref)
    if base is not None and not (Path(ref).expanduser() / "tokenizer_config.json").is_file():
        ref, revision = base, None
    return _from_pretrained(AutoTokenizer, ref, "tokenizer", revision=revision)


def _pretrained(ref: str, labels: tuple[str, ...] | None, revision: str | None):
    """(model, names of the modules the checkpoint lacked and were freshly initialized)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if labels is None:
        factory, head = AutoModelForCausalLM, {}
    else:
        factory = AutoModelForSequenceClassification
        head = dict(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
        )
    model, info = _from_pretrained(factory, ref, "model", revision=revision, output_loading_info=True, **head)
    fresh = sorted({key.rsplit(".", 1)[0] for key in info.get("missing_keys", ())})
    return model, fresh


def load_model(
    model: ModelConfig | str, labels: tuple[str, ...] | None, revision: str | None = None, *, merge: bool = True
):
    """A sequence classifier with a head for `labels` (a fresh head when the checkpoint
    has none), or a causal LM when `labels` is None.

    An adapter directory loads its base, then the adapter: merged into the base
    (`merge=True`, a plain model) or as a `PeftModel`."""
    ref, own_revision = model_ref(model)
    revision = revision or own_revision
    base = adapter_base(ref)
    if base is None:
        return _pretrained(ref, labels, revision)[0]
    from peft import PeftModel

    log.info("loading adapter %s onto its base %s", ref, base)
    adapted = PeftModel.from_pretrained(_pretrained(base, labels, None)[0], resolve(ref))
    return adapted.merge_and_unload() if merge else adapted


def load_student(model: ModelConfig, labels: tuple[str, ...] | None):
    """The student (or policy) to train: its weights (an adapter is merged in first),
    with LoRA on top when `model.lora` is set."""
    if model.lora is None:
        return load_model(model, labels)
    ref, revision = model_ref(model)
    if adapter_base(ref) is not None:
        raise ConfigError(
            f"student {ref!r} is an adapter and student.lora adds another: "
            "merge the adapter into its base first (a forge run with lora.merge: true saves <run>/model)"
        )
    from forge.models.lora import apply_lora

    student, fresh = _pretrained(ref, labels, revision)
    return apply_lora(student, model.lora, fresh, causal_lm=labels is None)
