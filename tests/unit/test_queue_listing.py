"""mailq / -bp: the listing byte for byte as sendmail 8.17 printed it."""

import fcntl
import json
import os
import re
import signal
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import Header
from pysendmail.queue import items, listing
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


def _ten_messages(queue_dir):
    store = QueueStore(queue_dir, fsync=False)
    ids = []
    for n in range(10):
        envelope = Envelope(sender=f"s{n}@example.com", recipients=[Recipient(f"r{n}@x.test")])
        ids.append(store.enqueue(envelope, [Header("Subject", str(n))], b"body\n"))
    return store, ids


def test_a_queue_read_by_two_processes_lists_as_one_does(tmp_path, utc, monkeypatch):
    store, ids = _ten_messages(tmp_path)
    (tmp_path / f"df{ids[3]}").unlink()  # size -1
    (tmp_path / f"qf{ids[5]}").write_bytes(b"V8\nT1\nP5\nSa\\b\x01\nRPFD:x\nH?P?X: y\n.\n")
    held = store.lock(ids[7])  # marked * by the child as by this process
    try:
        monkeypatch.setattr(items, "SPLIT_FROM", 2)
        monkeypatch.setattr(items, "_a_cpu_is_idle", lambda: True)
        forks = []
        real_fork = os.fork
        monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
        for verbose in (False, True):
            one, _ = listing.list_queue(str(tmp_path), verbose=verbose)
            two, _ = listing.list_queue(str(tmp_path), verbose=verbose, split=True)
            assert two == one
        assert f"\n{ids[7]}*" in one and " -1 " in one and "a\\\\b\\001" in one
    finally:
        held.release()
    assert len(forks) == 2


def test_when_the_child_fails_this_process_reads_its_half(tmp_path, utc, monkeypatch):
    _ten_messages(tmp_path)
    expected, _ = listing.list_queue(str(tmp_path))
    monkeypatch.setattr(items, "SPLIT_FROM", 2)
    monkeypatch.setattr(items, "_a_cpu_is_idle", lambda: True)
    parent = os.getpid()
    real_read = items._read

    def failing_in_the_child(*args):
        if os.getpid() != parent:
            raise OSError("a child that fails")
        return real_read(*args)

    monkeypatch.setattr(items, "_read", failing_in_the_child)
    assert listing.list_queue(str(tmp_path), split=True)[0] == expected


def _fields_line_by_line(text: bytes) -> dict:
    """What reading the qf line by line up to its first H or . line gives: the
    reference the bytes searches of queue.items must agree with."""
    fields: dict = {"entries": []}
    for line in text.split(b"\n"):
        if line[:1] in (b"H", b"."):
            break
        if line[:1] in (b"C", b"R"):
            fields["entries"].append(line)
        elif line[:1]:
            fields[line[:1]] = line[1:]
    return fields


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("VTKNPFSMBqCRrZ$AIH. \t"),
            st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),
        ),
        max_size=14,
    )
)
def test_the_fields_found_by_search_are_the_ones_a_line_by_line_reading_finds(lines):
    text = b"".join(kind.encode() + rest + b"\n" for kind, rest in lines)
    row = items._row(b"qfX", 1, b" ", b"\n%s\n" % text)
    reference = _fields_line_by_line(text)
    message = items.ListedMessage(row)

    def atol(raw: bytes) -> int:
        found = re.match(rb"[ \t]*[-+]?\d+", raw)
        return int(found.group()) if found else 0

    assert message.priority == atol(reference.get(b"P", b""))
    assert message.queued_at == atol(reference.get(b"T", b""))
    assert message.last_attempt == atol(reference.get(b"K", b""))
    assert message.attempts == atol(reference.get(b"N", b""))
    assert row[6] == reference.get(b"S", b"")
    assert row[7] == reference.get(b"M", b"")
    assert row[8] == reference.get(b"B", b"")
    assert row[9] == reference.get(b"q", b"")
    assert message.flags.encode("utf-8", "surrogateescape") == reference.get(b"F", b"")
    assert [b"\n" + e for e in reference["entries"]] == row[10]


def _qf(queue_dir, qid: str, priority: int, queued_at: int, recipient: str) -> None:
    (queue_dir / f"df{qid}").write_bytes(b"x\n")
    (queue_dir / f"qf{qid}").write_bytes(
        b"V8\nT%d\nK0\nN0\nP%d\nSs@a.test\nRPFD:%s\nH??X: y\n.\n"
        % (queued_at, priority, recipient.encode())
    )


def _order(queue_dir, order: str) -> list[str]:
    return [m.qid for m in items.gather(str(queue_dir), order=order)]


