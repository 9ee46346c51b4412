"""The target <-> config mapping the Snakefile relies on."""

import pytest

from forge import workflow
from forge.errors import ConfigError
from tests.conftest import ROOT, write_config

BASE = (
    "task:\n  name: mnli\n  dataset: embedded:synthetic-glue\n"
    "student:\n  name: tiny\n  path: embedded:tiny-distilbert\n"
)


@pytest.fixture
def configs(tmp_path):
    workflow.forget()
    root = tmp_path / "configs"
    write_config(root, "mnli/base.yaml", BASE + "output_root: out\n")
    write_config(root, "mnli/tiny/00_sft.yaml", "base: ../base.yaml\n")
    write_config(root, "mnli/tiny/01_named.yaml", "base: ../base.yaml\nrun_name: custom\n")
    write_config(root, "other/base.yaml", BASE + "output_root: elsewhere\n")
    write_config(root, "other/x/02.yaml", "base: ../base.yaml\nstudent:\n  name: big\n")
    return root


def test_index_maps_run_dirs_to_configs_and_skips_fragments(configs):
    idx = workflow.index(str(configs))
    assert {k: v.config for k, v in idx.items()} == {
        "out/mnli/tiny/00_sft": str(configs / "mnli/tiny/00_sft.yaml"),
        "out/mnli/tiny/custom": str(configs / "mnli/tiny/01_named.yaml"),
        "elsewhere/mnli/big/02": str(configs / "other/x/02.yaml"),
    }
    assert workflow.config_for("out/mnli/tiny/custom", str(configs)) == str(configs / "mnli/tiny/01_named.yaml")


def test_group_targets_are_every_run_under_a_folder(configs):
    assert workflow.targets(configs / "mnli", str(configs)) == [
        "out/mnli/tiny/00_sft/pipeline_complete",
        "out/mnli/tiny/custom/pipeline_complete",
    ]
    assert workflow.targets(configs / "other/x/02.yaml", str(configs)) == ["elsewhere/mnli/big/02/pipeline_complete"]


def test_unknown_run_dir_and_clashing_configs_are_clear_errors(configs):
    with pytest.raises(ConfigError, match="no config under .* writes to this run directory"):
        workflow.config_for("out/mnli/tiny/nope", str(configs))
    write_config(configs, "mnli/tiny/sub/00_sft.yaml", "base: ../../base.yaml\n")
    workflow.forget()
    with pytest.raises(ConfigError, match="both write to out/mnli/tiny/00_sft"):
        workflow.index(str(configs))


def test_every_config_that_cannot_be_placed_is_named_not_only_the_first(configs):
    write_config(configs, "mnli/tiny/broken.yaml", "base: [unclosed\n")
    write_config(configs, "mnli/tiny/no_base.yaml", "base: ../nowhere.yaml\n")
    workflow.forget()
    with pytest.raises(ConfigError) as caught:
        workflow.index(str(configs))
    lines = str(caught.value).splitlines()
    assert len(lines) == 2, lines
    assert "broken.yaml (line 2): invalid YAML" in lines[0] and "no_base.yaml: base: file not found" in lines[1]


def test_config_hash_ignores_comments(configs):
    before = workflow.config_hash_for("out/mnli/tiny/00_sft", str(configs))
    path = configs / "mnli/tiny/00_sft.yaml"
    path.write_text("# tuned later\n" + path.read_text())
    workflow.forget()
    assert workflow.config_hash_for("out/mnli/tiny/00_sft", str(configs)) == before
    path.write_text(path.read_text() + "training:\n  learning_rate: 0.1\n")
    workflow.forget()
    assert workflow.config_hash_for("out/mnli/tiny/00_sft", str(configs)) != before


def test_train_plan_reports_resume_point_and_is_no_rerun_trigger(tmp_path):
    from forge.run.layout import RunDir
    from tests.unit.test_state import fake_checkpoint

    plan = workflow.TrainPlan(str(tmp_path))
    assert str(plan) == "starts fresh"
    fake_checkpoint(RunDir(tmp_path), 40)
    assert str(plan) == "resumes from checkpoint-40"
    # Snakemake records only builtin-typed params for its params rerun trigger
    assert not isinstance(plan, (str, int, float, list, tuple, dict))


