"""Shared parts of the POP3 benchmarks: an mbox written in the format local delivery
uses, and pysendmail's POP3 daemon serving it from a separate process (so the client's
work and the server's do not share one interpreter lock)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

USER = "bench"
PASSWORD = "bench-password"  # no space: Dovecot's static passdb splits on them


def message_bytes(number: int, body_size: int) -> bytes:
    """A plain message of about `body_size` bytes of body, with a dot-led line in it."""
    header = (
        f"Received: from client.example.com by mail.example.com; Thu, 26 Nov 2026 12:00:00 +0000\n"
        f"From: sender{number}@example.com\nTo: {USER}@example.com\n"
        f"Subject: benchmark message {number}\nMessage-ID: <bench-{number}@example.com>\n\n"
    )
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\n"
    body = line * max(1, body_size // len(line))
    return header.encode() + b".a line that begins with a dot\n" + body


def write_mbox(path: Path, count: int, body_size: int) -> int:
    """Write `count` messages as mail.local (and pysendmail.maildrop) lays them out."""
    stamp = time.asctime(time.gmtime(1764158400))
    with open(path, "wb", buffering=1 << 20) as out:
        for number in range(1, count + 1):
            out.write(f"From sender{number}@example.com {stamp}\n".encode())
            out.write(message_bytes(number, body_size))
            out.write(b"\n")
    return path.stat().st_size


def _serve(spool: str, ready) -> None:
    from pysendmail.daemons.pop3_maildrops import local_maildrops
    from pysendmail.daemons.pop3d import Listener, Pop3Daemon, Pop3Service

    service = Pop3Service(
        hostname="bench.example.com",
        verify=lambda user, password: (user, password) == (USER, PASSWORD),
        open_maildrop=local_maildrops(Path(spool), "mbox"),
        allow_plaintext_auth=True,
    )
    daemon = Pop3Daemon(service, [Listener("127.0.0.1", 0)])
    (address,) = daemon.start()
    ready.send(address[1])
    ready.recv()  # until the parent says stop
    daemon.shutdown(drain_timeout=1.0)


class ServerProcess:
    """pysendmail's POP3 daemon in a child process, serving SPOOL/bench."""

    def __init__(self, spool: Path) -> None:
        parent_end, child_end = multiprocessing.Pipe()
        self._pipe = parent_end
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(str(spool), child_end), daemon=True
        )
        self._process.start()
        self.port = parent_end.recv()

    def stop(self) -> None:
        self._pipe.send("stop")
        self._process.join(10)


class DovecotProcess:
    """Dovecot's POP3 (Debian dovecot-pop3d) in the foreground on 127.0.0.1, serving
    SPOOL/bench as an mbox INBOX, with its own config, state and index files under
    SPOOL/dovecot: it touches nothing of the system's Dovecot set-up."""

    def __init__(self, spool: Path) -> None:
        import shutil
        import socket
        import subprocess

        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.path.exists(binary):
            raise SystemExit("dovecot is not installed (Debian: dovecot-pop3d)")
        import pwd

        # Dovecot will not run a mail process as root: the mbox is nobody's here.
        mail_user = pwd.getpwnam("nobody")
        root = spool / "dovecot"
        for sub in ("run", "state", "home"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(spool, 0o1777)  # room for nobody's dot-lock, as in /var/mail
        os.chmod(root, 0o755)
        for path in (spool / USER, root / "home"):
            os.chown(path, mail_user.pw_uid, mail_user.pw_gid)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        conf = root / "dovecot.conf"
        conf.write_text(
            f"""base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
mail_location = mbox:{root}/home:INBOX={spool}/{USER}
mbox_write_locks = dotlock fcntl
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={root}/home
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        )
        self._process = subprocess.Popen([binary, "-F", "-c", str(conf)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"dovecot did not start; see {root}/log")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(30)


def start_server(kind: str, spool: Path):
    return DovecotProcess(spool) if kind == "dovecot" else ServerProcess(spool)


def machine() -> str:
    import platform

    return (
        f"{os.cpu_count()} CPUs (nproc), Python {platform.python_version()}, {platform.platform()}"
    )
