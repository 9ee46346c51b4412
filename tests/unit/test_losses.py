import math

import pytest
import torch
import torch.nn.functional as F

from forge.losses import (
    cross_entropy,
    distillation_objective,
    hidden_state_loss,
    jsd_distillation,
    jsd_distillation_topk,
    kl_distillation,
    kl_distillation_topk,
    next_token_cross_entropy,
    reverse_kl_distillation,
    reverse_kl_distillation_topk,
)


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


@pytest.mark.parametrize("num_items", [None, 0, torch.tensor(0)])
def test_no_labelled_item_is_no_loss_not_nan(num_items):
    """A batch of a KD transfer set may hold no labelled row: CE is 0, with a gradient of 0."""
    logits = torch.randn(3, 4, requires_grad=True)
    loss = cross_entropy(logits, torch.full((3,), -100), num_items)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 4))


def test_next_token_loss_predicts_each_label_from_the_position_before():
    # position t's logits point at token t + 1: the loss is zero when each label is the next one
    labels = torch.tensor([[-100, 2, 0, 1]])
    logits = torch.full((1, 4, 3), -30.0)
    for t, nxt in enumerate([2, 0, 1]):
        logits[0, t, nxt] = 30.0
    logits[0, 3] = torch.tensor([30.0, -30.0, -30.0])  # the last position predicts nothing
    assert next_token_cross_entropy(logits, labels).item() == pytest.approx(0.0, abs=1e-6)
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, 1], [-100, 6, 0, -100, -100]])
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(next_token_cross_entropy(logits, labels), expected)
    assert torch.allclose(next_token_cross_entropy(logits, labels, 5), expected)  # 5 labelled tokens


def test_is_zero_for_a_confident_right_answer_and_large_for_a_wrong_one():
    logits = torch.tensor([[100.0, 0.0, 0.0]])
    assert cross_entropy(logits, torch.tensor([0])).item() < 1e-6
    assert cross_entropy(logits, torch.tensor([1])).item() > 50


def test_kd_is_zero_for_identical_logits():
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    assert kl_distillation(logits, logits.clone(), temperature=2.0).abs().item() < 1e-7


def test_kd_matches_a_hand_computed_example():
    # teacher p = (0.8, 0.2), student q = (0.5, 0.5), T = 1: KL = 0.8 ln 1.6 + 0.2 ln 0.4
    teacher = torch.log(torch.tensor([[0.8, 0.2]]))
    student = torch.zeros(1, 2)
    expected = 0.8 * math.log(1.6) + 0.2 * math.log(0.4)
    assert math.isclose(kl_distillation(student, teacher).item(), expected, rel_tol=1e-6)


def test_kd_scales_with_t_squared():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 5), torch.randn(4, 5)
    at_2 = kl_distillation(student, teacher, temperature=2.0)
    manual = F.kl_div(F.log_softmax(student / 2, -1), F.log_softmax(teacher / 2, -1), log_target=True, reduction="sum")
    assert torch.allclose(at_2, manual * 4 / 4)  # T² = 4, averaged over 4 rows


def test_kd_gradient_reaches_only_the_student():
    torch.manual_seed(0)
    student = torch.randn(3, 4, requires_grad=True)
    teacher = torch.randn(3, 4, requires_grad=True)
    kl_distillation(student, teacher, temperature=3.0).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_kd_ignores_masked_tokens_and_normalises_like_ce():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    garbage = student.clone()
    garbage[mask == 0] = 1e4  # padding positions must not matter
    assert torch.allclose(kl_distillation(student, teacher, mask=mask), kl_distillation(garbage, teacher, mask=mask))
    halves = kl_distillation(student[:1], teacher[:1], mask=mask[:1], num_items_in_batch=3) + kl_distillation(
        student[1:], teacher[1:], mask=mask[1:], num_items_in_batch=3
    )
    assert torch.allclose(halves, kl_distillation(student, teacher, mask=mask))


def test_objective_mixes_ce_and_kd():
    ce, kd = torch.tensor(2.0), torch.tensor(4.0)
    assert distillation_objective(ce, kd, 0.0).item() == 2.0
    assert distillation_objective(ce, kd, 1.0).item() == 4.0
    assert distillation_objective(ce, kd, 0.25).item() == 2.5
    assert distillation_objective(ce, kd, 0.25, torch.tensor(8.0), 0.5).item() == 6.5


def test_hidden_loss_is_zero_for_identical_states():
    h = torch.randn(2, 5, 8)
    assert hidden_state_loss(h, h.clone(), kind="cosine").abs().item() < 1e-6
    assert hidden_state_loss(h, h.clone(), kind="mse").item() == 0.0


