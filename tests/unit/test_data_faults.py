"""Faults of a user's own classification data, each one line or a said warning, never a silent
wrong result: a bad last row, NaN and inf scores, integer labels with a missing cell, one class,
labels spelled twice, a carve that leaves nothing, an evaluation file beside a carve, a folder
whose files datasets would leave unread, empty and header-only files, a header naming a column
twice, globs and folders in data_files, files that disagree, and datasets' own log line."""

from __future__ import annotations

import json
import logging
import re

import pytest

from forge.config import load_config
from forge.errors import ConfigError
from forge.tasks import data as sources
from forge.tasks import task_of
from tests.conftest import ROOT, write_config

SENTIMENT = ROOT / "configs" / "examples" / "sentiment.yaml"
HEADER = "sentence,sentiment\n"


def rows(n: int, label=lambda i: ("negative", "positive")[i % 2]) -> str:
    return "".join(f"sentence number {i},{label(i)}\n" for i in range(n))


def task(tmp_path, files: dict[str, str], **extra):
    """The sentiment example's task over `files` (name -> text) written to tmp_path/d, with an
    evaluation file of its own unless `extra` names the files (or a folder: data_files None)."""
    folder = tmp_path / "d"
    folder.mkdir(exist_ok=True)
    files = {"eval.csv": HEADER + rows(6), **files} if "data_files" not in extra else files
    for name, text in files.items():
        (folder / name).write_text(text)
    keys = {"dataset": str(folder), "data_files": {"train": "train.csv", "eval": "eval.csv"}, "eval_split": None}
    body = f"base: {SENTIMENT}\noutput_root: {tmp_path / 'out'}\ntask: {json.dumps({**keys, **extra})}\n"
    return load_config(write_config(tmp_path, "run.yaml", body))


def prepare(cfg, tmp_path):
    from forge.models.loading import load_preprocessor, resolve

    kind = task_of(cfg)
    tokenizer = load_preprocessor(resolve(cfg.student.path), kind.head())
    return kind.prepare(tokenizer, tmp_path / "prepared")


def test_a_bad_last_row_is_named_like_any_other(tmp_path):
    cfg = task(tmp_path, {"train.csv": HEADER + rows(20) + "the last one,\n"})
    with pytest.raises(sources.DataError, match=r"split train, row 20 of .*train.csv: column 'sentiment': no label"):
        prepare(cfg, tmp_path)


@pytest.mark.parametrize("bad, said", [("nan", "no label"), ("inf", "inf is not a finite number")])
def test_a_score_that_is_not_a_finite_number_is_a_bad_row(tmp_path, bad, said):
    scores = HEADER + rows(20, label=lambda i: f"{i / 10:.1f}") + f"the last one,{bad}\n" + rows(3, lambda i: "0.5")
    cfg = task(tmp_path, {"train.csv": scores, "eval.csv": HEADER + rows(4, lambda i: "0.5")})
    with pytest.raises(sources.DataError, match=f"row 20 of .*: column 'sentiment': {said}"):
        prepare(cfg, tmp_path)


def test_integer_labels_with_a_missing_cell_stay_classes(tmp_path):
    """pandas reads an integer column with an empty cell as floats: the labels are still 0 and 1,
    and the empty cell is a bad row, not a reason to regress."""
    ints = {"train.csv": HEADER + rows(20, label=lambda i: i % 2) + "no label here,\n",
            "eval.csv": HEADER + rows(4, label=lambda i: i % 2)}  # fmt: skip
    cfg = task(tmp_path, ints, bad_rows="skip")
    counts = prepare(cfg, tmp_path)
    assert counts == {"train": 20, "eval": 4}  # the row without a label skipped, and said
    assert task_of(cfg).label_names(tmp_path / "prepared") == ("0", "1")


def test_one_class_is_refused(tmp_path):
    cfg = task(tmp_path, {"train.csv": HEADER + rows(20, label=lambda i: "positive")})
    with pytest.raises(sources.DataError, match=r"has one value \('positive'\); a classifier needs two classes"):
        prepare(cfg, tmp_path)


