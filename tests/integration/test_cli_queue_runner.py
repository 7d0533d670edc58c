"""`sendmail -q<time>` without -bd: a persistent queue runner that detaches, keeps its
pid in PidFile, runs the queue at that interval and stops on SIGTERM; run as this
checkout's `sendmail` on the office cf (its local mailer appends to mailboxes/USER)."""

from __future__ import annotations

import os
import shutil
import signal
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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of someone else would still answer signal 0; it has no status.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


@pytest.fixture
def boxes(oracle_dir: Path) -> Iterator[Path]:
    path = oracle_dir / "configs" / "office" / "mailboxes"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_q_interval_detaches_delivers_and_stops_on_sigterm(
    oracle_dir: Path, tmp_path: Path, boxes: Path
) -> None:
    queue = tmp_path / "mqueue"
    queue.mkdir()
    pid_file = tmp_path / "sendmail.pid"
    base = ["-C", str(oracle_dir / "configs" / "office" / "office.cf")]
    base += ["-O", f"QueueDirectory={queue}", "-O", f"PidFile={pid_file}"]
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")

    def sendmail(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command("sendmail"), *base, *args],
            input=stdin,
            capture_output=True,
            env=env,
            timeout=60,
        )

    # The caller gets its exit status at once; the runner lives on, detached.
    started = sendmail("-q1s")
    assert (started.returncode, started.stdout, started.stderr) == (0, b"", b"")
    # Written in place (as sendmail writes it): wait for both of its lines.
    wait_for(lambda: pid_file.exists() and pid_file.read_text().count("\n") == 2, "the pid")
    pid = int(pid_file.read_text().split("\n")[0])
    assert pid_file.read_text().split("\n")[1].endswith("-q1s")
    try:
        assert alive(pid)
        assert os.getsid(pid) != os.getsid(0)  # a session of its own: no terminal to lose
        queued = sendmail("-odq", "alice", stdin=b"Subject: later\n\nqueued, then run\n")
        assert queued.returncode == 0
        wait_for(lambda: (boxes / "alice").exists(), "the runner to deliver")
        assert "queued, then run" in (boxes / "alice").read_text()
        wait_for(lambda: not any(queue.glob("qf*")), "the queue to empty")
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), "the runner to stop")
    assert not pid_file.exists()


def test_qf_keeps_the_runner_in_the_foreground(oracle_dir: Path, tmp_path: Path) -> None:
    queue = tmp_path / "mqueue"
    queue.mkdir()
    argv = ["-C", str(oracle_dir / "configs" / "office" / "office.cf")]
    argv += ["-O", f"QueueDirectory={queue}", "-O", f"PidFile={tmp_path / 'pid'}", "-qf1s"]
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    runner = subprocess.Popen([*command("sendmail"), *argv], env=env)
    try:
        time.sleep(1.5)  # long enough for a detaching runner's parent to have exited
        assert runner.poll() is None
        assert not (tmp_path / "pid").exists()
    finally:
        runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 0
