"""output.log is plain text: what libraries print with terminal codes arrives without them;
the console is the stderr of the call that set it up."""

from __future__ import annotations

import contextlib
import io
import logging

from forge.logs import ANSI, attach_run_log, detach_run_log, log, quiet_libraries, setup_console


def test_the_load_report_of_a_fresh_head_reaches_output_log_without_terminal_codes(tmp_path):
    from forge.models.loading import classifier, load_model

    quiet_libraries()
    handler = attach_run_log(tmp_path / "output.log")
    try:
        load_model("embedded:tiny-distilbert", classifier(("a", "b", "c")))  # a fresh head: transformers reports it
    finally:
        detach_run_log(handler)
    text = (tmp_path / "output.log").read_text()
    assert "classifier.weight" in text and "MISSING" in text
    assert "\x1b" not in text


def test_colours_links_and_cursor_codes_are_dropped_and_the_text_kept(tmp_path):
    handler = attach_run_log(tmp_path / "output.log")
    try:
        logging.getLogger("transformers").warning(
            "\x1b[1mbold\x1b[0m \x1b[38;5;196mred\x1b[39m \x1b]8;;https://x.y\x1b\\link\x1b]8;;\x1b\\ \x1b[2Kdone"
        )
    finally:
        detach_run_log(handler)
    assert (tmp_path / "output.log").read_text().rstrip().endswith("bold red link done")
    assert ANSI.sub("", "plain [1m text") == "plain [1m text"  # brackets without an escape are text


def test_the_console_follows_the_stderr_of_each_caller_that_sets_it_up():
    """forge.cli.main called twice in one process (a notebook, a test), each time with its own
    stderr: the second call's messages reach the second stderr, not the first, closed one."""
    first, second = io.StringIO(), io.StringIO()
    try:
        for stream, text in ((first, "one"), (second, "two")):
            with contextlib.redirect_stderr(stream):
                setup_console()
                setup_console()  # again with the same stderr: still one handler
                log.info(text)
            stream.close() if stream is first else None
        assert second.getvalue() == "forge: two\n"
        assert sum(getattr(h, "_forge", False) for h in log.handlers) == 1
    finally:
        for handler in [h for h in log.handlers if getattr(h, "_forge", False)]:
            log.removeHandler(handler)
