"""image_to_text: an image is transcribed by a vision encoder-decoder (TrOCR-style OCR).

A row has an image (`columns.image`: an image feature, image bytes, or a file path, relative
to the dataset's folder) and its text (`columns.text`). The model reads pixel values from its
processor's image processor and writes the text through its decoder; training is
cross-entropy on the decoder's tokens, evaluation greedy transcription graded by CER, WER and
exact match (forge/ocr_metrics.py).

Every image is decoded once in prepare_data: a row whose image is missing or cannot be read
stops the run with an error naming its split and row, or is skipped with a count in the log
(`task.bad_rows: skip`), so a bad file never surfaces deep in a training batch.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from forge.logs import progress
from forge.models.loading import IMAGE_TO_TEXT, Head
from forge.ocr_metrics import ocr_metrics
from forge.tasks import data as sources
from forge.tasks.base import TRAIN, Alignment, MainMetric, TaskType, TrainerInputs

log = logging.getLogger("forge.tasks")


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
        if _is_url(source):
            return f"a URL ({source[:60]}); forge reads images from files or bytes, not the network"
        with Image.open(source) as image:
            image.load()
    except Exception as exc:  # PIL raises many kinds for a bad file
        return f"unreadable image ({type(exc).__name__}: {exc})"
    return None


def rgb(image):
    """`image` as the model reads it, RGB. Pillow's own conversion would clip a 16-bit grey
    image at 255 (nearly all white) and drop transparency (a line drawn in the alpha channel
    alone, over transparent black, comes out black on black): 16-bit grey is scaled to 8 bits,
    and an image with transparency is laid over white first."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        import numpy as np

        grey = np.clip(np.asarray(image, dtype=np.int64), 0, 65535) // 257
        return Image.fromarray(grey.astype(np.uint8)).convert("RGB")  # 2-D uint8: grey (L)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        white = Image.new("RGBA", image.size, "white")
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def _is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(("http://", "https://"))


