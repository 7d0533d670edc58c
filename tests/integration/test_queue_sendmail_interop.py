"""The real sendmail 8.17 reads the queue files pysendmail writes: its `-bp` listing of our
queue is our listing, and its `-q` run delivers our message through the office config's
local mailer.

sendmail comes from Debian's `sendmail-bin` package, unpacked (never installed: nothing
touches /usr/sbin/sendmail). It runs in its own network and UTS namespaces (`unshare -n
-u`): no packet leaves, and the host name it sees, mail.example.com as in the fixtures,
is set inside that namespace only, never on the machine.
"""

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import MACRO_CHAR, Header
from pysendmail.queue import listing
from pysendmail.queue.store import QueueStore

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(tempfile.gettempdir()) / "pysendmail-sendmail-bin"


def _sendmail_binary() -> Path | None:
    for candidate in (os.environ.get("PYSENDMAIL_REAL_SENDMAIL"), "/usr/libexec/sendmail/sendmail"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    unpacked = CACHE / "root" / "usr" / "libexec" / "sendmail" / "sendmail"
    if unpacked.exists():
        return unpacked
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        return None
    CACHE.mkdir(exist_ok=True)
    try:
        subprocess.run(
            ["apt-get", "download", "sendmail-bin"], cwd=CACHE, capture_output=True, timeout=120
        )
        debs = list(CACHE.glob("sendmail-bin_*.deb"))
        if not debs:
            return None
        subprocess.run(["dpkg", "-x", str(debs[0]), str(CACHE / "root")], check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return unpacked if unpacked.exists() else None


def _path_is_safe(path: Path) -> bool:
    """sendmail refuses config files below a world-writable directory."""
    return all(not part.stat().st_mode & stat.S_IWOTH for part in [path, *path.parents])


@pytest.fixture
def sendmail_env(oracle_dir):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) to run sendmail in its own namespaces")
    binary = _sendmail_binary()
    if binary is None:
        pytest.skip("Debian's sendmail-bin package could not be fetched and unpacked")
    if subprocess.run(["unshare", "-n", "-u", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create network/UTS namespaces here")
    # sendmail refuses files below a world-writable directory: a clone under /tmp (as in
    # CI) uses a directory in the home directory instead.
    parent = next(
        (p for p in (REPO_ROOT, Path.home()) if p.is_dir() and _path_is_safe(p)), REPO_ROOT
    )
    base = Path(tempfile.mkdtemp(prefix=".sendmail-interop-", dir=parent))
    try:
        base.chmod(0o755)
        if not _path_is_safe(base):
            pytest.skip(f"{base} is below a world-writable directory; sendmail refuses it")
        office = base / "configs" / "office"
        shutil.copytree(oracle_dir / "configs" / "office", office)
        for path in office.rglob("*"):
            if path.is_file():
                text = path.read_bytes().replace(str(oracle_dir).encode(), str(base).encode())
                path.write_bytes(text)
                path.chmod(0o755 if path.parent.name == "bin" else 0o644)
        # the session-wide oracle copy may hold what other tests delivered there
        shutil.rmtree(office / "mailboxes", ignore_errors=True)
        (office / "mailboxes").mkdir()
        for sub in ("mqueue", "hoststat"):
            (base / sub).mkdir(mode=0o700)
        yield binary, base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run_sendmail(binary: Path, base: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [
        str(binary),
        "-C",
        str(base / "configs" / "office" / "office.cf"),
        "-O",
        f"QueueDirectory={base / 'mqueue'}",
        "-O",
        f"HostStatusDirectory={base / 'hoststat'}",
        # or on a busy machine sendmail's -bp marks the message X and -q keeps it queued
        "-O",
        "QueueLA=1000",
        *args,
    ]
    script = 'hostname mail.example.com && exec "$@"'
    return subprocess.run(
        ["unshare", "-n", "-u", "sh", "-c", script, "sh", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _queue_message(queue_dir: Path) -> str:
    headers = [
        Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
        Header("Received", "(from root@localhost)\n\tby mail.example.com (pysendmail) id X"),
        Header("Full-Name", "root", condition="x"),
        Header("From", "Alice <alice@example.com>"),
        Header("Subject", "from pysendmail"),
        Header("Bcc", "hidden@example.com"),
    ]
    envelope = Envelope(
        sender="root",
        recipients=[Recipient("alice"), Recipient("bob")],
        auth="root@mail.example.com",
        macros={"_": "root@localhost", "daemon_flags": "c u"},
        flags={"b", "s"},
    )
    return QueueStore(queue_dir).enqueue(
        envelope, headers, b"hello from pysendmail\n", hostname="mail.example.com"
    )


def test_sendmail_lists_our_queue_as_we_do(sendmail_env):
    binary, base = sendmail_env
    _queue_message(base / "mqueue")
    theirs = _run_sendmail(binary, base, "-bp")
    ours, code = listing.list_queue(str(base / "mqueue"))
    assert (theirs.stdout, theirs.returncode) == (ours, code)


def test_sendmail_delivers_a_message_we_queued(sendmail_env):
    binary, base = sendmail_env
    qid = _queue_message(base / "mqueue")
    run = _run_sendmail(binary, base, "-q", "-v")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Running {base / 'mqueue'}/{qid} (sequence 1 of 1)" in run.stdout
    assert "alice... Sent" in run.stdout and "bob... Sent" in run.stdout
    assert sorted(os.listdir(base / "mqueue")) == []
    for user in ("alice", "bob"):
        box = (base / "configs" / "office" / "mailboxes" / user).read_text()
        assert box == (
            f"=== deliver argv: -d {user}\n"
            "Return-Path: <root>\n"
            "Received: (from root@localhost)\n"
            "\tby mail.example.com (pysendmail) id X\n"
            "From: Alice <alice@example.com>\n"
            "Subject: from pysendmail\n"
            "\n"
            "hello from pysendmail\n"
            "=== end\n"
        )
