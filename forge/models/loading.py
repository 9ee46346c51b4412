"""Load students, teachers and final models through `from_pretrained`, whatever their
source: a Hub id, a local directory in Hub format, an embedded model forge builds, a
PEFT adapter directory (`adapter_config.json`: its base is loaded, then the adapter),
or another forge run's final model (resolved by forge/run/upstream.py into a plain path).

What is loaded on top of the weights is the task type's `Head`: a sequence classifier with
its labels (classification), a causal LM (generation), an image-to-text model
(image_to_text); and with it the task's preprocessor, a tokenizer or a processor."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from forge import embedded
from forge.errors import ConfigError
from forge.hub import is_hub_id, unreachable

if TYPE_CHECKING:
    from forge.config.schema import LoraConfig

log = logging.getLogger("forge.models")

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class Head:
    """What a task loads a model as: the transformers Auto class, the labels of a
    classifier (or that it regresses a number), peft's task type for LoRA, and the Auto class
    of its preprocessor."""

    auto_class: str
    labels: tuple[str, ...] | None = None
    peft_task: str | None = None
    preprocessor: str = "AutoTokenizer"
    regression: bool = False


def classifier(labels: tuple[str, ...] | None) -> Head:
    """A sequence classifier over `labels` (None: as many as the checkpoint's head has)."""
    return Head("AutoModelForSequenceClassification", tuple(labels) if labels is not None else None, "SEQ_CLS")


def regressor() -> Head:
    """A sequence classifier with one output, trained and graded by mean squared error."""
    return Head("AutoModelForSequenceClassification", None, "SEQ_CLS", regression=True)


CAUSAL_LM = Head("AutoModelForCausalLM", peft_task="CAUSAL_LM")
IMAGE_TO_TEXT = Head("AutoModelForImageTextToText", preprocessor="AutoProcessor")


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


def _from_pretrained(factory, ref: str, kind: str, trust: bool = False, **kwargs):
    """Every model, tokenizer and processor forge loads comes through here. A repository's
    own Python code (`auto_map`) runs only where the config says
    `trust_remote_code: true` for that model (`trust`)."""
    if trust:
        log.warning("%s %s: running the repository's own code (trust_remote_code: true)", kind, ref)
    try:
        return factory.from_pretrained(resolve(ref), trust_remote_code=trust, **kwargs)
    except OSError as exc:
        if is_hub_id(ref) and ("offline" in str(exc).lower() or "connect" in str(exc).lower()):
            raise unreachable(ref, kind) from None
        raise


def default_device() -> str:
    """Where a model runs outside the Trainer (evaluation by generation, the teacher-logit
    cache): the GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class ModelSource:
    """What to load: a Hub id, a local directory in Hub format, "embedded:<name>" or an
    adapter directory; the Hub revision; whether the repository's own code may run
    (`trust_remote_code`: a checkpoint or final model inherits it from the model it came
    from); and the layers to keep of it (a student cut from its teacher, forge/models/layers.py;
    None keeps all). A run's student and teacher become sources in forge/run/upstream.py."""

    ref: str
    revision: str | None = None
    trust_remote_code: bool = False
    layers: tuple[int, ...] | None = None


def source_of(model: ModelSource | str) -> ModelSource:
    return model if isinstance(model, ModelSource) else ModelSource(str(model))


def load_tokenizer(model: ModelSource | str, auto_class: str = "AutoTokenizer"):
    """The tokenizer (or, with auto_class AutoProcessor, the processor) of a model; an
    adapter without its own uses its base's."""
    import transformers

    source = source_of(model)
    ref, revision, trust = source.ref, source.revision, source.trust_remote_code
    base = adapter_base(ref)
    if base is not None and not (Path(ref).expanduser() / "tokenizer_config.json").is_file():
        ref, revision = base, None
    kind = "processor" if auto_class == "AutoProcessor" else "tokenizer"
    return _from_pretrained(getattr(transformers, auto_class), ref, kind, trust, revision=revision)


def model_config(model: ModelSource | str):
    """The transformers config of a model (its config.json), without its weights."""
    import transformers

    source = source_of(model)
    return _from_pretrained(
        transformers.AutoConfig, source.ref, "config", source.trust_remote_code, revision=source.revision
    )


def load_preprocessor(model: ModelSource | str, head: Head):
    """What turns a task's inputs into the model's: its tokenizer or its processor."""
    return load_tokenizer(model, head.preprocessor)


def _pretrained(ref: str, head: Head, revision: str | None, trust: bool = False):
    """(model, names of the modules the checkpoint lacked and were freshly initialized)."""
    import transformers

    labels, extra = head.labels, {}
    if head.regression:
        extra = dict(num_labels=1, problem_type="regression")
    elif labels is not None:
        extra = dict(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
        )
    factory = getattr(transformers, head.auto_class)
    model, info = _from_pretrained(factory, ref, "model", trust, revision=revision, output_loading_info=True, **extra)
    fresh = sorted({key.rsplit(".", 1)[0] for key in info.get("missing_keys", ())})
    return model, fresh


def load_model(model: ModelSource | str, head: Head, *, merge: bool = True):
    """The model as the task's `head` (a classifier gets a fresh head for its labels when
    the checkpoint has none).

    An adapter directory loads its base, then the adapter: merged into the base
    (`merge=True`, a plain model) or as a `PeftModel`."""
    source = source_of(model)
    ref, revision, trust = source.ref, source.revision, source.trust_remote_code
    base = adapter_base(ref)
    if base is None:
        return _cut(_pretrained(ref, head, revision, trust)[0], source)
    from peft import PeftModel

    log.info("loading adapter %s onto its base %s", ref, base)
    adapted = PeftModel.from_pretrained(_pretrained(base, head, None, trust)[0], resolve(ref))
    if source.layers is not None:  # cut the merged model: an adapter knows every layer of its base
        return _cut(adapted.merge_and_unload(), source)
    return adapted.merge_and_unload() if merge else adapted


def _cut(model, source: ModelSource):
    """The model with only `source.layers` kept (all of it when None)."""
    if source.layers is None:
        return model
    from forge.models.layers import keep_layers

    before = sum(p.numel() for p in model.parameters())
    keep_layers(model, source.layers)
    after = sum(p.numel() for p in model.parameters())
    log.info(
        "kept layers %s of %s: %.1f M of %.1f M parameters", list(source.layers), source.ref, after / 1e6, before / 1e6
    )
    return model


def load_student(model: ModelSource, head: Head, lora: LoraConfig | None = None):
    """The student (or policy) to train: its weights (an adapter is merged in first),
    with LoRA on top when `lora` is set."""
    if lora is None:
        return load_model(model, head)
    ref = model.ref
    if adapter_base(ref) is not None:
        raise ConfigError(
            f"student {ref!r} is an adapter and student.lora adds another: "
            "merge the adapter into its base first (a forge run with lora.merge: true saves <run>/model)"
        )
    from forge.models.lora import apply_lora

    student, fresh = _pretrained(ref, head, model.revision, model.trust_remote_code)
    return apply_lora(_cut(student, model), lora, fresh, head.peft_task)
