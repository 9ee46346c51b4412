"""SIGTERM, SIGUSR1 and forge's own time-limit timer take one path: each only sets the stop
flag, and the stop ends with the exit code and outcome of its kind. The kill matrix
(tests/kill_matrix.py) therefore sends one of them per point; the mapping is checked here."""

from __future__ import annotations

import os
import signal

import pytest

from forge.errors import EXIT_PREEMPTED, EXIT_TIME_LIMIT, Preempted
from forge.run.metadata import Outcome
from forge.signals import StopRequest


@pytest.mark.parametrize(
    ("sig", "code", "described", "outcome"),
    [
        (signal.SIGTERM, EXIT_PREEMPTED, "SIGTERM", Outcome.PREEMPTED),
        (signal.SIGUSR1, EXIT_TIME_LIMIT, "SIGUSR1", Outcome.TIME_LIMIT),
        (signal.SIGALRM, EXIT_TIME_LIMIT, "the job's time limit", Outcome.TIME_LIMIT),
    ],
)
def test_each_stop_signal_sets_the_flag_and_ends_with_its_own_exit_code(
    sig, code, described, outcome, signals_restored, tmp_path
):
    from forge.config import load_config
    from forge.run.session import RunSession
    from tests.conftest import TINY_CONFIG, write_config

    stop = StopRequest().install()
    if sig == signal.SIGALRM:  # forge's timer (forge/slurm.py) hands its alarm to the same handler
        signal.signal(signal.SIGALRM, stop.handle)
    try:
        assert not stop.requested
        os.kill(os.getpid(), sig)
        assert stop.requested and stop.exit_code == code and stop.describe() == described
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal changes nothing: the first decides
        assert stop.exit_code == code

        config = write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\noutput_root: {tmp_path / 'out'}\n")
        with pytest.raises(Preempted) as info, RunSession(load_config(config), stop=stop) as session:
            session.check_stop()
        assert info.value.exit_code == code
        (attempt,) = session.metadata.data["attempts"]
        assert (attempt["outcome"], attempt["exit_code"]) == (outcome.value, code)
        assert attempt["exit_reason"] == f"{outcome.value} ({described})"
    finally:
        stop.uninstall()
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