def test_the_shipped_configs_have_distinct_run_dirs():
    workflow.forget()
    idx = workflow.index(str(ROOT / "configs"))
    assert str(ROOT / "configs/classification/mnli/tiny/00_sft.yaml") in {e.config for e in idx.values()}
    workflow.forget()


def test_a_kd_run_depends_on_its_teacher_run_only_when_it_distils(configs):
    write_config(configs, "elsewhere/teacher.yaml", "base: ../mnli/base.yaml\nstudent:\n  name: wide\n")
    write_config(
        configs,
        "mnli/tiny/02_kd.yaml",
        "base: ../base.yaml\nteacher:\n  run: ../../elsewhere/teacher.yaml\ndistillation:\n  alpha: 0.5\n",
    )
    write_config(
        configs, "mnli/tiny/03_alpha0.yaml", "base: ../base.yaml\nteacher:\n  run: ../../elsewhere/teacher.yaml\n"
    )
    workflow.forget()
    root = str(configs)
    assert workflow.upstream_targets("out/mnli/tiny/02_kd", root) == ["out/mnli/wide/teacher/pipeline_complete"]
    # the teacher's config is found for its run dir, though it is a run config too
    assert workflow.config_for("out/mnli/wide/teacher", root) == str(configs / "elsewhere/teacher.yaml")
    assert workflow.upstream_targets("out/mnli/tiny/03_alpha0", root) == []
    assert workflow.upstream_targets("out/mnli/tiny/00_sft", root) == []


def test_a_run_depends_on_the_run_its_student_starts_from(tmp_path):
    workflow.forget()
    root = tmp_path / "configs"
    task = "task:\n  name: reasoning\n  dataset: embedded:synthetic-arithmetic\n"
    body = task + "output_root: out\nstudent:\n  name: tiny\n"
    write_config(root, "r/00_sft.yaml", body + "  path: embedded:tiny-causal-lm\n")
    write_config(root, "r/01_grpo.yaml", body + "  run: 00_sft.yaml\nrl:\n  rewards: [correctness]\n")
    assert workflow.upstream_targets("out/reasoning/tiny/01_grpo", str(root)) == [
        "out/reasoning/tiny/00_sft/pipeline_complete"
    ]
    assert workflow.upstream_targets("out/reasoning/tiny/00_sft", str(root)) == []
    workflow.forget()


def test_a_plan_of_every_shipped_config_loads_each_once_and_preflights_none(monkeypatch):
    """Snakemake's planning, as the rules call it (every rule of every run asks for its config,
    its hash and the runs it builds on): each config file is loaded once and each run's upstream
    runs resolved once; preflight is the first job's (`forge stage prepare_data` admits the run)."""
    from collections import Counter

    import forge.config
    from forge import preflight
    from forge.run import upstream

    loads, resolved = Counter(), Counter()
    load_config, resolve = forge.config.load_config, upstream.load
    monkeypatch.setattr(forge.config, "load_config", lambda path: loads.update([path]) or load_config(path))
    monkeypatch.setattr(upstream, "load", lambda cfg, run, *a: resolved.update([run.root]) or resolve(cfg, run, *a))
    monkeypatch.setattr(preflight, "check", lambda cfg: pytest.fail("planning ran preflight"))
    monkeypatch.chdir(ROOT)
    workflow.forget()
    try:
        wanted = [t.removesuffix("/pipeline_complete") for t in workflow.targets("configs") if t.endswith("complete")]
        runs, seen = list(wanted), set()
        while runs:
            run = runs.pop()
            if run in seen:
                continue
            seen.add(run)
            for _stage in range(5):
                workflow.config_for(run)
                workflow.config_hash_for(run)
                runs += [t.removesuffix("/pipeline_complete") for t in workflow.upstream_targets(run)]
    finally:
        workflow.forget()
    assert len(wanted) > 50 and len(seen) >= len(wanted)
    assert loads and max(loads.values()) == 1, loads.most_common(3)
    assert resolved and max(resolved.values()) == 1, resolved.most_common(3)
