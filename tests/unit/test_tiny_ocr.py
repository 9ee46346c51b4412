"""The embedded OCR model: a Hub-format vision encoder-decoder and processor that
transformers' Auto classes load, that computes a loss on line images and generates."""

import random

from forge import embedded
from forge.embedded import synthetic_ocr


def test_the_tiny_ocr_model_loads_learns_and_transcribes():
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = embedded.ensure("embedded:tiny-ocr")
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert type(model).__name__ == "VisionEncoderDecoderModel"
    assert sum(p.numel() for p in model.parameters()) < 300_000

    texts = ["blue 42", "home"]
    images = [synthetic_ocr.render(t, random.Random(i)) for i, t in enumerate(texts)]
    pixels = processor(images=images, return_tensors="pt").pixel_values
    assert pixels.shape == (2, 3, synthetic_ocr.HEIGHT, synthetic_ocr.WIDTH)
    ids = processor.tokenizer(texts, padding=True, return_tensors="pt").input_ids
    labels = ids.masked_fill(ids == processor.tokenizer.pad_token_id, -100)
    assert processor.tokenizer.decode(ids[0], skip_special_tokens=True) == "blue 42"  # digits decode back

    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model(pixel_values=pixels, labels=labels).loss
    for _ in range(20):  # it can fit two lines: the loss falls
        loss = model(pixel_values=pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < first.item() / 2

    out = model.generate(pixel_values=pixels, max_new_tokens=8)
    assert out.shape[0] == 2 and (out[:, 0] == model.generation_config.decoder_start_token_id).all()
