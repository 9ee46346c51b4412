"""The bad-config corpus (tests/bad_configs/): every file is refused with exit code 2 and
one line naming the file and the key, before anything is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "bad_configs"

# file stem -> what its one line must say (the key, then the problem)
EXPECTED = {
    "alpha_above_one": "distillation.alpha: Input should be less than or equal to 1",
    "base_cycle_a": "base: inheritance cycle:",
    "base_cycle_b": "base: inheritance cycle:",
    "base_is_itself": "base: inheritance cycle:",
    "binary_file": "binary_file.yaml: not a YAML file (not UTF-8 text)",
    "comments_only": "comments_only.yaml: the config is empty",
    "custom_tag": "custom_tag.yaml (line 2): invalid YAML: could not determine a constructor for the tag '!forge'",
    "empty_file": "empty_file.yaml: the config is empty",
    "kd_without_teacher": "distillation.alpha: is 0.7, which needs a teacher",
    "lora_rank_zero": "student.lora.r: Input should be greater than 0",
    "missing_base_file": "missing_base_file.yaml: base: file not found:",
    "misspelt_nested_key": "training.lerning_rate: unknown key (did you mean 'learning_rate'?)",
    "misspelt_section": "trainig: unknown key (did you mean 'training'?)",
    "model_name_escapes": "student.name: String should match pattern",
    "negative_learning_rate": "training.learning_rate: Input should be greater than 0",
    "negative_max_steps": "training.max_steps: Input should be greater than or equal to -1 (got -5)",
    "negative_warmup": "training.warmup_steps: Input should be greater than or equal to 0",
    "not_yaml": "not_yaml.yaml (line 3): invalid YAML",
    "python_name_tag": "(line 2): invalid YAML: could not determine a constructor for the tag",
    "python_object_tag": "(line 2): invalid YAML: could not determine a constructor for the tag",
    "rl_reward_is_not_a_reward": "rl.rewards: 'os:system' takes (command); a reward function takes (prompts",
    "rl_unknown_reward": "rl.rewards: unknown reward 'exactness'",
    "rl_with_teacher": "teacher: an RL run learns from its rewards, not from a teacher",
    "rl_without_rewards": "rl.rewards: RL needs at least one reward function",
    "run_name_with_command_substitution": "run_name: String should match pattern",
    "run_name_with_dotdot": "run_name: String should match pattern",
    "run_name_with_semicolon": "run_name: String should match pattern",
    "run_name_with_slash": "run_name: String should match pattern",
    "seed_out_of_range": "seed: Input should be less than or equal to 4294967295 (got 4294967296)",
    "data_seed_negative": "task.data_seed: Input should be greater than or equal to 0 (got -1)",
    "learning_rate_nan": "training.learning_rate: Input should be a finite number (got nan)",
    "epochs_inf": "training.epochs: Input should be a finite number (got inf)",
    "epochs_overflow": "training.epochs: Input should be a finite number (got inf)",
    "batch_size_boolean": "training.batch_size: Input should be a valid integer (got True)",
    "max_steps_huge": "training.max_steps: Input should be less than or equal to 2147483647",
    "max_steps_float": "training.max_steps: Input should be a valid integer (got 10.5)",
    "duplicate_key": "(line 5): invalid YAML: key 'max_steps' appears twice in one mapping (lines 3 and 5)",
    "output_root_empty": "output_root: String should have at least 1 character",
    "run_name_too_long": "run_name: should have at most 100 characters (got 'rrrr",
    "teacher_cache_as_string": "distillation.teacher_cache: Input should be a valid boolean (got 'false')",
    "reward_weight_nan": "rl.rewards.correctness: Input should be a finite number (got nan)",
    "alias_bomb": "(line 7): invalid YAML: its aliases expand to more than 100,000 values",
    "alias_refers_to_itself": "(line 2): invalid YAML: an alias refers to itself",
    "deeply_nested": "(line 2): invalid YAML: exceeded maximum nesting depth",
    "section_is_a_list": "training: Input should be a valid dictionary",
    "student_path_and_run": "student_path_and_run.yaml: student: set exactly one of path (a model) or run",
    "student_run_missing": "student.run: file not found:",
    "student_run_unknown_placeholder": "student.run: {run} is not a placeholder forge fills in (only {seed}",
    "teacher_run_is_itself": "names this very run; a run cannot build on itself",
    "teacher_run_missing": "teacher.run: file not found:",
    "top_level_list": "top_level_list.yaml: the top level must be a mapping of keys, not list",
    "trust_remote_code_as_string": "student.trust_remote_code: Input should be a valid boolean",
    "trust_remote_code_typo": "student.trust_remote_codes: unknown key",
    "unknown_precision": "training.precision: Input should be 'fp32', 'bf16' or 'fp16' (got 'fp8')",
    "task_type_unknown": "task.type: Input should be 'classification', 'generation' or 'image_to_text' (got 'translat",
    "task_type_missing": "task.type: required key is missing: the kind of task, 'classification', 'generation' or",
    "task_key_of_another_type": "task.loss_on: unknown key (known keys here: bad_rows, columns, data_files, data_seed",
    "task_without_data": "task: name the data: task.dataset, task.data_files, or both",
    "task_labels_repeated": "task.labels: Input should list each label once",
    "task_eval_split_and_splits_eval": "task.eval_split: and task.splits.eval both say where the evaluation rows are",
    "task_column_twice": "task.columns.label: names the column 'sentence', as task.columns.text does",
    "task_eval_split_above_one": "task.eval_split: Input should be less than 1 (got 1.5)",
    "generation_two_forms": "task.columns: names messages and prompt/completion columns: a row is one form; keep one",
    "generation_text_with_completion_loss": "task.loss_on: is completion, which needs prompts or chats; plain text",
    "generation_prompt_column_and_template": "task.columns.prompt: and task.prompt_template both write the user turn",
    "generation_packing_with_kd": "task.packing: packs SFT rows; a KD run reads its rows one by one",
    "generation_rewards_without_answer_pattern": "task.answer_pattern: is unset, and the correctness and format rew",
    "generation_answer_pattern_not_a_regex": "task.answer_pattern: '####\\\\s*(\\\\d+' is not a regular expression",
    "generation_overlength_unknown": "task.overlength: Input should be 'truncate', 'drop' or 'error' (got 'cut')",
    "unknown_top_key": "learning_rate: unknown key",
    "wrong_type_float": "training.learning_rate: Input should be a valid number",
    "wrong_type_int": "training.batch_size: Input should be a valid integer",
    "zero_batch_size": "training.batch_size: Input should be greater than 0",
    "student_layers_empty": "student.layers: Input should be a non-empty list of increasing layer indices",
    "student_layers_unsorted": "student.layers: Input should be a non-empty list of increasing layer indices",
    "student_layers_repeated": "student.layers: Input should be a non-empty list of increasing layer indices",
    "student_layers_negative": "student.layers.0: Input should be greater than or equal to 0 (got -1)",
    "student_layers_not_a_list": "student.layers: Input should be a valid list (got 0)",
    "transfer_without_alpha": "distillation.transfer_samples: the transfer set's rows are learned from the teacher",
    "transfer_without_labelled_budget": "distillation.transfer_samples: needs task.max_train_samples",
    "transfer_on_ocr": "distillation.transfer_samples: a transfer set (distillation.transfer_samples) is available for",
    "student_layers_float": "student.layers.1: Input should be a valid integer (got 1.5)",
    "student_layers_string": "student.layers: Input should be a valid list (got '0,1')",
    "distillation_loss_unknown": "distillation.loss: Input should be 'forward_kl', 'reverse_kl' or 'jsd' (got 'kl')",
    "distillation_beta_one": "distillation.beta: Input should be less than 1 (got 1.0)",
    "distillation_beta_zero": "distillation.beta: Input should be greater than 0 (got 0)",
    "transfer_samples_zero": "distillation.transfer_samples: Input should be greater than 0 (got 0)",
    "transfer_samples_float": "distillation.transfer_samples: Input should be a valid integer (got '1e3')",
    "temperature_zero": "distillation.temperature: Input should be greater than 0 (got 0)",
    "max_length_zero": "task.max_length: Input should be greater than 0 (got 0)",
    "grad_accumulation_zero": "training.gradient_accumulation_steps: Input should be greater than 0 (got 0)",
    "unknown_scheduler": "training.lr_scheduler: Input should be 'linear', 'cosine',",
    "negative_grad_norm": "training.max_grad_norm: Input should be greater than or equal to 0 (got -1)",
    "keep_checkpoints_zero": "training.keep_checkpoints: Input should be greater than 0 (got 0)",
    "wandb_mode_unknown": "wandb.mode: Input should be 'auto', 'online', 'offline' or 'disabled' (got 'sometimes')",
    "rl_one_generation": "rl.num_generations: Input should be greater than or equal to 2 (got 1)",
    "rl_temperature_zero": "rl.temperature: Input should be greater than 0 (got 0)",
    "lora_dropout_one": "student.lora.dropout: Input should be less than 1 (got 1.0)",
    "seed_as_string": "seed: Input should be a valid integer (got '42')",
    "section_is_null": "training: Input should be a valid dictionary",
    "base_is_a_list": "base: file not found:",
    "target_modules_a_string": "student.lora.target_modules: Input should be a valid list (got 'query')",
    "epochs_as_word": "training.epochs: Input should be a valid number (got 'three')",
    "scalar_document": "scalar_document.yaml: the top level must be a mapping of keys, not str",
    "cache_top_k_above_the_classes": "distillation.cache_top_k: is 5, more than the 3 classes",
    "student_layers_with_lora": "student.layers: and student.lora together would save an adapter whose base is",
    "lm_cache_without_top_k": "distillation.teacher_cache: a causal LM's cache keeps the k largest teacher logits",
    "on_policy_with_cache": "distillation.on_policy: scores the student's own samples with the teacher, which must",
    "on_policy_on_mnli": "distillation.on_policy: on-policy distillation (distillation.on_policy) is available for",
    "on_policy_above_one": "distillation.on_policy: Input should be less than or equal to 1 (got 1.5)",
    "on_policy_without_alpha": "distillation.on_policy: on-policy batches learn from the teacher alone: it needs",
    # sweeps (forge/config/sweep.py): the block's mistakes name the key; a bad point names the point
    "sweep_not_a_mapping": "sweep: must be a mapping with grid:, tied: and/or seeds:",
    "sweep_unknown_key": "sweep.seed: unknown key (known keys here: grid, names, seeds, tied)",
    "sweep_grid_value_not_a_list": "sweep.grid.training.learning_rate: must be a non-empty list of values",
    "sweep_grid_empty_list": "sweep.grid.training.learning_rate: must be a non-empty list of values",
    "sweep_tied_lengths_differ": "sweep.tied[0]: its lists change together, so they need one length (got training",
    "sweep_key_twice": "sweep: training.learning_rate is swept twice",
    "sweep_keys_overlap": "sweep: student.lora and student.lora.r overlap: sweep the leaf keys only",
    "sweep_seed_in_grid": "sweep.grid: 'seed' cannot be swept (use `seeds: [...]`)",
    "sweep_run_name_in_grid": "sweep.grid: 'run_name' cannot be swept",
    "sweep_seeds_boolean": "sweep.seeds: must be a non-empty list of integers",
    "sweep_seeds_repeated": "sweep.seeds: a seed appears twice (got [1, 2, 1])",
    "sweep_seeds_negative": "sweep.seeds: must be a non-empty list of integers from 0 to 2**32-1 (got [-1, 2])",
    "sweep_too_many_points": "sweep: 11,979 points; a sweep has at most 10,000",
    "sweep_points_same_name": "would both be named 'datasetembedded-mnli': give the values distinct spellings",
    "sweep_short_names_clash": "sweep.names: training.learning_rate and training.warmup_steps would both be called 'w'",
    "sweep_name_for_unswept_key": "sweep.names.training.warmup_steps: not a swept key",
    "sweep_value_is_a_mapping": "sweep.grid.student.lora: {'r': 4} is a mapping: sweep its leaf keys instead",
    "sweep_value_nan": "sweep.grid.training.learning_rate: nan is not a finite number",
    "sweep_unknown_swept_key": "sweep: training.learning_rat: unknown key (did you mean 'training.learning_rate'?)",
    "sweep_point_invalid": "sweep_point_invalid.yaml#alpha1.5: distillation.alpha: Input should be less than or equal",
    "sweep_sweeps_nothing": "sweep: sweeps nothing: give grid:, tied: or seeds:",
    "sweep_point_name_too_long": "#learning_rate0.0001: run_name: should have at most 100 characters",
    "sweep_placing_key": "sweep.grid: 'student.name' cannot be swept (it places the run directory",
    "sweep_key_below_a_value": "#x1: training.learning_rate: is not a mapping, so training.learning_rate.x cannot",
}


def test_the_corpus_and_its_expectations_match():
    assert len(EXPECTED) >= 90
    assert sorted(p.stem for p in CORPUS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_a_bad_config_is_one_line_exit_2_and_creates_nothing(stem, tmp_path, monkeypatch, capsys, signals_restored):
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("FORGE_HOME", str(home))
    path = CORPUS / f"{stem}.yaml"
    assert main(["--config", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"forge: {CORPUS}/"), lines[0]  # names the file to edit
    assert EXPECTED[stem] in lines[0], lines[0]
    assert len(lines[0]) < 400, lines[0]  # a long value is cut, not echoed
    assert list(cwd.iterdir()) == [] and not home.exists()  # no outputs/, no run, no registry entry


def test_forge_check_refuses_every_file_of_the_corpus(tmp_path, monkeypatch, capsys, signals_restored):
    """`forge check tests/bad_configs`: no file passes, each is named, nothing is created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    assert main(["check", str(CORPUS)]) == 2
    out = capsys.readouterr()
    assert out.out.strip() == "", out.out  # no config is ok
    named = {line.split(": ")[1] for line in out.err.strip().splitlines()}
    assert {str(p) for p in CORPUS.glob("*.yaml")} <= {n.split(" (line")[0].split("#")[0] for n in named}
    assert list(tmp_path.iterdir()) == []
