"""DistillationTrainer's loss on a real batch equals the formula; alpha 0 is plain CE."""

import pytest
import torch

from forge import embedded
from forge.losses import cross_entropy, kl_distillation


@pytest.fixture(scope="module")
def models_and_batch(tmp_path_factory):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    student_dir = embedded.ensure("embedded:tiny-distilbert")
    teacher_dir = embedded.ensure("embedded:tiny-distilbert-wide")
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(teacher_dir).get_vocab()
    torch.manual_seed(0)
    student = AutoModelForSequenceClassification.from_pretrained(student_dir, num_labels=3)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir, num_labels=3)
    batch = tokenizer(["The cat runs.", "A dog sleeps near the barn."], ["The cat runs.", "No dog sleeps."],
                      padding=True, return_tensors="pt")  # fmt: skip
    batch["labels"] = torch.tensor([0, 2])
    return student, teacher, batch, tmp_path_factory.mktemp("kd")


def trainer(student, teacher, out, alpha):
    from transformers import TrainingArguments

    from forge.trainers.distillation import DistillationTrainer

    args = TrainingArguments(output_dir=str(out), report_to="none", use_cpu=True)
    return DistillationTrainer(model=student, args=args, teacher=teacher, alpha=alpha, temperature=2.0)


def test_the_loss_is_the_weighted_sum_of_ce_and_kd(models_and_batch):
    student, teacher, batch, out = models_and_batch
    student.eval()
    loss = trainer(student, teacher, out, alpha=0.3).compute_loss(student, dict(batch))
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        s, t = student(**inputs).logits, teacher(**inputs).logits
    expected = 0.7 * cross_entropy(s, labels) + 0.3 * kl_distillation(s, t, 2.0)
    assert torch.allclose(loss, expected, atol=1e-6)


def test_alpha_zero_is_plain_cross_entropy_and_the_teacher_stays_frozen(models_and_batch):
    student, teacher, batch, out = models_and_batch
    t = trainer(student, teacher, out, alpha=0.0)
    student.eval()
    loss = t.compute_loss(student, dict(batch))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    assert torch.allclose(loss, cross_entropy(student(**inputs).logits, batch["labels"]), atol=1e-6)
    assert not t.teacher.training and not any(p.requires_grad for p in t.teacher.parameters())
