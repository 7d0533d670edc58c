"""Wall and CPU time of `sendmail -t -i < message`, queue only, beside a bare interpreter
and, where it can be run, the real sendmail 8.17 on the same configuration.

Runs each command RUNS times (default 200), the commands by turns so that each meets the
same moments of the machine's load, and prints the median, minimum and 95th percentile
of the wall time, and the CPU time (user + system) per run:

  python3 -c pass                        the floor: starting the interpreter
  pysendmail -t -i -odq < message        a whole submission into a private queue
  pysendmail -t -i -odd < message        the same, lookups deferred to the queue run
  installed script -t -i -odq < message  the same through the script `pip install` installs
                                         (it imports `re` before pysendmail starts)
  sendmail 8.17 -t -i -odq < message     the real one, on the same cf and queue options

    python bench/cli_submit.py [--runs N] [--cf FILE] [--real-sendmail PATH]
                               [--instructions] [--python INTERPRETER]

Both programs read the same cf: --cf, else pysendmail's embedded default.cf (a
sendmail.cf made by sendmail's own m4 macros, with no database maps, so the real
sendmail reads it as it is). The real sendmail is found at --real-sendmail, in
$PYSENDMAIL_REAL_SENDMAIL, at Debian's /usr/lib/sm.bin/sendmail, or unpacked from
Debian's sendmail-bin package (fetched with apt-get download when missing,
bench/queue_common.py). It runs as root in its own network and UTS namespaces
(`unshare -n -u`): no packet leaves and its host name is set there only; every command
of that run then goes through the same wrapper so that the figures compare.

The package is byte-compiled first (as `pip install` does), so that a machine with
PYTHONDONTWRITEBYTECODE set measures what an installed pysendmail costs. With
--instructions, valgrind (when installed) also counts the instructions of one run of
each Python command: a figure that does not move with the machine's load.

--python runs the measured commands with another interpreter, such as a clean venv's
(the warm-up run that translates the cf uses this one, which has lark).

The queue is checked after each series: one qf/df pair per run, or no figure is printed.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MESSAGE = (
    b"From: Alice <alice@example.com>\n"
    b"To: bob@example.com\n"
    b"Bcc: carol@example.com\n"
    b"Subject: benchmark\n"
    b"\n" + b"A line of the body of a small message.\n" * 40
)

# The installed command's own call: main() with no argv reads sys.argv (and may end the
# process itself once a submission is done, cli.main.allow_quick_exit).
ENTRY = (
    "import sys; sys.argv[0] = 'sendmail'; from pysendmail.cli.main import main; sys.exit(main())"
)
# The installed `pysendmail` (and so `sendmail`, a link to it): the package's own script,
# scripts/pysendmail, which pip copies with its first line pointed at the interpreter.
INSTALLED_SCRIPT = "scripts/pysendmail"

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CF = REPO / "pysendmail" / "config" / "default.cf"
NAMESPACE = ["unshare", "-n", "-u", "sh", "-c", 'hostname bench.example.com && exec "$@"', "sh"]


def timed(argv: list[str], runs: int, stdin: bytes, env: dict) -> tuple[list[float], float]:
    """Wall times in ms of each run, and the children's CPU time (user + system) per run."""
    import time

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
    return times, used * 1000 / runs


def report(label: str, times: list[float], cpu: float) -> None:
    times = sorted(times)
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    print(
        f"{label:<40} wall median {statistics.median(times):6.1f} ms  "
        f"min {times[0]:6.1f}  p95 {p95:6.1f}  CPU {cpu:5.1f} ms/run"
    )


