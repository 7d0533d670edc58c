"""Submission by a user who cannot write the queue, through the daemon's local socket.

A real daemon (`sendmail -bD`, root, in a forked child of this test) listens on
127.0.0.1 and on its Unix socket; the user's half is a forked child that became the
unprivileged user `pysendmail-test` (created with useradd when absent; CI runs as root)
and runs the sendmail command line in-process (/root is 0700 here: a child that dropped
its privileges cannot exec the venv's python). The daemon keeps what it accepts queued
(DeliveryMode=queue) so the queue files can be read.
"""

from __future__ import annotations

import io
import os
import pwd
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysendmail.cli.handoff import submission_dir
from pysendmail.cli.socketsubmit import command_line_socket_path, socket_path
from tests.integration.cli_support import unprivileged_user
from tests.integration.test_mailhost_e2e import Host, _free_port, _wait_for_port

MESSAGE = b"Subject: over the socket\nTo: somebody@example.org\n\nline one\n.dot line\n"


@pytest.fixture
def user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to create and become an unprivileged user")
    return unprivileged_user()


@pytest.fixture
def host(user: pwd.struct_passwd) -> Iterator[Host]:
    base = Path(tempfile.mkdtemp(prefix="pysendmail-socket-", dir="/tmp"))
    base.chmod(0o755)
    made = Host(user, base)
    made.write_cf()
    made.queue_dir.mkdir(mode=0o700)
    (base / "hoststat").mkdir(mode=0o700)
    (base / "aliases").write_text("postmaster: root\n")
    made.maildir.mkdir(parents=True)
    user_cache = base / "user-cache"
    user_cache.mkdir()
    os.chown(user_cache, user.pw_uid, user.pw_gid)
    try:
        yield made
    finally:
        made.stop()
        shutil.rmtree(base)


def start_daemon(host: Host) -> int:
    from pysendmail.cli.main import main

    port = _free_port()
    argv = ["pysendmail", "-C", str(host.cf), "-bD", "-O", "DeliveryMode=queue"]
    argv += ["-O", f"DaemonPortOptions=Name=MTA, Addr=127.0.0.1, Port={port}"]
    pid = host.spawn(lambda: main(argv), host.base / "daemon.log")
    _wait_for_port(port, pid, host.base / "daemon.log")
    for path in (socket_path(str(host.queue_dir)), command_line_socket_path(str(host.queue_dir))):
        wait_for(lambda path=path: os.path.exists(path), f"the local socket {path}")
    return pid


def wait_for(condition, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def warm_up(host: Host) -> None:
    """Import, as root, every module the user's half needs: once root is dropped the
    interpreter's own files (under /root) cannot be read any more."""
    import pickle  # noqa: F401 (the configuration cache)

    from pysendmail.cli import collect, handoff, runtime, sendmail, socketsubmit, submit  # noqa: F401
    from pysendmail.cli.options import parse_args

    runtime.load_config(parse_args(["sendmail", "-C", str(host.cf)]))


def as_user(user: pwd.struct_passwd, host: Host, action) -> tuple[int, bytes]:
    """Run `action()` in a child that became `user`: (its status, what it printed)."""
    output = host.base / f"user-{time.monotonic_ns()}.out"
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT, 0o600)  # before dropping root
            os.environ["XDG_CACHE_HOME"] = str(host.base / "user-cache")
            warm_up(host)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.dup2(fd, 1)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (pytest replaced it)
            status = action()
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    text = output.read_bytes() if output.exists() else b""
    return os.waitstatus_to_exitcode(status), text


def sendmail_as(user, host: Host, argv: list[str], message: bytes = MESSAGE):
    def action() -> int:
        from pysendmail.cli.main import main

        sys.stdin = io.TextIOWrapper(io.BytesIO(message))
        return main(["sendmail", "-C", str(host.cf), *argv])

    return as_user(user, host, action)


def queued(host: Host) -> list[str]:
    return [p.read_text(errors="replace") for p in sorted(host.queue_dir.glob("qf*"))]


def submissions(host: Host) -> list[str]:
    path = Path(submission_dir(str(host.queue_dir)))
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_user_mail_goes_through_the_socket_as_that_user(user, host: Host) -> None:
    start_daemon(host)
    path = Path(socket_path(str(host.queue_dir)))
    assert path.stat().st_mode & 0o777 == 0o666
    assert (path.parent.stat().st_uid, path.parent.stat().st_mode & 0o777) == (0, 0o755)

    status, printed = sendmail_as(user, host, ["-i", "root"])
    assert (status, printed) == (0, b"")
    [qf] = queued(host)
    assert f"\n$_{user.pw_name}@localhost\n" in qf
    assert f"\nS{user.pw_name}\n" in qf  # as the user's own sendmail writes it
    assert "set sender to" not in qf  # the user's own address
    assert "Subject: over the socket" in qf
    [df] = list(host.queue_dir.glob("df*"))
    assert df.read_bytes() == b"line one\n.dot line\n"
    assert submissions(host) == []


