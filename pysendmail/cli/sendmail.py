"""The `sendmail` command: reads the command line, then hands each mode to the part that does it.

This module owns the dispatch and the command line's own refusals (bad flags, argument
injection, line breaks in -f/-F/recipients); the work of every mode lives elsewhere and
is imported only when that mode runs, so that a plain submission (`sendmail -t -i`)
pays for nothing it does not use. A mode whose part is not installed says so and exits
69 (EX_UNAVAILABLE); it never pretends to have worked.
"""

from __future__ import annotations

import sys

from pysendmail.cli import options as cli_options
from pysendmail.errors import ConfigError
from pysendmail.sysexits import ExitCode

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

# Which part runs each mode, for the message when that part is missing.
_MODE_NAMES = {
    cli_options.MODE_DAEMON: "the SMTP daemon (-bd)",
    cli_options.MODE_FOREGROUND_DAEMON: "the SMTP daemon (-bD)",
    cli_options.MODE_SMTP: "SMTP on standard input (-bs)",
    cli_options.MODE_INIT_ALIASES: "rebuilding the alias database (-bi)",
    cli_options.MODE_VERIFY: "address verification (-bv)",
    cli_options.MODE_TEST: "address test mode (-bt)",
    cli_options.MODE_PRINT_QUEUE: "listing the queue (-bp)",
    cli_options.MODE_QUEUE_STATS: "queue statistics (-bP)",
    cli_options.MODE_HOST_STATUS: "the host status list (-bh)",
    cli_options.MODE_PURGE_HOST_STATUS: "purging host status (-bH)",
    cli_options.MODE_ARPAFTP: "ARPANET FTP mode (-ba)",
    cli_options.MODE_CHECK_CONFIG: "checking the configuration (-bC)",
    cli_options.MODE_QUEUE_RUN: "running the queue (-q)",
    cli_options.MODE_DELIVER: "submitting mail",
}


class Unavailable(Exception):
    """A mode whose part is not part of this installation."""


def unavailable(mode: str, err: TextIO) -> int:
    what = _MODE_NAMES.get(mode, f"mode -b{mode}")
    err.write(f"sendmail: {what} is not available in this version of pysendmail\n")
    return int(ExitCode.UNAVAILABLE)


def refusals(inv: cli_options.Invocation) -> list[str]:
    """What the command line may never carry, whatever the mode: argument injection
    (a recipient that looks like a flag, as in CVE-2016-10033) and line breaks that would
    forge a header or an SMTP command."""
    problems: list[str] = []
    if inv.sender is not None and ("\r" in inv.sender or "\n" in inv.sender):
        problems.append(f"-{inv.sender_flag}: sender address may not contain CR or LF")
    if inv.full_name is not None and ("\r" in inv.full_name or "\n" in inv.full_name):
        problems.append("-F: full name may not contain CR or LF")
    for rcpt in inv.recipients:
        if rcpt.startswith("-"):
            problems.append(f"{rcpt}... Recipient address may not begin with '-'")
        elif "\r" in rcpt or "\n" in rcpt:
            shown = rcpt.replace("\r", "\\r").replace("\n", "\\n")
            problems.append(f"{shown}... Recipient address may not contain CR or LF")
    return problems


def _mode_runner(mode: str) -> Callable[[cli_options.Invocation, TextIO, TextIO], int]:
    """The function that runs `mode`; raises Unavailable when its part is missing."""
    try:
        if mode == cli_options.MODE_DELIVER:
            from pysendmail.cli import submit

            return submit.run
        import gc

        gc.enable()  # every mode but a submission may run long (cli.main turned it off)
        from pysendmail.cli import modes

        return modes.runner(mode)
    except ImportError as exc:
        raise Unavailable(mode) from exc


def main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the sendmail command line (argv[0] included); returns the exit status."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        inv = cli_options.parse_args(argv)
    except cli_options.ArgumentError as exc:
        err.write(f"{exc}\n")
        return int(ExitCode.USAGE)
    problems = inv.errors + refusals(inv)
    if problems:
        for line in problems:
            out.write(f"{line}\n")
        out.flush()
        return int(ExitCode.USAGE)
    try:
        run = _mode_runner(inv.mode)
    except Unavailable:
        return unavailable(inv.mode, err)
    try:
        if inv.debug_flags and inv.debug_levels().get(0, 0) >= 1:
            from pysendmail.cli import modes

            out.write(modes.version_block(inv))
        return run(inv, out, err)
    except Unavailable as exc:
        return unavailable(str(exc), err)
    except ConfigError as exc:
        out.write(f"{exc}\n")
        return int(ExitCode.CONFIG)
    except BrokenPipeError:
        return int(ExitCode.IOERR)
    finally:
        try:
            out.flush()
        except (BrokenPipeError, ValueError):
            pass
