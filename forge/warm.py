"""A warm interpreter for stage jobs: Snakemake starts each stage as a fresh process, and a
fresh process spends seconds importing torch, transformers, datasets and wandb before it
does anything. The first stage job of a machine leaves a copy of itself behind, forked once
its imports are done; the next stage jobs hand their command line to that copy, which forks
a child that runs the stage with the job's own stdin/stdout/stderr, working directory and
environment, and the job waits for it and exits as it exits (code or signal).

Nothing else changes: each stage is still its own process with its own marker and log,
Snakemake still plans, lists and re-runs every stage, and a stage's outcome is what it
would be in a fresh interpreter (the same environment and code: a copy serves only jobs
whose environment, interpreter and forge source files are exactly its own).

What a job receives is passed on: SIGTERM, SIGINT, SIGUSR1, SIGUSR2 and SIGHUP reach the
stage's process; a job killed outright (SIGKILL) takes its stage down with it (the copy
kills the stage's process group when the job's connection drops). The copy never
computes, never touches a run directory and ends after IDLE seconds without a job.

Asked for with FORGE_WARM=1 (Snakemake's rules/common.smk sets it for its jobs unless it is
set already: FORGE_WARM=0 turns it off) and used where it is safe to fork after importing
the stack: Linux, one process (not a torchrun rank), no GPU driver on the machine (CUDA does
not survive a fork). Only the stdlib here: a job that finds a copy imports nothing heavy.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

IDLE = 30.0  # seconds a copy waits for the next job before it ends
READY_TIMEOUT = 120.0  # a job waits this long for a copy that is still importing, then starts cold
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)
# Per-shell noise: not part of what a process sees of its environment.
VOLATILE = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})
GPU_DEVICES = ("/dev/nvidiactl", "/dev/kfd")

Main = Callable[[list[str]], int]
_in_copy = False  # a stage a copy forked: it runs its job itself, never hands it on


def available() -> bool:
    return (
        not _in_copy
        and sys.platform == "linux"
        and os.environ.get("FORGE_WARM") == "1"
        and "WORLD_SIZE" not in os.environ  # a torchrun rank
        and not any(os.path.exists(device) for device in GPU_DEVICES)
    )


def address(code_roots: Iterable[Path]) -> bytes:
    """The copy's name (a Linux abstract socket: it vanishes with its holder): one per user,
    interpreter, search path, environment and state of the source files."""
    digest = hashlib.sha256()
    for part in (sys.executable, sys.version, str(os.getuid()), *sys.path):
        digest.update(part.encode() + b"\0")
    for name in sorted(os.environ.keys() - VOLATILE):
        digest.update(f"{name}={os.environ[name]}\0".encode(errors="surrogateescape"))
    for entry in sys.path:  # installing or removing a package changes its folder's time
        if Path(entry).name in ("site-packages", "dist-packages"):
            with contextlib.suppress(OSError):
                digest.update(str(os.stat(entry).st_mtime_ns).encode())
    for root in code_roots:
        for path in sorted(Path(root).rglob("*.py")):
            with contextlib.suppress(OSError):
                stat = path.stat()
                digest.update(f"{path}:{stat.st_mtime_ns}:{stat.st_size}\0".encode())
    return b"\0forge-warm-" + digest.hexdigest()[:32].encode()


def hand_over(argv: list[str], main: Main, *, name: bytes, load: Callable[[], None], preload: Callable[[], None],
              idle: float = IDLE) -> None:  # fmt: skip
    """Run `main(argv)` in the warm copy that answers at `name`, and exit as it ends. Without
    one, return, for this process to run the job itself, after `load()` and after leaving a
    copy behind (which runs `preload()`, what later jobs import, before it serves)."""
    status = _delegate(name, argv)
    if status is not None:
        _exit_as(status)
    try:
        load()
    except Exception:  # this job runs cold and meets the problem where forge reports it
        return
    _leave_copy(name, main, preload, idle)


# --- the job's side ----------------------------------------------------------------------


def _delegate(name: bytes, argv: list[str]) -> int | None:
    """The stage's status (an exit code, or minus the signal that ended it), or None when no
    copy took the job (none there, or it ended before it started the stage)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(name)
        if _peer_uid(conn) != os.getuid():  # a name anyone may take: only this user's copy gets the job
            raise ConnectionError
    except OSError:
        conn.close()
        return None
    child: list[int] = []
    pending: list[int] = []

    def forward(signum, _frame) -> None:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child[0], signum)
        else:
            pending.append(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        replies = _lines(conn, first_timeout=READY_TIMEOUT)
        if next(replies, None) != {"ready": True}:
            return None
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        socket.send_fds(conn, [struct.pack("!I", len(request))], [_open(fd) for fd in (0, 1, 2)])
        conn.sendall(request)
        started = next(replies, None)
        if not started or "pid" not in started:
            return None
        child.append(started["pid"])
        for signum in pending:
            forward(signum, None)
        ended = next(replies, None)
        if ended is None:  # the copy itself was killed: wait for the stage, whose status is lost
            while _alive(child[0]):
                time.sleep(0.2)
            print("forge: the warm interpreter running this stage ended; its exit status is lost", file=sys.stderr)
            return 1
        return ended["status"]
    finally:
        conn.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _peer_uid(conn: socket.socket) -> int:
    return struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]


