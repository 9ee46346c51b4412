"""OCR: line images transcribed by a vision encoder-decoder (TrOCR-style).

Any image/text dataset that `datasets.load_dataset` reads works: a Hub id, a local
directory in Hub format, or `embedded:synthetic-ocr` (generated lines); the columns
are `task.image_column` and `task.text_column`, the splits `train` and `test`. The
model reads pixel values from its processor's image processor and writes the text
through its decoder; training is cross-entropy on the decoder's tokens, evaluation
is greedy transcription graded by CER, WER and exact match (forge/ocr_metrics.py).

Every image is decoded once in prepare_data: a row whose image is missing or cannot
be read stops the run with an error naming it, or is skipped when
`task.skip_bad_images` is set, so a bad file never surfaces deep in a training batch.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from forge.errors import ForgeError
from forge.logs import progress
from forge.models.loading import IMAGE_TO_TEXT
from forge.ocr_metrics import ocr_metrics
from forge.tasks import TaskSpec, sources

if TYPE_CHECKING:
    from forge.config.schema import ForgeConfig

log = logging.getLogger("forge.tasks")

HEAD = IMAGE_TO_TEXT
TRAIN_SPLIT, EVAL_SPLIT = "train", "test"
EVAL_SPLITS = (EVAL_SPLIT,)
PEAK_METRICS = {"eval_loss": False}  # CER needs generation: pre_eval and post_eval measure it
SPEC = TaskSpec(
    TRAIN_SPLIT,
    EVAL_SPLITS,
    metric="cer",
    larger_is_better=False,
    supports=frozenset({"distillation"}),  # per decoder token, online
    why_not={
        "teacher_cache": "the teacher-logit cache holds one distribution per example (classification); "
        "OCR distils every decoder token",
    },
)


def image_problem(value) -> str | None:
    """Why a dataset's image value cannot be used, or None when it decodes."""
    from PIL import Image

    if value is None:
        return "no image"
    try:
        if isinstance(value, Image.Image):
            value.load()
            return None
        data = value.get("bytes")
        source = io.BytesIO(data) if data is not None else value.get("path")
        if source is None:
            return "no image"
        with Image.open(source) as image:
            image.load()
    except Exception as exc:  # PIL raises many kinds for a bad file
        return f"unreadable image ({type(exc).__name__}: {exc})"
    return None


def _checked(split, name: str, cfg: ForgeConfig):
    """`split` without its unreadable images (when allowed), decoded lazily again."""
    from datasets import Image

    column = cfg.task.image_column
    raw = split.cast_column(column, Image(decode=False))
    bad = [(i, problem) for i, value in enumerate(raw[column]) if (problem := image_problem(value))]
    if bad and not cfg.task.skip_bad_images:
        i, problem = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ForgeError(
            f"dataset {cfg.task.dataset!r}, split {name}, row {i}: {problem}{more}; "
            "fix the data or set task.skip_bad_images: true"
        )
    for i, problem in bad:
        log.warning("skipping %s row %d: %s", name, i, problem)
    keep = sorted(set(range(len(raw))) - {i for i, _ in bad})
    return raw.select(keep).cast_column(column, Image()) if bad else split


def data_needs(cfg: ForgeConfig) -> sources.Needs:
    task = cfg.task
    return sources.Needs(task.dataset_config, (TRAIN_SPLIT, EVAL_SPLIT), (task.image_column, task.text_column))


def prepare(cfg: ForgeConfig, processor, out: Path) -> dict[str, int]:
    """Check every image, tokenize the transcriptions (labels end with the end token),
    and save the splits, images included, to `out`."""
    from datasets import DatasetDict

    task = cfg.task
    raw = sources.load(task.dataset, task.dataset_config, (TRAIN_SPLIT, EVAL_SPLIT))
    tokenizer = processor.tokenizer
    prepared = {}
    for name, limit in ((TRAIN_SPLIT, task.max_train_samples), (EVAL_SPLIT, task.max_eval_samples)):
        missing = {task.image_column, task.text_column} - set(raw[name].column_names)
        if missing:
            raise ForgeError(f"dataset {task.dataset!r}: split {name} lacks the column(s) {', '.join(sorted(missing))}")
        split = _checked(sources.subset(raw[name], limit, cfg.task.data_seed), name, cfg)
        split = split.select_columns([task.image_column, task.text_column])
        split = split.rename_columns({task.image_column: "image", task.text_column: "text"})

        def tokenize(batch):
            ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
            return {"labels": [(row + [tokenizer.eos_token_id])[: task.max_length] for row in ids]}

        prepared[name] = split.map(tokenize, batched=True)
    data = DatasetDict(prepared)
    data.save_to_disk(str(out))
    return {name: len(split) for name, split in data.items()}


def load_prepared(path: Path):
    from datasets import load_from_disk

    return load_from_disk(str(path))


class LineCollator:
    """Rows {image, labels} → pixel values, labels padded with -100, and the decoder's
    inputs (the labels shifted right behind the start token)."""

    def __init__(self, processor, decoder_start_token_id: int):
        self.processor = processor
        self.start = decoder_start_token_id
        self.pad = processor.tokenizer.pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        images = [row["image"].convert("RGB") for row in rows]
        pixels = self.processor(images=images, return_tensors="pt").pixel_values
        width = max(len(row["labels"]) for row in rows)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            labels[i, : len(row["labels"])] = torch.tensor(row["labels"])
        decoder_inputs = torch.cat([torch.full((len(rows), 1), self.start), labels[:, :-1]], dim=1)
        decoder_inputs = decoder_inputs.masked_fill(decoder_inputs == -100, self.pad)
        return {"pixel_values": pixels, "decoder_input_ids": decoder_inputs, "labels": labels}


def trainer_inputs(cfg: ForgeConfig, data, processor, model) -> dict:
    """What the SFT trainer reads: images become pixel values batch by batch."""
    start = model.config.decoder_start_token_id
    return dict(
        train_dataset=data[TRAIN_SPLIT],
        eval_dataset=data[EVAL_SPLIT],
        data_collator=LineCollator(processor, start),
        keep_columns=True,  # the collator reads `image`, which the model's signature lacks
    )


def transcribe(model, processor, images: list, max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy transcriptions of `images`."""
    import torch

    texts = []
    model.eval()
    for start in progress(range(0, len(images), batch_size), "transcribing"):
        batch = [image.convert("RGB") for image in images[start : start + batch_size]]
        pixels = processor(images=batch, return_tensors="pt").pixel_values.to(model.device)
        with torch.no_grad():
            out = model.generate(pixel_values=pixels, max_new_tokens=max_new_tokens, do_sample=False)
        texts += processor.batch_decode(out, skip_special_tokens=True)
    return texts


def evaluate(session, model, processor, data) -> dict[str, dict[str, float]]:
    """CER, WER and exact match of greedy transcriptions of the test lines."""
    from forge.models.loading import default_device

    test = data[EVAL_SPLIT]
    model.to(default_device())
    predictions = transcribe(model, processor, test["image"], session.cfg.task.max_new_tokens)
    return {EVAL_SPLIT: {**ocr_metrics(predictions, test["text"]), "samples": len(test)}}
