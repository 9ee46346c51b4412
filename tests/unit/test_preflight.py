"""Preflight: references that do not resolve are refused before anything is created, by
`forge check` alone and by `forge --config`, one line per problem naming the file and the key.
The models and datasets these cases need are made here."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from forge.cli import main
from tests.conftest import ROOT, TINY_CONFIG, write_config
from tests.integration.test_hub_format import GLUE_README

TINY_TREES = [ROOT / "configs" / t for t in ("classification/mnli/tiny", "reasoning/gsm8k/tiny", "ocr/lines/tiny")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny DistilBERTs in Hub format whose tokenizers differ, and a folder that is no model."""
    from forge.embedded.tiny import build_tiny_distilbert

    root = tmp_path_factory.mktemp("models")
    build_tiny_distilbert(root / "student", ["a person walks in the park", "someone walks", "nobody"])
    build_tiny_distilbert(root / "other", ["quite other words entirely", "zebra"])
    (root / "not_a_model").mkdir()
    (root / "not_json").mkdir()
    (root / "not_json" / "config.json").write_text("{not json")
    (root / "no_model_type").mkdir()
    (root / "no_model_type" / "config.json").write_text('{"architectures": ["X"]}')  # JSON, yet no model
    for name in ("tokenizer.json", "tokenizer_config.json"):  # a tokenizer it has: what it lacks is a model type
        shutil.copy(root / "student" / name, root / "no_model_type" / name)
    return root


def zero_byte(dataset: Path) -> Path:
    (dataset / "mnli" / "train-00000-of-00001.parquet").write_bytes(b"")
    return dataset


def glue(root: Path, *, label: int | None = None, columns=("premise", "hypothesis", "label", "idx"), empty=()) -> Path:
    """A GLUE-MNLI-shaped dataset in the Hub's layout, with what a case breaks."""
    import pandas as pd

    (root / "mnli").mkdir(parents=True)
    for split in ("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched"):
        rows = 0 if split in empty else 12
        frame = pd.DataFrame(
            {
                "premise": ["A person walks in the park."] * rows,
                "hypothesis": ["Someone walks."] * rows,
                "label": [(i % 3 if label is None else label) for i in range(rows)],
                "idx": list(range(rows)),
            }
        ).astype({"label": "int64", "idx": "int32"})
        frame[list(columns)].to_parquet(root / "mnli" / f"{split}-00000-of-00001.parquet", index=False)
    (root / "README.md").write_text(GLUE_README)
    return root


def cases(tmp: Path, models: Path) -> dict[str, tuple[str, str]]:
    """name -> (config body on top of the tiny SFT config, what its line must say)."""
    data = tmp / "data"
    kd = "distillation: {alpha: 0.5, teacher_cache: false}\n"
    return {
        "missing_model_dir": (f"student: {{path: {tmp / 'nope'}}}\n", "student.path: " + str(tmp / "nope")),
        "folder_without_config": (
            f"student: {{path: {models / 'not_a_model'}}}\n",
            "student.path: " + f"{models / 'not_a_model'}: no config.json (not a model directory in Hub format)",
        ),
        "config_not_json": (f"student: {{path: {models / 'not_json'}}}\n", "config.json is not a JSON object"),
        "unknown_embedded_model": (
            "student: {path: 'embedded:tiny-bert'}\n",
            "unknown embedded model 'embedded:tiny-bert'",
        ),
        "hub_model_not_cached": (
            "student: {path: some-org/some-model}\n",
            "student.path: cannot load model 'some-org/some-model': it is not in the local Hugging Face cache",
        ),
        "unknown_embedded_dataset": ("task: {dataset: 'embedded:synthetic-nope'}\n", "task.dataset: unknown embedded"),
        "missing_dataset_dir": (
            f"task: {{dataset: {tmp / 'nodata'}}}\n",
            "task.dataset: " + f"{tmp / 'nodata'}: no such",
        ),
        "wrong_columns": (
            f"task: {{dataset: {glue(data / 'cols', columns=('premise', 'label'))}}}\n",
            "task: split train: no column 'hypothesis' (task.columns.text_pair)",
        ),
        "empty_split": (
            f"task: {{dataset: {glue(data / 'empty', empty=('train',))}}}\n",
            "-00000-of-00001.parquet: no rows",
        ),
        "labels_outside": (
            f"task: {{dataset: {glue(data / 'labels', label=7)}}}\n",
            "task: split train, row 0: column 'label': label 7 is not one of task.labels (0, 1, 2)",
        ),
        "unknown_dataset_config": (
            f"task: {{dataset: {glue(data / 'config')}, dataset_config: mnli_matched}}\n",
            "task.dataset_config: 'mnli_matched'",
        ),
        "lora_target_matches_nothing": (
            f"student: {{path: {models / 'student'}, lora: {{target_modules: [q_lin, query_proj]}}}}\n",
            "student.lora.target_modules: 'query_proj' matches no module",
        ),
        "teacher_tokenizes_differently": (
            f"student: {{path: {models / 'student'}}}\nteacher: {{path: {models / 'other'}}}\n{kd}",
            "teacher: teacher",
        ),
        "lora_on_a_model_transformers_cannot_build": (
            f"student: {{path: {models / 'no_model_type'}, lora: {{target_modules: [query]}}}}\n",
            "student.lora.target_modules: cannot be checked: ValueError",
        ),
        "layers_the_model_lacks": (
            f"student: {{path: {models / 'student'}, layers: [0, 3, 4]}}\n",
            "student.layers: [3, 4] outside the model's 2 layers (0 … 1)",
        ),
        "zero_byte_parquet": (
            f"task: {{dataset: {zero_byte(glue(data / 'zero'))}}}\n",
            "train-00000-of-00001.parquet: an empty file",
        ),
        "output_root_is_a_file": (
            f"output_root: {tmp / 'a_file' / 'outputs'}\n",
            "output_root: " + f"{tmp / 'a_file'} is a file",
        ),
    }


