"""The `eval:` block (forge/harness.py): task files travel with their data, what cannot run is
one line before anything is created, and evaluating draws from no random state training uses."""

from __future__ import annotations

import pytest

from forge.config import load_config
from forge.errors import ConfigError
from tests.conftest import REASONING_TINY, ROOT, TINY_CONFIG, write_config


def test_a_task_files_relative_data_and_embedded_dataset_are_found_from_the_file(tmp_path):
    from forge import embedded, harness

    write_config(tmp_path, "tasks/data/test.jsonl", '{"q": "1+1", "a": "2"}\n')
    write_config(tmp_path, "tasks/local.yaml", "task: local\ndataset_path: json\n"
                 "dataset_kwargs: {data_files: {test: data/test.jsonl}}\noutput_type: generate_until\n")  # fmt: skip
    spec = harness.task_spec(str(tmp_path / "tasks/local.yaml"))
    assert spec["dataset_kwargs"]["data_files"] == {"test": str(tmp_path / "tasks/data/test.jsonl")}
    shipped = harness.task_spec(str(ROOT / "evals/arithmetic_gen.yaml"))
    assert shipped["dataset_path"] == str(embedded.ensure("embedded:synthetic-arithmetic"))
    assert callable(shipped["process_results"])  # grading.graded, through lm-eval's !function
    assert harness.task_spec("hellaswag") == "hellaswag"  # a name: lm-eval's


@pytest.mark.parametrize(
    "task, message",
    [
        ("nope.yaml", "no such task file"),
        ("missing_data.yaml", "data file data/none.jsonl not found"),
        ("broken.yaml", "cannot be read"),
    ],
)
def test_a_task_that_cannot_run_is_one_line_from_forge_check(tmp_path, task, message, capsys):
    from forge.cli import main

    missing_data = "task: x\ndataset_path: json\ndataset_kwargs: {data_files: data/none.jsonl}\n"
    write_config(tmp_path, "missing_data.yaml", missing_data)
    write_config(tmp_path, "broken.yaml", "task: [unclosed\n")
    config = write_config(tmp_path, "run.yaml", f"base: {REASONING_TINY / '00_sft.yaml'}\neval: {{tasks: [{task}]}}\n")
    assert main(["check", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval.tasks:" in err[0] and message in err[0], err


def test_forge_check_notes_that_a_limit_and_a_drawn_subset_evaluate_different_rows(tmp_path, capsys):
    from forge.cli import main

    tasks = f"tasks: [{ROOT / 'evals/arithmetic_gen.yaml'}]"
    for name, body, noted in (
        ("both.yaml", f"eval: {{{tasks}, limit: 20}}\ntask: {{max_eval_samples: 20}}\n", True),
        ("limit.yaml", f"eval: {{{tasks}, limit: 20}}\n", False),  # the whole test split: no draw
        ("drawn.yaml", f"eval: {{{tasks}}}\ntask: {{max_eval_samples: 20}}\n", False),
    ):
        config = write_config(tmp_path, name, f"base: {REASONING_TINY / '00_sft.yaml'}\n{body}")
        assert main(["check", str(config)]) == 0
        out = capsys.readouterr().out
        assert ("evaluate different rows" in out) is noted, out


def test_lm_eval_is_refused_for_task_types_it_cannot_evaluate_and_a_main_metric_needs_both_stages(tmp_path):
    classifier = write_config(tmp_path, "c.yaml", f"base: {TINY_CONFIG}\neval: {{tasks: [x.yaml]}}\n")
    with pytest.raises(ConfigError, match="lm-evaluation-harness .* is available for task.type generation"):
        load_config(classifier)
    one_stage = "eval: {tasks: [x.yaml], stages: [post_eval], main_metric: x/acc}\n"
    lm = write_config(tmp_path, "g.yaml", f"base: {REASONING_TINY / '00_sft.yaml'}\n{one_stage}")
    with pytest.raises(ConfigError, match="eval.stages must be both pre_eval and post_eval"):
        load_config(lm)


def test_evaluating_leaves_every_random_state_as_it_was():
    import random

    import numpy as np
    import torch

    from forge.rng import random_state_kept

    states = lambda: (random.random(), np.random.random(), torch.rand(1).item())  # noqa: E731
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = states()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with random_state_kept():
        random.seed(99), np.random.seed(99), torch.manual_seed(99)
        states()
    assert states() == expected


def test_no_progress_bar_reaches_a_stderr_that_is_no_terminal(capfd):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge import embedded, harness
    from forge.config.schema import EvalConfig
    from tests.conftest import ROOT

    model_dir = embedded.ensure("embedded:tiny-causal-lm")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    tasks = [str(ROOT / "evals" / "arithmetic_gen.yaml"), str(ROOT / "evals" / "arithmetic_mc.yaml")]
    capfd.readouterr()
    datasets.disable_progress_bars()  # as forge does off a terminal (forge/logs.py): what is left is lm-eval's
    try:
        results, _ = harness.evaluate(EvalConfig(tasks=tasks, limit=3, batch_size=3), model, tokenizer)
    finally:
        datasets.enable_progress_bars()
    assert results["lm_eval/arithmetic_gen"]["samples"] == 3
    err = capfd.readouterr().err
    assert "it/s]" not in err and "%|" not in err, err[-2000:]  # lm-eval's bars: generating, scoring, contexts


def test_a_librarys_own_bars_are_off_for_the_call_only_where_stderr_is_no_terminal(capfd, monkeypatch):
    import types

    from tqdm import tqdm

    from forge.logs import bars_only_on_a_terminal

    library = types.SimpleNamespace(tqdm=tqdm)
    with bars_only_on_a_terminal(library):  # pytest's captured stderr: no terminal
        list(library.tqdm(range(3), desc="converting"))
    assert library.tqdm is tqdm and "converting" not in capfd.readouterr().err  # put back after the call
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    with bars_only_on_a_terminal(library):
        assert library.tqdm is tqdm  # a terminal: left as it is
