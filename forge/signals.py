"""SLURM's warning signals, turned into a request to stop at the next step boundary.

SIGUSR1 (the pre-time-limit `--signal`) and SIGTERM (preemption, requeue,
scancel) only set a flag: the trainer callback sees it at the end of the
current step, saves a checkpoint and stops, and the process exits with
EXIT_PREEMPTED. Nothing is done inside the handler itself.
"""

from __future__ import annotations

import signal

WATCHED = (signal.SIGUSR1, signal.SIGTERM)


class StopRequest:
    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, _frame) -> None:
        if self.signal is None:
            self.signal = signum

    def install(self) -> StopRequest:
        for sig in WATCHED:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def describe(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else "none"