class ImageToText(TaskType):
    name = "image_to_text"
    alignment = Alignment.TOKEN
    supports = frozenset({"distillation"})  # per decoder token, online
    why_not = {
        "teacher_cache": "the teacher-logit cache holds one distribution per example (classification) or the top "
        "k of each answer token of a causal LM (generation); image_to_text distils every decoder token online",
        "rl": "RL needs a task a policy answers in text (task.type: generation)",
    }

    def head(self, data_dir: Path | None = None) -> Head:
        return IMAGE_TO_TEXT

    def main_metric(self, data_dir: Path | None = None) -> MainMetric:
        return MainMetric(None, "cer", False)

    def _usable(self, rows, name: str):
        """`rows` without those whose image does not decode or whose text is missing
        (task.bad_rows), the image column decoded lazily. A column of file paths is read
        relative to the dataset's folder."""
        from datasets import Image, Value

        column = self.task.columns.image
        if isinstance(rows.features[column], Value) and rows.features[column].dtype in ("string", "large_string"):
            folder = sources.source_dir(self.task) or Path.cwd()

            def absolute(batch):
                return {
                    column: [
                        str(folder / p) if isinstance(p, str) and not Path(p).is_absolute() and not _is_url(p) else p
                        for p in batch[column]
                    ]
                }

            rows = rows.map(absolute, batched=True)
        raw = rows.cast_column(column, Image(decode=False))
        text = self.task.columns.text

        def problem(row):
            return _described(image_problem(row[column]), column) or _no_text(row[text], text)

        checked = sources.BadRows(self.task).keep(raw, name, problem)
        if checked is raw and rows.features[column] == Image():
            return rows  # every image decodes: the split as it was
        return checked.cast_column(column, Image())

    def prepare(self, processor, out: Path) -> dict[str, int]:
        from datasets import DatasetDict

        task = self.task
        tokenizer = processor.tokenizer
        cache = sources.fresh_cache()
        try:
            raw = sources.load(task, cache)
            splits = sources.select(task, raw)
            columns = {"image": task.columns.image, "text": task.columns.text}
            prepared = {}
            for name, rows in splits.items():
                sources.require_columns(rows, name, columns)
                if name == TRAIN:
                    rows = sources.subset(rows, task.max_train_samples, task.data_seed)
                rows = self._usable(rows, name)
                rows = rows.select_columns([columns["image"], columns["text"]])
                rows = rows.rename_columns({c: role for role, c in columns.items() if c != role})

                def tokenize(batch):
                    ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
                    return {"labels": [(row + [tokenizer.eos_token_id])[: task.max_length] for row in ids],
                            "cut": [len(row) + 1 > task.max_length for row in ids]}  # fmt: skip

                prepared[name] = rows.map(tokenize, batched=True)
                cut = sum(prepared[name]["cut"])
                prepared[name] = prepared[name].remove_columns("cut")
                if cut:  # their end token and last tokens go: the model learns no end for them
                    log.warning("split %s: %d transcription(s) longer than task.max_length (%d) truncated",
                                name, cut, task.max_length)  # fmt: skip
            data = DatasetDict(prepared)
            data.save_to_disk(str(out))
        finally:
            sources.remove(cache)
        return {name: len(split) for name, split in data.items()}

    def columns(self, train_columns: list[str]) -> dict[str, str]:
        return {"image": self.task.columns.image, "text": self.task.columns.text}

    def row_problem(self, row: dict, train_columns: list[str]) -> str | None:
        column, text = self.task.columns.image, self.task.columns.text
        value = row[column]
        if isinstance(value, str) and not Path(value).is_absolute() and not _is_url(value):
            value = {"path": str((sources.source_dir(self.task) or Path.cwd()) / value), "bytes": None}
        elif isinstance(value, str):
            value = {"path": value, "bytes": None}
        return _described(image_problem(value), column) or _no_text(row[text], text)

    def examples(self, rows: list[dict], processor) -> list[str]:
        tokenizer = processor.tokenizer
        shown = []
        for row in rows:
            ids = tokenizer(row[self.task.columns.text], add_special_tokens=False)["input_ids"] + [
                tokenizer.eos_token_id
            ]
            shown.append(f"an image  ->  [[{tokenizer.decode(ids[: self.task.max_length])}]]")
        return shown

    def trainer_inputs(self, data, processor, model) -> TrainerInputs:
        """What the SFT trainer reads: images become pixel values batch by batch."""
        start = model.config.decoder_start_token_id
        main = self.eval_splits(data)[0]
        # the collator reads `image`, which the model's signature lacks
        return TrainerInputs(data[TRAIN], data[main], data_collator=LineCollator(processor, start), keep_columns=True)

    def evaluate(self, session, model, processor, data) -> dict[str, dict[str, float]]:
        """CER, WER and exact match of greedy transcriptions of each evaluation split."""
        from forge.models.loading import default_device

        model.to(default_device())
        results = {}
        for split in self.eval_splits(data):
            rows = data[split]
            predictions = transcribe(model, processor, rows["image"], self.task.max_new_tokens)
            results[split] = {**ocr_metrics(predictions, rows["text"]), "samples": len(rows)}
        return results


def _described(problem: str | None, column: str) -> str | None:
    return f"column {column!r}: {problem}" if problem else None


def _no_text(value, column: str) -> str | None:
    if not isinstance(value, str):
        return f"column {column!r}: {sources.not_text(value)}"
    return None if value.strip() else f"column {column!r}: empty text"


class LineCollator:
    """Rows {image, labels} → pixel values, labels padded with -100, and the decoder's
    inputs (the labels shifted right behind the start token)."""

    def __init__(self, processor, decoder_start_token_id: int):
        self.processor = processor
        self.start = decoder_start_token_id
        self.pad = processor.tokenizer.pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        images = [rgb(row["image"]) for row in rows]
        pixels = self.processor(images=images, return_tensors="pt").pixel_values
        width = max(len(row["labels"]) for row in rows)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            labels[i, : len(row["labels"])] = torch.tensor(row["labels"])
        decoder_inputs = torch.cat([torch.full((len(rows), 1), self.start), labels[:, :-1]], dim=1)
        decoder_inputs = decoder_inputs.masked_fill(decoder_inputs == -100, self.pad)
        return {"pixel_values": pixels, "decoder_input_ids": decoder_inputs, "labels": labels}


def transcribe(model, processor, images: list, max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy transcriptions of `images`."""
    import torch

    texts = []
    model.eval()
    for start in progress(range(0, len(images), batch_size), "transcribing"):
        batch = [rgb(image) for image in images[start : start + batch_size]]
        pixels = processor(images=batch, return_tensors="pt").pixel_values.to(model.device)
        with torch.no_grad():
            out = model.generate(pixel_values=pixels, max_new_tokens=max_new_tokens, do_sample=False)
        texts += processor.batch_decode(out, skip_special_tokens=True)
    return texts
