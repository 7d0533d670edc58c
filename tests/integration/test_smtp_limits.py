"""The daemon's limits over real sockets: the slow-downs for abusive clients (the waits
are recorded through the service's `pause` seam, never timed), MaxDaemonChildren's
disconnect at twice a limit, ConnectionRateThrottle, BadRcptThrottle from the cf, and
a `Family=inet6` daemon on [::1]."""

from __future__ import annotations

import socket
import threading

import pytest

from pysendmail.config.model import DaemonSpec, Overrides
from pysendmail.config.translate import translate
from pysendmail.daemons.server import session_settings
from tests.integration.smtp_support import running_smtp


def test_a_client_repeating_helo_and_noop_is_slowed_down_then_answered(oracle_dir, tmp_path):
    waits: list[float] = []
    with running_smtp(oracle_dir, tmp_path, pause=waits.append) as smtp:
        raw = smtp.raw()
        raw.reply()
        for number in range(4):
            assert raw.command(f"HELO h{number}.example.net").startswith("250 ")
        assert waits == [1, 2]
        for _ in range(20):
            assert raw.command("NOOP") == "250 2.0.0 OK\r\n"
        assert waits == [1, 2, 1]
        assert raw.command("QUIT").startswith("221 ")


def test_vrfy_waits_after_its_answer_is_written(oracle_dir, tmp_path):
    waits: list[float] = []
    in_last_wait = threading.Event()
    release = threading.Event()

    def pause(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:  # the wait after the seventh VRFY's answer
            in_last_wait.set()
            release.wait(30)

    with running_smtp(oracle_dir, tmp_path, pause=pause) as smtp:
        raw = smtp.raw()
        raw.reply()
        raw.command("EHLO client.example.net")
        for _ in range(6):
            assert raw.command("VRFY alice").startswith("250 2.1.5 ")
        assert waits == [1]
        # The answer arrives while the daemon is still waiting after it.
        assert raw.command("VRFY alice").startswith("250 2.1.5 ")
        assert in_last_wait.wait(30) and not release.is_set()
        release.set()
        assert raw.command("NOOP").startswith("250 ")
        assert waits == [1, 1, 1]


def test_with_max_daemon_children_a_helo_flood_is_disconnected(oracle_dir, tmp_path):
    waits: list[float] = []
    with running_smtp(
        oracle_dir,
        tmp_path,
        pause=waits.append,
        max_daemon_children=5,
        settings={"children_limited": True},
    ) as smtp:
        raw = smtp.raw()
        raw.reply()
        for number in range(5):
            assert raw.command(f"HELO h{number}.example.net").startswith("250 ")
        assert raw.command("HELO h5.example.net") == (
            "421 4.7.0 mail.example.com Too many bad commands; closing connection\r\n"
        )
        assert raw.rest() == b""
        assert waits == [1, 2, 4, 8]
        assert smtp.queued() == []


def test_connection_rate_throttle_delays_accepting_and_refuses_no_one(oracle_dir, tmp_path):
    waits: list[float] = []
    with running_smtp(oracle_dir, tmp_path, pause=waits.append, connection_rate_throttle=1) as smtp:
        greetings = []
        for _ in range(12):  # more than 2 a second, however slow this machine is
            raw = smtp.raw()
            greetings.append(raw.reply())
            raw.command("QUIT")
            raw.close()
        assert all(g.startswith("220 mail.example.com ESMTP") for g in greetings)
        assert waits and set(waits) == {1}


def test_bad_rcpt_throttle_and_max_noop_commands_come_from_the_cf(oracle_dir):
    options = {"BadRcptThrottle": "3", "MaxNOOPCommands": "7", "MaxDaemonChildren": "12"}
    cf = oracle_dir / "configs" / "office" / "office.cf"
    config = translate(cf, Overrides(options=options), hostname="mail.example.com")
    settings = session_settings(config, tls=False, auth=False)
    assert (settings.bad_rcpt_throttle, settings.bad_rcpt_throttle_delay) == (3, 1)
    assert settings.max_noop_commands == 7 and settings.children_limited
    plain = session_settings(translate(cf, hostname="mail.example.com"), tls=False, auth=False)
    assert (plain.bad_rcpt_throttle, plain.max_noop_commands, plain.children_limited) == (
        0,
        20,
        False,
    )


def test_bad_rcpt_throttle_slows_a_recipient_flood(oracle_dir, tmp_path):
    waits: list[float] = []
    with running_smtp(
        oracle_dir, tmp_path, pause=waits.append, settings={"bad_rcpt_throttle": 2}
    ) as smtp:
        raw = smtp.raw()
        raw.reply()
        raw.command("EHLO client.example.net")
        raw.command("MAIL FROM:<alice@example.com>")
        for _ in range(2):
            assert raw.command("RCPT TO:<nosuchuser>").startswith("550 5.1.1 ")
        assert waits == []
        assert raw.command("RCPT TO:<bob@example.com>").startswith("250 2.1.5 ")
        assert waits == [1]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_a_family_inet6_daemon_answers_on_ipv6_loopback(oracle_dir, tmp_path):
    spec = DaemonSpec(name="MTA-v6", port=0, addr="::1", family="inet6")
    with running_smtp(oracle_dir, tmp_path, daemons=(spec,)) as smtp:
        with socket.create_connection(("::1", smtp.port()), timeout=30) as sock:
            reader = sock.makefile("rb")
            greeting = reader.readline()
            assert greeting.startswith(b"220 mail.example.com ESMTP")
            sock.sendall(b"EHLO client.example.net\r\n")
            line = reader.readline()
            assert line.startswith(b"250-mail.example.com Hello ")
            assert b"::1" in line
            while line[3:4] == b"-":
                line = reader.readline()
            sock.sendall(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
            assert [reader.readline()[:3] for _ in range(3)] == [b"250", b"250", b"354"]
            sock.sendall(b"Subject: over IPv6\r\n\r\nhello\r\n.\r\n")
            assert reader.readline().startswith(b"250 2.0.0 ")
            sock.sendall(b"QUIT\r\n")
            reader.readline()
        (qid,) = smtp.queued()
        received = smtp.store.read(qid).headers[0].value
        assert received.startswith("from client.example.net ([IPv6:::1])")


def test_two_daemons_inet_and_inet6_serve_at_once(oracle_dir, tmp_path):
    if not _has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    specs = (
        DaemonSpec(name="MTA", port=0, addr="127.0.0.1"),
        DaemonSpec(name="MTA-v6", port=0, addr="::1", family="inet6"),
    )
    with running_smtp(oracle_dir, tmp_path, daemons=specs) as smtp:
        results = []

        def greet(host: str, port: int) -> None:
            with socket.create_connection((host, port), timeout=30) as sock:
                results.append(sock.recv(100)[:3])

        threads = [
            threading.Thread(target=greet, args=("127.0.0.1", smtp.port(0))),
            threading.Thread(target=greet, args=("::1", smtp.port(1))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [b"220", b"220"]
