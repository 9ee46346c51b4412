"""forge/distributed.py with two real gloo processes on loopback, and the train rule's
launcher command."""

from __future__ import annotations

import os
import signal

import pytest

from forge import distributed
from forge.errors import ConfigError
from forge.signals import StopRequest
from forge.workflow import train_launcher
from tests.conftest import free_port


def _rank(rank: int, port: int, signals: list[int | None], results) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    distributed.init()
    out = []
    for sig in signals:
        stop = StopRequest()
        if sig is not None and rank == 1:  # only rank 1 is told
            stop.handle(sig)
        out.append((distributed.agree_stop(stop), stop.signal))
    out.append(distributed.from_main(lambda: f"seen by rank {distributed.rank()}"))
    distributed.close()
    results.put((rank, out))


def test_a_stop_one_rank_saw_is_agreed_by_all_and_rank_0_decides_for_all():
    import torch.multiprocessing as mp

    port = free_port()
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    signals = [None, signal.SIGUSR1, signal.SIGTERM]
    procs = [ctx.Process(target=_rank, args=(r, port, signals, results)) for r in (0, 1)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    expected = [(False, None), (True, signal.SIGUSR1), (True, signal.SIGTERM), "seen by rank 0"]
    assert got[0] == got[1] == expected


def test_in_one_process_every_function_answers_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    stop = StopRequest()
    assert not distributed.is_distributed() and distributed.is_main()
    assert distributed.agree_stop(stop) is False
    stop.handle(signal.SIGTERM)
    assert distributed.agree_stop(stop) is True
    assert distributed.from_main(lambda: 7) == 7
    distributed.barrier()
    distributed.close()


def test_the_train_launcher_is_forge_torchrun_or_srun_with_a_rendezvous():
    python = "/opt/my env/bin/python"
    assert train_launcher(python) == "'/opt/my env/bin/python' -m forge"
    local = train_launcher(python, processes=4)
    assert local == "'/opt/my env/bin/python' -m forge.launch --nproc-per-node 4 --standalone -m forge"
    nodes = train_launcher(python, processes=4, nodes=2)
    assert nodes.startswith(
        "srun --kill-on-bad-exit=1 --nodes 2 --ntasks 2 --ntasks-per-node 1 '/opt/my env/bin/python'"
    )
    assert "--nnodes 2 --rdzv-backend c10d" in nodes and '--rdzv-id "$SLURM_JOB_ID"' in nodes
    assert "--standalone" not in nodes
    with pytest.raises(ConfigError, match="at least 1"):
        train_launcher(python, processes=0)
    with pytest.raises(ValueError):
        train_launcher(python, processes="4; rm -rf ~")
