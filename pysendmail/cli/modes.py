"""The modes other than submission: each imports its part only when it runs.

`runner(mode)` returns `run(invocation, out, err) -> exit status` for a mode, or raises
`Unavailable` when the part that does it is not installed, so that the command says so
(exit 69) instead of pretending.
"""

from __future__ import annotations

from collections.abc import Callable

from pysendmail.cli import options as cli
from pysendmail.cli.options import Invocation
from pysendmail.cli.sendmail import Unavailable

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)
if TYPE_CHECKING:
    from typing import TextIO

    Runner = Callable[[Invocation, TextIO, TextIO], int]


# The one queue group pysendmail has: sendmail's default group.
DEFAULT_QUEUE_GROUP = "mqueue"


def _unknown_group(inv: Invocation, out: TextIO) -> bool:
    """-qG<name> for a group that does not exist: sendmail says so (and exits 0)."""
    group = inv.queue_run.queue_group if inv.queue_run is not None else None
    if group is None or group == DEFAULT_QUEUE_GROUP:
        return False
    out.write(f"Queue group {group} unknown\n")
    return True


def _print_queue(inv: Invocation, out: TextIO, err: TextIO) -> int:
    """-bp / mailq: the queue listing (-qQ the quarantined items, -qL the lost ones;
    -qI/-qR/-qS/-qQsubstr narrow it; -qGmqueue lists the group without a total)."""
    import os

    from pysendmail.cli import quarantine, runtime
    from pysendmail.queue import listing
    from pysendmail.sysexits import ExitCode

    config = runtime.load_config(inv)
    if _unknown_group(inv, out):
        return int(ExitCode.OK)
    queue_dir = str(config.option("QueueDirectory", "/var/spool/mqueue"))
    order = str(config.option("QueueSortOrder", "priority") or "priority")
    if inv.json_listing:
        text, status = listing.list_queue_json(queue_dir, order=order)
        out.write(text)
        return status
    marks = listing.LoadMarks.from_options(config.options)
    if inv.queue_run is None:  # the whole queue: the plain mailq, the one timed most
        text, status = listing.list_queue(
            queue_dir, verbose=inv.verbose, order=order, split=True, marks=marks
        )
        out.write(text)
        return status
    try:
        messages = quarantine.select(queue_dir, inv.queue_run, order)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        out.write(f"can not chdir({queue_dir}/): {reason}\n")
        return int(ExitCode.CONFIG)
    text = listing.format_listing(queue_dir, messages, inv.verbose, marks)
    if inv.queue_run is not None and inv.queue_run.queue_group is not None:
        text = text[: text.rindex("\t\tTotal requests:")]
    out.write(text)
    return int(ExitCode.OK)


def _host_status_dir(config, out: TextIO) -> str | None:
    """HostStatusDirectory as the -bh/-bH modes use it; sendmail warns (on standard
    output) and goes without when it names no directory."""
    import errno
    import os

    from pysendmail.delivery.hoststatus import resolve_dir

    given = str(config.option("HostStatusDirectory") or "")
    queue_dir = str(config.option("QueueDirectory", "/var/spool/mqueue"))
    directory = resolve_dir(given, queue_dir)
    if directory is None:
        return None
    if not os.path.isdir(directory):
        reason = os.strerror(errno.ENOTDIR if os.path.exists(directory) else errno.ENOENT)
        out.write(f"Warning: Cannot use HostStatusDirectory = {given}: {reason}\n")
        return None
    return directory


def _host_status(inv: Invocation, out: TextIO, err: TextIO) -> int:
    """-bh / hoststat: the persistent host status, one line per host."""
    from pysendmail.cli import runtime
    from pysendmail.delivery import hoststatus

    directory = _host_status_dir(runtime.load_config(inv), out)
    if directory is not None:
        text, problems = hoststatus.listing(directory, verbose=inv.verbose)
        out.write(text)
        err.write(problems)
    return 0


def _purge_host_status(inv: Invocation, out: TextIO, err: TextIO) -> int:
    """-bH / purgestat: remove host status older than Timeout.hoststatus."""
    from pysendmail.cli import runtime
    from pysendmail.delivery import hoststatus

    config = runtime.load_config(inv)
    directory = _host_status_dir(config, out)
    if directory is not None:
        max_age = float(config.option("Timeout.hoststatus", 1800) or 0)  # type: ignore[arg-type]
        hoststatus.purge(directory, max_age)
    return 0


