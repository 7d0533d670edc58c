"""Queue runs with fake routers and deliverers: write-back, DSNs, timeouts, filters, -v."""

import io
import re
import threading
from dataclasses import dataclass

from pysendmail.delivery.result import DeliveryResult
from pysendmail.envelope import Envelope, Notify, Recipient
from pysendmail.errors import UserUnknown
from pysendmail.headers import Header
from pysendmail.queue.items import gather
from pysendmail.queue.runner import QueueRunner, RunFilter, parse_interval, parse_run_option
from pysendmail.queue.store import QueueStore
from tests.conftest import cli_case

T0 = 1795691461.0


@dataclass
class FakeDelivery:
    mailer: str
    address: str
    host: str = ""


def route(rcpt, message):
    addr = rcpt.bare_address
    if addr.startswith("nosuch"):
        raise UserUnknown("User unknown")
    if "@" in addr and not addr.endswith("@mail.example.com"):
        return [FakeDelivery("esmtp", addr, addr.split("@")[1] + ".")]
    if addr == "team":  # an alias with two members
        return [FakeDelivery("local", "alice"), FakeDelivery("local", "slowpoke")]
    return [FakeDelivery("local", addr.split("@")[0])]


class Local:
    def __init__(self, defer=(), bounce=()):
        self.defer, self.bounce = set(defer), set(bounce)
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def deliver(self, message, deliveries):
        out = []
        for d in deliveries:
            with self.lock:
                self.calls.append((message.qid, d.address))
            body = message.read_body()
            assert body  # deliverers can read the df
            if d.address in self.defer:
                out.append(
                    DeliveryResult.deferred(d.address, "Deferred: mailbox busy", mailer="local")
                )
            elif d.address in self.bounce:
                out.append(
                    DeliveryResult.bounced(d.address, "User unknown", "5.1.1", mailer="local")
                )
            else:
                out.append(DeliveryResult.sent(d.address, mailer="local", relay="local"))
        return out


class Unreachable:
    def deliver(self, message, deliveries):
        return [
            DeliveryResult.deferred(
                d.address, f"Deferred: {d.host}: Network is unreachable", "4.4.1", mailer="esmtp"
            )
            for d in deliveries
        ]


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


def _runner(store, local=None, clock=None, **kw):
    return QueueRunner(
        store,
        route=route,
        deliverers={"local": local or Local(), "esmtp": Unreachable()},
        hostname="mail.example.com",
        clock=clock or Clock(),
        **kw,
    )


def _queue(store, sender="alice@example.com", rcpts=("bob",), now=T0, notify=None):
    recipients = [Recipient(r, notify=notify) for r in rcpts]
    return store.enqueue(
        Envelope(sender=sender, recipients=recipients, macros={"_": "root@localhost"}),
        [Header("Subject", "hello"), Header("Bcc", "hidden")],
        b"body line\n",
        now=now,
        hostname="mail.example.com",
    )


def test_delivered_message_leaves_the_queue_and_is_logged(tmp_path, caplog):
    store = QueueStore(tmp_path)
    qid = _queue(store, rcpts=("bob", "carol"))
    with caplog.at_level("INFO", logger="pysendmail.mail"):
        summary = _runner(store).run()
    assert summary.outcomes[0].sent == ["bob", "carol"] and summary.outcomes[0].removed
    assert list(tmp_path.iterdir()) == []
    assert f"{qid}: to=bob, delay=00:00:00, xdelay=00:00:00, mailer=local, pri=" in caplog.text
    assert "relay=local, dsn=2.0.0, stat=Sent" in caplog.text


def test_deferred_recipient_stays_with_sendmails_bookkeeping(tmp_path):
    store = QueueStore(tmp_path)
    qid = _queue(store, rcpts=("bob", "user@remote.example.net"))
    before = store.read(qid)
    clock = Clock(T0 + 60)
    outcome = _runner(store, clock=clock).run_one(qid)
    assert outcome.sent == ["bob"] and outcome.deferred == ["user@remote.example.net"]
    after = store.read(qid)
    assert [r.address for r in after.recipients] == ["user@remote.example.net"]
    assert (after.attempts, after.last_attempt) == (1, int(T0 + 60))
    assert after.priority == before.priority + 90000
    assert after.status == "Deferred: remote.example.net.: Network is unreachable"
    assert re.fullmatch(r"\d+/\d+/\d+", after.df_inode)
    assert (tmp_path / f"df{qid}").read_bytes() == b"body line\n"


