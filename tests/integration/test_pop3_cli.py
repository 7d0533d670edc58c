"""`pysendmail-pop3d` as a process: a test copy of the fixtures' office.cf with a trustme
certificate, the password file beside it written by pysendmail.passwd, mail delivered by
pysendmail.maildrop, poplib over STLS and POP3S, and the signals."""

from __future__ import annotations

import os
import poplib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest
import trustme

from pysendmail import maildrop, passwd
from pysendmail.cli import pop3d as cli
from pysendmail.daemons.pop3d import Listener
from tests.conftest import subprocess_env
from tests.integration.pop3_support import message

POP3D = [sys.executable, "-m", "pysendmail.cli.pop3d"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def site(tmp_path, oracle_dir, ca):
    """A cf with TLS options, its password file (alice), and a spool with two messages."""
    cert = ca.issue_cert("127.0.0.1", "localhost", common_name="localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    office = oracle_dir / "configs" / "office"
    cf = tmp_path / "office.cf"
    cf.write_text(
        (office / "office.cf").read_text()
        + f"O ServerCertFile={tmp_path / 'server.pem'}\n"
        + f"O ServerKeyFile={tmp_path / 'server.pem'}\n"
    )
    passwd.set_password("alice", "alice pass", path=passwd.passwd_path(cf))
    spool = tmp_path / "mail"
    spool.mkdir()
    for number in (1, 2):
        maildrop.append_mbox(spool / "alice", "sender@example.com", [message(number)])
    return cf, spool


class Running:
    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            POP3D + argv, stderr=subprocess.PIPE, text=True, env=subprocess_env()
        )
        self.banner: list[str] = []
        for line in self.process.stderr:
            self.banner.append(line.rstrip("\n"))
            if "POP3 on " in line:
                break
        addresses = re.findall(r"127\.0\.0\.1:(\d+)( \(pop3s\))?", self.banner[-1])
        self.port = next(int(port) for port, tls in addresses if not tls)
        self.pop3s_port = next((int(port) for port, tls in addresses if tls), None)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.process.stderr.close()
        return code


def wait_for_greeting(port: int, prefix: bytes, attempts: int = 100) -> bool:
    """The daemon reloads in its own time after SIGHUP: ask new sessions until one greets
    with `prefix` (True), or give up after `attempts` tries (False)."""
    for _ in range(attempts):
        client = poplib.POP3("127.0.0.1", port, timeout=10)
        greeting = client.getwelcome()
        client.quit()
        if greeting.startswith(prefix):
            return True
        time.sleep(0.1)
    return False


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_daemon_serves_stls_and_pop3s_reloads_on_hup_and_stops_on_term(site, ca, tmp_path):
    cf, spool = site
    pid_file = tmp_path / "pop3d.pid"
    listen = ["--listen", "127.0.0.1:0", "--pop3s", "127.0.0.1:0"]
    files = ["--mailbox-dir", str(spool), "--pid-file", str(pid_file)]
    daemon = Running(["-C", str(cf), "--foreground", *listen, *files])
    try:
        assert any(f"passwords: {tmp_path / 'pysendmail.passwd'}" in line for line in daemon.banner)
        assert pid_file.read_text().strip() == str(daemon.process.pid)

        client = poplib.POP3("127.0.0.1", daemon.port, timeout=10)
        assert client.getwelcome().startswith(b"+OK mail.example.com POP3 server ready")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
            client.user("alice")
        client.stls(client_context(ca))
        client.user("alice")
        client.pass_("alice pass")
        assert client.stat()[0] == 2
        client.dele(1)
        client.quit()

        # SIGHUP: the edited cf (a new $j) is read again; new sessions greet with it.
        cf.write_text(cf.read_text().replace("Djmail.example.com", "Djpop.example.org"))
        daemon.process.send_signal(signal.SIGHUP)
        assert wait_for_greeting(daemon.port, b"+OK pop.example.org ")
        secure = poplib.POP3_SSL(
            "127.0.0.1", daemon.pop3s_port, context=client_context(ca), timeout=10
        )
        secure.user("alice")
        secure.pass_("alice pass")
        _, lines, _ = secure.retr(1)
        assert b"Subject: message 2" in lines
        secure.dele(1)
        secure.file.close()
        secure.sock.close()  # dropped without QUIT: nothing is deleted
    finally:
        code = daemon.stop()
    assert code == 0
    assert not pid_file.exists()
    assert [line for line in (spool / "alice").read_bytes().splitlines() if b"Subject" in line] == [
        b"Subject: message 2"
    ]


def test_two_daemons_keep_one_session_per_maildrop_and_deliveries_go_on(site):
    cf, spool = site
    argv = ["-C", str(cf), "--foreground", "--listen", "127.0.0.1:0"]
    argv += ["--mailbox-dir", str(spool), "--allow-plaintext-auth"]
    first, second = Running(argv), Running(argv)
    try:
        holder = poplib.POP3("127.0.0.1", first.port, timeout=10)
        holder.user("alice")
        holder.pass_("alice pass")
        assert holder.stat()[0] == 2
        other = poplib.POP3("127.0.0.1", second.port, timeout=10)
        other.user("alice")
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[IN-USE\]"):
            other.pass_("alice pass")
        other.quit()
        # the session holds its own lock, not the mailbox's: a delivery goes in at once
        maildrop.append_mbox(spool / "alice", "s@example.com", [message(3)], lock_timeout=1.0)
        holder.dele(1)
        holder.quit()
        again = poplib.POP3("127.0.0.1", second.port, timeout=10)
        again.user("alice")
        again.pass_("alice pass")
        subjects = [
            next(line for line in again.retr(n)[1] if line.startswith(b"Subject:")) for n in (1, 2)
        ]
        assert again.stat()[0] == 2
        again.quit()
    finally:
        assert first.stop() == 0
        assert second.stop() == 0
    assert subjects == [b"Subject: message 2", b"Subject: message 3"]


def test_apop_secret_set_with_pysendmail_cf_logs_in(site):
    cf, spool = site
    setter = subprocess.run(
        [sys.executable, "-m", "pysendmail.cli.cftool", "passwd", "--apop", "alice", "-C", str(cf)],
        input="apop secret\n",
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )
    assert setter.returncode == 0, setter.stderr
    secrets_file = cf.parent / "pysendmail.apop"
    assert secrets_file.read_text() == "alice:apop secret\n"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    argv = ["-C", str(cf), "--foreground", "--listen", "127.0.0.1:0", "--mailbox-dir", str(spool)]
    daemon = Running(argv)
    try:
        assert any(f"APOP secrets: {secrets_file}" in line for line in daemon.banner)
        client = poplib.POP3("127.0.0.1", daemon.port, timeout=10)
        assert re.search(rb"<\d+\.\d+@mail\.example\.com>$", client.getwelcome())
        client.apop("alice", "apop secret")  # no TLS needed: the secret never crosses
        assert client.stat()[0] == 2
        client.quit()
    finally:
        assert daemon.stop() == 0


def test_bad_cf_exits_78_naming_the_file(tmp_path):
    cf = tmp_path / "broken.cf"
    cf.write_text("V10/Berkeley\nOOops this is not an option line\n\x01garbage\n")
    result = subprocess.run(
        [*POP3D, "-C", str(cf), "--foreground", "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert result.returncode == 78, result.stderr
    assert str(cf) in result.stderr


def test_pop3s_without_a_certificate_exits_64(oracle_dir, tmp_path):
    cf = tmp_path / "office.cf"
    shutil.copy(oracle_dir / "configs" / "office" / "office.cf", cf)
    result = subprocess.run(
        [*POP3D, "-C", str(cf), "--foreground", "--pop3s", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert result.returncode == 64
    assert "POP3S needs a TLS certificate" in result.stderr


def test_address_in_use_exits_71(oracle_dir, tmp_path):
    cf = tmp_path / "office.cf"
    shutil.copy(oracle_dir / "configs" / "office" / "office.cf", cf)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*POP3D, "-C", str(cf), "--foreground", "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=60,
        )
    assert result.returncode == 71
    assert "cannot listen" in result.stderr


def test_bad_listen_address_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [*POP3D, "--foreground", "--listen", "nonsense"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert result.returncode == 2  # click's usage error
    assert "expected ADDR:PORT" in result.stderr


def test_default_ports_as_root_and_not(monkeypatch):
    from pysendmail.config.model import DaemonSpec

    class FakeConfig:
        daemons = (DaemonSpec(name="MTA", port=25, addr="127.0.0.1"),)

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert cli.default_listeners(FakeConfig(), tls=True) == [
        Listener("127.0.0.1", 110),
        Listener("127.0.0.1", 995, implicit_tls=True),
    ]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.default_listeners(FakeConfig(), tls=False) == [Listener("127.0.0.1", 2110)]


def test_parse_address_forms():
    assert cli.parse_address("127.0.0.1:110") == Listener("127.0.0.1", 110)
    assert cli.parse_address("[::1]:995", implicit_tls=True) == Listener("::1", 995, True)
    assert cli.parse_address(":110") == Listener("0.0.0.0", 110)
