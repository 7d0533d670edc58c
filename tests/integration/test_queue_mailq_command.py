"""The real `mailq` command (argv0 `mailq`, and `sendmail -bp [-v]`) on the queue that
sendmail 8.17 wrote for the fixture cases bp_four_queued and bp_four_queued_v: its
output is sendmail's recorded listing, byte for byte (messages of equal priority keep
directory order, which differs between file systems: those are compared as a set), and
QueueSortOrder=filename lists them by queue ID."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_case, command, subprocess_env

QID_LINE = re.compile(r"^[0-9A-Za-x]{8}\d{6}[ *]")


def _blocks(text: str) -> tuple[str, list[str], str]:
    head, blocks, tail = [], [], []
    for line in text.splitlines(keepends=True):
        if line.startswith("\t\tTotal requests:"):
            tail.append(line)
        elif QID_LINE.match(line):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
        else:
            head.append(line)
    return "".join(head), ["".join(b) for b in blocks], "".join(tail)


def _queue_of(case: dict) -> Path:
    value = next(a for a in case["argv"] if a.startswith("QueueDirectory="))
    queue = Path(value.split("=", 1)[1])
    queue.mkdir(parents=True, exist_ok=True)
    for name, entry in case["queue_files"].items():
        (queue / name).write_bytes(entry["text"].encode("utf-8", "surrogateescape"))
    return queue


def _run(argv0: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    # The records were made on an idle machine; on a busy one the listing would mark with
    # X what a queue run keeps queued for the load average (QueueLA), as sendmail's does.
    unloaded = ["-O", "QueueLA=1000"]
    return subprocess.run(
        [*command(argv0), *unloaded, *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    ("name", "argv0", "mode"),
    [
        ("bp_four_queued", "mailq", []),
        ("bp_four_queued", "sendmail", ["-bp"]),
        ("bp_four_queued_v", "sendmail", ["-bp", "-v"]),
        ("bp_four_queued_v", "mailq", ["-v"]),
    ],
)
def test_the_command_prints_sendmails_listing(oracle_dir, tmp_path, name, argv0, mode):
    case = cli_case(oracle_dir, name)
    queue = _queue_of(case)
    cf = oracle_dir / "configs" / "office" / "office.cf"
    run = _run(argv0, ["-C", str(cf), "-O", f"QueueDirectory={queue}", *mode], tmp_path)
    assert run.returncode == case["exit_code"] == 0, run.stderr
    ours, theirs = _blocks(run.stdout), _blocks(case["stdout"])
    assert ours[0] == theirs[0] and ours[2] == theirs[2]
    assert sorted(ours[1]) == sorted(theirs[1])
    assert run.stdout == ours[0] + "".join(ours[1]) + ours[2]


def test_queue_sort_order_filename_lists_by_queue_id(oracle_dir, tmp_path):
    case = cli_case(oracle_dir, "bp_four_queued")
    queue = _queue_of(case)
    cf = oracle_dir / "configs" / "office" / "office.cf"
    args = ["-C", str(cf), "-O", f"QueueDirectory={queue}", "-O", "QueueSortOrder=filename"]
    run = _run("mailq", args, tmp_path)
    listed = [block[:14] for block in _blocks(run.stdout)[1]]
    assert listed == sorted(listed) and len(listed) == 5
    assert sorted(_blocks(run.stdout)[1]) == sorted(_blocks(case["stdout"])[1])
