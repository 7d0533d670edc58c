"""The whole small mail host: `pysendmail -bD` on a copy of the embedded default
sendmail.cf takes a message over SMTP, delivers it to the recipient's Maildir in the
background (DeliveryMode=background, no queue run asked for), and `pysendmail-pop3d`
serves that Maildir: smtplib in, poplib out, nothing faked between.

The daemons run in forked children of the test, as the user running the tests. As root
(CI) the recipient is the unprivileged user `pysendmail-test` (created with useradd when
absent), so local delivery really switches to the recipient's uid; otherwise the
recipient is the user running the tests.
"""

from __future__ import annotations

import os
import poplib
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pysendmail.config
from pysendmail import passwd
from pysendmail.queue.listing import list_queue
from tests.conftest import command, subprocess_env
from tests.integration.cli_support import unprivileged_user

DEFAULT_CF = Path(pysendmail.config.__file__).parent / "default.cf"
PASSWORD = "correct horse battery staple"


def _account() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    return unprivileged_user()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, pid: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        assert done == 0, f"daemon exited ({status}): {log.read_text(errors='replace')}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}: {log.read_text(errors='replace')}")


class Host:
    """A mail host in a temporary directory: its cf, queue, Maildirs and daemons."""

    def __init__(self, account: pwd.struct_passwd, base: Path) -> None:
        self.account = account  # the local recipient
        self.base = base
        self.cf = base / "sendmail.cf"
        self.queue_dir = base / "mqueue"
        self.maildir = base / "maildirs" / account.pw_name
        self.children: list[int] = []

    def write_cf(self) -> None:
        """The embedded default, with this host's paths appended as `O` lines."""
        settings = {
            "QueueDirectory": self.queue_dir,
            "HostStatusDirectory": self.base / "hoststat",
            "AliasFile": self.base / "aliases",
            "PidFile": self.base / "sendmail.pid",
            "StatusFile": self.base / "sendmail.st",
            "LocalMaildir": self.base / "maildirs" / "$u",
        }
        lines = [f"O {name}={value}\n" for name, value in settings.items()]
        self.cf.write_text(DEFAULT_CF.read_text() + "".join(lines))

    def spawn(self, run: Callable[[], int], log: Path) -> int:
        pid = os.fork()
        if pid == 0:  # the child: become the user, then serve until SIGTERM
            status = 70
            try:
                out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(out, 1)
                os.dup2(out, 2)
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (pytest replaced them)
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                os.environ["XDG_CACHE_HOME"] = str(self.base / "cache")
                status = run()
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(status)
        self.children.append(pid)
        return pid

    def stop(self) -> None:
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for pid in self.children:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.05)
            else:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


@pytest.fixture
def host() -> Iterator[Host]:
    account = _account()
    base = Path(tempfile.mkdtemp(prefix="pysendmail-e2e-", dir="/tmp"))
    base.chmod(0o755)
    made = Host(account, base)
    made.write_cf()
    made.queue_dir.mkdir(mode=0o700)
    (base / "hoststat").mkdir(mode=0o700)
    (base / "aliases").write_text("postmaster: root\n")
    made.maildir.mkdir(parents=True)
    os.chown(made.maildir, account.pw_uid, account.pw_gid)
    try:
        yield made
    finally:
        made.stop()
        shutil.rmtree(base)


def _start_smtp(host: Host, port: int, *options: str) -> int:
    from pysendmail.cli.main import main

    log = host.base / "smtpd.log"
    daemon = f"DaemonPortOptions=Name=MTA, Addr=127.0.0.1, Port={port}"
    argv = ["pysendmail", "-C", str(host.cf), "-bD", "-O", daemon]
    for option in options:
        argv += ["-O", option]
    pid = host.spawn(lambda: main(argv), log)
    _wait_for_port(port, pid, log)
    return pid


def _start_pop3(host: Host, port: int) -> None:
    from pysendmail.cli.pop3d import main as pop3d

    log = host.base / "pop3d.log"
    args = ["-C", str(host.cf), "--foreground", "--allow-plaintext-auth"]
    args += ["--mailbox-format", "maildir", "--listen", f"127.0.0.1:{port}"]
    pid = host.spawn(lambda: pop3d.main(args, prog_name="pysendmail-pop3d"), log)
    _wait_for_port(port, pid, log)


def _pop3_stat(port: int, user: str) -> tuple[poplib.POP3, int]:
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    client.user(user)
    client.pass_(PASSWORD)
    count, _size = client.stat()
    return client, count


