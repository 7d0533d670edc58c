"""`pysendmail-cf`: the configuration tool (translate, check, options, install-links, passwd).

    pysendmail-cf translate [-C cf] [--json]   what pysendmail makes of a sendmail.cf
    pysendmail-cf check [-C cf]                problems as file:line:col, exit 78 on an error
    pysendmail-cf options [--json]             the options registry (names, types, defaults)
    pysendmail-cf install-links DIR [--force]  sendmail, newaliases, mailq, ... -> pysendmail
    pysendmail-cf passwd [--apop] USER [-C cf] set a password (or APOP secret) for POP3, AUTH

Without -C it reads /etc/mail/sendmail.cf, or the embedded default when that is missing.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import sys
from pathlib import Path

import click

from pysendmail import passwd
from pysendmail.config.model import Config
from pysendmail.config.options import OPTIONS
from pysendmail.config.translate import DefaultEnvironment, resolve_cf_path, translate
from pysendmail.errors import ConfigError
from pysendmail.sysexits import ExitCode

LINK_NAMES = ("sendmail", "newaliases", "mailq", "hoststat", "purgestat", "makemap", "praliases")

_cf_option = click.option(
    "-C",
    "cf_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="the sendmail.cf to read (default: /etc/mail/sendmail.cf, else the embedded one)",
)
_hostname_option = click.option(
    "--hostname", default=None, help="the host name to assume instead of the machine's"
)


def _load(cf_path: str | None, hostname: str | None) -> Config:
    try:
        return translate(resolve_cf_path(cf_path), hostname=hostname)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(ExitCode.CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """pysendmail's configuration tool."""


# ---------------------------------------------------------------- translate


