"""SMTP load benchmark: accepted messages per second into the durable queue, and latency.

    python bench/bench_smtp.py                      # start pysendmail's daemon and measure it
    python bench/bench_smtp.py --target 127.0.0.1:2525   # measure any server already running
    python bench/bench_smtp.py --quick              # smaller runs, for a smoke test

Scenarios (the issue's): 5,000 messages of 4 KB over 20 concurrent sessions with 1 and
with 10 messages per session, and 1,000 messages over 1 session. Each message counts from
MAIL FROM to the 250 after the final dot, which pysendmail sends only once the qf/df are
fsynced. The load comes from several processes, each with its own epoll loop, so the
client is not the bottleneck. The daemon runs in its own process with a fixture
cf (queue in a temporary directory on the same disk, SuperSafe on); its resident memory is
also read with 1,000 idle sessions open.

    python bench/bench_smtp.py --sendmail           # the real sendmail 8.17 in the same run
    python bench/bench_smtp.py --addresses 500      # 500 senders and 500 recipients

With --sendmail (root, unshare(1)) the whole benchmark runs in a private network
namespace and every scenario is run against pysendmail and then against Debian's
sendmail 8.17 (bench/smtp_sendmail.py: unpacked, never installed, the same cf,
queue-only, `Listen=1024`, high QueueLA/RefuseLA), and the ratio is printed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from queue_common import fixtures_dir

REPO = Path(__file__).resolve().parent.parent
FIXTURES = fixtures_dir()
BODY_SIZE = 4096
RECIPIENT = "postmaster@mail.example.com"  # local in every fixture cf
# --cf: which fixture config both servers run. office.cf has hand-written rules
# (LOCAL_RULESETS), so pysendmail runs its check_* rulesets and routing through the rules
# engine; debian.cf is Debian's stock one (ConnectionRateThrottle=15 is overridden to 0).
CONFIGS = {"office": ("office", "office.cf"), "debian": ("debian", "debian.cf")}

DAEMON = """
import sys
from pysendmail.config.model import Overrides
from pysendmail.config.translate import translate
from pysendmail.daemons.smtpd import run_daemon
from pysendmail.log import configure
configure()  # the from= lines to $PYSENDMAIL_LOG, as `pysendmail -bd` writes them
cf, port, queue, pid = sys.argv[1:5]
options = {"DaemonPortOptions": f"Name=MTA, Port={port}, Addr=127.0.0.1",
           "QueueDirectory": queue, "PidFile": pid, "MaxMessageSize": "0",
           "DeliveryMode": "queueonly", "ConnectionRateThrottle": "0"}
