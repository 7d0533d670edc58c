"""Queue runs of pysendmail and of the real sendmail 8.17, side by side in one run.

    python3 bench/queue_vs_sendmail.py [--messages N] [--size BYTES]

The same N messages (written by pysendmail's queue, which sendmail reads) are queued
twice: to remote users and to local users. Each program then empties its copy with
one `sendmail -qf` (a queue run in the foreground: a plain -q returns at once and
leaves the run to a child) under the same configuration (the fixture's Debian cf with its
smart host set to an SMTP sink on 127.0.0.2, and mail.local -l, Debian's, as the
local mailer), and the wall time of that command is the figure, start-up included:
messages per second to the SMTP sink, and to local mboxes.

Everything runs as root inside private mount, network and UTS namespaces (unshare
-m -n -u): the sink listens on the namespace's own loopback, a temp dir is
bind-mounted on /var/mail, the host name mail.example.com is set in there only.
sendmail comes from Debian's sendmail-bin package (and mail.local's liblockfile1),
fetched with `apt-get download` and unpacked, never installed. Run
`python -m compileall -q pysendmail` first (PYTHONDONTWRITEBYTECODE is set here).
PYSENDMAIL_BENCH_QFLAGS="-v" adds flags to both `-qf` commands (to see a failing run).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from delivery_local import existing_users, mail_local_libraries  # noqa: E402
from delivery_smtp import SinkHandler  # noqa: E402
from queue_common import fixtures_dir, unpacked_sendmail  # noqa: E402

from pysendmail.envelope import Envelope, Recipient  # noqa: E402
from pysendmail.headers import MACRO_CHAR, Header  # noqa: E402
from pysendmail.queue.store import QueueStore  # noqa: E402

UNPACKED = Path(tempfile.gettempdir()) / "pysendmail-sendmail-bin" / "root"
SENDMAIL = UNPACKED / "usr" / "libexec" / "sendmail" / "sendmail"
MAIL_LOCAL = UNPACKED / "usr" / "libexec" / "sendmail" / "mail.local"
INSIDE = "PYSENDMAIL_BENCH_INSIDE"


def fetch_sendmail() -> bool:
    """Debian's sendmail-bin unpacked under the temp dir (the queue tests do the same)."""
    return unpacked_sendmail() == SENDMAIL


def make_cf(base: Path, port: int, libs: str | None) -> Path:
    """The fixture's Debian cf, with mail.local -l as its local mailer, the smart host
    [127.0.0.2] (127.0.0.1 is in class w: a local name is no smart host) and the sink's
    port in the SMTP mailers."""
    source = fixtures_dir() / "configs" / "debian"
    target = base / "configs" / "debian"
    shutil.copytree(source, target)
    for path in target.rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes().replace(b"@ORACLE@", str(base).encode()))
            path.chmod(0o644)
    (target / "var").mkdir(exist_ok=True)
    # Debian's aliases send daemon, bin, sys ... to root: the bench users keep their own
    (target / "aliases").write_text("postmaster: root\n")
    with open(target / "hosts", "a") as hosts:  # the remote domain, for $[ $] in rules
        hosts.write("127.0.0.1\tremote.test\n")
    cf = target / "debian.cf"
    text = cf.read_text()
    local = (
        f"Mlocal,\t\tP={MAIL_LOCAL}, F=lsDFMAw5:/|@qPSXfmnz9, S=EnvFromL/HdrFromL, "
        "R=EnvToL/HdrToL,\n\t\tT=DNS/RFC822/LMTP,\n\t\tA=mail.local -l\n"
    )
    text = re.sub(r"^Mlocal,.*\n(?:[ \t].*\n)*", lambda _: local, text, flags=re.M)
    text = re.sub(r"^(\t\tA=TCP \$h)$", rf"\1 {port}", text, flags=re.M)
    text = re.sub(r"^DS$", "DS[127.0.0.2]", text, flags=re.M)
    # Debian's own users may not exist on this machine
    text = text.replace("O TrustedUser=smmta", "O TrustedUser=root")
    text = text.replace("Kaccess hash -T<TMPF>", "Kaccess hash -o -T<TMPF>")
    # a shared machine's load average must not make sendmail skip its queue run
    text = text.replace("#O QueueLA=8", "O QueueLA=100")
    if libs:  # mail.local needs liblockfile, unpacked beside it; E lines reach mailers
        text = text.replace("\nMlocal,", f"\nELD_LIBRARY_PATH={libs}\nMlocal,", 1)
    cf.write_text(text)
    # sendmail reads hash maps only: the access map is made optional (no access.db
    # here; its TLS_Rcpt lookups must not fail), the aliases.db is built
    subprocess.run([str(SENDMAIL), "-C", str(cf), "-bi"], check=False, capture_output=True)
    return cf


