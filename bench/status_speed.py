"""How fast `forge status` answers over many runs, and how fast `forge --help` starts.

Generates N run directories with the files a real run has (a resolved config.yaml,
run_metadata.json with 1-3 attempts, training_state.json, stage markers, metrics,
latest_checkpoint, a 1 MB output.log that status must not read) in a mix of states,
then times, each as a fresh process as a user would run it (best of --repeats):

- `forge status DIR` (the table) and `forge status DIR --json`, the runs the points of 10
  sweeps (the table ends with a line per sweep);
- the same over runs made before run_metadata.json named task and mode (status then
  reads each config.yaml);
- `forge --help`.

    .venv/bin/python bench/status_speed.py [--runs 1000] [--repeats 3]

Targets: status over 1,000 runs <= 1 s; --help <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATES = ("complete", "preempted", "failed", "killed", "pending")


def make_runs(root: Path, n: int, identity: bool) -> None:
    from forge.config import dump_yaml, load_config
    from forge.run.layout import STAGES
    from forge.run.metadata import identity as identity_of
    from forge.run.metadata import package_versions

    cfg = load_config(ROOT / "configs/classification/mnli/tiny/00_sft.yaml")
    config_text, ident = dump_yaml(cfg), identity_of(cfg)
    packages = package_versions()
    log = "x" * 100 + "\n"
    for i in range(n):
        state = STATES[i % len(STATES)]
        run = root / "mnli" / "tiny" / f"run_{i:04d}"
        (run / "stages").mkdir(parents=True)
        (run / "metrics").mkdir()
        (run / "config.yaml").write_text(config_text)
        attempts = []
        for a in range(1 + i % 3):
            last = a == i % 3
            reason = {"complete": "completed", "preempted": "preempted (SIGTERM)", "failed": "failed: ValueError: x",
                      "killed": None, "pending": "stage done"}[state] if last else "preempted (SIGTERM)"  # fmt: skip
            attempts.append({"attempt": a + 1, "stage": "pipeline", "exit_reason": reason,
                             "ended_at": None if reason is None else "2026-11-26T00:00:00+0000",
                             "command": ["forge.py", "--config", "x.yaml"], "packages": packages})  # fmt: skip
        meta = {"created_at": "2026", "config_hash": "0" * 64, "wandb_run_id": f"{i:08x}", "attempts": attempts}
        if identity:  # and each a point of one of 10 sweeps: status adds a line per sweep
            meta["identity"] = ident
            meta["config_path"] = f"configs/sweeps/s{i % 10}.yaml#lr{i}__seed{i % 3}"
        (run / "run_metadata.json").write_text(json.dumps(meta, indent=2))
        for stage in STAGES if state == "complete" else STAGES[:1]:
            (run / "stages" / f"{stage}.done").write_text("")
        (run / "training_state.json").write_text(json.dumps({"global_step": 300, "max_steps": 300}))
        (run / "latest_checkpoint").write_text("checkpoint-300\n")
        (run / "metrics" / "pre_eval.json").write_text(json.dumps({"validation_matched": {"accuracy": 0.33}}))
        if state == "complete":
            (run / "metrics" / "post_eval.json").write_text(json.dumps({"validation_matched": {"accuracy": 0.77}}))
            (run / "pipeline_complete").write_text("")
        (run / "output.log").write_text(log * 10_000)


def best_time(command: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    forge = [sys.executable, str(ROOT / "forge.py")]
    with tempfile.TemporaryDirectory() as tmp:
        new, old = Path(tmp) / "new", Path(tmp) / "old"
        make_runs(new, args.runs, identity=True)
        make_runs(old, args.runs, identity=False)
        rows = json.loads(subprocess.run([*forge, "status", str(new), "--json"], capture_output=True, check=True,
                                         text=True, cwd=ROOT).stdout)  # fmt: skip
        assert len(rows) == args.runs, len(rows)
        commands = {
            f"forge status over {args.runs} runs (table)": ["status", str(new)],
            f"forge status over {args.runs} runs (--json)": ["status", str(new), "--json"],
            f"forge status over {args.runs} older runs (reads config.yaml)": ["status", str(old), "--json"],
            "forge --help": ["--help"],
        }
        results = {what: best_time([*forge, *command], args.repeats) for what, command in commands.items()}
    print(f"{'what':<58} {'seconds':>8} {'/ target 1 s':>13}")
    for what, seconds in results.items():
        print(f"{what:<58} {seconds:>8.3f} {seconds / 1.0:>13.2f}")


if __name__ == "__main__":
    main()
