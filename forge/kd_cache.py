"""The teacher-logit cache: the teacher runs once over the training data, not every step.

Logits are stored whole (classification has a handful of labels) as one float32
array per (teacher, data) pair under $FORGE_HOME/teacher_logits/<fingerprint>.npy.
The fingerprint hashes the teacher's weights and the tokenized training data
(which already reflects the tokenizer and the preprocessing), so the cache is
reused across epochs, resumes and runs, and a changed teacher or changed data
gets a new entry. Row i of the array belongs to row i of the prepared train split.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from forge.run.registry import forge_home

log = logging.getLogger("forge.kd_cache")

COLUMN = "teacher_logits"


def fingerprint(teacher, train_split_dir: Path) -> str:
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(teacher.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    for file in sorted(train_split_dir.glob("*.arrow")):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:24]


def cache_path(key: str) -> Path:
    return forge_home() / "teacher_logits" / f"{key}.npy"


def compute(teacher, dataset, collator, batch_size: int) -> np.ndarray:
    """The teacher's logits for every row of `dataset`, in order."""
    import torch

    teacher.eval()
    rows = []
    columns = [c for c in dataset.column_names if c != "labels"]
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            inputs = {k: v.to(teacher.device) for k, v in batch.items() if k in columns}
            rows.append(teacher(**inputs).logits.float().cpu().numpy())
    return np.concatenate(rows)


def ensure(teacher, dataset, train_split_dir: Path, collator, batch_size: int) -> tuple[str, Path]:
    """The cache entry for this teacher and data, computed when missing."""
    key = fingerprint(teacher, train_split_dir)
    path = cache_path(key)
    if path.exists():
        log.info("teacher logits: cache hit %s", path.name)
        return key, path
    log.info("teacher logits: computing %d rows once (cache %s)", len(dataset), path.name)
    logits = compute(teacher, dataset, collator, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, logits)
    os.replace(tmp, path)
    return key, path


def attach(dataset, path: Path):
    """`dataset` with the cached logits as a column (rows must match)."""
    logits = np.load(path)
    if len(logits) != len(dataset):
        raise ValueError(f"{path}: {len(logits)} cached rows for {len(dataset)} training rows")
    return dataset.add_column(COLUMN, logits.tolist())
