"""DistillationTrainer's loss on a real batch equals the formula; alpha 0 is plain CE; the
hidden-state term uses a learned projection that the optimizer trains."""

import pytest
import torch

from forge import embedded
from forge.config.schema import HiddenStateConfig
from forge.losses import cross_entropy, hidden_state_loss, kl_distillation


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


def trainer(student, teacher, out, alpha, hidden=None):
    from transformers import TrainingArguments

    from forge.trainers.distillation import DistillationTrainer

    args = TrainingArguments(output_dir=str(out), report_to="none", use_cpu=True)
    return DistillationTrainer(model=student, args=args, teacher=teacher, alpha=alpha, temperature=2.0, hidden=hidden)


def test_the_loss_is_the_weighted_sum_of_ce_and_kd(models_and_batch):
    student, teacher, batch, out = models_and_batch
    kd = trainer(student, teacher, out, alpha=0.3)  # (Trainer() reseeds the RNG)
    student.train()
    torch.manual_seed(0)
    loss = kd.compute_loss(student, dict(batch))
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    torch.manual_seed(0)  # the same dropout masks
    s = student(**inputs).logits
    with torch.no_grad():
        t = teacher(**inputs).logits
    expected = 0.7 * cross_entropy(s, labels) + 0.3 * kl_distillation(s, t, 2.0)
    assert torch.allclose(loss, expected, atol=1e-6)


def test_evaluation_reports_plain_ce(models_and_batch):
    student, teacher, batch, out = models_and_batch
    student.eval()
    loss = trainer(student, teacher, out, alpha=0.9).compute_loss(student, dict(batch))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    assert torch.allclose(loss, cross_entropy(student(**inputs).logits, batch["labels"]), atol=1e-6)


def test_alpha_zero_is_plain_cross_entropy_and_the_teacher_stays_frozen(models_and_batch):
    student, teacher, batch, out = models_and_batch
    t = trainer(student, teacher, out, alpha=0.0)
    student.train()
    torch.manual_seed(0)
    loss = t.compute_loss(student, dict(batch))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    torch.manual_seed(0)
    assert torch.allclose(loss, cross_entropy(student(**inputs).logits, batch["labels"]), atol=1e-6)
    assert not t.teacher.training and not any(p.requires_grad for p in t.teacher.parameters())


def test_cached_and_online_kd_give_the_same_loss(models_and_batch, tmp_path):
    """Tolerance 1e-5: the cache ran the teacher on differently padded batches."""
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from forge import kd_cache

    student, teacher, batch, out = models_and_batch
    tokenizer = AutoTokenizer.from_pretrained(embedded.ensure("embedded:tiny-distilbert"))
    rows = Dataset.from_dict(
        {
            "input_ids": [
                ids[m.bool()].tolist() for ids, m in zip(batch["input_ids"], batch["attention_mask"], strict=True)
            ],
            "labels": batch["labels"].tolist(),
        }
    )
    cached = kd_cache.compute(teacher, rows, DataCollatorWithPadding(tokenizer), batch_size=1)  # one row at a time
    online_kd, cached_kd = trainer(student, teacher, out, alpha=0.5), trainer(student, None, out, alpha=0.5)
    student.train()
    torch.manual_seed(0)
    online = online_kd.compute_loss(student, dict(batch))
    torch.manual_seed(0)  # same dropout masks
    with_cache = cached_kd.compute_loss(student, {**batch, "teacher_logits": torch.tensor(cached)})
    assert torch.allclose(online, with_cache, atol=1e-5)


def test_a_top_k_cache_with_every_label_equals_the_whole_cache(models_and_batch):
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from forge import kd_cache

    student, teacher, batch, out = models_and_batch
    collator = DataCollatorWithPadding(AutoTokenizer.from_pretrained(embedded.ensure("embedded:tiny-distilbert")))
    rows = Dataset.from_dict({"input_ids": batch["input_ids"].tolist(), "labels": batch["labels"].tolist()})
    whole = kd_cache.compute(teacher, rows, collator, batch_size=2)
    values, ids = kd_cache.compute(teacher, rows, collator, batch_size=2, top_k=3)
    assert values.shape == ids.shape == (2, 3) and ids.dtype.name == "int32"
    assert torch.equal(torch.tensor(values), torch.tensor(whole).sort(dim=-1, descending=True).values)

    kd = trainer(student, None, out, alpha=0.5)
    student.train()
    torch.manual_seed(0)
    full = kd.compute_loss(student, {**batch, "teacher_logits": torch.tensor(whole)})
    torch.manual_seed(0)
    top = kd.compute_loss(
        student, {**batch, "teacher_topk_values": torch.tensor(values), "teacher_topk_indices": torch.tensor(ids)}
    )
    assert torch.allclose(full, top, atol=1e-6)


