"""`run_daemon` in a child process with the office cf: SIGHUP reload and SIGTERM drain
while clients are sending, the pid file, and nothing acknowledged ever lost."""

from __future__ import annotations

import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pysendmail.queue.store import QueueStore
from tests.conftest import subprocess_env

DAEMON = """
import sys
from pysendmail.config.model import Overrides
from pysendmail.config.translate import translate
from pysendmail.daemons.smtpd import run_daemon
cf, port, queue, pid = sys.argv[1:5]
options = {
    "DaemonPortOptions": f"Name=MTA, Port={port}, Addr=127.0.0.1",
    "QueueDirectory": queue,
    "PidFile": pid,
    "DeliveryMode": "queueonly",  # what is queued stays there for the test to count
}
config = translate(cf, Overrides(options=options), hostname="mail.example.com")
sys.exit(run_daemon(config, True, rebuild=lambda: translate(
    cf, Overrides(options={**options, "MaxMessageSize": "5000"}), hostname="mail.example.com")))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int, pid: Path, process: subprocess.Popen) -> None:
    """Until the daemon answers on its port and has written its pid file."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            if pid.exists() and pid.read_text().endswith("\n"):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("daemon did not start")


@pytest.fixture
def daemon(oracle_dir, tmp_path):
    port = free_port()
    queue = tmp_path / "mqueue"
    queue.mkdir()
    pid = tmp_path / "sendmail.pid"
    cf = oracle_dir / "configs" / "office" / "office.cf"
    process = subprocess.Popen(
        [sys.executable, "-c", DAEMON, str(cf), str(port), str(queue), str(pid)],
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(port, pid, process)
        yield port, queue, pid, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def size_offered(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.net")
        return client.esmtp_features["size"]


def test_sighup_and_sigterm_under_load(daemon):
    port, queue, pid, process = daemon
    assert pid.read_text().split("\n")[0] == str(process.pid)
    assert size_offered(port) == "100000"
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def sender(number: int) -> None:
        count = 0
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                    client.ehlo("client.example.net")
                    body = f"Subject: load {number}-{count}\r\n\r\nbody\r\n".encode()
                    client.sendmail("alice@example.com", ["postmaster"], body)
                    acknowledged.append(f"{number}-{count}")
            except (ConnectionError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError):
                return  # the daemon is draining: the connection is refused or closed
            except smtplib.SMTPResponseException as error:
                if error.smtp_code != 421:
                    failures.append(error)
                return  # told 421 "shutting down": the message was not acknowledged
            except BaseException as error:
                failures.append(error)
                return
            count += 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while size_offered(port) != "5000":
        assert time.monotonic() < deadline, "SIGHUP did not reload"
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    store = QueueStore(queue)
    subjects = set()
    for qid in store.queue_ids():
        subject = next(h for h in store.read(qid).headers if h.name == "Subject")
        subjects.add(subject.value.removeprefix("load "))
    assert set(acknowledged) <= subjects
    assert len(acknowledged) > 8
    assert not Path(pid).exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_worker_processes_accept_and_stop_with_their_parent(daemon):
    port, queue, _pid_file, process = daemon
    for number in range(4):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("client.example.net")
            client.sendmail(
                "alice@example.com", ["postmaster"], b"Subject: %d\r\n\r\nx\r\n" % number
            )
    # A queue ID ends with the pid of the process that queued the message.
    writers = {int(qid[8:]) for qid in QueueStore(queue).queue_ids()}
    assert process.pid not in writers
    assert all(_parent_of(writer) == process.pid for writer in writers)
    process.kill()  # no SIGTERM to pass on: the workers notice the parent is gone
    process.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{writer}").exists() for writer in writers):
        assert time.monotonic() < deadline, "workers outlived their parent"
        time.sleep(0.1)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
