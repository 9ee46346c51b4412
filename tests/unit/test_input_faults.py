"""Faults of data, files and the environment (issue 31): each is one line naming what is wrong
and where, before anything is created when it can be known then, never a silent wrong result."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forge.cli import main
from tests.conftest import ROOT, TINY_CONFIG, write_config

SENTIMENT = ROOT / "configs" / "examples" / "sentiment.yaml"
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 1048576\n".format("0" * 64)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny DistilBERT in Hub format, and copies of it that lack their tokenizer files, whose
    weights are a Git LFS pointer, and an adapter of it without a tokenizer of its own."""
    from forge.embedded.tiny import build_tiny_distilbert

    root = tmp_path_factory.mktemp("models")
    build_tiny_distilbert(root / "student", ["a person walks in the park", "someone walks", "nobody"])
    (root / "no_tokenizer").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(root / "student" / name, root / "no_tokenizer" / name)
    shutil.copytree(root / "student", root / "lfs")
    (root / "lfs" / "model.safetensors").write_text(LFS_POINTER)
    (root / "adapter").mkdir()
    (root / "adapter" / "adapter_config.json").write_text(f'{{"base_model_name_or_path": "{root / "student"}"}}')
    return root


def refused(argv: list[str], cwd: Path, monkeypatch, capsys) -> list[str]:
    """The stderr lines of `forge ARGV` run in `cwd`, which must end with exit 2."""
    monkeypatch.chdir(cwd)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    return err


def test_a_model_folder_without_tokenizer_files_is_refused_before_anything_is_created(
    models, tmp_path, monkeypatch, capsys, signals_restored
):
    """transformers makes up an empty 5-token tokenizer for such a folder: every word would be [UNK]."""
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    folder = models / "no_tokenizer"
    config = write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\nstudent: {{path: {folder}}}\n")
    for argv in (["check", str(config)], ["--config", str(config)]):
        err = refused(argv, tmp_path, monkeypatch, capsys)
        assert len(err) == 1 and f"student.path: {folder}: no tokenizer files (tokenizer.json" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


def test_an_image_to_text_model_without_its_image_processor_is_refused(tmp_path, monkeypatch):
    """What the head needs is checked: an OCR model's processor reads images as well as text."""
    from forge import preflight
    from forge.config import load_config
    from forge.embedded.tiny import build_tiny_ocr

    folder = tmp_path / "ocr"
    build_tiny_ocr(folder, ["a line"], seed=0)
    (folder / "processor_config.json").unlink()
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    base = ROOT / "configs" / "ocr" / "lines" / "tiny" / "00_sft.yaml"
    config = write_config(tmp_path, "run.yaml", f"base: {base}\nstudent: {{path: {folder}}}\n")
    problems = preflight.check(load_config(config)).problems
    assert problems == [
        (
            "student.path",
            f"{folder}: no image processor (preprocessor_config.json); copy it from the model it was saved from",
        )
    ]


def test_an_adapter_takes_its_tokenizer_from_its_base(models, tmp_path, monkeypatch):
    """An adapter folder without tokenizer files of its own is complete: its base has them."""
    from forge import preflight
    from forge.config import load_config

    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    config = write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\nstudent: {{path: {models / 'adapter'}}}\n")
    assert preflight.check(load_config(config)).problems == []


def test_a_tokenizer_of_a_handful_of_tokens_is_refused(models, tmp_path, monkeypatch):
    """A tokenizer that loads yet knows almost no words is the same fault by another way."""
    from forge import preflight
    from forge.config import load_config

    folder = tmp_path / "tiny_vocab"
    shutil.copytree(models / "no_tokenizer", folder)
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    config = write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\nstudent: {{path: {folder}}}\n")
    problems = preflight.check(load_config(config)).problems
    assert problems == [("student.path", f"{folder}: its tokenizer has only 5 tokens: every word would be [UNK]; "
                         "are its tokenizer files complete?")]  # fmt: skip


def test_weights_that_are_a_git_lfs_pointer_are_named_with_the_fix(
    models, tmp_path, monkeypatch, capsys, signals_restored
):
    """A clone without `git lfs pull` holds a 130-byte text file where the weights should be."""
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    folder = models / "lfs"
    config = write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\nstudent: {{path: {folder}}}\n")
    err = refused(["check", str(config)], tmp_path, monkeypatch, capsys)
    assert len(err) == 1, err
    assert err[0].endswith(
        f"student.path: {folder}: model.safetensors is a Git LFS pointer, not the file: run `git lfs pull` in {folder}"
    )


