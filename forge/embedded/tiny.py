"""Tiny models built locally: random init from a small config, with a tokenizer trained
on the task's own text, saved in Hub format.

- DistilBERT family (MNLI): a WordPiece tokenizer; saved as `distilbert-base-uncased`
  is (a masked-LM checkpoint; the task head is added when the task loads it).
- Llama family (the RL path's policy): a byte-level BPE with digits split, and a
  ChatML chat template.
- Vision encoder-decoder (OCR, TrOCR-style): a small ViT reading 32 x 128 line images
  as 32 column patches, and a small TrOCR text decoder, with a `TrOCRProcessor` (image processor + a
  byte-level BPE trained on the transcriptions)."""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: list[str], vocab_size: int = 400):
    """A BERT-style WordPiece tokenizer for `texts`, the same whichever process builds it:
    the special tokens, every character of the texts and of printable ASCII (alone and as a
    `##` continuation), then whole words,
    most frequent first (ties alphabetical), up to `vocab_size`. A word outside the vocabulary
    splits into characters. (tokenizers' WordPieceTrainer breaks ties between equally frequent
    merges in hash order, which differs per process: two builds gave vocabularies whose ids
    differed for 37 of 270 tokens, even with a fixed initial alphabet.)"""
    import string
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    ascii_chars = string.ascii_lowercase + string.digits + string.punctuation
    chars = sorted({ch for word in words for ch in word} | set(ascii_chars))
    vocab = [*SPECIAL_TOKENS, *chars, *(f"##{ch}" for ch in chars)]
    known = set(vocab)
    for word, _ in sorted(words.items(), key=lambda item: (-item[1], item[0])):
        if len(vocab) >= vocab_size:
            break
        if word not in known:
            vocab.append(word)
            known.add(word)
    tok = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def build_tiny_distilbert(
    out: Path, texts: list[str], seed: int = 0, dim: int = 64, layers: int = 2, tokenizer_from: Path | None = None
) -> None:
    """A random-init DistilBERT with a tokenizer trained on `texts`, or the tokenizer of
    `tokenizer_from` (teacher and student of a KD pair must tokenize alike)."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForMaskedLM, DistilBertTokenizer

    max_positions = 128
    if tokenizer_from is not None:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from, local_files_only=True)  # see pretrained.py
    else:
        tokenizer = DistilBertTokenizer(tokenizer_object=train_wordpiece(texts), model_max_length=max_positions)
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=dim,
        n_layers=layers,
        n_heads=max(2, dim // 32),
        hidden_dim=2 * dim,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = DistilBertForMaskedLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


CHAT_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]
# ChatML, the template of many small chat models: a prompt ends with the assistant's
# header, and a turn ends with <|im_end|>, the model's end-of-sequence token.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_byte_bpe(texts: list[str], vocab_size: int = 512, special_tokens: list[str] = CHAT_TOKENS):
    """A byte-level BPE that splits numbers into digits (arithmetic stays learnable) and
    decodes back to the exact text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def build_tiny_causal_lm(out: Path, texts: list[str], seed: int = 0, dim: int = 64, layers: int = 2) -> None:
    """A random-init Llama-family causal LM with a chat template and a byte-level BPE
    trained on `texts`, saved in Hub format (the offline policy of the RL path)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    max_positions = 256
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_byte_bpe(texts),
        pad_token="<|pad|>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        model_max_length=max_positions,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=dim,
        intermediate_size=2 * dim,
        num_hidden_layers=layers,
        num_attention_heads=max(2, dim // 32),
        num_key_value_heads=max(2, dim // 32),
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


OCR_TOKENS = ["<pad>", "<s>", "</s>"]


def build_tiny_ocr(
    out: Path, texts: list[str], seed: int = 0, dim: int = 64, layers: int = 2, processor_from: Path | None = None
) -> None:
    """A random-init ViT encoder + TrOCR decoder for 32 x 128 line images, with a
    `TrOCRProcessor` whose tokenizer is a byte-level BPE trained on `texts`, or the
    processor of `processor_from` (teacher and student of a KD pair must tokenize alike)."""
    import torch
    from transformers import (
        AutoProcessor,
        PreTrainedTokenizerFast,
        TrOCRConfig,
        TrOCRProcessor,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessorPil,
    )

    height, width, max_positions = 32, 128, 64
    if processor_from is not None:
        processor = AutoProcessor.from_pretrained(processor_from, local_files_only=True)  # as above
    else:
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=train_byte_bpe(texts, vocab_size=384, special_tokens=OCR_TOKENS),
            pad_token="<pad>",
            bos_token="<s>",
            eos_token="</s>",
            model_max_length=max_positions,
        )
        image_processor = ViTImageProcessorPil(
            size={"height": height, "width": width}, image_mean=[0.5] * 3, image_std=[0.5] * 3
        )
        processor = TrOCRProcessor(image_processor=image_processor, tokenizer=tokenizer)
    tokenizer = processor.tokenizer
    encoder = ViTConfig(
        image_size=(height, width),
        # one patch per 4-pixel column of the whole line: 32 tokens left to right, which
        # trained ~4x faster per step and fell below CER 0.9 sooner than 8 x 8 patches
        patch_size=(height, 4),
        hidden_size=dim,
        num_hidden_layers=layers,
        num_attention_heads=max(2, dim // 32),
        intermediate_size=2 * dim,
    )
    special = dict(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
    )
    decoder = TrOCRConfig(
        vocab_size=len(tokenizer),
        d_model=dim,
        decoder_layers=layers,
        decoder_attention_heads=max(2, dim // 32),
        decoder_ffn_dim=2 * dim,
        max_position_embeddings=max_positions,
        **special,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    for key, value in special.items():  # generation and the label shift read them here
        setattr(config, key, value)
    torch.manual_seed(seed)
    model = VisionEncoderDecoderModel(config=config)
    for key, value in special.items():
        setattr(model.generation_config, key, value)
    model.save_pretrained(out)
    processor.save_pretrained(out)
