"""A checkpoint's weights come back whole on resume, under whatever names the architecture
keeps them in memory (forge/trainers/resume.py): the OCR model's ViT encoder is saved under
its legacy names and kept under new ones, which the Trainer's own loading misses."""

from __future__ import annotations

import pytest

from forge import embedded


@pytest.mark.parametrize("name", ["tiny-ocr", "tiny-causal-lm"])
def test_every_weight_of_a_checkpoint_is_loaded_back(name, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, TrainingArguments

    from forge.trainers.finetuning import FinetuningTrainer

    auto = AutoModelForImageTextToText if name == "tiny-ocr" else AutoModelForCausalLM
    path = embedded.ensure(f"embedded:{name}")
    trained = auto.from_pretrained(path)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in trained.parameters():  # what training would have moved: every weight
            parameter.add_(torch.randn_like(parameter))
    trained.save_pretrained(tmp_path / "checkpoint-1")

    model = auto.from_pretrained(path)  # the run's model as a resumed attempt builds it
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    FinetuningTrainer(model=model, args=args)._load_from_checkpoint(str(tmp_path / "checkpoint-1"))
    expected = trained.state_dict()
    different = [k for k, v in model.state_dict().items() if not torch.equal(v, expected[k])]
    assert not different, different
