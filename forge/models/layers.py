"""Students cut from their teachers: keep a subset of a model's layers (DistilBERT's
initialisation: every other layer of BERT), with everything else (embeddings, heads,
tokenizer) as it was. `student.layers: [0, 5]` in a config.

The layer stack is found, not named per architecture: the one `nn.ModuleList` whose
length is the model's `num_hidden_layers`. So it works for BERT (`encoder.layer`),
DistilBERT (`transformer.layer`), Llama/Qwen (`model.layers`) and the like; a model with
several such stacks (an encoder-decoder) is refused, since which one to cut is not clear.
The cut model's config says how many layers it has, so it saves and loads in Hub format
like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

from forge.errors import ConfigError


def layer_count(config) -> int | None:
    """The number of layers a (text) config declares, whatever the architecture calls it."""
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    count = getattr(config, "num_hidden_layers", None)
    return count if isinstance(count, int) else None


def _stack(model):
    """(parent module, attribute, ModuleList) of the model's one stack of layers."""
    import torch

    count = layer_count(model.config)
    found = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count and count:
            parent_name, _, attribute = name.rpartition(".")
            found.append((name, model.get_submodule(parent_name) if parent_name else model, attribute, module))
    kind = type(model).__name__
    if len(found) != 1:
        where = ", ".join(name for name, *_ in found) or "none"
        raise ConfigError(
            f"student.layers: cannot tell which layers of a {kind} to keep "
            f"({count} layers in its config; stacks of that length: {where})"
        )
    return found[0][1:]


def check_layers(layers: Sequence[int], count: int | None, kind: str) -> None:
    """`layers` must name layers the model has."""
    if count is None:
        raise ConfigError(f"student.layers: a {kind} declares no num_hidden_layers; forge cannot cut it")
    outside = [i for i in layers if i >= count]
    if outside:
        raise ConfigError(f"student.layers: {outside} outside the model's {count} layers (0 … {count - 1})")


def keep_layers(model, layers: Sequence[int]):
    """`model` with only the layers `layers` (increasing indices), in that order; the rest
    are dropped. Returns the same model object, changed in place."""
    import torch

    parent, attribute, stack = _stack(model)
    check_layers(layers, len(stack), type(model).__name__)
    kept = torch.nn.ModuleList(stack[i] for i in layers)
    setattr(parent, attribute, kept)
    for position, layer in enumerate(kept):  # caches index layers by their position
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = position
    config = model.config.get_text_config()
    config.num_hidden_layers = len(layers)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == len(stack):
        config.layer_types = [layer_types[i] for i in layers]
    return model
