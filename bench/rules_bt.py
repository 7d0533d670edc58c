"""Addresses per second through `3,0` and through `/parse` on Debian's stock config,
ours beside the real sendmail 8.17's `-bt`.

    python bench/rules_bt.py [--rounds N] [--sendmail PATH]

Ours: one in-process -bt session per measurement (output kept), over the addresses
of the recorded Debian bt cases. sendmail: the same lines fed to one `sendmail -bt`
process (Debian's `sendmail-bin`, unpacked, as tests/integration/test_queue_sendmail_interop.py
fetches it), run in its own network and UTS namespaces (`unshare -n -u`, host name
mail.example.com there only); its CPU time is the children's rusage. Needs root and
unshare(1) for sendmail; without them only our figures are printed. Both outputs are
compared line by line, so the figures are for the same work.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pysendmail.config.cfparse import read_cf  # noqa: E402
from pysendmail.rules.context import build_world  # noqa: E402
from pysendmail.rules.testmode import run_testmode  # noqa: E402
from tests.conftest import FIXTURES_SRC  # noqa: E402


def oracle_copy(dest: Path) -> Path:
    target = dest / "sendmail-8.17"
    shutil.copytree(FIXTURES_SRC, target)
    for path in target.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
            data = path.read_bytes()
            if b"@ORACLE@" in data:
                path.write_bytes(data.replace(b"@ORACLE@", str(target).encode()))
    return target


def addresses(oracle: Path) -> list[str]:
    found = []
    for line in (oracle / "bt" / "bt_debian.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["kind"] == "parse" and case["address"] and len(case["address"]) < 200:
            found.append(case["address"])
    return found


def ours(world, lines: list[str]) -> tuple[float, float, str]:
    """(CPU seconds, wall seconds, output) of one in-process -bt session."""
    text = "".join(line + "\n" for line in lines)
    out = io.StringIO()
    wall = time.perf_counter()
    start = time.process_time()
    run_testmode(world, io.StringIO(text), out, banner=False)
    return time.process_time() - start, time.perf_counter() - wall, out.getvalue()


def theirs(binary: Path, cf: Path, lines: list[str]) -> tuple[float, float, str]:
    """(CPU seconds, wall seconds, output) of one `sendmail -bt` process."""
    text = "".join(line + "\n" for line in lines)
    # the loopback interface up, as on the machine that recorded the fixtures
    script = 'ip link set lo up 2>/dev/null; hostname mail.example.com && exec "$@"'
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run(
        ["unshare", "-n", "-u", "sh", "-c", script, "sh", str(binary), "-C", str(cf), "-bt"],
        input=text,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        check=False,
    )
    elapsed = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # sendmail's banner (and any warning before it); ours is run without it
    output = done.stdout.partition("Enter <ruleset> <address>\n")[2] or done.stdout
    return cpu, elapsed, output


def sendmail_binary(given: str | None) -> Path | None:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return None
    if given and os.access(given, os.X_OK):
        return Path(given)
    from queue_common import real_sendmail

    return real_sendmail()


def safe_dir() -> Path:
    """sendmail refuses a cf below a world-writable directory (as /tmp is)."""
    base = Path(tempfile.mkdtemp(prefix=".rules-bench-", dir=ROOT))
    base.chmod(0o755)
    for part in [base, *base.parents]:
        if part.stat().st_mode & stat.S_IWOTH:
            raise SystemExit(f"{part} is world-writable: sendmail would refuse the cf")
    return base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sendmail", help="the real sendmail binary (default: unpacked one)")
    args = parser.parse_args()
    binary = sendmail_binary(args.sendmail)
    base = safe_dir()
    try:
        oracle = oracle_copy(base)
        cf_path = oracle / "configs/debian/debian.cf"
        world = build_world(read_cf(cf_path), hostname="mail.example.com")
        addrs = addresses(oracle) * args.rounds
        print(f"{len(addrs)} addresses ({args.rounds} rounds of the recorded Debian /parse cases)")
        for label, prefix in (("3,0", "3,0 "), ("/parse", "/parse ")):
            lines = [prefix + a for a in addrs]
            cpu, wall, output = ours(world, lines)
            print(
                f"  pysendmail {label:7} {len(addrs) / cpu:9,.0f} addresses/s CPU"
                f"  ({cpu:.2f} s CPU, {wall:.2f} s wall)"
            )
            if binary is None:
                continue
            cpu, wall, expected = theirs(binary, cf_path, lines)
            print(
                f"  sendmail   {label:7} {len(addrs) / cpu:9,.0f} addresses/s CPU"
                f"  ({cpu:.2f} s CPU, {wall:.2f} s wall)"
            )
            same = sum(
                a == b for a, b in zip(output.split("\n> "), expected.split("\n> "), strict=False)
            )
            print(f"  same output for {same} of {len(expected.split(chr(10) + '> '))} answers")
        if binary is None:
            print("  (the real sendmail was not run: needs root, unshare and sendmail-bin)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"nproc={os.cpu_count()} python={sys.version.split()[0]}")


if __name__ == "__main__":
    main()
