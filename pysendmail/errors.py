"""The project's typed errors.

Every error that can reach a user carries what each door needs to report it: the
sysexits code (command line), the SMTP reply code and the enhanced status code
(SMTP replies, DSNs). One object, so the exit status, the reply and the DSN agree.
`Location` and `Diagnostic` live in pysendmail.location (importable from here too), so
that loading the cached configuration does not import the exit codes' enum.
"""

from __future__ import annotations

from pysendmail.location import Diagnostic as Diagnostic
from pysendmail.location import Location as Location
from pysendmail.sysexits import ExitCode


class MailError(Exception):
    """An error in handling mail, reportable on every door."""

    exit_code: ExitCode = ExitCode.SOFTWARE
    reply_code: int = 554
    status: str = "5.3.0"

    def __init__(
        self,
        text: str,
        *,
        exit_code: ExitCode | None = None,
        reply_code: int | None = None,
        status: str | None = None,
    ) -> None:
        super().__init__(text)
        self.text = text
        if exit_code is not None:
            self.exit_code = exit_code
        if reply_code is not None:
            self.reply_code = reply_code
        if status is not None:
            self.status = status

    @property
    def is_temporary(self) -> bool:
        return self.status.startswith("4")

    def smtp_reply(self) -> str:
        """The reply line as sendmail writes it: `550 5.1.1 text`."""
        return f"{self.reply_code} {self.status} {self.text}"


class TempFailure(MailError):
    """Try again later: nothing was lost, nothing was done."""

    exit_code = ExitCode.TEMPFAIL
    reply_code = 451
    status = "4.3.0"


class UserUnknown(MailError):
    exit_code = ExitCode.NOUSER
    reply_code = 550
    status = "5.1.1"


class HostUnknown(MailError):
    exit_code = ExitCode.NOHOST
    reply_code = 550
    status = "5.1.2"


class AddressSyntaxError(MailError):
    exit_code = ExitCode.USAGE
    reply_code = 553
    status = "5.1.3"


class UsageError(MailError):
    """A bad command line: usage text and exit 64."""

    exit_code = ExitCode.USAGE
    reply_code = 501
    status = "5.5.4"


class QueueError(TempFailure):
    """The queue could not take or give a message (disk full, I/O error, lock)."""

    status = "4.3.0"


class ConfigError(MailError):
    """A configuration file that cannot be used. `str()` gives `file:line:col: message`."""

    exit_code = ExitCode.CONFIG
    reply_code = 451
    status = "4.3.5"

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)
