"""Delivery status notifications (RFC 3464), built as sendmail 8.17 builds its bounces.

This module only builds the report: the envelope (null sender, one recipient), the
headers and the body of a `multipart/report; report-type=delivery-status` message. The
queue runner decides when one is due, enqueues it like any other message, and logs it.

Who gets it (`dsn_recipient`): the envelope sender; never `<>`. A failed message whose
sender is `<>` (a DSN itself) goes to the postmaster as a double bounce; a failed double
bounce (null sender, to the postmaster) gets nothing, so DSNs never loop. Which
recipients are reported follows NOTIFY= (`wants_report`); ORCPT= becomes
Original-Recipient and ENVID= Original-Envelope-Id; RET=HDRS returns only the headers
(`text/rfc822-headers`), otherwise the whole message (`message/rfc822`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from enum import StrEnum

from pysendmail.envelope import Envelope, Notify, Recipient, Ret
from pysendmail.headers import Header, encode, render
from pysendmail.record import field, record

MAILER_DAEMON = "MAILER-DAEMON"
POSTMASTER = "postmaster"
# Header flags of the mailer a returned message is rendered for: Return-Path, Date,
# From and Message-Id headers that sendmail added are shown; Full-Name is not.
_RETURN_FLAGS = "PDFM"


class DsnKind(StrEnum):
    FAILURE = "failure"
    DELAY = "delay"
    SUCCESS = "success"


_NOTIFY_FOR = {DsnKind.FAILURE: Notify.FAILURE, DsnKind.DELAY: Notify.DELAY}
_NOTIFY_FOR[DsnKind.SUCCESS] = Notify.SUCCESS

_SUBJECT = {
    DsnKind.FAILURE: "Returned mail: see transcript for details",
    DsnKind.SUCCESS: "Successful Mail Delivery Report",
}
_HEADING = {
    DsnKind.FAILURE: "   ----- The following addresses had permanent fatal errors -----",
    DsnKind.DELAY: "   ----- The following addresses had transient non-fatal errors -----",
    DsnKind.SUCCESS: (
        "   ----- The following addresses had successful delivery notifications -----"
    ),
}
_AUTO_SUBMITTED = {
    DsnKind.FAILURE: "auto-generated (failure)",
    DsnKind.DELAY: "auto-generated (warning-timeout)",
    DsnKind.SUCCESS: "auto-generated (success)",
}
_LISTED_ACTION = {DsnKind.FAILURE: "failed", DsnKind.DELAY: "delayed", DsnKind.SUCCESS: ""}
_WARNING_BANNER = (
    "    **********************************************\n"
    "    **      THIS IS A WARNING MESSAGE ONLY      **\n"
    "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n"
    "    **********************************************\n"
)


@record
class RecipientReport:
    """What happened to one recipient, for both parts of the report."""

    address: str  # as shown in the human-readable list ("secret@example.com")
    final_recipient: str  # "RFC822; secret@example.com"
    action: str  # failed, delayed, delivered, relayed, expanded (RFC 3464 2.3.3)
    status: str  # "5.1.1"
    diagnostic: str | None = None  # "X-Unix; 550 5.1.1 User unknown", "smtp; 550 ..."
    reason: str | None = None  # the human-readable line: "550 5.1.1 User unknown"
    original_recipient: str | None = None  # ORCPT= as given: "rfc822;bob@example.com"
    actual_recipient: str | None = None  # "rfc822; secret@mail.example.com"
    remote_mta: str | None = None  # "dns; mx.example.com"
    last_attempt: float | None = None
    will_retry_until: float | None = None


@record
class OriginalMessage:
    """The message a report is about, as the queue holds it."""

    qid: str
    sender: str  # the envelope sender as queued ("root", "<alice@example.com>", "<>")
    headers: list[Header]
    body: bytes
    arrival: float  # when it was queued (qf T)
    received_from: str = ""  # sendmail's $_: "root@localhost", "client [127.0.0.2]"
    envid: str | None = None
    ret: Ret | None = None
    is_dsn: bool = False  # qf flag r: the message is itself a report


@record
class DsnMessage:
    """A report ready to be enqueued: `store.open_draft()`, write(body), commit(...)."""

    envelope: Envelope
    headers: list[Header]
    body: bytes
    recipients: list[str] = field(default_factory=list)


def bare(address: str) -> str:
    addr = address.strip()
    if "<" in addr and addr.endswith(">"):
        addr = addr[addr.rindex("<") + 1 : -1]
    return addr.strip()


def is_null_sender(sender: str) -> bool:
    return bare(sender) == ""


def wants_report(notify: frozenset[Notify] | None, kind: DsnKind) -> bool:
    """NOTIFY= decides: unset means failure and delay; NEVER means nothing."""
    event = _NOTIFY_FOR[kind]
    if notify is None:
        return event in (Notify.FAILURE, Notify.DELAY)
    return event in notify


def dsn_recipient(original: OriginalMessage, kind: DsnKind) -> str | None:
    """Where the report goes: the sender, the postmaster (double bounce) or nowhere."""
    if not is_null_sender(original.sender) and not original.is_dsn:
        return bare(original.sender)
    if kind is not DsnKind.FAILURE:
        return None  # no delay or success reports about reports
    recipients = [h.value.strip().lower() for h in original.headers if h.key == "to"]
    if any(bare(r).split("@")[0] == POSTMASTER for r in recipients):
        return None  # a double bounce failed: drop it, log it; never loop
    return POSTMASTER


def rfc822_date(seconds: float) -> str:
    """The date format of sendmail's reports (`Thu, 26 Nov 2026 11:11:01 GMT`)."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds))


