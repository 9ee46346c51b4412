"""The project's own lint gates: ruff, snakefmt, and snakemake --lint with the accepted lints."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent

# Lints of `snakemake --lint` the project accepts, and why (see docs/slurm.md):
ACCEPTED_LINTS = {
    # forge runs in the project's own environment (pip install -e .), not per-rule conda envs
    "Specify a conda environment or container for each rule.",
    # FORGE is the interpreter running Snakemake; as a param it would rerun every stage
    # whenever the environment moves
    "Shell command directly uses variable FORGE from outside of the rule",
}


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff():
    assert run(str(BIN / "ruff"), "check", ".").returncode == 0
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout


def test_snakefmt():
    result = run(str(BIN / "snakefmt"), "--check", "Snakefile", "rules")
    assert result.returncode == 0, result.stderr


def test_snakemake_lint_reports_only_accepted_lints():
    result = run(sys.executable, "-m", "snakemake", "--lint")
    found = set(re.findall(r"^\s+\* (.+?):?$", result.stdout + result.stderr, flags=re.M))
    assert found, "snakemake --lint printed nothing; did its output format change?"
    assert found <= ACCEPTED_LINTS, found - ACCEPTED_LINTS