def test_a_changed_teacher_or_changed_data_gets_a_new_cache_entry(models_and_batch, tmp_path):
    from forge import kd_cache

    _, teacher, _, _ = models_and_batch
    data = tmp_path / "train"
    data.mkdir()
    (data / "data-00000-of-00001.arrow").write_bytes(b"rows")
    key = kd_cache.fingerprint(teacher, data)
    assert kd_cache.fingerprint(teacher, data) == key
    with torch.no_grad():
        teacher.classifier.bias.add_(1e-3)
    try:
        assert kd_cache.fingerprint(teacher, data) != key
    finally:
        with torch.no_grad():
            teacher.classifier.bias.sub_(1e-3)
    (data / "data-00000-of-00001.arrow").write_bytes(b"other rows")
    assert kd_cache.fingerprint(teacher, data) != key


def test_the_hidden_state_term_projects_the_student_to_the_teachers_width(models_and_batch):
    student, teacher, batch, out = models_and_batch
    kd = trainer(student, teacher, out, alpha=0.4, hidden=HiddenStateConfig(weight=0.5, loss="mse"))
    assert (kd.projection.in_features, kd.projection.out_features) == (64, 128)  # tiny → tiny-wide
    optimizer = kd.create_optimizer()
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert all(id(p) in trained for p in kd.projection.parameters())

    student.train()
    torch.manual_seed(0)
    loss = kd.compute_loss(student, dict(batch))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    torch.manual_seed(0)
    s = student(**inputs, output_hidden_states=True)
    with torch.no_grad():
        t = teacher(**inputs, output_hidden_states=True)
    hidden = hidden_state_loss(kd.projection(s.hidden_states[-1]), t.hidden_states[-1], inputs["attention_mask"], "mse")
    expected = 0.6 * cross_entropy(s.logits, batch["labels"]) + 0.4 * kl_distillation(s.logits, t.logits, 2.0)
    assert torch.allclose(loss, expected + 0.5 * hidden, atol=1e-6)
    loss.backward()
    assert kd.projection.weight.grad is not None and kd.projection.weight.grad.abs().sum() > 0
    student.zero_grad()


def test_the_projection_goes_into_a_checkpoint_and_comes_back_from_it(models_and_batch, tmp_path):
    student, teacher, _, out = models_and_batch
    hidden = HiddenStateConfig(weight=0.5, loss="mse")
    saved, resumed = (trainer(student, teacher, out, alpha=0.5, hidden=hidden) for _ in range(2))
    torch.nn.init.normal_(saved.projection.weight)
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    saved.save_extras(str(folder))
    assert not torch.equal(resumed.projection.weight, saved.projection.weight)
    resumed.load_extras(str(folder))
    assert torch.equal(resumed.projection.weight, saved.projection.weight)
    assert torch.equal(resumed.projection.bias, saved.projection.bias)
    with pytest.raises(FileNotFoundError, match="hidden_projection.pt"):  # never a silent fresh projection
        resumed.load_extras(str(tmp_path))


def test_equal_widths_need_no_projection(models_and_batch):
    from transformers import AutoModelForSequenceClassification

    student, _, _, out = models_and_batch
    same_width = AutoModelForSequenceClassification.from_pretrained(
        embedded.ensure("embedded:tiny-distilbert"), num_labels=3
    )
    kd = trainer(student, same_width, out, alpha=0.5, hidden=HiddenStateConfig(weight=1.0))
    assert isinstance(kd.projection, torch.nn.Identity)


def test_sequence_kd_distils_each_decoder_token_and_skips_padding(tmp_path):
    """OCR: one distribution per decoder token; a padded label position is no item, so the
    teacher's logits there change nothing."""
    import random

    from transformers import AutoModelForImageTextToText, AutoProcessor

    from forge.embedded import synthetic_ocr
    from forge.tasks.image_to_text import LineCollator

    student_dir, teacher_dir = embedded.ensure("embedded:tiny-ocr"), embedded.ensure("embedded:tiny-ocr-wide")
    processor = AutoProcessor.from_pretrained(student_dir)
    assert processor.tokenizer.get_vocab() == AutoProcessor.from_pretrained(teacher_dir).tokenizer.get_vocab()
    student = AutoModelForImageTextToText.from_pretrained(student_dir)
    teacher = AutoModelForImageTextToText.from_pretrained(teacher_dir)
    assert teacher.config.decoder.d_model == 128 and student.config.decoder.d_model == 64
    texts = ["blue 42", "a long line of words"]
    rows = [
        {"image": synthetic_ocr.render(t, random.Random(i)), "labels": processor.tokenizer(t).input_ids + [2]}
        for i, t in enumerate(texts)
    ]
    batch = LineCollator(processor, student.config.decoder_start_token_id)(rows)
    mask = batch["labels"] != -100
    assert not mask.all()  # the short line is padded

    kd = trainer(student, None, tmp_path, alpha=0.5)
    student.train()
    torch.manual_seed(0)
    s = student(**{k: v for k, v in batch.items() if k != "labels"}).logits
    with torch.no_grad():
        t = teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits
    expected = 0.5 * cross_entropy(s, batch["labels"]) + 0.5 * kl_distillation(s, t, 2.0, mask)
    torch.manual_seed(0)
    loss = kd.compute_loss(student, {**batch, "teacher_logits": t})
    assert torch.allclose(loss, expected, atol=1e-6)
    noisy = t.clone()
    noisy[~mask] = torch.randn_like(noisy[~mask]) * 10  # garbage where the labels are padding
    torch.manual_seed(0)
    assert torch.allclose(kd.compute_loss(student, {**batch, "teacher_logits": noisy}), loss, atol=1e-6)
    online_kd = trainer(student, teacher, tmp_path, alpha=0.5)
    torch.manual_seed(0)
    online = online_kd.compute_loss(student, dict(batch))
    assert torch.allclose(online, loss, atol=1e-6)


