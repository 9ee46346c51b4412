"""torchrun that outlives SLURM's time-limit warning: `python -m forge.launch ARGS` is
`torchrun ARGS` with SIGUSR1 ignored.

SLURM's `--signal=USR1@N` reaches every process of a job step, the torchrun agent
too, and torchrun does not handle USR1: it would die and the step end while the ranks
save. Ignored here, USR1 stays ignored in the ranks torchrun starts until forge installs
its own handler (its stop at the next step boundary). The train rule launches through
this; use it the same way in a batch script of your own.
"""

from __future__ import annotations

import runpy
import signal

if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)
