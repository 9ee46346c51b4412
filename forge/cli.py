"""forge's command line. Kept free of heavy imports so `--help` answers at once.

forge --config CONFIG [--max_steps N] [--epochs E] [--run_name NAME] [--debug]
forge --config SWEEP.yaml[#POINT]          (every point of a sweep one after another, or one point)
forge --resume RUN_DIR [--max_steps N] [--epochs E]
forge stage STAGE --config CONFIG          (one stage; what the Snakemake rules call)
forge stage STAGE --run-dir RUN_DIR        (one stage of an existing run)
forge status [PATH ...] [--incomplete] [--failed] [--json]
forge report PATH ... [--out DIR]
forge check CONFIG_OR_FOLDER ...           (validate without running or creating anything)
forge doctor [--profile DIR] [--write DIR] (does the SLURM profile fit this cluster?)
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
from pathlib import Path

from forge.run.layout import STAGES  # a module of names: importing it costs nothing

DEBUG_TRAIN_SAMPLES = 512
DEBUG_EVAL_SAMPLES = 200

EPILOG = """\
exit codes: 0 done, 1 failed, 2 bad config or arguments, 3 run directory busy,
75 preempted (SIGTERM), 76 time limit (SIGUSR1 or the SLURM time-limit timer):
a checkpoint was saved, run again to resume

examples:
  forge --config configs/classification/mnli/tiny/00_sft.yaml
  forge --config configs/classification/mnli/distilbert/00_sft.yaml --max_steps 10
  forge --config configs/reasoning/gsm8k/tiny/01_grpo.yaml     # SFT warm start, then GRPO
  forge --config configs/sweeps/mnli_tiny_kd.yaml              # a sweep: 12 runs, mean ± std in forge report
  forge --resume outputs/mnli/tiny/00_sft
  forge status --incomplete                                    # what is left to run, and where it resumes
  forge report outputs/mnli/tiny --out report                  # compare runs: table, curves, HTML
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a misused command line refused like every other bad input: one line
    (the problem, and where the usage is), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (usage: {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="forge",
        description="Fine-tune a Hugging Face model from a YAML config; resumable by design.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML config of the run (with `base:` inheritance); a sweep's "
                        "config runs all its points, SWEEP.yaml#POINT one of them")  # fmt: skip
    source.add_argument("--resume", metavar="RUN_DIR", help="resume the run in RUN_DIR with its own config.yaml")
    p.add_argument("--max_steps", type=int, help="train for N optimizer steps (overrides epochs)")
    p.add_argument("--epochs", type=float, help="number of training epochs")
    p.add_argument("--run_name", help="name of the run directory (default: the config file's stem)")
    p.add_argument("--debug", action="store_true", help="verbose logs and a small data subset, for a fast try")
    return p


def _stage_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="forge stage", description="Run one stage of a run (used by Snakemake).")
    p.add_argument("stage", choices=STAGES)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="the run's config (creates the run directory if needed)")
    source.add_argument("--run-dir", help="an existing run directory (it holds config.yaml)")
    return p


def _status_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="forge status",
        description="A table of runs: state, stage, last safe step, attempts, pre -> post metric, W&B run.",
    )
    p.add_argument("paths", nargs="*", type=Path, help="run directories or folders of runs (default: ./outputs "
                   "and every incomplete run forge knows of)")  # fmt: skip
    p.add_argument("--incomplete", action="store_true", help="only runs that have not completed")
    p.add_argument("--failed", action="store_true", help="only runs whose last attempt failed or was killed")
    p.add_argument("--json", action="store_true", help="print JSON (one object per run) for scripts")
    return p


def _status(argv: list[str]) -> int:
    import json

    from forge import status

    args = _status_parser().parse_args(argv)
    cwd = Path.cwd()
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"forge status: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2
    roots = status.find_runs(args.paths) if args.paths else status.default_runs(cwd)
    found = status.select([status.status_of(r) for r in roots], args.incomplete, args.failed)
    if args.json:
        print(json.dumps([s.to_json() for s in found], indent=1))
    else:
        status.print_table(found, cwd)
    return 0


