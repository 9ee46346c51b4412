"""Errors users can act on, and the exit codes forge's processes end with.

The exit codes are part of the interface: the Snakemake rules and the SLURM
profile tell a preemption from a failure by them.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2  # bad config or bad command line; nothing was created
EXIT_BUSY = 3  # another process holds the run directory
EXIT_PREEMPTED = 75  # stopped by SIGTERM after a safe checkpoint (EX_TEMPFAIL): resume me
EXIT_TIME_LIMIT = 76  # stopped for the time limit (SIGUSR1 or forge's timer) after a safe checkpoint


class ForgeError(Exception):
    """An error with a one-line message for the user, and the exit code to end with."""

    exit_code = EXIT_FAILED


class ConfigError(ForgeError):
    exit_code = EXIT_CONFIG


class RunBusyError(ForgeError):
    exit_code = EXIT_BUSY


class HubUnreachableError(ForgeError):
    exit_code = EXIT_FAILED


class Preempted(ForgeError):
    """Training stopped on a signal after a safe checkpoint; running again resumes it."""

    def __init__(self, message: str, exit_code: int = EXIT_PREEMPTED):
        super().__init__(message)
        self.exit_code = exit_code
