"""`forge doctor`: does the SLURM profile fit this cluster? Checked before any job is submitted.

It asks the cluster what the profile depends on — the SLURM commands, whether accounting
(`sacct`) answers, the partitions and the largest node's CPUs and memory — and reads the
profile (`config.v8+.yaml`): the status command, accounts, every rule's CPUs and memory,
and the train rule's `--signal` lead time. Each finding is one line; `--write DIR` writes a
copy of the profile with the fixes applied, which `snakemake --profile DIR` then uses.

What it fixes, and why:
- no accounting: the executor plugin polls with `sacct`, which then hangs without a word;
  `slurm-status-command: squeue` and `slurm-no-account: true` (it would also guess an
  account through sacct);
- a rule asking for more CPUs or memory than the largest node has: SLURM refuses it at
  submission ("Requested node configuration is not available"); capped to the node, and
  so are the rules' threads;
- a train rule without `--signal=USR1@...`: forge's own timer still saves before the limit
  it read when training started, but a limit changed later ends the job unsaved (a note,
  not changed: the lead time is the user's choice).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROFILE_FILE = "config.v8+.yaml"
COMMANDS = ("sbatch", "squeue", "sinfo", "scontrol")


@dataclass
class Cluster:
    """What the cluster says about itself."""

    missing: list[str] = field(default_factory=list)  # SLURM commands not on PATH
    accounting: bool = False
    accounting_error: str = ""
    controller_error: str = ""  # sinfo's complaint when slurmctld does not answer
    partitions: list[str] = field(default_factory=list)  # the default one marked with *
    cpus: int | None = None  # of the largest node
    mem_mb: int | None = None


@dataclass
class Findings:
    ok: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not wrong
    problems: list[str] = field(default_factory=list)
    fixes: dict = field(default_factory=dict)  # profile key -> value, applied by --write


def _run(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """`cmd`'s result; a command that hangs (sacct looking for a controller) or cannot start
    is a failed result with the reason, not a traceback."""
    try:
        return subprocess.run([*cmd], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"{cmd[0]}: no answer within {timeout:g} s")
    except OSError as exc:
        return subprocess.CompletedProcess(cmd, 127, "", f"{cmd[0]}: {exc.strerror or exc}")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _megabytes(value: str) -> int | None:
    digits = value.rstrip("+").strip()
    return int(digits) if digits.isdigit() else None


def inspect_cluster() -> Cluster:
    cluster = Cluster(missing=[c for c in (*COMMANDS, "sacct") if shutil.which(c) is None])
    if "sacct" not in cluster.missing:
        result = _run("sacct", "-n", "-X", "-o", "JobID", "-S", "now-1minute")
        cluster.accounting = result.returncode == 0
        cluster.accounting_error = _first_line(result.stderr or result.stdout)
    else:
        cluster.accounting_error = "sacct is not installed"
    if "sinfo" not in cluster.missing:
        result = _run("sinfo", "-h", "-o", "%P|%c|%m")
        if result.returncode != 0:
            cluster.controller_error = _first_line(result.stderr or result.stdout) or f"exit {result.returncode}"
        for line in result.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 3:
                continue
            partition, cpus, mem = parts
            if partition not in cluster.partitions:
                cluster.partitions.append(partition)
            if cpus.rstrip("+").isdigit():
                cluster.cpus = max(cluster.cpus or 0, int(cpus.rstrip("+")))
            if (mb := _megabytes(mem)) is not None:
                cluster.mem_mb = max(cluster.mem_mb or 0, mb)
    return cluster


def read_profile(profile: Path) -> dict:
    path = profile / PROFILE_FILE
    try:
        data = yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a Snakemake profile (no mapping in {PROFILE_FILE})")
    return data


def _resources(profile: dict) -> dict[str, dict]:
    """rule -> its resources as the profile sets them (defaults, then the rule's own)."""
    defaults = profile.get("default-resources") or {}
    rules = profile.get("set-resources") or {}
    names = sorted({"prepare_data", "pre_eval", "train", "finalize", "post_eval", *rules})
    return {rule: {**defaults, **(rules.get(rule) or {})} for rule in names}


def check(cluster: Cluster, profile: dict) -> Findings:
    found = Findings()
    if cluster.missing and set(COMMANDS) & set(cluster.missing):
        found.problems.append(f"SLURM commands not found: {', '.join(cluster.missing)} (is this a SLURM login node?)")
        return found
    if cluster.controller_error:
        found.problems.append(f"the SLURM controller does not answer (sinfo: {cluster.controller_error})")
        return found
    status = profile.get("slurm-status-command")
    if cluster.accounting:
        found.ok.append("accounting: sacct answers (the plugin's default status command works)")
    elif status == "squeue":
        found.ok.append(f"accounting: none ({cluster.accounting_error}); the profile polls with squeue")
    else:
        found.problems.append(
            f"accounting: none ({cluster.accounting_error}), yet the profile polls with "
            f"{status or 'sacct (the default)'}: Snakemake would wait forever; set slurm-status-command: squeue"
        )
        found.fixes["slurm-status-command"] = "squeue"
    if not cluster.accounting and not profile.get("slurm-no-account"):
        found.problems.append("accounts: no accounting to ask; set slurm-no-account: true (else the plugin guesses)")
        found.fixes["slurm-no-account"] = True
    if cluster.partitions:
        found.ok.append(
            f"partitions: {', '.join(cluster.partitions)}; largest node: {cluster.cpus} CPUs, {cluster.mem_mb} MB"
        )
    defaults = dict(profile.get("default-resources") or {})
    rules = {rule: dict(values or {}) for rule, values in (profile.get("set-resources") or {}).items()}
    for rule, resources in _resources(profile).items():
        for key, limit in (("cpus_per_task", cluster.cpus), ("mem_mb", cluster.mem_mb)):
            asked = resources.get(key)
            if isinstance(asked, int) and limit is not None and asked > limit:
                found.problems.append(
                    f"{rule}: {key} {asked} does not fit the largest node ({limit}): SLURM would refuse the job"
                )
                if key in rules.get(rule, {}):  # the rule's own setting, else the default it inherits
                    rules[rule][key] = limit
                    found.fixes["set-resources"] = rules
                else:
                    defaults[key] = limit
                    found.fixes["default-resources"] = defaults
    threads = dict(profile.get("set-threads") or {})
    for rule, count in threads.items():
        if isinstance(count, int) and cluster.cpus is not None and count > cluster.cpus:
            found.problems.append(f"{rule}: {count} threads on a node of {cluster.cpus} CPUs")
            threads[rule] = cluster.cpus
            found.fixes["set-threads"] = threads
    train = _resources(profile).get("train", {})
    if "--signal" not in str(train.get("slurm_extra", "")):
        found.notes.append(
            "train: no --signal in slurm_extra: forge still saves FORGE_TIME_MARGIN s (default 120) before the "
            "time limit it reads when training starts, but without SLURM's warning a limit changed later "
            "(scontrol update) ends the job unsaved (e.g. '--signal=USR1@300')"
        )
    else:
        found.ok.append(f"train: {train['slurm_extra'].strip(chr(39))} (forge saves before the time limit)")
    return found


def write_profile(profile: dict, fixes: dict, source: Path, target: Path) -> Path:
    """A copy of the profile with `fixes` applied, in `target`."""
    target.mkdir(parents=True, exist_ok=True)
    fixed = {**profile, **fixes}
    header = f"# Written by `forge doctor` from {source}: that profile with the fixes it reported.\n"
    path = target / PROFILE_FILE
    path.write_text(header + yaml.safe_dump(fixed, sort_keys=False))
    return path