def _report(argv: list[str]) -> int:
    p = _Parser(
        prog="forge report",
        description="Compare runs: a table of pre, post and teacher metrics, loss and metric curves "
        "(PNG), one Markdown and one self-contained HTML page. Offline, from the run directories alone.",
    )
    p.add_argument("paths", nargs="+", type=Path, help="run directories or folders of runs")
    p.add_argument("--out", type=Path, default=Path("forge-report"), help="folder to write (default: forge-report)")
    args = p.parse_args(argv)

    from forge import report, status

    missing = [path for path in args.paths if not path.exists()]
    if missing:
        print(f"forge report: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2
    roots = status.find_runs(args.paths)
    if not roots:
        print("forge report: no runs found under " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 2
    runs = report.collect(roots, Path.cwd())
    files = report.write(runs, args.out)
    console = status.console_for_tables()
    status.print_rows(report.table(runs), console)
    found = report.points(runs)
    if found:
        console.print()
        status.print_rows(report.points_table(found), console)
        console.print(report.verdict(found) or "")
    console.print("wrote " + ", ".join(str(f) for f in files.values()))
    return 0


def _check(argv: list[str]) -> int:
    p = _Parser(
        prog="forge check",
        description="Validate run configs completely, without training and without creating anything: the "
        "schema, then what each run will need (models, dataset splits, columns and labels, tokenizers, LoRA "
        "targets, reward functions, the output folder). One line per good config; one line per problem, exit 2.",
    )
    p.add_argument("paths", nargs="+", type=Path, help="config files, or folders of them (base.yaml files are skipped)")
    p.add_argument("--show", type=int, default=0, metavar="N", help="print the first N training examples as the "
                   "run will train on them, the tokens that carry the loss between [[ and ]]")  # fmt: skip
    args = p.parse_args(argv)

    from forge import admission
    from forge.config import sweep_points, validate
    from forge.config.loader import load_raw
    from forge.errors import ConfigError
    from forge.workflow import run_configs

    bad = 0
    for folder in args.paths:
        try:
            configs = run_configs(folder)
        except ConfigError as exc:
            print(f"forge check: {exc}", file=sys.stderr)
            bad += 1
            continue
        for path in configs:
            try:
                raw = load_raw(path)
                raw.data.setdefault("run_name", path.stem)
                runs = sweep_points(raw, str(path)) or [(str(path), validate(raw))]
                found = [(ref, admission.findings(cfg)) for ref, cfg in runs]  # a sweep: every point
            except ConfigError as exc:
                print(*(f"forge check: {line}" for line in str(exc).splitlines()), sep="\n", file=sys.stderr)
                bad += 1
                continue
            except Exception as exc:  # a bug, or something no check foresaw: one line, and the next config
                print(f"forge check: {path}: cannot be checked: {type(exc).__name__}: {exc}", file=sys.stderr)
                bad += 1
                continue
            problems = [f"{ref}: {key}: {message}" for ref, findings in found for key, message in findings.problems]
            for line in problems:
                print(f"forge check: {line}", file=sys.stderr)
            bad += bool(problems)
            if not problems:
                notes = sorted({note for _, findings in found for note in findings.notes})
                size = f" ({len(found)} sweep points)" if len(found) > 1 or found[0][0] != str(path) else ""
                print(f"{path}: ok{size}" + (f" (notes: {'; '.join(notes)})" if notes else ""))
                if args.show > 0:
                    bad += _show(runs[0][1], args.show)
    return 2 if bad else 0


def _show(cfg, count: int) -> int:
    """Print `count` training examples of `cfg` as its task type prepares them; 1 when it cannot."""
    from forge.models.loading import load_preprocessor
    from forge.run.upstream import model_source
    from forge.tasks import data, task_of

    task = task_of(cfg)
    if cfg.student.run is not None:
        print(f"forge check: --show: the student is the final model of {cfg.student.run}, not trained yet: its "
              "tokenizer is not here to show with", file=sys.stderr)  # fmt: skip
        return 1
    try:
        preprocessor = load_preprocessor(model_source(cfg, None, "student"), task.head())
        seen = data.peek(cfg.task, rows=count)
        rows = seen.rows[data.splits_of(cfg.task, list(seen.columns)).train]
        shown = task.examples(rows, preprocessor)
    except Exception as exc:  # a tokenizer or data problem: one line
        print(f"forge check: --show: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)  # fmt: skip
        return 1
    for i, example in enumerate(shown):
        print(f"--- training example {i}\n{example}")
    return 0


def _overrides(args: argparse.Namespace) -> dict:
    overrides = {}
    if args.max_steps is not None:
        overrides["training.max_steps"] = args.max_steps
    if args.epochs is not None:
        overrides["training.epochs"] = args.epochs
    return overrides


def _debug_overrides(raw) -> None:
    from forge.config.loader import apply_override

    task = raw.data.get("task") if isinstance(raw.data.get("task"), dict) else {}
    for key, cap in (("max_train_samples", DEBUG_TRAIN_SAMPLES), ("max_eval_samples", DEBUG_EVAL_SAMPLES)):
        current = task.get(key)
        apply_override(raw, f"task.{key}", cap if not isinstance(current, int) else min(current, cap))
    apply_override(raw, "training.logging_steps", 1)
    apply_override(raw, "debug", True)


def _load(args: argparse.Namespace, sweeps: bool = False):
    """The run `args` name: (config, its file, its run directory); with `sweeps`, a sweep file's
    points as a list of (file#label, config) instead."""
    from forge.config import one_run, sweep, sweep_points, validate
    from forge.config.loader import apply_override, load_raw
    from forge.errors import ConfigError
    from forge.run.layout import RunDir

    if args.resume:
        if args.run_name or args.debug:
            raise ConfigError("--resume: --run_name and --debug cannot change an existing run")
        run = RunDir(Path(args.resume))
        if not run.config.is_file():
            raise ConfigError(f"--resume: {run.root} is not a forge run directory (no config.yaml)")
        raw = _stored(run)
        for key, value in _overrides(args).items():
            apply_override(raw, key, value)
        return validate(raw, check_upstream=False), None, run
    if args.run_name is not None and not args.run_name.strip():
        raise ConfigError("--run_name: must not be empty (leave it out to name the run after the config file)")
    file, label = sweep.split_ref(args.config)
    raw = load_raw(file, _overrides(args))
    raw.data["run_name"] = args.run_name or raw.data.get("run_name") or Path(file).stem
    if args.debug:
        _debug_overrides(raw)
    if label is None and sweeps and (points := sweep_points(raw, file)) is not None:
        return points
    return validate(one_run(raw, file, label)), args.config, None


def _stored(run):
    """A run's config.yaml, raw; a damaged one (not YAML, cut short) is one error that says
    how to write it again."""
    import copy

    from forge.config import validate
    from forge.config.loader import load_stored
    from forge.errors import ConfigError
    from forge.run.files import read_json

    try:
        raw = load_stored(run.config)
        validate(copy.deepcopy(raw), check_upstream=False)
        return raw
    except ConfigError as exc:
        try:
            began = (read_json(run.metadata) or {}).get("config_path")
        except ValueError:
            began = None
        first = str(exc).splitlines()[0]  # the file and what is wrong with it
        raise ConfigError(
            f"{first}; run again with the config this run began with (forge --config {began or 'CONFIG'}) "
            "to write it again"
        ) from None


def _on_all_ranks(work) -> int:
    """Under torchrun / accelerate launch: join the process group first, and leave it
    together after a success or an agreed stop. A rank that fails leaves at once: the
    launcher then stops the others."""
    from forge import distributed
    from forge.errors import Preempted

    distributed.init()
    try:
        code = work()
    except Preempted:
        distributed.close()
        raise
    distributed.close()
    return code


def _doctor(argv: list[str]) -> int:
    p = _Parser(
        prog="forge doctor",
        description="Check a SLURM profile against this cluster before submitting anything: the SLURM commands, "
        "accounting (sacct) and the status command, accounts, partitions, every rule's CPUs and memory against "
        "the largest node, the train rule's --signal. One line per finding; exit 1 when something needs fixing.",
    )
    p.add_argument("--profile", type=Path, default=Path("profiles/slurm"), help="the profile (default: profiles/slurm)")
    p.add_argument("--write", type=Path, metavar="DIR", help="write the profile with the fixes applied to DIR")
    args = p.parse_args(argv)

    from forge import doctor

    try:
        profile = doctor.read_profile(args.profile)
    except (OSError, ValueError) as exc:
        print(f"forge doctor: {exc}", file=sys.stderr)
        return 2
    found = doctor.check(doctor.inspect_cluster(), profile)
    print(f"forge doctor: profile {args.profile}")
    for line in found.ok:
        print(f"  ok       {line}")
    for line in found.notes:
        print(f"  note     {line}")
    for line in found.problems:
        print(f"  problem  {line}")
    if args.write is not None and found.fixes:
        path = doctor.write_profile(profile, found.fixes, args.profile, args.write)
        print(f"wrote {path} with: {', '.join(found.fixes)} (use: snakemake --profile {args.write} ...)")
    elif found.fixes:
        print(f"forge doctor: `forge doctor --profile {args.profile} --write DIR` writes a fixed copy")
    return 1 if found.problems else 0


EXIT_PIPE = 141  # 128 + SIGPIPE: how a shell reports `git log`, `seq` ... whose reader left (`| head`)


def _printing(command, argv: list[str]) -> int:
    """A subcommand that prints; a reader that stops reading (`forge status --json | head -1`)
    ends it quietly with the status of a tool killed by SIGPIPE, as other CLI tools end: a
    pipeline is unchanged, and under `set -o pipefail` a script sees that the output was cut."""
    try:
        code = command(argv)
        sys.stdout.flush()  # what is still buffered meets the closed pipe here, not at exit
        return code
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # stdout is no real file (a test's capture)
            # the interpreter flushes stdout once more on its way out: into nothing, not the closed pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE


def _hand_over(argv: list[str], stage: str) -> None:
    """A stage job, with FORGE_WARM=1 (Snakemake's jobs; forge/warm.py): exits as the stage
    ends when a warm copy ran it; returns when this process runs it, after importing what the
    stage needs and leaving a copy behind that has imported what every stage needs."""
    from forge import warm

    if not warm.available():
        return

    def imports(*modules: str) -> None:
        import importlib

        for module in modules:
            importlib.import_module(module)

    every_stage = [f"forge.stages.{name}" for name in STAGES]
    libraries = ["datasets", "wandb", "transformers.modeling_utils"]  # what the stages import when they run
    name = warm.address([Path(__file__).parent])
    warm.hand_over(argv, main, name=name, load=lambda: imports("forge.pipeline", f"forge.stages.{stage}"),
                   preload=lambda: imports(*every_stage, *libraries))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    own_process = argv is None  # `python -m forge ...`, not a call from Python (a test, a notebook)
    argv = sys.argv[1:] if argv is None else argv
    commands = {"doctor": _doctor, "status": _status, "report": _report, "check": _check}
    if argv and argv[0] in commands:
        return _printing(commands[argv[0]], argv[1:])
    if argv and argv[0] == "stage":
        args = _stage_parser().parse_args(argv[1:])
        debug = False
    else:
        args = _parser().parse_args(argv)
        debug = args.debug

    from forge.errors import EXIT_FAILED, ForgeError
    from forge.logs import console_name, setup_console
    from forge.signals import StopRequest

    stop = StopRequest().install()  # before the heavy imports: an early SIGUSR1/SIGTERM is kept
    if argv and argv[0] == "stage" and own_process:
        _hand_over(argv, args.stage)  # a warm copy of this process may serve the next stage jobs
    setup_console(debug)
    me = console_name()
    try:
        if argv and argv[0] == "stage":
            from forge.pipeline import run_stage

            stage_args = argparse.Namespace(
                config=args.config, resume=args.run_dir, run_name=None, debug=False, max_steps=None, epochs=None
            )
            loaded = _load(stage_args)
            return _on_all_ranks(lambda: run_stage(*loaded, stage=args.stage, stop=stop))
        from forge.pipeline import run_pipeline, run_sweep

        loaded = _load(args, sweeps=True)
        if isinstance(loaded, list):  # a sweep: its points, one after another
            return _on_all_ranks(lambda: run_sweep(loaded, stop=stop))
        return _on_all_ranks(lambda: run_pipeline(*loaded, stop=stop))
    except ForgeError as exc:
        for line in str(exc).splitlines():
            print(f"{me}: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{me}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment problem: one line here, the traceback in the log
        if debug:
            raise
        logging.getLogger("forge").debug("unexpected error", exc_info=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # the disk, not forge: what to do
            print(f"{me}: no space left on device ({exc.filename}); free space and run again", file=sys.stderr)
            return EXIT_FAILED
        print(f"{me}: failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        if me == "forge":
            print("forge: the full traceback is in the run's output.log (or rerun with --debug)", file=sys.stderr)
        else:  # only rank 0 writes output.log; most often another rank ended first and said why
            print(f"{me}: if another rank failed first, its message says why (rerun with --debug for the traceback)",
                  file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    finally:
        stop.settle()