def test_permanent_failure_bounces_at_once_to_the_sender(tmp_path):
    store = QueueStore(tmp_path)
    qid = _queue(store, rcpts=("bob", "nosuchuser"))
    outcome = _runner(store).run_one(qid)
    assert outcome.bounced == ["nosuchuser"] and outcome.removed and len(outcome.dsn_ids) == 1
    dsn = store.read(outcome.dsn_ids[0])
    assert dsn.sender == "<>" and dsn.has_flag("r")
    assert [r.address for r in dsn.recipients] == ["alice@example.com"]
    body = (tmp_path / f"df{outcome.dsn_ids[0]}").read_text()
    assert (
        "Final-Recipient: RFC822; nosuchuser@mail.example.com\nAction: failed\nStatus: 5.1.1"
        in body
    )
    assert "Subject: hello\n\nbody line\n" in body and "hidden" not in body


def test_notify_never_suppresses_the_bounce(tmp_path):
    store = QueueStore(tmp_path)
    qid = _queue(store, rcpts=("nosuchuser",), notify=frozenset({Notify.NEVER}))
    outcome = _runner(store).run_one(qid)
    assert outcome.bounced and outcome.dsn_ids == [] and list(tmp_path.iterdir()) == []


def test_success_notification_when_asked(tmp_path):
    store = QueueStore(tmp_path)
    qid = _queue(store, notify=frozenset({Notify.SUCCESS}))
    outcome = _runner(store).run_one(qid)
    assert len(outcome.dsn_ids) == 1
    assert "Action: delivered" in (tmp_path / f"df{outcome.dsn_ids[0]}").read_text()


def test_queuewarn_sends_one_delay_dsn_and_queuereturn_bounces(tmp_path):
    store = QueueStore(tmp_path)
    qid = _queue(store, rcpts=("user@remote.example.net",))
    clock = Clock(T0 + 3600)
    runner = _runner(store, clock=clock)
    assert runner.run_one(qid).dsn_ids == []  # one hour: nothing yet
    clock.now = T0 + 4 * 3600 + 1
    warned = runner.run_one(qid)
    assert len(warned.dsn_ids) == 1 and store.read(qid).has_flag("w")
    warning = (tmp_path / f"df{warned.dsn_ids[0]}").read_text()
    assert "Action: delayed" in warning and "Will-Retry-Until:" in warning
    clock.now = T0 + 5 * 3600
    assert runner.run_one(qid).dsn_ids == []  # warned once only
    clock.now = T0 + 5 * 86400 + 1
    final = runner.run_one(qid)
    assert final.removed and final.bounced == ["user@remote.example.net"]
    text = (tmp_path / f"df{final.dsn_ids[0]}").read_text()
    assert "Status: 4.4.7" in text and "Cannot send message for 5 days" in text


def test_double_bounce_goes_to_postmaster_and_a_failed_one_is_dropped(tmp_path):
    store = QueueStore(tmp_path)
    qid = _queue(store, sender="<>", rcpts=("nosuchuser",))
    store.lock(qid).release()
    locked = store.lock(qid)
    locked.queue_file.set_flag("r")
    store.rewrite(locked)
    locked.release()
    outcome = _runner(store).run_one(qid)
    assert len(outcome.dsn_ids) == 1
    double = store.read(outcome.dsn_ids[0])
    assert [r.address for r in double.recipients] == ["postmaster"] and double.sender == "<>"
    # The double bounce itself fails: nothing more is sent, nothing loops.
    failing = Local(bounce={"postmaster"})
    again = _runner(store, local=failing).run_one(outcome.dsn_ids[0])
    assert again.removed and again.dsn_ids == [] and list(tmp_path.iterdir()) == []


def test_partially_deferred_alias_keeps_only_the_deferred_member(tmp_path):
    store = QueueStore(tmp_path)
    qid = _queue(store, rcpts=("team",))
    local = Local(defer={"slowpoke"})
    _runner(store, local=local).run_one(qid)
    kept = store.read(qid).recipients
    assert [(r.address, "A" in r.flags, r.primary) for r in kept] == [("slowpoke", True, False)]
    _runner(store, local=Local()).run_one(qid)
    assert list(tmp_path.iterdir()) == []


def test_a_mailer_that_crashes_defers_instead_of_losing_mail(tmp_path):
    class Broken:
        def deliver(self, message, deliveries):
            raise RuntimeError("bug")

    store = QueueStore(tmp_path)
    qid = _queue(store)
    runner = QueueRunner(store, route=route, deliverers={"local": Broken()}, hostname="h")
    assert runner.run_one(qid).deferred == ["bob"]
    assert "mailer local failed" in store.read(qid).status