@pytest.fixture
def corpus(tmp_path, models):
    (tmp_path / "a_file").write_text("")
    found = cases(tmp_path, models)
    paths = {
        name: write_config(tmp_path / "configs", f"{name}.yaml", f"base: {TINY_CONFIG}\n{body}")
        for name, (body, _) in found.items()
    }
    return paths, {name: expected for name, (_, expected) in found.items()}


def run_main(argv, cwd: Path, monkeypatch, capsys) -> tuple[int, list[str], list[str], float]:
    monkeypatch.chdir(cwd)
    start = time.monotonic()
    code = main(argv)
    took = time.monotonic() - start
    out = capsys.readouterr()
    return code, out.out.strip().splitlines(), out.err.strip().splitlines(), took


def test_forge_check_passes_the_offline_config_trees_and_creates_nothing(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("FORGE_HOME", str(home))
    code, out, err, _ = run_main(["check", *map(str, TINY_TREES)], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    configs = [p for tree in TINY_TREES for p in sorted(tree.glob("*.yaml"))]
    assert [line.split(": ok")[0] for line in out] == [str(p) for p in configs] and not err
    assert list(tmp_path.iterdir()) == []  # no outputs/, no $FORGE_HOME (nothing built)


@pytest.mark.parametrize("entry", ["check", "run"])
def test_a_reference_that_does_not_resolve_is_refused_before_anything_is_created(
    entry, corpus, tmp_path, monkeypatch, capsys, signals_restored
):
    paths, expected = corpus
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    monkeypatch.setenv("FORGE_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, path in paths.items():
        argv = ["check", str(path)] if entry == "check" else ["--config", str(path)]
        code, out, err, took = run_main(argv, cwd, monkeypatch, capsys)
        assert code == 2, (name, out, err)
        prefix = ("forge check: " if entry == "check" else "forge: ") + str(path)
        assert err and all(line.startswith(prefix) for line in err), (name, err)  # a line per problem
        assert expected[name] in err[0], (name, err[0])
        assert len(err) == (3 if name in ("wrong_columns", "labels_outside") else 1), (name, err)  # 3 splits broken
        assert "Traceback" not in "".join(err) and took < 5, (name, took)
        assert list(cwd.iterdir()) == [] and not (home / "runs").exists(), name  # no run, no registry entry


def test_checking_leaves_the_hub_setting_as_it_was(monkeypatch, tmp_path):
    """One config's answer (nothing on the Hub: offline is fine) must not decide for the next."""
    import os

    from forge import preflight
    from forge.config import load_config

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert preflight.check(load_config(TINY_CONFIG)).problems == []
    assert "HF_HUB_OFFLINE" not in os.environ


def test_a_pretrained_model_whose_package_is_missing_is_refused_with_the_install_line(
    tmp_path, monkeypatch, capsys, signals_restored
):
    from forge.embedded import pretrained

    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name, *a: None)  # as on a plain install
    config = write_config(tmp_path, "real.yaml", f"base: {TINY_CONFIG}\nstudent: {{path: 'embedded:minilm-l6'}}\n")
    for argv in (["check", str(config)], ["--config", str(config)]):
        code, _, err, _ = run_main(argv, tmp_path, monkeypatch, capsys)
        assert code == 2, err
        assert len(err) == 1, err
        assert err[0].endswith(
            f"{config}: student.path: embedded:minilm-l6 needs its pip package: {pretrained.INSTALL}"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.yaml"]


def test_an_unwritable_output_root_is_refused(tmp_path, monkeypatch, capsys, signals_restored):
    """As root every folder is writable, so the filesystem's answer is played here."""
    from forge import preflight

    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    (tmp_path / "locked").mkdir()
    real_access = preflight.os.access
    monkeypatch.setattr(
        preflight.os, "access", lambda path, mode: False if "locked" in str(path) else real_access(path, mode)
    )
    config = write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\noutput_root: {tmp_path / 'locked' / 'out'}\n")
    for argv in (["check", str(config)], ["--config", str(config)]):
        code, _, err, _ = run_main(argv, tmp_path, monkeypatch, capsys)
        assert code == 2, err
        assert len(err) == 1 and err[0].endswith(f"output_root: {tmp_path / 'locked'} is not writable"), err
    assert list((tmp_path / "locked").iterdir()) == []
