"""Write a generated dataset the way a Hub dataset repository stores it: one parquet file
per split under `<config>/`, and a README whose `configs:` block names them, so
`datasets.load_dataset(<dir>, <config>)` reads it by the call that reads the Hub's
(forge/tasks/sources.py)."""

from __future__ import annotations

from pathlib import Path


def write(root: Path, config: str, splits: dict[str, dict[str, list]], features, description: str) -> None:
    from datasets import Dataset

    (root / config).mkdir(parents=True, exist_ok=True)
    files = []
    for split, rows in splits.items():
        Dataset.from_dict(rows, features=features).to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
        files.append(f"  - split: {split}\n    path: {config}/{split}-*")
    front = f"---\nconfigs:\n- config_name: {config}\n  data_files:\n" + "\n".join(files) + "\n---\n"
    (root / "README.md").write_text(f"{front}\n{description}")