def _subject(kind: DsnKind, delayed_for: float | None) -> str:
    if kind is DsnKind.DELAY:
        hours = max(1, round((delayed_for or 0) / 3600))
        return f"Warning: could not send message for past {hours} hour{'s' if hours != 1 else ''}"
    return _SUBJECT[kind]


def build_dsn(
    kind: DsnKind,
    original: OriginalMessage,
    reports: Iterable[RecipientReport],
    *,
    qid: str,
    hostname: str,
    now: float | None = None,
    transcript: Iterable[str] = (),
    delayed_for: float | None = None,
    recipient: str | None = None,
) -> DsnMessage | None:
    """The report about `reports`, or None when nobody may get one.

    `qid` is the report's own queue ID (from the draft it will be written to): it names
    the MIME boundary and the Message-Id as sendmail's do. `recipient` overrides
    `dsn_recipient()` (for tests and for ErrorsTo-style policies).
    """
    reports = list(reports)
    to = recipient if recipient is not None else dsn_recipient(original, kind)
    if not to or not reports:
        return None
    now = time.time() if now is None else now
    boundary = f"{qid}.{int(now)}/{hostname}"
    date = rfc822_date(now)
    stamp = time.strftime("%Y%m%d%H%M", time.gmtime(now))
    headers = [
        Header(
            "Received",
            f"from localhost (localhost)\n\tby {hostname} (pysendmail) id {qid};\n\t{date}",
        ),
        Header("Date", date),
        Header("From", f"Mail Delivery Subsystem <{MAILER_DAEMON}>"),
        Header("Message-Id", f"<{stamp}.{qid}@{hostname}>"),
        Header("To", to),
        Header("MIME-Version", "1.0"),
        Header(
            "Content-Type",
            f'multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"',
        ),
        Header("Subject", _subject(kind, delayed_for)),
        Header("Auto-Submitted", _AUTO_SUBMITTED[kind]),
    ]
    parts = [
        "This is a MIME-encapsulated message\n",
        f"--{boundary}\n",
        _human_part(kind, original, reports, transcript),
        f"--{boundary}\nContent-Type: message/delivery-status\n",
        _status_part(original, reports, hostname),
    ]
    body = encode("\n".join(parts))
    body += encode(f"\n--{boundary}\n") + _returned_part(original)
    body += encode(f"\n--{boundary}--\n")
    envelope = Envelope(sender="<>", recipients=[Recipient(to)], flags={"r"})
    return DsnMessage(envelope=envelope, headers=headers, body=body, recipients=[to])


def _human_part(
    kind: DsnKind,
    original: OriginalMessage,
    reports: list[RecipientReport],
    transcript: Iterable[str],
) -> str:
    lines = [f"The original message was received at {rfc822_date(original.arrival)}"]
    if original.received_from:
        lines.append(f"from {original.received_from}")
    lines.append("")
    if kind is DsnKind.DELAY:
        lines.append(_WARNING_BANNER)
    lines.append(_HEADING[kind])
    # The list names only the recipients the report is about; others (a mailing list
    # that was delivered) show in the status part alone.
    for report in reports:
        if _LISTED_ACTION[kind] not in report.action:
            continue
        lines.append(report.address)
        if report.reason:
            lines.append(f"    (reason: {report.reason})")
    transcript = list(transcript)
    if transcript:
        lines += ["", "   ----- Transcript of session follows -----", *transcript]
    return "\n".join(lines) + "\n"


def _status_part(original: OriginalMessage, reports: list[RecipientReport], hostname: str) -> str:
    fields = [f"Reporting-MTA: dns; {hostname}"]
    if original.envid:
        fields.insert(0, f"Original-Envelope-Id: {original.envid}")
    fields.append(f"Arrival-Date: {rfc822_date(original.arrival)}")
    blocks = ["\n".join(fields)]
    for report in reports:
        block = []
        if report.original_recipient:
            block.append(f"Original-Recipient: {report.original_recipient}")
        block.append(f"Final-Recipient: {report.final_recipient}")
        if report.actual_recipient:
            block.append(f"X-Actual-Recipient: {report.actual_recipient}")
        block += [f"Action: {report.action}", f"Status: {report.status}"]
        if report.remote_mta:
            block.append(f"Remote-MTA: {report.remote_mta}")
        if report.diagnostic:
            block.append(f"Diagnostic-Code: {report.diagnostic}")
        if report.last_attempt is not None:
            block.append(f"Last-Attempt-Date: {rfc822_date(report.last_attempt)}")
        if report.will_retry_until is not None:
            block.append(f"Will-Retry-Until: {rfc822_date(report.will_retry_until)}")
        blocks.append("\n".join(block))
    return "\n\n".join(blocks) + "\n"


def _returned_part(original: OriginalMessage) -> bytes:
    sender = bare(original.sender)
    header_block = render(
        original.headers, _RETURN_FLAGS, {"g": sender or MAILER_DAEMON}, remove_bcc=True
    )
    if original.ret == Ret.HDRS:
        return b"Content-Type: text/rfc822-headers\n\n" + header_block
    return b"Content-Type: message/rfc822\n\n" + header_block + b"\n" + original.body
