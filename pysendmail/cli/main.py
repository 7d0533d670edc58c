"""The `pysendmail` program: picks a personality by argv[0], as sendmail does.

`sendmail`/`pysendmail` -> the sendmail command line; `newaliases` = -bi; `mailq` = -bp;
`hoststat` = -bh; `purgestat` = -bH; `makemap` and `praliases` are their own programs.
"""

from __future__ import annotations

import gc
import os
import sys


def standard_descriptors() -> None:
    """Open /dev/null on whichever of descriptors 0, 1 and 2 the caller left closed, as
    sendmail does at start-up: mail clients (GNU mailutils' mail) run sendmail with its
    standard output closed, and a queue file opened later would otherwise become
    descriptor 1 and receive whatever is printed."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    if sys.stdout is None:
        sys.stdout = open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


# Set by a mode that has finished all it does (files closed and synced, no thread or
# child of this process still working): the installed command then ends at once.
_quick_exit_allowed = False


def allow_quick_exit() -> None:
    """Let the program end without the interpreter's teardown (the submission's modules
    and objects freed one by one: a twentieth of `sendmail -t -i`'s instructions)."""
    global _quick_exit_allowed
    _quick_exit_allowed = True


def _exit_now(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def main(argv: list[str] | None = None) -> int:
    """Run with a full argv (argv[0] included); returns the exit status. Called without
    one, as the installed command, it may end the process itself once the mode allows it."""
    global _quick_exit_allowed
    _quick_exit_allowed = False
    program = argv is None
    standard_descriptors()
    argv = list(sys.argv if argv is None else argv)
    name = os.path.basename(argv[0]) if argv else "sendmail"
    if name == "makemap":
        from pysendmail.cli import makemap

        return makemap.main(argv)
    if name == "praliases":
        from pysendmail.cli import praliases

        return praliases.main(argv)
    # Start-up makes tens of thousands of objects (modules, classes, the cached Config)
    # and none of them is garbage: the cyclic collector's passes over them were a twentieth
    # of a submission's instructions (bench/README.md). A submission is short-lived;
    # the modes that run long turn the collector back on (sendmail._mode_runner).
    collecting = gc.isenabled()
    gc.disable()
    try:
        from pysendmail.cli import sendmail

        status = sendmail.main(argv)
    finally:
        if collecting:
            # What start-up made is kept out of later passes, the one at exit included.
            gc.freeze()
            gc.enable()
    if program and _quick_exit_allowed:
        _exit_now(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
