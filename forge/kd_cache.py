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

A causal LM (the reasoning task) is distilled per answer token, over a vocabulary of tens of
thousands: its cache (`TokenCache`) keeps, for every token that has a label after it, the
teacher's k largest logits (float16) and their token ids (uint16 when the vocabulary fits,
else int32): k · 4 bytes a token for vocabularies up to 65,536 (k = 32: 128 bytes). It is a
folder <fingerprint>.tokens-top<k>/ of shards (values and ids as .npy files, read memory-
mapped, never loaded whole) and rows.npy (each row's shard, first token, token count).
The mass outside the top k is dropped: the teacher's distribution is renormalised over its
k tokens (losses.kl_distillation_topk), as DistillKit's offline top-k logits are.
A batch gets its rows' cached tokens from `TokenCacheCollator`, through a `cache_row`
column (the row's index), laid out where the batch's shifted labels are not -100.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
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


# ---------------------------------------------------------------- per-token (causal LM) cache

ROW = "cache_row"  # the column that names a training row's cached tokens
SHARD_TOKENS = 1 << 20  # tokens a shard holds at most (a row is never split between shards)


def tokens_path(key: str, top_k: int) -> Path:
    return forge_home() / "teacher_logits" / f"{key}.tokens-top{top_k}"


def bytes_per_token(top_k: int, vocab_size: int) -> int:
    return top_k * (2 + np.dtype(_id_dtype(vocab_size)).itemsize)


def _id_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= 1 << 16 else np.int32


def answer_tokens(logits, labels):
    """The logits a causal LM distils, (n, vocab): at each position whose next token has a
    label, in row-major order, and how many each row has."""
    mask = labels[:, 1:] != -100
    return logits[:, :-1][mask], mask.sum(dim=1)


def ensure_tokens(teacher, dataset, train_split_dir: Path, collator, batch_size: int, top_k: int):
    """(fingerprint, folder) of the per-token top-k cache of this teacher and data, computed
    (and written atomically) when missing."""
    key = fingerprint(teacher, train_split_dir)
    path = tokens_path(key, top_k)
    if (path / "rows.npy").exists():
        log.info("teacher logits: cache hit %s", path.name)
        return key, path
    log.info("teacher logits: computing the top %d of %d rows' answer tokens once (cache %s)", top_k, len(dataset),
             path.name)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, suffix=".tmp"))
    _write_tokens(teacher, dataset, collator, batch_size, top_k, tmp)
    if path.exists():  # a folder left by an interrupted writer of an older forge: replace it
        shutil.rmtree(path)
    os.replace(tmp, path)
    return key, path


def _write_tokens(teacher, dataset, collator, batch_size: int, top_k: int, out: Path) -> None:
    import torch

    teacher.eval()
    vocab = teacher.config.get_text_config().vocab_size
    k = min(top_k, vocab)
    rows, values, ids, shard, filled = [], [], [], 0, 0

    def flush():
        nonlocal values, ids, shard, filled
        if values:
            np.save(out / f"shard-{shard:05d}.values.npy", np.concatenate(values))
            np.save(out / f"shard-{shard:05d}.ids.npy", np.concatenate(ids))
            shard, filled, values, ids = shard + 1, 0, [], []

    columns = [c for c in dataset.column_names if c in ("input_ids", "attention_mask", "labels")]
    with torch.no_grad():
        for start in progress(range(0, len(dataset), batch_size), "teacher logits"):
            batch = collator(
                [{c: dataset[i][c] for c in columns} for i in range(start, min(start + batch_size, len(dataset)))]
            )
            labels = batch.pop("labels").to(teacher.device)
            logits = teacher(**{n: t.to(teacher.device) for n, t in batch.items()}).logits.float()
            tokens, counts = answer_tokens(logits, labels)
            top_values, top_ids = tokens.topk(k, dim=-1)
            top_values = top_values.half().cpu().numpy()
            top_ids = top_ids.cpu().numpy().astype(_id_dtype(vocab))
            first = 0
            for count in counts.tolist():
                if filled and filled + count > SHARD_TOKENS:
                    flush()
                rows.append((shard, filled, count))
                values.append(top_values[first : first + count])
                ids.append(top_ids[first : first + count])
                first, filled = first + count, filled + count
    flush()
    np.save(out / "rows.npy", np.asarray(rows, dtype=np.int64).reshape(-1, 3))
    tokens = int(sum(r[2] for r in rows))
    meta = {"top_k": k, "rows": len(rows), "tokens": tokens, "bytes_per_token": bytes_per_token(k, vocab)}
    (out / "meta.json").write_text(json.dumps(meta))


class TokenCache:
    """A per-token cache folder, memory-mapped: `row(i)` gives row i's (values, ids), (n_i, k)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows = np.load(self.path / "rows.npy")
        self.meta = json.loads((self.path / "meta.json").read_text())
        self._shards: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        shard, start, count = (int(x) for x in self.rows[i])
        if shard not in self._shards:
            name = self.path / f"shard-{shard:05d}"
            self._shards[shard] = (
                np.load(f"{name}.values.npy", mmap_mode="r"),
                np.load(f"{name}.ids.npy", mmap_mode="r"),
            )
        values, ids = self._shards[shard]
        return values[start : start + count], ids[start : start + count]


class TokenCacheCollator:
    """Batches with the teacher's cached top-k per answer token: `collator`'s batch, plus
    teacher_topk_values / teacher_topk_indices of shape (batch, length - 1, k), row i's cached
    tokens placed where its shifted labels are not -100 (zeros elsewhere: masked out).
    Evaluation batches (rows without `cache_row`) are `collator`'s alone."""

    def __init__(self, collator, cache: TokenCache):
        self.collator, self.cache = collator, cache

    def __call__(self, features: list[dict]):
        import torch

        if ROW not in features[0]:  # an evaluation batch: scored by CE alone
            return self.collator(features)
        rows = [f[ROW] for f in features]
        batch = self.collator([{k: v for k, v in f.items() if k != ROW} for f in features])
        mask = batch["labels"][:, 1:] != -100
        cached = [self.cache.row(row) for row in rows]
        counts = mask.sum(dim=1).tolist()
        for row, (row_values, _), count in zip(rows, cached, counts, strict=True):
            if len(row_values) != count:
                raise ValueError(
                    f"{self.cache.path}: row {row} has {len(row_values)} cached answer tokens, the batch "
                    f"{count}: the cache belongs to other data; rerun prepare_data"
                )
        k = self.cache.meta["top_k"]
        values = torch.zeros((*mask.shape, k), dtype=torch.float16)
        ids = torch.zeros((*mask.shape, k), dtype=torch.int64)
        # mask's True positions, row by row, are the rows' cached tokens one after another
        values[mask] = torch.from_numpy(np.concatenate([v for v, _ in cached]))
        ids[mask] = torch.from_numpy(np.concatenate([i for _, i in cached]).astype(np.int64))
        batch[TOPK_VALUES], batch[TOPK_INDICES] = values, ids
        return batch


def with_rows(dataset):
    """`dataset` with its row numbers as the `cache_row` column (what TokenCacheCollator reads)."""
    return dataset.add_column(ROW, list(range(len(dataset))))
