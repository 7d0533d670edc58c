"""Run the program of an `F|program` class line and return what it printed.

sendmail reads the words of such a class from the program's standard output each time it
reads the cf. As sendmail does, the command is split at blanks and run without a shell,
with its standard input from /dev/null and a cleared environment; run by root it runs as
`DefaultUser` (sendmail's DefUid and DefGid), never as root. A program that cannot be
started, exits with a failure or outlives TIMEOUT seconds gives
a `ClassProgramError`, which the translator reports with the class line's location.
"""

from __future__ import annotations

import os
import pwd
import subprocess

TIMEOUT = 30.0  # seconds
SAFE_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
MAX_OUTPUT = 16 * 1024 * 1024


class ClassProgramError(Exception):
    """Why a class program gave no words."""


def run_identity(default_user: str) -> tuple[int, int]:
    """The uid and gid of `DefaultUser` (`user`, `user:group`, `uid` or `uid:gid`)."""
    user, _, group = default_user.partition(":")
    try:
        uid = int(user)
        gid = int(group) if group else pwd.getpwuid(uid).pw_gid
    except ValueError:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ClassProgramError(f"DefaultUser {user!r} is not a user") from None
        uid = entry.pw_uid
        gid = int(group) if group.isdigit() else entry.pw_gid
    except KeyError:
        gid = uid  # a numeric uid without a passwd entry
    return uid, gid


def class_program_output(command: str, default_user: str = "1:1") -> str:
    """The standard output of `command` (the text after `F|`), as text."""
    argv = command.split()
    if not argv:
        raise ClassProgramError("empty program")
    if not os.path.isabs(argv[0]):
        raise ClassProgramError(f"{argv[0]}: the program must be named by its full path")
    identity = run_identity(default_user) if os.geteuid() == 0 else None

    def drop_privileges() -> None:
        if identity is not None:
            uid, gid = identity
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

    try:
        finished = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={"PATH": SAFE_PATH},
            cwd="/",
            timeout=TIMEOUT,
            preexec_fn=drop_privileges,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ClassProgramError(f"{argv[0]}: no end after {TIMEOUT:g} seconds") from None
    except (OSError, subprocess.SubprocessError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ClassProgramError(f"{argv[0]}: cannot run: {reason}") from None
    if finished.returncode != 0:
        raise ClassProgramError(f"{argv[0]}: exit status {finished.returncode}")
    if len(finished.stdout) > MAX_OUTPUT:
        raise ClassProgramError(f"{argv[0]}: more than {MAX_OUTPUT} bytes of output")
    return finished.stdout.decode("utf-8", "surrogateescape")
