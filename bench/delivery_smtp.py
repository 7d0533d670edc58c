"""Messages per second sent by remote delivery to an SMTP sink on 127.0.0.1.

    python3 bench/delivery_smtp.py [--messages N] [--size BYTES] [--recipients R]

The sink is a minimal threaded ESMTP server in this process (PIPELINING, 8BITMIME,
SIZE) that discards what it gets, so the figure is the client's: delivery.remote.
deliver_remote, first with one connection per message (EHLO, MAIL, RCPT x R, DATA,
QUIT), then with a queue run's connection cache (one connection, RSET between
messages). Only loopback is used.
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.connection_cache import ConnectionCache
from pysendmail.delivery.message import OutgoingMessage
from pysendmail.delivery.remote import RemoteSettings, deliver_remote
from pysendmail.dns import Resolver, ResolverSettings
from pysendmail.errors import Location


class SinkHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.wfile.write(b"220 sink ESMTP\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.wfile.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go\r\n")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                self.server.delivered += 1  # type: ignore[attr-defined]
                self.wfile.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


class Sink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    delivered = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--recipients", type=int, default=1)
    args = parser.parse_args()
    sink = Sink(("127.0.0.1", 0), SinkHandler)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    port = sink.server_address[1]
    mailer = MailerSpec(
        "esmtp", {"P": "[IPC]", "F": "mDFMuXa", "A": f"TCP $h {port}"}, Location("bench", 1)
    )
    settings = RemoteSettings(
        resolver=Resolver(ResolverSettings(host_sources=())), helo_name="bench.example.com"
    )
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\n"
    body = (line * (args.size // len(line) + 1))[: args.size].rstrip(b"\n") + b"\n"
    rcpts = [f"user{n}@sink.test" for n in range(args.recipients)]
    for how, cache in (
        ("one connection per message", None),
        ("one cached connection, RSET between (a queue run)", ConnectionCache(2, 300)),
    ):
        before = sink.delivered
        start = time.perf_counter()
        for n in range(args.messages):
            headers = f"Subject: bench {n}\n".encode()
            message = OutgoingMessage("<bench@example.com>", headers, body)
            results = deliver_remote(
                message, rcpts, "[127.0.0.1]", settings, mailer=mailer, cache=cache
            )
            assert all(r.is_success for r in results), results[0]
        elapsed = time.perf_counter() - start
        if cache is not None:
            cache.close()
        assert sink.delivered - before == args.messages
        print(
            f"{args.messages} messages of ~{args.size} bytes, {args.recipients} recipient(s)"
            f" each, {how}: {args.messages / elapsed:.0f} msg/s"
        )
    sink.shutdown()


if __name__ == "__main__":
    main()