def test_labels_spelled_twice_are_said(tmp_path, caplog):
    cfg = task(tmp_path, {"train.csv": HEADER + rows(20) + "shouting,Positive\n"})
    with caplog.at_level(logging.WARNING, logger="forge"):
        prepare(cfg, tmp_path)
    assert "'Positive' and 'positive': they are 2 classes" in caplog.text


def test_a_row_carved_into_the_evaluation_split_is_named_so(tmp_path):
    """Its label is in no training row because the carve took its only row (with data_seed 3)."""
    text = HEADER + rows(40) + "the odd one,neutral\n"
    cfg = task(tmp_path, {"train.csv": text}, data_files={"train": "train.csv"}, eval_split=0.5, data_seed=3)
    with pytest.raises(sources.DataError, match=r"row 40 of .*train.csv \(carved into the evaluation split by task"):
        prepare(cfg, tmp_path)


@pytest.mark.parametrize("share, count", [(0.999, 240), (0.2, 1)])
def test_a_carve_that_leaves_no_training_row_is_one_line(tmp_path, share, count):
    cfg = task(tmp_path, {"train.csv": HEADER + rows(count)}, data_files={"train": "train.csv"}, eval_split=share)
    with pytest.raises(sources.DataError, match=f"task.eval_split {share} of its {count} row.* leaves no training row"):
        prepare(cfg, tmp_path)


def test_an_evaluation_file_and_a_carve_are_refused(tmp_path):
    cfg = task(tmp_path, {"train.csv": HEADER + rows(20), "eval.csv": HEADER + rows(4)},
               data_files={"train": "train.csv", "eval": "eval.csv"}, eval_split=0.2)  # fmt: skip
    with pytest.raises(sources.DataError, match="names an evaluation split .'eval'. and task.eval_split"):
        sources.splits_of(cfg.task, list(sources.peek(cfg.task).columns))


def test_a_folders_evaluation_split_left_for_a_carve_is_said(tmp_path, caplog):
    cfg = task(tmp_path, {"train.csv": HEADER + rows(20), "validation.csv": HEADER + rows(4)},
               data_files=None, eval_split=0.2)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="forge"):
        roles = sources.splits_of(cfg.task, list(sources.peek(cfg.task).columns))
    assert roles.carved and "the data's 'validation' split is not used" in caplog.text


@pytest.mark.parametrize("other", ["train.jsonl", "more.csv"])
def test_a_folder_file_datasets_would_not_read_is_refused(tmp_path, other):
    text = '{"sentence": "a", "sentiment": "positive"}\n' if other.endswith("jsonl") else HEADER + rows(4)
    cfg = task(tmp_path, {"train.csv": HEADER + rows(20), other: text}, data_files=None, eval_split=0.2)
    unread = "train.csv" if other == "train.jsonl" else other  # datasets reads the folder's json files then
    with pytest.raises(sources.DataError, match=f"{unread} would not be read .*name each split's files"):
        sources.peek(cfg.task)
    with pytest.raises(sources.DataError, match=f"{unread} would not be read"):
        sources.load(cfg.task, tmp_path / "cache")


@pytest.mark.parametrize("card", ["# My sentiment data\n", "---\nlicense: mit\n---\n# My data\n"])
def test_a_readme_that_names_no_files_keeps_the_unread_file_check(tmp_path, card):
    """A README.md made the folder Hub format, and more.csv was left unread silently; only a card's
    `configs:` names the files datasets reads."""
    cfg = task(tmp_path, {"train.csv": HEADER + rows(20), "more.csv": HEADER + rows(4), "README.md": card},
               data_files=None, eval_split=0.2)  # fmt: skip
    with pytest.raises(sources.DataError, match="more.csv would not be read"):
        sources.peek(cfg.task)
    configs = "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: train.csv\n---\n"
    (tmp_path / "d" / "README.md").write_text(configs)
    assert sources.peek(cfg.task).columns == {"train": ["sentence", "sentiment"]}


@pytest.mark.parametrize(
    "text, said",
    [
        ("", "an empty file"),
        (HEADER, "no rows"),
        ("sentence,sentiment,sentence\n" + rows(3), "the header names the column 'sentence' twice"),
    ],  # noqa: E501
)
def test_files_that_cannot_hold_rows_are_one_line(tmp_path, text, said):
    cfg = task(tmp_path, {"train.csv": text})
    with pytest.raises(sources.DataError, match=f"split train: .*train.csv: {said}"):
        sources.peek(cfg.task)


