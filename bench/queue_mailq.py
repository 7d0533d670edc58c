"""`mailq` on a queue of N messages (default 10,000): pysendmail and sendmail 8.17.

    python bench/queue_mailq.py [--messages N] [--runs R]

Prints the median wall time of R runs (default 5) of:
  list_queue()            the listing function, in-process (what -bp calls)
  pysendmail -bp          the whole command (interpreter start, config, listing)
  sendmail -bp            Debian's sendmail 8.17, when it can be fetched (it is unpacked,
                          never installed, and run in its own network namespace)
The listings are compared: the figures are printed only when both list N requests.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from queue_common import (
    REPO_ROOT,
    fill_queue,
    office_config,
    real_sendmail,
    safe_workdir,
    sendmail_argv,
)

from pysendmail.queue.listing import list_queue


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = safe_workdir(".bench-mailq-")
    try:
        queue_dir = work / "mqueue"
        queue_dir.mkdir(mode=0o700)
        fill_queue(queue_dir, args.messages)
        cf = office_config(work)
        total = f"Total requests: {args.messages}\n"

        text, _ = list_queue(str(queue_dir))
        assert text.endswith(total)
        print(
            f"list_queue()      {median_ms(lambda: list_queue(str(queue_dir)), args.runs):9.1f} ms"
        )

        ours = [
            sys.executable,
            "-m",
            "pysendmail",
            "-C",
            str(cf),
            "-O",
            f"QueueDirectory={queue_dir}",
            "-bp",
        ]
        env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
        out = subprocess.run(ours, capture_output=True, text=True, env=env)
        if out.stdout.endswith(total):
            ms = median_ms(lambda: subprocess.run(ours, capture_output=True, env=env), args.runs)
            print(f"pysendmail -bp    {ms:9.1f} ms")
        else:
            print(f"pysendmail -bp    not measured: {out.stderr.strip()[:200]}")

        binary = real_sendmail()
        if binary is None or shutil.which("unshare") is None:
            print("sendmail -bp      not measured: sendmail-bin or unshare unavailable")
            return
        theirs = sendmail_argv(binary, cf, queue_dir, "-bp")
        out = subprocess.run(theirs, capture_output=True, text=True)
        if not out.stdout.endswith(total):
            print(f"sendmail -bp      not measured: {(out.stdout + out.stderr)[-200:]}")
            return
        ms = median_ms(lambda: subprocess.run(theirs, capture_output=True), args.runs)
        print(f"sendmail -bp      {ms:9.1f} ms")
        same = out.stdout == text
        print(f"identical listing: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
