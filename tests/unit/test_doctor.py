"""`forge doctor` against a cluster made of stub SLURM commands: what it finds in the shipped
profile on a small node without accounting, the fixed copy it writes, and that copy passing."""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from forge.cli import main
from tests.conftest import ROOT


def stub_cluster(folder, *, accounting: bool, cpus: int = 2, mem_mb: int = 23000, controller: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    scripts = {name: "exit 0" for name in ("sbatch", "squeue", "scontrol")}
    scripts["sacct"] = (
        "exit 0" if accounting else 'echo "sacct: error: Slurm accounting storage is disabled" >&2; exit 1'
    )
    scripts["sinfo"] = (
        f'echo "debug*|{cpus}|{mem_mb}"; echo "long|{cpus}|{mem_mb}"'
        if controller
        else 'echo "sinfo: error: Unable to contact slurm controller (connect failure)" >&2; exit 1'
    )
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.fixture
def on_path(monkeypatch):
    def use(folder):
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    return use


def test_the_shipped_profile_on_a_small_node_without_accounting_is_fixed_in_a_copy(tmp_path, on_path, capsys):
    on_path(stub_cluster(tmp_path / "bin", accounting=False))
    profile = ROOT / "profiles" / "slurm"
    assert main(["doctor", "--profile", str(profile), "--write", str(tmp_path / "fixed")]) == 1
    out = capsys.readouterr().out
    assert "problem  accounting: none (sacct: error: Slurm accounting storage is disabled)" in out
    assert "set slurm-status-command: squeue" in out and "set slurm-no-account: true" in out
    assert "problem  train: cpus_per_task 8 does not fit the largest node (2): SLURM would refuse the job" in out
    assert "problem  train: 8 threads on a node of 2 CPUs" in out
    assert "prepare_data: mem_mb" not in out  # 16000 MB fits 23000
    assert "ok       partitions: debug*, long; largest node: 2 CPUs, 23000 MB" in out

    fixed = yaml.safe_load((tmp_path / "fixed" / "config.v8+.yaml").read_text())
    assert fixed["slurm-status-command"] == "squeue" and fixed["slurm-no-account"] is True
    train = fixed["set-resources"]["train"]
    assert train["cpus_per_task"] == 2  # capped; the rest of train's entry kept
    assert train["runtime"] == 720 and "--signal=USR1@300" in train["slurm_extra"]
    assert fixed["set-resources"]["prepare_data"] == {"mem_mb": 16000}
    assert fixed["set-threads"] == dict.fromkeys(["prepare_data", "pre_eval", "train", "finalize", "post_eval"], 2)
    assert main(["doctor", "--profile", str(tmp_path / "fixed")]) == 0  # the copy passes
    assert "problem" not in capsys.readouterr().out


def test_with_accounting_the_default_status_command_is_fine_and_a_missing_signal_is_a_note(tmp_path, on_path, capsys):
    on_path(stub_cluster(tmp_path / "bin", accounting=True, cpus=16, mem_mb=64000))
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.v8+.yaml").write_text("executor: slurm\nset-resources:\n  train:\n    runtime: 60\n")
    assert main(["doctor", "--profile", str(profile)]) == 0
    out = capsys.readouterr().out
    assert "ok       accounting: sacct answers" in out
    assert "note     train: no --signal in slurm_extra: forge still saves FORGE_TIME_MARGIN s" in out
    assert "accounts" not in out and "does not fit" not in out


def test_a_controller_that_does_not_answer_and_a_missing_profile_are_one_line_each(tmp_path, on_path, capsys):
    on_path(stub_cluster(tmp_path / "bin", accounting=False, controller=False))
    assert main(["doctor", "--profile", str(ROOT / "profiles" / "slurm")]) == 1
    out = capsys.readouterr().out
    assert "problem  the SLURM controller does not answer (sinfo: sinfo: error: Unable to contact" in out
    assert out.count("problem") == 1
    assert main(["doctor", "--profile", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().startswith("forge doctor: ")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.v8+.yaml").write_text("jobs: [100\n")
    assert main(["doctor", "--profile", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.v8+.yaml: not valid YAML" in err[0]


def test_a_slurm_command_that_hangs_is_a_finding_not_a_traceback(tmp_path, on_path, monkeypatch, capsys):
    from forge import doctor

    folder = stub_cluster(tmp_path / "bin", accounting=True)
    (folder / "sacct").write_text("#!/bin/sh\nsleep 30\n")
    on_path(folder)
    real = doctor._run
    monkeypatch.setattr(doctor, "_run", lambda *cmd: real(*cmd, timeout=0.5))
    assert main(["doctor", "--profile", str(ROOT / "profiles" / "slurm")]) == 1
    assert "problem  accounting: none (sacct: no answer within 0.5 s)" in capsys.readouterr().out