def test_mail_sent_over_smtp_is_delivered_and_fetched_over_pop3(host: Host) -> None:
    user = host.account.pw_name
    smtp_port, pop3_port = _free_port(), _free_port()
    _start_smtp(host, smtp_port)
    passwd.set_password(user, PASSWORD, path=host.base / passwd.FILE_NAME)
    _start_pop3(host, pop3_port)

    body = "Hello from the end-to-end test.\n.leading dot survives\n"
    message = f"From: sender@localhost\nTo: {user}@localhost\nSubject: e2e\n\n{body}"
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        refused = smtp.sendmail("sender@localhost", [f"{user}@localhost"], message)
    assert refused == {}

    # Delivered in the background (DeliveryMode=background), no queue run asked for.
    deadline = time.monotonic() + 30
    count = 0
    while time.monotonic() < deadline:
        client, count = _pop3_stat(pop3_port, user)
        if count:
            break
        client.quit()
        time.sleep(0.2)
    assert count == 1, (host.base / "smtpd.log").read_text(errors="replace")
    delivered = list((host.maildir / "new").iterdir())
    assert len(delivered) == 1
    assert delivered[0].stat().st_uid == host.account.pw_uid

    _resp, lines, _octets = client.retr(1)
    text = b"\n".join(lines).decode()
    assert "Subject: e2e" in text
    assert "Return-Path: <sender@localhost>" in text
    assert text.count("Received: from") >= 1
    assert body.rstrip("\n") in text
    client.dele(1)
    client.quit()

    client, count = _pop3_stat(pop3_port, user)
    client.quit()
    assert count == 0
    listing, status = list_queue(str(host.queue_dir))
    assert status == 0
    assert "is empty" in listing


def test_the_daemon_and_its_deliveries_write_sendmails_log_lines(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    maillog = host.base / "maillog"
    monkeypatch.setenv("PYSENDMAIL_LOG", str(maillog))
    user = host.account.pw_name
    port = _free_port()
    _start_smtp(host, port)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("sender@localhost", [f"{user}@localhost"], "Subject: logged\n\nhi\n")
    deadline = time.monotonic() + 30
    while "stat=Sent" not in (maillog.read_text() if maillog.exists() else ""):
        assert time.monotonic() < deadline, (host.base / "smtpd.log").read_text()
        time.sleep(0.1)
    lines = maillog.read_text().splitlines()
    accepted = [line for line in lines if ": from=<sender@localhost>, size=" in line]
    assert len(accepted) == 1
    assert "nrcpts=1, " in accepted[0]
    assert "proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]" in accepted[0]
    qid = accepted[0].split(": from=", 1)[0].rsplit(" ", 1)[1]
    sent = [line for line in lines if f"{qid}: to=<{user}@localhost>, " in line]
    assert len(sent) == 1 and "stat=Sent" in sent[0]


def test_a_command_line_submission_logs_its_from_and_to_lines(host: Host) -> None:
    maillog = host.base / "maillog"
    user = host.account.pw_name
    env = subprocess_env(XDG_CACHE_HOME=str(host.base / "cache"), PYSENDMAIL_LOG=str(maillog))
    run = subprocess.run(
        [*command("sendmail"), "-C", str(host.cf), "-odi", "-i", f"{user}@localhost"],
        input=b"Subject: from the command line\n\nhi\n",
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")
    lines = maillog.read_text().splitlines()
    accepted = [line for line in lines if ": from=" in line]
    assert len(accepted) == 1
    caller = pwd.getpwuid(os.getuid()).pw_name
    assert f": from={caller}, size=" in accepted[0]
    assert accepted[0].endswith(f", relay={caller}@localhost")
    assert "nrcpts=1, msgid=<" in accepted[0]
    qid = accepted[0].split(": from=", 1)[0].rsplit(" ", 1)[1]
    sent = [line for line in lines if f"{qid}: to={user}@localhost, " in line]
    assert len(sent) == 1 and "mailer=local" in sent[0] and "stat=Sent" in sent[0], lines
    assert len(list((host.maildir / "new").iterdir())) == 1


def test_without_syslog_a_submission_prints_no_log_line(host: Host) -> None:
    env = subprocess_env(XDG_CACHE_HOME=str(host.base / "cache"))
    env.pop("PYSENDMAIL_LOG", None)
    run = subprocess.run(
        [*command("sendmail"), "-C", str(host.cf), "-odq", "-i", "postmaster"],
        input=b"Subject: quiet\n\nhi\n",
        capture_output=True,
        env=env,
        timeout=60,
    )
    # A cron job mails whatever its command prints: the line goes to syslog or nowhere.
    assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")
    assert len(list(host.queue_dir.glob("qf*"))) == 1


def _size_offered(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        return smtp.esmtp_features["size"]


def _greeting(port: int) -> bytes:
    smtp = smtplib.SMTP(timeout=10)
    try:
        _code, banner = smtp.connect("127.0.0.1", port)
        return banner
    finally:
        smtp.close()


def test_sighup_rereads_the_cf_keeping_the_command_line_overrides(host: Host) -> None:
    port = _free_port()
    pid = _start_smtp(host, port, "MaxMessageSize=5000")
    assert _size_offered(port) == "5000"
    assert b"reloaded" not in _greeting(port)
    host.cf.write_text(host.cf.read_text() + "O SmtpGreetingMessage=$j reloaded\n")
    os.kill(pid, signal.SIGHUP)
    # Each worker process reloads in its own time: wait until new sessions, whichever
    # worker takes them, all greet with the new text (twenty in a row).
    deadline = time.monotonic() + 30
    in_a_row = 0
    while in_a_row < 20:
        assert time.monotonic() < deadline, "not every worker reloaded"
        if b"reloaded" in _greeting(port):
            in_a_row += 1
        else:
            in_a_row = 0
            time.sleep(0.2)
    # the cf's change is seen, and the -O override given at start still holds
    assert b"reloaded" in _greeting(port)
    assert _size_offered(port) == "5000"
