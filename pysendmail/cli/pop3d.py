"""`pysendmail-pop3d`: the POP3 server's command line.

It reads the configuration (the sendmail.cf given with -C, else /etc/mail/sendmail.cf,
else the embedded default), decides where to listen, where the mailboxes are and which
password file to use, builds a `Pop3Service` and runs `daemons.pop3d.Pop3Daemon` until
SIGTERM (drain) — rebuilding the service on SIGHUP. Nothing POP3 happens here.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from functools import partial
from pathlib import Path

import click

from pysendmail import log, passwd, sysaccounts
from pysendmail.config.cache import load_config
from pysendmail.config.model import Config
from pysendmail.daemons.pop3_maildrops import local_maildrops
from pysendmail.daemons.pop3d import Listener, Pop3Daemon, Pop3Service
from pysendmail.daemons.tls import context_from_options
from pysendmail.delivery.local import LocalSettings
from pysendmail.errors import ConfigError
from pysendmail.record import record
from pysendmail.sysexits import ExitCode

PROGRAM = "pysendmail-pop3d"
ROOT_PORTS = (110, 995)
# Beside the SMTP daemon's 127.0.0.1:2525 when not root: 2000 + the usual port.
NON_ROOT_PORTS = (2110, 2995)


@record(frozen=True)
class Settings:
    """What the command line asked for; kept to rebuild the service on SIGHUP."""

    cf_path: str | None
    allow_plaintext_auth: bool
    mailbox_format: str | None  # None: maildir when the cf sets LocalMaildir, else mbox
    mailbox_dir: str | None = None  # None: the configuration's (where local delivery writes)
    system_accounts: bool = False  # also the system's accounts (/etc/shadow), as root


def parse_address(text: str, *, implicit_tls: bool = False) -> Listener:
    """`ADDR:PORT`, `[IPv6]:PORT` or `:PORT` (every IPv4 address)."""
    host, colon, port_text = text.rpartition(":")
    if not colon or not port_text.isdigit() or int(port_text) > 65535:
        raise click.BadParameter(f"{text!r}: expected ADDR:PORT")
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    return Listener(host or "0.0.0.0", int(port_text), implicit_tls)


def default_listeners(config: Config, tls: bool) -> list[Listener]:
    """110 and 995 (POP3S, when there is a certificate) on the SMTP daemon's address as
    root; 127.0.0.1:2110 and :2995 otherwise."""
    if os.geteuid() == 0:
        smtp_addr = config.daemons[0].addr if config.daemons else "127.0.0.1"
        host, ports = smtp_addr or "0.0.0.0", ROOT_PORTS
    else:
        host, ports = "127.0.0.1", NON_ROOT_PORTS
    listeners = [Listener(host, ports[0])]
    if tls:
        listeners.append(Listener(host, ports[1], implicit_tls=True))
    return listeners


@record(frozen=True)
class Built:
    """A service made from the configuration, and what to say about it at start-up."""

    service: Pop3Service
    config: Config
    password_file: Path
    mailboxes: str  # where the mailboxes are, for people
    logins: str  # which credentials are checked, for people


def build_service(settings: Settings) -> Built:
    config = load_config(settings.cf_path)
    if config.errors:
        raise ConfigError("\n".join(str(diagnostic) for diagnostic in config.errors))
    # Where local delivery writes, by the same settings it reads.
    local = LocalSettings.from_config(config)
    spool = Path(settings.mailbox_dir) if settings.mailbox_dir else local.spool_dir
    mailbox_format = settings.mailbox_format or ("maildir" if local.maildir else "mbox")
    if mailbox_format == "maildir" and local.maildir:
        mailboxes = f"Maildirs at {local.maildir} (LocalMaildir)"
    else:
        mailboxes = f"{spool}/USER ({mailbox_format})"
    password_file = passwd.passwd_path(config.cf_path, config.state_dir)
    passwd.read_entries(password_file)  # a malformed file stops us here, naming its line
    apop_file = passwd.apop_path(password_file)
    # APOP is offered (a timestamp in the greeting) only when someone has a secret.
    apop = bool(passwd.read_apop_secrets(apop_file))
    system_accounts = settings.system_accounts and os.geteuid() == 0
    logins = f"passwords: {password_file}"
    if apop:
        logins += f"; APOP secrets: {apop_file}"
    if system_accounts:
        logins += f"; system accounts ({sysaccounts.SHADOW}, uid >= {sysaccounts.FIRST_VALID_UID})"
    elif settings.system_accounts:
        logins += "; --system-accounts ignored: only root can read /etc/shadow"
    service = Pop3Service(
        hostname=config.hostname,
        verify=partial(_verify, password_file, system_accounts),
        apop_secret=partial(_apop_secret, apop_file) if apop else None,
        open_maildrop=local_maildrops(spool, mailbox_format, maildir_template=local.maildir),
        tls_context=context_from_options(config.options),
        allow_plaintext_auth=settings.allow_plaintext_auth,
    )
    return Built(service, config, password_file, mailboxes, logins)


def _verify(password_file: Path, system_accounts: bool, user: str, password: str) -> bool:
    """The password file decides for the users it lists; the others are checked against
    the system's accounts when asked to."""
    try:
        if system_accounts and user not in passwd.read_entries(password_file):
            return sysaccounts.verify_system_account(user, password)
        return passwd.verify(user, password, path=password_file)
    except ConfigError as error:  # the file went bad after start-up: nobody logs in
        logging.getLogger(log.LOGGER_NAME).error("%s", error)
        return False


