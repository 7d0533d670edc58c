"""`mailq` on a queue of N messages (default 10,000): pysendmail and sendmail 8.17.

    python bench/queue_mailq.py [--messages N] [--runs R] [--python PATH]

Prints the median wall time of R runs (default 5) of, and for the commands the median CPU
time (user + system of the child processes: steadier than wall time on a busy machine):
  list_queue()            the listing function, in-process (what -bp calls), and the
                          same read by two processes (forced: the command splits a
                          large queue only when the load average leaves a CPU idle)
  pysendmail -bp          the whole command (interpreter start, config, listing): the
                          `pysendmail` console script beside --python when there is one
                          (what a user runs), else `--python -m pysendmail`; this
                          checkout's code either way (PYTHONPATH)
  sendmail -bp            Debian's sendmail 8.17, when it can be fetched (it is unpacked,
                          never installed, and run in its own network namespace)
Both commands run in the same network/UTS namespace wrapper, taking turns. The listings
are compared: the figures are printed only when both list N requests.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from queue_common import (
    REPO_ROOT,
    fill_queue,
    office_config,
    real_sendmail,
    safe_workdir,
    sendmail_argv,
)

from pysendmail.queue import items
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
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of the pysendmail command (e.g. a clean venv's)",
    )
    args = parser.parse_args()
    work = safe_workdir(".bench-mailq-")
    try:
        queue_dir = work / "mqueue"
        queue_dir.mkdir(mode=0o700)
        fill_queue(queue_dir, args.messages)
        cf = office_config(work)
        env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
        total = f"Total requests: {args.messages}\n"

        text, _ = list_queue(str(queue_dir))
        assert text.endswith(total)
        print(
            f"list_queue()      {median_ms(lambda: list_queue(str(queue_dir)), args.runs):9.1f} ms"
        )
        # The command reads a large queue in two processes only when the load average
        # leaves a CPU idle; here the split is forced, to show what it gives now.
        idle = items._a_cpu_is_idle
        items._a_cpu_is_idle = lambda: True
        split_ms = median_ms(lambda: list_queue(str(queue_dir), split=True), args.runs)
        items._a_cpu_is_idle = idle
        print(f"  in two processes {split_ms:8.1f} ms (forced; the command splits only")
        print(f"  when the load average, now {os.getloadavg()[0]:.2f}, leaves a CPU idle)")

        script = Path(args.python).parent / "pysendmail"
        front = [str(script)] if script.exists() else [args.python, "-m", "pysendmail"]
        ours = [*front, "-C", str(cf), "-O", f"QueueDirectory={queue_dir}", "-bp"]
        print(f"command: {' '.join(front)} -bp")
        binary = real_sendmail()
        if binary is None or shutil.which("unshare") is None:
            print("sendmail -bp      not measured: sendmail-bin or unshare unavailable")
            theirs = None
        else:
            theirs = sendmail_argv(binary, cf, queue_dir, "-bp")
            # the same namespace wrapper around both, so that the figures compare
            ours = [*theirs[: theirs.index(str(binary))], *ours]
        subprocess.run(ours, capture_output=True, env=env)  # the first run caches the cf
        out = subprocess.run(ours, capture_output=True, text=True, env=env)
        if not out.stdout.endswith(total):
            print(f"pysendmail -bp    not measured: {out.stderr.strip()[:200]}")
            return
        commands = {"pysendmail -bp": ours}
        if theirs is not None:
            listed = subprocess.run(theirs, capture_output=True, text=True)
            if listed.stdout.endswith(total):
                commands["sendmail -bp"] = theirs
                print(f"identical listing: {listed.stdout == out.stdout}")
            else:
                print(f"sendmail -bp      not measured: {(listed.stdout + listed.stderr)[-200:]}")
        # the commands take turns, so that a change of the machine's load hits both
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                used = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(argv, capture_output=True, env=env)
                walls[name].append((time.perf_counter() - start) * 1000)
                now = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime
                cpus[name].append(cpu * 1000)
        for name, series in walls.items():
            print(
                f"{name:17} {statistics.median(series):9.1f} ms wall (min {min(series):.1f}),"
                f" {statistics.median(cpus[name]):.1f} ms CPU (user+system, median)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
