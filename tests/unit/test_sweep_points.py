"""Sweeps (forge/config/sweep.py): one file, many runs. What the points are and are named, that
each point's config is the config a user would have written by hand, how a point is addressed,
and how planning, `forge status` and `forge report` see a sweep. The block's mistakes are in the
bad-config corpus (tests/bad_configs/sweep_*.yaml)."""

from __future__ import annotations

import json

import pytest

from forge import report, status, workflow
from forge.config import config_hash, load_config, sweep_points, to_dict
from forge.config.loader import load_raw
from forge.config.sweep import parse
from forge.errors import ConfigError
from forge.refs import split_ref
from tests.conftest import TINY_CONFIG, write_config

SWEEP = f"""
base: {TINY_CONFIG}
output_root: out
run_name: lr
sweep:
  grid:
    training.learning_rate: [1.0e-4, 3.0e-4]
    training.warmup_steps: [0, 10]
  tied:
    - task.max_train_samples: [100, 200]
      task.max_eval_samples: [50, 60]
  seeds: [1, 2]
  names: {{training.learning_rate: lr, task.max_train_samples: n, task.max_eval_samples: e}}
"""


def test_a_grid_crossed_with_tied_values_and_seeds_has_every_point_named_and_in_file_order(tmp_path):
    path = write_config(tmp_path, "lr.yaml", SWEEP)
    points = sweep_points(load_raw(path), str(path))
    assert len(points) == 2 * 2 * 2 * 2  # lr x warmup x (the tied pair) x seeds
    refs = [ref.split("#")[1] for ref, _ in points]
    assert refs[:3] == ["lr0.0001_warmup_steps0_n100_e50__seed1", "lr0.0001_warmup_steps0_n100_e50__seed2",
                        "lr0.0001_warmup_steps0_n200_e60__seed1"]  # fmt: skip
    assert len(set(refs)) == len(refs)
    for ref, cfg in points:
        assert cfg.run_name == "lr__" + ref.split("#")[1]
        assert (cfg.task.max_train_samples, cfg.task.max_eval_samples) in {(100, 50), (200, 60)}  # tied: together
    last = points[-1][1]
    assert (last.training.learning_rate, last.training.warmup_steps, last.seed) == (3e-4, 10, 2)


def test_a_point_is_the_config_a_user_would_have_written_by_hand(tmp_path):
    path = write_config(tmp_path, "lr.yaml", SWEEP)
    point = load_config(f"{path}#lr0.0003_warmup_steps10_n200_e60__seed2")
    by_hand = write_config(
        tmp_path,
        "by_hand.yaml",
        f"""
        base: {TINY_CONFIG}
        output_root: out
        run_name: lr__lr0.0003_warmup_steps10_n200_e60__seed2
        seed: 2
        task: {{max_train_samples: 200, max_eval_samples: 60}}
        training: {{learning_rate: 3.0e-4, warmup_steps: 10}}
        """,
    )
    assert to_dict(point) == to_dict(load_config(by_hand))
    assert config_hash(point) == config_hash(load_config(by_hand))


def test_only_seeds_or_only_a_grid(tmp_path):
    seeds = write_config(tmp_path, "s.yaml", f"base: {TINY_CONFIG}\nsweep:\n  seeds: [7, 3]\n")
    assert [ref.split("#")[1] for ref, _ in sweep_points(load_raw(seeds), str(seeds))] == ["seed7", "seed3"]
    grid = write_config(tmp_path, "g.yaml", f"base: {TINY_CONFIG}\nsweep:\n  grid: {{student.lora.r: [4, 8]}}\n")
    cfgs = [cfg for _, cfg in sweep_points(load_raw(grid), str(grid))]
    assert [c.run_name for c in cfgs] == ["g__r4", "g__r8"] and [c.student.lora.r for c in cfgs] == [4, 8]


