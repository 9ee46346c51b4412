"""Tiny DistilBERT-family models built locally: random init from a small config,
with a WordPiece tokenizer trained on the task's own text. Saved in Hub format,
as `distilbert-base-uncased` is (a masked-LM checkpoint; the task head is added
when the task loads it)."""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: list[str], vocab_size: int = 400):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS))
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
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
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
