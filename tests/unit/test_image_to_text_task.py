"""The image_to_text type's data handling: bad images are named (or skipped when the config
says so) in prepare_data, and the collator builds pixel values, labels and decoder inputs. The
config here is an old one (`task.name: ocr`, image_column, skip_bad_images): it still means
an image_to_text task over those columns."""

import io
import random

import pytest

from forge.config import load_config
from forge.embedded import hub_layout, synthetic_ocr
from forge.errors import ForgeError
from forge.tasks import image_to_text as ocr
from forge.tasks import task_of
from tests.conftest import write_config


def png(text: str, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    synthetic_ocr.render(text, random.Random(seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_problem_tells_a_readable_image_from_a_bad_one(tmp_path):
    assert ocr.image_problem({"bytes": png("cat"), "path": None}) is None
    assert ocr.image_problem(synthetic_ocr.render("cat", random.Random(0))) is None
    assert ocr.image_problem(None) == "no image"
    assert ocr.image_problem({"bytes": None, "path": None}) == "no image"
    assert ocr.image_problem({"bytes": b"not a png", "path": None}).startswith("unreadable image (")
    truncated = png("cat")[:60]
    assert ocr.image_problem({"bytes": truncated, "path": None}).startswith("unreadable image (")
    assert "unreadable image" in ocr.image_problem({"bytes": None, "path": str(tmp_path / "missing.png")})


@pytest.fixture
def lines_with_a_bad_image(tmp_path):
    """A Hub-layout OCR dataset whose train row 2 is not an image, and an OCR config reading it."""
    from datasets import Features, Image, Value

    features = Features({"img": Image(), "transcription": Value("string")})
    texts = ["cat", "dog 12", "sun", "42"]
    images = [{"bytes": png(t, i), "path": None} for i, t in enumerate(texts)]
    images[2] = {"bytes": b"\x89PNG broken", "path": None}
    splits = {
        "train": {"img": images, "transcription": texts},
        "test": {"img": [{"bytes": png("map"), "path": None}], "transcription": ["map"]},
    }
    hub_layout.write(tmp_path / "data", "default", splits, features, "test lines")
    body = f"""
    task:
      name: ocr
      dataset: {tmp_path / "data"}
      image_column: img
      text_column: transcription
    student:
      name: tiny
      path: embedded:tiny-ocr
    """
    return tmp_path, write_config(tmp_path, "ocr.yaml", body)


def test_a_bad_image_stops_prepare_data_naming_its_row(lines_with_a_bad_image):
    from forge.models.loading import load_preprocessor

    folder, config = lines_with_a_bad_image
    cfg = load_config(config)
    task = task_of(cfg)
    assert (cfg.task.type, cfg.task.columns.image, cfg.task.bad_rows) == ("image_to_text", "img", "error")
    processor = load_preprocessor(cfg.student.path, task.head())
    with pytest.raises(ForgeError, match=r"split train, row 2: column 'img': unreadable image .*task.bad_rows: skip"):
        task.prepare(processor, folder / "prepared")


def test_skip_bad_images_drops_the_row_and_keeps_the_rest(lines_with_a_bad_image, caplog):
    from forge.models.loading import load_preprocessor

    folder, config = lines_with_a_bad_image
    cfg = load_config(config, {"task.skip_bad_images": True})  # the old key: task.bad_rows: skip
    assert cfg.task.bad_rows == "skip"
    task = task_of(cfg)
    processor = load_preprocessor(cfg.student.path, task.head())
    sizes = task.prepare(processor, folder / "prepared")
    assert sizes == {"train": 3, "test": 1}
    assert "skipping train row 2: column 'img': unreadable image" in caplog.text
    assert "skipped 1 of 4 train rows (task.bad_rows: skip)" in caplog.text
    train = task.load_prepared(folder / "prepared")["train"]
    assert train["text"] == ["cat", "dog 12", "42"]
    eos = processor.tokenizer.eos_token_id
    assert all(row[-1] == eos for row in train["labels"])
    assert processor.tokenizer.decode(train["labels"][1][:-1]) == "dog 12"


def test_the_collator_pads_labels_and_shifts_them_into_decoder_inputs():
    from forge.models.loading import IMAGE_TO_TEXT, load_preprocessor

    processor = load_preprocessor("embedded:tiny-ocr", IMAGE_TO_TEXT)
    rows = [
        {"image": synthetic_ocr.render("cat", random.Random(0)), "labels": [5, 6, 8, 2]},
        {"image": synthetic_ocr.render("42", random.Random(1)), "labels": [7, 2]},
    ]
    batch = ocr.LineCollator(processor, decoder_start_token_id=1)(rows)
    assert batch["pixel_values"].shape == (2, 3, synthetic_ocr.HEIGHT, synthetic_ocr.WIDTH)
    assert batch["labels"].tolist() == [[5, 6, 8, 2], [7, 2, -100, -100]]
    pad = processor.tokenizer.pad_token_id
    # the decoder reads the start token, then each label before the one it predicts
    assert batch["decoder_input_ids"].tolist() == [[1, 5, 6, 8], [1, 7, 2, pad]]
