"""The generated OCR lines: deterministic, legible variety, and read back by `load_dataset`
in the Hub's layout with an image column."""

import random

import numpy as np

from forge.embedded import synthetic_ocr


def small(monkeypatch):
    monkeypatch.setattr(synthetic_ocr, "SPLITS", {"train": 12, "validation": 4, "test": 4})


def test_generation_is_deterministic_and_the_corpus_is_the_training_text(monkeypatch):
    small(monkeypatch)
    a, b = synthetic_ocr.generate("train", seed=3), synthetic_ocr.generate("train", seed=3)
    assert a["text"] == b["text"] and all(np.array_equal(x, y) for x, y in zip(a["image"], b["image"], strict=True))
    assert synthetic_ocr.generate("train", seed=4)["text"] != a["text"]
    assert synthetic_ocr.corpus(seed=3) == a["text"]


def test_a_line_is_a_small_rgb_image_with_dark_ink_on_light_paper():
    image = synthetic_ocr.render("blue 42", random.Random(0))
    assert image.mode == "RGB" and image.size == (synthetic_ocr.WIDTH, synthetic_ocr.HEIGHT)
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    assert np.median(gray) > 150 and gray.min() < 100  # mostly paper, some ink
    other = np.asarray(synthetic_ocr.render("blue 42", random.Random(1)).convert("L"), dtype=np.float32)
    assert not np.array_equal(gray, other)  # size, offset, rotation, noise vary


def test_every_text_fits_the_line(monkeypatch):
    rng = random.Random(0)
    for text in ("home home", "999999", "milk year", "a"):
        gray = np.asarray(synthetic_ocr.render(text, rng).convert("L"), dtype=np.float32)
        ink = np.where(gray.min(axis=0) < 110)[0]  # columns with ink
        assert ink.size and ink.min() > 0 and ink.max() < synthetic_ocr.WIDTH - 1, text


def test_the_hub_layout_reads_back_with_an_image_column(monkeypatch, tmp_path):
    from datasets import load_dataset

    small(monkeypatch)
    synthetic_ocr.write_hub_layout(tmp_path, seed=0)
    data = load_dataset(str(tmp_path))
    assert {name: len(split) for name, split in data.items()} == {"train": 12, "validation": 4, "test": 4}
    row = data["test"][0]
    assert row["text"] == synthetic_ocr.generate("test")["text"][0]
    assert row["image"].size == (synthetic_ocr.WIDTH, synthetic_ocr.HEIGHT)  # decoded to a PIL image
