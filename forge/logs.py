"""Logging: forge's messages go to stderr and output.log; the HF libraries' logs and Python
warnings go to output.log (and to stderr too with --debug). Tracebacks go to output.log, never to the console."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LIBRARIES = ("transformers", "datasets", "peft", "trl", "lm_eval", "py.warnings")

log = logging.getLogger("forge")

# Terminal control sequences (colours, bold: transformers' load report uses them): CSI and
# OSC sequences, and lone escapes.
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


class _PlainTextFormatter(logging.Formatter):
    """output.log is plain text: terminal codes in a message (a library's colours) are dropped."""

    def format(self, record: logging.LogRecord) -> str:
        return ANSI.sub("", super().format(record))


class _ConsoleFormatter(logging.Formatter):
    """One line per message: exception details stay in output.log."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)


class _Console(logging.StreamHandler):
    """The console: whatever sys.stderr is when a message is written, not the stream of the
    call that set it up (a caller that runs forge again with another stderr, a notebook, a
    test's capture, gets its own messages; a closed earlier one gets none)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def console_name() -> str:
    """How forge signs its console lines: `forge`, or `forge[rank N]` on the other ranks."""
    from forge import distributed

    return "forge" if distributed.is_main() else f"forge[rank {distributed.rank()}]"


def setup_console(debug: bool = False) -> None:
    """forge's messages on stderr. Under torchrun the ranks other than 0 say only
    warnings and errors, marked with their rank (rank 0 tells the story)."""
    if any(getattr(h, "_forge", False) for h in log.handlers):
        return
    from forge import distributed

    handler = _Console()
    follower = not distributed.is_main()
    handler.setFormatter(_ConsoleFormatter(FORMAT if debug else console_name() + ": %(message)s"))
    if follower and not debug:
        handler.setLevel(logging.WARNING)
    handler._forge = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False


def quiet_libraries(debug: bool = False) -> None:
    """Route the HF libraries' logs through forge's handlers instead of their own.

    Imports transformers and datasets: call it once the run needs them anyway."""
    import datasets.utils.logging
    import transformers.utils.logging

    transformers.utils.logging.disable_default_handler()
    logging.captureWarnings(True)  # deprecation notices of the libraries: output.log, not the console
    logging.getLogger("py.warnings").propagate = False
    for handler in list(logging.getLogger("datasets").handlers):
        logging.getLogger("datasets").removeHandler(handler)
    if not sys.stderr.isatty():
        transformers.utils.logging.disable_progress_bar()
        datasets.utils.logging.disable_progress_bar()
    if debug:
        console = next(h for h in log.handlers if getattr(h, "_forge", False))
        for name in LIBRARIES:
            logging.getLogger(name).addHandler(console)


class _RunLogHandler(logging.FileHandler):
    """output.log. A write that fails (a full disk) is said once on the console, not as
    logging's own traceback for every message after it."""

    _failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self._failed:
            self._failed = True
            exc = sys.exc_info()[1]
            sys.stderr.write(f"{console_name()}: cannot write {self.baseFilename} ({exc}); some lines are missing\n")


def attach_run_log(path: Path, debug: bool = False) -> logging.Handler:
    """Append forge's and the libraries' logs to `path` until `detach_run_log`."""
    handler = _RunLogHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(_PlainTextFormatter(FORMAT))
    handler.setLevel(logging.DEBUG if debug else logging.INFO)
    for name in ("forge", *LIBRARIES):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if name != "forge" or logger.level == logging.NOTSET:
            logger.setLevel(logging.DEBUG if debug else logging.INFO)
    return handler


def detach_run_log(handler: logging.Handler) -> None:
    for name in ("forge", *LIBRARIES):
        logging.getLogger(name).removeHandler(handler)
    with contextlib.suppress(OSError):  # its last lines could not be flushed (a full disk): said once already
        handler.close()


@contextlib.contextmanager
def bars_only_on_a_terminal(*modules):
    """For libraries that draw tqdm bars on stderr with no switch to turn them off (lm-eval,
    transformers' GGUF reader): where stderr is no terminal (a log file, a pipe), each of
    `modules`' `tqdm` is a disabled one for the call, as `quiet_libraries` turns off
    transformers' and datasets' own bars; on a terminal they are left as they are."""
    if sys.stderr.isatty():
        yield
        return
    from tqdm import tqdm

    class Off(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})

    saved = [module.tqdm for module in modules]
    for module in modules:
        module.tqdm = Off
    try:
        yield
    finally:
        for module, bar in zip(modules, saved, strict=True):
            module.tqdm = bar


def progress(iterable, description: str, total: int | None = None):
    """`iterable` with a progress bar on a terminal; as is in a batch log (no tty)."""
    if not sys.stderr.isatty():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=description, total=total, leave=False, dynamic_ncols=True)
