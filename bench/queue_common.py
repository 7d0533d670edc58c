"""Helpers shared by the queue benchmarks: a queue of N messages, the real sendmail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pysendmail.envelope import Envelope, Recipient  # noqa: E402
from pysendmail.headers import MACRO_CHAR, Header  # noqa: E402
from pysendmail.queue.store import QueueStore  # noqa: E402

HEADERS = [
    Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
    Header("Received", "(from root@localhost)\n\tby mail.example.com (pysendmail) id X"),
    Header("From", "Alice <alice@example.com>"),
    Header("To", "bob@example.com"),
    Header("Subject", "benchmark"),
]
BODY = b"A line of the body of a small message.\n" * 40


def envelope(i: int) -> Envelope:
    return Envelope(
        sender=f"sender{i % 97}@example.com",
        recipients=[Recipient(f"user{i % 13}@remote.example.net"), Recipient("bob")],
        macros={"_": "root@localhost", "daemon_flags": "c u"},
        flags={"b", "s"},
    )


def fill_queue(queue_dir: Path, count: int) -> None:
    """`count` messages, written without fsync (the listing is what is measured)."""
    store = QueueStore(queue_dir, fsync=False)
    for i in range(count):
        store.enqueue(envelope(i), HEADERS, BODY, hostname="mail.example.com")


def safe_workdir(prefix: str) -> Path:
    """A directory on the repository's disk, below no world-writable directory (sendmail
    refuses its files otherwise)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=REPO_ROOT / "bench"))
    base.chmod(0o755)
    return base


SENDMAIL_BIN_CACHE = Path(tempfile.gettempdir()) / "pysendmail-sendmail-bin"
UNPACKED_SENDMAIL = SENDMAIL_BIN_CACHE / "root" / "usr" / "libexec" / "sendmail" / "sendmail"


def unpacked_sendmail() -> Path | None:
    """Debian's sendmail-bin fetched with `apt-get download` and unpacked with `dpkg -x`
    into a cache directory (never installed): its sendmail binary, beside mail.local."""
    if UNPACKED_SENDMAIL.exists():
        return UNPACKED_SENDMAIL
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        return None
    SENDMAIL_BIN_CACHE.mkdir(exist_ok=True)
    subprocess.run(
        ["apt-get", "download", "sendmail-bin"], cwd=SENDMAIL_BIN_CACHE, capture_output=True
    )
    debs = sorted(SENDMAIL_BIN_CACHE.glob("sendmail-bin_*.deb"))
    if not debs:
        return None
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(SENDMAIL_BIN_CACHE / "root")], check=True)
    return UNPACKED_SENDMAIL if UNPACKED_SENDMAIL.exists() else None


def real_sendmail() -> Path | None:
    """Debian's sendmail 8.17 binary: $PYSENDMAIL_REAL_SENDMAIL, the installed one, or the
    package unpacked (never installed) into a cache directory."""
    for candidate in (os.environ.get("PYSENDMAIL_REAL_SENDMAIL"), "/usr/libexec/sendmail/sendmail"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return unpacked_sendmail()


def fixtures_dir() -> Path:
    """The sendmail 8.17 fixtures: $PYSENDMAIL_FIXTURES, else shared/ beside a folder above
    the repository (../shared in the development layout and in CI's clean clone)."""
    if os.environ.get("PYSENDMAIL_FIXTURES"):
        return Path(os.environ["PYSENDMAIL_FIXTURES"])
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared" / "fixtures" / "sendmail-8.17"
        if candidate.is_dir():
            return candidate
    raise SystemExit("sendmail-8.17 fixtures not found: set PYSENDMAIL_FIXTURES")


def office_config(workdir: Path) -> Path:
    """The office fixture's configuration, @ORACLE@ filled in, under `workdir`."""
    fixtures = fixtures_dir()
    office = workdir / "configs" / "office"
    shutil.copytree(fixtures / "configs" / "office", office)
    for path in office.rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes().replace(b"@ORACLE@", str(workdir).encode()))
            path.chmod(0o755 if path.parent.name == "bin" else 0o644)
    (workdir / "hoststat").mkdir(mode=0o700)
    return office / "office.cf"


def sendmail_argv(binary: Path, cf: Path, queue_dir: Path, *args: str) -> list[str]:
    """sendmail in its own network and UTS namespaces: no packet leaves, and it sees the
    fixtures' host name without the machine's being changed."""
    inner = [
        str(binary),
        "-C",
        str(cf),
        "-O",
        f"QueueDirectory={queue_dir}",
        "-O",
        f"HostStatusDirectory={cf.parent.parent.parent / 'hoststat'}",
        *args,
    ]
    script = 'hostname mail.example.com && exec "$@"'
    return ["unshare", "-n", "-u", "sh", "-c", script, "sh", *inner]
