"""Messages per second delivered into local mboxes.

    python3 bench/delivery_local.py [--messages N] [--size BYTES]

Measures pysendmail's local delivery (delivery.local.deliver_local: dot-lock, fcntl
lock, From line, >From escaping, fsync) into a temporary spool, and, where it can,
sendmail's own mail.local (Debian's sendmail-bin, unpacked in the temp dir by the queue
tests or found at /usr/libexec/sendmail/mail.local) fed the same messages over one
LMTP session (`mail.local -l`, as Debian's local mailer runs it), inside a private
mount namespace where a temp dir is bind-mounted on /var/mail: nothing of the
machine's own spool is touched. Both write into the mailboxes of the same users.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pysendmail.delivery.local import LocalSettings, deliver_local
from pysendmail.delivery.message import OutgoingMessage
from pysendmail.delivery.user_writers import UserWriters
from pysendmail.maildrop import append_mbox

USERS = ("nobody", "daemon", "bin", "sys")
MAIL_LOCAL_CANDIDATES = (
    "/usr/libexec/sendmail/mail.local",
    str(
        Path(tempfile.gettempdir()) / "pysendmail-sendmail-bin/root/usr/libexec/sendmail/mail.local"
    ),
)


def existing_users() -> list[str]:
    found = []
    for name in USERS:
        try:
            pwd.getpwnam(name)
            found.append(name)
        except KeyError:
            pass
    return found or [pwd.getpwuid(os.getuid()).pw_name]


def make_message(size: int, n: int) -> OutgoingMessage:
    headers = (
        f"From: Bench <bench@example.com>\nTo: user@example.com\n"
        f"Subject: bench {n}\nMessage-Id: <bench-{n}@example.com>\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\n"
    body = (line * (size // len(line) + 1))[:size].rstrip(b"\n") + b"\n"
    return OutgoingMessage("<bench@example.com>", headers, body)


def bench_pysendmail(count: int, size: int, users: list[str]) -> float:
    spool = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    spool.chmod(0o1777)
    settings = LocalSettings(spool_dir=spool)
    messages = [make_message(size, n) for n in range(count)]
    start = time.perf_counter()
    for n, message in enumerate(messages):
        [result] = deliver_local(message, [users[n % len(users)]], settings)
        assert result.is_success, result
    elapsed = time.perf_counter() - start
    shutil.rmtree(spool)
    return count / elapsed


def bench_pysendmail_run(count: int, size: int, users: list[str]) -> float:
    """deliver_local as a queue run does it: one UserWriters for the whole run (as
    root, one child per user instead of one fork per message)."""
    spool = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    spool.chmod(0o1777)
    settings = LocalSettings(spool_dir=spool)
    messages = [make_message(size, n) for n in range(count)]
    start = time.perf_counter()
    with UserWriters() as writers:
        for n, message in enumerate(messages):
            [result] = deliver_local(message, [users[n % len(users)]], settings, writer=writers)
            assert result.is_success, result
    elapsed = time.perf_counter() - start
    shutil.rmtree(spool)
    return count / elapsed


def bench_append_in_process(count: int, size: int) -> float:
    spool = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    messages = [make_message(size, n) for n in range(count)]
    start = time.perf_counter()
    for n, message in enumerate(messages):
        append_mbox(spool / f"user{n % 4}", message.sender, message.iter_message())
    elapsed = time.perf_counter() - start
    shutil.rmtree(spool)
    return count / elapsed


def lmtp_session(messages: list[OutgoingMessage], users: list[str]) -> bytes:
    out = [b"LHLO bench.example.com\r\n"]
    for n, message in enumerate(messages):
        out.append(b"MAIL FROM:<bench@example.com>\r\n")
        out.append(f"RCPT TO:<{users[n % len(users)]}>\r\n".encode())
        out.append(b"DATA\r\n")
        data = b"".join(message.iter_message()).replace(b"\n", b"\r\n")
        data = data.replace(b"\r\n.", b"\r\n..")
        out.append(data + b".\r\n")
    out.append(b"QUIT\r\n")
    return b"".join(out)


LIB_CACHE = Path(tempfile.gettempdir()) / "pysendmail-bench-libs"


def mail_local_libraries() -> str | None:
    """mail.local needs liblockfile.so.1: fetch Debian's liblockfile1 with apt-get
    download and unpack it beside the binary (never installed) when it is missing."""
    found = list(LIB_CACHE.glob("root/usr/lib/*/liblockfile.so.1"))
    if not found and shutil.which("apt-get") and shutil.which("dpkg"):
        LIB_CACHE.mkdir(exist_ok=True)
        subprocess.run(
            ["apt-get", "download", "liblockfile1"], cwd=LIB_CACHE, capture_output=True, timeout=120
        )
        for deb in LIB_CACHE.glob("liblockfile1_*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(LIB_CACHE / "root")], check=False)
        found = list(LIB_CACHE.glob("root/usr/lib/*/liblockfile.so.1"))
    return str(found[0].parent) if found else None


def bench_mail_local(count: int, size: int, users: list[str], lmtp: bool) -> float | None:
    binary = next((p for p in MAIL_LOCAL_CANDIDATES if os.access(p, os.X_OK)), None)
    if binary is None or os.geteuid() != 0 or not shutil.which("unshare"):
        return None
    libs = mail_local_libraries()
    spool = Path(tempfile.mkdtemp(prefix="bench-mail-local-"))
    spool.chmod(0o1777)
    messages = [make_message(size, n) for n in range(count)]
    if lmtp:
        session = spool / "session.lmtp"
        session.write_bytes(lmtp_session(messages, users))
        run = f"{binary} -l < {session} > {spool}/replies"
    else:
        inputs = spool / "in"
        inputs.mkdir()
        lines = []
        for n, message in enumerate(messages):
            (inputs / str(n)).write_bytes(b"".join(message.iter_message()))
            lines.append(f"{binary} -f bench@example.com {users[n % len(users)]} < {inputs}/{n}")
        (spool / "run.sh").write_text("\n".join(lines) + "\n")
        run = f"sh {spool}/run.sh"
    env = dict(os.environ)
    if libs:
        env["LD_LIBRARY_PATH"] = libs
    script = (
        f"mount --bind {spool} /var/mail && start=$(date +%s.%N) && {run} && "
        "end=$(date +%s.%N) && echo $start $end"
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env
    )
    try:
        if proc.returncode != 0:
            print("mail.local run failed:", proc.stderr.strip()[-300:], file=sys.stderr)
            return None
        start, end = (float(x) for x in proc.stdout.split())
        delivered = sum(
            (spool / user).read_bytes().count(b"\nSubject: bench ")
            for user in users
            if (spool / user).exists()
        )
        if delivered != count:
            print(f"mail.local delivered {delivered} of {count}", file=sys.stderr)
            return None
        return count / (end - start)
    finally:
        shutil.rmtree(spool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2000)
    args = parser.parse_args()
    users = existing_users()
    print(f"{args.messages} messages of ~{args.size} bytes into {len(users)} mboxes")
    rate = bench_pysendmail(args.messages, args.size, users)
    how = "as root: written in a child switched to the user" if os.geteuid() == 0 else "in-process"
    print(f"pysendmail deliver_local ({how}): {rate:8.0f} msg/s")
    if os.geteuid() == 0:
        rate = bench_pysendmail_run(args.messages, args.size, users)
        print(f"pysendmail deliver_local in a queue run (one child per user): {rate:8.0f} msg/s")
    rate = bench_append_in_process(args.messages, args.size)
    print(f"pysendmail append_mbox (no uid switch):          {rate:8.0f} msg/s")
    for lmtp, label in ((False, "one exec per message"), (True, "one LMTP session, -l")):
        theirs = bench_mail_local(args.messages, args.size, users, lmtp)
        if theirs is None:
            print(f"sendmail mail.local ({label}): not measured")
        else:
            print(f"sendmail 8.17 mail.local ({label}): {theirs:8.0f} msg/s")


if __name__ == "__main__":
    main()