def test_a_config_built_on_a_sweep_is_a_sweep_unless_it_says_sweep_null(tmp_path, configs):
    write_config(configs, "mnli/child.yaml", "base: kd.yaml\nrun_name: child\n")
    write_config(configs, "mnli/single.yaml", "base: kd.yaml\nrun_name: single\nsweep: null\n")
    workflow.forget()
    idx = workflow.index(str(configs))
    assert "out/mnli/tiny/single" in idx and "out/mnli/tiny/child__learning_rate0.0001__seed1" in idx
    assert load_config(configs / "mnli/single.yaml").run_name == "single"


def test_values_are_spelled_exactly_and_made_safe_for_a_folder_name():
    points = parse({"grid": {"a.x": [1e-5, 0.1, True, None, "embedded:tiny/x", [0, 5]]}}, "f.yaml").points()
    assert [p.label for p in points] == ["x1e-05", "x0.1", "xtrue", "xnull", "xembedded-tiny-x", "x0-5"]


def test_relative_paths_in_a_sweep_are_resolved_against_its_file(tmp_path):
    (tmp_path / "models" / "a").mkdir(parents=True)
    path = write_config(
        tmp_path, "sub/p.yaml", f"base: {TINY_CONFIG}\nsweep:\n  grid: {{student.path: [../models/a]}}\n"
    )
    (_, cfg), = sweep_points(load_raw(path), str(path))  # fmt: skip
    assert cfg.student.path == str(tmp_path / "models" / "a")


def test_a_point_is_addressed_as_file_hash_label_and_mistakes_say_what_exists(tmp_path):
    path = write_config(tmp_path, "lr.yaml", SWEEP)
    assert split_ref(f"{path}#seed1") == (str(path), "seed1")
    assert split_ref("a#b/c.yaml") == ("a#b/c.yaml", None)  # a '#' in a folder name is not a point
    odd = write_config(tmp_path, "odd#name.yaml", f"base: {TINY_CONFIG}\nrun_name: odd\n")  # a file named so
    assert split_ref(str(odd)) == (str(odd), None) and load_config(odd).run_name == "odd"
    with pytest.raises(ConfigError, match=r"is a sweep of 16 runs: name one as .*lr.yaml#<point> \(e.g. "):
        load_config(path)
    with pytest.raises(ConfigError, match=r"#nope: no such point in this sweep \(its points are named like lr0"):
        load_config(f"{path}#nope")
    with pytest.raises(ConfigError, match="is not a sweep"):
        load_config(f"{TINY_CONFIG}#seed1")