def _apop_secret(apop_file: Path, user: str) -> str | None:
    """`user`'s APOP secret, read afresh (a new secret works without a reload)."""
    try:
        return passwd.read_apop_secrets(apop_file).get(user)
    except ConfigError as error:  # the file went bad after start-up: nobody logs in
        logging.getLogger(log.LOGGER_NAME).error("%s", error)
        return None


def _daemonize() -> None:
    """Detach from the terminal as sendmail -bd does: fork, new session, fork again."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _fail(message: str, code: ExitCode) -> None:
    click.echo(f"{PROGRAM}: {message}", err=True)
    sys.exit(int(code))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "cf_path",
    metavar="CF",
    help="sendmail.cf to read (default /etc/mail/sendmail.cf, else the embedded default).",
)
@click.option(
    "--listen",
    "listen",
    multiple=True,
    metavar="ADDR:PORT",
    help="Listen for POP3 (STLS offered with a certificate). Repeatable.",
)
@click.option(
    "--pop3s",
    "pop3s",
    multiple=True,
    metavar="ADDR:PORT",
    help="Listen for POP3 over TLS from the first byte. Repeatable.",
)
@click.option("--foreground", is_flag=True, help="Stay attached to the terminal; log to stderr.")
@click.option(
    "--pid-file", type=click.Path(dir_okay=False), help="Write the daemon's process id here."
)
@click.option(
    "--allow-plaintext-auth", is_flag=True, help="Accept USER/PASS and AUTH PLAIN without TLS."
)
@click.option(
    "--mailbox-format",
    type=click.Choice(["mbox", "maildir"]),
    help="mbox: SPOOL/USER; maildir: the cf's LocalMaildir (else SPOOL/USER/). "
    "Default: maildir when the cf sets LocalMaildir, else mbox.",
)
@click.option(
    "--system-accounts",
    is_flag=True,
    help="Also let the system's accounts log in with their passwords (/etc/shadow, "
    "uid 1000 and up; only as root).",
)
@click.option(
    "--mailbox-dir",
    type=click.Path(file_okay=False),
    help="The spool of mailboxes (default: where local delivery writes, from the config).",
)
def main(
    cf_path: str | None,
    listen: tuple[str, ...],
    pop3s: tuple[str, ...],
    foreground: bool,
    pid_file: str | None,
    allow_plaintext_auth: bool,
    mailbox_format: str | None,
    mailbox_dir: str | None,
    system_accounts: bool,
) -> None:
    """Serve the local mailboxes over POP3 (RFC 1939, STLS, AUTH PLAIN)."""
    settings = Settings(cf_path, allow_plaintext_auth, mailbox_format, mailbox_dir, system_accounts)
    try:
        built = build_service(settings)
    except ConfigError as error:
        _fail(str(error), ExitCode.CONFIG)
    service, config = built.service, built.config
    listeners = [parse_address(text) for text in listen]
    listeners += [parse_address(text, implicit_tls=True) for text in pop3s]
    if not listeners:
        listeners = default_listeners(config, service.tls_context is not None)
    log.configure(
        None if not foreground else os.environ.get("PYSENDMAIL_LOG", "stderr"), ident="pop3d"
    )
    daemon = Pop3Daemon(service, listeners)
    try:
        bound = daemon.bind()
    except ValueError as error:
        _fail(str(error), ExitCode.USAGE)
    except OSError as error:
        _fail(f"cannot listen: {error}", ExitCode.OSERR)
    banner = _startup_lines(built, listeners, bound, settings)
    if not foreground:
        for line in banner:
            click.echo(f"{PROGRAM}: {line}", err=True)
        _daemonize()  # before any thread starts: threads do not survive fork()
    if pid_file:
        Path(pid_file).write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())
    daemon.serve()
    if foreground:  # said once everything is in place: the last line means "ready"
        for line in banner:
            click.echo(f"{PROGRAM}: {line}", err=True)
    try:
        daemon.serve_until_stopped(lambda: build_service(settings).service)
    finally:
        if pid_file:
            Path(pid_file).unlink(missing_ok=True)


def _startup_lines(
    built: Built, listeners: list[Listener], bound: list[tuple[str, int]], settings: Settings
) -> list[str]:
    addresses = ", ".join(
        str(Listener(host, port, listener.implicit_tls))
        for listener, (host, port) in zip(listeners, bound, strict=True)
    )
    lines = []
    if built.config.startup_note:
        lines.append(built.config.startup_note)
    lines.append(f"mailboxes: {built.mailboxes}; {built.logins}")
    if built.service.tls_context is None:
        lines.append("no ServerCertFile/ServerKeyFile in the configuration: no STLS, no POP3S")
        if not settings.allow_plaintext_auth:
            lines.append("plaintext logins are refused without TLS: nobody can log in")
    lines.append(f"POP3 on {addresses}")
    return lines


if __name__ == "__main__":
    main(prog_name=PROGRAM)
