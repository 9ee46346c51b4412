"""Does the offline OCR recipe learn to read? CER, WER and exact match on the generated test
lines before and after training the shipped offline run (configs/ocr/lines/tiny/00_sft.yaml),
shortened with --steps, in a fresh FORGE_HOME. (A measurement: it lived in the test suite as a
1,200-step run until the suite had to fit its time budget; the suite keeps OCR's short runs,
and the resume of one after a kill.)

    .venv/bin/python bench/ocr_learns.py [--steps 1200]

Prints the metrics before and after, and whether CER fell (exit 1 when it did not).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="forge-bench-ocr-"))
    env = {**os.environ, "FORGE_HOME": str(work / "home"), "HF_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "disabled"}  # fmt: skip
    config = work / "learn.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            base: {ROOT / "configs" / "ocr" / "lines" / "tiny" / "00_sft.yaml"}
            run_name: learn
            output_root: {work / "outputs"}
            training:
              max_steps: {args.steps}
              save_steps: {args.steps}
              eval_steps: {args.steps}
            """
        )
    )
    subprocess.run([sys.executable, str(ROOT / "forge.py"), "--config", str(config)], env=env, check=True)
    metrics = work / "outputs" / "ocr" / "tiny" / "learn" / "metrics"
    pre = json.loads((metrics / "pre_eval.json").read_text())["test"]
    post = json.loads((metrics / "post_eval.json").read_text())["test"]
    print(f"OCR, {args.steps} steps, {post['samples']} test lines:")
    for name in ("cer", "wer", "exact_match"):
        print(f"  {name:12} {pre[name]:.3f} -> {post[name]:.3f}")
    fell = post["cer"] < pre["cer"]
    print("CER fell: the model learned to read" if fell else "CER did not fall")
    return 0 if fell else 1


if __name__ == "__main__":
    sys.exit(main())
