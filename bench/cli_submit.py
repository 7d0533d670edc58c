"""Wall time of `sendmail -t -i < message`, queue only, beside a bare interpreter.

Runs each command RUNS times in a row (default 200) and prints the median, mean and 95th
percentile in milliseconds:

  python3 -c pass                        the floor: starting the interpreter
  pysendmail -t -i -odq < message        a whole submission into a private queue
  /usr/sbin/sendmail -t -i -odq          the real sendmail, when it is installed and is
                                         not pysendmail itself

    python bench/cli_submit.py [--runs N] [--cf FILE]

The submission uses the configuration given with --cf (default: the system's, else the
embedded default) and a queue directory made for the run, removed afterwards. The
queue files are checked after the runs: one qf/df pair per run, or the figure is not
printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MESSAGE = (
    b"From: Alice <alice@example.com>\n"
    b"To: bob@example.com\n"
    b"Bcc: carol@example.com\n"
    b"Subject: benchmark\n"
    b"\n" + b"A line of the body of a small message.\n" * 40
)

ENTRY = (
    "import sys; from pysendmail.cli.main import main; sys.exit(main(['sendmail', *sys.argv[1:]]))"
)


CPU: dict[str, float] = {}


def timed(argv: list[str], runs: int, stdin: bytes = b"", env: dict | None = None) -> list[float]:
    """Wall times in ms; the children's CPU time (user + system) per run goes to CPU."""
    times = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(argv, input=stdin, capture_output=True, env=env)
        times.append((time.perf_counter() - start) * 1000)
        if result.returncode != 0:
            sys.exit(
                f"{argv[:3]}... failed ({result.returncode}): {result.stdout!r} {result.stderr!r}"
            )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU["last"] = used * 1000 / runs
    return times


def report(label: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[int(len(times) * 0.95) - 1]
    print(
        f"{label:<36} wall median {statistics.median(times):6.1f} ms  "
        f"min {times[0]:6.1f}  p95 {p95:6.1f}  CPU {CPU['last']:5.1f} ms/run"
    )


def real_sendmail() -> str | None:
    path = shutil.which("sendmail", path="/usr/sbin:/usr/lib:/usr/bin")
    if path is None:
        return None
    try:
        head = Path(os.path.realpath(path)).read_bytes()[:4]
    except OSError:
        return None
    return path if head == b"\x7fELF" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cf", default=None)
    args = parser.parse_args()

    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(repo))
    work = Path(tempfile.mkdtemp(prefix="pysendmail-bench-"))
    try:
        queue = work / "mqueue"
        queue.mkdir(mode=0o700)
        flags = ["-O", f"QueueDirectory={queue}", "-odq", "-t", "-i"]
        if args.cf:
            flags = ["-C", args.cf, *flags]
        print(f"{args.runs} runs each; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
        report("python3 -c pass", timed([sys.executable, "-c", "pass"], args.runs))
        # One run first so that the configuration cache is warm, as on a live system.
        timed([sys.executable, "-c", ENTRY, *flags], 1, MESSAGE, env)
        for mode in ("-odq", "-odd"):
            shutil.rmtree(queue)
            queue.mkdir(mode=0o700)
            argv = [sys.executable, "-c", ENTRY, *[mode if f == "-odq" else f for f in flags]]
            report(f"pysendmail -t -i {mode} < message", timed(argv, args.runs, MESSAGE, env))
            written = sorted(p.name[:2] for p in queue.iterdir())
            if written != ["df"] * args.runs + ["qf"] * args.runs:
                sys.exit(f"expected {args.runs} qf/df pairs in {queue}, found {len(written)}")
        real = real_sendmail()
        if real:
            shutil.rmtree(queue)
            queue.mkdir(mode=0o700)
            report(f"{real} -t -i -odq < message", timed([real, *flags], args.runs, MESSAGE))
        else:
            print("the real sendmail is not installed here: no figure for it")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
