"""Generation SFT throughput: forge's trainer against a plain trl `SFTTrainer` script.

Both fine-tune the same causal LM on the same prompt/completion rows (examples/problems: the
question as the user turn through the chat template, the loss on the completion only), with the
same batch, steps, learning rate and seed, in this process, alternating (forge, trl, forge, ...)
so both see the same machine; then the same with packing on both sides (forge's
`task.packing`, trl's `packing=True`). Only the training loop is timed. Train tokens are the
tokens the trainer saw (`num_input_tokens_seen`, padding left out).

    .venv/bin/python bench/lm_sft_throughput.py [--model tiny|smollm2] [--steps 60] [--repeats 3]

Prints train tokens/s of both and the ratio forge / trl (target >= 0.95), unpacked and packed,
and forge's packed / unpacked ratio. `--model smollm2` needs the real-model packages
(docs/real-models.md); on a GPU machine, run it there for the bf16 figures (`--bf16`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"tiny": "embedded:tiny-causal-lm", "smollm2": "embedded:smollm2-135m-instruct"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--bf16", action="store_true", help="bf16 on a GPU")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="forge-bench-lm-"))
    os.environ.setdefault("FORGE_HOME", str(work / "home"))
    os.environ.update(WANDB_MODE="disabled", HF_HUB_OFFLINE="1", HF_HOME=str(work / "hf"))

    import torch

    from forge.logs import quiet_libraries

    torch.set_num_threads(args.threads)
    quiet_libraries()
    results = {}
    for packing in (False, True):
        forge_rates, trl_rates = [], []
        for i in range(args.repeats):
            forge_rates.append(forge_run(work, args, packing, i))
            trl_rates.append(trl_run(work, args, packing, i))
        results[packing] = (forge_rates, trl_rates)

    device = "GPU" if torch.cuda.is_available() else "CPU"
    print(f"{args.model} ({MODELS[args.model]}), {args.steps} steps x {args.repeats} repeats, batch {args.batch}, "
          f"{device}, {args.threads} torch thread(s){', bf16' if args.bf16 else ''}")  # fmt: skip
    for packing, (forge_rates, trl_rates) in results.items():
        label = "packed  " if packing else "unpacked"
        for name, rates in (("forge", forge_rates), ("trl", trl_rates)):
            runs = ", ".join(f"{r:.0f}" for r in rates)
            print(f"{label} {name:5}: median {statistics.median(rates):9.0f} train tokens/s   (runs: {runs})")
        ratio = statistics.median(forge_rates) / statistics.median(trl_rates)
        print(f"{label} ratio forge/trl (medians): {ratio:.3f}  (target >= 0.95)")
    gain = statistics.median(results[True][0]) / statistics.median(results[False][0])
    print(f"forge packed / unpacked (medians): {gain:.3f}")


def _overrides(work: Path, args, packing: bool, name: str) -> dict:
    return {
        "output_root": str(work / "outputs"),
        "run_name": name,
        "student.path": MODELS[args.model],
        "student.name": args.model,
        "task.packing": packing,
        "training.max_steps": args.steps,
        "training.batch_size": args.batch,
        "training.save_steps": 10_000,
        "training.eval_steps": 10_000,
        "training.logging_steps": 10_000,
        "training.precision": "bf16" if args.bf16 else "fp32",
    }


CONFIG = """
base: {root}/configs/base.yaml
task:
  name: problems
  type: generation
  dataset: {root}/examples/problems
  data_files: {{train: train.jsonl, test: test.jsonl}}
  columns: {{prompt: question, completion: solution}}
  max_length: 128
student: {{name: tiny, path: embedded:tiny-causal-lm}}
training: {{learning_rate: 1.0e-3, warmup_steps: 0, lr_scheduler: constant, weight_decay: 0.0}}
"""


def _config(work: Path) -> Path:
    path = work / "problems.yaml"
    if not path.exists():
        path.write_text(CONFIG.format(root=ROOT))
    return path


def forge_run(work: Path, args, packing: bool, i: int) -> float:
    from forge.config import load_config
    from forge.run.session import RunSession
    from forge.stages import prepare_data
    from forge.stages.train import build_trainer

    cfg = load_config(_config(work), _overrides(work, args, packing, f"forge-{int(packing)}-{i}"))
    with RunSession(cfg) as session:
        prepare_data.run(session)
        trainer = build_trainer(session)
        trainer.args.include_num_input_tokens_seen = "non_padding"
        start = time.perf_counter()
        trainer.train()
        return trainer.state.num_input_tokens_seen / (time.perf_counter() - start)


def trl_run(work: Path, args, packing: bool, i: int) -> float:
    """What a user would write with trl alone: prompt/completion chats, completion-only loss."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    from forge import embedded
    from forge.config import load_config

    cfg = load_config(_config(work), _overrides(work, args, packing, "trl"))
    set_seed(cfg.seed)
    path = embedded.ensure(MODELS[args.model])
    rows = load_dataset("json", data_files=str(ROOT / "examples" / "problems" / "train.jsonl"))["train"]
    rows = rows.map(lambda row: {"prompt": [{"role": "user", "content": row["question"]}],
                                 "completion": [{"role": "assistant", "content": row["solution"]}]},
                    remove_columns=rows.column_names)  # fmt: skip
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
        args=SFTConfig(
            output_dir=str(work / f"trl-{int(packing)}-{i}"),
            max_steps=args.steps,
            per_device_train_batch_size=args.batch,
            learning_rate=1e-3,
            lr_scheduler_type="constant",
            weight_decay=0.0,
            max_length=128,
            packing=packing,
            save_strategy="no",
            logging_steps=10_000,
            seed=cfg.seed,
            report_to="none",
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            bf16=args.bf16,
            include_num_input_tokens_seen="non_padding",
        ),
        train_dataset=rows,
        processing_class=AutoTokenizer.from_pretrained(path),
    )
    start = time.perf_counter()
    trainer.train()
    return trainer.state.num_input_tokens_seen / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
