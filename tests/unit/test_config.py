from pathlib import Path

import pytest

from forge.config import config_hash, diff_configs, load_config
from forge.config.loader import load_raw
from forge.errors import ConfigError
from tests.conftest import ROOT, TINY_CONFIG, write_config

BASE = """
task:
  name: mnli
  dataset: embedded:synthetic-glue
student:
  name: tiny
  path: embedded:tiny-distilbert
training:
  learning_rate: 1.0e-3
  batch_size: 8
"""

RL_BASE = """
task:
  name: reasoning
  dataset: embedded:synthetic-arithmetic
student:
  name: tiny
  path: embedded:tiny-causal-lm
training:
  batch_size: 8
"""


def error_of(path, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))
RUNS = [p for p in SHIPPED if p.name != "base.yaml"]
FRAGMENTS = [p for p in SHIPPED if p.name == "base.yaml"]


@pytest.mark.parametrize("path", RUNS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_run_config_loads_and_validates(path):
    from forge.config import sweep_points

    points = sweep_points(load_raw(path), str(path))  # a sweep: every point
    for ref, cfg in points or [(str(path), load_config(path))]:
        assert cfg.run_name == path.stem + ("__" + ref.split("#")[1] if points else "")
        assert cfg.mode in {"sft", "kd", "rl"}


@pytest.mark.parametrize("path", FRAGMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_base_fragment_loads_and_is_used_by_a_run_config(path):
    """base.yaml files are partial on purpose; they must parse, inherit, and be used."""
    assert load_raw(path).data
    users = [run for run in RUNS if path.resolve() in _chain(run)]
    assert users, f"{path} is not the base of any run config"


def _chain(path):
    import yaml

    base = (yaml.safe_load(path.read_text()) or {}).get("base")
    bases = [base] if isinstance(base, str) else base or []
    found = []
    for b in bases:
        parent = (path.parent / b).resolve()
        found += [parent, *_chain(parent)]
    return found


def test_inheritance_deep_merges_and_child_wins(tmp_path):
    write_config(tmp_path, "base.yaml", BASE)
    child = write_config(tmp_path, "sub/01_run.yaml", "base: ../base.yaml\ntraining:\n  batch_size: 16\n")
    cfg = load_config(child)
    assert cfg.training.batch_size == 16  # child wins
    assert cfg.training.learning_rate == 1e-3  # sibling key kept by the deep merge
    assert cfg.run_name == "01_run"


def test_data_files_are_set_whole_not_merged(tmp_path):
    """A base's `test` file joined a child's {train, eval} files: read, or 'no such file', by a
    name the child never wrote."""
    problems = ROOT / "configs" / "examples" / "problems_grpo.yaml"  # data_files: {train, test}
    child = write_config(
        tmp_path, "run.yaml", f"base: {problems}\ntask:\n  data_files: {{train: a.jsonl, eval: b.jsonl}}\n"
    )
    assert load_config(child).task.data_files == {"train": "a.jsonl", "eval": "b.jsonl"}
    assert load_config(write_config(tmp_path, "same.yaml", f"base: {problems}\n")).task.data_files == {
        "train": "train.jsonl",
        "test": "test.jsonl",
    }


def test_a_chain_of_bases_and_a_list_of_bases(tmp_path):
    write_config(tmp_path, "a.yaml", BASE)
    write_config(tmp_path, "b.yaml", "training:\n  batch_size: 4\n  logging_steps: 3\n")
    write_config(tmp_path, "c.yaml", "base: a.yaml\ntraining:\n  batch_size: 2\n")
    cfg = load_config(write_config(tmp_path, "d.yaml", "base: [c.yaml, b.yaml]\n"))
    assert cfg.training.batch_size == 4  # later bases win over earlier ones
    assert cfg.training.logging_steps == 3
    assert cfg.training.learning_rate == 1e-3


def test_relative_paths_resolve_against_the_file_that_set_them(tmp_path):
    write_config(tmp_path, "base.yaml", BASE + "teacher:\n  run: ./models/teacher.yaml\n")
    write_config(tmp_path, "models/teacher.yaml", BASE)
    child = write_config(tmp_path, "deep/er/run.yaml", "base: ../../base.yaml\nstudent:\n  path: ../local_student\n")
    cfg = load_config(child)
    assert cfg.teacher.run == str(tmp_path / "models" / "teacher.yaml")
    assert cfg.student.path == str(tmp_path / "deep" / "local_student")
    assert cfg.task.dataset == "embedded:synthetic-glue"  # not a path: left alone


def test_cli_overrides_win(tmp_path):
    path = write_config(tmp_path, "run.yaml", BASE)
    cfg = load_config(path, {"training.max_steps": 10, "training.epochs": 2.0})
    assert cfg.training.max_steps == 10
    assert cfg.training.epochs == 2.0


def test_unknown_key_names_file_and_suggests(tmp_path):
    write_config(tmp_path, "base.yaml", BASE)
    child = write_config(tmp_path, "run.yaml", "base: base.yaml\ntraining:\n  lerning_rate: 0.1\n")
    message = error_of(child)
    assert message == f"{child}: training.lerning_rate: unknown key (did you mean 'learning_rate'?)"


def test_unknown_top_level_key(tmp_path):
    path = write_config(tmp_path, "run.yaml", BASE + "studnet: {}\n")
    assert "studnet: unknown key (did you mean 'student'?)" in error_of(path)


def test_wrong_type_names_the_file_that_set_it(tmp_path):
    base = write_config(tmp_path, "base.yaml", BASE + "seed: not-a-number\n")
    child = write_config(tmp_path, "run.yaml", "base: base.yaml\n")
    message = error_of(child)
    assert message.startswith(f"{base}: seed: ")
    assert "'not-a-number'" in message and "\n" not in message


def test_missing_required_key(tmp_path):
    path = write_config(tmp_path, "run.yaml", "task:\n  name: mnli\n  dataset: x\n")
    assert error_of(path) == f"{path}: student: required key is missing"


def test_missing_base(tmp_path):
    path = write_config(tmp_path, "run.yaml", "base: nowhere.yaml\n")
    message = error_of(path)
    assert message.startswith(f"{path}: base: file not found") and "nowhere.yaml" in message


def test_inheritance_cycle(tmp_path):
    write_config(tmp_path, "a.yaml", "base: b.yaml\n")
    path = write_config(tmp_path, "b.yaml", "base: a.yaml\n")
    assert "inheritance cycle" in error_of(path)


def test_kd_without_teacher(tmp_path):
    path = write_config(tmp_path, "run.yaml", BASE + "distillation:\n  alpha: 0.5\n")
    message = error_of(path)
    assert message.startswith(f"{path}: distillation.alpha: is 0.5, which needs a teacher")


def test_kd_with_teacher_and_sft_with_alpha_zero_are_fine(tmp_path):
    kd = load_config(write_config(tmp_path, "kd.yaml", BASE + "distillation: {alpha: 0.5}\nteacher: {path: x}\n"))
    assert kd.mode == "kd"
    assert load_config(write_config(tmp_path, "sft.yaml", BASE + "distillation: {alpha: 0.0}\n")).mode == "sft"


def test_a_hidden_state_loss_is_kd_and_needs_the_teacher_online(tmp_path):
    hidden = BASE + "distillation: {alpha: 0.0, hidden: {weight: 0.2}}\n"
    assert "distillation.hidden.weight: is 0.2, which needs a teacher" in error_of(
        write_config(tmp_path, "a.yaml", hidden)
    )
    cached = write_config(tmp_path, "b.yaml", hidden + "teacher: {path: x}\n")
    assert "distillation.teacher_cache: the hidden-state loss needs the teacher's hidden states" in error_of(cached)
    online = write_config(
        tmp_path,
        "c.yaml",
        hidden.replace("weight: 0.2}", "weight: 0.2}, teacher_cache: false") + "teacher: {path: x}\n",
    )
    cfg = load_config(online)
    assert cfg.mode == "kd" and cfg.distillation.hidden.loss == "cosine"
    assert "Input should be 'cosine' or 'mse'" in error_of(
        write_config(tmp_path, "d.yaml", BASE + "distillation: {hidden: {loss: l1}}\n")
    )


def test_rl_needs_rewards_and_selects_rl_mode(tmp_path):
    assert "rl.rewards: RL needs at least one reward function" in error_of(
        write_config(tmp_path, "a.yaml", RL_BASE + "rl:\n  rewards: {}\n")
    )
    assert "rl.rewards: required key is missing" in error_of(write_config(tmp_path, "b.yaml", RL_BASE + "rl: {}\n"))
    rl = load_config(write_config(tmp_path, "c.yaml", RL_BASE + "rl:\n  rewards: {correctness: 1.0, format: 0.2}\n"))
    assert rl.mode == "rl" and rl.rl.rewards == {"correctness": 1.0, "format": 0.2}
    names = load_config(write_config(tmp_path, "d.yaml", RL_BASE + "rl:\n  rewards: [correctness, format]\n"))
    assert names.rl.rewards == {"correctness": 1.0, "format": 1.0}


def test_reward_names_are_checked_when_the_config_loads(tmp_path):
    def rewards(spec):
        return error_of(write_config(tmp_path, "r.yaml", RL_BASE + f"rl:\n  rewards: {{{spec}: 1.0}}\n"))

    assert "rl.rewards: unknown reward 'exact'; built-ins are correctness, format" in rewards("exact")
    assert "cannot import 'no_such_module'" in rewards("'no_such_module:f'")
    assert "forge.rewards has no function 'nope'" in rewards("'forge.rewards:nope'")


def test_rl_rules_name_the_key_to_fix(tmp_path):
    rewards = "rl:\n  rewards: [correctness]\n"
    assert "rl: RL needs a task a policy answers in text (task.type: generation)" in error_of(
        write_config(tmp_path, "a.yaml", BASE + rewards)
    )
    assert "training.batch_size: is 6, which counts completions: make it a multiple of rl.num_generations (4)" in (
        error_of(write_config(tmp_path, "b.yaml", RL_BASE + rewards), {"training.batch_size": 6})
    )
    assert "teacher: an RL run learns from its rewards" in error_of(
        write_config(tmp_path, "c.yaml", RL_BASE + rewards + "teacher: {path: x}\n")
    )
    assert "distillation.teacher_cache: a causal LM's cache keeps the k largest teacher logits" in error_of(
        write_config(tmp_path, "d.yaml", RL_BASE + "teacher: {path: x}\ndistillation: {alpha: 0.5}\n")
    )
    assert "rl.loss_type: Input should be" in error_of(
        write_config(tmp_path, "e.yaml", RL_BASE + rewards + "  loss_type: ppo\n")
    )


def test_ocr_distils_online_and_without_hidden_states(tmp_path):
    kd = ROOT / "configs/ocr/lines/tiny/01_kd.yaml"
    assert load_config(kd).mode == "kd"
    assert "distillation.teacher_cache: the teacher-logit cache holds one distribution per example" in error_of(
        kd, {"distillation.teacher_cache": True}
    )
    assert (
        "distillation.hidden.weight: the hidden-state loss (distillation.hidden) is available for task.type "
        "classification, not image_to_text" in error_of(kd, {"distillation.hidden.weight": 1.0})
    )


def test_the_student_is_a_model_or_another_run(tmp_path):
    sft = write_config(tmp_path, "sft.yaml", RL_BASE)
    chained = load_config(
        write_config(tmp_path, "sub/grpo.yaml", RL_BASE.replace("path: embedded:tiny-causal-lm", "run: ../sft.yaml"))
    )
    assert chained.student.run == str(sft) and chained.student.path is None  # relative to the config file
    both = RL_BASE.replace("path: embedded:tiny-causal-lm", "path: x\n  run: y.yaml")
    neither = RL_BASE.replace("  path: embedded:tiny-causal-lm\n", "")
    for name, body in (("both.yaml", both), ("neither.yaml", neither)):
        assert "student: set exactly one of path (a model) or run" in error_of(write_config(tmp_path, name, body))


def test_invalid_yaml_is_one_line(tmp_path):
    path = write_config(tmp_path, "run.yaml", "task: [unclosed\n")
    message = error_of(path)
    assert message.startswith(f"{path} (line") and "invalid YAML" in message and "\n" not in message


def test_hash_ignores_comments_and_order_but_not_values(tmp_path):
    a = load_config(write_config(tmp_path, "x/run.yaml", BASE))
    b = load_config(
        write_config(
            tmp_path,
            "y/run.yaml",
            "# a comment\n" + BASE.replace("  batch_size: 8\n", "") + "  batch_size: 8\n",
        )
    )
    c = load_config(write_config(tmp_path, "z/run.yaml", BASE), {"training.learning_rate": 0.5})
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert diff_configs(a, c) == [(("training", "learning_rate"), 1e-3, 0.5)]


def test_the_real_hub_run_is_distilbert_on_glue_mnli_sft():
    cfg = load_config(ROOT / "configs/classification/mnli/distilbert/00_sft.yaml", {"training.max_steps": 10})
    assert (cfg.task.name, cfg.task.dataset, cfg.task.dataset_config) == ("mnli", "nyu-mll/glue", "mnli")
    assert cfg.student.path == "distilbert-base-uncased"
    assert cfg.distillation.alpha == 0.0 and cfg.mode == "sft"
    assert cfg.training.max_steps == 10


def test_offline_twin_differs_only_in_model_data_and_budget():
    real = load_config(ROOT / "configs/classification/mnli/distilbert/00_sft.yaml")
    twin = load_config(TINY_CONFIG)
    changed = {key[0] for key, _, _ in diff_configs(real, twin)}
    assert changed <= {"task", "student", "training"}
    assert twin.task.name == real.task.name and twin.mode == real.mode == "sft"
    assert Path(TINY_CONFIG).stem == Path("00_sft.yaml").stem


def test_exponent_floats_written_without_a_dot_are_accepted(tmp_path):
    # YAML 1.1 reads 5e-5 as a string; users write it all the time
    cfg = load_config(write_config(tmp_path, "run.yaml", BASE.replace("1.0e-3", "5e-5")))
    assert cfg.training.learning_rate == 5e-5


def test_a_teacher_is_a_model_or_a_run_not_both(tmp_path):
    both = write_config(tmp_path, "a.yaml", BASE + "distillation: {alpha: 0.5}\nteacher: {path: x, run: y.yaml}\n")
    assert "teacher: set exactly one of path (a model) or run" in error_of(both)
    neither = write_config(tmp_path, "b.yaml", BASE + "distillation: {alpha: 0.5}\nteacher: {revision: main}\n")
    assert "teacher: set exactly one of path" in error_of(neither)


def test_a_run_cannot_be_its_own_teacher_or_starting_point(tmp_path):
    from forge.run import upstream
    from forge.run.layout import run_dir_of

    path = write_config(tmp_path, "self.yaml", BASE + "distillation: {alpha: 0.5}\nteacher: {run: ./self.yaml}\n")
    with pytest.raises(ConfigError, match="teacher.run names this very run"):
        upstream.load(cfg := load_config(path), run_dir_of(cfg))
    path = write_config(tmp_path, "policy.yaml", RL_BASE.replace("path: embedded:tiny-causal-lm", "run: policy.yaml"))
    with pytest.raises(ConfigError, match="student.run names this very run"):
        upstream.load(cfg := load_config(path), run_dir_of(cfg))


def test_hash_ignores_keys_at_their_default_so_new_keys_rerun_nothing(tmp_path):
    """A key forge adds later (with a default that keeps today's behaviour) is absent from
    older configs: their hash must not change, or Snakemake would rerun finished runs."""
    a = load_config(write_config(tmp_path, "x/run.yaml", BASE))
    spelled_out = load_config(write_config(tmp_path, "y/run.yaml", BASE), {"student.trust_remote_code": False})
    opted_in = load_config(write_config(tmp_path, "z/run.yaml", BASE), {"student.trust_remote_code": True})
    assert config_hash(a) == config_hash(spelled_out) != config_hash(opted_in)


def test_yaml_merge_keys_are_not_duplicate_keys(tmp_path):
    from forge.config.loader import read_yaml

    path = write_config(
        tmp_path,
        "merge.yaml",
        """
        defaults: &d
          learning_rate: 1.0e-3
          batch_size: 8
        sets:
          small: &small
            <<: *d
            batch_size: 16
        training:
          <<: *small
        """,
    )
    assert read_yaml(path)["training"] == {"learning_rate": 1.0e-3, "batch_size": 16}


def test_a_stored_config_keeps_a_name_longer_than_new_configs_may_have(tmp_path):
    """Names are capped for new configs; a run begun with a longer one still resumes."""
    from forge.config import validate
    from forge.config.loader import RawConfig, load_raw

    raw = load_raw(write_config(tmp_path, "run.yaml", BASE))
    raw.data["run_name"] = "r" * 150
    assert validate(RawConfig(data=raw.data, leaf_file="config.yaml"), check_upstream=False).run_name == "r" * 150
    with pytest.raises(ConfigError, match="run_name: should have at most 100 characters"):
        validate(raw)
