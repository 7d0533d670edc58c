"""The qf format: what sendmail 8.17 wrote reads back and renders to the same bytes."""

import json
import time

import pytest

from pysendmail.envelope import (
    BodyType,
    ControllingUser,
    Envelope,
    Notify,
    Recipient,
    Ret,
)
from pysendmail.headers import MACRO_CHAR, Header
from pysendmail.queue import qf
from pysendmail.queue.qf import QueueFileCorrupt, QueueIdGenerator


def _samples(oracle_dir):
    for path in sorted((oracle_dir / "queue_samples").glob("*__qf*")):
        yield path.name.split("__qf")[1], path.read_bytes()
    for line in (oracle_dir / "cli" / "cli_cases.jsonl").read_text().splitlines():
        case = json.loads(line)
        for name, entry in (case.get("queue_files") or {}).items():
            if name.startswith("qf"):
                # The JSON writes the macro byte 0x81 as the text "\\x81".
                text = entry["text"].replace("\\x81", "\udc81")
                yield name[2:], text.encode("utf-8", "surrogateescape")


def test_every_sendmail_queue_file_round_trips_byte_for_byte(oracle_dir):
    seen = 0
    for qid, data in _samples(oracle_dir):
        parsed = qf.parse(data, qid)
        assert qf.render(parsed) == data, qid
        seen += 1
    assert seen >= 20


def test_fields_of_a_deferred_message(oracle_dir):
    data = (oracle_dir / "queue_samples" / "bp_four_queued__qf6AQBB1qM009526").read_bytes()
    q = qf.parse(data, "6AQBB1qM009526")
    assert (q.queued_at, q.last_attempt, q.attempts, q.priority) == (1795691461,) * 2 + (1, 30181)
    assert q.status == "Deferred: remote.example.net.: Network is unreachable"
    assert q.sender == "root" and q.auth == "root@mail.example.com"
    assert q.macros == {"_": "root@localhost", "daemon_flags": "c u"}
    assert q.recipients[0].final_recipient == "RFC822; user@remote.example.net"
    assert q.headers[0].name == "Return-Path" and q.headers[0].condition == "P"
    assert q.headers[0].value == f"<{MACRO_CHAR}g>"
    assert q.headers[1].value.count("\n\t") == 2


def test_recipient_flags_controlling_user_and_notify(oracle_dir):
    data = (oracle_dir / "queue_samples" / "t_to_cc_bcc_queue__qf6AQBB1lE009546").read_bytes()
    q = qf.parse(data)
    by_addr = {r.address: r for r in q.recipients}
    assert by_addr["alice"].controlling_user == "alice:1001:1001:sales@example.com"
    assert "A" in by_addr["alice"].flags and not by_addr["alice"].primary
    assert by_addr["mallory"].controlling_user is None
    assert by_addr["Carol <carol@partner.example.org>"].bare_address == "carol@partner.example.org"
    assert by_addr["mallory"].notify is None
    assert by_addr["mallory"].notifies(Notify.FAILURE) and not by_addr["mallory"].notifies(
        Notify.SUCCESS
    )
    never = qf.parse(
        (oracle_dir / "queue_samples" / "bp_four_queued__qf6AQBB1RV009525").read_bytes()
    )
    assert never.recipients[0].notify == frozenset({Notify.NEVER})
    assert not never.recipients[0].notifies(Notify.FAILURE)
    assert never.envid == "envid-42" and never.is_bounce


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.replace(b"\n.\n", b"\n"),  # truncated: no end line
        lambda d: d[:-1],  # no final newline
        lambda d: d.replace(b"V8\n", b""),  # no version
        lambda d: d.replace(b"V8\n", b"V9\n"),
        lambda d: d.replace(b"P30181", b"Pabc"),
        lambda d: d.replace(b"Sroot\n", b""),
        lambda d: d.replace(b"K0\n", b"K0\n%weird\n"),
        lambda d: d.replace(b"RPFD:alice", b"Ralice"),
        lambda d: b"\tcontinuation first\n" + d,
        lambda d: d + b"extra\n",
    ],
)
def test_damaged_queue_files_are_refused(oracle_dir, damage):
    data = (oracle_dir / "queue_samples" / "submit_odq_local__qf6AQBB1A1009568").read_bytes()
    with pytest.raises(QueueFileCorrupt):
        qf.parse(damage(data))


def _oracle_headers(qid: str) -> list[Header]:
    return [
        Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
        Header(
            "Received",
            "(from root@localhost)\n\tby mail.example.com (8.17.1.9/8.17.1.9/Debian-2+deb12u2)"
            f" id {qid}\n\tfor alice; Thu, 26 Nov 2026 11:11:01 GMT",
        ),
        Header("Full-Name", "root", condition="x"),
        Header("From", "Alice Example <alice@example.com>"),
        Header("To", "bob@example.com"),
        Header("Subject", "oracle test message"),
        Header("Date", "Mon, 02 Jan 2006 15:04:05 +0000"),
        Header("Message-Id", "<oracle-1@example.com>"),
    ]