def _plain(value: object) -> object:
    if isinstance(value, (tuple, list, set, frozenset)):
        items = [_plain(item) for item in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def config_summary(config: Config) -> dict[str, object]:
    """What `translate` shows, as plain data (the --json output)."""
    return {
        "cf": config.cf_path or "(embedded default)",
        "hostname": config.hostname,
        "macros": {name: config.macros[name] for name in sorted(config.macros)},
        "local_host_names": sorted(config.local_host_names),
        "relay_domains": sorted(config.relay_domains),
        "smart_host": config.smart_host,
        "mail_hub": config.mail_hub,
        "masquerade_as": config.masquerade_as,
        "masquerade_domains": sorted(config.masquerade_domains),
        "generics_domains": sorted(config.generics_domains),
        "trusted_users": sorted(config.trusted_users),
        "classes": {name: sorted(words) for name, words in sorted(config.classes.items())},
        "daemons": [
            {
                "name": daemon.name,
                "family": daemon.family,
                "addr": daemon.addr,
                "port": daemon.port,
                "modifiers": "".join(sorted(daemon.modifiers)),
            }
            for daemon in config.daemons
        ],
        "mailers": {name: dict(mailer.fields) for name, mailer in config.mailers.items()},
        "maps": {
            name: {"class": spec.map_class, "file": spec.file, "args": list(spec.args)}
            for name, spec in config.maps.items()
        },
        "rulesets": sorted({rs.name or str(rs.number) for rs in config.rulesets.values()}),
        "rule_engine": _rule_engine(config),
        "options": {name: _plain(config.options[name]) for name in sorted(config.options)},
        "state_dir": str(config.state_dir) if config.state_dir else None,
        "mailbox_dir": config.mailbox_dir,
        "startup_note": config.startup_note,
        "diagnostics": [str(diagnostic) for diagnostic in config.diagnostics],
    }


def _words(values: object) -> str:
    items = list(values) if isinstance(values, (list, tuple)) else []
    return " ".join(str(item) for item in items) if items else "(none)"


def _format_summary(summary: dict[str, object]) -> str:
    lines = [
        f"configuration        {summary['cf']}",
        f"host name ($j)       {summary['hostname']}",
        f"local names (w)      {_words(summary['local_host_names'])}",
        f"relay domains (R)    {_words(summary['relay_domains'])}",
        f"smart host (DS)      {summary['smart_host'] or '(none)'}",
        f"mail hub (DH)        {summary['mail_hub'] or '(none)'}",
        f"masquerade as (DM)   {summary['masquerade_as'] or '(none)'}",
        f"masquerading (M)     {_words(summary['masquerade_domains'])}",
        f"generics (G)         {_words(summary['generics_domains'])}",
        f"trusted users (t)    {_words(summary['trusted_users'])}",
        "",
        "daemons:",
    ]
    for daemon in summary["daemons"]:  # type: ignore[attr-defined]
        modifiers = f"  M={daemon['modifiers']}" if daemon["modifiers"] else ""
        addr = daemon["addr"] or "*"
        lines.append(
            f"  {daemon['name']:<12} {daemon['family']:<6} {addr}:{daemon['port']}{modifiers}"
        )
    lines += ["", "mailers:"]
    for name, fields in summary["mailers"].items():  # type: ignore[attr-defined]
        text = ", ".join(f"{key}={value}" for key, value in fields.items())
        lines.append(f"  {name:<12} {text}")
    lines += ["", "maps:"]
    for name, spec in summary["maps"].items():  # type: ignore[attr-defined]
        lines.append(f"  {name:<12} {spec['class']:<8} {' '.join(spec['args'])}".rstrip())
    lines += ["", f"rulesets: {_words(summary['rulesets'])}"]
    lines += _format_rule_engine(summary["rule_engine"])  # type: ignore[arg-type]
    lines += ["", "options:"]
    for name, value in summary["options"].items():  # type: ignore[attr-defined]
        if value is None or value in ((), []):
            continue
        shown = ",".join(str(v) for v in value) if isinstance(value, list) else value
        lines.append(f"  {name} = {shown}")
    if summary["startup_note"]:
        lines += ["", f"note: {summary['startup_note']}"]
    if summary["diagnostics"]:
        lines += ["", "diagnostics:"]
        lines += [f"  {d}" for d in summary["diagnostics"]]  # type: ignore[attr-defined]
    return "\n".join(lines)


def _rule_engine(config: Config) -> dict[str, object]:
    """Which rulesets are sendmail's stock m4 output, which hold hand-written rules, and
    which pysendmail therefore runs through its rules engine (rules/stock.py)."""
    from pysendmail.rules.stock import StockReport

    return StockReport(config.cf.rulesets).summary() if config.cf is not None else {}


def _format_rule_engine(engine: dict[str, object]) -> list[str]:
    if not engine:
        return []
    local = engine["local"]
    lines = [f"  stock m4 rulesets:    {_words(engine['stock'])}"]
    if local:
        for name, where in local.items():  # type: ignore[attr-defined]
            lines.append(f"  hand-written rules:   {name} ({', '.join(where)})")
    else:
        lines.append("  hand-written rules:   (none)")
    lines.append(f"  run by rules engine:  {_words(engine['run'])}")
    return lines


@cli.command("translate")
@_cf_option
@_hostname_option
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def translate_command(cf_path: str | None, hostname: str | None, as_json: bool) -> None:
    """Print the routing tables, daemons, mailers, maps and options of a cf."""
    summary = config_summary(_load(cf_path, hostname))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(_format_summary(summary))


# ---------------------------------------------------------------- check


@cli.command("check")
@_cf_option
@_hostname_option
@click.option(
    "--tables/--no-tables",
    default=True,
    show_default=True,
    help="also check the alias files and map sources the cf names",
)
def check_command(cf_path: str | None, hostname: str | None, tables: bool) -> None:
    """Print each problem as file:line:col: message; exit 78 when one is an error."""
    config = _load(cf_path, hostname)
    problems = list(config.diagnostics)
    if tables:
        from pysendmail.config.mapsource import check_config_tables

        problems += check_config_tables(config)
    for diagnostic in problems:
        click.echo(str(diagnostic))
    if any(diagnostic.severity == "error" for diagnostic in problems):
        sys.exit(ExitCode.CONFIG)


# ---------------------------------------------------------------- options


@cli.command("options")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def options_command(as_json: bool) -> None:
    """List every option: long name, one-letter name, type, default, what it does."""
    specs = sorted(OPTIONS.values(), key=lambda spec: spec.name.lower())
    if as_json:
        rows = [
            {
                "name": spec.name,
                "letter": spec.letter,
                "type": spec.kind,
                "default": _plain(spec.default),
                "doc": spec.doc,
            }
            for spec in specs
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for spec in specs:
        letter = f"-o{spec.letter}" if spec.letter else ""
        default = "" if spec.default is None else repr(_plain(spec.default))
        click.echo(f"{spec.name:<34}{letter:<5}{spec.kind:<9}{default:<22} {spec.doc}")


# ---------------------------------------------------------------- install-links


def _program_path() -> str | None:
    beside = Path(sys.argv[0]).resolve().parent / "pysendmail"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("pysendmail")


def _describe(path: Path) -> str:
    if path.is_symlink():
        return f"a link to {os.readlink(path)}"
    if path.is_dir():
        return "a directory"
    return "a file"


@cli.command("install-links")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="replace files that are already there")
@click.option("--program", default=None, help="the pysendmail program to link to")
def install_links_command(directory: str, force: bool, program: str | None) -> None:
    """Make sendmail, newaliases, mailq, hoststat, purgestat, makemap and praliases in
    DIRECTORY links to the pysendmail program."""
    target = program or _program_path()
    if target is None:
        click.echo("pysendmail-cf: cannot find the pysendmail program; use --program", err=True)
        sys.exit(ExitCode.UNAVAILABLE)
    target = os.path.abspath(target)
    folder = Path(directory)
    if not folder.is_dir():
        click.echo(f"pysendmail-cf: {folder}: no such directory", err=True)
        sys.exit(ExitCode.CANTCREAT)
    refused = False
    for name in LINK_NAMES:
        link = folder / name
        exists = link.exists() or link.is_symlink()
        if exists and link.is_symlink() and os.readlink(link) == target:
            click.echo(f"{link}: already a link to {target}")
            continue
        if exists and link.is_dir() and not link.is_symlink():
            click.echo(f"pysendmail-cf: {link} is a directory; not replaced", err=True)
            refused = True
            continue
        if exists and not force:
            click.echo(
                f"pysendmail-cf: {link} exists ({_describe(link)}); not replaced (use --force)",
                err=True,
            )
            refused = True
            continue
        replaced = _describe(link) if exists else None
        temporary = folder / f".{name}.pysendmail-new"
        try:
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(target)
            os.replace(temporary, link)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            click.echo(f"pysendmail-cf: {link}: {exc.strerror}", err=True)
            sys.exit(ExitCode.CANTCREAT)
        if replaced:
            click.echo(f"{link}: replaced {replaced} with a link to {target}")
        else:
            click.echo(f"{link}: linked to {target}")
    if refused:
        sys.exit(ExitCode.CANTCREAT)


# ---------------------------------------------------------------- passwd


def _passwd_file(cf_path: str | None) -> Path:
    resolved = resolve_cf_path(cf_path)
    if resolved is not None:
        return passwd.passwd_path(resolved)
    return passwd.passwd_path(None, DefaultEnvironment.current().state_dir)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != first:
            click.echo("pysendmail-cf: the passwords differ; nothing changed", err=True)
            sys.exit(ExitCode.DATAERR)
        return first
    return sys.stdin.readline().rstrip("\r\n")


@cli.command("passwd")
@click.argument("user")
@_cf_option
@click.option(
    "--file", "file_path", default=None, help="the password file (default: beside the cf)"
)
@click.option(
    "--apop",
    is_flag=True,
    help="set USER's APOP secret instead, in pysendmail.apop beside the password file "
    "(kept in plain text, mode 0600: APOP needs the secret itself)",
)
def passwd_command(user: str, cf_path: str | None, file_path: str | None, apop: bool) -> None:
    """Set USER's password for SMTP AUTH and POP3 (asked on a terminal, else one line
    of standard input)."""
    path = Path(file_path) if file_path else _passwd_file(cf_path)
    if apop:
        path = passwd.apop_path(path)
    password = _read_password()
    if not password:
        click.echo("pysendmail-cf: empty password; nothing changed", err=True)
        sys.exit(ExitCode.DATAERR)
    try:
        if apop:
            passwd.set_apop_secret(user, password, path=path)
        else:
            passwd.set_password(user, password, path=path)
    except ValueError as exc:
        click.echo(f"pysendmail-cf: {exc}", err=True)
        sys.exit(ExitCode.USAGE)
    except ConfigError as exc:
        click.echo(f"pysendmail-cf: {exc}", err=True)
        sys.exit(ExitCode.CONFIG)
    except OSError as exc:
        click.echo(f"pysendmail-cf: {path}: {exc.strerror}", err=True)
        sys.exit(ExitCode.CANTCREAT)
    click.echo(f"{'APOP secret' if apop else 'password'} of {user} set in {path}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        cli.main(args=argv, prog_name="pysendmail-cf", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    except click.exceptions.Abort:
        return ExitCode.TEMPFAIL
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
