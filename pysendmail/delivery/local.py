"""Local delivery, as the configuration's `local` mailer says.

- A local mailer that is sendmail's mail.local (or none, or `P=[LOCAL]`) is done here,
  the way mail.local does it: the user's mbox in the spool directory (`/var/mail/USER`;
  `<state dir>/mail/USER` for the non-root embedded default), or a Maildir where the
  configuration asks for one (the `LocalMaildir` option, a path such as `$z/Maildir`:
  `$z`/`~` is the user's home, `$u` the user). `Return-Path:` is added (mail.local's
  mailer has F=P); mail.local adds no `Delivered-To:`, so neither do we. Running as
  root, the mailbox is written as its user (see maildrop.py).
- Any other local mailer program (the office fixture's `P=.../bin/deliver, A=deliver
  -d $u`, procmail as the local mailer ...) is run as prog.py runs program mailers;
  with F=S it keeps our identity as sendmail does (it must be able to write the spool),
  otherwise it runs as the recipient.

A full disk or quota is a temporary failure; an unknown user a permanent one.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Sequence
from pathlib import Path

from pysendmail.config.model import Config, MailerSpec
from pysendmail.delivery.message import OutgoingMessage, with_return_path
from pysendmail.delivery.prog import (
    ProgramSettings,
    ProgramTarget,
    RunIdentity,
    expand_word,
    run_mailer,
)
from pysendmail.delivery.result import DeliveryResult
from pysendmail.errors import MailError
from pysendmail.maildrop import (
    MailboxOwner,
    UserWriter,
    append_mbox,
    deliver_maildir,
    mbox_path,
)
from pysendmail.record import field, record

DEFAULT_SPOOL = Path("/var/mail")
BUILTIN_PATHS = frozenset({"", "[LOCAL]", "[MAIL.LOCAL]"})


def lookup_user(name: str) -> RunIdentity | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return RunIdentity(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir or "/")


@record(frozen=True)
class LocalSettings:
    spool_dir: Path = DEFAULT_SPOOL
    maildir: str | None = None  # a path template: deliver to this Maildir instead
    lock_timeout: float = 60.0
    program: ProgramSettings = field(default_factory=ProgramSettings)
    user_lookup: Callable[[str], RunIdentity | None] = lookup_user

    @classmethod
    def from_config(cls, config: Config, **overrides: object) -> LocalSettings:
        if config.state_dir is not None and os.geteuid() != 0:
            spool = Path(config.state_dir) / "mail"
        else:
            spool = DEFAULT_SPOOL
        maildir = config.option("LocalMaildir")
        values: dict[str, object] = {
            "spool_dir": spool,
            "maildir": str(maildir) if maildir else None,
            "program": ProgramSettings.from_config(config),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@record(frozen=True)
class LocalRecipient:
    """A recipient the local mailer gets: the address to report and the user (`$u`)."""

    recipient: str
    user: str


def is_builtin_local(mailer: MailerSpec | None) -> bool:
    """True when the local mailer is mail.local (or none): we write the mailbox ourselves."""
    if mailer is None:
        return True
    return mailer.path in BUILTIN_PATHS or os.path.basename(mailer.path) == "mail.local"


def deliver_local(
    message: OutgoingMessage,
    recipients: Sequence[LocalRecipient | str],
    settings: LocalSettings,
    *,
    mailer: MailerSpec | None = None,
    writer: UserWriter | None = None,
) -> list[DeliveryResult]:
    """Deliver `message` to local users; one DeliveryResult per recipient, in order.
    `writer` (a queue run's user_writers.UserWriters) writes as each user without a
    fork per message."""
    targets = [r if isinstance(r, LocalRecipient) else LocalRecipient(r, r) for r in recipients]
    if not is_builtin_local(mailer):
        assert mailer is not None
        return _deliver_by_program(message, targets, mailer, settings)
    return [_deliver_builtin(message, target, settings, mailer, writer) for target in targets]


def _find_user(name: str, settings: LocalSettings, mailer: MailerSpec | None) -> RunIdentity | None:
    user = name if mailer is not None and "u" in mailer.flags else name.lower()
    found = settings.user_lookup(user)
    if found is None and "+" in user:
        found = settings.user_lookup(user.split("+", 1)[0])
    return found


def _deliver_builtin(
    message: OutgoingMessage,
    target: LocalRecipient,
    settings: LocalSettings,
    mailer: MailerSpec | None,
    writer: UserWriter | None = None,
) -> DeliveryResult:
    extra = {"mailer": mailer.name if mailer else "local", "relay": "local"}
    identity = _find_user(target.user, settings, mailer)
    if identity is None:
        return DeliveryResult.bounced(
            target.recipient, "User unknown", status="5.1.1", exit_code=67, **extra
        )
    owner = MailboxOwner(identity.uid, identity.gid) if os.geteuid() == 0 else None
    headers = with_return_path(message.headers, message.sender)
    try:
        if not settings.maildir and not settings.spool_dir.is_dir():
            # the embedded default's spool under the state directory, made on first use
            settings.spool_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        if settings.maildir:
            where = expand_maildir(settings.maildir, identity)
            deliver_maildir(where, message.open_with_headers(headers), owner=owner, writer=writer)
        else:
            append_mbox(
                mbox_path(settings.spool_dir, identity.user),
                message.sender,
                message.open_with_headers(headers),
                owner=owner,
                received_at=message.received_at,
                lock_timeout=settings.lock_timeout,
                writer=writer,
            )
    except MailError as err:
        return DeliveryResult.from_error(target.recipient, err, **extra)
    except OSError as err:  # e.g. the df file vanished: nothing written, try later
        return DeliveryResult.deferred(
            target.recipient, f"Deferred: {err}", status="4.3.0", **extra
        )
    return DeliveryResult.sent(target.recipient, **extra)


def expand_maildir(template: str, identity: RunIdentity) -> Path:
    if template.startswith("~"):
        template = identity.home + template[1:]
    return Path(expand_word(template, {"z": identity.home, "u": identity.user}))


def _deliver_by_program(
    message: OutgoingMessage,
    targets: Sequence[LocalRecipient],
    mailer: MailerSpec,
    settings: LocalSettings,
) -> list[DeliveryResult]:
    program_targets = []
    unknown: dict[int, DeliveryResult] = {}
    for index, target in enumerate(targets):
        user = target.user if "u" in mailer.flags else target.user.lower()
        identity = settings.user_lookup(user.split("+", 1)[0])
        program_targets.append(ProgramTarget(target.recipient, user, controlling_user=identity))
        if identity is None and "S" not in mailer.flags and os.geteuid() == 0:
            unknown[index] = DeliveryResult.bounced(
                target.recipient, "User unknown", status="5.1.1", exit_code=67, mailer=mailer.name
            )
    runnable = [t for i, t in enumerate(program_targets) if i not in unknown]
    ran = iter(run_mailer(message, runnable, mailer, settings.program, allow_root=True))
    return [unknown[i] if i in unknown else next(ran) for i in range(len(targets))]