def test_a_new_queue_file_is_written_as_sendmail_writes_it(oracle_dir):
    qid = "6AQBB1A1009568"
    envelope = Envelope(
        sender="root",
        recipients=[Recipient("alice")],
        auth="root@mail.example.com",
        macros={"_": "root@localhost", "daemon_flags": "c u"},
        flags={"b", "s"},
    )
    made = qf.from_envelope(
        qid,
        envelope,
        _oracle_headers(qid),
        msg_size=181,
        queued_at=1795691461,
        hostname="mail.example.com",
    )
    expected = (oracle_dir / "queue_samples" / f"submit_odq_local__qf{qid}").read_bytes()
    assert qf.render(made) == expected


def test_dsn_parameters_become_flags_and_lines(oracle_dir):
    envelope = Envelope(
        sender="root",
        recipients=[Recipient("bob", notify=frozenset({Notify.SUCCESS, Notify.FAILURE}))],
        ret=Ret.FULL,
        envid="envid-abc",
        body_type=BodyType.SEVEN_BIT,
        auth="root@mail.example.com",
        macros={"_": "root@localhost", "daemon_flags": "c u"},
        flags={"s", "b"},
    )
    made = qf.render(
        qf.from_envelope(
            "6AQBB1gS009571",
            envelope,
            [],
            msg_size=181,
            queued_at=1795691461,
            hostname="mail.example.com",
        )
    )
    text = made.decode()
    assert "\nB7BIT\nFbds\n" in text
    assert "\nSroot\nZenvid-abc\nAroot@mail.example.com\n" in text
    assert "\nrRFC822; bob@mail.example.com\nRPNSF:bob\n" in text


def test_controlling_user_blocks_and_orcpt():
    envelope = Envelope(
        sender="<a@b>",
        recipients=[
            Recipient("<x@y>", orcpt="rfc822;x@y"),
            Recipient(
                "alice",
                primary=False,
                from_alias=True,
                controlling_user=ControllingUser("alice", 1001, 1001, "sales"),
            ),
            Recipient("bob"),
        ],
    )
    text = qf.render(qf.from_envelope("X", envelope, [], msg_size=1, queued_at=1)).decode()
    assert "Qrfc822;x@y\nrRFC822; x@y\nRPFD:<x@y>\nCalice:1001:1001:sales\n" in text
    assert "RFDA:alice\nC\nrRFC822; bob\nRPFD:bob\n" in text
    back = qf.parse(text.encode())
    assert [r.controlling_user for r in back.recipients] == [None, "alice:1001:1001:sales", None]
    assert back.recipients[0].orcpt == "rfc822;x@y"


def test_header_with_a_bare_line_break_stays_one_header():
    q = qf.QueueFile(qid="X", sender="a", headers=[Header("Subject", "one\ntwo\n\nthree")])
    back = qf.parse(qf.render(q))
    assert len(back.headers) == 1 and back.headers[0].unfolded() == "one\ttwo\tthree"


def test_single_line_fields_cannot_inject_lines():
    q = qf.QueueFile(qid="X", sender="a\nRPFD:evil", status="x\ny")
    back = qf.parse(qf.render(q))
    assert back.recipients == [] and back.sender == "a RPFD:evil" and back.status == "x y"


def test_queue_id_has_sendmails_shape():
    gen = QueueIdGenerator(pid=9525)
    ids = [gen.next_id(1795691461) for _ in range(3600)]
    assert all(i.startswith("6AQBB1") and i.endswith("009525") and len(i) == 14 for i in ids)
    assert len(set(ids)) == 3600
    assert all(qf.is_queue_id(i) for i in ids[:50])
    assert QueueIdGenerator(pid=4194303).next_id(time.time()).endswith("4194303")


def test_priority_as_sendmail_computes_it():
    assert qf.initial_priority(181, 1) == 30181
    assert qf.initial_priority(5182, 3) == 95182
    assert qf.initial_priority(165, 5) == 150165
    assert qf.initial_priority(100, 1, msg_class=-60) == 100 + 108000 + 30000
    assert qf.retry_priority(95182) == 185182


def test_to_envelope_gives_back_the_door_view(oracle_dir):
    data = (oracle_dir / "queue_samples" / "submit_odq_dsn__qf6AQBB1gS009571").read_bytes()
    env = qf.to_envelope(qf.parse(data))
    assert env.ret == Ret.FULL and env.envid == "envid-abc"
    assert env.recipients[0].notify == frozenset({Notify.SUCCESS, Notify.FAILURE})
    assert env.body_type == BodyType.SEVEN_BIT
