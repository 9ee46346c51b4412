"""A checkpoint's weights loaded back as `from_pretrained` reads them.

transformers 5 keeps some architectures' weights under new names in memory (its ViT:
`attention.q_proj`) and `save_pretrained` writes them under the names checkpoints have
always had (`attention.attention.query`), converting on the way out and on the way in. Its
Trainer, resuming, loads a checkpoint with `load_state_dict(strict=False)` under the saved
names: the renamed weights match nothing and silently keep their values from before the
checkpoint (seen in transformers 5.25 with the OCR model's ViT encoder: a resumed run drifted
from the uninterrupted one from its first step on). forge loads the checkpoint through
`from_pretrained`, which applies the model's conversions, and copies every tensor in; a weight
the checkpoint lacks is an error, never a silent reset.
"""

from __future__ import annotations

import os


class ExactResume:
    """Mixin for a `transformers.Trainer` subclass (before the Trainer in the bases, after LogWindow:
    it loads the weights and stops there, where the Trainer would load them)."""

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        from transformers import PreTrainedModel
        from transformers.trainer import _is_peft_model

        target = model if model is not None else self.model
        files = ("model.safetensors", "model.safetensors.index.json")
        plain = (
            isinstance(target, PreTrainedModel)
            and not _is_peft_model(target)
            and not self.is_fsdp_enabled
            and any(os.path.isfile(os.path.join(resume_from_checkpoint, f)) for f in files)
        )
        if not plain:  # adapters (peft loads them by their own names), FSDP: the Trainer's way
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        saved = type(target).from_pretrained(resume_from_checkpoint, config=target.config, dtype=target.dtype)
        result = target.load_state_dict(saved.state_dict(), strict=False)
        del saved
        if result.missing_keys or result.unexpected_keys:
            raise RuntimeError(
                f"{resume_from_checkpoint}: the checkpoint's weights do not fit the model (missing "
                f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]})"
            )
