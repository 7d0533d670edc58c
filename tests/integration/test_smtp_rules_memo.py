"""The daemon remembers the answers of the office cf's check rulesets (rules/memo.py), and
a SIGHUP reload with a changed access map gives the new answer, not a remembered one."""

from __future__ import annotations

import shutil
import signal
import smtplib
import subprocess
import sys
import time

from tests.conftest import subprocess_env
from tests.integration.test_smtp_signals import DAEMON, free_port, wait_for


def rcpt_reply(port: int, recipient: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.net")
        client.mail("alice@example.com")
        return client.rcpt(recipient)


def test_sighup_with_a_changed_access_map_gives_the_new_answer(oracle_dir, tmp_path):
    office = tmp_path / "office"
    shutil.copytree(oracle_dir / "configs" / "office", office)
    cf = office / "office.cf"
    cf.write_text(cf.read_text().replace(str(oracle_dir / "configs" / "office"), str(office)))
    port = free_port()
    queue = tmp_path / "mqueue"
    queue.mkdir()
    pid = tmp_path / "sendmail.pid"
    process = subprocess.Popen(
        [sys.executable, "-c", DAEMON, str(cf), str(port), str(queue), str(pid)],
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(port, pid, process)
        for _ in range(3):  # the same question, answered from the memo after the first
            assert rcpt_reply(port, "alice@mail.example.com")[0] == 250
        assert rcpt_reply(port, "baduser@mail.example.com") == (
            550,
            b"5.1.1 <baduser@mail.example.com>... Mailbox disabled",
        )
        with (office / "access").open("a") as access:
            access.write("To:alice@mail.example.com\tERROR:5.7.1:550 Refused since the reload\n")
        # The map was read at start: until the reload the old answer stands, as without
        # a memo.
        assert rcpt_reply(port, "alice@mail.example.com")[0] == 250
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while (reply := rcpt_reply(port, "alice@mail.example.com"))[0] == 250:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.05)
        assert reply == (550, b"5.7.1 <alice@mail.example.com>... Refused since the reload")
        assert rcpt_reply(port, "baduser@mail.example.com") == (
            550,
            b"5.1.1 <baduser@mail.example.com>... Mailbox disabled",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
