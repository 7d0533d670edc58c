"""The mailer fields U= (run as that user:group), /= (chroot before exec) and W= (how
long the program may take to exit once it has all the data), for program mailers
(prog, a program local mailer) and the `*file*` mailer, as sendmail's op.me says."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.file import deliver_file
from pysendmail.delivery.message import OutgoingMessage
from pysendmail.delivery.prog import (
    ProgramSettings,
    ProgramTarget,
    RunIdentity,
    parse_run_as,
    run_mailer,
)
from pysendmail.delivery.result import Outcome
from pysendmail.envelope import ControllingUser
from pysendmail.errors import Location
from tests.delivery_support import IS_ROOT, NOBODY_UID, world_enterable_dir

MESSAGE = OutgoingMessage.from_bytes("<alice@example.com>", b"Subject: hi\n\nbody line\n")
HERE = Location("test.cf", 1)
SETTINGS = ProgramSettings(
    timeout=30, environment={"AGENT": "sendmail", "PATH": "/usr/bin:/bin"},
    default_user=RunIdentity("nobody", NOBODY_UID, NOBODY_UID, "/"),
)  # fmt: skip
needs_root = pytest.mark.skipif(not IS_ROOT, reason="switching uid and chroot need root")


def _prog(**fields: str) -> MailerSpec:
    return MailerSpec("prog", {"P": "/bin/sh", "F": "lsDFMoqeu9", "A": "sh -c $u", **fields}, HERE)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    with world_enterable_dir() as path:
        yield path


def _run(mailer: MailerSpec, command: str, controlling=None, *, allow_root: bool = False):
    target = ProgramTarget("|cmd", command, controlling_user=controlling)
    return run_mailer(MESSAGE, [target], mailer, SETTINGS, allow_root=allow_root)[0]


def test_parse_run_as_takes_names_and_numbers():
    numeric = parse_run_as("65534:65534")
    assert (numeric.uid, numeric.gid) == (65534, 65534)
    nobody = parse_run_as("nobody")
    assert (nobody.user, nobody.uid) == ("nobody", NOBODY_UID)
    assert parse_run_as("nobody:0").gid == 0
    with pytest.raises(ValueError):
        parse_run_as("no-such-user-here")


@needs_root
def test_u_field_wins_over_the_controlling_user(open_dir):
    out = open_dir / "id"
    alice = ControllingUser("daemon", 1, 1)
    result = _run(_prog(U="nobody:nogroup"), f"id -u > {out}; id -g >> {out}", alice)
    assert result.outcome is Outcome.SENT, result
    assert out.read_text().split() == [str(NOBODY_UID), "65534"]


@needs_root
def test_u_field_wins_over_f_s_for_a_local_program_mailer(open_dir):
    out = open_dir / "id"
    local = MailerSpec(
        "local", {"P": "/bin/sh", "F": "lsDFMS", "A": "sh -c $u", "U": "65534:65534"}, HERE
    )
    assert _run(local, f"id -u > {out}", allow_root=True).is_success
    assert out.read_text().strip() == str(NOBODY_UID)
    plain = MailerSpec("local", {"P": "/bin/sh", "F": "lsDFMS", "A": "sh -c $u"}, HERE)
    assert _run(plain, f"id -u > {out}", allow_root=True).is_success
    assert out.read_text().strip() == "0"  # F=S alone keeps root, as sendmail does


def test_u_field_naming_an_unknown_user_defers_the_mail():
    result = _run(_prog(U="no-such-user-here"), "true")
    assert result.outcome is Outcome.DEFERRED
    assert "unknown user" in result.text


def test_w_field_defers_a_program_that_does_not_exit_after_its_input(open_dir):
    marker = open_dir / "read-all"
    command = f"cat > /dev/null; touch {marker}; exec sleep 120"
    result = _run(_prog(W="1s"), command)
    assert marker.exists()  # it had read the whole message when it was stopped
    assert result.outcome is Outcome.DEFERRED
    assert "wait timeout" in result.text


def test_w_field_lets_a_quick_program_finish(open_dir):
    out = open_dir / "copy"
    result = _run(_prog(W="30s"), f"cat > {out}")
    assert result.is_success
    assert out.read_bytes().endswith(b"\nbody line\n")


def _chroot_with_sh(root: Path) -> None:
    """A tree holding /bin/sh and the libraries it links (from ldd), and /tmp."""
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    shell = os.path.realpath("/bin/sh")
    shutil.copy2(shell, root / "bin" / "sh")
    listed = subprocess.run(["ldd", shell], capture_output=True, text=True).stdout
    for library in re.findall(r"(/\S+)", listed):
        target = root / library.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(library), target)


@needs_root
@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd is needed to build the chroot")
def test_slash_field_runs_the_program_inside_the_chroot(open_dir):
    root = open_dir / "jail"
    _chroot_with_sh(root)
    mailer = _prog(**{"/": str(root), "U": "nobody:nogroup"})
    # only the shell is in the jail: its builtins copy the message
    copy = "while IFS= read -r line; do printf '%s\\n' \"$line\"; done > /tmp/inside"
    result = _run(mailer, copy)
    assert result.is_success, result
    inside = root / "tmp" / "inside"  # /tmp/inside as the jailed program saw it
    assert inside.read_text().startswith("From alice@example.com ")
    assert inside.read_text().endswith("\nbody line\n")
    assert inside.stat().st_uid == NOBODY_UID


@needs_root
def test_file_mailer_with_u_and_slash_writes_inside_the_root_as_that_user(open_dir):
    root = open_dir / "files"
    (root / "boxes").mkdir(parents=True)
    (root / "boxes").chmod(0o777)
    file_mailer = MailerSpec(
        "*file*",
        {"P": "[FILE]", "F": "lsDFMPEouq9", "A": "FILE $u", "U": "nobody:nogroup", "/": str(root)},
        HERE,
    )
    result = deliver_file(
        MESSAGE, "/boxes/saved", "/boxes/saved", ControllingUser("daemon", 1, 1),
        SETTINGS, mailer=file_mailer,
    )  # fmt: skip
    assert result.is_success, result
    saved = root / "boxes" / "saved"
    assert saved.stat().st_uid == NOBODY_UID
    assert saved.read_text().endswith("\nbody line\n\n")
    assert not Path("/boxes/saved").exists()