def test_data_files_take_a_glob_and_say_what_a_folder_or_an_empty_glob_is(tmp_path):
    cfg = task(
        tmp_path, {"part1.csv": HEADER + rows(6), "part2.csv": HEADER + rows(6)}, data_files={"train": "part*.csv"}
    )
    assert [p.name for p in sources.data_files(cfg.task)["train"]] == ["part1.csv", "part2.csv"]
    assert len(sources.load(cfg.task, tmp_path / "cache")["train"]) == 12
    (tmp_path / "d" / "sub").mkdir()
    for files, said in (({"train": "none*.csv"}, "no file matches"), ({"train": "sub"}, "a folder; name its files")):
        cfg = task(tmp_path, {}, data_files=files)
        with pytest.raises(sources.DataError, match=said):
            sources.peek(cfg.task)


def test_files_that_disagree_are_named(tmp_path):
    cfg = task(tmp_path, {"a.csv": HEADER + rows(4), "b.csv": "sentence,sentiment,note\n" + "x,positive,y\n"},
               data_files={"train": ["a.csv", "b.csv"]})  # fmt: skip
    with pytest.raises(sources.DataError, match=r"b.csv has the columns sentence, sentiment, note; .*a.csv has"):
        sources.load(cfg.task, tmp_path / "cache")


def test_a_file_datasets_cannot_read_is_one_line_on_stderr(tmp_path, capfd):
    """datasets logs the failure itself ("Failed to read file ..."); only forge's line is said."""
    cfg = task(tmp_path, {"train.csv": HEADER + rows(5) + "too,many,fields\n" + rows(5)})
    with pytest.raises(sources.DataError, match="cannot be read .ParserError"):
        sources.peek(cfg.task)
    with pytest.raises(sources.DataError):
        sources.load(cfg.task, tmp_path / "cache")
    assert "Failed to read" not in capfd.readouterr().err


# ---------------------------------------------------------------- generation and image-to-text

PROBLEMS = ROOT / "configs" / "examples" / "problems_grpo.yaml"


def problems(tmp_path, solutions: list[str], question=lambda i: f"What is {i} + 1?", **extra):
    """The problems example's SFT twin over train/test JSONL rows with these solutions."""
    folder = tmp_path / "d"
    folder.mkdir(exist_ok=True)
    for name in ("train.jsonl", "test.jsonl"):
        lines = [json.dumps({"question": question(i), "solution": s}) for i, s in enumerate(solutions)]
        (folder / name).write_text("\n".join(lines) + "\n")
    keys = {"dataset": str(folder), **extra}
    body = (f"base: {PROBLEMS}\noutput_root: {tmp_path / 'out'}\nrl: null\n"
            f"student: {{path: embedded:tiny-causal-lm, run: null}}\ntask: {json.dumps(keys)}\n")  # fmt: skip
    return load_config(write_config(tmp_path, "run.yaml", body))


def test_a_split_whose_every_answer_lies_beyond_max_length_is_refused(tmp_path):
    """It would train on nothing (loss 0) and report a held-out loss of 0."""
    cfg = problems(tmp_path, ["The answer is 2."] * 8, question=lambda i: "word " * 200, max_length=32)
    with pytest.raises(sources.DataError, match=r"split train: no row has a token to learn from within task.max"):
        prepare(cfg, tmp_path)


def test_an_overlong_row_under_overlength_error_is_named(tmp_path):
    cfg = problems(tmp_path, ["The answer is 2."] * 8, question=lambda i: "word " * (200 if i == 5 else 1),
                   max_length=64, overlength="error")  # fmt: skip
    with pytest.raises(sources.DataError, match=r"split train, row 5 of .*train.jsonl: \d+ tokens, more than task"):
        prepare(cfg, tmp_path)


