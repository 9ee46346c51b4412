import torch
import torch.nn.functional as F

from forge.losses import cross_entropy


def test_matches_torch_cross_entropy_and_ignores_minus_100():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 3), torch.tensor([0, 2, 1, -100, 1, 0])
    assert torch.allclose(cross_entropy(logits, labels), F.cross_entropy(logits, labels, ignore_index=-100))


def test_num_items_normalises_over_the_accumulated_batch():
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    whole = cross_entropy(logits, labels)
    halves = cross_entropy(logits[:4], labels[:4], 8) + cross_entropy(logits[4:], labels[4:], 8)
    assert torch.allclose(whole, halves)


def test_is_zero_for_a_confident_right_answer_and_large_for_a_wrong_one():
    logits = torch.tensor([[100.0, 0.0, 0.0]])
    assert cross_entropy(logits, torch.tensor([0])).item() < 1e-6
    assert cross_entropy(logits, torch.tensor([1])).item() > 50
