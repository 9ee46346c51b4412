"""Students cut from their teachers (student.layers): the kept layers are the teacher's own,
the cut model saves and loads in Hub format, and what cannot be cut is refused in one line."""

import pytest
import torch

from forge import embedded
from forge.errors import ConfigError
from forge.models.layers import keep_layers
from forge.models.loading import CAUSAL_LM, ModelSource, classifier, load_model


def _params(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_a_cut_distilbert_keeps_the_chosen_layers_weights_and_saves_in_hub_format(tmp_path):
    from transformers import AutoModelForSequenceClassification

    path = embedded.ensure("embedded:tiny-distilbert-wide")  # 3 layers
    head = classifier(("a", "b", "c"))
    torch.manual_seed(0)
    whole = load_model(ModelSource(str(path)), head)
    torch.manual_seed(0)
    cut = load_model(ModelSource(str(path), layers=(0, 2)), head)
    assert cut.config.num_hidden_layers == cut.config.n_layers == 2
    layers = cut.distilbert.transformer.layer
    assert len(layers) == 2
    for kept, original in zip(layers, (0, 2), strict=True):
        theirs = _params(whole.distilbert.transformer.layer[original])
        assert all(torch.equal(v, theirs[k]) for k, v in _params(kept).items())
    assert torch.equal(
        cut.distilbert.embeddings.word_embeddings.weight, whole.distilbert.embeddings.word_embeddings.weight
    )

    cut.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert again.config.n_layers == 2
    mine, reloaded = cut.state_dict(), again.state_dict()
    assert mine.keys() == reloaded.keys() and all(torch.equal(v, reloaded[k]) for k, v in mine.items())
    ids = torch.tensor([[2, 10, 11, 3]])
    cut.eval(), again.eval()
    # same weights; the forward passes differed in the last bit on CI (kernel rounding)
    torch.testing.assert_close(cut(input_ids=ids).logits, again(input_ids=ids).logits)


def test_a_cut_llama_renumbers_its_cache_layers_and_generates(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    model = LlamaForCausalLM(config)
    model.save_pretrained(tmp_path / "teacher")
    cut = load_model(ModelSource(str(tmp_path / "teacher"), layers=(1, 3)), CAUSAL_LM)
    assert [layer.self_attn.layer_idx for layer in cut.model.layers] == [0, 1]
    assert cut.config.num_hidden_layers == 2
    out = cut.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False)  # the KV cache has 2 layers
    assert out.shape == (1, 7)
    cut.save_pretrained(tmp_path / "student")
    assert LlamaForCausalLM.from_pretrained(tmp_path / "student").config.num_hidden_layers == 2


def test_layers_outside_the_model_are_refused():
    path = embedded.ensure("embedded:tiny-distilbert")  # 2 layers
    with pytest.raises(ConfigError, match=r"\[2\] outside the model's 2 layers"):
        load_model(ModelSource(str(path), layers=(0, 2)), classifier(("a", "b", "c")))


def test_an_encoder_decoder_is_refused_for_want_of_one_stack():
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(embedded.ensure("embedded:tiny-ocr"))
    with pytest.raises(ConfigError, match="cannot tell which layers of a VisionEncoderDecoderModel"):
        keep_layers(model, [0])
