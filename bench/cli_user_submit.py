"""Wall time of `sendmail -t -i < message` run by an ordinary user (not root), who may not
write the queue: through the running daemon's command-line socket (the daemon runs the
submission as that user), and through the submission directory when no daemon runs;
beside a bare interpreter started the same way.

    python bench/cli_user_submit.py [--runs N] [--user NAME]     (as root)

The user (default `pysendmail-test`, which the tests create) runs the system's
/usr/bin/python3 with this checkout on PYTHONPATH (the venv under /root is closed to
other users), through `runuser`. A daemon (`-bD`, DeliveryMode=queue) is started from
this process for the socket runs and stopped before the submission-directory runs. The
user's configuration cache is filled first. Every run must leave one queued message
(socket) or one submission file (directory), or no figure is printed.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MESSAGE = (
    b"From: Alice <alice@example.com>\nTo: root\nBcc: postmaster\nSubject: benchmark\n\n"
    + b"A line of the body of a small message.\n" * 40
)
ENTRY = (
    "import sys; from pysendmail.cli.main import main; sys.exit(main(['sendmail', *sys.argv[1:]]))"
)
PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_cf(base: Path) -> Path:
    cf = base / "sendmail.cf"
    default = (REPO / "pysendmail" / "config" / "default.cf").read_text()
    settings = {
        "QueueDirectory": base / "mqueue",
        "HostStatusDirectory": base / "hoststat",
        "AliasFile": base / "aliases",
        "PidFile": base / "sendmail.pid",
        "DeliveryMode": "queue",
    }
    cf.write_text(default + "".join(f"O {k}={v}\n" for k, v in settings.items()))
    cf.chmod(0o644)
    (base / "aliases").write_text("postmaster: root\n")
    return cf


def start_daemon(cf: Path, base: Path) -> int:
    from pysendmail.cli.main import main

    argv = ["pysendmail", "-C", str(cf), "-bD", "-O"]
    argv.append(f"DaemonPortOptions=Name=MTA, Addr=127.0.0.1, Port={free_port()}")
    pid = os.fork()
    if pid == 0:
        log = os.open(base / "daemon.log", os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os._exit(main(argv))
    from pysendmail.cli.socketsubmit import command_line_socket_path

    deadline = time.monotonic() + 60
    while not os.path.exists(command_line_socket_path(str(base / "mqueue"))):
        if time.monotonic() > deadline:
            sys.exit("the daemon did not open its socket: see daemon.log")
        time.sleep(0.05)
    return pid


def fill_user_cache(cf: Path, user: pwd.struct_passwd, cache: Path) -> None:
    """Translate the cf once as the user (imports done as root first)."""
    from pysendmail.cli import runtime
    from pysendmail.cli.options import parse_args

    pid = os.fork()
    if pid == 0:
        os.environ["XDG_CACHE_HOME"] = str(cache)
        os.environ["HOME"] = user.pw_dir  # as runuser sets it: part of the cache's key
        argv = ["sendmail", "-C", str(cf), "-t", "-i"]  # the overrides are part of the key
        runtime.load_config(parse_args(argv))  # the imports, as root
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        runtime.load_config(parse_args(argv))
        os._exit(0)
    os.waitpid(pid, 0)


def timed(argv: list[str], runs: int, env: dict[str, str], stdin: bytes = b"") -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(argv, input=stdin, capture_output=True, env=env)
        times.append((time.perf_counter() - start) * 1000)
        if result.returncode != 0:
            sys.exit(
                f"{argv[-6:]} failed ({result.returncode}): {result.stdout!r} {result.stderr!r}"
            )
    return times


def row(label: str, times: list[float]) -> str:
    return (
        f"| {label} | {statistics.median(times):.1f} ms | {min(times):.1f} ms "
        f"| {statistics.quantiles(times, n=20)[-1]:.1f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--user", default="pysendmail-test")
    args = parser.parse_args()
    user = pwd.getpwnam(args.user)
    base = Path(tempfile.mkdtemp(prefix="pysendmail-bench-", dir="/tmp"))
    base.chmod(0o755)
    daemon = 0
    try:
        (base / "mqueue").mkdir(mode=0o700)
        (base / "hoststat").mkdir(mode=0o700)
        cache = base / "user-cache"
        cache.mkdir()
        os.chown(cache, user.pw_uid, user.pw_gid)
        cf = write_cf(base)
        fill_user_cache(cf, user, cache)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache)}
        as_user = ["/usr/sbin/runuser", "-u", user.pw_name, "--", PYTHON]
        submit = [*as_user, "-c", ENTRY, "-C", str(cf), "-t", "-i"]
        bare = timed([*as_user, "-c", "pass"], args.runs, env)

        daemon = start_daemon(cf, base)
        over_socket = timed(submit, args.runs, env, MESSAGE)
        queued = len(list((base / "mqueue").glob("qf*")))
        os.kill(daemon, signal.SIGTERM)
        os.waitpid(daemon, 0)
        daemon = 0
        if queued != args.runs:
            sys.exit(f"{queued} messages queued by the daemon, {args.runs} expected")

        from pysendmail.cli.handoff import ensure_submission_dir

        submitted = Path(ensure_submission_dir(str(base / "mqueue")))
        for name in os.listdir(submitted):  # what the daemon's start took in is gone already
            os.unlink(submitted / name)
        to_directory = timed(submit, args.runs, env, MESSAGE)
        handed = len(os.listdir(submitted))
        if handed != args.runs:
            sys.exit(f"{handed} files in the submission directory, {args.runs} expected")
    finally:
        if daemon:
            os.kill(daemon, signal.SIGTERM)
            os.waitpid(daemon, 0)
        shutil.rmtree(base, ignore_errors=True)
    print(f"{args.runs} runs each, as {user.pw_name}, {PYTHON} (`runuser` included)\n")
    print("| command | wall median | wall min | wall p95 |\n| --- | --- | --- | --- |")
    print(row("`python3 -c pass`", bare))
    print(row("`sendmail -t -i` through the daemon's socket", over_socket))
    print(row("`sendmail -t -i` into the submission directory (no daemon)", to_directory))


if __name__ == "__main__":
    main()
