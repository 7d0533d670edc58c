"""delivery/hoststatus.py without a daemon: sendmail's host status file format, the -bh
columns and the walk over a directory tree (tmp_path)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pysendmail.delivery import hoststatus
from pysendmail.delivery.hoststatus import HostStatus


def test_format_is_sendmails_and_reads_back() -> None:
    status = HostStatus(errno.ECONNREFUSED, 0, 75, "4.4.1", None, 1795691461)
    text = hoststatus.format_status(status)
    assert text == "V0\nE111\nH0\nS75\nD4.4.1\nU1795691461\n.\n"
    assert hoststatus.parse_status(text) == status


def test_long_or_multiline_replies_are_stored_on_one_line_of_80() -> None:
    text = hoststatus.format_status(HostStatus(reply="550 5.1.1 " + "x" * 100 + "\nmore"))
    [reply_line] = [line for line in text.splitlines() if line.startswith("R")]
    assert len(reply_line) == 81 and "\n" not in reply_line


@pytest.mark.parametrize("text", ["V1\nE0\n.\n", "V0\nZ1\n.\n", "V0\nEnot-a-number\n.\n", ""])
def test_what_sendmail_could_not_read_is_refused(text: str) -> None:
    assert hoststatus.parse_status(text) is None


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "00:00:00"),
        (59, "00:00:59"),
        (3661, "01:01:01"),
        (90061, "1+01:01:01"),
        (-5, "00:00:00"),
    ],
)
def test_interval_is_sendmails_brief_form(seconds: int, shown: str) -> None:
    assert hoststatus.interval(seconds) == shown


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (HostStatus(reply="250 2.0.0 Ok: queued as ABC123DEF"), "250 2.0.0 Ok: queued as A"),
        (HostStatus(errno=errno.ETIMEDOUT, exit_status=75), "Deferred: Connection time"),
        (HostStatus(exit_status=68), "5.1.2 Host unknown"),
        (HostStatus(exit_status=99), "Unknown mailer error 99"),
        (HostStatus(), "OK"),
        (HostStatus(errno=errno.ECONNRESET), "OK: Connection reset by p"),
    ],
)
def test_results_column(status: HostStatus, shown: str) -> None:
    assert hoststatus.result_text(status, 25) == shown


def test_walk_finds_hosts_below_domain_directories(tmp_path: Path) -> None:
    for host in ("mx.example.org", "[192.0.2.1]", "localhost"):
        assert hoststatus.store(str(tmp_path), host, HostStatus(last_use=1))
    (tmp_path / ".lock").write_text("")
    found = sorted(host for _, host in hoststatus.walk(str(tmp_path)))
    assert found == ["192.0.2.1", "localhost", "mx.example.org"]
