"""Every SMTP reply pysendmail's server sends: one table, by name.

Each entry holds the reply code, the enhanced status code (RFC 3463, or None where
sendmail sends none) and a text template filled with `str.format` fields. The texts are
sendmail 8.17's, so a client (or a test) sees the same words. Protocol code asks for a
reply by name (`SENDER_OK.render(addr="<a@b>")`); tests assert on the same names.

Replies that come from policy decisions (access db texts, "Relaying denied", "User
unknown") are carried by `pysendmail.errors.MailError` objects and formatted by
`Reply.from_error`, so the SMTP reply, the exit status and the DSN agree.
"""

from __future__ import annotations

from pysendmail.errors import MailError
from pysendmail.record import record


@record(frozen=True)
class Reply:
    """One reply as sent: code, enhanced status (or None) and one or more text lines."""

    code: int
    status: str | None
    lines: tuple[str, ...]

    @property
    def closes_session(self) -> bool:
        """sendmail drops the connection after any 421 it sends."""
        return self.code == 421

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def to_bytes(self) -> bytes:
        out = []
        last = len(self.lines) - 1
        for index, line in enumerate(self.lines):
            sep = " " if index == last else "-"
            prefix = f"{self.code}{sep}"
            if self.status:
                prefix += f"{self.status} "
            out.append(f"{prefix}{line}\r\n")
        return "".join(out).encode("utf-8", "surrogateescape")

    @classmethod
    def from_error(cls, error: MailError, subject: str | None = None) -> Reply:
        """`550 5.1.1 <u@d>... User unknown` from a typed error and the address it concerns."""
        text = error.text
        if subject is not None:
            text = f"{subject}... {text}"
        return cls(error.reply_code, error.status, (text,))


@record(frozen=True)
class ReplyTemplate:
    """A named reply: code, enhanced status and a text template."""

    name: str
    code: int
    status: str | None
    template: str

    def render(self, **fields: object) -> Reply:
        return Reply(self.code, self.status, (self.template.format(**fields),))

    def render_lines(self, lines: list[str] | tuple[str, ...]) -> Reply:
        """A multi-line reply whose lines are given (EHLO keywords, HELP text)."""
        return Reply(self.code, self.status, tuple(lines) or ("",))


def _t(name: str, code: int, status: str | None, template: str) -> ReplyTemplate:
    return ReplyTemplate(name, code, status, template)


# ---------------------------------------------------------------- connection
GREETING = _t("GREETING", 220, None, "{text}")
GREETING_REFUSED = _t("GREETING_REFUSED", 554, None, "{host} ESMTP not accepting messages")
CLOSING = _t("CLOSING", 221, "2.0.0", "{host} closing connection")
SHUTTING_DOWN = _t("SHUTTING_DOWN", 421, "4.3.2", "{host} Service shutting down")
TIMEOUT = _t("TIMEOUT", 421, "4.4.2", "{host} Timeout waiting for input from {client}")
TOO_MANY_BAD_COMMANDS = _t(
    "TOO_MANY_BAD_COMMANDS", 421, "4.7.0", "{host} Too many bad commands; closing connection"
)
COMMAND_TOO_LONG = _t(
    "COMMAND_TOO_LONG", 421, "4.7.0", "{host} Command too long, possible attack {client}"
)
BARE_LF = _t("BARE_LF", 421, "4.5.0", "Bare linefeed (LF) not allowed")
BARE_CR = _t("BARE_CR", 421, "4.5.0", "Bare carriage return (CR) not allowed")
PROTOCOL_ERROR = _t("PROTOCOL_ERROR", 554, "5.5.0", "SMTP protocol error")
COMMAND_REJECTED = _t("COMMAND_REJECTED", 550, "5.0.0", "{text}")

# ---------------------------------------------------------------- HELO / EHLO
HELLO = _t("HELLO", 250, None, "{host} Hello {client}, pleased to meet you")
HELLO_NEEDS_DOMAIN = _t("HELLO_NEEDS_DOMAIN", 501, "5.0.0", "{verb} requires domain address")
HELLO_INVALID_DOMAIN = _t("HELLO_INVALID_DOMAIN", 501, "5.0.0", "Invalid domain name")
NEED_HELO = _t("NEED_HELO", 503, "5.0.0", "Polite people say HELO first")
DEMAND_HELO = _t("DEMAND_HELO", 503, "5.0.0", "I demand that you introduce yourself first")

