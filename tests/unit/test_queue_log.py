"""sendmail's log lines and their three destinations."""

import logging
import socket

import pytest

from pysendmail import log


@pytest.fixture
def restore_loggers():
    saved = []
    for name in (log.LOGGER_NAME, "pysendmail.queue"):
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.level, logger.propagate))
    yield
    for logger, handlers, level, propagate in saved:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_from_line_as_sendmail_writes_it():
    line = log.format_from(
        "6AQBB1A1009568",
        sender="<alice@example.com>",
        size=181,
        nrcpts=1,
        msgid="<oracle-1@example.com>",
        proto="ESMTP",
        daemon="MTA",
        relay="localhost [127.0.0.1]",
    )
    assert line == (
        "6AQBB1A1009568: from=<alice@example.com>, size=181, class=0, nrcpts=1, "
        "msgid=<oracle-1@example.com>, proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]"
    )


def test_to_line_as_sendmail_writes_it():
    line = log.format_to(
        "6AQBB1qM009526",
        to="<user@remote.example.net>",
        delay=3723,
        xdelay=1,
        mailer="esmtp",
        pri=120181,
        relay="mx.remote.example.net. [127.0.0.2]",
        dsn="2.0.0",
        stat="Sent (ok 123)",
    )
    assert line == (
        "6AQBB1qM009526: to=<user@remote.example.net>, delay=01:02:03, xdelay=00:00:01, "
        "mailer=esmtp, pri=120181, relay=mx.remote.example.net. [127.0.0.2], dsn=2.0.0, "
        "stat=Sent (ok 123)"
    )


def test_delay_of_more_than_a_day_and_hostile_text():
    assert log.format_delay(2 * 86400 + 61) == "2+00:01:01"
    assert log.format_delay(-5) == "00:00:00"
    line = log.format_from("Q", sender="<a\r\nFAKE: line>", size=1, nrcpts=1)
    assert "\n" not in line and "\r" not in line


def test_file_target_gets_mail_log_lines(tmp_path, restore_loggers):
    path = tmp_path / "mail.log"
    mail_log = log.configure(str(path), ident="sm-mta")
    mail_log.dsn("6AQBB1lE009546", "6AQBB1lF009546", "User unknown")
    logging.getLogger("pysendmail.queue").error("X: lost")
    text = path.read_text()
    assert " sm-mta[" in text and "]: 6AQBB1lE009546: 6AQBB1lF009546: DSN: User unknown\n" in text
    assert "]: X: lost\n" in text


def test_syslog_target_uses_the_mail_facility(tmp_path):
    address = str(tmp_path / "log.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    handler = log.make_handler("syslog", "sendmail", syslog_address=address)
    logger = logging.getLogger("test.syslog")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        log.MailLog(logger).event("6AQ", "lost input channel")
        packet = receiver.recv(1000)
    finally:
        logger.removeHandler(handler)
        handler.close()
        receiver.close()
    # <PRI> = facility mail (2) * 8 + info (6) = 22
    assert packet.startswith(b"<22>sendmail[") and packet.endswith(
        b"]: 6AQ: lost input channel\x00"
    )


def test_syslog_without_a_socket_falls_back_to_stderr(tmp_path):
    handler = log.make_handler("syslog", syslog_address=str(tmp_path / "none"))
    assert isinstance(handler, logging.StreamHandler)


def test_a_command_lines_line_goes_to_syslog_as_one_datagram(tmp_path, monkeypatch):
    from pysendmail import loglines

    path = str(tmp_path / "log")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    monkeypatch.setattr(loglines, "SYSLOG_SOCKET", path)
    monkeypatch.delenv("PYSENDMAIL_LOG", raising=False)
    try:
        loglines.write_line("QID: from=root, size=3")
        record = server.recv(4096)
    finally:
        server.close()
    # mail.info (2 * 8 + 6), the ident and pid, as SysLogHandler sends the daemon's
    assert record.startswith(b"<22>sendmail[") and record.endswith(b"]: QID: from=root, size=3\0")


def test_a_command_lines_line_to_a_file_and_nowhere_without_syslog(tmp_path, monkeypatch, capfd):
    from pysendmail import loglines

    target = tmp_path / "maillog"
    loglines.write_line("QID: from=root", target=str(target))
    text = target.read_text()
    assert text.endswith("]: QID: from=root\n") and " sendmail[" in text
    monkeypatch.setattr(loglines, "SYSLOG_SOCKET", str(tmp_path / "no-such-socket"))
    loglines.write_line("QID: lost", target="syslog")  # dropped, as syslog(3) drops it
    assert capfd.readouterr() == ("", "")