def test_queue_sort_orders_as_sendmail_sorts(tmp_path):
    _qf(tmp_path, "6AQBB1aa000004", 300, 40, "a@b.example.org")
    _qf(tmp_path, "6AQBB1aa000002", 100, 30, "c@a.example.com")
    _qf(tmp_path, "6AQBB1aa000003", 200, 10, "d@b.example.org")
    _qf(tmp_path, "6AQBB1aa000001", 400, 20, "local-user")
    os.utime(tmp_path / "qf6AQBB1aa000003", (1, 5000))
    os.utime(tmp_path / "qf6AQBB1aa000001", (1, 6000))
    os.utime(tmp_path / "qf6AQBB1aa000004", (1, 7000))
    os.utime(tmp_path / "qf6AQBB1aa000002", (1, 8000))
    ids = [f"6AQBB1aa00000{n}" for n in range(1, 5)]
    assert _order(tmp_path, "priority") == [ids[1], ids[2], ids[3], ids[0]]
    assert _order(tmp_path, "Priority") == _order(tmp_path, "p")
    assert _order(tmp_path, "time") == [ids[2], ids[0], ids[1], ids[3]]
    assert _order(tmp_path, "filename") == ids
    assert _order(tmp_path, "modification") == [ids[2], ids[0], ids[3], ids[1]]
    # host: no host first, then by reversed domain ("gro.elpmaxe.b" before
    # "moc.elpmaxe.a"), each host's messages by priority
    assert _order(tmp_path, "host") == [ids[0], ids[2], ids[3], ids[1]]
    assert sorted(_order(tmp_path, "random")) == ids
    with os.scandir(tmp_path) as entries:
        in_directory = [e.name[2:] for e in entries if e.name.startswith("qf")]
    assert _order(tmp_path, "none") == in_directory


def test_host_order_puts_the_hosts_with_a_locked_message_last(tmp_path):
    _qf(tmp_path, "6AQBB1aa000001", 100, 1, "a@one.test")
    _qf(tmp_path, "6AQBB1aa000002", 200, 1, "b@one.test")
    _qf(tmp_path, "6AQBB1aa000003", 300, 1, "c@two.test")
    fd = os.open(tmp_path / "qf6AQBB1aa000002", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert _order(tmp_path, "host") == ["6AQBB1aa000003", "6AQBB1aa000001", "6AQBB1aa000002"]
    finally:
        os.close(fd)
    assert _order(tmp_path, "host")[0] == "6AQBB1aa000001"


def _marked(queue_dir, marks) -> dict[str, str]:
    text, _ = listing.list_queue(str(queue_dir), marks=marks)
    return {line[:14]: line[14] for line in text.splitlines() if QID_LINE.match(line)}


def test_load_average_marks_what_a_run_would_only_keep_queued(tmp_path, utc):
    _qf(tmp_path, "6AQBB1aa000001", 200000, 1, "a@x.test")
    _qf(tmp_path, "6AQBB1aa000002", 100000, 1, "b@x.test")
    _qf(tmp_path, "6AQBB1aa000003", 300000, 1, "c@x.test")
    fd = os.open(tmp_path / "qf6AQBB1aa000003", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # load 20, QueueLA 16: X above 600000 / (20 - 16 + 1) = 120000; a lock wins
        busy = _marked(tmp_path, listing.LoadMarks(20, 16))
        assert busy == {"6AQBB1aa000001": "X", "6AQBB1aa000002": " ", "6AQBB1aa000003": "*"}
    finally:
        os.close(fd)
    quiet = _marked(tmp_path, listing.LoadMarks(15, 16))
    assert set(quiet.values()) == {" "}
    assert _marked(tmp_path, None) == quiet


def test_min_queue_age_marks_a_message_too_young_to_try(tmp_path, utc):
    now = 1795700000
    for qid, last_try, tries in (("01", now - 60, 1), ("02", now - 7200, 1), ("03", now - 60, 0)):
        (tmp_path / f"qf6AQBB1aa0000{qid}").write_bytes(
            b"V8\nT%d\nK%d\nN%d\nP1\nSs@a.test\nRPFD:u@x.test\n.\n" % (now - 9000, last_try, tries)
        )
    young = _marked(tmp_path, listing.LoadMarks(0, 16, min_queue_age=3600, now=now))
    # tried a minute ago: too young; two hours ago: due; never tried (N0): due
    assert young == {"6AQBB1aa000001": "-", "6AQBB1aa000002": " ", "6AQBB1aa000003": " "}
    # MaxQueueAge: too young while the time since the last try is under the time it
    # had been queued then, at most MaxQueueAge
    capped = _marked(tmp_path, listing.LoadMarks(0, 16, max_queue_age=30, now=now))
    assert capped == {"6AQBB1aa000001": " ", "6AQBB1aa000002": " ", "6AQBB1aa000003": " "}
    loose = _marked(tmp_path, listing.LoadMarks(0, 16, max_queue_age=86400, now=now))
    # 01: queued 8940 s before its last try a minute ago; 02: 1800 s, two hours ago
    assert loose == {"6AQBB1aa000001": "-", "6AQBB1aa000002": " ", "6AQBB1aa000003": " "}


def test_queue_la_defaults_to_eight_per_cpu():
    marks = listing.LoadMarks.from_options({"QueueLA": None, "QueueFactor": 600000})
    assert marks.queue_la == 8 * (os.cpu_count() or 1)
    assert listing.LoadMarks.from_options({"QueueLA": 3}).queue_la == 3
    assert marks.load == int(os.getloadavg()[0] + 0.5)


def test_a_split_read_with_sigchld_ignored_still_lists_everything(tmp_path, utc, monkeypatch):
    """A parent that ignores SIGCHLD passes that on through exec: the child is then
    reaped by the kernel and its status cannot be waited for."""
    _ten_messages(tmp_path)
    expected, _ = listing.list_queue(str(tmp_path))
    monkeypatch.setattr(items, "SPLIT_FROM", 2)
    monkeypatch.setattr(items, "_a_cpu_is_idle", lambda: True)
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        assert listing.list_queue(str(tmp_path), split=True) == (expected, 0)
    finally:
        signal.signal(signal.SIGCHLD, previous)