def instructions(argv: list[str], stdin: bytes, env: dict) -> str:
    """Instructions executed by one run (valgrind's callgrind), in millions."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        input=stdin,
        capture_output=True,
        env=env,
    )
    found = re.search(rb"Collected : (\d+)", result.stderr)
    if result.returncode != 0:
        return f"? (exit {result.returncode}: {result.stderr.splitlines()[-1:]!r})"
    return f"{int(found.group(1)) / 1e6:.1f} M" if found else "?"


def find_real_sendmail(given: str | None) -> Path | None:
    from queue_common import real_sendmail

    found = real_sendmail()
    for candidate in (given, "/usr/lib/sm.bin/sendmail", str(found) if found else None):
        if (
            candidate
            and os.access(candidate, os.X_OK)
            and Path(os.path.realpath(candidate)).read_bytes()[:4] == b"\x7fELF"
        ):
            return Path(candidate)
    return None


def namespaces_work() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run([*NAMESPACE, "true"], capture_output=True).returncode == 0


def fresh(queue: Path) -> None:
    shutil.rmtree(queue, ignore_errors=True)
    queue.mkdir(mode=0o700)


def check_queue(queue: Path, runs: int) -> None:
    written = sorted(p.name[:2] for p in queue.iterdir())
    if written != ["df"] * runs + ["qf"] * runs:
        sys.exit(f"expected {runs} qf/df pairs in {queue}, found {len(written)} files")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cf", default=str(DEFAULT_CF))
    parser.add_argument("--real-sendmail", default=None)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of the measured runs, e.g. a clean venv's (python3 -m venv DIR)",
    )
    args = parser.parse_args()

    compileall.compile_dir(REPO / "pysendmail", quiet=1)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    real = find_real_sendmail(args.real_sendmail)
    wrapper = NAMESPACE if real is not None and namespaces_work() else []
    if real is not None and not wrapper:
        print(f"{real} found, but it runs here only as root with unshare(1): not measured")
        real = None
    # sendmail refuses a queue or cf below a world-writable directory such as /tmp.
    work = Path(tempfile.mkdtemp(prefix="pysendmail-bench-", dir=Path.home() if real else None))
    try:
        work.chmod(0o755)
        # A cache of its own: the user's is shared with whatever else runs (and pruned).
        env["XDG_CACHE_HOME"] = str(work / "cache")
        cf = work / "sendmail.cf"
        shutil.copyfile(args.cf, cf)
        (work / "aliases").write_text("postmaster: root\n")

        def options(queue: Path) -> list[str]:
            return [
                *("-C", str(cf), "-O", f"QueueDirectory={queue}"),
                *("-O", f"AliasFile={work / 'aliases'}", "-O", f"HostStatusDirectory={work}"),
            ]

        print(
            f"{args.runs} runs each, the commands by turns; {os.cpu_count()} cores; "
            f"Python {sys.version.split()[0]}; cf {args.cf}"
            + ("; every command in unshare -n -u" if wrapper else "")
        )
        script = work / "sendmail"
        script.write_text((REPO / INSTALLED_SCRIPT).read_text())
        # label -> (argv, stdin, queue directory or None)
        series: dict[str, tuple[list[str], bytes, Path | None]] = {
            "python3 -c pass": ([*wrapper, args.python, "-c", "pass"], b"", None)
        }
        for mode in ("-odq", "-odd"):
            queue = work / f"mqueue{mode}"
            fresh(queue)
            # One run first so that the configuration cache is warm, as on a live system.
            warm = [sys.executable, "-c", ENTRY, *options(queue), mode, "-t", "-i"]
            timed([*wrapper, *warm], 1, MESSAGE, env)
            fresh(queue)
            argv = [*wrapper, args.python, "-c", ENTRY, *options(queue), mode, "-t", "-i"]
            series[f"pysendmail -t -i {mode} < message"] = (argv, MESSAGE, queue)
        queue = work / "mqueue-script"
        fresh(queue)
        timed(
            [*wrapper, sys.executable, str(script), *options(queue), "-odq", "-t", "-i"],
            1,
            MESSAGE,
            env,
        )
        fresh(queue)
        argv = [*wrapper, args.python, str(script), *options(queue), "-odq", "-t", "-i"]
        series["installed script -t -i -odq < message"] = (argv, MESSAGE, queue)
        if real is not None:
            queue = work / "mqueue-sendmail"
            fresh(queue)
            argv = [*wrapper, str(real), *options(queue), "-odq", "-t", "-i"]
            series["sendmail 8.17 -t -i -odq < message"] = (argv, MESSAGE, queue)
        # By turns, so that every command meets the same moments of the machine's load.
        walls: dict[str, list[float]] = {label: [] for label in series}
        cpus: dict[str, float] = dict.fromkeys(series, 0.0)
        for _ in range(args.runs):
            for label, (argv, stdin, _queue) in series.items():
                wall, cpu = timed(argv, 1, stdin, env)
                walls[label] += wall
                cpus[label] += cpu
        for label, (_argv, _stdin, queue) in series.items():
            report(label, walls[label], cpus[label] / args.runs)
            if queue is not None:
                check_queue(queue, args.runs)
        if real is None:
            print("the real sendmail was not found: no figure for it")
        queue = work / "mqueue"
        if args.instructions and shutil.which("valgrind"):
            fresh(queue)
            # the cache for the host name outside the namespace
            warm = [sys.executable, "-c", ENTRY, *options(queue), "-odq", "-t", "-i"]
            timed(warm, 1, MESSAGE, env)
            fresh(queue)
            python = [args.python, "-c"]
            print("instructions, one run each (valgrind):")
            print(f"  python3 -c pass                 {instructions([*python, 'pass'], b'', env)}")
            submit = [*python, ENTRY, *options(queue), "-odq", "-t", "-i"]
            print(f"  pysendmail -t -i -odq           {instructions(submit, MESSAGE, env)}")
            fresh(queue)
            through_script = [args.python, str(script), *options(queue), "-odq", "-t", "-i"]
            print(f"  installed script -t -i -odq     {instructions(through_script, MESSAGE, env)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
