"""RETR every message of a large mbox through pysendmail's POP3 daemon.

    python bench/pop3_retr.py [--messages 10000] [--body-size 2000] [--dir DIR]

Writes an mbox of N messages, starts the daemon in a child process on 127.0.0.1, logs in
with poplib (the login time is the time to open and index the mbox), RETRs every
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

from pop3_common import PASSWORD, USER, ServerProcess, machine, write_mbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--body-size", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        spool = Path(folder)
        size = write_mbox(spool / USER, args.messages, args.body_size)
        server = ServerProcess(spool)
        try:
            client = poplib.POP3("127.0.0.1", server.port, timeout=600)
            started = time.perf_counter()
            client.user(USER)
            client.pass_(PASSWORD)
            opened = time.perf_counter()
            count, octets = client.stat()
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
    print(machine())
    print(f"mbox: {args.messages} messages, {size / 1e6:.1f} MB on disk ({octets} octets listed)")
    print(f"login (open + index): {opened - started:.3f} s")
    print(
        f"RETR all: {retr_seconds:.2f} s, {count / retr_seconds:.0f} messages/s, "
        f"{received / retr_seconds / 1e6:.1f} MB/s"
    )


if __name__ == "__main__":
    main()
