"""The SMTP daemon's CPU per message, in one process, without sockets or fsync.

    python bench/smtp_profile.py --cf office                 # ms of CPU per message
    python bench/smtp_profile.py --cf office --addresses 500 # 500 senders and recipients
    python bench/smtp_profile.py --cf office --profile       # and cProfile's top entries

Each message is one session as the 20 x 1 load scenario sends it: the connection is
checked (the client's name from the hosts file, check_relay), then EHLO, MAIL FROM,
RCPT TO, DATA with a 4 KB message, QUIT, through the daemon's own `SmtpConnection` and
the `SmtpService` the cf gives (the rules engine runs check_relay/check_mail/check_rcpt
and routing where the cf has hand-written rules). The queue is real, in a temporary
directory, only its fsyncs are off: what is measured is the Python the daemon runs per
message. Every reply is checked, so a refused message stops the run.

`--addresses N` spreads the messages over N senders (`sN@example.com`) and N recipients
(`rN@virtual.example.org`, the fixture virtusertable's catch-all), so that no answer
comes from a single cached one.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]  # this checkout's pysendmail, then bench/

from bench_smtp import CONFIGS, addresses, copy_fixtures, message  # noqa: E402

from pysendmail.config.model import Overrides  # noqa: E402
from pysendmail.config.translate import translate  # noqa: E402
from pysendmail.daemons.server import SmtpService, service_from_config  # noqa: E402
from pysendmail.daemons.smtpd import SmtpConnection, _Channel  # noqa: E402
from pysendmail.protocol.smtp import ClientInfo  # noqa: E402
from pysendmail.queue.store import QueueStore  # noqa: E402


class _Sink(io.BytesIO):
    """The connection's replies, kept to be checked."""


def one_session(service: SmtpService, numbers: list[int], distinct: int) -> None:
    addr = "127.0.0.1"
    name, resolve = service.hosts.client_name(addr)
    client = ClientInfo(addr=addr, name=name, resolve=resolve, port=40000)
    sink = _Sink()
    settings = service.settings_for(None, tls_on_connect=False)
    connection = SmtpConnection(service, _Channel(None, None, sink), client, settings)

    def say(data: bytes, code: bytes) -> None:
        start = sink.tell()
        connection._handle(connection.session.feed(data))
        reply = sink.getvalue()[start:]
        last = reply.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        if not last.startswith(code):
            raise SystemExit(f"expected {code!r} after {data[:40]!r}, got {reply!r}")

    greeting = service.greeting(connection._macros, time.time())
    connection._handle(connection.session.start(greeting=greeting))
    say(b"EHLO bench.example.net\r\n", b"250")
    for number in numbers:
        sender, recipient = addresses(number, distinct)
        say(f"MAIL FROM:<{sender}>\r\n".encode(), b"250")
        say(f"RCPT TO:<{recipient}>\r\n".encode(), b"250")
        say(b"DATA\r\n", b"354")
        say(message(number), b"250")
    say(b"QUIT\r\n", b"221")


def _memos(service: SmtpService) -> list[tuple[str, object]]:
    """The rules engine's memos the service holds (rules/memo.py), when the cf has rules."""
    found = []
    checks = getattr(service.policy, "rule_checks", None)
    if checks is not None and checks.world.memo is not None:
        found.append(("check rulesets", checks.world.memo))
    router = getattr(getattr(service.policy, "recipients", None), "router", None)
    rules = getattr(getattr(router, "_rules", None), "_router", None)
    if rules is not None and rules.world.memo is not None:
        found.append(("router", rules.world.memo))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cf", choices=sorted(CONFIGS), default="office")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--per-session", type=int, default=1, help="messages a session")
    parser.add_argument("--addresses", type=int, default=1, help="distinct sender/recipients")
    parser.add_argument("--warmup", type=int, default=200, help="messages before measuring")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    parser.add_argument("--top", type=int, default=25, help="how many entries --profile prints")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smtp-profile-") as tmp:
        workdir = Path(tmp)
        oracle = copy_fixtures(workdir)
        queue = workdir / "mqueue"
        queue.mkdir()
        options = {
            "DaemonPortOptions": "Name=MTA, Port=2525, Addr=127.0.0.1",
            "QueueDirectory": str(queue),
            "MaxMessageSize": "0",
            "DeliveryMode": "queueonly",
            "ConnectionRateThrottle": "0",
        }
        config_dir, cf_name = CONFIGS[args.cf]
        config = translate(
            str(oracle / "configs" / config_dir / cf_name),
            Overrides(options=options),
            hostname="mail.example.com",
        )
        service = service_from_config(config, store=QueueStore(queue, fsync=False))

        def run(first: int, count: int) -> None:
            numbers = list(range(first, first + count))
            for start in range(0, count, args.per_session):
                one_session(service, numbers[start : start + args.per_session], args.addresses)

        run(0, args.warmup)
        profiler = cProfile.Profile() if args.profile else None
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        run(args.warmup, args.messages)
        if profiler is not None:
            profiler.disable()
        spent = time.process_time() - started
        per = spent / args.messages * 1000
        print(
            f"cf={args.cf} messages={args.messages} per_session={args.per_session} "
            f"addresses={args.addresses}: {per:.2f} ms CPU per message "
            f"({args.messages / spent:.0f} msgs/s of one CPU)"
        )
        for name, memo in _memos(service):
            print(f"memo of the {name}: {len(memo)} keys, {memo.hits} hits, {memo.misses} misses")
        if profiler is not None:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
