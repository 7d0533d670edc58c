"""Per-class queue timeouts (Timeout.queuewarn.* / Timeout.queuereturn.*, chosen by the
message's Priority:/Precedence: headers or its being a DSN) and MinQueueAge, through
real queue runs over a real queue directory with a clock the test sets."""

from __future__ import annotations

from dataclasses import dataclass

from pysendmail.config.options import defaults
from pysendmail.delivery.result import DeliveryResult
from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import Header
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from pysendmail.queue.timeouts import QueueTimeouts, timeout_class

HOUR, DAY = 3600.0, 86400.0
T0 = 1795691461.0
PRIORITIES = {"first-class": 0, "special-delivery": 100, "list": -30, "bulk": -60, "junk": -100}


def test_class_from_priority_then_precedence_then_dsn():
    def kind(*headers: Header, dsn: bool = False) -> str:
        return timeout_class(list(headers), PRIORITIES, is_dsn=dsn)

    assert kind() == "normal"
    assert kind(Header("Precedence", "bulk")) == "non-urgent"
    assert kind(Header("Precedence", "Special-Delivery")) == "urgent"
    assert kind(Header("Precedence", "first-class")) == "normal"
    assert kind(Header("Precedence", "no-such-class")) == "normal"
    assert kind(Header("Precedence", "bulk"), Header("Priority", "urgent")) == "urgent"
    assert kind(Header("Priority", "non-urgent")) == "non-urgent"
    assert kind(Header("Precedence", "special-delivery"), dsn=True) == "dsn"


def test_options_fill_each_class_and_the_plain_option_covers_the_rest():
    stock = QueueTimeouts.from_options(defaults())
    assert stock.for_class("urgent") == (1 * HOUR, 2 * DAY)
    assert stock.for_class("non-urgent") == (12 * HOUR, 7 * DAY)
    assert stock.for_class("normal") == (4 * HOUR, 5 * DAY)
    options = {
        **defaults(),
        "Timeout.queuereturn": int(3 * DAY),
        "Timeout.queuereturn.urgent": int(1 * DAY),
    }
    mixed = QueueTimeouts.from_options(options)
    assert mixed.for_class("urgent")[1] == 1 * DAY
    assert mixed.for_class("normal")[1] == 3 * DAY
    assert mixed.for_class("non-urgent")[1] == 3 * DAY
    assert mixed.for_class("dsn")[1] == 3 * DAY


@dataclass
class Routed:
    mailer: str
    address: str


class AlwaysBusy:
    def __init__(self) -> None:
        self.tried: list[str] = []

    def deliver(self, message, deliveries):
        self.tried.append(message.qid)
        return [
            DeliveryResult.deferred(d.address, "Deferred: mailbox busy", mailer="local")
            for d in deliveries
        ]


def _setup(tmp_path, **runner_options):
    store = QueueStore(tmp_path)
    clock = {"now": T0}
    busy = AlwaysBusy()
    runner = QueueRunner(
        store,
        route=lambda rcpt, message: [Routed("local", rcpt.bare_address)],
        deliverers={"local": busy},
        hostname="mail.example.com",
        timeouts=QueueTimeouts.from_options(defaults()),
        priorities=PRIORITIES,
        clock=lambda: clock["now"],
        **runner_options,
    )

    def enqueue(*headers: Header) -> str:
        return store.enqueue(
            Envelope(sender="<alice@example.com>", recipients=[Recipient("<bob>")]),
            [Header("Subject", "waiting"), *headers],
            b"body\n",
            hostname="mail.example.com",
            now=T0,
        )

    return store, runner, clock, busy, enqueue


def test_warning_comes_by_class(tmp_path):
    store, runner, clock, _, enqueue = _setup(tmp_path)
    normal = enqueue()
    bulk = enqueue(Header("Precedence", "bulk"))
    urgent = enqueue(Header("Priority", "urgent"))
    clock["now"] = T0 + 2 * HOUR
    warned = {o.qid: bool(o.dsn_ids) for o in runner.run().outcomes}
    assert warned == {normal: False, bulk: False, urgent: True}
    clock["now"] = T0 + 5 * HOUR
    warned = {o.qid: bool(o.dsn_ids) for o in runner.run().outcomes if o.qid in (normal, bulk)}
    assert warned == {normal: True, bulk: False}
    assert store.read(bulk).has_flag("w") is False
    clock["now"] = T0 + 13 * HOUR
    [bulk_outcome] = [o for o in runner.run().outcomes if o.qid == bulk]
    assert bulk_outcome.dsn_ids and store.read(bulk).has_flag("w")


def test_bounce_comes_by_class(tmp_path):
    store, runner, clock, _, enqueue = _setup(tmp_path)
    normal = enqueue()
    urgent = enqueue(Header("Precedence", "special-delivery"))
    clock["now"] = T0 + 3 * DAY
    outcomes = {o.qid: o for o in runner.run().outcomes}
    assert outcomes[urgent].removed and outcomes[urgent].bounced == ["<bob>"]
    assert not outcomes[normal].removed and outcomes[normal].deferred == ["<bob>"]
    bounce = (tmp_path / f"df{outcomes[urgent].dsn_ids[-1]}").read_text()
    assert "Cannot send message for 2 days" in bounce
    assert store.path("qf", normal).exists()


def test_min_queue_age_skips_messages_tried_recently(tmp_path):
    store, runner, clock, busy, enqueue = _setup(tmp_path, min_queue_age=15 * 60)
    first = enqueue()
    runner.run()  # never tried yet: MinQueueAge does not hold it back
    assert busy.tried == [first]
    second = enqueue()
    clock["now"] = T0 + 5 * 60
    runner.run()
    assert busy.tried == [first, second]  # the first was tried 5 minutes ago
    clock["now"] = T0 + 21 * 60  # 21 and 16 minutes after their last tries
    runner.run()
    assert sorted(busy.tried[2:]) == sorted([first, second])  # same priority: any order
    assert store.read(first).attempts == 2