def test_a_pattern_that_reads_one_answer_from_every_reference_is_refused(tmp_path):
    from forge import preflight

    cfg = problems(tmp_path, [f"So it is {i}. The answer is {i}." for i in range(12)],
                   answer_pattern="(The answer) is (-?\\d+)")  # fmt: skip
    problems_found = [text for _, text in preflight.check(cfg).problems]
    assert any("reads the same answer ('The answer') from all 12" in text for text in problems_found), problems_found


def test_an_empty_transcription_is_a_bad_row_and_a_cut_one_is_said(tmp_path, caplog):
    from forge.tasks.image_to_text import _no_text

    assert _no_text("  ", "text") == "column 'text': empty text" and _no_text("a line", "text") is None
    lines = ROOT / "configs" / "examples" / "lines_ocr.yaml"
    body = f"base: {lines}\noutput_root: {tmp_path / 'out'}\ntask: {{max_length: 4, max_train_samples: 8}}\n"
    cfg = load_config(write_config(tmp_path, "run.yaml", body))
    with caplog.at_level(logging.WARNING, logger="forge"):
        prepare(cfg, tmp_path)
    assert "transcription(s) longer than task.max_length (4) truncated" in caplog.text


# ---------------------------------------------------------------- cells read as written


def csv_problems(tmp_path, text: str, **extra):
    """The problems example's SFT twin over one csv (question,solution) for train and test."""
    folder = tmp_path / "d"
    folder.mkdir(exist_ok=True)
    for name in ("train.csv", "test.csv"):
        (folder / name).write_text(text)
    keys = {"dataset": str(folder), "data_files": {"train": "train.csv", "test": "test.csv"}, **extra}
    body = (f"base: {PROBLEMS}\noutput_root: {tmp_path / 'out'}\nrl: null\n"
            f"student: {{path: embedded:tiny-causal-lm, run: null}}\ntask: {json.dumps(keys)}\n")  # fmt: skip
    return load_config(write_config(tmp_path, "run.yaml", body))


def test_a_csv_text_cell_is_read_as_written(tmp_path):
    """pandas would read '037' as the number 37 (a bad row, or a changed answer) and 'NA',
    'None', 'null' as missing: in a text column they are text; only an empty cell is missing."""
    text = "question,solution,n\nWhat is 037?,037,1\nSay NA,NA,2\nSay None,None,\nnull,null,NA\nWhat now?,,4\n"
    cfg = csv_problems(tmp_path, text)
    written = {"question": ["What is 037?", "Say NA", "Say None", "null", "What now?"],
               "solution": ["037", "NA", "None", "null", None]}  # fmt: skip
    loaded = sources.load(cfg.task)["train"]
    assert {c: loaded[c] for c in written} == written
    assert loaded["n"] == [1, 2, None, None, 4]  # not a text column: pandas' own reading
    seen = sources.peek(cfg.task).rows["train"]
    assert {c: [row[c] for row in seen] for c in written} == written
    with pytest.raises(sources.DataError, match=r"row 4 of .*train.csv: column 'solution': no completion text"):
        prepare(cfg, tmp_path)


def test_a_template_field_is_text_unless_the_template_formats_it(tmp_path):
    text = "code,n,solution\n007,7,The answer is 7.\n010,10,The answer is 10.\n"
    cfg = csv_problems(
        tmp_path, text, columns={"prompt": None, "completion": "solution"}, prompt_template="Code {code}, {n:03d}?"
    )
    loaded = sources.load(cfg.task)["train"]
    assert loaded["code"] == ["007", "010"] and loaded["n"] == [7, 10]


def test_a_label_named_like_a_missing_cell_is_a_class(tmp_path):
    data = HEADER + rows(20, label=lambda i: ("NA", "yes")[i % 2]) + "no label here,\n"
    cfg = task(tmp_path, {"train.csv": data, "eval.csv": HEADER + rows(4, label=lambda i: ("NA", "yes")[i % 2])},
               labels=["NA", "yes"], bad_rows="skip")  # fmt: skip
    assert prepare(cfg, tmp_path) == {"train": 20, "eval": 4}  # the empty cell is still no label


def test_a_number_where_text_belongs_says_so(tmp_path):
    cfg = problems(tmp_path, [37, "The answer is 2."])
    with pytest.raises(sources.DataError, match=r"row 0 of .*: column 'solution': 37 is a number, not text \(write"):
        prepare(cfg, tmp_path)


