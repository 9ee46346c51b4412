"""The teacher-logit cache: the teacher runs once over the training data, not every step.

Logits are stored whole (classification has a handful of labels) as one float32
array per (teacher, data) pair under $FORGE_HOME/teacher_logits/<fingerprint>.npy,
or, with `distillation.cache_top_k: k` (large vocabularies), as the k largest
logits per item and their class ids (<fingerprint>.top<k>.npz, float32 + int32);
training then uses `losses.kl_distillation_topk`.
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

from forge.home import forge_home
from forge.logs import progress

log = logging.getLogger("forge.kd_cache")

COLUMN = "teacher_logits"
TOPK_VALUES, TOPK_INDICES = "teacher_topk_values", "teacher_topk_indices"
COLUMNS = (COLUMN, TOPK_VALUES, TOPK_INDICES)


def fingerprint(teacher, train_split_dir: Path) -> str:
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(teacher.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    for file in sorted(train_split_dir.glob("*.arrow")):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:24]


def cache_path(key: str, top_k: int | None = None) -> Path:
    name = f"{key}.npy" if top_k is None else f"{key}.top{top_k}.npz"
    return forge_home() / "teacher_logits" / name


def compute(teacher, dataset, collator, batch_size: int, top_k: int | None = None):
    """The teacher's logits for every row of `dataset`, in order: one array, or with
    `top_k` the pair (values, class ids) of the k largest per row."""
    import torch

    teacher.eval()
    rows, ids = [], []
    columns = [c for c in dataset.column_names if c != "labels"]
    with torch.no_grad():
        for start in progress(range(0, len(dataset), batch_size), "teacher logits"):
            batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            inputs = {k: v.to(teacher.device) for k, v in batch.items() if k in columns}
            logits = teacher(**inputs).logits.float()
            if top_k is not None:
                logits, index = logits.topk(min(top_k, logits.size(-1)), dim=-1)
                ids.append(index.to(torch.int32).cpu().numpy())
            rows.append(logits.cpu().numpy())
    return np.concatenate(rows) if top_k is None else (np.concatenate(rows), np.concatenate(ids))


def ensure(teacher, dataset, train_split_dir: Path, collator, batch_size: int, top_k: int | None = None):
    """(fingerprint, path) of the cache entry for this teacher and data, computed when missing."""
    key = fingerprint(teacher, train_split_dir)
    path = cache_path(key, top_k)
    if path.exists():
        log.info("teacher logits: cache hit %s", path.name)
        return key, path
    log.info("teacher logits: computing %d rows once (cache %s)", len(dataset), path.name)
    result = compute(teacher, dataset, collator, batch_size, top_k)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        if top_k is None:
            np.save(fh, result)
        else:
            np.savez(fh, values=result[0], indices=result[1])
    os.replace(tmp, path)
    return key, path


def attach(dataset, path: Path):
    """`dataset` with the cached teacher outputs as column(s) (rows must match)."""
    if path.suffix == ".npz":
        with np.load(path) as stored:
            columns = {TOPK_VALUES: stored["values"], TOPK_INDICES: stored["indices"]}
    else:
        columns = {COLUMN: np.load(path)}
    for name, array in columns.items():
        if len(array) != len(dataset):
            raise ValueError(f"{path}: {len(array)} cached rows for {len(dataset)} training rows")
        dataset = dataset.add_column(name, array.tolist())
    return dataset