def _queue_counts(inv: Invocation, out: TextIO, err: TextIO) -> int:
    """-bP: the number of entries in each queue, in the words sendmail prints them with
    (it keeps the counts in shared memory; pysendmail counts the queue files)."""
    import os

    from pysendmail.cli import runtime
    from pysendmail.sysexits import ExitCode

    config = runtime.load_config(inv)
    queue_dir = str(config.option("QueueDirectory", "/var/spool/mqueue"))
    try:
        entries = sum(1 for name in os.listdir(queue_dir) if name.startswith("qf"))
    except OSError:
        out.write(f"can not chdir({queue_dir}/): No such file or directory\n")
        return int(ExitCode.CONFIG)
    if entries == 0:
        out.write(f"{queue_dir} is empty\n")
    else:
        out.write(f"{queue_dir}: entries={entries}\n\t\tTotal requests: {entries}\n")
    return 0


def _init_aliases(inv: Invocation, out: TextIO, err: TextIO) -> int:
    """-bi / newaliases: rebuild the alias databases."""
    import os

    from pysendmail.cli import admin, runtime

    config = runtime.load_config(inv)
    if not runtime.may_administer(config, os.getuid()):
        out.write("Permission denied\n")
        return 64
    return int(admin.newaliases(config, out, err))


def _verify(inv: Invocation, out: TextIO, err: TextIO) -> int:
    """-bv: what would happen to each address, without delivering."""
    import os

    from pysendmail.cli import runtime
    from pysendmail.cli.submit import NO_RECIPIENTS
    from pysendmail.routing import Router, verify
    from pysendmail.sysexits import ExitCode

    if not inv.recipients:
        out.write(NO_RECIPIENTS + "\n")
        return int(ExitCode.USAGE)
    config = runtime.load_config(inv)
    lines, status = verify(
        Router(config), inv.recipients, verbose=inv.verbose, allow_programs=os.getuid() == 0
    )
    for line in lines:
        out.write(line + "\n")
    return int(status)


def _run_filters(inv: Invocation) -> list:
    from pysendmail.queue.runner import RunFilter

    request = inv.queue_run
    if request is None:
        return []
    return [
        RunFilter(kind, text, negated)
        for kind, limits in (("I", request.ids), ("R", request.recipients), ("S", request.senders))
        for text, negated in limits
    ]


def _queue_run(
    inv: Invocation,
    out: TextIO,
    err: TextIO,
    *,
    beside_daemon: bool = False,
    daemon_pid: int | None = None,
) -> int:
    """-q[time] [-qI/R/S substr]: take in what users handed over, then run the queue.

    With an interval it is a persistent queue runner: detached, as sendmail's (its pid in
    PidFile), unless -qf/-qp keep it in the foreground or it already runs beside -bd."""
    import os

    from pysendmail.cli import runtime
    from pysendmail.queue.service import runner_for_config
    from pysendmail.sysexits import ExitCode

    request = inv.queue_run
    config = runtime.load_config(inv)
    if _unknown_group(inv, out):
        return int(ExitCode.OK)
    if inv.quarantining:
        return _quarantine(inv, config, out)
    _open_mail_log()
    if os.getuid() == 0:
        runtime.take_in_submissions(config)
    queue_dir = str(config.option("QueueDirectory", "/var/spool/mqueue"))
    if not os.path.isdir(queue_dir):
        out.write(f"can not chdir({queue_dir}/): No such file or directory\n")
        return int(ExitCode.CONFIG)
    runner = runner_for_config(config, verbose=out if inv.verbose else None)
    if request is not None and (request.quarantine_reasons or request.lost_items):
        from pysendmail.cli import quarantine

        quarantine.run_items(queue_dir, request, runner, out if inv.verbose else None)
        return int(ExitCode.OK)
    filters = _run_filters(inv)
    if request is None or request.interval is None:
        runner.run(filters)
        return int(ExitCode.OK)
    interval = cli.parse_duration(request.interval) or 0
    if beside_daemon or request.foreground:
        _run_every(interval, config, runner, filters, daemon_pid)
        return int(ExitCode.OK)
    from pysendmail.daemons.smtpd import detach, write_pid_file

    out.flush()
    detach()
    pid_file = str(config.option("PidFile") or "")
    try:
        if pid_file:
            write_pid_file(pid_file, inv.source_argv)
    except OSError:
        pid_file = ""
    try:
        _run_every(interval, config, runner, filters)
    finally:
        if pid_file:
            try:
                os.unlink(pid_file)
            except OSError:
                pass
    return int(ExitCode.OK)


