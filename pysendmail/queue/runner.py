"""Queue runs: `sendmail -q`, `-qR/-qS/-qI substr` (and `-q!…`), the daemon's periodic
runs, and the immediate attempt after `-odi`.

For each queued message, in the QueueSortOrder (priority by default): take its lock (a
message another runner holds is skipped), route each recipient with the injected `route`
function, group the deliveries by mailer and hand each group to that mailer's deliverer,
then write back what happened: delivered recipients leave the qf, deferred ones stay
(N+1, K=now, P+RetryFactor, M=the last deferral), permanently failed ones are reported
at once; when no recipient is left the qf and df are removed. Timeout.queuewarn (default
4h) sends one delay DSN (qf flag `w`), Timeout.queuereturn (default 5d) turns what is
still deferred (both per the message's class: `Timeout.queuereturn.urgent` ..., see
queue.timeouts; a run skips a message tried less than MinQueueAge ago) into failures.
DSNs are built by `delivery.dsn` and enqueued here like any message.

The interfaces the other parts fit:

    route(recipient: QueueRecipient, message: QueuedMessage) -> list[Delivery]
        raises MailError (UserUnknown ...) for an address that cannot be routed
    Delivery: any object with `mailer: str` (the M line name); optional `host: str`
        (for the -v "Connecting to" line) and `address: str` (what to queue again
        when some deliveries of an expanded recipient are deferred)
    Deliverer.deliver(message: QueuedMessage, deliveries: list[Delivery])
        -> list[DeliveryResult], one per delivery, in the same order

A crash between a mailer's success and the qf rewrite delivers that recipient again on
the next run: the one window sendmail also has (see queue.store).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from pysendmail.delivery.dsn import (
    DsnKind,
    OriginalMessage,
    RecipientReport,
    build_dsn,
    is_null_sender,
    wants_report,
)
from pysendmail.delivery.result import DeliveryResult
from pysendmail.envelope import Ret
from pysendmail.errors import MailError
from pysendmail.log import MailLog
from pysendmail.queue import qf as qfmod
from pysendmail.queue.items import gather
from pysendmail.queue.qf import QueueFile, QueueRecipient
from pysendmail.queue.store import LockedMessage, QueueStore
from pysendmail.queue.timeouts import QueueTimeouts, timeout_class
from pysendmail.record import field, record
from pysendmail.record import replace as replace_fields

log = logging.getLogger("pysendmail.queue")

DEFAULT_QUEUEWARN = 4 * 3600.0
DEFAULT_QUEUERETURN = 5 * 86400.0


class Delivery(Protocol):
    mailer: str


class Deliverer(Protocol):
    def deliver(self, message: QueuedMessage, deliveries: list[Any]) -> list[DeliveryResult]: ...


Route = Callable[[QueueRecipient, "QueuedMessage"], list[Any]]
# sendmail's check_compat: (envelope sender, delivery) -> None to deliver it, or the
# result that stands instead (refused, deferred, or discarded and counted as sent)
Compat = Callable[[str, Any], "DeliveryResult | None"]


@record
class QueuedMessage:
    """A locked queued message, as deliverers see it."""

    qid: str
    queue_file: QueueFile
    df_path: Path
    # id(delivery) -> the qf recipient it was routed from (for NOTIFY=, ORCPT= ...)
    origins: dict[int, QueueRecipient] = field(default_factory=dict)

    def recipient_of(self, delivery: Any) -> QueueRecipient | None:
        """The queued recipient a delivery was routed from."""
        return self.origins.get(id(delivery))

    @property
    def sender(self) -> str:
        return self.queue_file.sender

    @property
    def headers(self):
        return self.queue_file.headers

    @property
    def envelope(self):
        return qfmod.to_envelope(self.queue_file)

    def open_body(self) -> IO[bytes]:
        """The df opened for reading; the caller closes it."""
        return open(self.df_path, "rb")

    def read_body(self) -> bytes:
        with self.open_body() as body:
            return body.read()


@record(frozen=True)
class RunFilter:
    """One -qR/-qS/-qI selection: a case-insensitive substring, maybe negated (-q!R)."""

    kind: str  # "R" recipient, "S" sender, "I" queue ID
    text: str
    negate: bool = False

    def matches(self, qid: str, queue_file: QueueFile | None, sender: str, rcpts: list[str]):
        needle = self.text.lower()
        if self.kind == "I":
            found = needle in qid.lower()
        elif self.kind == "S":
            found = needle in sender.lower()
        else:
            found = any(needle in r.lower() for r in rcpts)
        return found != self.negate


def parse_run_option(option: str) -> RunFilter | None:
    """`-qRsubstr`, `-q!Ssubstr`, `-qIsubstr` (the text after -q); None for a plain -q
    or an interval such as -q30m."""
    negate = option.startswith("!")
    body = option[1:] if negate else option
    if body[:1] in ("R", "S", "I") and len(body) > 1:
        return RunFilter(body[0], body[1:], negate)
    return None


def selected(filters: list[RunFilter], qid: str, sender: str, rcpts: list[str]) -> bool:
    """Filters of one kind are alternatives; different kinds must all match."""
    kinds: dict[str, list[RunFilter]] = {}
    for f in filters:
        kinds.setdefault(f.kind, []).append(f)
    return all(any(f.matches(qid, None, sender, rcpts) for f in group) for group in kinds.values())


@record
class MessageOutcome:
    qid: str
    sent: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    bounced: list[str] = field(default_factory=list)
    dsn_ids: list[str] = field(default_factory=list)
    removed: bool = False


@record
class RunSummary:
    attempted: int = 0
    skipped_locked: int = 0
    outcomes: list[MessageOutcome] = field(default_factory=list)


def parse_interval(value: object, default: float) -> float:
    """sendmail time values: 90, "90s", "30m", "4h", "5d", "1w", "1h30m"."""
    if value is None or value == "":
        return default
    if isinstance(value, int | float):
        return float(value)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    total, number = 0.0, ""
    for char in str(value).strip():
        if char.isdigit():
            number += char
        elif char in units and number:
            total += int(number) * units[char]
            number = ""
        else:
            return default
    if number:
        total += int(number) * (60 if str(value).strip().isdigit() else 1)
    return total or default


class QueueRunner:
    """Runs one queue directory; safe to use from several threads or processes at once."""

    def __init__(
        self,
        store: QueueStore,
        *,
        route: Route,
        deliverers: Mapping[str, Deliverer],
        hostname: str,
        queuewarn: float = DEFAULT_QUEUEWARN,
        queuereturn: float = DEFAULT_QUEUERETURN,
        timeouts: QueueTimeouts | None = None,
        priorities: Mapping[str, int] | None = None,
        min_queue_age: float = 0.0,
        sort_order: str = "priority",
        mail_log: MailLog | None = None,
        verbose: IO[str] | None = None,
        clock: Callable[[], float] = time.time,
        display_dir: str | None = None,
        compat: Compat | None = None,
    ) -> None:
        self.store = store
        self.compat = compat
        self.route = route
        self.deliverers = deliverers
        self.hostname = hostname
        self.queuewarn = queuewarn
        self.queuereturn = queuereturn
        # per-class timeouts; without them every class gets queuewarn/queuereturn
        self.timeouts = timeouts or QueueTimeouts.uniform(queuewarn, queuereturn)
        self.priorities = priorities or {}  # the cf's P lines: Precedence -> value
        self.min_queue_age = min_queue_age
        self.sort_order = sort_order  # QueueSortOrder
        self.mail_log = mail_log or MailLog()
        self.verbose = verbose
        self.clock = clock
        self.display_dir = display_dir or str(store.queue_dir)
        # (mailer, host) -> a temporary failure seen in the current run
        self._host_status: dict[tuple[str, str], DeliveryResult] = {}
        self._in_run = False
        # (queue file, message, failed pairs) -> True when it returned the failures
        # itself (a command-line submission's dead.letter); None: always a DSN.
        self.return_failures: Callable[[QueueFile, QueuedMessage, list], bool] | None = None

    # ------------------------------------------------------------ runs

    def run(self, filters: list[RunFilter] | None = None) -> RunSummary:
        """One queue run over every message (in priority order) the filters select."""
        summary = RunSummary()
        self._host_status = {}
        self._in_run = True
        hooked = self._run_hooks("begin_run")
        try:
            self._run(filters, summary)
        finally:
            self._in_run = False
            self._host_status = {}
            for end in hooked:
                try:
                    end()
                except Exception:  # closing a cached connection must not fail the run
                    log.exception("queue run: closing a mailer's run state failed")
        return summary

    def _run_hooks(self, name: str) -> list[Callable[[], None]]:
        """Tell each deliverer (once, however many mailer names share it) that a run
        starts, so it may keep state across the run's messages (one writer child per
        local user, open SMTP connections) and write to the -v output; their
        `end_run`s, to call when it ends."""
        ends: list[Callable[[], None]] = []
        seen: set[int] = set()
        for deliverer in self.deliverers.values():
            if id(deliverer) in seen:
                continue
            seen.add(id(deliverer))
            begin = getattr(deliverer, name, None)
            if begin is not None:
                begin(verbose=self.verbose)
                ends.append(deliverer.end_run)  # type: ignore[attr-defined]
        return ends

    def _run(self, filters: list[RunFilter] | None, summary: RunSummary) -> None:
        try:
            listed = gather(str(self.store.queue_dir), order=self.sort_order)
        except OSError as error:
            log.error("queue run: cannot read %s: %s", self.store.queue_dir, error)
            return
        chosen = [
            m
            for m in listed
            if not m.completed
            and not self._too_young(m)
            and selected(
                filters or [], m.qid, m.sender, [r.address for r in m.recipients if r.address]
            )
        ]
        for number, listed_message in enumerate(chosen, 1):
            if self.verbose:
                self._say(
                    f"\nRunning {self.display_dir}/{listed_message.qid}"
                    f" (sequence {number} of {len(chosen)})"
                )
            outcome = self.run_one(listed_message.qid)
            if outcome is None:
                summary.skipped_locked += 1
                continue
            summary.attempted += 1
            summary.outcomes.append(outcome)

    def _too_young(self, listed: Any) -> bool:
        """MinQueueAge: a message tried less than that long ago waits for a later run
        (one never tried yet does not wait)."""
        last = getattr(listed, "last_attempt", 0) or 0
        return bool(self.min_queue_age and last and self.clock() - last < self.min_queue_age)

    def timeouts_for(self, queue_file: QueueFile) -> tuple[float, float]:
        """(queuewarn, queuereturn) for this message's class."""
        kind = timeout_class(queue_file.headers, self.priorities, is_dsn=queue_file.has_flag("r"))
        return self.timeouts.for_class(kind)

    def run_forever(self, interval: float, stop: threading.Event) -> None:
        """The daemon's -q<interval>: a run, then a wait, until `stop` is set."""
        while not stop.is_set():
            try:
                self.run()
                self.store.cleanup()
            except Exception:  # a run must never kill the daemon's runner thread
                log.exception("queue run failed")
            stop.wait(interval)

    def run_one(self, qid: str) -> MessageOutcome | None:
        """Attempt one message; None when another runner holds it (or it is gone/lost)."""
        if not self._in_run:
            self._host_status = {}  # a lone attempt (-odi) trusts no earlier failure
        locked = self.store.lock(qid)
        if locked is None:
            return None
        try:
            return self._attempt(locked)
        finally:
            locked.release()

    # ------------------------------------------------------------ one attempt

    def _attempt(self, locked: LockedMessage) -> MessageOutcome:
        queue_file = locked.queue_file
        message = QueuedMessage(locked.qid, queue_file, self.store.path("df", locked.qid))
        outcome = MessageOutcome(locked.qid)
        started = self.clock()
        results: dict[int, list[tuple[Any, DeliveryResult]]] = {}
        groups: dict[str, list[tuple[int, Any]]] = {}
        for index, rcpt in enumerate(queue_file.recipients):
            try:
                deliveries = self.route(rcpt, message)
            except MailError as error:
                results[index] = [(None, DeliveryResult.from_error(rcpt.address, error))]
                continue
            if not deliveries:
                results[index] = [(None, DeliveryResult.sent(rcpt.address, "Sent (no targets)"))]
                continue
            for delivery in deliveries:
                message.origins[id(delivery)] = rcpt
                verdict = self.compat(queue_file.sender, delivery) if self.compat else None
                if verdict is not None:
                    results.setdefault(index, []).append((delivery, verdict))
                    continue
                groups.setdefault(delivery.mailer, []).append((index, delivery))
        for mailer, members in groups.items():
            for index, delivery, result in self._deliver_group(message, mailer, members):
                results.setdefault(index, []).append((delivery, result))
        now = self.clock()
        self._write_back(locked, message, results, outcome, started, now)
        return outcome

    def _deliver_group(self, message: QueuedMessage, mailer: str, members: list[tuple[int, Any]]):
        """Deliver one mailer's share; hosts that failed earlier in this run are not
        tried again (sendmail's host status cache): they get the same deferral."""
        recipients = message.queue_file.recipients
        live: list[tuple[int, Any]] = []
        for index, delivery in members:
            cached = self._host_status.get(_host_key(delivery))
            if cached is not None:
                result = replace_fields(cached, recipient=recipients[index].address)
                if self.verbose:
                    self._say(f"{recipients[index].address}... {result.text}")
                yield index, delivery, result
            else:
                live.append((index, delivery))
        if not live:
            return
        announced = getattr(self.deliverers.get(mailer), "announces_connections", False)
        if not announced:
            for index, delivery in live:
                self._connecting(recipients[index], delivery)
        results = self._call_deliverer(message, mailer, live)
        if self.verbose:
            self._say_results([recipients[i].address for i, _ in live], results, announced)
        for (index, delivery), result in zip(live, results, strict=True):
            key = _host_key(delivery)
            if key is not None and result.is_temporary:
                self._host_status[key] = result
            yield index, delivery, result

    def _say_results(
        self, addresses: list[str], results: list[DeliveryResult], grouped: bool
    ) -> None:
        """-v: each recipient's outcome; of one SMTP transaction (`grouped`), the
        recipients with the same outcome on one line, as sendmail names them
        (`<a@x>,<b@x>... Sent (...)`)."""
        lines: dict[str, list[str]] = {}
        for address, result in zip(addresses, results, strict=True):
            if grouped:
                lines.setdefault(result.text, []).append(address)
            else:
                self._say(f"{address}... {result.text}")
        for text, named in lines.items():
            self._say(f"{','.join(named)}... {text}")

    def _call_deliverer(
        self, message: QueuedMessage, mailer: str, members: list[tuple[int, Any]]
    ) -> list[DeliveryResult]:
        recipients = message.queue_file.recipients
        deliverer = self.deliverers.get(mailer)
        if deliverer is None:
            return [
                DeliveryResult.bounced(
                    recipients[i].address, f"No such mailer: {mailer}", "5.3.5", mailer=mailer
                )
                for i, _ in members
            ]
        try:
            results = list(deliverer.deliver(message, [d for _, d in members]))
        except MailError as error:
            return [DeliveryResult.from_error(recipients[i].address, error) for i, _ in members]
        except Exception as error:  # a mailer bug must not lose the message
            log.exception("%s: mailer %s failed", message.qid, mailer)
            return [
                DeliveryResult.deferred(
                    recipients[i].address,
                    f"Deferred: mailer {mailer} failed: {error}",
                    "4.3.0",
                    mailer=mailer,
                )
                for i, _ in members
            ]
        if len(results) != len(members):
            log.error(
                "%s: mailer %s returned %d results for %d deliveries",
                message.qid,
                mailer,
                len(results),
                len(members),
            )
            results = results[: len(members)] + [
                DeliveryResult.deferred(
                    recipients[i].address, "Deferred: no result from mailer", "4.3.0", mailer=mailer
                )
                for i, _ in members[len(results) :]
            ]
        return results

    def _connecting(self, rcpt: QueueRecipient, delivery: Any) -> None:
        if not self.verbose:
            return
        host = getattr(delivery, "host", "") or ""
        mailer = delivery.mailer
        where = (
            f"{host} via {mailer}" if host and mailer not in ("local", "prog", "*file*") else mailer
        )
        self._say(f"{rcpt.address}... Connecting to {where}...")

    def _say(self, text: str) -> None:
        assert self.verbose is not None
        self.verbose.write(text + "\n")
        self.verbose.flush()

    # ------------------------------------------------------------ writing back

    def _write_back(
        self,
        locked: LockedMessage,
        message: QueuedMessage,
        results: dict[int, list[tuple[Any, DeliveryResult]]],
        outcome: MessageOutcome,
        started: float,
        now: float,
    ) -> None:
        queue_file = locked.queue_file
        age = now - queue_file.queued_at
        queuewarn, queuereturn = self.timeouts_for(queue_file)
        keep: list[QueueRecipient] = []
        failed: list[tuple[QueueRecipient, DeliveryResult]] = []
        delayed: list[tuple[QueueRecipient, DeliveryResult]] = []
        succeeded: list[tuple[QueueRecipient, DeliveryResult]] = []
        last_deferral: str | None = None
        for index, rcpt in enumerate(queue_file.recipients):
            pairs = results.get(index, [])
            for delivery, result in pairs:
                self._log_result(queue_file, rcpt, delivery, result, started, now)
            deferred = [(d, r) for d, r in pairs if r.is_temporary]
            bounced = [(d, r) for d, r in pairs if r.is_permanent]
            sent = [(d, r) for d, r in pairs if r.is_success]
            for _, r in bounced:
                failed.append((rcpt, r))
                outcome.bounced.append(rcpt.address)
            if deferred and age >= queuereturn:
                days = int(queuereturn // 86400) or 1
                for _, r in deferred:
                    expired = DeliveryResult.bounced(
                        rcpt.address,
                        f"{r.text} (Cannot send message for {days} day{'s' if days > 1 else ''})",
                        "4.4.7",
                        mailer=r.mailer,
                        remote_mta=r.remote_mta,
                        diagnostic_code=r.diagnostic_code,
                    )
                    failed.append((rcpt, expired))
                outcome.bounced.append(rcpt.address)
                deferred = []
            if deferred:
                last_deferral = deferred[-1][1].text
                outcome.deferred.append(rcpt.address)
                delayed.extend((rcpt, r) for _, r in deferred)
                keep.extend(self._still_queued(rcpt, pairs, deferred))
            elif not bounced:
                outcome.sent.append(rcpt.address)
            succeeded.extend((rcpt, r) for _, r in sent)

        original = self._original(message)
        returned = self.return_failures
        if failed and not (returned and returned(queue_file, message, failed)):
            self._send_dsn(DsnKind.FAILURE, queue_file, original, failed, now, outcome)
        if succeeded:
            wanted = [(r, res) for r, res in succeeded if wants_report(r.notify, DsnKind.SUCCESS)]
            if wanted:
                self._send_dsn(DsnKind.SUCCESS, queue_file, original, wanted, now, outcome)
        if delayed and age >= queuewarn and not queue_file.has_flag("w"):
            wanted = [(r, res) for r, res in delayed if wants_report(r.notify, DsnKind.DELAY)]
            if wanted and self._send_dsn(DsnKind.DELAY, queue_file, original, wanted, now, outcome):
                queue_file.set_flag("w")

        if not keep:
            self.store.remove(locked)
            outcome.removed = True
            return
        queue_file.recipients = keep
        queue_file.attempts += 1
        queue_file.last_attempt = int(now)
        queue_file.priority = qfmod.retry_priority(queue_file.priority)
        queue_file.status = last_deferral
        queue_file.df_inode = self.store.df_inode(locked.qid) or queue_file.df_inode
        self.store.rewrite(locked)

    def _still_queued(self, rcpt: QueueRecipient, pairs, deferred) -> list[QueueRecipient]:
        """The recipient stays as it is, unless it expanded to several targets of which
        only some were deferred: then only those targets stay (as alias products)."""
        if len(pairs) == len(deferred) or any(not getattr(d, "address", None) for d, _ in deferred):
            return [rcpt]
        flags = "".join(c for c in rcpt.flags if c != "P")
        if "A" not in flags:
            flags += "A"
        return [
            QueueRecipient(
                address=d.address,
                flags=flags,
                final_recipient=rcpt.final_recipient,
                orcpt=rcpt.orcpt,
                controlling_user=_controlling(d) or rcpt.controlling_user,
            )
            for d, _ in deferred
        ]

    def _log_result(self, queue_file, rcpt, delivery, result, started, now) -> None:
        self.mail_log.delivered(
            queue_file.qid,
            to=rcpt.address,
            delay=now - queue_file.queued_at,
            xdelay=now - started,
            mailer=result.mailer or getattr(delivery, "mailer", "") or "*error*",
            pri=queue_file.priority,
            relay=result.relay or None,
            dsn=result.status,
            stat=result.text,
        )

    def _original(self, message: QueuedMessage) -> OriginalMessage:
        queue_file = message.queue_file
        ret = None
        if queue_file.has_flag("d"):
            ret = Ret.HDRS if queue_file.has_flag("n") else Ret.FULL
        try:
            body = message.read_body() if ret != Ret.HDRS else b""
        except OSError:
            body = b""
        return OriginalMessage(
            qid=queue_file.qid,
            sender=queue_file.sender,
            headers=queue_file.headers,
            body=body,
            arrival=queue_file.queued_at,
            received_from=queue_file.macros.get("_", ""),
            envid=queue_file.envid,
            ret=ret,
            is_dsn=queue_file.has_flag("r"),
        )

    def _send_dsn(self, kind, queue_file, original, pairs, now, outcome) -> bool:
        # NOTIFY= is the sender's wish; a failed report goes to the postmaster regardless.
        if not original.is_dsn and not is_null_sender(original.sender):
            pairs = [(r, res) for r, res in pairs if wants_report(r.notify, kind)]
        if not pairs:
            return False
        give_up = self.timeouts_for(queue_file)[1]
        reports = [_report(kind, rcpt, result, now, queue_file, give_up) for rcpt, result in pairs]
        draft = self.store.open_draft()
        try:
            built = build_dsn(
                kind,
                original,
                reports,
                qid=draft.qid,
                hostname=self.hostname,
                now=now,
                transcript=[f"{res.text}" for _, res in pairs if kind is not DsnKind.SUCCESS],
                delayed_for=now - queue_file.queued_at,
            )
            if built is None:
                draft.abort()
                self.mail_log.event(queue_file.qid, f"{kind} notification not sent (no recipient)")
                return False
            draft.write(built.body)
            dsn_qid = draft.commit(built.envelope, built.headers, hostname=self.hostname, now=now)
        except BaseException:
            draft.abort()
            raise
        reason = pairs[0][1].text
        self.mail_log.dsn(queue_file.qid, dsn_qid, reason)
        outcome.dsn_ids.append(dsn_qid)
        return True


def _host_key(delivery: Any) -> tuple[str, str] | None:
    host = getattr(delivery, "host", "") or ""
    return (delivery.mailer, host.lower()) if host else None


def _controlling(delivery: Any) -> str | None:
    cu = getattr(delivery, "controlling_user", None)
    if cu is None:
        return None
    if isinstance(cu, str):
        return cu
    return f"{cu.user}:{cu.uid}:{cu.gid}:{getattr(cu, 'address', '')}"


def _report(kind, rcpt: QueueRecipient, result: DeliveryResult, now, queue_file, give_up):
    action = {
        DsnKind.FAILURE: "failed",
        DsnKind.DELAY: "delayed",
        DsnKind.SUCCESS: "relayed" if result.remote_mta else "delivered",
    }[kind]
    address = rcpt.bare_address
    diagnostic = result.diagnostic_code
    if diagnostic is None and kind is not DsnKind.SUCCESS:
        diagnostic = f"X-Unix; {result.text}"
    return RecipientReport(
        address=address,
        final_recipient=rcpt.final_recipient or f"RFC822; {address}",
        action=action,
        status=result.status,
        diagnostic=diagnostic,
        reason=result.text if kind is not DsnKind.SUCCESS else None,
        original_recipient=rcpt.orcpt,
        remote_mta=result.remote_mta,
        last_attempt=now,
        will_retry_until=(queue_file.queued_at + give_up) if kind is DsnKind.DELAY else None,
    )
