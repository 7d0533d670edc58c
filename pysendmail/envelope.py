"""The envelope of a message: what the two doors (SMTP, command line) hand to the queue.

It holds what the sender said, not what delivery later learns: per-attempt state
(tries, last status, the queue ID) belongs to the queue (`queue.qf`).
"""

from __future__ import annotations

from pysendmail.constants import StrConstants
from pysendmail.record import field, record


class Notify(StrConstants):
    """DSN NOTIFY= values (RFC 3461)."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


class Ret(StrConstants):
    """DSN RET= values: return the whole message or only its headers."""

    FULL = "FULL"
    HDRS = "HDRS"


class BodyType(StrConstants):
    SEVEN_BIT = "7BIT"
    EIGHT_BIT_MIME = "8BITMIME"
    BINARY_MIME = "BINARYMIME"


@record(frozen=True)
class ControllingUser:
    """Who owns a |prog or /file target (qf `C` line): the alias file's or .forward's owner."""

    user: str
    uid: int
    gid: int
    address: str = ""


@record
class Recipient:
    """One envelope recipient, as given (`bob`, `<bob@example.com>`)."""

    address: str
    # NOTIFY=: None means not given (sendmail then notifies on failure and delay).
    notify: frozenset[Notify] | None = None
    orcpt: str | None = None  # ORCPT= as given, e.g. "rfc822;bob@example.com"
    primary: bool = True  # named by the submitter, not produced by an alias
    from_alias: bool = False
    controlling_user: ControllingUser | None = None


@record
class Envelope:
    """Sender, recipients and the ESMTP parameters of one message."""

    sender: str  # as given; "<>" is the null sender
    recipients: list[Recipient] = field(default_factory=list)
    body_type: BodyType | None = None
    ret: Ret | None = None
    envid: str | None = None
    auth: str | None = None  # MAIL FROM AUTH= (or the submitter, for the command line)
    smtputf8: bool = False
    size_hint: int | None = None  # SIZE= as declared by the client
    # Where the message came from, kept as sendmail's macros ($r protocol, $s helo,
    # $_ ident/client, ${daemon_flags} ...): one-letter names as "r", long as "daemon_flags".
    macros: dict[str, str] = field(default_factory=dict)
    # F line letters sendmail writes (b: remove Bcc at delivery, 8: 8-bit body ...).
    flags: set[str] = field(default_factory=set)

    @property
    def is_bounce(self) -> bool:
        return self.sender in ("<>", "")
