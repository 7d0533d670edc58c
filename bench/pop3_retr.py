"""RETR every message of a large mbox through pysendmail's POP3 daemon.

    python bench/pop3_retr.py [--messages 10000] [--body-size 2000] [--dir DIR]
                              [--server pysendmail|dovecot]

Writes an mbox of N messages, starts the daemon in a child process on 127.0.0.1, logs in
with poplib (login + STAT is the time to open and index the mbox), RETRs every
message and QUITs without deleting. Prints the times and the throughput.
"""

from __future__ import annotations

import argparse
import poplib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pop3_common import PASSWORD, USER, machine, start_server, write_mbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--body-size", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--server", choices=["pysendmail", "dovecot"], default="pysendmail")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        spool = Path(folder)
        size = write_mbox(spool / USER, args.messages, args.body_size)
        server = start_server(args.server, spool)
        try:
            client = poplib.POP3("127.0.0.1", server.port, timeout=600)
            started = time.perf_counter()
            client.user(USER)
            client.pass_(PASSWORD)
            count, octets = client.stat()  # Dovecot indexes the mbox here, not at PASS
            opened = time.perf_counter()
            assert count == args.messages, (count, args.messages)
            received = 0
            for number in range(1, count + 1):
                _, _, message_octets = client.retr(number)
                received += message_octets
            done = time.perf_counter()
            client.quit()
        finally:
            server.stop()
    retr_seconds = done - opened
    print(machine(), "-", args.server)
    print(f"mbox: {args.messages} messages, {size / 1e6:.1f} MB on disk ({octets} octets listed)")
    print(f"login + STAT (open + index): {opened - started:.3f} s")
    print(
        f"RETR all: {retr_seconds:.2f} s, {count / retr_seconds:.0f} messages/s, "
        f"{received / retr_seconds / 1e6:.1f} MB/s"
    )


if __name__ == "__main__":
    main()
