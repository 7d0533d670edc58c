"""sendmail's mail log lines as text, and a writer for the command line that needs no
`logging` (its start-up time: a submission writes one line, log.py's handlers serve the
daemon and queue runs).

`format_*` build the lines (pure functions). `write_line` sends one where
$PYSENDMAIL_LOG says (`syslog`, the default: a datagram to /dev/log at mail.info, as
SysLogHandler sends it; `stderr`; or a file path, in /var/log/mail.log's look). Without
a syslog socket a command line's line is dropped, as sendmail's syslog() drops it: a
cron job's or a script's output never gets it.
"""

from __future__ import annotations

import os
import sys
import time

DEFAULT_IDENT = "sendmail"
SYSLOG_SOCKET = "/dev/log"
_MAIL_INFO = 2 * 8 + 6  # facility mail (2), severity info (6)


def format_delay(seconds: float) -> str:
    """sendmail's pintvl(): `HH:MM:SS`, with `D+` in front once a day has passed."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}+{clock}" if days else clock


def _clean(value: str) -> str:
    """Log lines stay one line whatever a client sent."""
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else "?" for c in value)


def _join(qid: str, fields: list[tuple[str, object]]) -> str:
    text = ", ".join(f"{name}={_clean(str(value))}" for name, value in fields if value is not None)
    return f"{qid}: {text}" if qid else text


def format_from(
    qid: str,
    *,
    sender: str,
    size: int,
    nrcpts: int,
    msg_class: int = 0,
    msgid: str | None = None,
    bodytype: str | None = None,
    proto: str | None = None,
    daemon: str | None = None,
    relay: str | None = None,
) -> str:
    """The `from=` line written when a message is accepted into the queue."""
    return _join(
        qid,
        [
            ("from", sender),
            ("size", size),
            ("class", msg_class),
            ("nrcpts", nrcpts),
            ("msgid", msgid),
            ("bodytype", bodytype),
            ("proto", proto),
            ("daemon", daemon),
            ("relay", relay),
        ],
    )


def format_to(
    qid: str,
    *,
    to: str,
    delay: float,
    xdelay: float,
    mailer: str,
    pri: int,
    dsn: str,
    stat: str,
    ctladdr: str | None = None,
    orig_to: str | None = None,
    relay: str | None = None,
) -> str:
    """The `to=` line written after each delivery attempt of one or more recipients."""
    return _join(
        qid,
        [
            ("to", to),
            ("orig_to", orig_to),
            ("ctladdr", ctladdr),
            ("delay", format_delay(delay)),
            ("xdelay", format_delay(xdelay)),
            ("mailer", mailer),
            ("pri", pri),
            ("relay", relay),
            ("dsn", dsn),
            ("stat", stat),
        ],
    )


def format_dsn(qid: str, dsn_qid: str, reason: str) -> str:
    """The line naming the DSN a message caused: `ID: DSNID: DSN: reason`."""
    return f"{qid}: {dsn_qid}: DSN: {_clean(reason)}"


def write_line(text: str, ident: str = DEFAULT_IDENT, target: str | None = None) -> None:
    """Send one log line where $PYSENDMAIL_LOG (or `target`) says; never raises."""
    chosen = target or os.environ.get("PYSENDMAIL_LOG") or "syslog"
    try:
        if chosen == "syslog":
            os.stat(SYSLOG_SOCKET)  # no syslog here: nothing to load a socket module for
            import _socket  # the C module: `socket` would import enum and selectors

            record = f"<{_MAIL_INFO}>{ident}[{os.getpid()}]: {text}\000".encode(
                "utf-8", "backslashreplace"
            )
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
            try:
                sock.sendto(record, SYSLOG_SOCKET)
            finally:
                sock.close()
            return
        host = os.uname().nodename.split(".")[0]
        when = time.strftime("%b %d %H:%M:%S")
        line = f"{when} {host} {ident}[{os.getpid()}]: {text}\n"
        if chosen == "stderr":
            sys.stderr.write(line)
            sys.stderr.flush()
            return
        with open(chosen, "a", encoding="utf-8", errors="backslashreplace") as stream:
            stream.write(line)
    except OSError:
        pass  # no syslog, an unwritable file: the message itself is queued all the same
