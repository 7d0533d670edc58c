"""-bh / hoststat, -bH / purgestat and -bP, run as this checkout's `sendmail` on the
office cf, over host status that real SMTP deliveries on 127.0.0.1 wrote, and over
files in sendmail's own format."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from pysendmail.delivery import hoststatus
from pysendmail.delivery.remote import deliver_remote
from tests.conftest import command, subprocess_env
from tests.integration import test_delivery_remote as remote
from tests.integration.test_delivery_remote import MESSAGE, esmtp, settings

# The real DNS server and SMTP server of the remote delivery tests.
dns_server = remote.dns_server
recorder = remote.recorder


def sendmail(oracle_dir: Path, tmp_path: Path, *args: str, status_dir: str | None = None):
    queue = tmp_path / "mqueue"
    queue.mkdir(exist_ok=True)
    argv = ["-C", str(oracle_dir / "configs" / "office" / "office.cf")]
    argv += ["-O", f"QueueDirectory={queue}"]
    if status_dir is not None:
        argv += ["-O", f"HostStatusDirectory={status_dir}"]
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    return subprocess.run(
        [*command("sendmail"), *argv, *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_deliveries_leave_host_status_that_bh_lists(
    dns_server, recorder, oracle_dir: Path, tmp_path: Path
) -> None:
    _, port = recorder
    status_dir = tmp_path / "hoststat"
    status_dir.mkdir()
    kept = settings(dns_server, host_status_dir=str(status_dir))
    [sent] = deliver_remote(MESSAGE, ["bob@dest.test"], "dest.test", kept, mailer=esmtp(port))
    assert sent.is_success
    # dead.fallback.test (127.0.0.2) refuses the connection, mx.dest.test then takes it.
    deliver_remote(MESSAGE, ["carol@fallback.test"], "fallback.test", kept, mailer=esmtp(port))
    assert (status_dir / "test." / "dest." / "mx").read_text().startswith("V0\nE0\nH0\nS0\n")

    listed = sendmail(oracle_dir, tmp_path, "-bh", status_dir=str(status_dir))
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0] == hoststatus.HEADING.rstrip("\n")
    by_host = {line[1:40].rstrip(): line for line in lines[1:]}
    assert sorted(by_host) == ["dead.fallback.test", "mx.dest.test"]
    assert by_host["mx.dest.test"].endswith(" 250 2.0.0 Ok: queued as T")  # 25 wide
    assert by_host["dead.fallback.test"].endswith(" Deferred: Connection refu")  # 25 wide
    assert by_host["mx.dest.test"][41:53].lstrip().count(":") == 2  # HH:MM:SS

    verbose = sendmail(oracle_dir, tmp_path, "-bh", "-v", status_dir=str(status_dir))
    assert "250 2.0.0 Ok: queued as TEST1" in verbose.stdout


def test_hoststat_reads_sendmails_files_and_marks_locked_ones(
    oracle_dir: Path, tmp_path: Path
) -> None:
    status_dir = tmp_path / "hoststat"
    (status_dir / "net." / "example.").mkdir(parents=True)
    (status_dir / "4." / "3." / "2.").mkdir(parents=True)
    old = int(time.time()) - (2 * 86400 + 3 * 3600)
    (status_dir / "net." / "example." / "mx1").write_text(f"V0\nE0\nH0\nS69\nD5.0.0\nU{old}\n.\n")
    (status_dir / "4." / "3." / "2." / "1").write_text(f"V0\nE111\nH0\nS75\nU{old}\n.\n")
    (status_dir / ".hidden").write_text("not a host\n")
    with open(status_dir / "net." / "example." / "mx1") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = sendmail(oracle_dir, tmp_path, "-bh", status_dir=str(status_dir))
    lines = result.stdout.splitlines()
    # 2 days 3 hours ago (the seconds go on while the test runs); errno 111, 15 wide.
    assert re.fullmatch(r" 1\.2\.3\.4 {33}  2\+03:0\d:\d\d Deferred: Connection refu", lines[1])
    assert lines[2].startswith("*mx1.example.net ")
    assert lines[2].endswith(" 5.0.0 Service unavailable")
    assert len(lines) == 3


def test_hoststat_argv0_and_missing_directory(oracle_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    cf = str(oracle_dir / "configs" / "office" / "office.cf")
    hoststat = subprocess.run(
        [*command("hoststat"), "-C", cf, "-O", f"HostStatusDirectory={missing}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert hoststat.stdout == (
        f"Warning: Cannot use HostStatusDirectory = {missing}: No such file or directory\n"
    )
    assert hoststat.returncode == 0
    # With the option empty no host status is kept: sendmail says nothing.
    unset = sendmail(oracle_dir, tmp_path, "-bh", status_dir="")
    assert (unset.stdout, unset.returncode) == ("", 0)


def test_purgestat_removes_only_expired_status(oracle_dir: Path, tmp_path: Path) -> None:
    status_dir = tmp_path / "hoststat"
    assert not hoststatus.store(str(status_dir), "old.example.org", hoststatus.HostStatus())
    status_dir.mkdir()  # sendmail writes status only under a directory that exists
    for host in ("old.example.org", "new.example.org", "gone.example.net"):
        assert hoststatus.store(str(status_dir), host, hoststatus.HostStatus())
    long_ago = time.time() - 7200
    for host in ("org./example./old", "net./example./gone"):
        os.utime(status_dir / host, (long_ago, long_ago))
    os.utime(status_dir / "net.", (long_ago, long_ago))

    result = sendmail(
        oracle_dir, tmp_path, "-bH", "-O", "Timeout.hoststatus=1h", status_dir=str(status_dir)
    )
    assert result.returncode == 0
    assert not (status_dir / "org." / "example." / "old").exists()
    assert not (status_dir / "net." / "example." / "gone").exists()
    assert (status_dir / "org." / "example." / "new").exists()
    # net./example. was emptied just now, so it is young: it waits for the next purge.
    assert (status_dir / "net." / "example.").is_dir()
    listed = sendmail(oracle_dir, tmp_path, "-bh", status_dir=str(status_dir))
    assert [line[1:40].rstrip() for line in listed.stdout.splitlines()[1:]] == ["new.example.org"]


def test_bP_counts_the_queue_entries(oracle_dir: Path, tmp_path: Path) -> None:
    queue = tmp_path / "mqueue"
    empty = sendmail(oracle_dir, tmp_path, "-bP")
    assert (empty.stdout, empty.returncode) == (f"{queue} is empty\n", 0)
    for qid in ("6AQBB1RV009525", "6AQBB1qM009526"):
        (queue / f"qf{qid}").write_text("V8\n.\n")
        (queue / f"df{qid}").write_text("body\n")
    counted = sendmail(oracle_dir, tmp_path, "-bP")
    assert counted.stdout == f"{queue}: entries=2\n\t\tTotal requests: 2\n"


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("mail.Example.COM.", "com./example./mail"),
        ("[192.0.2.7]", "7./2./0./192"),
        ("localhost", "localhost"),
        ("a/b.example", "example./a:b"),
    ],
)
def test_status_path_follows_sendmails_layout(host: str, path: str) -> None:
    assert hoststatus.status_path("/hs", host) == f"/hs/{path}"
    assert hoststatus.host_of(f"/hs/{path}", "/hs") == path_host(path)


def path_host(path: str) -> str:
    return ".".join(part.removesuffix(".") for part in reversed(path.split("/")))


@pytest.mark.parametrize("host", ["", ".example", "a..b", "[not-an-address]"])
def test_names_sendmail_would_not_store(host: str) -> None:
    assert hoststatus.status_path("/hs", host) is None