def _run_every(interval: int, config, runner, filters: list, daemon_pid: int | None = None) -> None:
    """Queue runs `interval` seconds apart until SIGTERM or SIGINT, or (beside a
    daemon, `daemon_pid`) until that daemon is gone. The handlers set a plain flag that
    the loop polls (an Event set from a handler can deadlock)."""
    import os
    import signal
    import time

    from pysendmail.cli import runtime

    stopped = {"now": False}

    def stop(signum: int, frame: object) -> None:
        stopped["now"] = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    while not stopped["now"]:
        try:
            if os.getuid() == 0:
                runtime.take_in_submissions(config)
            runner.run(filters)
            runner.store.cleanup()
        except Exception:  # one failed run never ends the persistent runner
            import logging

            logging.getLogger("pysendmail").exception("queue run failed")
        next_run = time.monotonic() + interval
        while not stopped["now"] and time.monotonic() < next_run:
            time.sleep(min(0.2, max(next_run - time.monotonic(), 0)))
            if daemon_pid is not None and os.getppid() != daemon_pid:
                stopped["now"] = True  # the daemon was killed: no runner of its own left


def _quarantine(inv: Invocation, config, out: TextIO) -> int:
    """-Q reason / -Q: quarantine or release the items the -q limits select."""
    import os

    from pysendmail.cli import quarantine
    from pysendmail.sysexits import ExitCode

    request = inv.queue_run
    if request is not None and request.lost_items:
        out.write("Can not use -Q with -qL\n")
        return int(ExitCode.USAGE)
    queue_dir = str(config.option("QueueDirectory", "/var/spool/mqueue"))
    if not os.path.isdir(queue_dir):
        out.write(f"can not chdir({queue_dir}/): No such file or directory\n")
        return int(ExitCode.CONFIG)
    reason = inv.quarantine_reason
    quarantine.quarantine_queue(queue_dir, request, reason, out, verbose=inv.verbose)
    return int(ExitCode.OK)


def _test_mode(inv: Invocation, out: TextIO, err: TextIO) -> int:
    """-bt: address test mode, lines from stdin."""
    import sys

    from pysendmail.cli import runtime
    from pysendmail.rules.testmode import run_testmode

    config = runtime.load_config(inv)
    return int(run_testmode(config, sys.stdin.buffer, out))


# What -d0.1 lists after "Compiled with:": what this implementation has, in sendmail's words.
COMPILE_OPTIONS = [
    "DNSMAP",
    "LOG",
    "MATCHGECOS",
    "MIME8TO7",
    "NAMED_BIND",
    "NETINET",
    "NETINET6",
    "NETUNIX",
    "PIPELINING",
    "SCANF",
    "STARTTLS",
]


def version_block(inv: Invocation) -> str:
    """What -d0.1 prints before anything else: the version, the compile options (wrapped
    as sendmail wraps them) and the system identity after the configuration is read."""
    from pysendmail import SENDMAIL_VERSION
    from pysendmail.cli import runtime
    from pysendmail.rules.testmode import _world_of, version_lines

    lines = [f"Version {SENDMAIL_VERSION}\n Compiled with:"]
    width = 7
    for word in COMPILE_OPTIONS:
        if width + len(word) > 63:
            lines.append("\n")
            width = 0
        lines.append("\t\t" if width == 0 else " ")
        lines.append(word)
        width += len(word) + 1
    lines.append("\n\n")
    config = runtime.load_config(inv)
    return "".join(lines) + version_lines(_world_of(config, None)) + "\n"


def _open_mail_log() -> None:
    """The daemon's and the queue runs' from=/to= lines go where sendmail's go: syslog's
    mail facility, or $PYSENDMAIL_LOG (a file, or stderr)."""
    from pysendmail import log

    log.configure()


def _smtp_daemon(foreground: bool) -> Runner:
    """-bd (detached) and -bD (foreground): the SMTP daemon; with -q<time> a queue runner
    process beside it that also takes in what users handed over."""

    def run(inv: Invocation, out: TextIO, err: TextIO) -> int:
        import os

        from pysendmail.cli import runtime

        try:
            from pysendmail.daemons.smtpd import run_daemon, service_from_config  # noqa: F401
        except ImportError as exc:
            raise Unavailable(inv.mode) from exc
        config = runtime.load_config(inv)
        if not runtime.may_administer(config, os.getuid()):
            out.write("Permission denied\n")
            return 64
        if config.startup_note:
            err.write(f"pysendmail: {config.startup_note}\n")
            err.flush()
        if os.getuid() == 0:
            runtime.take_in_submissions(config)
        _open_mail_log()
        out.flush()
        # SIGHUP reads the cf again with the same command-line overrides.
        return int(
            run_daemon(
                config,
                foreground,
                rebuild=lambda: runtime.load_config(inv),
                argv=inv.source_argv,
                companion=_companions(config, inv),
            )
        )

    return run