def test_one_bad_value_names_its_point_and_a_problem_of_the_base_is_said_once(tmp_path):
    path = write_config(
        tmp_path,
        "bad.yaml",
        f"base: {TINY_CONFIG}\ntraining: {{batch_size: 0}}\nsweep:\n  grid: {{training.max_grad_norm: [1.0, -1]}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        sweep_points(load_raw(path), str(path))
    lines = str(caught.value).splitlines()
    assert sum("training.batch_size" in line for line in lines) == 1
    assert [line for line in lines if "max_grad_norm" in line] == [
        f"{path}#max_grad_norm-1: training.max_grad_norm: Input should be greater than or equal to 0 (got -1)"
    ]


HEAD = f"base: {TINY_CONFIG}\noutput_root: out\n"


@pytest.fixture
def configs(tmp_path):
    workflow.forget()
    root = tmp_path / "configs"
    write_config(root, "mnli/00_sft.yaml", HEAD)
    write_config(
        root, "mnli/kd.yaml", HEAD + "sweep:\n  grid: {training.learning_rate: [1.0e-4, 2.0e-4]}\n  seeds: [1, 2]\n"
    )
    return root


def test_planning_places_every_point_and_the_sweeps_report_beside_them(configs):
    idx = workflow.index(str(configs))
    points = sorted(k for k in idx if k.startswith("out/mnli/tiny/kd__"))
    assert points == [f"out/mnli/tiny/kd__learning_rate{lr}__seed{s}" for lr in ("0.0001", "0.0002") for s in (1, 2)]
    assert idx[points[0]].config == f"{configs}/mnli/kd.yaml#learning_rate0.0001__seed1"
    assert workflow.sweep_runs("out/mnli/tiny/kd", str(configs)) == [
        f"out/mnli/tiny/kd__learning_rate{lr}__seed{s}" for lr in ("0.0001", "0.0002") for s in (1, 2)
    ]
    targets = workflow.targets(configs / "mnli", str(configs))
    assert targets[-1] == "out/mnli/tiny/kd/report.md" and len(targets) == 1 + 4 + 1
    assert workflow.targets(configs / "mnli/00_sft.yaml", str(configs)) == ["out/mnli/tiny/00_sft/pipeline_complete"]
    assert load_config(workflow.config_for(points[-1], str(configs))).seed == 2


def test_a_sweep_that_changes_part_of_its_bases_block_is_planned_under_the_names_it_runs_under(tmp_path):
    """A config built on a sweep may set part of the `sweep:` block (here a slice of the grid and
    fewer seeds); the rest (the short names) comes from the base, for the plan as for the run.
    (The plan read the block of the last file alone, named the points without the base's short
    names, and refused every point as "no such point".)"""
    write_config(tmp_path, "lr.yaml", SWEEP)
    write_config(tmp_path, "slice.yaml", "base: lr.yaml\nrun_name: slice\nsweep:\n  grid: "
                 "{training.learning_rate: [1.0e-4]}\n  seeds: [2]\n")  # fmt: skip
    raw = load_raw(tmp_path / "slice.yaml")
    points = [split_ref(ref)[1] for ref, _ in sweep_points(raw, str(tmp_path / "slice.yaml"))]
    assert points == ["lr0.0001_warmup_steps0_n100_e50__seed2", "lr0.0001_warmup_steps0_n200_e60__seed2",
                      "lr0.0001_warmup_steps10_n100_e50__seed2", "lr0.0001_warmup_steps10_n200_e60__seed2"]  # fmt: skip
    planned = sorted(e.config for e in workflow.index(str(tmp_path)).values() if "slice.yaml" in e.config)
    assert sorted(split_ref(c)[1] for c in planned) == sorted(points)
    for ref in planned:
        assert load_config(ref).seed == 2  # each planned point loads as the run it is


def test_a_run_builds_on_one_point_of_a_sweep_and_the_plan_trains_that_point_first(configs):
    """`student.run` (or `teacher.run`) may name a sweep's point, `SWEEP.yaml#label`, e.g. GRPO
    from the seed-2 run of a KD sweep; a label that names no point is one line."""
    warm = write_config(
        configs, "mnli/warm.yaml", HEAD + "student: {path: null, run: kd.yaml#learning_rate0.0002__seed2}\n"
    )
    ref = load_config(warm).upstream_runs["student"]
    assert split_ref(ref) == (f"{configs}/mnli/kd.yaml", "learning_rate0.0002__seed2")
    assert workflow.upstream_targets("out/mnli/tiny/warm", str(configs)) == [
        "out/mnli/tiny/kd__learning_rate0.0002__seed2/pipeline_complete"
    ]
    for run, says in (
        ("kd.yaml#learning_rate0.0003__seed2", "kd.yaml#learning_rate0.0003__seed2: no such point in this sweep"),
        ("00_sft.yaml#seed1", "00_sft.yaml is not a sweep (it has no `sweep:` block)"),
        ("gone.yaml#seed1", "file not found: " + f"{configs}/mnli/gone.yaml"),
    ):
        write_config(configs, "mnli/bad.yaml", HEAD + f"student: {{path: null, run: '{run}'}}\n")
        with pytest.raises(ConfigError) as err:
            load_config(configs / "mnli/bad.yaml")
        (line,) = str(err.value).splitlines()
        assert "student.run: " in line and says in line, line


def test_seed_in_a_run_ref_builds_each_seed_on_the_upstream_point_of_the_same_seed(configs, tmp_path):
    """`student.run: SWEEP.yaml#seed{seed}` pairs seeds across a chain (GRPO seed s from SFT seed
    s): each point's upstream run is its own seed's, the plan trains those first, and the
    points stay one point for the report (the config keeps the placeholder)."""
    write_config(configs, "mnli/sft.yaml", HEAD + "sweep:\n  seeds: [1, 2, 3]\n")
    chain = write_config(
        configs,
        "mnli/chain.yaml",
        HEAD + "student: {path: null, run: 'sft.yaml#seed{seed}'}\nsweep:\n  seeds: [1, 3]\n",
    )
    points = sweep_points(load_raw(chain), str(chain))
    assert [cfg.upstream_runs["student"] for _, cfg in points] == [
        f"{configs}/mnli/sft.yaml#seed1",
        f"{configs}/mnli/sft.yaml#seed3",
    ]
    assert {cfg.student.run for _, cfg in points} == {f"{configs}/mnli/sft.yaml#seed{{seed}}"}
    assert workflow.upstream_targets("out/mnli/tiny/chain__seed3", str(configs)) == [
        "out/mnli/tiny/sft__seed3/pipeline_complete"
    ]
    # A single run fills in its own seed; a seed the upstream sweep lacks names the point it looked for.
    write_config(configs, "mnli/one.yaml", HEAD + "seed: 4\nstudent: {path: null, run: 'sft.yaml#seed{seed}'}\n")
    with pytest.raises(ConfigError, match=r"student.run: .*sft.yaml#seed4: no such point in this sweep"):
        load_config(configs / "mnli/one.yaml")
    # Reports group the points of such a sweep as one: their stored configs differ only in seed.
    scores = zip(points, (0.5, 0.7), strict=True)
    runs = [_run(tmp_path, cfg.run_name, ref, score, **to_dict(cfg)) for (ref, cfg), score in scores]
    (point,) = report.points(report.collect(runs, tmp_path))
    assert len(point.runs) == 2 and point.mean == pytest.approx(0.6)


def test_a_point_clashing_with_a_hand_written_run_is_named(configs):
    write_config(configs, "mnli/clash.yaml", HEAD + "run_name: kd__learning_rate0.0001__seed1\n")
    with pytest.raises(
        ConfigError, match=r"kd.yaml#learning_rate0.0001__seed1 and .*clash.yaml both write to out/mnli/tiny/kd__"
    ):
        workflow.index(str(configs))


def test_a_bad_point_stops_the_plan_in_one_line(configs):
    write_config(configs, "mnli/bad.yaml", HEAD + "sweep:\n  grid: {training.max_grad_norm: [1.0, -1]}\n")
    with pytest.raises(ConfigError) as caught:
        workflow.targets(configs / "mnli", str(configs))
    assert str(caught.value).splitlines() == [
        f"{configs}/mnli/bad.yaml#max_grad_norm-1: training.max_grad_norm: Input should be greater than or equal to 0 "
        "(got -1)"
    ]


def _run(root, name, config_path, post, **config):
    run = root / name
    (run / "metrics").mkdir(parents=True)
    (run / "config.yaml").write_text(json.dumps({"run_name": name, "seed": config.pop("seed"), **config}))
    (run / "run_metadata.json").write_text(json.dumps({"config_path": config_path, "identity": {"task": "mnli"}}))
    if post is not None:
        (run / "metrics" / "post_eval.json").write_text(json.dumps({"validation_matched": {"accuracy": post}}))
    return run


def _reports(tmp_path, scores):
    """Runs of a sweep over training.learning_rate with seeds 1-3: {lr: [accuracy per seed]}."""
    roots = [
        _run(tmp_path, f"s__lr{lr}__seed{i}", f"s.yaml#lr{lr}__seed{i}", acc, seed=i, training={"learning_rate": lr})
        for lr, accs in scores.items()
        for i, acc in enumerate(accs, 1)
    ]
    return report.collect(roots, tmp_path)


def test_the_report_gives_mean_std_and_n_per_point_and_names_a_clear_winner(tmp_path):
    found = report.points(_reports(tmp_path, {0.1: [0.80, 0.82, 0.84], 0.2: [0.60, 0.61, None]}))
    rows = report.points_table(found)
    assert rows == [
        {"learning_rate": "0.1", "metric": "accuracy", "n": "3", "post": "0.8200 ± 0.0200"},
        {"learning_rate": "0.2", "metric": "accuracy", "n": "2 of 3", "post": "0.6050 ± 0.0071"},
    ]
    said = report.verdict(found)
    assert said.startswith("best: training.learning_rate=0.1: 0.8200 ± 0.0200 (n=3)")
    assert "beats the second by 0.2150, more than the seeds' spread (0.0271)" in said


def test_a_difference_inside_the_seed_spread_is_no_winner(tmp_path):
    said = report.verdict(report.points(_reports(tmp_path, {0.1: [0.80, 0.70, 0.90], 0.2: [0.78, 0.83, 0.79]})))
    assert "is within the seeds' spread" in said and "not a clear winner" in said


def test_runs_that_differ_in_more_than_the_seed_are_not_one_point(tmp_path):
    a = _run(tmp_path, "a", None, 0.5, seed=1, training={"learning_rate": 0.1})
    b = _run(tmp_path, "b", None, 0.6, seed=2, training={"learning_rate": 0.2})
    assert report.points(report.collect([a, b], tmp_path)) == []  # nothing to aggregate: no point has 2 runs
    c = _run(tmp_path, "c", None, 0.7, seed=3, training={"learning_rate": 0.2})
    found = report.points(report.collect([a, b, c], tmp_path))
    assert [len(p.runs) for p in found] == [1, 2] and found[1].values == {"training.learning_rate": 0.2}


def test_status_groups_a_sweeps_runs(tmp_path):
    _reports(tmp_path, {0.1: [0.8, None], 0.2: [0.6, 0.7]})
    _run(tmp_path, "alone", "other.yaml", 0.5, seed=1)
    found = [status.status_of(r) for r in status.find_runs([tmp_path])]
    groups = status.sweep_groups(found)
    assert list(groups) == ["s.yaml"] and len(groups["s.yaml"]) == 4


def test_a_run_made_before_a_key_existed_is_in_the_point_of_runs_that_have_it_at_its_default(tmp_path):
    import yaml

    from forge.config import dump_yaml

    roots = []
    for seed in (1, 2):
        data = yaml.safe_load(dump_yaml(load_config(TINY_CONFIG, {"seed": seed})))
        if seed == 1:
            del data["distillation"]["on_policy"]  # as written by an older forge
        roots.append(_run(tmp_path, f"r{seed}", None, 0.5 + seed / 10, **data))
    found = report.points(report.collect(roots, tmp_path))
    assert [len(p.runs) for p in found] == [2] and found[0].values == {}


def test_points_of_three_or_more_keys_are_drawn_side_by_side_in_one_panel(tmp_path):
    import numpy as np
    from PIL import Image

    roots = [
        _run(
            tmp_path,
            f"p{i}_{s}",
            f"s.yaml#p{i}__seed{s}",
            0.5 + i / 10 + s / 100,
            seed=s,
            training={"learning_rate": 0.1 * i, "warmup_steps": i, "batch_size": 8 + i},
        )  # fmt: skip
        for i in range(3)
        for s in (1, 2)
    ]
    files = report.write(report.collect(roots, tmp_path), tmp_path / "rep")
    image = np.asarray(Image.open(files["points"]).convert("RGB"))
    assert image.shape[1] < 1000  # one panel, not one per key
    assert (np.abs(image.astype(int) - (0x1F, 0x77, 0xB4)).max(axis=-1) < 30).sum() > 200  # the points drawn
    assert "| learning_rate | warmup_steps | batch_size | metric | n | post |" in files["md"].read_text()