# ---------------------------------------------------------------- simple commands
OK = _t("OK", 250, "2.0.0", "OK")
RESET = _t("RESET", 250, "2.0.0", "Reset state")
VERBOSE = _t("VERBOSE", 250, "2.0.0", "Verbose mode")
VERBOSE_REFUSED = _t("VERBOSE_REFUSED", 502, "5.7.0", "Verbose unavailable")
UNRECOGNIZED = _t("UNRECOGNIZED", 500, "5.5.1", 'Command unrecognized: "{line}"')
NOT_IMPLEMENTED = _t("NOT_IMPLEMENTED", 502, "5.5.1", 'Command not implemented: "{line}"')

# ---------------------------------------------------------------- MAIL / RCPT
SYNTAX_SCANNING = _t(
    "SYNTAX_SCANNING", 501, "5.5.2", 'Syntax error in parameters scanning "{word}"'
)
SENDER_OK = _t("SENDER_OK", 250, "2.1.0", "{addr}... Sender ok")
RECIPIENT_OK = _t("RECIPIENT_OK", 250, "2.1.5", "{addr}... Recipient ok")
SENDER_ALREADY = _t("SENDER_ALREADY", 503, "5.5.0", "Sender already specified")
NEED_MAIL_BEFORE_RCPT = _t("NEED_MAIL_BEFORE_RCPT", 503, "5.0.0", "Need MAIL before RCPT")
ADDRESS_SYNTAX = _t("ADDRESS_SYNTAX", 553, "5.0.0", "{addr}... {reason}")
NON_ASCII_ADDRESS = _t(
    "NON_ASCII_ADDRESS", 553, "5.6.7", "{addr}... Non-ASCII address needs SMTPUTF8"
)
PARAM_UNRECOGNIZED = _t("PARAM_UNRECOGNIZED", 555, "5.5.4", "{name} parameter unrecognized")
PARAM_NEEDS_VALUE = _t("PARAM_NEEDS_VALUE", 501, "5.5.2", "{name} requires a value")
PARAM_DUPLICATE = _t("PARAM_DUPLICATE", 501, "5.5.0", "Duplicate {name} parameter")
PARAM_SYNTAX = _t("PARAM_SYNTAX", 501, "5.5.4", "Syntax error in {name} parameter value")
PARAM_NO_VALUE = _t("PARAM_NO_VALUE", 501, "5.5.4", "{name} does not take a value")
BAD_ARGUMENT = _t("BAD_ARGUMENT", 501, "5.5.2", 'Bad argument "{value}"')
BAD_NOTIFY = _t("BAD_NOTIFY", 501, "5.5.4", 'Bad argument "{value}" to NOTIFY')
UNKNOWN_BODY = _t("UNKNOWN_BODY", 501, "5.5.4", "Unknown BODY type {value}")
SIZE_OVER_FIXED_MAX = _t(
    "SIZE_OVER_FIXED_MAX",
    552,
    "5.2.3",
    "Message size exceeds fixed maximum message size ({max})",
)
SIZE_OVER_MAX_VALUE = _t("SIZE_OVER_MAX_VALUE", 552, "5.2.3", "Message size exceeds maximum value")
SIZE_INVALID = _t("SIZE_INVALID", 552, "5.2.3", "Message size invalid")
TOO_MANY_RECIPIENTS = _t("TOO_MANY_RECIPIENTS", 452, "4.5.3", "Too many recipients")
AUTH_REQUIRED = _t("AUTH_REQUIRED", 530, "5.7.0", "Authentication required")

# ---------------------------------------------------------------- DATA / BDAT
START_DATA = _t("START_DATA", 354, None, "End data with <CR><LF>.<CR><LF>")
NEED_MAIL_COMMAND = _t("NEED_MAIL_COMMAND", 503, "5.0.0", "Need MAIL command")
NEED_RCPT = _t("NEED_RCPT", 503, "5.0.0", "Need RCPT (recipient)")
MESSAGE_ACCEPTED = _t("MESSAGE_ACCEPTED", 250, "2.0.0", "{qid} Message accepted for delivery")
MESSAGE_TOO_BIG = _t("MESSAGE_TOO_BIG", 552, "5.2.3", "Message exceeds maximum fixed size ({max})")
HEADERS_TOO_LARGE = _t("HEADERS_TOO_LARGE", 552, "5.6.0", "Headers too large ({max} max)")
TOO_MANY_HOPS = _t(
    "TOO_MANY_HOPS",
    554,
    "5.4.6",
    "Too many hops {count} ({max} max): from {sender} via {via}, to {rcpt}",
)
BDAT_OK = _t("BDAT_OK", 250, "2.0.0", "{size} octets received")
BDAT_SYNTAX = _t("BDAT_SYNTAX", 501, "5.5.4", "Syntax error in BDAT parameters")
BDAT_AFTER_FAILURE = _t("BDAT_AFTER_FAILURE", 503, "5.5.1", "BDAT sequence aborted earlier")
DATA_DURING_BDAT = _t("DATA_DURING_BDAT", 503, "5.5.1", "DATA not allowed during BDAT transfer")
QUEUE_FAILURE = _t("QUEUE_FAILURE", 451, "4.3.0", "{text}")

