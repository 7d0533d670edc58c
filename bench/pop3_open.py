"""Time to open (lock and index) a large mbox through pysendmail's POP3 daemon.

    python bench/pop3_open.py [--size-mb 1024] [--body-size 100000] [--runs 3] [--dir DIR]
                              [--server pysendmail|dovecot]

Writes an mbox of about SIZE MB, starts the daemon in a child process on 127.0.0.1, and
times USER/PASS/STAT (pysendmail opens and indexes the mbox before it answers PASS,
Dovecot at the first command that needs it), then a LIST of every message, answered from
that index. Each run is a new session; Dovecot keeps its index files between them. The file is in
the page cache after it was written: this measures the server's indexing, not the disk.
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
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--body-size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--server", choices=["pysendmail", "dovecot"], default="pysendmail")
    args = parser.parse_args()
    count = max(1, args.size_mb * 1_000_000 // (args.body_size + 300))
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        spool = Path(folder)
        size = write_mbox(spool / USER, count, args.body_size)
        server = start_server(args.server, spool)
        timings = []
        try:
            for _ in range(args.runs):
                client = poplib.POP3("127.0.0.1", server.port, timeout=600)
                started = time.perf_counter()
                client.user(USER)
                client.pass_(PASSWORD)
                stat = client.stat()  # Dovecot indexes the mbox here, not at PASS
                opened = time.perf_counter()
                listed = len(client.list()[1])
                answered = time.perf_counter()
                client.quit()
                assert listed == stat[0] == count, (listed, stat, count)
                timings.append((opened - started, answered - opened))
        finally:
            server.stop()
    print(machine(), "-", args.server)
    print(f"mbox: {count} messages, {size / 1e6:.0f} MB")
    for run, (open_s, list_s) in enumerate(timings, start=1):
        print(f"run {run}: login + STAT (open + index) {open_s:.2f} s, then LIST {list_s:.3f} s")


if __name__ == "__main__":
    main()
