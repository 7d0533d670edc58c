"""Memory of pysendmail's POP3 daemon while it sends one large message (RETR streams it).

    python bench/pop3_bigretr.py [--size-mb 256] [--dir DIR]

Writes an mbox holding one message of about SIZE MB (lines of 72 octets, one in ten
beginning with a dot), starts the daemon in a child process on 127.0.0.1, and RETRs the
message over a plain socket that counts and drops what it reads. Meanwhile it samples
the daemon's anonymous memory (RssAnon in /proc/PID/status: its heap, not the page
cache behind the mmap of the mbox) every 5 ms, and prints the largest value beside the
value before the RETR.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pop3_common import PASSWORD, USER, ServerProcess, machine


def write_big_mbox(path: Path, size_mb: int) -> int:
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\n"
    dotted = b"." + line[1:]
    block = (line * 9 + dotted) * 1000
    with open(path, "wb") as out:
        out.write(b"From big@example.com Thu Nov 26 12:00:00 2026\n")
        out.write(b"From: big@example.com\nTo: bench@example.com\nSubject: big\n\n")
        for _ in range(max(1, size_mb * 1_000_000 // len(block))):
            out.write(block)
        out.write(b"\n")
    return path.stat().st_size


def anon_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def retr_counting(port: int) -> int:
    """RETR 1 over a raw socket; the octets received until the final `.` line."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        for command in (f"USER {USER}", f"PASS {PASSWORD}", "RETR 1"):
            sock.sendall(command.encode() + b"\r\n")
            reply = reader.readline()
            assert reply.startswith(b"+OK"), reply
        received = 0
        while (line := reader.readline()) != b".\r\n":
            if not line:
                raise SystemExit("connection closed before the end of the message")
            received += len(line)
        sock.sendall(b"QUIT\r\n")
        reader.readline()
    return received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        spool = Path(folder)
        size = write_big_mbox(spool / USER, args.size_mb)
        server = ServerProcess(spool)
        pid = server._process.pid
        try:
            before = anon_kb(pid)
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], anon_kb(pid))
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            received = retr_counting(server.port)
            elapsed = time.perf_counter() - started
            done.set()
            sampler.join()
        finally:
            server.stop()
    print(machine(), "- pysendmail")
    print(f"mbox: one message, {size / 1e6:.0f} MB; RETR sent {received / 1e6:.0f} MB")
    print(f"RETR: {elapsed:.2f} s, {received / 1e6 / elapsed:.0f} MB/s")
    before_mb, peak_mb = before / 1024, peak[0] / 1024
    print(f"daemon anonymous memory: {before_mb:.1f} MB before, {peak_mb:.1f} MB at most")


if __name__ == "__main__":
    main()
