"""`makemap TYPE NAME < source`: build a compiled map as sendmail's makemap does.

The map is written to `NAME.pysm` (see config/compiled.py for why not `NAME.db`). Options as
sendmail 8.17's makemap: -N (keys and values carry a trailing NUL: accepted, meaningless
here), -c SIZE (cache size, ignored), -C FILE (config file, ignored), -D CHAR (comment
character), -d (duplicates allowed: btree only), -e (empty values allowed), -f (keep the
case of keys), -l (list the types), -o (append to an existing map), -r (replace existing
keys), -s (skip safety checks), -t CHAR (delimiter instead of white space), -u (dump the
map), -v (verbose). Errors go to stderr as `makemap: NAME: line N: ...`.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from pysendmail.config.compiled import compiled_path, iter_compiled, write_compiled
from pysendmail.config.mapsource import split_map_lines
from pysendmail.errors import ConfigError
from pysendmail.sysexits import ExitCode

PROGRAM = "makemap"
MAP_TYPES = ("hash", "btree", "dbm", "implicit")
USAGE = (
    "Usage: {prog} [-C cffile] [-N] [-c cachesize] [-D commentchar] [-d] [-e] [-f] [-l] "
    "[-o] [-r] [-s] [-t delimiter] [-u] [-v] type mapname\n"
)
_FLAGS_WITH_ARGUMENT = frozenset("CcDt")
_FLAGS = frozenset("NdeflorsuvCcDt")


class _Usage(Exception):
    pass


def _parse_argv(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """getopt(3) for makemap's option string: flags may be bundled, arguments attached."""
    options: dict[str, str] = {}
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        position = 1
        while position < len(arg):
            flag = arg[position]
            if flag not in _FLAGS:
                raise _Usage(f"{PROGRAM}: invalid option -- '{flag}'")
            if flag in _FLAGS_WITH_ARGUMENT:
                value = arg[position + 1 :]
                if not value:
                    index += 1
                    if index >= len(argv):
                        raise _Usage(f"{PROGRAM}: option requires an argument -- '{flag}'")
                    value = argv[index]
                options[flag] = value
                break
            options[flag] = ""
            position += 1
        index += 1
    return options, argv[index:]


def main(
    argv: list[str],
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run makemap with a full argv (argv[0] included); returns the exit status."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    prog = os.path.basename(argv[0]) if argv else PROGRAM
    try:
        options, operands = _parse_argv(argv)
    except _Usage as exc:
        stderr.write(f"{exc}\n")
        stderr.write(USAGE.format(prog=prog))
        return ExitCode.USAGE
    if "l" in options:
        for map_type in MAP_TYPES:
            stdout.write(f"{map_type}\n")
        return ExitCode.OK
    if len(operands) != 2:
        stderr.write(USAGE.format(prog=prog))
        return ExitCode.USAGE
    map_type, map_name = operands
    if map_type not in MAP_TYPES:
        stderr.write(f"{prog}: Unknown database type {map_type}\n")
        return ExitCode.USAGE
    if "d" in options and map_type != "btree":
        stderr.write(f"{prog}: Type {map_type} does not support -d (allow dups)\n")
        return ExitCode.USAGE
    dest = compiled_path(map_name)
    if "u" in options:
        return _dump(prog, dest, options.get("t", "\t")[:1] or "\t", stdout, stderr)
    return _build(prog, map_type, map_name, options, stdin, stdout, stderr)


def _dump(prog: str, dest: os.PathLike[str], separator: str, stdout: TextIO, stderr: TextIO) -> int:
    try:
        for key, value in iter_compiled(dest):
            stdout.write(f"{key}{separator}{value}\n")
    except ConfigError:
        stderr.write(f"{prog}: error opening type hash map {dest}: No such file or directory\n")
        return ExitCode.CANTCREAT
    return ExitCode.OK


def _build(
    prog: str,
    map_type: str,
    map_name: str,
    options: dict[str, str],
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    comment = options.get("D", "#")[:1] or "#"
    delimiter = options["t"][:1] if options.get("t") else None
    fold_case = "f" not in options
    replace = "r" in options
    allow_duplicates = "d" in options
    dest = compiled_path(map_name)
    text = stdin.read()
    entries, problems = split_map_lines(
        text,
        map_name,
        delimiter=delimiter,
        comment=comment,
        fold_case=fold_case,
        allow_empty="e" in options,
        replace=replace or allow_duplicates,
    )
    status = ExitCode.OK
    existing: set[str] = set()
    if "o" in options and dest.exists() and not replace:
        existing = {key for key, _ in iter_compiled(dest)}
    for problem in problems:
        stderr.write(f"{prog}: {map_name}: line {problem.location.line}: {problem.message}\n")
        status = ExitCode.DATAERR
    kept = []
    for entry in entries:
        if entry.key in existing:
            stderr.write(
                f"{prog}: {map_name}: line {entry.location.line}: key {entry.key}: duplicate key\n"
            )
            status = ExitCode.DATAERR
            continue
        if "v" in options:
            stdout.write(f"key=`{entry.key}', val=`{entry.value}'\n")
        kept.append((entry.key, entry.value))
    try:
        write_compiled(
            dest,
            kept,
            fold_case=fold_case,
            append="o" in options,
            replace=replace,
            source=map_name,
        )
    except OSError as exc:
        stderr.write(f"{prog}: error opening type {map_type} map {dest}: {exc.strerror}\n")
        return ExitCode.CANTCREAT
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
