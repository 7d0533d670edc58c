"""The real sendmail 8.17 as the SMTP benchmark's reference, on a private loopback.

Debian's `sendmail-bin` is fetched with `apt-get download` and unpacked with `dpkg -x`
into a cache directory: never installed, /usr/sbin/sendmail is never touched. It runs
with a copy of the same fixture cf as pysendmail (its hash maps built by the unpacked
makemap), a
private queue directory, queue-only (`-odq`), `Listen=1024` and high QueueLA/RefuseLA
so that it does not throttle on two cores, as the issue asks for a fair comparison.

The benchmark runs inside its own network and UTS namespaces (`unshare -n -u`, see
`reexec_in_namespace`): the loopback there is private, no packet can leave, and the
host name sendmail sees (mail.example.com) is set inside the namespace only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from queue_common import unpacked_sendmail

NAMESPACE_MARK = "PYSENDMAIL_BENCH_NETNS"
MAPS = ("access", "virtusertable", "mailertable", "genericstable")


def sendmail_dir() -> Path | None:
    """Where the unpacked sendmail-bin's programs are, fetching the package if needed."""
    binary = unpacked_sendmail()
    return binary.parent if binary is not None else None


def why_not() -> str | None:
    """None when sendmail can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (a private network namespace for sendmail)"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare(1) and ip(8)"
    if sendmail_dir() is None:
        return "Debian's sendmail-bin could not be fetched (apt-get download) and unpacked"
    return None


def reexec_in_namespace() -> None:
    """Run this same command again inside new network and UTS namespaces (once)."""
    if os.environ.get(NAMESPACE_MARK):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        socket.sethostname("mail.example.com")
        return
    env = dict(os.environ, **{NAMESPACE_MARK: "1"})
    argv = ["unshare", "-n", "-u", sys.executable, *sys.argv]
    sys.exit(subprocess.run(argv, env=env).returncode)


def prepare(config_dir: Path, cf_name: str, workdir: Path) -> Path:
    """A private copy of a fixture config for sendmail (maps built); its cf path.

    sendmail refuses files below a group- or world-writable directory, so the copy's
    directories are 0755 and its files 0644."""
    base = workdir / "sendmail"
    base.mkdir(mode=0o755)
    tree = base / config_dir.name
    shutil.copytree(config_dir, tree)
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path.parent.name == "bin" else 0o644)
    cf = tree / cf_name
    cf.write_text(cf.read_text().replace(str(config_dir), str(tree)))
    programs = sendmail_dir()
    assert programs is not None
    for name in MAPS:
        if not (tree / name).exists():
            continue
        with open(tree / name, "rb") as source:
            subprocess.run(
                [str(programs / "makemap"), "-C", str(cf), "hash", str(tree / name)],
                stdin=source,
                check=True,
            )
    subprocess.run([str(programs / "sendmail"), "-C", str(cf), "-bi"], capture_output=True)
    for sub in ("mqueue", "hoststat"):
        (base / sub).mkdir(mode=0o700)
    return cf


def start(cf: Path, port: int) -> int:
    """Start sendmail -bd (it detaches) on 127.0.0.1:port; its pid once it answers."""
    programs = sendmail_dir()
    assert programs is not None
    base = cf.parent.parent
    pid_file = base / "sendmail.pid"
    # The same overrides pysendmail gets: no rate throttle, no size limit.
    subprocess.run(
        [
            str(programs / "sendmail"),
            "-C",
            str(cf),
            "-bd",
            "-odq",
            "-O",
            f"DaemonPortOptions=Name=MTA,Port={port},Addr=127.0.0.1,Listen=1024",
            "-O",
            f"QueueDirectory={base / 'mqueue'}",
            "-O",
            f"HostStatusDirectory={base / 'hoststat'}",
            "-O",
            "QueueLA=100",
            "-O",
            "RefuseLA=100",
            "-O",
            "MaxMessageSize=0",
            "-O",
            "ConnectionRateThrottle=0",
            "-O",
            "TrustedUser=root",  # debian.cf names smmta, a user this machine may not have
            "-O",
            f"PidFile={pid_file}",
            "-O",
            f"StatusFile={base / 'sendmail.st'}",
        ],
        check=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError):
            time.sleep(0.1)
    raise SystemExit("sendmail did not start")


def stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def queued(cf: Path) -> int:
    """How many qf files sendmail's queue holds."""
    return sum(1 for name in os.listdir(cf.parent.parent / "mqueue") if name.startswith("qf"))
