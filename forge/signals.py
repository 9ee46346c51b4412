"""Requests to stop, turned into a safe stop at the next step boundary.

SIGUSR1 (SLURM's pre-time-limit `--signal`), forge's own time-limit timer
(SIGALRM, see forge/slurm.py) and SIGTERM (preemption, requeue, scancel) only set
a flag: the trainer callback sees it at the end of the current step, saves a
checkpoint and stops, and the process exits with EXIT_TIME_LIMIT (USR1, timer)
or EXIT_PREEMPTED (TERM). Nothing else happens inside the handler. Once forge's
work is over and recorded, `settle` ignores both, so a late signal (SLURM's warning
can land just as a job finishes) cannot turn a success into a death by signal.
"""

from __future__ import annotations

import signal

from forge.errors import EXIT_PREEMPTED, EXIT_TIME_LIMIT

WATCHED = (signal.SIGUSR1, signal.SIGTERM)
TIME_LIMIT_SIGNALS = (signal.SIGUSR1, signal.SIGALRM)


class StopRequest:
    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def for_time_limit(self) -> bool:
        return self.signal in TIME_LIMIT_SIGNALS

    @property
    def exit_code(self) -> int:
        return EXIT_TIME_LIMIT if self.for_time_limit else EXIT_PREEMPTED

    def handle(self, signum, _frame=None) -> None:
        if self.signal is None:
            self.signal = signum

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> StopRequest:
        if not self.installed:
            for sig in WATCHED:
                self._previous[sig] = signal.signal(sig, self.handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def settle(self) -> None:
        """The outcome is decided and recorded: from here to exit, SLURM's warning or a
        TERM must not turn it into a death by signal. (While Python shuts down it puts
        back the default action, which kills, for every signal it handled, but it keeps
        "ignore".)"""
        for sig in WATCHED:
            signal.signal(sig, signal.SIG_IGN)
        self._previous.clear()

    def describe(self) -> str:
        if self.signal is None:
            return "none"
        if self.signal == signal.SIGALRM:
            return "the job's time limit"
        return signal.Signals(self.signal).name
