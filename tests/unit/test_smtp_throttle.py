"""sendmail's slow-downs for abusive clients: the session emits `Pause` events before
(or, for VRFY/EXPN, around) its answers, and disconnects where sendmail does. No clock:
the tests assert the events and the replies."""

from __future__ import annotations

import pytest

from pysendmail.protocol.replies import Reply
from pysendmail.protocol.smtp import ClientInfo, Close, Pause, SessionSettings, SmtpSession
from pysendmail.protocol.smtp_throttle import AttackDelay, attack_delay
from tests.unit.test_smtp_session import HOST, ListPolicy

CLIENT = ClientInfo(addr="127.0.0.1", name="localhost")


def session(**settings: object) -> SmtpSession:
    smtp = SmtpSession(ListPolicy(), SessionSettings(hostname=HOST, **settings), CLIENT)
    smtp.start()
    return smtp


def answer(smtp: SmtpSession, line: str) -> list[object]:
    """The outputs of one command line: replies as "code text", pauses as Pause."""
    out = []
    for item in smtp.feed(line.encode() + b"\r\n"):
        if isinstance(item, Reply):
            out.append(f"{item.code} {item.lines[0]}")
        elif isinstance(item, (Pause, Close)):
            out.append(item)
    return out


@pytest.mark.parametrize(
    ("count", "limit", "expected"),
    [
        (2, 3, AttackDelay(0, 0)),  # below the limit: answered at once
        (3, 3, AttackDelay(1, 0)),  # at the limit: 1 s
        (4, 3, AttackDelay(1, 1)),  # then 2, 4, 8 ... seconds in all
        (5, 3, AttackDelay(1, 3)),
        (6, 3, AttackDelay(2, 6)),
        (20, 20, AttackDelay(1, 0)),
        (30, 3, AttackDelay(10, 230)),  # never more than four minutes
        (1000, 20, AttackDelay(50, 190)),
    ],
)
def test_attack_delay_doubles_from_the_limit_up_to_four_minutes(count, limit, expected):
    assert attack_delay(count, limit) == expected


def test_twice_the_limit_disconnects_only_when_daemon_children_are_limited():
    assert attack_delay(6, 3, children_limited=True).disconnect
    assert not attack_delay(5, 3, children_limited=True).disconnect
    assert not attack_delay(6, 3, children_limited=False).disconnect


def test_the_third_helo_waits_a_second_and_the_fourth_two():
    smtp = session()
    assert answer(smtp, "EHLO one.example")[0].startswith("250")
    assert answer(smtp, "HELO two.example") == [
        f"250 {HOST} Hello localhost [127.0.0.1], pleased to meet you"
    ]
    third = answer(smtp, "HELO three.example")
    assert third[0] == Pause(1) and third[1].startswith("250 ")
    assert answer(smtp, "HELO four.example")[0] == Pause(2)
    assert answer(smtp, "HELO five.example")[0] == Pause(4)


def test_noop_and_verb_share_the_noise_count():
    smtp = session(max_noop_commands=4)
    answer(smtp, "EHLO client.example")
    assert answer(smtp, "NOOP") == ["250 OK"]
    assert answer(smtp, "VERB") == ["250 Verbose mode"]
    assert answer(smtp, "NOOP") == ["250 OK"]
    assert answer(smtp, "NOOP") == [Pause(1), "250 OK"]
    assert answer(smtp, "VERB") == [Pause(2), "250 Verbose mode"]


def test_sendmails_twenty_noops_before_slowing_down():
    smtp = session()
    answer(smtp, "EHLO client.example")
    replies = [answer(smtp, "NOOP") for _ in range(21)]
    assert all(r == ["250 OK"] for r in replies[:19])
    assert replies[19] == [Pause(1), "250 OK"] and replies[20] == [Pause(2), "250 OK"]


