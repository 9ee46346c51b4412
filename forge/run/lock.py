"""One process per run directory.

`filelock` (already in the stack through transformers and torch) takes an OS lock
that the kernel releases when the holder dies, so a crashed attempt never leaves
a stale lock behind. Who holds it is written beside it for the error message.
"""

from __future__ import annotations

import json
import os
import socket
import time

from filelock import FileLock, Timeout

from forge.errors import RunBusyError
from forge.run.layout import RunDir


class RunLock:
    def __init__(self, run: RunDir):
        self.run = run
        self._lock = FileLock(str(run.lock), timeout=0)
        self._owner = run.lock_owner

    def acquire(self) -> RunLock:
        try:
            self._lock.acquire()
        except Timeout:
            raise RunBusyError(
                f"{self.run.root} is in use by another forge process ({self._holder()}); "
                "wait for it to finish or stop it, then run again"
            ) from None
        self._owner.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._owner.unlink(missing_ok=True)
            self._lock.release()

    def _holder(self) -> str:
        try:
            owner = json.loads(self._owner.read_text())
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["since"]))
            return f"pid {owner['pid']} on {owner['host']}, since {since}"
        except (OSError, ValueError, KeyError):
            return "holder unknown"

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