def fill_queue(queue: Path, count: int, size: int, recipients: list[str]) -> None:
    queue.mkdir(mode=0o700)
    store = QueueStore(queue, fsync=False)
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\n"
    body = (line * (size // len(line) + 1))[:size]
    for n in range(count):
        rcpt = recipients[n % len(recipients)]
        store.enqueue(
            Envelope(sender="<bench@example.com>", recipients=[Recipient(f"<{rcpt}>")]),
            [
                Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
                Header("From", "Bench <bench@example.com>"),
                Header("To", rcpt),
                Header("Subject", f"bench {n}"),
                Header("Message-Id", f"<bench-{n}@example.com>"),
            ],
            body,
            hostname="mail.example.com",
        )


def timed_queue_run(argv: list[str], queue: Path, base: Path, env: dict[str, str]) -> float:
    args = ["-C", str(base / "configs" / "debian" / "debian.cf")]
    args += ["-O", f"QueueDirectory={queue}", "-O", f"HostStatusDirectory={base / 'hoststat'}"]
    start = time.perf_counter()
    run = subprocess.run(
        [*argv, *args, "-qf", *os.environ.get("PYSENDMAIL_BENCH_QFLAGS", "").split()],
        capture_output=True,
        text=True,
        env=env,
    )
    elapsed = time.perf_counter() - start
    left = [p.name for p in queue.iterdir() if p.name.startswith("qf")]
    if run.returncode != 0 or left:
        raise SystemExit(
            f"{argv[-1]} -qf failed ({run.returncode}), {len(left)} left:\n"
            f"{run.stdout[:800]}{run.stderr[:800]}"
        )
    return elapsed


def delivered_locally(spool: Path, users: list[str]) -> int:
    return sum(
        (spool / u).read_bytes().count(b"\nSubject: bench ") for u in users if (spool / u).exists()
    )


def inside(count: int, size: int) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["hostname", "mail.example.com"], check=True)
    base = Path(tempfile.mkdtemp(prefix=".bench-vs-sendmail-", dir=REPO_ROOT))
    try:
        base.chmod(0o755)
        spool = base / "spool"
        spool.mkdir()
        spool.chmod(0o1777)
        subprocess.run(["mount", "--bind", str(spool), "/var/mail"], check=True)
        (base / "hoststat").mkdir(mode=0o700)
        sink = socketserver.ThreadingTCPServer(("127.0.0.2", 0), SinkHandler)
        sink.daemon_threads = True
        sink.delivered = 0  # type: ignore[attr-defined]
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        cf = make_cf(base, sink.server_address[1], mail_local_libraries())
        users = existing_users()
        env = dict(os.environ, TZ="UTC", XDG_CACHE_HOME=str(base / "cache"))
        env["PYTHONPATH"] = str(REPO_ROOT)
        ours = [sys.executable, "-m", "pysendmail"]
        theirs = [str(SENDMAIL)]
        print(f"{count} messages of ~{size} bytes; sendmail 8.17 = Debian sendmail-bin")
        warm = base / "mq-warm-up"
        fill_queue(warm, 0, size, [])
        for argv in (ours, theirs):  # pysendmail caches the translated cf on first use
            subprocess.run([*argv, "-C", str(cf), "-O", f"QueueDirectory={warm}", "-bp"],
                           capture_output=True, env=env)  # fmt: skip
        for kind, recipients in (
            ("SMTP sink", [f"r{n}@remote.test" for n in range(10)]),
            ("local mboxes", users),
        ):
            for name, argv in (("pysendmail", ours), ("sendmail 8.17", theirs)):
                queue = base / f"mq-{kind[:4].strip()}-{name[:4]}"
                fill_queue(queue, count, size, recipients)
                before = sink.delivered  # type: ignore[attr-defined]
                for user in users:
                    (spool / user).unlink(missing_ok=True)
                elapsed = timed_queue_run(argv, queue, base, env)
                if kind == "SMTP sink":
                    done = sink.delivered - before  # type: ignore[attr-defined]
                else:
                    done = delivered_locally(spool, users)
                if done != count:
                    raise SystemExit(f"{name}: {done} of {count} delivered to the {kind}")
                print(f"{kind:13} {name:14} {count / elapsed:8.0f} msg/s ({elapsed:.2f} s)")
        sink.shutdown()
    finally:
        subprocess.run(["umount", "/var/mail"], check=False)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=2000)
    args = parser.parse_args()
    if os.environ.get(INSIDE):
        inside(args.messages, args.size)
        return
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise SystemExit("needs root and unshare(1)")
    if not fetch_sendmail():
        raise SystemExit("Debian's sendmail-bin could not be fetched and unpacked")
    env = dict(os.environ, **{INSIDE: "1"})
    command = [sys.executable, __file__, "--messages", str(args.messages)]
    command += ["--size", str(args.size)]
    sys.exit(subprocess.run(["unshare", "-m", "-n", "-u", *command], env=env).returncode)


if __name__ == "__main__":
    main()