def test_vrfy_waits_part_before_and_the_rest_after_its_answer():
    smtp = session()
    answer(smtp, "EHLO client.example")
    for _ in range(5):
        assert answer(smtp, "VRFY alice") == [f"250 <alice@{HOST}>"]
    assert answer(smtp, "EXPN alice") == [Pause(1), f"250 <alice@{HOST}>"]
    assert answer(smtp, "VRFY alice") == [Pause(1), f"250 <alice@{HOST}>", Pause(1)]
    assert answer(smtp, "VRFY bob") == [Pause(1), f"250 <bob@{HOST}>", Pause(3)]


def test_etrn_counts_only_requests_with_a_parameter():
    smtp = session()
    answer(smtp, "EHLO client.example")
    for _ in range(3):
        assert answer(smtp, "ETRN")[0].startswith("500")
    for _ in range(7):
        assert answer(smtp, "ETRN example.com") == ["250 Queuing for node example.com started"]
    assert answer(smtp, "ETRN example.com") == [
        Pause(1),
        "250 Queuing for node example.com started",
    ]


def test_with_max_daemon_children_a_client_at_twice_the_limit_is_dropped_with_421():
    smtp = session(children_limited=True)
    for number in range(5):
        answer(smtp, f"HELO h{number}.example")
    last = answer(smtp, "HELO h5.example")
    assert last == [Pause(8), f"421 {HOST} Too many bad commands; closing connection", Close()]
    assert smtp.closed


def test_twenty_six_unknown_commands_end_the_session_with_421():
    smtp = session()
    answer(smtp, "EHLO client.example")
    for _ in range(25):
        assert answer(smtp, "XYZZY")[0] == '500 Command unrecognized: "XYZZY"'
    assert answer(smtp, "XYZZY") == [
        f"421 {HOST} Too many bad commands; closing connection",
        Close(),
    ]


def test_bad_rcpt_throttle_delays_every_rcpt_after_that_many_refusals():
    smtp = session(bad_rcpt_throttle=2)
    answer(smtp, "EHLO client.example")
    answer(smtp, "MAIL FROM:<carol@example.com>")
    assert answer(smtp, "RCPT TO:<nobody@example.com>")[0].startswith("550")
    assert answer(smtp, "RCPT TO:<alice@example.com>") == [
        "250 <alice@example.com>... Recipient ok"
    ]
    assert answer(smtp, "RCPT TO:<ghost@example.com>")[0].startswith("550")
    assert answer(smtp, "RCPT TO:<bob@example.com>") == [
        Pause(1),
        "250 <bob@example.com>... Recipient ok",
    ]
    assert answer(smtp, "RCPT TO:<bob@example.com>")[0] == Pause(1)


def test_bad_rcpt_throttle_uses_the_configured_delay_and_is_off_by_default():
    throttled = session(bad_rcpt_throttle=1, bad_rcpt_throttle_delay=3)
    plain = session()
    for smtp in (throttled, plain):
        answer(smtp, "EHLO client.example")
        answer(smtp, "MAIL FROM:<carol@example.com>")
        answer(smtp, "RCPT TO:<nobody@example.com>")
    assert answer(throttled, "RCPT TO:<alice@example.com>")[0] == Pause(3)
    for _ in range(5):
        answer(plain, "RCPT TO:<nobody@example.com>")
    assert not any(isinstance(x, Pause) for x in answer(plain, "RCPT TO:<alice@example.com>"))


def test_connection_rate_allows_one_more_than_the_limit_each_second_then_waits():
    from pysendmail.protocol.smtp_throttle import ConnectionRate

    rate = ConnectionRate()
    second = 1_800_000_000
    waits = [rate.admit(2, second + 0.1 * n) for n in range(5)]
    assert waits == [0, 0, 0, 1, 1]
    assert rate.admit(2, second + 1.0) == 0  # a new second starts the count again
    assert [ConnectionRate().admit(0, second) for _ in range(3)] == [0, 0, 0]
