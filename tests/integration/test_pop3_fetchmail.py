"""fetchmail, a real POP3 client, fetching through pysendmail's POP3 daemon over STLS.

fetchmail hands each message to an MDA that appends it to a file in the test's folder,
so nothing leaves the machine; the server is on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.pop3_support import Pop3Fixture, message, running_pop3

FETCHMAIL = shutil.which("fetchmail")
pytestmark = pytest.mark.skipif(FETCHMAIL is None, reason="fetchmail is not installed")


def fetch(pop3: Pop3Fixture, folder: Path, *, keep: bool) -> subprocess.CompletedProcess:
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(pop3.ca.cert_pem.bytes())
    received = folder / "received.mbox"
    rcfile = folder / "fetchmailrc"
    rcfile.write_text(
        "set no syslog\n"
        f"poll 127.0.0.1 protocol pop3 port {pop3.port} uidl\n"
        '  user "alice" password "alice pass" is "alice" here\n'
        f'  sslproto tls1.2+ sslcertck sslcommonname localhost sslcertfile "{ca_file}"\n'
        f"  {'keep' if keep else 'nokeep'}\n"
        f"  mda \"sh -c 'cat; echo' >> '{received}'\"\n"
    )
    rcfile.chmod(0o600)
    return subprocess.run(
        # Its own pid file: as root fetchmail would use /var/run/fetchmail.pid, shared
        # with any other fetchmail (or test run) on the machine.
        [
            FETCHMAIL,
            "-f",
            str(rcfile),
            "--nodetach",
            "-v",
            "--idfile",
            str(folder / "ids"),
            "--pidfile",
            str(folder / "fetchmail.pid"),
        ],
        env=dict(os.environ, HOME=str(folder)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def subjects(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("Subject:")]


@pytest.mark.parametrize("mailbox_format", ["mbox", "maildir"])
def test_fetchmail_fetches_over_stls_keeps_by_uidl_then_deletes(tmp_path, mailbox_format):
    folder = tmp_path / "fetchmail"
    folder.mkdir()
    with running_pop3(tmp_path, mailbox_format, tls=True, allow_plaintext_auth=False) as pop3:
        for number in (1, 2, 3):
            pop3.deliver("alice", message(number))

        first = fetch(pop3, folder, keep=True)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "STLS" in first.stdout and "PASS" in first.stdout
        assert subjects(folder / "received.mbox") == [f"Subject: message {n}" for n in (1, 2, 3)]
        assert ".a line starting with a dot" in (folder / "received.mbox").read_text()

        # One more delivery: with its UIDL list, fetchmail takes only the new message.
        pop3.deliver("alice", message(4))
        second = fetch(pop3, folder, keep=False)
        assert second.returncode == 0, second.stdout + second.stderr
        assert subjects(folder / "received.mbox") == [f"Subject: message {n}" for n in (1, 2, 3, 4)]

        client = pop3.client()
        client.stls(pop3.client_context())
        client.user("alice")
        client.pass_("alice pass")
        left = [client.top(n, 0)[1] for n in range(1, client.stat()[0] + 1)]
        client.quit()
        # nokeep deleted what that run fetched, and only that
        assert [b"Subject: message 4" in lines for lines in left] == [False] * 3