def test_a_16_bit_or_transparent_image_keeps_its_line():
    """Pillow's convert('RGB') clips 16-bit grey at 255 (all but black turns white) and drops
    transparency (a line in the alpha channel alone turns black on black)."""
    import numpy as np
    from PIL import Image

    from forge.tasks.image_to_text import rgb

    ramp = np.linspace(0, 65535, 64, dtype=np.float64).reshape(8, 8).astype(np.uint16)
    grey = np.asarray(rgb(Image.fromarray(ramp)))[..., 0]
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) == 64  # a ramp, not a wall
    line = np.zeros((8, 8, 4), np.uint8)  # transparent black, the line opaque black
    line[2:4, 2:6, 3] = 255
    for mode, pixels in (("RGBA", line), ("LA", line[..., [0, 3]])):
        seen = np.asarray(rgb(Image.fromarray(pixels, mode)))[..., 0]
        assert seen[0, 0] == 255 and seen[2, 2] == 0, mode  # black on white
    for mode in ("RGB", "L"):  # as before, bit for bit
        plain = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert(mode)
        assert rgb(plain).tobytes() == plain.convert("RGB").tobytes()


def test_references_the_pattern_cannot_read_are_said_or_refused(tmp_path, caplog):
    """forge check reads the first rows; prepare_data grades every reference."""
    solutions = [f"The answer is {i}." for i in range(120)] + ["I do not know.", "Maybe 3."]
    with caplog.at_level(logging.WARNING, logger="forge"):
        prepare(problems(tmp_path, solutions), tmp_path)
    assert "split test: task.answer_pattern reads no answer from 2 of 122 references (e.g. 'I do not know.')" in (
        caplog.text
    )
    cfg = problems(tmp_path, ["So 2.", "So 3."] * 4)
    with pytest.raises(sources.DataError, match=r"split test: task.answer_pattern reads no answer from any of its 8"):
        prepare(cfg, tmp_path)


@pytest.mark.parametrize(
    "text, line",
    [
        ('{"question": "q", "solution": "s"}\n' * 30 + '{"question": "broken, "solution": "s"}\n', 31),
        ('{"question": "q", "solution": "s"}\n' * 30 + '{"question": "cut sho', 31),  # a file cut short
        ('[\n  {"question": "q", "solution": "s"},\n  {"question": "q" "solution": "s"}\n]\n', 3),  # one document
    ],
)
def test_a_json_line_that_does_not_parse_is_named_by_file_and_line(tmp_path, text, line):
    """pyarrow's own error counts rows from the start of its block (10 MB on): row 10566 for the
    150,001st line of a 30 MB file, and names no file."""
    cfg = problems(tmp_path, ["The answer is 2."] * 8)
    (tmp_path / "d" / "train.jsonl").write_text(text)
    said = rf"^split train: .*train.jsonl, line {line}: not JSON \("
    with pytest.raises(sources.DataError, match=said):
        sources.peek(cfg.task)
    with pytest.raises(sources.DataError, match=said):
        prepare(cfg, tmp_path)


@pytest.mark.parametrize("overlength, said", [("error", None), ("drop", "dropped"), ("truncate", "kept whole")])
def test_an_rl_prompt_longer_than_max_length_follows_overlength(tmp_path, caplog, overlength, said):
    """GRPO takes a prompt as a chat and cuts none: task.max_length was ignored for RL prompts."""
    cfg = problems(tmp_path, ["The answer is 2."] * 8, question=lambda i: "word " * (200 if i == 5 else 1))
    keys = {"dataset": cfg.task.dataset, "max_length": 64, "overlength": overlength}
    body = (f"base: {PROBLEMS}\noutput_root: {tmp_path / 'out'}\n"
            f"student: {{path: embedded:tiny-causal-lm, run: null}}\ntask: {json.dumps(keys)}\n")  # fmt: skip
    cfg = load_config(write_config(tmp_path, "rl.yaml", body))
    if said is None:
        with pytest.raises(sources.DataError, match=r"row 5 of .*train.jsonl: a prompt of \d+ tokens, more than task"):
            prepare(cfg, tmp_path)
        return
    with caplog.at_level(logging.WARNING, logger="forge"):
        counts = prepare(cfg, tmp_path)
    assert f"split train: 1 prompt(s) longer than task.max_length (64) {said}" in caplog.text
    assert counts["train"] == (7 if overlength == "drop" else 8)


