"""SFT training throughput: forge's trainer vs a plain `transformers.Trainer` script.

Both train the same embedded tiny DistilBERT on the same tokenized data for the
same steps, with the same checkpoint and evaluation intervals; only forge's
additions differ (its loss, callbacks, checkpoint marking and rotation, state
files). Runs alternate (forge, plain, forge, plain, ...) so both see the same
machine. The best run of each side is compared (noise on a shared machine only
ever slows a run down); medians are printed too.

    .venv/bin/python bench/sft_throughput.py [--steps 300] [--repeats 3]

Prints steps/s for both and the ratio forge / plain (target: >= 0.98).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared VM)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="forge-bench-"))
    os.environ.setdefault("FORGE_HOME", str(work / "home"))
    os.environ.update(WANDB_MODE="disabled", HF_HUB_OFFLINE="1", HF_HOME=str(work / "hf"))

    import torch

    from forge.config import load_config
    from forge.logs import quiet_libraries
    from forge.run.session import RunSession
    from forge.stages import prepare_data
    from forge.stages.train import build_trainer

    torch.set_num_threads(args.threads)
    quiet_libraries()
    overrides = {
        "output_root": str(work / "outputs"),
        "training.max_steps": args.steps,
        "training.save_steps": 100,
        "training.eval_steps": 100,
        "task.max_eval_samples": 200,
    }
    config = ROOT / "configs/classification/mnli/tiny/00_sft.yaml"

    def forge_run(i: int) -> float:
        cfg = load_config(config, {**overrides, "run_name": f"forge-{i}"})
        with RunSession(cfg) as session:
            prepare_data.run(session)
            trainer = build_trainer(session)
            start = time.perf_counter()
            trainer.train()
            return args.steps / (time.perf_counter() - start)

    def plain_run(i: int, data_dir: Path) -> float:
        # What a user would write by hand with transformers alone.
        from datasets import load_from_disk
        from transformers import (
            AutoModelForSequenceClassification,
            AutoTokenizer,
            Trainer,
            TrainingArguments,
            set_seed,
        )

        from forge import embedded
        from forge.tasks.classification import metrics as compute_metrics

        cfg = load_config(config, overrides)
        t = cfg.training
        set_seed(cfg.seed)
        model_path = embedded.ensure(cfg.student.path)
        data = load_from_disk(str(data_dir))
        trainer = Trainer(
            model=AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=3),
            args=TrainingArguments(
                output_dir=str(work / f"plain-{i}"),
                max_steps=args.steps,
                per_device_train_batch_size=t.batch_size,
                per_device_eval_batch_size=t.eval_batch_size,
                learning_rate=t.learning_rate,
                weight_decay=t.weight_decay,
                warmup_steps=t.warmup_steps,
                logging_steps=t.logging_steps,
                save_steps=100,
                save_total_limit=t.keep_checkpoints,
                eval_strategy="steps",
                eval_steps=100,
                seed=cfg.seed,
                report_to="none",
                disable_tqdm=True,
                use_cpu=True,
            ),
            train_dataset=data["train"],
            eval_dataset=data["validation_matched"],
            processing_class=AutoTokenizer.from_pretrained(model_path),
            compute_metrics=compute_metrics,
        )
        start = time.perf_counter()
        trainer.train()
        return args.steps / (time.perf_counter() - start)

    forge_rates, plain_rates = [], []
    forge_rates.append(forge_run(0))  # also builds the embedded artifacts and the tokenized data
    data_dir = work / "outputs" / "mnli" / "tiny" / "forge-0" / "data"
    plain_rates.append(plain_run(0, data_dir))
    for i in range(1, args.repeats):
        forge_rates.append(forge_run(i))
        plain_rates.append(plain_run(i, data_dir))

    batch = load_config(config).training.batch_size
    print(f"steps: {args.steps} x {args.repeats} repeats, batch {batch}, CPU, {args.threads} torch thread(s)")
    for name, rates in (("forge", forge_rates), ("plain", plain_rates)):
        runs = ", ".join(f"{r:.2f}" for r in rates)
        print(f"{name}: best {max(rates):7.2f} steps/s, median {statistics.median(rates):7.2f}   (runs: {runs})")
    print(f"ratio forge/plain, best:   {max(forge_rates) / max(plain_rates):.3f}  (target >= 0.98)")
    print(f"ratio forge/plain, median: {statistics.median(forge_rates) / statistics.median(plain_rates):.3f}")


if __name__ == "__main__":
    main()
