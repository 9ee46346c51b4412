"""Your own data (docs/data.md): each example config (configs/examples/) on its files in
examples/, as a user with no Python runs it: a classifier from a CSV with string labels and no
validation file, a chat model from multi-turn JSONL (loss on the assistant's turns), GRPO on
problems whose answers a regex reads, an image-to-text model from a folder of images and a CSV.
Through forge.py here (short), through Snakemake in one DAG (heavy)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from forge.run.layout import RunDir
from tests.conftest import ROOT, assert_bitwise_equal, forge_here, write_config

pytestmark = pytest.mark.integration

EXAMPLES = ROOT / "configs" / "examples"
SHORT = {"sentiment": 20, "chat_sft": 40, "problems_grpo": 4, "lines_ocr": 10}
RUNS = {"sentiment": "sentiment/tiny/sentiment", "chat_sft": "chat/tiny/chat_sft",
        "problems_grpo": "problems/tiny/problems_grpo", "lines_ocr": "lines/tiny/lines_ocr"}  # fmt: skip


def short(folder, name: str):
    """configs/<name>.yaml in `folder`: the example, shortened, writing under folder/outputs."""
    steps = SHORT[name]
    body = f"base: {EXAMPLES / f'{name}.yaml'}\nrun_name: {name}\noutput_root: {folder / 'outputs'}\n"
    body += f"training: {{max_steps: {steps}, save_steps: {max(steps // 2, 1)}, eval_steps: {steps}}}\n"
    if name == "problems_grpo":
        body += "student: {run: chat_sft.yaml}\n"
    return write_config(folder / "configs", f"{name}.yaml", body)


def run_of(folder, name: str) -> RunDir:
    return RunDir(folder / "outputs" / RUNS[name])


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """Every example run through forge.py, short; GRPO after the chat run it starts from."""
    folder = tmp_path_factory.mktemp("examples")
    for name in SHORT:
        short(folder, name)
    for name in ("sentiment", "lines_ocr", "problems_grpo"):  # problems_grpo trains chat_sft first
        result = forge_here("--config", str(folder / "configs" / f"{name}.yaml"), cwd=folder)
        assert result.returncode == 0, result.stderr[-3000:]
    return folder


def metrics(run: RunDir, name: str = "post_eval") -> dict:
    return json.loads((run.metrics / f"{name}.json").read_text())


def test_the_example_data_is_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_data.py"), str(tmp_path)], check=True)  # fmt: skip
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        shipped = ROOT / "examples" / path.relative_to(tmp_path)
        assert shipped.read_bytes() == path.read_bytes(), shipped


def test_a_classifier_from_a_csv_with_string_labels_and_no_validation_file(examples):
    from transformers import AutoConfig

    run = run_of(examples, "sentiment")
    post = metrics(run)
    assert post["main"] == {"split": "eval", "metric": "accuracy", "larger_is_better": True}
    assert post["eval"]["samples"] == 48 and set(post["eval"]) >= {"accuracy", "macro_f1", "loss"}  # 20% of 240
    assert AutoConfig.from_pretrained(run.model).id2label == {0: "negative", 1: "positive"}
    assert "carved 48 evaluation rows from 240 training rows" in run.log.read_text()


def test_a_chat_model_from_multi_turn_jsonl_learns_the_assistant_turns_only(examples):
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = run_of(examples, "chat_sft")
    train = load_from_disk(str(run.data))["train"]
    tokenizer = AutoTokenizer.from_pretrained(run.model)
    ids, labels = train[0]["input_ids"], train[0]["labels"]
    learned = tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != -100])
    assert learned.count("<|im_end|>") == 2 and "What is" not in learned and "twice" not in learned
    assert ids[-1] == tokenizer.eos_token_id and labels[-1] == ids[-1]  # the last turn's end: learned, once
    post = metrics(run)
    assert set(post["eval"]) == {"accuracy", "format", "loss", "samples"} and post["eval"]["samples"] == 40
    assert json.loads((run.data / "fingerprint.json").read_text())["files"]  # the files it read, recorded
    model = AutoModelForCausalLM.from_pretrained(run.model)
    assert model.generate(**tokenizer(["What is 2 + 3?"], return_tensors="pt"), max_new_tokens=4).shape[1] > 1


def test_grpo_on_problems_whose_answers_a_regex_reads(examples):
    run = run_of(examples, "problems_grpo")
    log = run.log.read_text()
    assert "rewards/correctness/mean=" in log and "rewards/format/mean=" in log
    assert metrics(run)["step"] == 4 and metrics(run, "pre_eval")["main"]["metric"] == "accuracy"
    (link,) = json.loads(run.upstream.read_text()).values()
    assert link["run_dir"].endswith("chat/tiny/chat_sft")  # the chat run, trained first
    from datasets import load_from_disk

    train = load_from_disk(str(run.data))["train"]
    assert set(train.column_names) == {"prompt", "reference", "question", "solution"}  # the rewards' columns


def test_an_image_to_text_model_from_a_folder_of_images_and_a_csv(examples):
    run = run_of(examples, "lines_ocr")
    post = metrics(run)
    assert post["main"]["metric"] == "cer" and post["test"]["samples"] == 16
    assert set(post["test"]) == {"cer", "wer", "exact_match", "samples"}


def test_a_rewritten_data_file_is_read_fresh_and_a_resume_on_it_is_refused(tmp_path):
    """A local file rewritten in place: a new run reads today's rows (no stale cache), and the
    run that prepared the old rows refuses to go on with the new ones."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "examples" / "sentiment", data)
    config = write_config(tmp_path, "s.yaml", f"base: {EXAMPLES / 'sentiment.yaml'}\noutput_root: {tmp_path / 'out'}\n"
                          f"task: {{dataset: {data}}}\n")  # fmt: skip
    first = forge_here("stage", "prepare_data", "--config", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "prepared train: 192, eval: 48" in first.stderr
    lines = (data / "train.csv").read_text().splitlines()
    (data / "train.csv").write_text("\n".join(lines[:101]) + "\n")  # 100 rows left
    refused = forge_here("stage", "pre_eval", "--config", str(config), cwd=tmp_path)
    assert refused.returncode == 2 and "the task's data changed since this run prepared it" in refused.stderr
    assert f"{data / 'train.csv'}: changed" in refused.stderr
    again = forge_here("--config", str(config), "--run_name", "fresh", "--max_steps", "2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "prepared train: 80, eval: 20" in again.stderr


@pytest.mark.heavy  # four runs and a chain through Snakemake
def test_every_example_runs_through_snakemake_and_one_killed_mid_training_resumes_there(tmp_path, examples):
    from tests.integration.test_snakemake import snakemake
    from tests.kill_matrix import KILL, TRAINER, Cut, attempt

    for name in SHORT:
        short(tmp_path, name)
    result = snakemake(tmp_path, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for name in SHORT:
        assert run_of(tmp_path, name).complete.exists(), name
    for name in ("sentiment", "lines_ocr", "problems_grpo"):  # the same weights as through forge.py
        assert_bitwise_equal(run_of(tmp_path, name), run_of(examples, name))

    killed = tmp_path / "killed"
    short(killed, "sentiment")
    run = run_of(killed, "sentiment")
    first, _ = attempt(killed, ["--config", str(killed / "configs" / "sentiment.yaml")],
                       Cut("in step 15, after checkpoint-10", TRAINER, "training_step", 15, KILL))  # fmt: skip
    assert first.returncode == -KILL
    resumed, _ = attempt(killed, ["--resume", str(run.root)], None)
    assert resumed.returncode == 0 and "resuming training from checkpoint-10" in resumed.stderr
    assert_bitwise_equal(run, run_of(examples, "sentiment"))


def test_forge_check_shows_the_tokens_that_carry_the_loss(tmp_path):
    result = forge_here("check", "--show", "1", str(EXAMPLES / "chat_sft.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rows read as messages, the loss on assistant" in result.stdout
    shown = result.stdout.split("--- training example 0\n", 1)[1]
    assert "<|im_start|>user\nWhat is" in shown and "[[" not in shown.split("<|im_start|>assistant\n")[0]
    assert shown.count("[[") == 2 and shown.count("<|im_end|>]]") == 2  # each assistant turn and its end token
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_a_model_without_a_chat_template_is_refused_in_one_line_unless_the_config_gives_one(tmp_path):
    from forge import embedded

    model = tmp_path / "no-template"
    shutil.copytree(embedded.ensure("embedded:tiny-causal-lm"), model)
    settings = json.loads((model / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(settings))
    (model / "chat_template.jinja").unlink(missing_ok=True)
    config = write_config(tmp_path, "c.yaml", f"base: {EXAMPLES / 'chat_sft.yaml'}\nstudent: {{path: {model}}}\n")
    refused = forge_here("check", str(config), cwd=tmp_path)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "the model's tokenizer has no chat template" in line and "task.chat_template" in line
    chatml = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\\n{{ m['content'] }}<|im_end|>\\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}")  # fmt: skip
    config.write_text(config.read_text() + f"task: {{chat_template: {json.dumps(chatml)}}}\n")
    assert forge_here("check", str(config), cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("labels", [None, ["low", "mid", "high"]])
def test_float_labels_are_a_regression_or_with_names_the_classes_they_number(labels, tmp_path):
    """0.0 / 1.0 / 2.0 in the label column: a regression (MSE; Pearson, Spearman; a 1-output
    head), as transformers' run_classification reads floats; with task.labels, the names of
    classes 0, 1, 2. Either way every stage runs (float labels once stopped in pre_eval)."""
    from transformers import AutoConfig

    (tmp_path / "train.csv").write_text("text,score\n" + "".join(f"row {i} {'xyz'[i % 3]},{float(i % 3)}\n"
                                                                 for i in range(60)))  # fmt: skip
    named = f"\n          labels: {json.dumps(labels)}" if labels else ""
    config = write_config(tmp_path, "r.yaml", f"""
        output_root: {tmp_path / "out"}
        task:
          name: scores
          type: classification
          data_files: {{train: train.csv}}
          columns: {{text: text, label: score}}
          eval_split: 0.25{named}
        student: {{name: tiny, path: embedded:tiny-distilbert}}
        training: {{max_steps: 4, batch_size: 8, save_steps: 4}}
        """)  # fmt: skip
    result = forge_here("--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = RunDir(tmp_path / "out" / "scores" / "tiny" / "r")
    post, model = metrics(run), AutoConfig.from_pretrained(run.model)
    if labels is None:
        assert set(post["eval"]) == {"mse", "pearson", "spearman", "loss", "samples"}
        assert post["main"] == {"split": "eval", "metric": "mse", "larger_is_better": False}
        assert model.problem_type == "regression" and model.num_labels == 1
    else:
        assert post["main"]["metric"] == "accuracy" and model.id2label == {0: "low", 1: "mid", 2: "high"}