def test_an_unwritable_forge_home_is_refused_before_anything_is_created(
    tmp_path, monkeypatch, capsys, signals_restored
):
    """As root every folder is writable, so the filesystem's answer is played here."""
    from forge import preflight

    (tmp_path / "locked").mkdir()
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "locked" / "forge"))
    real_access = preflight.os.access
    monkeypatch.setattr(
        preflight.os, "access", lambda path, mode: False if "locked" in str(path) else real_access(path, mode)
    )
    config = write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\n")
    for argv in (["check", str(config)], ["--config", str(config)]):
        err = refused(argv, tmp_path, monkeypatch, capsys)
        assert len(err) == 1 and f"FORGE_HOME: {tmp_path / 'locked'} is not writable" in err[0], err
    assert list((tmp_path / "locked").iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "locked",
        "run.yaml",
    ]


def test_home_unset_without_forge_home_is_one_line(tmp_path, monkeypatch, capsys):
    """Without HOME, ~ is whatever the password database says (often /nonexistent)."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("FORGE_HOME", raising=False)
    config = write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\n")
    err = refused(["check", str(config)], tmp_path, monkeypatch, capsys)
    assert len(err) == 1 and err[0].endswith("FORGE_HOME: HOME is not set: set FORGE_HOME (or HOME)"), err


@pytest.mark.parametrize("table", [["--json"], []], ids=["json", "table"])  # print, and rich's console
def test_a_closed_stdout_pipe_ends_quietly_with_sigpipes_status(table, tmp_path):
    """`forge status --json | head -1`: the reader left; no traceback, the status of a tool killed by
    SIGPIPE (128 + 13), as `seq 100000 | head -1` ends under `set -o pipefail`."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "forge.py"), "status", *table, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # before forge writes: its write meets a closed pipe every time
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == "", err


def sentiment(tmp_path: Path, edit, encoding: str = "utf-8"):
    """The sentiment example's config over a copy of its CSV with `edit(lines)` applied."""
    from forge.config import load_config

    lines = (ROOT / "examples" / "sentiment" / "train.csv").read_text().splitlines()
    edit(lines)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return load_config(write_config(tmp_path, "run.yaml", f"base: {SENTIMENT}\ntask: {{dataset: {data}}}\n")), data


def test_a_bad_row_beyond_the_first_ones_is_named_by_its_file_row_when_prepared(tmp_path):
    """Past the rows `forge check` reads; a fifth of the rows is carved off (shuffled), yet the row
    named is the file's (line 151 holds data row 149)."""
    from forge.tasks import data as sources
    from forge.tasks import task_of

    def blank(lines):
        lines[150] = ",positive"

    cfg, data = sentiment(tmp_path, blank)
    with pytest.raises(sources.DataError, match=r"^split train, row 149 of .*train\.csv: column 'sentence': no text"):
        task_of(cfg).prepare(None, tmp_path / "prepared")  # refused before anything is tokenized
    assert not (tmp_path / "prepared").exists()


def test_an_empty_text_is_a_bad_row(tmp_path):
    """An empty string is no text to classify (it trained as [CLS] [SEP] alone)."""
    from forge.tasks import data as sources
    from forge.tasks import task_of

    def empty(lines):
        lines[3] = '" ",negative'

    cfg, data = sentiment(tmp_path, empty)
    problems, _ = task_of(cfg).check_data(sources.peek(cfg.task))
    assert problems == [f"split train, row 2 of {data / 'train.csv'}: column 'sentence': empty text"]


def test_a_missing_value_the_prompt_template_writes_is_a_bad_row():
    """A prompt template fills in None as the word "None": such a row is named, not trained on."""
    from forge.config import load_config
    from forge.tasks import task_of

    task = task_of(load_config(ROOT / "configs" / "reasoning" / "gsm8k" / "tiny" / "00_sft.yaml"))
    assert "{question}" in task.task.prompt_template
    problem = task.row_problem({"question": None, "answer": "#### 3"}, ["question", "answer"])
    assert problem == "column 'question': no text (task.prompt_template writes it into the prompt)"


def test_a_file_that_is_not_utf8_is_named_with_its_first_bad_byte(tmp_path):
    """A Latin-1 CSV: the line says which file, where, and what to do, in forge check and when prepared."""
    from forge.tasks import data as sources

    def accented(lines):
        lines[150] = "un café noir,positive"

    cfg, data = sentiment(tmp_path, accented, encoding="latin-1")
    at = (ROOT / "examples" / "sentiment" / "train.csv").read_text().split("\n", 150)
    position = len("\n".join(at[:150]).encode()) + 1 + len("un caf")
    where = f"byte 0xe9 at position {position}, line 151"
    expected = f"split train: {data / 'train.csv'} is not UTF-8 ({where}); save it as UTF-8"
    for read in (lambda: sources.peek(cfg.task), lambda: sources.load(cfg.task, tmp_path / "cache")):
        with pytest.raises(sources.DataError) as caught:
            read()
        assert str(caught.value) == expected
