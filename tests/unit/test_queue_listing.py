"""mailq / -bp: the listing byte for byte as sendmail 8.17 printed it."""

import json
import os
import re
import time

import pytest

from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import Header
from pysendmail.queue import listing
from pysendmail.queue.store import QueueStore
from tests.conftest import cli_case

QID_LINE = re.compile(r"^[0-9A-Za-x]{8}\d{6}[ *X\-]")


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _queue_dir_of(case):
    for arg in case["argv"]:
        if arg.startswith("QueueDirectory="):
            return arg.split("=", 1)[1]
    raise KeyError("QueueDirectory")


def _materialise(case, where):
    where.mkdir(parents=True, exist_ok=True)
    for name, entry in case["queue_files"].items():
        (where / name).write_bytes(entry["text"].encode("utf-8", "surrogateescape"))


def _blocks(text):
    """(head, [message blocks], tail) of a listing."""
    lines = text.splitlines(keepends=True)
    head, blocks, tail = [], [], []
    for line in lines:
        if line.startswith("\t\tTotal requests:"):
            tail.append(line)
        elif QID_LINE.match(line):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
        else:
            head.append(line)
    return "".join(head), ["".join(b) for b in blocks], "".join(tail)


def _priority_of(block, queue_dir):
    qid = block[:14]
    return next(m.priority for m in listing.gather(str(queue_dir)) if m.qid == qid)


@pytest.mark.parametrize("name", ["bp_four_queued", "bp_four_queued_v"])
def test_listing_matches_sendmail(oracle_dir, tmp_path, utc, name):
    case = cli_case(oracle_dir, name)
    queue_dir = tmp_path / "mqueue"
    _materialise(case, queue_dir)
    text, code = listing.list_queue(
        str(queue_dir), verbose="-v" in case["argv"], display_dir=_queue_dir_of(case)
    )
    assert code == case["exit_code"] == 0
    ours, theirs = _blocks(text), _blocks(case["stdout"])
    assert ours[0] == theirs[0] and ours[2] == theirs[2]
    # Equal priorities keep directory order (as sendmail's stable qsort does), which
    # differs between file systems; everything else is fixed.
    assert sorted(ours[1]) == sorted(theirs[1])
    priorities = [_priority_of(b, queue_dir) for b in ours[1]]
    assert priorities == sorted(priorities)
    assert text == ours[0] + "".join(ours[1]) + ours[2]


def test_listing_of_the_samples_in_the_fixture_order_is_exact(oracle_dir, tmp_path, utc):
    case = cli_case(oracle_dir, "bp_four_queued")
    queue_dir = tmp_path / "mqueue"
    _materialise(case, queue_dir)
    messages = listing.gather(str(queue_dir))
    wanted = [b[:14] for b in _blocks(case["stdout"])[1]]
    messages.sort(key=lambda m: wanted.index(m.qid))
    assert listing.format_listing(_queue_dir_of(case), messages) == case["stdout"]


@pytest.mark.parametrize("name", ["mailq_argv0_empty", "untrusted_bp"])
def test_empty_queue(oracle_dir, tmp_path, name):
    case = cli_case(oracle_dir, name)
    queue_dir = tmp_path / "mqueue"
    queue_dir.mkdir()
    text, code = listing.list_queue(str(queue_dir), display_dir=_queue_dir_of(case))
    assert (text, code) == (case["stdout"], case["exit_code"])


def test_missing_queue_directory_is_exit_78(oracle_dir, tmp_path):
    case = cli_case(oracle_dir, "bp_nonexistent_qdir")
    text, code = listing.list_queue(str(tmp_path / "nope"), display_dir=_queue_dir_of(case))
    assert (text, code) == (case["stdout"], 78)


def test_locked_message_is_starred_and_single_request_is_singular(tmp_path, utc):
    store = QueueStore(tmp_path, fsync=False)
    qid = store.enqueue(
        Envelope(sender="a\\b\x01", recipients=[Recipient("bob")]), [Header("S", "x")], b"b\n"
    )
    held = store.lock(qid)
    text, _ = listing.list_queue(str(tmp_path))
    held.release()
    assert text.startswith(f"\t\t{tmp_path} (1 request)\n")
    assert f"\n{qid}*" in text
    assert " a\\\\b\\001\n" in text  # prtstr escapes


def test_body_type_and_long_status_are_shown_as_sendmail_does(tmp_path, utc):
    (tmp_path / "qf6AQBB1aa000001").write_bytes(
        b"V8\nT1795691461\nK0\nN0\nP1\nM" + b"z" * 80 + b"\nB8BITMIME\nFw\nSroot\nRPFD:bob\n.\n"
    )
    text, _ = listing.list_queue(str(tmp_path))
    assert "\n      8BITMIME   (" + "z" * 60 + ")\n" in text
    assert "6AQBB1aa000001       -1 Thu Nov 26 11:11 root\n" in text
    verbose, _ = listing.list_queue(str(tmp_path), verbose=True)
    assert "-1          1+Nov 26 11:11 root" in verbose  # + = warning sent
    assert "(" + "z" * 80 + ")" in verbose


def test_json_listing(oracle_dir, tmp_path):
    case = cli_case(oracle_dir, "bp_four_queued")
    _materialise(case, tmp_path / "q")
    text, code = listing.list_queue_json(str(tmp_path / "q"))
    doc = json.loads(text)
    assert code == 0 and doc["total"] == 5
    by_id = {m["id"]: m for m in doc["messages"]}
    assert by_id["6AQBB1qM009526"]["status"].startswith("Deferred:")
    assert by_id["6AQBB1lp009524"]["recipients"] == [
        {"address": "alice", "flags": "FDA", "controlling_user": "alice:1001:1001:sales"}
    ]
    assert by_id["6AQBB1lo009524"]["size"] == 5019
    missing, code = listing.list_queue_json(str(tmp_path / "nope"))
    assert code == 78 and "No such file" in json.loads(missing)["error"]


def test_ten_thousand_messages_are_listed(tmp_path, utc):
    store = QueueStore(tmp_path, fsync=False)
    template = store.enqueue(
        Envelope(sender="s@example.com", recipients=[Recipient("bob")]), [], b"body\n"
    )
    qf_bytes = (tmp_path / f"qf{template}").read_bytes()
    for i in range(9999):
        qid = f"6AQBB1{i // 3600:02d}{i % 3600:06d}"
        (tmp_path / f"df{qid}").write_bytes(b"body\n")
        (tmp_path / f"qf{qid}").write_bytes(qf_bytes.replace(b"\nP", b"\nP%d" % i, 1))
    text, code = listing.list_queue(str(tmp_path))
    assert code == 0
    assert text.endswith("\t\tTotal requests: 10000\n")
    assert text.count("\t\t\t\t\t bob\n") == 10000
    assert len(os.listdir(tmp_path)) == 20000
