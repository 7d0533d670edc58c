"""The real mail clients of issue 5's table, run with pysendmail as their sendmail.

Each client is pointed at a wrapper script through its own setting for the sendmail
program (mutt's `sendmail`, PHP's `sendmail_path`, git send-email's `--sendmail-cmd`,
mailutils' `sendmail` variable): /usr/sbin/sendmail is never touched. The wrapper records
the argv the client used and runs pysendmail with the administrator's settings (a private
copy of the office configuration and queue) in front of it. The tests check both: that
each client used the argv the table names, and what reached the queue. `.ci/run`
installs the clients from Debian's packages; a client that is absent is skipped.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, subprocess_env
from tests.integration import cli_support
from tests.integration.test_cli_clients import office, queue, queued, recipients

__all__ = ["office", "queue"]  # fixtures shared with test_cli_clients

fixture_users = cli_support.fixture_users
pytestmark = pytest.mark.usefixtures("fixture_users")

BOB = "bob@example.com"
ENTRY = "import sys; from pysendmail.cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture
def wrapper(office: Path, queue: Path, tmp_path: Path) -> Path:
    """An executable that logs its arguments and hands them to pysendmail."""
    script = tmp_path / "sendmail"
    admin = ["-C", str(office / "office.cf"), "-O", f"QueueDirectory={queue}"]
    admin += ["-O", "DeliveryMode=queue"]
    run = shlex.join([sys.executable, "-c", ENTRY, "/usr/sbin/sendmail", *admin])
    script.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" > {shlex.quote(str(tmp_path / 'argv.log'))}\n"
        f'exec {run} "$@"\n'
    )
    script.chmod(0o755)
    return script


def client_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return subprocess_env(
        HOME=str(home),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PYTHONPATH=str(REPO_ROOT),
        TZ="UTC",
        LC_ALL="C.UTF-8",
    )


def argv_used(tmp_path: Path) -> list[str]:
    return (tmp_path / "argv.log").read_text().splitlines()


def needs(program: str):
    return pytest.mark.skipif(shutil.which(program) is None, reason=f"{program} is not installed")


@needs("mutt")
def test_mutt_hands_bcc_recipients_on_the_command_line(wrapper, queue, tmp_path):
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(
        f'set sendmail="{wrapper} -oem -oi"\nset from=alice@example.com\nset use_from=yes\n'
        'set envelope_from=yes\nset copy=no\nset record=""\n'
    )
    result = subprocess.run(
        [
            "mutt",
            "-n",
            "-F",
            str(muttrc),
            "-s",
            "from mutt",
            "-b",
            "mallory@example.com",
            "--",
            BOB,
        ],
        input=b"sent by mutt\n",
        env=client_env(tmp_path),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    used = argv_used(tmp_path)
    assert used[:4] == ["-oem", "-oi", "-f", "alice@example.com"]
    assert used[4:] == ["--", "bob@example.com", "mallory@example.com"]
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["bob@example.com", "mallory@example.com"]
    assert "Bcc:" not in qf  # mutt keeps Bcc off the message itself
    assert "Subject: from mutt" in qf and df == b"sent by mutt\n"


@needs("php")
def test_php_mail_uses_sendmail_path(wrapper, queue, tmp_path):
    code = (
        'exit(mail("bob@example.com", "from php", "line one\\nline two\\n",'
        ' "From: web@example.com") ? 0 : 1);'
    )
    result = subprocess.run(
        ["php", "-n", "-d", f"sendmail_path={wrapper} -t -i", "-r", code],
        env=client_env(tmp_path),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert argv_used(tmp_path) == ["-t", "-i"]
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["bob@example.com"]
    assert "H??Subject: from php\n" in qf and "\r" not in qf  # CRLF headers read as lines
    assert df.startswith(b"line one\nline two\n")  # PHP ends the body with a newline of its own


@needs("git")
@pytest.mark.parametrize("envelope", [False, True], ids=["plain", "envelope-sender"])
def test_git_send_email(wrapper, queue, tmp_path, envelope):
    probe = subprocess.run(["git", "send-email", "-h"], capture_output=True, text=True)
    if "not a git command" in probe.stderr or "BUG" in probe.stderr:
        pytest.skip("git send-email (Debian's git-email, libmailtools-perl) is not installed")
    env = client_env(tmp_path)
    repo = tmp_path / "repo"
    for argv in (
        ["git", "init", "-q", str(repo)],
        ["git", "-C", str(repo), "config", "user.name", "Alice"],
        ["git", "-C", str(repo), "config", "user.email", "alice@example.com"],
    ):
        subprocess.run(argv, check=True, env=env)
    (repo / "file").write_text("content\n.\n")
    subprocess.run(["git", "-C", str(repo), "add", "file"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "a change"], check=True, env=env)
    patches = tmp_path / "patches"
    subprocess.run(
        ["git", "-C", str(repo), "format-patch", "-q", "-1", "-o", str(patches)],
        check=True,
        env=env,
    )
    argv = ["git", "-C", str(repo), "send-email", f"--sendmail-cmd={wrapper}"]
    argv += ["--to=bob@example.com", "--from=Alice <alice@example.com>", "--confirm=never"]
    argv += ["--suppress-cc=all", "--quiet", "--no-validate"]
    if envelope:
        argv.append("--envelope-sender=alice@example.com")
    result = subprocess.run(
        [*argv, *map(str, sorted(patches.iterdir()))], env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    expected = ["-i", "bob@example.com"]
    assert argv_used(tmp_path) == (["-f", "alice@example.com", *expected] if envelope else expected)
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["bob@example.com"]
    assert "Subject: [PATCH] a change" in qf
    assert b"\n+.\n" in df  # a line holding a dot in the patch is text: -i


@needs("mail")
def test_mailutils_mail(wrapper, queue, tmp_path):
    version = subprocess.run(["mail", "--version"], capture_output=True, text=True)
    if "mailutils" not in version.stdout.lower():
        pytest.skip("the mail command here is not GNU mailutils'")
    result = subprocess.run(
        ["mail", "-E", f"set sendmail=sendmail://{wrapper}", "-s", "from mail", BOB],
        input=b"sent by mail\n.\nstill the body\n",
        env=client_env(tmp_path),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    used = argv_used(tmp_path)
    assert used[0] == "-oi" and used[1] == "-f" and used[3] == "-t"
    [(qf, df)] = queued(queue)
    assert recipients(qf) == ["<bob@example.com>"]  # as mail wrote it in To:
    assert df.endswith(b"sent by mail\n.\nstill the body\n")  # -oi: the lone dot is text
    # mail runs sendmail with its standard output closed: pysendmail opens /dev/null there