config = translate(cf, Overrides(options=options), hostname="mail.example.com")
sys.exit(run_daemon(config, True))
"""


_LINE = b"x" * 76 + b"\r\n"
_BODIES: dict[int, bytes] = {}  # by header length: the body and the final dot


def message(number: int) -> bytes:
    head = (
        f"From: Alice <alice@example.com>\r\nTo: Postmaster <{RECIPIENT}>\r\n"
        f"Subject: bench {number}\r\nMessage-Id: <bench-{number}@example.com>\r\n\r\n"
    ).encode()
    body = _BODIES.get(len(head))
    if body is None:
        body = _BODIES[len(head)] = _LINE * ((BODY_SIZE - len(head)) // len(_LINE)) + b".\r\n"
    return head + body


def addresses(number: int, distinct: int) -> tuple[str, str]:
    """(sender, recipient) of message `number`: alice to postmaster, or with `distinct`
    above 1 one of that many senders and recipients (`rN@virtual.example.org`, which the
    fixture virtusertable's catch-all sends to bob), so that a remembered ruleset result
    serves at most a message in `distinct`'s worth."""
    if distinct <= 1:
        return "alice@example.com", RECIPIENT
    slot = number % distinct
    return f"s{slot}@example.com", f"r{slot}@virtual.example.org"


# The reply each step of a session waits for (250 where not named).
_EXPECTED = {"greeting": b"220", "data": b"354", "quit": b"221"}


class _Session:
    """One client session as a state machine on the server's replies, driven by the
    worker's epoll loop: no coroutine, stream reader or event-loop callback per line,
    so that the load generator spends little of the CPUs it shares with the server
    (in the spirit of Postfix's smtp-source). Each final reply line (no `-` after the
    code) sends the next command; a message's latency runs from its MAIL FROM to the
    250 after its final dot."""

    def __init__(
        self, sock: socket.socket, numbers: list[int], latencies: list[float], distinct: int
    ) -> None:
        self.sock = sock
        self.numbers = numbers
        self.latencies = latencies
        self.distinct = distinct
        self.buffer = b""
        self.index = 0
        self.started = 0.0
        self.step = "greeting"
        self.done = False

    def received(self, data: bytes) -> None:
        if not data:
            raise ConnectionError(f"server closed the session at {self.step}")
        self.buffer += data
        while not self.done:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            if line[3:4] != b"-":
                self._reply(line)

    def _send_mail(self) -> None:
        if self.index == len(self.numbers):
            self.step = "quit"
            self.sock.sendall(b"QUIT\r\n")
            return
        sender, _ = addresses(self.numbers[self.index], self.distinct)
        self.step = "mail"
        self.started = time.perf_counter()
        self.sock.sendall(f"MAIL FROM:<{sender}>\r\n".encode())

    def _reply(self, line: bytes) -> None:
        step = self.step
        expected = _EXPECTED.get(step, b"250")
        if not line.startswith(expected):
            raise RuntimeError(f"{step}: expected {expected!r}, got {line!r}")
        if step == "greeting":
            self.step = "ehlo"
            self.sock.sendall(b"EHLO bench.example.net\r\n")
        elif step in ("ehlo", "message"):
            if step == "message":
                self.latencies.append(time.perf_counter() - self.started)
                self.index += 1
            self._send_mail()
        elif step == "mail":
            _, recipient = addresses(self.numbers[self.index], self.distinct)
            self.step = "rcpt"
            self.sock.sendall(f"RCPT TO:<{recipient}>\r\n".encode())
        elif step == "rcpt":
            self.step = "data"
            self.sock.sendall(b"DATA\r\n")
        elif step == "data":
            self.step = "message"
            self.sock.sendall(message(self.numbers[self.index]))
        else:
            self.done = True


def _worker(args: tuple[str, int, list[list[int]], int, int]) -> list[float]:
    """One load process: `concurrency` sessions at a time over its batches (a batch is
    one session's messages), each a blocking socket that epoll says is readable."""
    host, port, batches, concurrency, distinct = args
    latencies: list[float] = []
    waiting = list(reversed(batches))
    sessions: dict[int, _Session] = {}
    poller = select.epoll()

    def start_one() -> None:
        if waiting:
            sock = socket.create_connection((host, port), timeout=60)
            session = _Session(sock, waiting.pop(), latencies, distinct)
            sessions[sock.fileno()] = session
            poller.register(sock.fileno(), select.EPOLLIN)

    for _ in range(concurrency):
        start_one()
    while sessions:
        for fd, _events in poller.poll(60):
            session = sessions[fd]
            session.received(session.sock.recv(65536))
            if session.done:
                poller.unregister(fd)
                del sessions[fd]
                session.sock.close()
                start_one()
    poller.close()
    return latencies


def run_load(
    host: str, port: int, total: int, sessions: int, per_session: int, distinct: int = 1
) -> dict:
    numbers = list(range(total))
    batches = [numbers[i : i + per_session] for i in range(0, total, per_session)]
    processes = min(4, sessions)
    lanes = [
        sessions // processes + (1 if i < sessions % processes else 0) for i in range(processes)
    ]
    shares: list[list[list[int]]] = [[] for _ in range(processes)]
    for index, batch in enumerate(batches):
        shares[index % processes].append(batch)
    started = time.perf_counter()
    with multiprocessing.Pool(processes) as pool:
        work = [(host, port, shares[i], lanes[i], distinct) for i in range(processes)]
        results = pool.map(_worker, work)
    elapsed = time.perf_counter() - started
    latencies = sorted(x for part in results for x in part)
    return {
        "messages": len(latencies),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) used by a server: the process, the children it has
    reaped (sendmail's per-connection processes) and the ones still running (pysendmail's
    workers)."""
    ticks = 0
    for member in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def pss_kib(pid: int) -> int:
    """The proportional set size of a process and its children (sendmail forks one
    per connection; shared pages are counted once in total)."""
    total = 0
    for member in [pid, *_children(pid)]:
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


def idle_sessions_rss(host: str, port: int, pid: int, count: int) -> tuple[int, int]:
    before = pss_kib(pid)
    processes = len(_children(pid))
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=30)
        sockets.append(sock)
    for sock in sockets:
        sock.recv(4096)  # the greeting: the session exists
    time.sleep(1.0)
    after = pss_kib(pid)
    for sock in sockets:
        sock.close()
    _wait_until_quiet(pid, processes)
    return before, after


def _wait_until_quiet(pid: int, children: int, seconds: float = 30.0) -> None:
    """Let a server finish closing the idle sessions before the load starts: sendmail's
    thousand children exiting (or pysendmail's sessions ending) would otherwise take CPU
    from the next scenario, whichever server it measures."""
    deadline = time.monotonic() + seconds
    while len(_children(pid)) > children and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_fixtures(workdir: Path) -> Path:
    """A copy of the fixtures under `workdir` with @ORACLE@ filled in; its path."""
    oracle = workdir / "oracle"
    shutil.copytree(FIXTURES, oracle)
    for path in oracle.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
            data = path.read_bytes()
            if b"@ORACLE@" in data:
                path.write_bytes(data.replace(b"@ORACLE@", str(oracle).encode()))
    return oracle


def start_pysendmail(workdir: Path, cf: str = "office") -> tuple[subprocess.Popen, int, Path]:
    oracle = copy_fixtures(workdir)
    queue = workdir / "mqueue"
    queue.mkdir()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), PYSENDMAIL_LOG=str(workdir / "maillog"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DAEMON,
            str(oracle / "configs" / CONFIGS[cf][0] / CONFIGS[cf][1]),
            str(port),
            str(queue),
            str(workdir / "pid"),
        ],
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port, queue
        except OSError:
            time.sleep(0.1)
    raise SystemExit("daemon did not start")


SCENARIOS = (
    ("20 sessions x 1 msg", 5000, 20, 1),
    ("20 sessions x 10 msgs", 5000, 20, 10),
    ("1 session x 1000 msgs", 1000, 1, 1000),
)


def _line(name: str, who: str, result: dict) -> str:
    return (
        f"{name:22s} {who:10s} {result['messages']:5d} msgs in {result['seconds']:6.2f} s = "
        f"{result['rate']:7.1f} msgs/s   p50 {result['p50_ms']:6.2f} ms  "
        f"p99 {result['p99_ms']:7.2f} ms   server CPU {result['cpu_ms']:.2f} ms/msg  "
        f"machine busy {result['busy']:.0%}"
    )


def _count_qf(queue: Path) -> int:
    return sum(1 for name in os.listdir(queue) if name.startswith("qf"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", help="host:port of a running server (default: start ours)")
    parser.add_argument("--quick", action="store_true", help="1/10 of the messages")
    parser.add_argument("--idle", type=int, default=1000, help="idle sessions for the RSS figure")
    parser.add_argument(
        "--sendmail", action="store_true", help="also run Debian's sendmail 8.17 (root)"
    )
    parser.add_argument("--cf", choices=sorted(CONFIGS), default="office", help="fixture cf")
    parser.add_argument(
        "--addresses",
        type=int,
        default=1,
        help="distinct senders and recipients (default 1: alice to postmaster)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the scenarios this many times (median ratio)"
    )
    args = parser.parse_args()
    if args.sendmail:
        import smtp_sendmail

        reason = smtp_sendmail.why_not()
        if reason:
            raise SystemExit(f"--sendmail: {reason}")
        if args.target:
            raise SystemExit("--sendmail starts both servers itself: no --target")
        smtp_sendmail.reexec_in_namespace()
    scale = 10 if args.quick else 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-smtp-", dir=str(REPO.parent)))
    workdir.chmod(0o755)
    process = None
    sendmail_pid = None
    try:
        targets: list[tuple[str, str, int]] = []
        if args.target:
            host, port_text = args.target.rsplit(":", 1)
            targets.append(("target", host, int(port_text)))
        else:
            process, port, queue = start_pysendmail(workdir, args.cf)
            targets.append(("pysendmail", "127.0.0.1", port))
        if args.sendmail:
            config_dir, cf_name = CONFIGS[args.cf]
            sendmail_cf = smtp_sendmail.prepare(
                workdir / "oracle" / "configs" / config_dir, cf_name, workdir
            )
            sendmail_port = free_port()
            sendmail_pid = smtp_sendmail.start(sendmail_cf, sendmail_port)
            targets.append(("sendmail", "127.0.0.1", sendmail_port))
        print(
            f"# nproc={os.cpu_count()} python={sys.version.split()[0]} cf={args.cf} "
            f"addresses={args.addresses} load={os.getloadavg()[0]:.2f} "
            + " ".join(f"{who}={host}:{port}" for who, host, port in targets)
        )
        # Memory first, on fresh daemons: after the load their heaps have room to spare.
        if process is not None:
            before, after = idle_sessions_rss("127.0.0.1", port, process.pid, args.idle)
            print(
                f"pysendmail memory (PSS): {before / 1024:.1f} MiB idle, {after / 1024:.1f} MiB "
                f"with {args.idle} idle sessions ({(after - before) / args.idle:.1f} KiB each)"
            )
        if sendmail_pid is not None:
            before, after = idle_sessions_rss("127.0.0.1", sendmail_port, sendmail_pid, args.idle)
            print(
                f"sendmail memory (PSS, all processes): {before / 1024:.1f} MiB idle, "
                f"{after / 1024:.1f} MiB with {args.idle} idle sessions "
                f"({(after - before) / args.idle:.1f} KiB each)"
            )
        ratios: dict[str, list[float]] = {}
        for _round in range(args.repeat):
            for name, total, sessions, per in SCENARIOS:
                rates = {}
                for who, host, target_port in targets:
                    per_session = per if sessions > 1 else total // scale
                    server_pid = {"pysendmail": getattr(process, "pid", None)}
                    server_pid["sendmail"] = sendmail_pid
                    cpu_before = cpu_seconds(server_pid[who]) if server_pid.get(who) else 0.0
                    busy_before = machine_busy()
                    result = run_load(
                        host, target_port, total // scale, sessions, per_session, args.addresses
                    )
                    busy_after = machine_busy()
                    cpu_after = cpu_seconds(server_pid[who]) if server_pid.get(who) else 0.0
                    result["cpu_ms"] = 1000 * (cpu_after - cpu_before) / result["messages"]
                    result["busy"] = (busy_after[0] - busy_before[0]) / max(
                        1, busy_after[1] - busy_before[1]
                    )
                    rates[who] = result["rate"]
                    print(_line(name, who, result), flush=True)
                if "pysendmail" in rates and "sendmail" in rates:
                    ratio = rates["pysendmail"] / rates["sendmail"]
                    ratios.setdefault(name, []).append(ratio)
                    print(f"{name:22s} ratio pysendmail/sendmail = {ratio:.2f}")
        if args.repeat > 1:
            for name, values in ratios.items():
                listed = " ".join(f"{value:.2f}" for value in values)
                median = statistics.median(values)
                print(f"{name:22s} ratios {listed}: median {median:.2f}")
        sent = args.repeat * sum(total // scale for _, total, _, _ in SCENARIOS)
        if process is not None:
            print(f"pysendmail queue holds {_count_qf(queue)} qf files for {sent} messages sent")
        if sendmail_pid is not None:
            print(f"sendmail queue holds {smtp_sendmail.queued(sendmail_cf)} qf files for {sent}")
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        if sendmail_pid is not None:
            smtp_sendmail.stop(sendmail_pid)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