def test_a_chat_in_another_shape_says_what_to_name(tmp_path):
    chats = ROOT / "configs" / "examples" / "chat_sft.yaml"
    kind = task_of(load_config(write_config(tmp_path, "run.yaml", f"base: {chats}\noutput_root: {tmp_path}\n")))
    sharegpt = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    with pytest.raises(ValueError, match=r"turn 0: .* \(its keys: from, value; name the role's and the content's in"):
        kind.conversation({"messages": sharegpt}, "messages")
    with pytest.raises(ValueError, match=r"not a list of turns \(text: a csv cell\? write the chats as JSON Lines\)"):
        kind.conversation({"messages": json.dumps(sharegpt)}, "messages")
    with pytest.raises(ValueError, match=r"column 'text': no text"):  # a blank text row trained on nothing
        kind.conversation({"text": " \n "}, "text")
    kind.task = kind.task.model_copy(update={"system_prompt": "Be brief."})  # it was ignored for chats
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert kind.conversation({"messages": chat}, "messages")[0] == {"role": "system", "content": "Be brief."}
    own = [{"role": "system", "content": "Be kind."}, *chat]
    assert kind.conversation({"messages": own}, "messages") == own  # its own system turn stays


def test_every_evaluation_file_named_in_data_files_is_read(tmp_path):
    """An eval.jsonl beside a test.jsonl was never read (the main split, test, alone); a split by
    another name (holdout) was 'no evaluation split'."""
    files = {"train.csv": HEADER + rows(20), "eval.csv": HEADER + rows(6), "test.csv": HEADER + rows(4),
             "holdout.csv": HEADER + rows(2)}  # fmt: skip
    named = {"train": "train.csv", "eval": "eval.csv", "test": "test.csv", "holdout": "holdout.csv"}
    cfg = task(tmp_path, files, data_files=named)
    assert sources.splits_of(cfg.task, list(named)).eval == ("test", "eval", "holdout")  # the main one first
    assert prepare(cfg, tmp_path) == {"train": 20, "test": 4, "eval": 6, "holdout": 2}


def chats(tmp_path, odd: list, at: int = 120, **extra):
    """The chat example over 150 chats of its own shape, `odd` (turns) at row `at` of train."""
    folder = tmp_path / "d"
    folder.mkdir(exist_ok=True)
    good = [[{"role": "user", "content": f"{i} + 1?"}, {"role": "assistant", "content": f"The answer is {i + 1}."}]
            for i in range(150)]  # fmt: skip
    train = [*good[:at], odd, *good[at:]]
    for name, rows_ in (("train.jsonl", train), ("eval.jsonl", good[:8])):
        (folder / name).write_text("".join(json.dumps({"messages": turns}) + "\n" for turns in rows_))
    chat = ROOT / "configs" / "examples" / "chat_sft.yaml"
    body = f"base: {chat}\noutput_root: {tmp_path / 'out'}\ntask: {json.dumps({'dataset': str(folder), **extra})}\n"
    return load_config(write_config(tmp_path, "run.yaml", body))


