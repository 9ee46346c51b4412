"""Does distillation make a better model? SFT vs KD vs KD with a transfer set, on a real
pretrained pair, over seeds.

Teacher: all-MiniLM-L6-v2 fine-tuned on the generated NLI data
(configs/classification/mnli/minilm/00_sft.yaml, trained once). Student: a 2-layer
model cut from the pretrained MiniLM (its layers 0 and 5, same tokenizer). At each
label budget (the student sees that many labelled training rows) three recipes, each over
the same seeds and the same labelled rows (task.data_seed is fixed; `seed` varies the
head's initialisation, dropout and the data order):

    sft        10_sft_cut.yaml           cross-entropy on the labelled rows
    kd         11_kd_cut.yaml            + the teacher's soft labels on them (alpha 0.5, T 2)
    kd+transfer 12_kd_cut_transfer.yaml  + `--transfer` more rows the student learns from the
                                          teacher alone (their labels dropped)

Every run goes through forge.py as a user's would, in a fresh process. Needs the real
models (docs/real-models.md):

    .venv/bin/python bench/kd_recipes.py [--budgets 200 1000] [--seeds 1 2 3] [--steps 900]
                                         [--transfer 4000] [--work DIR]

Prints, per budget and recipe, validation accuracy (matched and mismatched) as mean ± std
over the seeds, and writes every run's numbers to <work>/results.json. A re-run with the
same --work reuses the runs that completed (forge resumes or skips them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "classification" / "mnli" / "minilm"
RECIPES = {"sft": "10_sft_cut.yaml", "kd": "11_kd_cut.yaml", "kd+transfer": "12_kd_cut_transfer.yaml"}
SPLITS = ("validation_matched", "validation_mismatched")


def point_config(work: Path, budget: int, recipe: str, seed: int, steps: int, transfer: int) -> Path:
    name = f"b{budget}_{recipe.replace('+', '_')}_s{seed}"
    body = (
        f"base: {CONFIGS / RECIPES[recipe]}\n"
        f"run_name: {name}\nseed: {seed}\n"
        f"task:\n  max_train_samples: {budget}\n"
        f"training:\n  max_steps: {steps}\n  save_steps: {steps}\n  eval_steps: {steps}\n  logging_steps: 100\n"
    )
    if recipe == "kd+transfer":
        body += f"distillation:\n  transfer_samples: {transfer}\n"
    path = work / "configs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def run(config: Path, work: Path) -> dict:
    """forge.py on `config` (cwd `work`, so every run, the teacher's too, lands in <work>/outputs)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "forge.py"), "--config", str(config)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"{config.name}: forge exited {result.returncode}\n{result.stderr[-2000:]}")
    run_dir = next((work / "outputs" / "mnli").glob(f"*/{config.stem}"))
    post = json.loads((run_dir / "metrics" / "post_eval.json").read_text())
    return {split: post[split]["accuracy"] for split in SPLITS} | {"seconds": round(time.monotonic() - start, 1)}


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {std:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--transfer", type=int, default=4000)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="forge-kd-recipes-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"work: {work}", flush=True)

    results = []
    for budget in args.budgets:
        for seed in args.seeds:
            for recipe in RECIPES:
                config = point_config(work, budget, recipe, seed, args.steps, args.transfer)
                numbers = run(config, work)
                results.append({"budget": budget, "recipe": recipe, "seed": seed, **numbers})
                print(json.dumps(results[-1]), flush=True)
                (work / "results.json").write_text(json.dumps(results, indent=1))
    teacher = json.loads(next((work / "outputs" / "mnli").glob("*/00_sft/metrics/post_eval.json")).read_text())

    print(f"\n{args.steps} steps, batch 32, {len(args.seeds)} seeds ({', '.join(map(str, args.seeds))}): "
          "validation accuracy, mean ± std\n")  # fmt: skip
    print("| labelled rows | recipe | matched | mismatched |")
    print("|---|---|---|---|")
    for budget in args.budgets:
        for recipe in RECIPES:
            rows = [r for r in results if r["budget"] == budget and r["recipe"] == recipe]
            shown = f"KD + transfer set ({args.transfer:,} unlabelled)" if recipe == "kd+transfer" else recipe.upper()
            cells = " | ".join(spread([r[s] for r in rows]) for s in SPLITS)
            print(f"| {budget:,} | {shown} | {cells} |")
    matched, mismatched = (teacher[s]["accuracy"] for s in SPLITS)
    print(f"| all 8,000 | teacher (MiniLM-L6, 6 layers) | {matched:.3f} | {mismatched:.3f} |")


if __name__ == "__main__":
    main()
