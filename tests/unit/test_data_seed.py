"""`seed` changes the model's initialisation and the data order, not which examples a
limited-label run sees: `task.data_seed` draws the subset."""

from __future__ import annotations

import json

from forge.config import load_config
from tests.conftest import TINY_CONFIG, prepared, write_config


def prepared_rows(tmp_path, name: str, **overrides) -> list[list[int]]:
    config = write_config(
        tmp_path, f"{name}.yaml", f"base: {TINY_CONFIG}\ntask: {{max_train_samples: 40, max_eval_samples: 20}}\n"
    )
    data = prepared(load_config(config, overrides), tmp_path / name)
    return [data[split]["input_ids"] for split in ("train", "validation_matched", "validation_mismatched")]


def test_the_subset_stays_when_only_the_seed_changes_and_moves_with_the_data_seed(tmp_path):
    first = prepared_rows(tmp_path, "a", seed=1)
    assert prepared_rows(tmp_path, "b", seed=2) == first
    other = prepared_rows(tmp_path, "c", seed=1, **{"task.data_seed": 7})
    assert all(len(x) == len(y) for x, y in zip(other, first, strict=True)) and other[0] != first[0]


def test_both_seeds_are_recorded_in_run_metadata(tmp_path):
    from forge.run.session import RunSession

    config = write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\noutput_root: {tmp_path / 'out'}\nseed: 3\n")
    cfg = load_config(config, {"task.data_seed": 11})
    with RunSession(cfg) as session:
        pass
    assert json.loads(session.run.metadata.read_text())["seeds"] == {"seed": 3, "data_seed": 11}


def test_a_transfer_set_adds_unlabelled_rows_after_the_same_labelled_ones(tmp_path):
    """KD with a transfer set trains on the very labelled rows the plain run sees, then on
    rows beyond them (drawn by the same data_seed), whose labels are dropped."""
    plain = prepared_rows(tmp_path, "plain")[0]
    kd = {"teacher": {"path": "embedded:tiny-distilbert-wide"}, "distillation.alpha": 0.5}
    config = write_config(
        tmp_path, "t.yaml", f"base: {TINY_CONFIG}\ntask: {{max_train_samples: 40, max_eval_samples: 20}}\n"
    )
    cfg = load_config(config, {**kd, "distillation.transfer_samples": 25})
    train = prepared(cfg, tmp_path / "t")["train"]
    assert len(train) == 65 and train["input_ids"][:40] == plain
    labels = train["labels"]
    assert all(0 <= label < 3 for label in labels[:40]) and labels[40:] == [-100] * 25
    unlabelled = {tuple(ids) for ids in train["input_ids"][40:]}
    assert not unlabelled & {tuple(ids) for ids in plain}  # (generated rows are distinct enough)

    # More rows asked for than the split has: what is there, with a warning, not an error.
    cfg = load_config(config, {**kd, "distillation.transfer_samples": 100_000})
    assert len(prepared(cfg, tmp_path / "all")["train"]) == 8000


def test_a_transfer_set_with_no_row_left_trains_on_what_the_plain_run_does(tmp_path):
    from datasets import Dataset

    from forge.tasks.data import subset, with_transfer_set

    rows = Dataset.from_dict({"text": [f"row {i}" for i in range(10)], "label": list(range(10))})
    plain = subset(rows, 10, seed=3)  # all of them, in their order
    assert with_transfer_set(rows, 10, 5, 3, "label")["text"] == plain["text"]
    assert with_transfer_set(rows, 50, 5, 3, "label")["text"] == plain["text"]
    mixed = with_transfer_set(rows, 4, 100, 3, "label")
    assert mixed["text"][:4] == subset(rows, 4, seed=3)["text"] and mixed["label"][4:] == [-100] * 6