@pytest.mark.parametrize(
    "odd, said",
    [
        ([{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "1 + 1?"},
          {"role": "assistant", "content": "The answer is 2."}],
         "turn 0: an assistant turn with nothing before it"),  # was datasets' 'empty conversation', no row named
        ([{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": " "}],
         "turn 1: an assistant turn with no text"),  # it learned to answer with the end token
        ([{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]},
          {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "The answer is 2."}],
         "turn 1: an assistant turn with no text (its tool_calls: forge learns text turns"),
    ],
)  # fmt: skip
def test_a_chat_forge_cannot_learn_is_a_bad_row(tmp_path, caplog, odd, said):
    with pytest.raises(sources.DataError, match=rf"split train, row 120 of .*train.jsonl: {re.escape(said)}"):
        prepare(chats(tmp_path, odd), tmp_path)
    with caplog.at_level(logging.WARNING, logger="forge"):
        assert prepare(chats(tmp_path, odd, bad_rows="skip"), tmp_path)["train"] == 150


@pytest.mark.parametrize(
    "label, said",
    [
        (lambda i: f"0.{i % 7 + 2}", "holds numbers written as text ('0.2', '0.3', '0.4', '0.5'): they are 7 classes"),
        (lambda i: [0, 1, "negative", "positive"][i % 4], "mixes numbers (0, 1) and words (negative, positive)"),
    ],
)
def test_labels_that_look_like_another_labelling_are_said(tmp_path, caplog, label, said):
    """Scores written as text made a many-class classifier, and 0 / 1 beside negative / positive a
    four-class one, each without a word."""
    folder = tmp_path / "d"
    folder.mkdir()
    for name, n in (("train.jsonl", 28), ("eval.jsonl", 8)):
        (folder / name).write_text("".join(json.dumps({"sentence": f"s {i}", "sentiment": label(i)}) + "\n"
                                           for i in range(n)))  # fmt: skip
    cfg = task(tmp_path, {}, data_files={"train": "train.jsonl", "eval": "eval.jsonl"})
    with caplog.at_level(logging.WARNING, logger="forge"):
        prepare(cfg, tmp_path)
    assert said in caplog.text


def test_a_special_token_written_in_a_turn_is_a_bad_row(tmp_path):
    """'<|im_end|>' in an answer became the end token: the rest of the answer was never learned."""
    cfg = problems(tmp_path, ["The answer is 2."] * 5 + ["Emit <|im_end|> when done. The answer is 2."] + ["A."] * 2)
    said = r"row 5 of .*train.jsonl: the assistant's text holds the special token '<\|im_end\|>': it would be read"
    with pytest.raises(sources.DataError, match=said):
        prepare(cfg, tmp_path)


def test_an_evaluation_prompt_longer_than_max_length_is_said(tmp_path, caplog):
    """Greedy answers read a prompt whole: past a fixed-position model's context, an IndexError."""
    cfg = problems(
        tmp_path, ["The answer is 2."] * 8, question=lambda i: "word " * (200 if i == 5 else 1), max_length=64
    )
    with caplog.at_level(logging.WARNING, logger="forge"):
        prepare(cfg, tmp_path)
    assert "split test: 1 prompt(s) longer than task.max_length (64): cut from the left for the greedy answers" in (
        caplog.text
    )


def test_a_chat_template_that_writes_no_assistant_text_is_refused(tmp_path):
    """A template whose role test is wrong trained every answer as the end token alone."""
    user_only = '{% for m in messages %}{% if m.role == "user" %}{{ m.content }}\n{% endif %}{% endfor %}'
    cfg = chats(tmp_path, [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "The answer is 2."}],
                chat_template=user_only)  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"the chat template writes no assistant text \(the assistant turn of a probe"
    ):
        prepare(cfg, tmp_path)


def test_a_turn_of_weight_0_is_not_learned(tmp_path):
    """axolotl's and ShareGPT's per-turn weight was ignored: a turn marked 0 was learned."""
    from datasets import load_from_disk

    from forge.models.loading import load_preprocessor, resolve

    odd = [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "WRONG, The answer is 3."},
           {"role": "user", "content": "Again?"}, {"role": "assistant", "content": "The answer is 2."}]  # fmt: skip
    odd[1]["weight"], odd[3]["weight"] = 0, 1
    prepare(chats(tmp_path, odd), tmp_path)
    tokenizer = load_preprocessor(resolve("embedded:tiny-causal-lm"), task_of(chats(tmp_path, odd)).head())
    train = load_from_disk(str(tmp_path / "prepared"))["train"]
    row = next(r for r in train if "WRONG" in tokenizer.decode(r["input_ids"]))
    learned = tokenizer.decode([t for t in row["labels"] if t != -100])
    assert "WRONG" not in learned and "The answer is 2." in learned
    odd[3]["weight"] = 0
    with pytest.raises(
        sources.DataError, match=r"row 120 of .*: no assistant turn to learn from \(each has weight 0\)"
    ):
        prepare(chats(tmp_path, odd), tmp_path)


