"""Time to open (lock and index) a large mbox through pysendmail's POP3 daemon.

    python bench/pop3_open.py [--size-mb 1024] [--body-size 100000] [--runs 3] [--dir DIR]

Writes an mbox of about SIZE MB, starts the daemon in a child process on 127.0.0.1, and
times USER/PASS (the server opens and indexes the mbox before it answers PASS), then
STAT and a LIST of every message, which are answered from that index. The file is in
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

from pop3_common import PASSWORD, USER, ServerProcess, machine, write_mbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--body-size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    count = max(1, args.size_mb * 1_000_000 // (args.body_size + 300))
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        spool = Path(folder)
        size = write_mbox(spool / USER, count, args.body_size)
        server = ServerProcess(spool)
        timings = []
        try:
            for _ in range(args.runs):
                client = poplib.POP3("127.0.0.1", server.port, timeout=600)
                started = time.perf_counter()
                client.user(USER)
                client.pass_(PASSWORD)
                opened = time.perf_counter()
                listed = len(client.list()[1])
                stat = client.stat()
                answered = time.perf_counter()
                client.quit()
                assert listed == stat[0] == count, (listed, stat, count)
                timings.append((opened - started, answered - opened))
        finally:
            server.stop()
    print(machine())
    print(f"mbox: {count} messages, {size / 1e6:.0f} MB")
    for run, (open_s, list_s) in enumerate(timings, start=1):
        print(f"run {run}: login (open + index) {open_s:.2f} s, then LIST + STAT {list_s:.3f} s")


if __name__ == "__main__":
    main()
