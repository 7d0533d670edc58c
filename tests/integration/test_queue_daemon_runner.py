"""`sendmail -bD -q1s`: the daemon runs the queue at that interval through a child
process of its own, which delivers what is queued, and which goes when the daemon goes:
stopped with it on SIGTERM, and ending by itself when the daemon is killed. Run as this
checkout's `sendmail` on the office cf (its local mailer appends to mailboxes/USER),
listening on a port of 127.0.0.1 that the OS chose."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import command, subprocess_env
from tests.integration import cli_support

fixture_users = cli_support.fixture_users
pytestmark = pytest.mark.usefixtures("fixture_users")


def wait_for(condition, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.fixture
def boxes(oracle_dir: Path) -> Iterator[Path]:
    path = oracle_dir / "configs" / "office" / "mailboxes"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(oracle_dir: Path, tmp_path: Path, queue: Path) -> subprocess.Popen:
    base = ["-C", str(oracle_dir / "configs" / "office" / "office.cf")]
    base += ["-O", f"QueueDirectory={queue}", "-O", f"PidFile={tmp_path / 'pid'}"]
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    queued = subprocess.run(
        [*command("sendmail"), *base, "-odq", "alice"],
        input=b"Subject: for the daemon's runner\n\nqueued before the daemon\n",
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert queued.returncode == 0, queued.stderr
    port = ["-O", f"DaemonPortOptions=Name=MTA, Addr=127.0.0.1, Port={_free_port()}"]
    daemon = subprocess.Popen(
        [*command("sendmail"), *base, *port, "-bD", "-q1s"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return daemon


def test_the_daemons_runner_delivers_and_stops_with_the_daemon(oracle_dir, tmp_path, boxes):
    queue = tmp_path / "mqueue"
    queue.mkdir()
    daemon = _start(oracle_dir, tmp_path, queue)
    try:
        wait_for(lambda: (boxes / "alice").exists(), "the daemon's runner to deliver")
        assert "queued before the daemon" in (boxes / "alice").read_text()
        wait_for(lambda: not any(queue.glob("qf*")), "the queue to empty")
        runners = children(daemon.pid)
        assert runners and all(alive(pid) for pid in runners)
    finally:
        daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0
    wait_for(lambda: not any(alive(pid) for pid in runners), "the runner to stop")


def test_the_runner_ends_by_itself_when_the_daemon_is_killed(oracle_dir, tmp_path, boxes):
    queue = tmp_path / "mqueue"
    queue.mkdir()
    daemon = _start(oracle_dir, tmp_path, queue)
    try:
        wait_for(lambda: (boxes / "alice").exists(), "the daemon's runner to deliver")
        runners = children(daemon.pid)
        assert runners
    finally:
        daemon.kill()
        daemon.wait(timeout=60)
    wait_for(lambda: not any(alive(pid) for pid in runners), "the orphaned runner to end", 20)