def test_a_transfer_set_row_counts_for_kd_and_not_for_ce(models_and_batch):
    """With a transfer set, the second row has no label: CE is the first row's, KL the mean
    over both rows, over the whole accumulated batch (get_batch_samples counts its rows)."""
    from forge.trainers.distillation import DistillationTrainer

    student, teacher, batch, out = models_and_batch
    kd = trainer(student, teacher, out, alpha=0.4)
    assert isinstance(kd, DistillationTrainer)
    kd.transfer = True
    partly = dict(batch, labels=torch.tensor([1, -100]))
    kd.get_batch_samples(iter([partly]), 1, torch.device("cpu"))
    student.train()
    torch.manual_seed(0)
    loss = kd.compute_loss(student, dict(partly), num_items_in_batch=torch.tensor(1))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    torch.manual_seed(0)
    s = student(**inputs).logits
    with torch.no_grad():
        t = teacher(**inputs).logits
    ce = torch.nn.functional.cross_entropy(s[:1], torch.tensor([1]))
    expected = 0.6 * ce + 0.4 * kl_distillation(s, t, 2.0)
    assert torch.allclose(loss, expected, atol=1e-6)

    # A batch of transfer rows alone: no CE at all, a finite loss, gradients from KD only.
    student.zero_grad()
    none = dict(batch, labels=torch.tensor([-100, -100]))
    kd.get_batch_samples(iter([none]), 1, torch.device("cpu"))
    loss = kd.compute_loss(student, dict(none), num_items_in_batch=torch.tensor(0))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)


@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
def test_a_causal_lm_distils_per_answer_token_shifted_like_its_ce(divergence, tmp_path):
    """For a causal LM the logits at t are for the token at t + 1: CE and the divergence
    both compare them where a label follows, prompt and padding (-100) excluded."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from forge.losses import jsd_distillation, next_token_cross_entropy, reverse_kl_distillation
    from forge.tasks.chat import supervise
    from forge.trainers.distillation import DistillationTrainer

    path = embedded.ensure("embedded:tiny-causal-lm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    student = AutoModelForCausalLM.from_pretrained(path)
    teacher = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    chats = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
             for q, a in (("1 + 2?", "3 #### 3"), ("10 - 4?", "6 #### 6"))]  # fmt: skip
    rows = []
    for turns in chats:
        ids, labels = supervise(tokenizer, turns, "completion")
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    width = max(len(r["input_ids"]) for r in rows)
    batch = {
        key: torch.tensor([r[key] + [pad] * (width - len(r[key])) for r in rows])
        for key, pad in (("input_ids", tokenizer.pad_token_id), ("attention_mask", 0), ("labels", -100))
    }
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    kd = DistillationTrainer(
        model=student,
        args=args,
        teacher=teacher,
        alpha=0.3,
        temperature=2.0,
        loss=divergence,
        beta=0.25,
        next_token=True,
    )
    student.train()
    torch.manual_seed(0)
    loss = kd.compute_loss(student, dict(batch))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    torch.manual_seed(0)
    s = student(**inputs).logits
    with torch.no_grad():
        t = teacher(**inputs).logits
    mask = batch["labels"][:, 1:] != -100
    assert 0 < mask.sum() < mask.numel()  # the prompts are excluded
    term = {
        "forward_kl": lambda: kl_distillation(s[:, :-1], t[:, :-1], 2.0, mask),
        "reverse_kl": lambda: reverse_kl_distillation(s[:, :-1], t[:, :-1], 2.0, mask),
        "jsd": lambda: jsd_distillation(s[:, :-1], t[:, :-1], 0.25, 2.0, mask),
    }[divergence]()
    expected = 0.7 * next_token_cross_entropy(s, batch["labels"]) + 0.3 * term
    assert torch.allclose(loss, expected, atol=1e-6)
