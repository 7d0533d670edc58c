"""The outcome of one delivery attempt for one recipient.

Every mailer (local, prog, file, remote) returns a `DeliveryResult` per recipient; the
queue runner logs it (`stat=`), keeps or removes the recipient, and hands failures and
delays to the DSN builder. The sysexits → (status, text) table is sendmail's own
(SysExMsg in sendmail's sysexits.c), so a mailer's exit code reads the same here as in
sendmail's logs. This module does no I/O.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pysendmail.errors import MailError
from pysendmail.record import record
from pysendmail.sysexits import ExitCode


class Outcome(StrEnum):
    SENT = "sent"  # delivered: remove the recipient from the queue
    DEFERRED = "deferred"  # temporary failure: keep it queued, try later
    BOUNCED = "bounced"  # permanent failure: a DSN goes to the sender


# What sendmail prints for a mailer's exit code: (SMTP reply code, enhanced status, text).
_SYSEXIT_MESSAGES: dict[ExitCode, tuple[int, str, str]] = {
    ExitCode.USAGE: (500, "5.0.0", "Bad usage"),
    ExitCode.DATAERR: (501, "5.6.0", "Data format error"),
    ExitCode.NOINPUT: (550, "5.3.0", "Cannot open input"),
    ExitCode.NOUSER: (550, "5.1.1", "User unknown"),
    ExitCode.NOHOST: (550, "5.1.2", "Host unknown"),
    ExitCode.UNAVAILABLE: (554, "5.0.0", "Service unavailable"),
    ExitCode.SOFTWARE: (554, "5.3.0", "Internal error"),
    ExitCode.OSERR: (451, "4.0.0", "Operating system error"),
    ExitCode.OSFILE: (554, "5.3.5", "System file missing"),
    ExitCode.CANTCREAT: (550, "5.0.0", "Can't create output"),
    ExitCode.IOERR: (451, "4.0.0", "I/O error"),
    ExitCode.TEMPFAIL: (450, "4.0.0", "Deferred"),
    ExitCode.PROTOCOL: (554, "5.5.0", "Remote protocol error"),
    ExitCode.NOPERM: (550, "5.0.0", "Insufficient permission"),
    ExitCode.CONFIG: (554, "5.3.5", "Local configuration error"),
}

_KNOWN_EXITS = frozenset(int(member) for member in ExitCode)


def exit_outcome(code: int) -> Outcome:
    """How sendmail treats a mailer that exited with `code`."""
    if code == 0:
        return Outcome.SENT
    if code in _KNOWN_EXITS and ExitCode(code).is_temporary:
        return Outcome.DEFERRED
    return Outcome.BOUNCED


def sysexit_message(code: int) -> tuple[int, str, str]:
    """(reply code, enhanced status, text) for a mailer exit code; unknown codes are
    reported as sendmail reports them: `554 5.3.0 unknown mailer error N`."""
    try:
        return _SYSEXIT_MESSAGES[ExitCode(code)]
    except ValueError:
        return 554, "5.3.0", f"unknown mailer error {code}"


@record(frozen=True)
class DeliveryResult:
    """One recipient's result.

    `text` is what sendmail logs after `stat=` (`Sent`, `Sent (ok 1234)`,
    `Deferred: Connection refused by mx.example.com.`, `User unknown`);
    `remote_mta` and `diagnostic_code` feed the DSN (`Remote-MTA: dns; host`,
    `Diagnostic-Code: smtp; 550 5.1.1 ...`) and are None for local mailers.
    """

    recipient: str
    status: str  # enhanced status code: 2.0.0, 4.4.1, 5.1.1 ...
    text: str
    outcome: Outcome
    mailer: str = ""
    relay: str = ""  # sendmail's relay= field: `host. [addr]` or `local`
    remote_mta: str | None = None
    diagnostic_code: str | None = None
    exit_code: int | None = None  # the mailer's sysexits code, when there was one

    @property
    def is_success(self) -> bool:
        return self.outcome is Outcome.SENT

    @property
    def is_temporary(self) -> bool:
        return self.outcome is Outcome.DEFERRED

    @property
    def is_permanent(self) -> bool:
        return self.outcome is Outcome.BOUNCED

    @classmethod
    def sent(cls, recipient: str, text: str = "Sent", **extra: Any) -> DeliveryResult:
        return cls(recipient, "2.0.0", text, Outcome.SENT, exit_code=0, **extra)

    @classmethod
    def deferred(
        cls, recipient: str, text: str, status: str = "4.0.0", **extra: Any
    ) -> DeliveryResult:
        return cls(recipient, status, text, Outcome.DEFERRED, **extra)

    @classmethod
    def bounced(
        cls, recipient: str, text: str, status: str = "5.0.0", **extra: Any
    ) -> DeliveryResult:
        return cls(recipient, status, text, Outcome.BOUNCED, **extra)

    @classmethod
    def from_exit(cls, recipient: str, code: int, detail: str = "", **extra: Any) -> DeliveryResult:
        """The result of a mailer program that exited with `code` (sysexits)."""
        outcome = exit_outcome(code)
        if outcome is Outcome.SENT:
            return cls.sent(recipient, **extra)
        _, status, text = sysexit_message(code)
        if outcome is Outcome.DEFERRED and code != ExitCode.TEMPFAIL:
            # sendmail logs a requeued I/O or OS error as "Deferred: I/O error".
            text = f"Deferred: {text}"
        if detail:
            text = f"{text}: {detail}" if outcome is Outcome.DEFERRED else f"{text} ({detail})"
        if outcome is Outcome.DEFERRED and status.startswith("5"):
            status = "4" + status[1:]
        return cls(recipient, status, text, outcome, exit_code=code, **extra)

    @classmethod
    def from_error(cls, recipient: str, error: MailError, **extra: Any) -> DeliveryResult:
        """The result for a typed error: its status decides temporary or permanent."""
        if error.is_temporary:
            text = error.text if error.text.startswith("Deferred") else f"Deferred: {error.text}"
            outcome = Outcome.DEFERRED
        else:
            text, outcome = error.text, Outcome.BOUNCED
        return cls(recipient, error.status, text, outcome, exit_code=int(error.exit_code), **extra)
