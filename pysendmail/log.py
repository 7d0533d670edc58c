"""sendmail's log lines, and where they go.

The lines are sendmail 8's, so existing log tools (pflogsumm-like scripts, fail2ban
filters, grep habits) keep working:

    6AQBB1A1009568: from=<alice@example.com>, size=181, class=0, nrcpts=1,
        msgid=<oracle-1@example.com>, proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]
    6AQBB1A1009568: to=<bob@example.com>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp,
        pri=120181, relay=mx.example.com. [192.0.2.1], dsn=2.0.0, stat=Sent (ok)

(each one line). `format_*` build the text (pure functions); `MailLog` writes them to a
`logging.Logger`, which `configure()` points at syslog's mail facility (`/dev/log`), a
file, or stderr: containers often have no syslog. The target comes from the caller, or
the environment variable PYSENDMAIL_LOG (`syslog`, `stderr`, or a file path).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import sys

from pysendmail.loglines import (  # noqa: F401 (the lines' builders, used from here too)
    DEFAULT_IDENT,
    format_delay,
    format_dsn,
    format_from,
    format_to,
)
from pysendmail.loglines import _clean as _clean

LOGGER_NAME = "pysendmail.mail"


class MailLog:
    """Writes sendmail's lines to a logger (INFO for deliveries, NOTICE-ish for DSNs)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER_NAME)

    def accepted(self, qid: str, **fields) -> None:
        if self.logger.isEnabledFor(logging.INFO):  # no line built for nobody
            self.logger.info(format_from(qid, **fields))

    def delivered(self, qid: str, **fields) -> None:
        """A `to=` line, at INFO as sendmail logs it; `stat=` says what happened."""
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(format_to(qid, **fields))

    def dsn(self, qid: str, dsn_qid: str, reason: str) -> None:
        self.logger.warning(format_dsn(qid, dsn_qid, reason))

    def event(self, qid: str, text: str, level: int = logging.INFO) -> None:
        self.logger.log(level, f"{qid}: {_clean(text)}" if qid else _clean(text))


class _SyslogFormatter(logging.Formatter):
    def __init__(self, ident: str) -> None:
        super().__init__()
        self.ident = ident

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.ident}[{os.getpid()}]: {record.getMessage()}"


class _FileFormatter(logging.Formatter):
    """`Nov 26 11:11:01 host sendmail[pid]: text`, the look of /var/log/mail.log."""

    def __init__(self, ident: str) -> None:
        super().__init__(datefmt="%b %d %H:%M:%S")
        self.ident = ident
        self.host = socket.gethostname().split(".")[0]

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, self.datefmt)
        return f"{when} {self.host} {self.ident}[{os.getpid()}]: {record.getMessage()}"


def make_handler(
    target: str,
    ident: str = DEFAULT_IDENT,
    *,
    syslog_address: str = "/dev/log",
    quiet: bool = False,
) -> logging.Handler:
    """A handler for `syslog` (mail facility), `stderr`, or a file path.

    `syslog` falls back to stderr when the machine has no syslog socket, or with `quiet`
    (a command line's deliveries: a cron job must not get the lines) to nothing.
    """
    if target == "syslog":
        if os.path.exists(syslog_address):
            handler: logging.Handler = logging.handlers.SysLogHandler(
                address=syslog_address, facility=logging.handlers.SysLogHandler.LOG_MAIL
            )
            handler.setFormatter(_SyslogFormatter(ident))
            return handler
        if quiet:
            return logging.NullHandler()
        target = "stderr"
    if target == "stderr":
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(target, encoding="utf-8", errors="backslashreplace")
    handler.setFormatter(_FileFormatter(ident))
    return handler


def configure(
    target: str | None = None,
    *,
    ident: str = DEFAULT_IDENT,
    level: int = logging.INFO,
    quiet: bool = False,
) -> MailLog:
    """Point the mail log at `target` (default: $PYSENDMAIL_LOG, else syslog; `quiet`:
    see make_handler)."""
    chosen = target or os.environ.get("PYSENDMAIL_LOG") or "syslog"
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.addHandler(make_handler(chosen, ident, quiet=quiet))
    logger.setLevel(level)
    logger.propagate = False
    # The queue's own diagnostics (lost queue files, orphans) go to the same place.
    queue_logger = logging.getLogger("pysendmail.queue")
    queue_logger.handlers = list(logger.handlers)
    queue_logger.setLevel(level)
    queue_logger.propagate = False
    return MailLog(logger)