# ---------------------------------------------------------------- VRFY / EXPN / ETRN / HELP
ARGUMENT_REQUIRED = _t("ARGUMENT_REQUIRED", 501, "5.5.2", "Argument required")
VERIFIED = _t("VERIFIED", 250, "2.1.5", "{addr}")
NOT_LOCAL = _t("NOT_LOCAL", 252, "2.1.5", "{addr}")
VRFY_REFUSED = _t(
    "VRFY_REFUSED",
    252,
    "2.5.2",
    "Cannot VRFY user; try RCPT to attempt delivery (or try finger)",
)
EXPN_REFUSED = _t("EXPN_REFUSED", 502, "5.7.0", "Sorry, we do not allow this operation")
ETRN_STARTED = _t("ETRN_STARTED", 250, "2.0.0", "Queuing for node {node} started")
ETRN_NEEDS_PARAMETER = _t("ETRN_NEEDS_PARAMETER", 500, "5.5.2", "Parameter required")
ETRN_REFUSED = _t("ETRN_REFUSED", 502, "5.7.0", "Sorry, we do not allow this operation")
ETRN_INVALID = _t("ETRN_INVALID", 501, "5.5.4", "Invalid parameter")
HELP_LINE = _t("HELP_LINE", 214, "2.0.0", "{line}")
HELP_UNKNOWN = _t("HELP_UNKNOWN", 504, "5.3.0", 'HELP topic "{topic}" unknown')
HELP_UNAVAILABLE = _t(
    "HELP_UNAVAILABLE", 502, "5.3.0", "Sendmail {version} -- HELP not implemented"
)

# ---------------------------------------------------------------- STARTTLS / AUTH
TLS_READY = _t("TLS_READY", 220, "2.0.0", "Ready to start TLS")
TLS_UNAVAILABLE = _t("TLS_UNAVAILABLE", 454, "4.3.3", "TLS not available after start")
TLS_ALREADY_ACTIVE = _t("TLS_ALREADY_ACTIVE", 503, "5.5.0", "TLS already active")
TLS_NO_PARAMETERS = _t("TLS_NO_PARAMETERS", 501, "5.5.2", "Syntax error (no parameters allowed)")
AUTH_MECHANISM_UNAVAILABLE = _t(
    "AUTH_MECHANISM_UNAVAILABLE", 504, "5.3.3", "AUTH mechanism {mechanism} not available"
)
AUTH_NEEDS_MECHANISM = _t("AUTH_NEEDS_MECHANISM", 501, "5.5.2", "AUTH mechanism must be specified")
AUTH_ALREADY = _t("AUTH_ALREADY", 503, "5.5.0", "Already Authenticated")
AUTH_IN_TRANSACTION = _t(
    "AUTH_IN_TRANSACTION", 503, "5.5.0", "AUTH not permitted during a mail transaction"
)
AUTH_CHALLENGE = _t("AUTH_CHALLENGE", 334, None, "{challenge}")
AUTH_SUCCEEDED = _t("AUTH_SUCCEEDED", 235, "2.0.0", "OK Authenticated")
AUTH_FAILED = _t("AUTH_FAILED", 535, "5.7.0", "authentication failed")
AUTH_ABORTED = _t("AUTH_ABORTED", 501, "5.0.0", "AUTH aborted")
AUTH_UNDECODABLE = _t("AUTH_UNDECODABLE", 501, "5.5.2", "cannot decode AUTH parameter {text}")


ALL_REPLIES: dict[str, ReplyTemplate] = {
    value.name: value for value in list(globals().values()) if isinstance(value, ReplyTemplate)
}
