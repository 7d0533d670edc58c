"""File delivery: `/path` targets of aliases and .forward files (sendmail's `*file*`
mailer, `P=[FILE], F=lsDFMPEouq9`).

The message is appended in mbox form (a `From ` line, `Return-Path:` (F=P), `>From `
escaping (F=E), a blank line at the end) under an fcntl lock, as the controlling user,
never as root (a root or missing controlling user means DefaultUser), so the kernel
decides what that user may write. A symlink, a hard-linked or non-regular file, and an
executable file are refused, as sendmail's safefile checks refuse them; `/dev/null`
swallows the message. A full disk or quota defers; nothing half-written stays behind.
A `*file*` mailer defined in the cf may say who writes (U=, which wins over the
controlling user) and chroot first (/=, the path is then inside that root).
"""

from __future__ import annotations

from pathlib import Path

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.message import OutgoingMessage, with_return_path
from pysendmail.delivery.prog import (
    MailerUserError,
    ProgramSettings,
    RunIdentity,
    mailer_identity,
    mailer_root_dir,
)
from pysendmail.delivery.result import DeliveryResult
from pysendmail.envelope import ControllingUser
from pysendmail.errors import MailError
from pysendmail.maildrop import MailboxOwner, append_mbox

FILE_MAILER = "*file*"


def deliver_file(
    message: OutgoingMessage,
    path: str | Path,
    recipient: str,
    controlling_user: ControllingUser | RunIdentity | None,
    settings: ProgramSettings,
    *,
    lock_timeout: float = 60.0,
    mailer: MailerSpec | None = None,
) -> DeliveryResult:
    """Append `message` to the file `path` as the controlling user."""
    target = Path(str(path))
    extra = {"mailer": FILE_MAILER, "relay": "local"}
    if not target.is_absolute():
        return DeliveryResult.bounced(
            recipient, f"{target}: file name must be absolute", status="5.1.3", **extra
        )
    if str(target) == "/dev/null":
        return DeliveryResult.sent(recipient, **extra)
    try:
        identity = mailer_identity(mailer, controlling_user, settings)
    except MailerUserError as err:
        return DeliveryResult.deferred(recipient, f"Deferred: {err}", status="4.3.5", **extra)
    root_dir = mailer_root_dir(mailer, {"u": str(target)})
    owner = MailboxOwner(identity.uid, identity.gid) if identity is not None else None
    headers = with_return_path(message.headers, message.sender)
    try:
        append_mbox(
            target,
            message.sender,
            message.open_with_headers(headers),
            owner=owner,
            received_at=message.received_at,
            lock_timeout=lock_timeout,
            dot_lock=False,
            require_owner=False,
            create_mode=0o644,
            refuse_executable=True,
            root_dir=root_dir,
        )
    except MailError as err:
        if err.status == "4.2.1":
            # the controlling user may not write there: retrying will not change that
            return DeliveryResult.bounced(
                recipient, f"Can't create output: {err.text}", status="5.2.0", exit_code=73, **extra
            )
        return DeliveryResult.from_error(recipient, err, **extra)
    except OSError as err:  # the df vanished or cannot be read: nothing written
        return DeliveryResult.deferred(recipient, f"Deferred: {err}", status="4.3.0", **extra)
    return DeliveryResult.sent(recipient, **extra)
