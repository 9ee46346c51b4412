"""On-policy distillation's pieces (forge/trainers/on_policy.py): which micro-batches are on
policy, the prompts a batch holds, the batch built from sampled answers, and sampling that is
seeded and leaves the global random state alone (so a resumed run draws the same)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from forge.trainers import on_policy


def test_the_on_policy_share_is_lambda_and_each_draw_is_fixed_by_seed_step_and_micro_batch():
    draws = [on_policy.is_on_policy(0.3, 7, step, micro) for step in range(500) for micro in range(4)]
    assert 0.27 < sum(draws) / len(draws) < 0.33
    assert draws == [on_policy.is_on_policy(0.3, 7, step, micro) for step in range(500) for micro in range(4)]
    assert draws != [on_policy.is_on_policy(0.3, 8, step, micro) for step in range(500) for micro in range(4)]
    assert not any(on_policy.is_on_policy(0.0, 7, s, 0) for s in range(50))
    assert all(on_policy.is_on_policy(1.0, 7, s, 0) for s in range(50))


def test_a_rows_prompt_is_what_comes_before_its_first_label():
    ids = torch.tensor([[5, 6, 7, 8, 0], [9, 10, 11, 12, 13]])
    labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, -100, -100, -100, 13]])
    assert on_policy.prompts(ids, labels) == [[5, 6], [9, 10, 11, 12]]


def test_answers_become_a_right_padded_batch_labelled_on_the_answer_only():
    batch = on_policy.completion_batch([[5, 6], [9, 10, 11]], [[1, 2, 3], [4]], pad=0)
    assert batch["input_ids"].tolist() == [[5, 6, 1, 2, 3], [9, 10, 11, 4, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 1, 2, 3], [-100, -100, -100, 4, -100]]


def test_sampling_is_seeded_stops_at_the_end_token_and_leaves_the_global_random_state():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=30, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    model = LlamaForCausalLM(config).train()
    rows = [[3, 4, 5], [6, 7]]
    before = torch.get_rng_state()
    first = on_policy.sample(model, rows, pad=0, eos=2, max_new_tokens=12, seed=11)
    assert torch.equal(torch.get_rng_state(), before) and model.training  # as it was
    assert first == on_policy.sample(model, rows, pad=0, eos=2, max_new_tokens=12, seed=11)
    assert first != on_policy.sample(model, rows, pad=0, eos=2, max_new_tokens=12, seed=12)
    for answer in first:
        assert 1 <= len(answer) <= 12 and (2 not in answer[:-1])  # up to and including the end token
