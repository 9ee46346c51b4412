"""Several processes on one run: forge under `torchrun` or `accelerate launch`.

The launcher starts one forge per rank and says which in the environment (RANK,
WORLD_SIZE, LOCAL_RANK). Rank 0 owns the run directory: its lock, markers,
metadata, output.log and W&B. Only the train stage is distributed (DDP through the
HF Trainer); the other stages run on rank 0 while the others wait for it.

Decisions are agreed, never guessed: a stop request seen by any rank stops every
rank (`agree_stop`), and what rank 0 reads from the run directory reaches the
others by broadcast (`from_main`). In one process (WORLD_SIZE unset or 1) nothing
here imports torch.distributed: each function answers from this process alone.
"""

from __future__ import annotations

import os
from datetime import timedelta

from forge.signals import StopRequest

# Followers wait for rank 0 through whole stages (pre_eval of a real model, finalize):
# forge's own waits (a gloo group of their own) are bounded by the job's time limit, not by
# a collective's timeout. Training's collectives keep the Trainer's default (ddp_timeout).
WAIT = timedelta(hours=24)
TRAINING_TIMEOUT = timedelta(seconds=1800)

_waits = None  # the process group of forge's barriers, broadcasts and stop votes


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    return not is_distributed() or rank() == 0


def init() -> None:
    """Join the launcher's process group: gloo for CPU tensors (forge's own small
    messages; all of DDP on a CPU machine), NCCL for CUDA tensors."""
    if not is_distributed():
        return
    import torch
    import torch.distributed as dist

    global _waits
    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        dist.init_process_group(backend="cpu:gloo,cuda:nccl", timeout=TRAINING_TIMEOUT)
    else:
        dist.init_process_group(backend="gloo", timeout=TRAINING_TIMEOUT)
    _waits = dist.new_group(backend="gloo", timeout=WAIT)


def close() -> None:
    """Leave together: no rank exits (and makes the launcher stop the others) while
    another still writes."""
    if not is_distributed():
        return
    import torch.distributed as dist

    global _waits
    if dist.is_initialized():
        dist.barrier(group=_waits)
        dist.destroy_process_group()
        _waits = None


def barrier() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.barrier(group=_waits)


def all_sum(tensor):
    """`tensor` summed over the ranks, in place (CPU tensors go over gloo, CUDA over NCCL);
    as is in one process."""
    if is_distributed():
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def from_main(compute):
    """`compute()` on rank 0, its (picklable) result on every rank."""
    if not is_distributed():
        return compute()
    import torch.distributed as dist

    box = [compute() if is_main() else None]
    dist.broadcast_object_list(box, src=0, group=_waits)
    return box[0]


def agree_stop(stop: StopRequest) -> bool:
    """Has any rank been asked to stop? Every rank calls it at the same point and
    takes the same answer (and the same signal, the highest number, for its exit code)."""
    if not is_distributed():
        return stop.requested
    import torch
    import torch.distributed as dist

    flag = torch.tensor([stop.signal or 0], dtype=torch.int64)  # CPU: gloo carries it
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=_waits)
    agreed = int(flag.item())
    if agreed:
        stop.signal = agreed
    return bool(agreed)
