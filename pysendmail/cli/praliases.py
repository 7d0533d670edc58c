"""`praliases [-C cf] [-f aliasfile] [key ...]`: print the aliases as sendmail's praliases.

Every entry as `key:value`, or for each key asked `key:value` / `key: No such key`. The
alias files are those of the cf's `AliasFile` option (read straight from the cf's `O` lines,
as the real praliases does, so it works without the full translator) unless `-f` names one.
Entries come from the compiled form while it is fresh, else from the source.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from pysendmail.config.aliases import read_aliases
from pysendmail.config.compiled import compiled_path, is_fresh, iter_compiled
from pysendmail.errors import ConfigError
from pysendmail.sysexits import ExitCode

DEFAULT_CF = "/etc/mail/sendmail.cf"
DEFAULT_ALIAS_FILE = "/etc/mail/aliases"
USAGE = "usage: praliases [-C cffile] [-f aliasfile] [key ...]\n"


def alias_files_from_cf(cf_path: str) -> list[str]:
    """The AliasFile entries of a sendmail.cf (`O AliasFile=...` or the old `OA...`)."""
    try:
        with open(cf_path, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().split("\n")
    except OSError:
        return [DEFAULT_ALIAS_FILE]
    found: list[str] = []
    for line in lines:
        value = None
        if line.startswith("O AliasFile=") or line.startswith("O AliasFile ="):
            value = line.split("=", 1)[1]
        elif line.startswith("OA"):
            value = line[2:]
        if value is None:
            continue
        for item in value.split(","):
            text = item.strip()
            map_class, sep, rest = text.partition(":")
            if sep and not map_class.startswith("/"):
                text = rest.strip()
            if text:
                found.append(text)
    return found or [DEFAULT_ALIAS_FILE]


def _entries(path: str) -> list[tuple[str, str]]:
    compiled = compiled_path(path)
    if compiled.exists() and is_fresh(compiled, Path(path)):
        return list(iter_compiled(compiled))
    aliases = read_aliases(path)
    return [(key, entry.rhs) for key, entry in aliases.entries.items()]


def main(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run praliases with a full argv (argv[0] included); returns the exit status."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    prog = os.path.basename(argv[0]) if argv else "praliases"
    cf_path, alias_file = DEFAULT_CF, None
    args = argv[1:]
    while args and args[0].startswith("-") and args[0] != "-":
        flag = args.pop(0)
        if flag == "--":
            break
        if flag[:2] not in ("-C", "-f"):
            stderr.write(USAGE)
            return ExitCode.USAGE
        value = flag[2:] or (args.pop(0) if args else None)
        if value is None:
            stderr.write(USAGE)
            return ExitCode.USAGE
        if flag.startswith("-C"):
            cf_path = value
        else:
            alias_file = value
    files = [alias_file] if alias_file else alias_files_from_cf(cf_path)
    status = ExitCode.OK
    for path in files:
        try:
            entries = _entries(path)
        except ConfigError as exc:
            stderr.write(f"{prog}: {exc}\n")
            status = ExitCode.CONFIG
            continue
        if not args:
            for key, value in entries:
                stdout.write(f"{key}:{value}\n")
            continue
        table = dict(entries)
        for key in args:
            value = table.get(key.lower())
            if value is None:
                stdout.write(f"{key}: No such key\n")
            else:
                stdout.write(f"{key.lower()}:{value}\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
