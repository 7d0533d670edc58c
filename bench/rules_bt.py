"""Addresses per second through `3,0` and through `/parse` on Debian's stock config.

    python bench/rules_bt.py [--rounds N]

Runs one in-process -bt session per measurement (output discarded), over the
addresses of the recorded Debian bt cases, and prints addresses/second.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
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


def measure(world, lines: list[str]) -> float:
    text = "".join(line + "\n" for line in lines)
    # CPU time of this process: the figure does not depend on what else the machine runs
    start = time.process_time()
    run_testmode(world, io.StringIO(text), io.StringIO(), banner=False)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        oracle = oracle_copy(Path(tmp))
        cf = read_cf(oracle / "configs/debian/debian.cf")
        world = build_world(cf, hostname="mail.example.com")
        addrs = addresses(oracle) * args.rounds
        for label, prefix in (("3,0", "3,0 "), ("/parse", "/parse ")):
            elapsed = measure(world, [prefix + a for a in addrs])
            rate = len(addrs) / elapsed
            print(f"{label:7} {len(addrs)} addresses, {elapsed:.2f} s CPU: {rate:,.0f} addresses/s")
    print(f"nproc={os.cpu_count()} python={sys.version.split()[0]}")


if __name__ == "__main__":
    main()