def _lines(conn: socket.socket, first_timeout: float):
    """The copy's replies, one JSON object a line; ends when the connection does."""
    conn.settimeout(first_timeout)
    buffer = b""
    while True:
        while b"\n" not in buffer:
            try:
                chunk = conn.recv(4096)
            except (TimeoutError, OSError):
                return
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        conn.settimeout(None)
        yield json.loads(line)


def _open(fd: int) -> int:
    """`fd`, or /dev/null where the job has no such file (a closed stdin)."""
    try:
        os.fstat(fd)
    except OSError:
        return os.open(os.devnull, os.O_RDWR)
    return fd


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_as(status: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if status < 0:  # ended by a signal: so does this process, as the stage's own would have
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        time.sleep(1)  # a stopped or blocked signal: fall through to the shell's convention
        status = 128 - status
    os._exit(status)


# --- the copy's side ---------------------------------------------------------------------


def _leave_copy(name: bytes, main: Main, preload: Callable[[], None], idle: float) -> None:
    """Fork a detached copy of this process (single-threaded so far: nothing has run yet)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        first = os.fork()
    except OSError:  # no process to spare: no copy, this job runs as it would have
        return
    if first:
        os.waitpid(first, 0)  # the middle process ends at once; the copy is init's child
        return
    try:
        os.setsid()  # out of the job's process group and terminal: a Ctrl-C reaches jobs, not the copy
        if os.fork():
            os._exit(0)
        _serve(name, main, preload, idle)
    finally:
        os._exit(0)


def _serve(name: bytes, main: Main, preload: Callable[[], None], idle: float) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(name)  # another job's copy got there first: it serves
    except OSError:
        return
    listener.listen(64)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the first job's output (a log, a pipe someone reads to its end) is not held open
        os.dup2(devnull, fd)
    os.close(devnull)
    for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # SLURM's warning reaches every process of a job
    ending: list[int] = []  # SIGTERM (scancel, a requeue): take no job, end once the stages running ended
    signal.signal(signal.SIGTERM, lambda signum, _frame: ending.append(signum))
    try:
        preload()
    except BaseException:
        return
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    jobs: dict[int, socket.socket] = {}  # stage pid -> its job's connection
    last = time.monotonic()
    while jobs or (time.monotonic() - last < idle and not ending):
        if ending and listener.fileno() != -1:
            selector.unregister(listener)
            listener.close()
        for key, _ in selector.select(timeout=0.1):
            if key.fileobj is listener:
                if ending:  # told to end while it waited: the job finds no copy and runs cold
                    continue
                pid, conn = _start(listener, selector, jobs, main)
                if pid:
                    jobs[pid] = conn
                    selector.register(conn, selectors.EVENT_READ, pid)
            else:  # a job's connection has something to say: only its end, a killed job
                with contextlib.suppress(OSError):
                    if key.fileobj.recv(4096):
                        continue
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(key.data, signal.SIGKILL)
                selector.unregister(key.fileobj)
        for pid, status in _reaped():
            conn = jobs.pop(pid, None)
            if conn is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"status": status}).encode() + b"\n")
            conn.close()
            last = time.monotonic()
    listener.close()


def _reaped() -> list[tuple[int, int]]:
    done = []
    while True:
        try:
            pid, wait = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if not pid:
            return done
        status = -os.WTERMSIG(wait) if os.WIFSIGNALED(wait) else os.WEXITSTATUS(wait)
        done.append((pid, status))


def _start(listener: socket.socket, selector, jobs: dict[int, socket.socket], main: Main):
    """Take one job: check who it is, read its request and its three standard files, fork the
    stage. (0, None) when it was not a job of this user or it gave up waiting."""
    conn, _ = listener.accept()
    fds: list[int] = []
    try:
        if _peer_uid(conn) != os.getuid():
            raise ConnectionError
        conn.settimeout(10)
        conn.sendall(b'{"ready": true}\n')
        head, fds, _, _ = socket.recv_fds(conn, 4, 3)
        if len(head) != 4 or len(fds) != 3:
            raise ConnectionError
        size = struct.unpack("!I", head)[0]
        body = b""
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                raise ConnectionError
            body += chunk
        request = json.loads(body)
        conn.settimeout(None)
    except (OSError, ValueError, ConnectionError, struct.error):
        for fd in fds:
            os.close(fd)
        conn.close()
        return 0, None
    pid = os.fork()
    if pid == 0:
        _stage(request, fds, [listener, conn, *jobs.values()], selector, main)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:
        os.killpg(pid, signal.SIGKILL)
        conn.close()
        return 0, None
    return pid, conn


def _stage(request: dict, fds: list[int], sockets: list[socket.socket], selector, main: Main) -> None:
    """The forked child: become the job's process (its files, directory, environment,
    command line, default signal handling) and run the stage."""
    global _in_copy
    _in_copy = True
    code = 1
    try:
        os.setpgid(0, 0)
        selector.close()
        for sock in sockets:
            sock.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        for sig in (*FORWARDED, signal.SIGCHLD):
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _fresh_random_state()
        sys.argv = [sys.argv[0], *request["argv"]]
        code = main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


def _fresh_random_state() -> None:
    """A fresh interpreter seeds `random` (and numpy's global generator) from the OS; a fork
    shares its parent's. torch's default generator starts from a fixed seed either way."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
