"""What distillation costs: training step time and peak memory of KD vs SFT.

Four variants of the offline tiny run, each in a fresh process (so peak RSS is its
own), alternating over the repeats:
  sft       plain fine-tuning
  kd-cache  KD from a larger teacher (dim 512, 6 layers), teacher logits cached
  kd-online KD from the same teacher, run on every batch
  alpha-0   the KD config with alpha 0 (the teacher must not be loaded)

    .venv/bin/python bench/kd_cost.py [--steps 400] [--repeats 3]

Prints step-time ratios to SFT (kd-cache target <= 1.10) and the alpha-0 / SFT peak
RSS ratio (target <= 1.05). Only trainer.train() is timed; the cache is built in
prepare_data, before.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VARIANTS = ("sft", "kd-cache", "kd-online", "alpha-0")


def worker(variant: str, steps: int, work: Path, teacher: Path) -> dict:
    import torch

    from forge.config import load_config
    from forge.logs import quiet_libraries
    from forge.run.session import RunSession
    from forge.stages import prepare_data
    from forge.stages.train import build_trainer

    torch.set_num_threads(1)
    quiet_libraries()
    overrides = {
        "output_root": str(work / "outputs"),
        "run_name": f"{variant}-{os.getpid()}",
        "training.max_steps": steps,
        "training.save_steps": 10_000,
        "training.eval_steps": 10_000,
        "training.logging_steps": 50,
    }
    if variant != "sft":
        overrides["teacher"] = {"path": str(teacher)}
        overrides["distillation.alpha"] = 0.0 if variant == "alpha-0" else 0.5
        overrides["distillation.teacher_cache"] = variant == "kd-cache"
    cfg = load_config(ROOT / "configs/classification/mnli/tiny/00_sft.yaml", overrides)
    with RunSession(cfg) as session:
        prepare_data.run(session)
        trainer = build_trainer(session)
        start = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"step_s": elapsed / steps, "peak_rss_mib": peak_kib / 1024}


def build_teacher(work: Path) -> Path:
    from forge import embedded
    from forge.embedded.tiny import build_tiny_distilbert

    out = work / "teacher-512x6"
    build_tiny_distilbert(
        out, [], seed=3, dim=512, layers=6, tokenizer_from=embedded.ensure("embedded:tiny-distilbert")
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.work, args.work / "teacher-512x6")))
        return

    work = Path(tempfile.mkdtemp(prefix="forge-kd-bench-"))
    os.environ.setdefault("FORGE_HOME", str(work / "home"))
    os.environ.update(WANDB_MODE="disabled", HF_HUB_OFFLINE="1", HF_HOME=str(work / "hf"))
    build_teacher(work)
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", variant, "--steps", str(args.steps), "--work", str(work)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))

    step = {v: min(r["step_s"] for r in results[v]) for v in VARIANTS}
    rss = {v: statistics.median(r["peak_rss_mib"] for r in results[v]) for v in VARIANTS}
    print(f"{args.steps} steps x {args.repeats} repeats, batch 32, CPU, 1 torch thread; teacher dim 512 x 6 layers")
    for v in VARIANTS:
        print(f"{v:10s} best step {1000 * step[v]:7.2f} ms   median peak RSS {rss[v]:7.1f} MiB")
    print(f"kd-cache  / sft step time: {step['kd-cache'] / step['sft']:.3f}  (target <= 1.10)")
    print(f"kd-online / sft step time: {step['kd-online'] / step['sft']:.3f}")
    print(f"alpha-0   / sft peak RSS:  {rss['alpha-0'] / rss['sft']:.3f}  (target <= 1.05)")
    print(f"kd-online / sft peak RSS:  {rss['kd-online'] / rss['sft']:.3f}  (what loading the teacher costs)")


if __name__ == "__main__":
    main()
