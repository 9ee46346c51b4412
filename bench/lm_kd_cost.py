"""What distilling a causal LM costs: step time of KD from the per-token top-k cache and of
online KD, against SFT of the same student, and the cache's size per token.

The offline reasoning task's student (embedded:tiny-causal-lm, dim 64 x 2 layers) and a
random-init teacher with its tokenizer (dim 256 x 4 layers); three variants, each in a fresh
process, alternating over the repeats:
  sft        plain fine-tuning (configs/reasoning/gsm8k/tiny/00_sft.yaml)
  kd-cache   KD (forward KL, alpha 0.5) from the teacher's top 32 logits per answer token, cached
  kd-online  the same KD with the teacher run on every batch

    .venv/bin/python bench/lm_kd_cost.py [--steps 200] [--repeats 3]

Prints step-time ratios to SFT (kd-cache target <= 1.15) and, for k = 8, 32, 128, the
cache's bytes per answer token on disk (shards, index and headers) beside the nominal k * 4.
Only trainer.train() is timed; the cache is built in prepare_data, before.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VARIANTS = ("sft", "kd-cache", "kd-online")
TOP_K = 32


def config(variant: str, steps: int, work: Path, top_k: int = TOP_K):
    from forge.config import load_config

    overrides = {
        "output_root": str(work / "outputs"),
        "run_name": f"{variant}-{top_k}-{os.getpid()}",
        "task.max_train_samples": 2048,
        "task.max_eval_samples": 8,
        "training.max_steps": steps,
        "training.save_steps": 10_000,
        "training.eval_steps": 10_000,
        "training.logging_steps": 50,
    }
    if variant != "sft":
        overrides["teacher"] = {"path": str(work / "teacher")}
        overrides["distillation.alpha"] = 0.5
        overrides["distillation.temperature"] = 1.0
        overrides["distillation.teacher_cache"] = variant == "kd-cache"
        overrides["distillation.cache_top_k"] = top_k if variant == "kd-cache" else None
    return load_config(ROOT / "configs/reasoning/gsm8k/tiny/00_sft.yaml", overrides)


def worker(variant: str, steps: int, work: Path) -> dict:
    import torch

    from forge.logs import quiet_libraries
    from forge.run.session import RunSession
    from forge.stages import prepare_data
    from forge.stages.train import build_trainer

    torch.set_num_threads(1)
    quiet_libraries()
    with RunSession(config(variant, steps, work)) as session:
        prepare_data.run(session)
        trainer = build_trainer(session)
        start = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - start
    return {"step_s": elapsed / steps}


def cache_size(top_k: int, work: Path) -> dict:
    """prepare_data of a kd-cache run with `top_k`: the cache's record (tokens, bytes)."""
    from forge.logs import quiet_libraries
    from forge.run.session import RunSession
    from forge.stages import prepare_data

    quiet_libraries()
    with RunSession(config("kd-cache", 1, work, top_k)) as session:
        prepare_data.run(session)
        return json.loads((session.run.data / "teacher_logits.json").read_text())


def build_teacher(work: Path) -> int:
    """The teacher, in work/teacher; returns the vocabulary size."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from forge import embedded

    student = embedded.ensure("embedded:tiny-causal-lm")
    tokenizer = AutoTokenizer.from_pretrained(student)
    small = LlamaConfig.from_pretrained(student)
    big = LlamaConfig(**{**small.to_dict(), "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
                         "num_attention_heads": 8, "num_key_value_heads": 8})  # fmt: skip
    torch.manual_seed(3)
    out = work / "teacher"
    LlamaForCausalLM(big).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return big.vocab_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.work)))
        return

    work = Path(tempfile.mkdtemp(prefix="forge-lm-kd-bench-"))
    os.environ.setdefault("FORGE_HOME", str(work / "home"))
    os.environ.update(WANDB_MODE="disabled", HF_HUB_OFFLINE="1", HF_HOME=str(work / "hf"))
    vocab = build_teacher(work)
    sizes = {k: cache_size(k, work) for k in (8, 32, 128)}
    results: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", variant, "--steps", str(args.steps), "--work", str(work)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[variant].append(json.loads(out.stdout.strip().splitlines()[-1])["step_s"])

    step = {v: min(results[v]) for v in VARIANTS}
    print(f"{args.steps} steps x {args.repeats} repeats, batch 32, CPU, 1 torch thread; student dim 64 x 2, "
          f"teacher dim 256 x 4, vocabulary {vocab}")  # fmt: skip
    for v in VARIANTS:
        print(
            f"{v:10s} best step {1000 * step[v]:7.2f} ms   (runs: {', '.join(f'{1000 * s:.2f}' for s in results[v])})"
        )
    print(f"kd-cache (top {TOP_K}) / sft step time: {step['kd-cache'] / step['sft']:.3f}  (target <= 1.15)")
    print(f"kd-online        / sft step time: {step['kd-online'] / step['sft']:.3f}")
    for k, record in sizes.items():
        per_token = record["bytes"] / record["tokens"]
        print(f"cache top {k:3d}: {per_token:7.1f} bytes per answer token on disk (nominal "
              f"{record['bytes_per_token']}; {record['tokens']:,} tokens, {record['bytes'] / 1e6:.2f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