def test_hidden_loss_matches_a_hand_computed_example():
    student = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    teacher = torch.tensor([[[1.0, 1.0], [0.0, -1.0]]])
    # cosine: token 1: 1 - 1/sqrt(2); token 2: 1 - (-1) = 2
    expected = ((1 - 1 / math.sqrt(2)) + 2.0) / 2
    assert math.isclose(hidden_state_loss(student, teacher, kind="cosine").item(), expected, rel_tol=1e-6)
    # mse: token 1: (0 + 1) / 2; token 2: (0 + 9) / 2
    assert math.isclose(hidden_state_loss(student, teacher, kind="mse").item(), (0.5 + 4.5) / 2, rel_tol=1e-6)


def test_cosine_hidden_loss_ignores_scale_and_mse_does_not():
    s, t = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    assert torch.allclose(hidden_state_loss(3 * s, t), hidden_state_loss(s, t), atol=1e-6)
    assert not torch.allclose(hidden_state_loss(3 * s, t, kind="mse"), hidden_state_loss(s, t, kind="mse"))


def test_hidden_loss_ignores_padding_tokens():
    s, t = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    s2 = s.clone()
    s2[0, 3], s2[1, 2:] = 100.0, -7.0  # only padding changes
    for kind in ("cosine", "mse"):
        assert torch.allclose(hidden_state_loss(s, t, mask, kind), hidden_state_loss(s2, t, mask, kind))
        kept = hidden_state_loss(s[mask.bool()][None], t[mask.bool()][None], kind=kind)
        assert torch.allclose(hidden_state_loss(s, t, mask, kind), kept)


def test_hidden_loss_gradient_reaches_only_the_student():
    s = torch.randn(2, 3, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, requires_grad=True)
    hidden_state_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_an_unknown_hidden_loss_is_refused():
    with pytest.raises(ValueError, match="cosine"):
        hidden_state_loss(torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), kind="l1")


def test_topk_kd_with_every_class_is_full_kd():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 7, 10), torch.randn(4, 7, 10)
    values, indices = teacher.topk(10, dim=-1)
    mask = torch.rand(4, 7) > 0.3
    full = kl_distillation(student, teacher, 2.0, mask)
    assert torch.allclose(kl_distillation_topk(student, values, indices, 2.0, mask), full, atol=1e-6)


def test_topk_kd_matches_a_hand_computed_example():
    student = torch.tensor([[0.0, math.log(2.0), math.log(3.0), 0.0]])  # softmax: 1/7, 2/7, 3/7, 1/7
    values, indices = torch.tensor([[math.log(3.0), math.log(1.0)]]), torch.tensor([[1, 2]])  # p = 3/4, 1/4
    expected = 0.75 * math.log(0.75 / (2 / 7)) + 0.25 * math.log(0.25 / (3 / 7))
    assert math.isclose(kl_distillation_topk(student, values, indices).item(), expected, rel_tol=1e-6)


def test_topk_kd_is_zero_when_the_student_puts_everything_where_the_teacher_does():
    student = torch.tensor([[20.0, 20.0, -20.0, -20.0]])
    values, indices = torch.tensor([[5.0, 5.0]]), torch.tensor([[0, 1]])
    assert kl_distillation_topk(student, values, indices).item() < 1e-6


def test_topk_kd_gradient_reaches_only_the_student():
    s = torch.randn(3, 6, requires_grad=True)
    values = torch.randn(3, 2, requires_grad=True)
    kl_distillation_topk(s, values, torch.tensor([[0, 1], [2, 3], [4, 5]]), 2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and values.grad is None


@pytest.mark.parametrize(
    "topk, full",
    [
        (reverse_kl_distillation_topk, reverse_kl_distillation),
        (
            lambda s, v, i, t, m: jsd_distillation_topk(s, v, i, 0.3, t, m),
            lambda s, te, t, m: jsd_distillation(s, te, 0.3, t, m),
        ),
    ],
    ids=["reverse_kl", "jsd"],
)
def test_reverse_kl_and_jsd_over_every_class_are_their_full_versions(topk, full):
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 7, 10), torch.randn(4, 7, 10)
    values, indices = teacher.topk(10, dim=-1)
    mask = torch.rand(4, 7) > 0.3
    assert torch.allclose(topk(student, values, indices, 2.0, mask), full(student, teacher, 2.0, mask), atol=1e-6)