def test_a_file_two_splits_read_is_said_and_odd_column_names_are_quoted(tmp_path, caplog):
    cfg = task(tmp_path, {"train.csv": HEADER + rows(20)}, data_files={"train": "train.csv", "eval": "train.csv"})
    with caplog.at_level(logging.WARNING, logger="forge"):
        sources.load(cfg.task, tmp_path / "cache")
    assert "splits train and eval read the same file" in caplog.text
    assert sources.listed(["text", " label", "a,b", ""]) == "text, ' label', 'a,b', ''"


def test_a_url_image_and_an_empty_chat_say_what_they_are(tmp_path):
    from forge.tasks.image_to_text import image_problem

    assert image_problem({"path": "https://example.com/a.png", "bytes": None}).startswith("a URL (https://example")
    chats_ = ROOT / "configs" / "examples" / "chat_sft.yaml"
    kind = task_of(load_config(write_config(tmp_path, "run.yaml", f"base: {chats_}\noutput_root: {tmp_path}\n")))
    with pytest.raises(ValueError, match=r"^messages: an empty list of turns$"):
        kind.conversation({"messages": []}, "messages")


def test_parquet_files_that_disagree_on_a_columns_kind_are_named_before_reading(tmp_path):
    """forge check read the first file alone and passed; the run then failed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "d"
    (folder / "parts").mkdir(parents=True)
    texts = [f"sentence {i}" for i in range(10)]
    pq.write_table(
        pa.table({"sentence": texts, "sentiment": [i % 2 for i in range(10)]}), folder / "parts" / "a.parquet"
    )
    words = pa.table({"sentence": texts, "sentiment": [("negative", "positive")[i % 2] for i in range(10)]})
    pq.write_table(words, folder / "parts" / "b.parquet")
    cfg = task(tmp_path, {}, data_files={"train": "parts/*.parquet"}, eval_split=0.2)
    with pytest.raises(
        sources.DataError, match=r"b.parquet has the column 'sentiment' as text; .*a.parquet has it as num"
    ):
        sources.peek(cfg.task)


def test_a_deleted_data_folder_keeps_the_record_of_the_data(tmp_path):
    """data/ deleted (the docs allow it: prepared again) took data/fingerprint.json with it: a
    resume then trained on edited labels without a word."""
    from forge.run.files import atomic_write_json
    from forge.run.layout import RunDir
    from forge.run.session import check_same_data

    cfg = task(tmp_path, {"train.csv": HEADER + rows(20)})
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    atomic_write_json(run.data_record, sources.fingerprint(cfg.task))  # data/ itself is gone
    check_same_data(cfg, run)
    (tmp_path / "d" / "train.csv").write_text(HEADER + rows(20, label=lambda i: "negative") + "one more,positive\n")
    with pytest.raises(ConfigError, match=r"the task's data changed since this run prepared it \(.*train.csv: changed"):
        check_same_data(cfg, run)
    (tmp_path / "d" / "train.csv").unlink()  # a named file gone: one line, not FileNotFoundError
    with pytest.raises(ConfigError, match=r"train.csv: gone"):
        check_same_data(cfg, run)


def test_data_that_changes_while_it_is_read_is_refused(tmp_path, monkeypatch):
    """The record was taken after reading: 20,000 rows appended while prepare_data read 150,000
    made a record of 170,000 rows the run never trained on."""
    from forge.pipeline import run_pipeline
    from forge.tasks.classification import Classification

    cfg = task(tmp_path, {"train.csv": HEADER + rows(20)})
    real = Classification.prepare

    def prepare_then_append(self, tokenizer, out):
        sizes = real(self, tokenizer, out)
        with (tmp_path / "d" / "train.csv").open("a") as fh:
            fh.write("a late row,positive\n")
        return sizes

    monkeypatch.setattr(Classification, "prepare", prepare_then_append)
    with pytest.raises(sources.DataError, match=r"changed while prepare_data read it \(.*train.csv: changed"):
        run_pipeline(cfg, None)
