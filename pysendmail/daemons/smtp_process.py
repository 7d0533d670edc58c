"""The SMTP daemon's processes and signals: pid file, detaching, the signal loop, workers.

`serve_until_signalled` runs a server (anything with `start`, `stop` and `reload`) until
SIGTERM/SIGINT, rebuilding its service on SIGHUP. `serve_with_workers` forks two worker
processes per CPU (at most 8) over the listeners the parent bound, as sendmail's per-connection
children spread over every CPU; the parent passes SIGTERM and SIGHUP on and replaces a
worker that dies, and a worker stops when its parent is gone. With MaxDaemonChildren or
ConnectionRateThrottle set there is one process (`worker_count`), so that those counts,
kept inside a process, stay exact.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pysendmail.config.model import Config

if TYPE_CHECKING:
    from pysendmail.daemons.server import SmtpService

log = logging.getLogger("pysendmail.smtpd")


class Serving(Protocol):
    """What the loops need of an SMTP server (`smtpd.SmtpServer`)."""

    listeners: list[Any]
    service: SmtpService

    def start(self) -> Any: ...

    def stop(self, timeout: float = 60.0) -> None: ...

    def reload(self, service: SmtpService) -> None: ...


def write_pid_file(path: str | os.PathLike[str], argv: list[str]) -> None:
    """sendmail's pid file: the pid, then the command line, one a line."""
    Path(path).write_text(f"{os.getpid()}\n{' '.join(argv)}\n")


def detach() -> None:
    """Become a background daemon: fork twice, new session, standard streams to /dev/null."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


def _signal_requests() -> dict[str, bool]:
    """Flags that SIGTERM/SIGINT ("stop") and SIGHUP ("reload") set, for the caller's
    loop to poll: a handler that took a lock (Event.set) could deadlock against the main
    thread holding that lock when the signal came."""
    requested = {"stop": False, "reload": False}

    def on_term(signum: int, frame: object) -> None:
        requested["stop"] = True

    def on_hup(signum: int, frame: object) -> None:
        requested["reload"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    return requested


def serve_until_signalled(
    server: Serving,
    rebuild: Callable[[], SmtpService] | None = None,
    drain_timeout: float = 300.0,
    parent_pid: int | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (drain, then return); SIGHUP calls `rebuild`.

    The handlers only set plain flags that this loop polls: a handler that took a lock
    (Event.set) could deadlock against the main thread holding that lock in Event.wait
    when the signal came. A worker process (`parent_pid` given) also stops when its
    parent is gone, so a killed daemon never leaves workers holding its port."""
    requested = _signal_requests()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _DAEMON_SIGNALS)
    server.start()
    while not requested["stop"]:
        time.sleep(0.2)
        if parent_pid is not None and os.getppid() != parent_pid:
            break
        if requested["reload"]:
            requested["reload"] = False
            if rebuild is not None:
                try:
                    server.reload(rebuild())
                    log.info("configuration reloaded")
                except Exception as error:  # a bad new config keeps the old one running
                    log.error("reload failed, keeping the running configuration: %s", error)
    server.stop(timeout=drain_timeout)


_DAEMON_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def worker_count(config: Config) -> int:
    """How many processes accept connections: two per CPU (sendmail's forked children
    use every CPU; one Python process runs on one), but one when MaxDaemonChildren or
    ConnectionRateThrottle is set, since those counts are kept inside a process."""
    for name in ("MaxDaemonChildren", "ConnectionRateThrottle"):
        try:
            if int(config.option(name, 0) or 0) > 0:  # type: ignore[arg-type]
                return 1
        except (TypeError, ValueError):
            return 1
    # Two per CPU: while one worker's sessions all wait for the disk, another has work
    # for the CPU (20 sessions x 1 message on 2 CPUs: 1,080 msgs/s with 2 workers,
    # 1,200 with 4, 1,150 with 12; bench/README.md).
    return max(1, min(2 * (os.cpu_count() or 1), 8))


def _fork_worker(server: Serving, rebuild: Callable[[], SmtpService] | None) -> int:
    """A child process serving the listeners it inherited; its pid (in the parent)."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    status = 0
    try:
        _fresh_queue_locks(server.service)
        # Every worker waits in accept() on the same sockets; the kernel hands each
        # connection to one of them, and SO_RCVTIMEO ends each wait (smtpd.ACCEPT_WAIT).
        serve_until_signalled(server, rebuild, parent_pid=parent)
    except BaseException:
        log.exception("SMTP worker failed")
        status = 1
    finally:
        os._exit(status)


def _fresh_queue_locks(service: SmtpService) -> None:
    """In a new worker: the queue's group-commit syncers anew. A thread of the parent
    (the local submission socket) may have held their locks when the worker was forked."""
    from pysendmail.queue.store import DirectorySyncer

    store = service.store
    directory = str(store.queue_dir)
    store.syncer = DirectorySyncer(directory, store.ops)
    store.data_syncer = DirectorySyncer(directory, store.ops, whole_filesystem=True)


def serve_with_workers(
    server: Serving,
    count: int,
    rebuild: Callable[[], SmtpService] | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Run `count` worker processes over the server's listening sockets until
    SIGTERM/SIGINT, which is passed on to them (each drains); SIGHUP is passed on too
    (each rebuilds its service) and rebuilds the parent's, and a worker that dies is
    replaced. `on_started` runs once the first workers are forked: threads it starts in
    the parent are not copied into them."""
    requested = _signal_requests()
    workers: set[int] = set()
    while not requested["stop"]:
        while len(workers) < count and not requested["stop"]:
            # Signals wait until the child has its own handlers.
            signal.pthread_sigmask(signal.SIG_BLOCK, _DAEMON_SIGNALS)
            try:
                workers.add(_fork_worker(server, rebuild))
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _DAEMON_SIGNALS)
        if on_started is not None:
            on_started()
            on_started = None
        time.sleep(0.2)
        if requested["reload"]:
            requested["reload"] = False
            _signal_all(workers, signal.SIGHUP)
            if rebuild is not None:  # the parent's own sessions (local submission) too
                try:
                    server.reload(rebuild())
                except Exception as error:
                    log.error("reload failed, keeping the running configuration: %s", error)
        workers -= _reaped(workers)
    _signal_all(workers, signal.SIGTERM)
    while workers:
        time.sleep(0.05)
        workers -= _reaped(workers)
    for listener in server.listeners:
        listener.server_close()


def _signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _reaped(pids: set[int]) -> set[int]:
    gone = set()
    for pid in pids:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            gone.add(pid)
    return gone
