"""LoRA settings become the peft config forge means, and adapter directories resolve to
their base."""

from __future__ import annotations

import json

import pytest

from forge.config.schema import LoraConfig
from forge.errors import ConfigError
from forge.models.loading import ModelSource, adapter_base, classifier, load_student, load_tokenizer
from forge.models.lora import peft_config


def test_a_fresh_head_is_trained_whole_and_not_adapted():
    config = peft_config(LoraConfig(r=4, alpha=8, dropout=0.1), ["pre_classifier", "classifier"])
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, 8, 0.1)
    assert config.target_modules == "all-linear"
    assert set(config.exclude_modules) == {"pre_classifier", "classifier"}
    assert {"pre_classifier", "classifier"} <= set(config.modules_to_save)


def test_configured_modules_add_to_the_fresh_ones():
    lora = LoraConfig(target_modules=["q_lin", "v_lin"], modules_to_save=["classifier", "extra"])
    config = peft_config(lora, ["classifier"])
    assert set(config.target_modules) == {"q_lin", "v_lin"}
    assert not config.exclude_modules
    assert [m for m in config.modules_to_save if m in ("classifier", "extra")][:2] == ["classifier", "extra"]


def write_adapter(folder, base: str | None):
    folder.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA"} | ({"base_model_name_or_path": base} if base else {})
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def test_adapter_directories_name_their_base(tmp_path):
    assert adapter_base(str(write_adapter(tmp_path / "a", "some/base"))) == "some/base"
    assert adapter_base(str(tmp_path)) is None  # a plain model directory
    assert adapter_base("distilbert-base-uncased") is None
    with pytest.raises(ConfigError, match="base_model_name_or_path"):
        adapter_base(str(write_adapter(tmp_path / "b", None)))


def test_an_adapter_student_with_lora_on_top_is_refused_before_loading_anything(tmp_path):
    adapter = write_adapter(tmp_path / "adapter", str(tmp_path / "missing-base"))
    with pytest.raises(ConfigError, match="merge the adapter"):
        load_student(ModelSource(str(adapter)), classifier(("a", "b")), LoraConfig())


def test_an_adapter_without_a_tokenizer_uses_its_bases(tmp_path):
    from forge import embedded

    base = embedded.ensure("embedded:tiny-distilbert")
    tokenizer = load_tokenizer(str(write_adapter(tmp_path / "adapter", str(base))))
    assert tokenizer.get_vocab() == load_tokenizer(str(base)).get_vocab()