def _local_sockets(config, inv: Invocation):
    """The daemon's local submission sockets (started by run_daemon once detached): SMTP
    for -bs by a user, the command line for `sendmail rcpt...` by a user, which is
    submitted with this daemon's configuration (its cf and its -O settings)."""

    def start(service_ref):
        import logging

        from pysendmail.cli.socketsubmit import socket_path, submit_for_peer
        from pysendmail.daemons.localsubmit import LocalSubmitServer

        queue_dir = str(config.option("QueueDirectory", "/var/spool/mqueue"))
        command_line = submit_for_peer(inv, lambda: service_ref().on_queued)
        server = LocalSubmitServer(socket_path(queue_dir), service_ref, command_line)
        try:
            server.start()
        except OSError as error:
            # Users still hand their mail over through the submission directory.
            logging.getLogger("pysendmail").error("no local submission socket: %s", error)
            server.stop()
            return lambda: None
        return server.stop

    return start


def _companions(config, inv: Invocation):
    """What run_daemon starts once detached: the local submission sockets, and with
    -q<time> the queue runner process; their stop stops both."""
    sockets = _local_sockets(config, inv)
    periodic = inv.queue_run is not None and inv.queue_run.interval is not None

    def start(service_ref):
        runner = _start_queue_runner(inv) if periodic else None
        stop_sockets = sockets(service_ref)

        def stop() -> None:
            stop_sockets()
            if runner is not None:
                _stop_child(runner)

        return stop

    return start


def _start_queue_runner(inv: Invocation) -> int:
    """The daemon's -q<time>: a child of the daemon running the queue at that interval,
    until the daemon stops it or is gone. Returns its pid."""
    import os

    daemon = os.getpid()
    child = os.fork()
    if child:
        return child
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    status = 0
    try:
        queue_inv = Invocation(program=inv.program, source_argv=inv.source_argv)
        queue_inv.config_file = inv.config_file
        queue_inv.settings = list(inv.settings)
        queue_inv.macros = dict(inv.macros)
        queue_inv.queue_run = inv.queue_run
        queue_inv.mode = cli.MODE_QUEUE_RUN
        import io

        status = _queue_run(
            queue_inv, io.StringIO(), io.StringIO(), beside_daemon=True, daemon_pid=daemon
        )
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _stop_child(pid: int) -> None:
    """SIGTERM to a child, then wait for it (it ends its current run first)."""
    import os
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass  # already gone (and reaped)


def _smtp_stdio(inv: Invocation, out: TextIO, err: TextIO) -> int:
    """-bs: one SMTP session on standard input and output."""
    import sys

    from pysendmail.cli import runtime

    try:
        from pysendmail.daemons.smtpd import serve_stdio, service_from_config  # noqa: F401
    except ImportError as exc:
        raise Unavailable(inv.mode) from exc
    import os

    config = runtime.load_config(inv)
    out.flush()
    queue_dir = str(config.option("QueueDirectory", "/var/spool/mqueue"))
    if os.getuid() != 0 and not os.access(queue_dir, os.W_OK | os.X_OK):
        # A user who may not write the queue: the daemon holds the session instead, as
        # -bs by this user (it knows who from the socket), when it runs.
        from pysendmail.cli.socketsubmit import relay_session, socket_path

        status = relay_session(socket_path(queue_dir), sys.stdin.buffer, sys.stdout.buffer)
        if status is not None:
            return status
    status = serve_stdio(config, sys.stdin.buffer, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return int(status)


_RUNNERS: dict[str, Runner] = {
    cli.MODE_DAEMON: _smtp_daemon(False),
    cli.MODE_FOREGROUND_DAEMON: _smtp_daemon(True),
    cli.MODE_SMTP: _smtp_stdio,
    cli.MODE_TEST: _test_mode,
    cli.MODE_QUEUE_RUN: _queue_run,
    cli.MODE_PRINT_QUEUE: _print_queue,
    cli.MODE_INIT_ALIASES: _init_aliases,
    cli.MODE_VERIFY: _verify,
    cli.MODE_HOST_STATUS: _host_status,
    cli.MODE_PURGE_HOST_STATUS: _purge_host_status,
    cli.MODE_QUEUE_STATS: _queue_counts,
}


def runner(mode: str) -> Runner:
    found = _RUNNERS.get(mode)
    if found is None:
        raise Unavailable(mode)
    return found
