"""`newaliases` (= `sendmail -bi`): rebuild the compiled alias files named by `AliasFile`.

For each alias file it prints what sendmail prints, to `out`: the bad lines
(`FILE: line N: missing colon`, `... illegal alias name`, `Warning: duplicate alias name`),
with `CheckAliases` the targets its address parser refuses (`FILE: line N: ADDR... Unbalanced
'<'`), then `FILE: N aliases, longest L bytes, T bytes total`; it writes `FILE.pysm`
(config/compiled.py). A file that cannot be opened: `newaliases: cannot open FILE: reason`.
Exit status as sendmail's: 0, or 70 (EX_SOFTWARE) when a line had an error, or 71
(EX_OSERR) when the compiled file could not be written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from pysendmail.address import check_balance
from pysendmail.config.aliases import (
    AliasFile,
    TargetKind,
    alias_files,
    local_domain_test,
    parse_aliases,
)
from pysendmail.config.compiled import write_compiled_aliases
from pysendmail.errors import AddressSyntaxError
from pysendmail.sysexits import ExitCode

if TYPE_CHECKING:
    from pysendmail.config.model import Config


def newaliases(config: Config, out: TextIO, err: TextIO) -> int:
    """Rebuild every alias file of `config`; sendmail's messages go to `out`."""
    status = ExitCode.OK
    is_local = local_domain_test(config)
    for path in alias_files(config):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            out.write(f"newaliases: cannot open {path}: {exc.strerror}\n")
            continue
        aliases = parse_aliases(
            data.decode("utf-8", "surrogateescape"), path, is_local_domain=is_local
        )
        for message in aliases.messages:
            out.write(message + "\n")
        if config.option("CheckAliases"):
            for message in _unparsable_targets(aliases, path):
                out.write(message + "\n")
        if any(_is_sendmail_error(d) for d in aliases.diagnostics if d.severity == "error"):
            status = max(status, ExitCode.SOFTWARE)
        try:
            write_compiled_aliases(aliases)
        except OSError as exc:
            out.write(f"Cannot create database for alias file {path}: {exc.strerror}\n")
            status = ExitCode.OSERR
            continue
        stats = aliases.stats
        out.write(
            f"{path}: {stats.aliases} aliases, longest {stats.longest} bytes, "
            f"{stats.total} bytes total\n"
        )
    out.flush()
    return status


def _unparsable_targets(aliases: AliasFile, path: str) -> list[str]:
    """CheckAliases: each address target that sendmail's parser refuses, as sendmail
    reports it (`FILE: line N: foo<bar... Unbalanced '<'`); the alias is kept all the same.
    sendmail also looks up each target's domain; that lookup is not made here."""
    found = []
    for entry in sorted(aliases.entries.values(), key=lambda e: e.location.line):
        for target in entry.targets:
            if target.kind != TargetKind.ADDRESS:
                continue
            try:
                check_balance(target.text)
            except AddressSyntaxError as problem:
                line = target.location.line
                found.append(f"{path}: line {line}: {target.text}... {problem}")
    return found


def _is_sendmail_error(diagnostic: object) -> bool:
    """The errors sendmail itself reports (and so counts in its exit status); our own
    extra checks (unbalanced quotes) are only diagnostics."""
    message = getattr(diagnostic, "message", "")
    return any(
        words in message
        for words in (
            "missing colon",
            "illegal alias name",
            "missing value for alias",
            "Non-continuation line",
            "cannot alias non-local names",
            "alias line too long",
        )
    )