def test_another_sender_is_marked_whatever_the_client_claims(user, host: Host) -> None:
    start_daemon(host)
    status, _ = sendmail_as(user, host, ["-f", "root", "root"])
    assert status == 0
    [qf] = queued(host)
    assert "\nSroot\n" in qf
    assert (
        f"X-Authentication-Warning: localhost: {user.pw_name} set sender to root using -f\n" in qf
    )
    for path in host.queue_dir.iterdir():
        path.unlink()

    # A client of its own saying it is root is still the user to the daemon.
    def raw_session() -> int:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(socket_path(str(host.queue_dir)))
            stream = sock.makefile("rwb")
            replies = [stream.readline()]
            for line in (b"EHLO root", b"MAIL FROM:<root>", b"RCPT TO:<root>", b"DATA"):
                stream.write(line + b"\r\n")
                stream.flush()
                replies.append(stream.readline())
                while replies[-1][3:4] == b"-":
                    replies.append(stream.readline())
            stream.write(b"Subject: claimed\r\n\r\nhi\r\n.\r\nQUIT\r\n")
            stream.flush()
            return 0 if stream.readline().startswith(b"250 ") else 1

    assert as_user(user, host, raw_session)[0] == 0
    claimed = next(qf for qf in queued(host) if "Subject: claimed" in qf)
    assert f"\n$_{user.pw_name}@localhost\n" in claimed
    assert f" {user.pw_name} owned process doing -bs\n" in claimed


def test_t_takes_the_header_recipients_bcc_included(user, host: Host) -> None:
    start_daemon(host)
    message = b"To: root\nBcc: hidden@example.org\nSubject: with bcc\n\nbody\n"
    status, _ = sendmail_as(user, host, ["-t", "-i"], message)
    assert status == 0
    [qf] = queued(host)
    # Kept in the qf as sendmail keeps it; every delivery leaves it out.
    assert "\nH??Bcc: hidden@example.org\n" in qf
    recipients = [line for line in qf.splitlines() if line.startswith("R")]
    assert recipients == ["RPFD:root", "RPFD:hidden@example.org"]


def test_unknown_recipient_is_refused_like_sendmail(user, host: Host) -> None:
    start_daemon(host)
    status, printed = sendmail_as(user, host, ["-i", "nosuchuser@localhost", "root"])
    assert status == 67
    assert printed.startswith(b"nosuchuser@localhost... ")
    assert b"User unknown" in printed
    report, message = sorted(queued(host), key=lambda qf: "\nS<>\n" not in qf)
    assert "\nRPFD:root\n" in message  # root still gets it
    assert f"\nRPFD:{user.pw_name}\n" in report  # and the user a report, as sendmail queues


def test_a_dead_socket_falls_back_to_the_submission_directory(user, host: Host) -> None:
    # A socket file nobody listens on (a daemon that died): connect() is refused.
    path = Path(command_line_socket_path(str(host.queue_dir)))
    path.parent.mkdir(mode=0o755)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    path.chmod(0o666)
    Path(submission_dir(str(host.queue_dir))).mkdir(mode=0o1733)
    Path(submission_dir(str(host.queue_dir))).chmod(0o1733)
    status, _ = sendmail_as(user, host, ["-i", "root"])
    assert status == 0
    assert len(submissions(host)) == 1
    assert queued(host) == []

    # The daemon takes in what was handed over as soon as it starts.
    start_daemon(host)
    wait_for(lambda: submissions(host) == [], "the daemon to drain the directory")
    [qf] = queued(host)
    assert f"\n$_{user.pw_name}@localhost\n" in qf
    assert "line one" not in qf and "Subject: over the socket" in qf


def test_bs_by_a_user_is_held_by_the_daemon(user, host: Host) -> None:
    """`sendmail -bs` run by the user (alpine and pine submit so): the session is the
    daemon's, as -bs by that user; the client's stdin and stdout carry it."""
    start_daemon(host)
    to_child, child_stdin = os.pipe()
    child_stdout, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            os.environ["XDG_CACHE_HOME"] = str(host.base / "user-cache")
            warm_up(host)
            import select  # noqa: F401 (the relay's)

            from pysendmail.cli import modes  # noqa: F401 (-bs is run from there)
            from pysendmail.daemons import smtpd  # noqa: F401 (-bs imports it first)

            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.dup2(to_child, 0)
            os.dup2(from_child, 1)
            for fd in (to_child, child_stdin, child_stdout, from_child):
                os.close(fd)
            sys.stdin = open(0)  # noqa: SIM115 (pytest replaced it)
            sys.stdout = open(1, "w")  # noqa: SIM115
            from pysendmail.cli.main import main

            status = main(["sendmail", "-C", str(host.cf), "-bs"])
        finally:
            os._exit(status)
    os.close(to_child)
    os.close(from_child)
    replies = os.fdopen(child_stdout, "rb")
    commands = os.fdopen(child_stdin, "wb")

    def reply() -> bytes:
        line = replies.readline()
        while line[3:4] == b"-":
            line = replies.readline()
        return line

    def say(line: bytes) -> bytes:
        commands.write(line + b"\r\n")
        commands.flush()
        return reply()

    assert reply().startswith(b"220 ")
    assert say(b"EHLO client.example").startswith(b"250 ")
    assert say(b"MAIL FROM:<root>").startswith(b"250 ")
    assert say(b"RCPT TO:<root>").startswith(b"250 ")
    assert say(b"DATA").startswith(b"354 ")
    assert say(b"Subject: typed\r\n\r\nhello\r\n.").startswith(b"250 ")
    assert say(b"QUIT").startswith(b"221 ")
    commands.close()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    [qf] = queued(host)
    assert f"\n$_{user.pw_name}@localhost\n" in qf
    assert f" {user.pw_name} owned process doing -bs\n" in qf
    assert "Subject: typed" in qf
