"""The per-token top-k teacher cache of a causal LM (forge/kd_cache.py: ensure_tokens, TokenCache,
TokenCacheCollator): what it stores, that the KD term read from it is the term computed from the
teacher online, that shards change nothing, and that a cache of other data is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, LlamaConfig, LlamaForCausalLM

from forge import kd_cache
from forge.kd_cache import TOPK_INDICES, TOPK_VALUES
from forge.losses import kl_distillation, kl_distillation_topk

VOCAB = 40


class _Tokenizer:
    """What DataCollatorForSeq2Seq asks of a tokenizer, for rows already tokenized."""

    pad_token_id = 0
    padding_side = "right"
    model_input_names = ["input_ids", "attention_mask"]

    def pad(self, features, padding=True, max_length=None, pad_to_multiple_of=None, return_tensors="pt"):
        width = max(len(f["input_ids"]) for f in features)
        ids = [f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in features]
        mask = [[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features]
        out = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
        if "labels" in features[0]:
            out["labels"] = torch.tensor([f["labels"] for f in features])
        return out


def _model(seed: int):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _rows(n: int = 12) -> Dataset:
    """Rows of different lengths: a prompt (label -100) and an answer (labelled)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        prompt, answer = 3 + i % 4, 2 + i % 5
        ids = rng.integers(1, VOCAB, prompt + answer).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * prompt + ids[prompt:]})
    return Dataset.from_list(rows)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    (tmp_path / "split").mkdir()
    return tmp_path


def _collator():
    return DataCollatorForSeq2Seq(_Tokenizer(), padding=True, label_pad_token_id=-100)


def _cached_batch(home, top_k: int, rows: Dataset, indices: list[int]):
    teacher = _model(1)
    _, path = kd_cache.ensure_tokens(teacher, rows, home / "split", _collator(), 5, top_k)
    collate = kd_cache.TokenCacheCollator(_collator(), kd_cache.TokenCache(path))
    features = [kd_cache.with_rows(rows)[i] for i in indices]
    return teacher, path, collate(features)


def test_the_cache_keeps_each_answer_tokens_top_k_in_float16_and_small_ids(home):
    rows = _rows()
    _, path, _ = _cached_batch(home, 8, rows, [0])
    cache = kd_cache.TokenCache(path)
    assert len(cache) == len(rows)
    # every token that has a label after it, i.e. each answer token (the first is predicted from the prompt)
    assert cache.meta["tokens"] == sum(sum(x != -100 for x in r["labels"][1:]) for r in rows)
    values, ids = cache.row(3)
    assert values.dtype == np.float16 and ids.dtype == np.uint16 and values.shape == (2 + 3 % 5, 8)
    assert np.all(np.diff(values.astype(np.float32), axis=-1) <= 0)  # the largest first
    assert cache.meta["bytes_per_token"] == 8 * 4 == kd_cache.bytes_per_token(8, VOCAB)
    assert kd_cache.bytes_per_token(32, 151_936) == 32 * 6  # a vocabulary beyond 65,536 ids: int32


def test_at_k_equal_to_the_vocabulary_the_cached_term_is_the_online_term(home):
    rows = _rows()
    teacher, _, batch = _cached_batch(home, VOCAB, rows, [0, 5, 7])
    student = _model(2)
    mask = batch["labels"][:, 1:] != -100
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    student_logits = student(**inputs).logits[:, :-1]
    with torch.no_grad():
        online = kl_distillation(student_logits, teacher(**inputs).logits[:, :-1], 2.0, mask)
    cached = kl_distillation_topk(student_logits, batch[TOPK_VALUES], batch[TOPK_INDICES], 2.0, mask)
    assert torch.allclose(cached, online, rtol=2e-3), (cached, online)  # the teacher's logits in float16
    cached.backward()
    assert student.lm_head.weight.grad.abs().sum() > 0


def test_at_small_k_the_cached_term_is_the_top_k_term_of_the_online_logits(home):
    rows = _rows()
    teacher, _, batch = _cached_batch(home, 4, rows, [1, 2, 11])
    student = _model(2)
    mask = batch["labels"][:, 1:] != -100
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    student_logits = student(**inputs).logits[:, :-1]
    with torch.no_grad():
        values, ids = teacher(**inputs).logits[:, :-1].topk(4, dim=-1)
    assert torch.equal(batch[TOPK_INDICES][mask], ids[mask])
    expected = kl_distillation_topk(student_logits, values.half(), ids, 2.0, mask)
    assert torch.equal(
        kl_distillation_topk(student_logits, batch[TOPK_VALUES], batch[TOPK_INDICES], 2.0, mask), expected
    )


def test_shards_change_nothing(home, monkeypatch):
    rows = _rows()
    *_, whole = _cached_batch(home, 4, rows, [0, 6, 11])
    monkeypatch.setattr(kd_cache, "SHARD_TOKENS", 7)
    teacher = _model(1)
    (home / "other").mkdir()
    (home / "other" / "x.arrow").write_bytes(b"another key")  # a fresh entry, written with small shards
    _, path = kd_cache.ensure_tokens(teacher, rows, home / "other", _collator(), 5, 4)
    assert len(list(path.glob("shard-*.values.npy"))) > 3
    sharded = kd_cache.TokenCacheCollator(_collator(), kd_cache.TokenCache(path))
    batch = sharded([kd_cache.with_rows(rows)[i] for i in (0, 6, 11)])
    for key in (TOPK_VALUES, TOPK_INDICES, "labels"):
        assert torch.equal(batch[key], whole[key])


def test_a_cache_of_other_data_is_refused(home):
    rows = _rows()
    _, path, _ = _cached_batch(home, 4, rows, [0])
    collate = kd_cache.TokenCacheCollator(_collator(), kd_cache.TokenCache(path))
    other = dict(kd_cache.with_rows(rows)[2])
    other["labels"] = [-100] * len(other["labels"])
    other["labels"][-1] = other["input_ids"][-1]
    with pytest.raises(ValueError, match="cached answer tokens, the batch 1: the cache belongs to other data"):
        collate([other])
    assert collate([{k: v for k, v in other.items() if k != kd_cache.ROW}])["input_ids"].shape[0] == 1  # evaluation