def test_locked_messages_are_skipped_and_two_runners_never_deliver_twice(tmp_path):
    store = QueueStore(tmp_path, fsync=False)
    ids = [_queue(store, rcpts=(f"user{i}",)) for i in range(40)]
    held = store.lock(ids[0])
    local = Local()
    runners = [_runner(QueueStore(tmp_path, fsync=False), local=local) for _ in range(4)]
    threads = [threading.Thread(target=r.run) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    delivered = [qid for qid, _ in local.calls]
    assert sorted(delivered) == sorted(ids[1:])  # each exactly once, the held one not at all
    held.release()
    assert sorted(store.queue_ids()) == [ids[0]]


def test_run_filters(tmp_path):
    store = QueueStore(tmp_path, fsync=False)
    a = _queue(store, sender="ann@example.com", rcpts=("bob",))
    b = _queue(store, sender="ben@example.com", rcpts=("carol",))
    assert parse_run_option("Rcar") == RunFilter("R", "car")
    assert parse_run_option("!Sann") == RunFilter("S", "ann", True)
    assert parse_run_option("30m") is None and parse_run_option("") is None
    local = Local()
    _runner(store, local=local).run([RunFilter("R", "CAR")])
    assert [q for q, _ in local.calls] == [b]
    c = _queue(store, sender="ben@example.com", rcpts=("dave",))
    local = Local()
    _runner(store, local=local).run([RunFilter("S", "ann", negate=True)])
    assert [q for q, _ in local.calls] == [c]
    local = Local()
    _runner(store, local=local).run([RunFilter("I", a[-8:])])
    assert [q for q, _ in local.calls] == [a]


def test_time_values():
    assert parse_interval("5d", 0) == 5 * 86400
    assert parse_interval("1h30m", 0) == 5400
    assert parse_interval(90, 0) == 90
    assert parse_interval("junk", 7) == 7 and parse_interval(None, 7) == 7


def _mask(text: str) -> str:
    return re.sub(r"(?m)^(K|I)\S+$", r"\1x", text)


def test_queue_run_of_sendmails_queue_matches_its_q_v_run(oracle_dir, tmp_path):
    before = cli_case(oracle_dir, "bp_four_queued")
    after = cli_case(oracle_dir, "queue_run_q")
    queue_dir = tmp_path / "mqueue"
    queue_dir.mkdir()
    for name, entry in before["queue_files"].items():
        # The JSON writes the macro byte 0x81 as the text "\\x81".
        raw = entry["text"].replace("\\x81", "\udc81").encode("utf-8", "surrogateescape")
        (queue_dir / name).write_bytes(raw)
    shown = next(a.split("=", 1)[1] for a in after["argv"] if a.startswith("QueueDirectory="))
    out = io.StringIO()
    runner = _runner(QueueStore(queue_dir), verbose=out, display_dir=shown)
    summary = runner.run()
    assert summary.attempted == 5

    def blocks(text):
        return sorted(text.split("\nRunning ")[1:])

    ours = re.sub(r"sequence \d of", "sequence N of", out.getvalue())
    theirs = re.sub(r"sequence \d of", "sequence N of", after["stdout"])
    assert blocks(ours) == blocks(theirs)
    assert sorted(p.name for p in queue_dir.iterdir()) == sorted(after["queue_files"])
    for name, entry in after["queue_files"].items():
        if name.startswith("qf"):
            ours_qf = (queue_dir / name).read_bytes().decode("utf-8", "surrogateescape")
            theirs_qf = entry["text"].replace("\\x81", "\udc81")
            assert _mask(ours_qf) == _mask(theirs_qf), name


def test_run_forever_runs_until_stopped(tmp_path):
    store = QueueStore(tmp_path, fsync=False)
    first = _queue(store, rcpts=("bob",))
    stop = threading.Event()
    runs = []

    class Stopper(Local):
        def deliver(self, message, deliveries):
            runs.append(message.qid)
            if len(runs) == 1:
                _queue(store, rcpts=("carol",))  # arrives while the runner waits
            else:
                stop.set()
            return super().deliver(message, deliveries)

    runner = _runner(store, local=Stopper())
    worker = threading.Thread(target=runner.run_forever, args=(0.01, stop))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert runs[0] == first and len(runs) == 2
    assert store.queue_ids() == []


def test_a_run_takes_the_messages_in_the_queue_sort_order(tmp_path):
    store = QueueStore(tmp_path, fsync=False)
    # fewer recipients, higher priority: the priority order is not the file names'
    queued = [_queue(store, rcpts=tuple(f"u{n}{k}" for k in range(4 - n))) for n in range(4)]
    by_priority = [m.qid for m in gather(str(tmp_path))]
    assert by_priority != sorted(queued)
    out = io.StringIO()
    runner = _runner(store, verbose=out)
    runner.sort_order = "filename"
    runner.run()
    running = re.findall(r"Running \S+/(\S+) \(sequence", out.getvalue())
    assert running == sorted(queued)
