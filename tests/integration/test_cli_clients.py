"""What real mail clients send to /usr/sbin/sendmail, each with the argv it really uses
(the table of issue 5), run as subprocesses against a private copy of the fixture's
office configuration. The clients themselves are not run: their argv and their kind of
input are. The configuration and queue come first on the command line (`-C cf
-O QueueDirectory=... -O DeliveryMode=queue`, as an administrator's settings would),
the client's own argv after them, unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES_SRC, PLACEHOLDER, command, subprocess_env
from tests.integration import cli_support

# Every test here needs the records' users (alice, bob, mallory).
fixture_users = cli_support.fixture_users
pytestmark = pytest.mark.usefixtures("fixture_users")


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the office configuration (its local mailer writes to
    mailboxes/ inside the copy), with @ORACLE@ filled in."""
    root = tmp_path_factory.mktemp("clients") / "sendmail-8.17"
    shutil.copytree(FIXTURES_SRC / "configs", root / "configs", symlinks=True)
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode | 0o200)
            data = path.read_bytes()
            if PLACEHOLDER in data:
                path.write_bytes(data.replace(PLACEHOLDER, str(root).encode()))
    (root / "configs" / "office" / "mailboxes").mkdir()
    return root / "configs" / "office"


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    path = tmp_path / "mqueue"
    path.mkdir(mode=0o700)
    return path


def send(office: Path, queue: Path, client_argv: list[str], message: bytes, *, mode="queue"):
    argv = ["-C", str(office / "office.cf"), "-O", f"QueueDirectory={queue}"]
    argv += ["-O", f"DeliveryMode={mode}", *client_argv]
    env = subprocess_env(XDG_CACHE_HOME=str(queue.parent / "cache"), TZ="UTC")
    return subprocess.run(
        [*command("/usr/sbin/sendmail"), *argv],
        input=message,
        capture_output=True,
        env=env,
        timeout=120,
    )


def queued(queue: Path) -> list[tuple[str, bytes]]:
    """(qf text, df bytes) of every message in the queue."""
    return [
        (qf.read_text(errors="surrogateescape"), (queue / f"df{qf.name[2:]}").read_bytes())
        for qf in sorted(queue.glob("qf*"))
    ]


def recipients(qf: str) -> list[str]:
    return [line.split(":", 1)[1] for line in qf.splitlines() if line.startswith("R")]


def flags(qf: str) -> str:
    return next(line[1:] for line in qf.splitlines() if line.startswith("F"))


def test_mailutils_mail(office, queue):
    message = b"To: bob@example.com\nSubject: from mail\n\nhello\n.\nstill body\n"
    result = send(office, queue, ["-oi", "-f", "root@mail.example.com", "-t"], message)
    assert result.returncode == 0, result.stdout
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["bob@example.com"]
    assert "\nSroot@mail.example.com\n" in qf
    assert df == b"hello\n.\nstill body\n"  # -oi: the lone dot is text


def test_bsd_mailx_relies_on_t_to_strip_bcc(office, queue):
    message = b"To: alice\nBcc: bob\nSubject: mailx\n\nbody\n"
    result = send(office, queue, ["-i", "-t"], message)
    assert result.returncode == 0, result.stdout
    [(qf, _)] = queued(queue)
    assert recipients(qf) == ["alice", "bob"]
    assert "H??Bcc: bob\n" in qf and "b" in flags(qf)  # kept, marked for removal


def test_mutt_bcc_on_the_command_line_after_double_dash(office, queue):
    message = b"From: alice@example.com\nTo: bob@example.com\nSubject: mutt\n\nbody\n"
    argv = ["-oem", "-oi", "-f", "alice@example.com", "--", "bob@example.com", "mallory"]
    result = send(office, queue, argv, message)
    assert result.returncode == 0, result.stdout
    [(qf, _)] = queued(queue)
    assert recipients(qf) == ["bob@example.com", "mallory"]
    assert "\nSalice@example.com\n" in qf


@pytest.mark.parametrize("argv", [["-i", "alice", "bob"], ["-f", "alice", "-i", "alice", "bob"]])
def test_git_send_email(office, queue, argv):
    message = (
        b"From: Alice <alice@example.com>\nTo: bob@example.com\nSubject: [PATCH] x\n"
        b"Message-Id: <patch-1@example.com>\nDate: Mon, 02 Jan 2006 15:04:05 +0000\n\n"
        b"---\n.\n-- \n2.39.2\n"
    )
    result = send(office, queue, argv, message)
    assert result.returncode == 0, result.stdout
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["alice", "bob"]
    assert df.endswith(b".\n-- \n2.39.2\n")
    assert "Message-Id: <patch-1@example.com>" in qf and "H?M?Message-Id" not in qf


def test_php_mail_headers_in_crlf_body_in_lf(office, queue):
    message = (
        b"To: bob@example.com\r\nSubject: php\r\nFrom: web@example.com\r\n"
        b"MIME-Version: 1.0\r\n\r\nline one\nline two\n"
    )
    result = send(office, queue, ["-t", "-i", "-fweb@example.com"], message)
    assert result.returncode == 0, result.stdout
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["bob@example.com"]
    assert "H??MIME-Version: 1.0\n" in qf and "\r" not in qf
    assert df == b"line one\nline two\n"


def test_cron(office, queue):
    message = b"Subject: Cron <root@mail> run-parts /etc/cron.daily\n\nall done\n"
    argv = ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]
    result = send(office, queue, argv, message)
    assert result.returncode == 0, result.stdout
    [(qf, _)] = queued(queue)
    # root is an alias of the office config: it expands at submission, as in sendmail.
    assert recipients(qf) == ["alice"]
    assert "H?F?From: CronDaemon <root>" in qf and "H?x?Full-Name: CronDaemon" in qf
    assert "\nB7BIT\n" in qf  # 8BITMIME asked, the body is 7-bit: recorded as sendmail does


def test_anacron_without_i_a_lone_dot_ends_the_message(office, queue):
    boxes = office / "mailboxes"
    for old in boxes.iterdir():
        old.unlink()
    message = b"Subject: Anacron job 'cron.daily'\n\noutput\n.\nnot part of it\n"
    result = send(office, queue, ["-FAnacron", "-odi", "bob"], message, mode="background")
    assert result.returncode == 0, result.stdout
    assert queued(queue) == []  # -odi: delivered before sendmail exited
    mailbox = (boxes / "bob").read_text()
    assert "output\n=== end\n" in mailbox and "not part of it" not in mailbox
    assert "From: Anacron <root>" in mailbox


@pytest.mark.parametrize("argv", [["-t"], ["-oi", "-t"]])
def test_logwatch_mdadm_unattended_upgrades(office, queue, argv):
    message = b"To: root\nSubject: report\n\nline\n"
    result = send(office, queue, argv, message)
    assert result.returncode == 0, result.stdout
    [(qf, _)] = queued(queue)
    assert recipients(qf) == ["alice"]