def test_reverse_kl_over_the_top_k_renormalises_the_student_there_by_hand():
    student = torch.tensor([[0.0, math.log(2.0), math.log(3.0), 0.0]])  # at ids 1, 2: renormalised 2/5, 3/5
    values, indices = torch.tensor([[math.log(3.0), math.log(1.0)]]), torch.tensor([[1, 2]])  # p = 3/4, 1/4
    expected = 0.4 * math.log(0.4 / 0.75) + 0.6 * math.log(0.6 / 0.25)
    assert reverse_kl_distillation_topk(student, values, indices).item() == pytest.approx(expected, abs=1e-6)
    m = (0.5 * 0.75 + 0.5 * 0.4, 0.5 * 0.25 + 0.5 * 0.6)  # the mixture at beta 0.5
    jsd = 0.5 * (0.75 * math.log(0.75 / m[0]) + 0.25 * math.log(0.25 / m[1]))
    jsd += 0.5 * (0.4 * math.log(0.4 / m[0]) + 0.6 * math.log(0.6 / m[1]))
    assert jsd_distillation_topk(student, values, indices, 0.5).item() == pytest.approx(jsd, abs=1e-6)


@pytest.mark.parametrize("topk", [reverse_kl_distillation_topk, jsd_distillation_topk])
def test_top_k_reverse_kl_and_jsd_send_gradient_to_the_student_only(topk):
    s = torch.randn(3, 6, requires_grad=True)
    values = torch.randn(3, 2, requires_grad=True)
    topk(s, values, torch.tensor([[0, 1], [2, 3], [4, 5]])).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and values.grad is None


# Hand-computed: teacher p = (1/2, 1/2) (logits 0, 0), student q = (3/4, 1/4) (logits ln 3, 0).
P_LOGITS, Q_LOGITS = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])


def test_reverse_kl_is_kl_of_the_student_from_the_teacher_by_hand():
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # 0.130812
    assert reverse_kl_distillation(Q_LOGITS, P_LOGITS).item() == pytest.approx(expected, abs=1e-6)
    forward = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # 0.143841: the other direction differs
    assert kl_distillation(Q_LOGITS, P_LOGITS).item() == pytest.approx(forward, abs=1e-6)


def test_generalised_jsd_by_hand_and_at_beta_a_quarter():
    def kl(a, b):
        return sum(x * math.log(x / y) for x, y in zip(a, b, strict=True))

    p, q = (0.5, 0.5), (0.75, 0.25)
    for beta in (0.5, 0.25):
        m = tuple(beta * x + (1 - beta) * y for x, y in zip(p, q, strict=True))
        expected = beta * kl(p, m) + (1 - beta) * kl(q, m)  # beta 0.5: 0.033822
        got = jsd_distillation(Q_LOGITS, P_LOGITS, beta=beta).item()
        assert got == pytest.approx(expected, abs=1e-6)
    assert jsd_distillation(Q_LOGITS, P_LOGITS).item() == pytest.approx(0.033822, abs=1e-6)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        jsd_distillation(Q_LOGITS, P_LOGITS, beta=1.0)


@pytest.mark.parametrize("loss", [reverse_kl_distillation, jsd_distillation])
def test_each_divergence_is_zero_for_identical_logits_and_t_squared_scaled(loss):
    logits = torch.randn(4, 7)
    assert loss(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    s, t = torch.randn(4, 7), torch.randn(4, 7)
    scaled = loss(s, t, temperature=3.0)
    unscaled = loss(s / 3.0, t / 3.0)  # dividing the logits by T is what T does, without the T² factor
    assert scaled.item() == pytest.approx(9.0 * unscaled.item(), rel=1e-5)


@pytest.mark.parametrize("loss", [kl_distillation, reverse_kl_distillation, jsd_distillation])
def test_each_divergence_sends_gradient_only_to_the_student_and_skips_masked_tokens(loss):
    student = torch.randn(2, 3, 5, requires_grad=True)
    teacher = torch.randn(2, 3, 5, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    value = loss(student, teacher, mask=mask)
    value.backward()
    assert teacher.grad is None
    assert torch.equal(student.grad[~mask], torch.zeros(3, 5)) and student.grad[mask].abs().sum() > 0
    kept = loss(student[mask].detach(), teacher[mask].detach())  # the same 3 tokens, unmasked
    assert value.item() == pytest.approx(kept.item(), abs=1e-6)
    assert loss(student, teacher, mask=mask, num_items_in_batch=6).item() == pytest.approx(value.item() / 2, abs=1e-6)
