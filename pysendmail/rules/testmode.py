"""`sendmail -bt`: address test mode, printing what sendmail 8.17 prints, byte for byte.

This module owns the -bt command language (`3,0 addr`, `/parse`, `/try`,
`/tryflags`, `/map`, `/canon`, `/mx`, `/sender`, `/expand`, `/header`, `=S`,
`=M`, `$x`, `$=X`, `.Dx`, `.Cx`, `?`), the banner and the prompt, and the
`-d0.1` version block. It reads lines, writes text (latin-1, so any byte typed
comes back as it was), and returns the exit status sendmail would (the last
`setstat()`, e.g. 67 after an `error:nouser` triple). Rule running itself is
`engine`/`address`; nothing here raises on bad input.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from pysendmail.address import strip_comments as address_strip_comments
from pysendmail.config.model import CfFile, Config
from pysendmail.headers import H_STRIPCOMM, H_USER, header_flags
from pysendmail.rules import maps as mp
from pysendmail.rules import tokenizer as tk
from pysendmail.rules.address import (
    RF_HEADERADDR,
    RF_SENDERADDR,
    AddressRules,
    crackaddr,
)
from pysendmail.rules.checks import run_check
from pysendmail.rules.context import Mailer, RuleWorld, build_world
from pysendmail.rules.engine import EX_OK, Messages
from pysendmail.rules.tokenizer import macro_id, macro_name

BANNER = "ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)\nEnter <ruleset> <address>\n"
PROMPT = "> "

_SPACE = " \t\n\r\f\v"


class TestMode:
    """One -bt session: the world, its own macros, the /tryflags state and the output."""

    def __init__(
        self,
        world: RuleWorld,
        write: Callable[[str], None],
        *,
        help_file: str | None = None,
        mx_lookup: Callable[[str], list[str] | int] | None = None,
    ) -> None:
        self.world = world = world.session()
        self.write = write
        self.help_file = help_file
        self.mx_lookup = mx_lookup
        self.messages = Messages(emit=lambda line: self.write(line + "\n"))
        self.rw = world.rewriter(
            macros=world.macros,
            messages=self.messages,
            trace=lambda line: self.write(line + "\n"),
        )
        self.addr = AddressRules(world, self.rw)
        self.tryflags = 0

    @property
    def exit_status(self) -> int:
        return self.messages.exit_stat

    def out(self, text: str) -> None:
        self.write(text)

    # ------------------------------------------------------------ one line

    def line(self, line: str) -> bool:
        """Do one input line; False after /quit."""
        if not line or line[0] == "#":
            return True
        head = line[0]
        if head == "?":
            self.help()
        elif head == ".":
            self.dot_command(line)
        elif head == "=":
            self.equals_command(line)
        elif head == "-":
            if line[1:2] == "d":
                pass
            elif line[1:2] == "":
                self.out("Usage: -d{debug arguments}\n")
            else:
                self.out(f'Unknown "-" command {line}\n')
        elif head == "$":
            self.dollar_command(line)
        elif head == "/":
            return self.slash_command(line)
        else:
            self.rules_command(line)
        return True

    def help(self) -> None:
        text: str | None = None
        if self.help_file:
            try:
                text = Path(self.help_file).read_text(encoding="latin-1")
            except OSError:
                text = None
        if text is None:
            self.out(f"Sendmail {tk_version()} -- HELP not implemented\n")
            return
        found = False
        for raw in text.splitlines():
            if raw.startswith("#") or not raw.startswith("-bt"):
                continue
            tab = raw.find("\t")
            body = raw[tab + 1 :] if tab >= 0 else ""
            body = tk.expand(tk.translate_dollars(body), self.rw.macros.get)
            self.out(body + "\n")
            found = True
        if found:
            self.out("End of HELP info\n")
        else:
            self.out('HELP topic "-bt" unknown\n')

    def dot_command(self, line: str) -> None:
        kind = line[1:2]
        if kind == "":
            self.out("Usage: .[DC]macro value(s)\n")
            return
        if kind not in "DC":
            self.out(f'Unknown "." command {line}\n')
            return
        if kind == "C" and line[2:] == "":
            return
        mid, rest = _macro_id_parse(line[2:])
        if mid is None:
            return
        value = tk.translate_dollars(rest)
        if kind == "D":
            self.rw.macros[mid] = value
            return
        expanded = tk.expand(value, self.rw.macros.get)
        for word in expanded.split():
            self.world.classes.add(mid, word)

    def equals_command(self, line: str) -> None:
        kind = line[1:2]
        if kind == "S":
            name = line[2:]
            if not name.strip():
                self.out("Usage: =Sruleset\n")
                return
            number = self.world.book.find(name)
            if number < 0:
                self.out(f"Undefined ruleset {name}\n")
                return
            for rule in self.world.book.rules.get(number, ()):
                lhs = "".join(tk.xputs(t) + " " for t in rule.lhs)
                rhs = "".join(tk.xputs(t) + " " for t in rule.rhs)
                self.out(f"R{lhs}\t\t{rhs}\n")
        elif kind == "M":
            for mailer in self.world.mailers:
                self.out(format_mailer(mailer, self.world) + "\n")
        elif kind == "":
            self.out("Usage: =Sruleset or =M\n")
        else:
            self.out(f'Unknown "=" command {line}\n')

    def dollar_command(self, line: str) -> None:
        if line[1:2] == "=":
            mid, _rest = _macro_id_parse(line[2:])
            if mid is not None:
                for word in self.world.classes.listing(mid):
                    self.out(word + "\n")
            return
        mid, _rest = _macro_id_parse(line[1:])
        if mid is None:
            return
        value = self.rw.macros.get(mid)
        if value is None:
            self.out("Undefined\n")
        else:
            self.out(tk.xputs(value) + "\n")

    # ------------------------------------------------------------ "rules addr"

    def rules_command(self, line: str) -> None:
        p = 0
        while p < len(line) and line[p] in _SPACE:
            p += 1
        q = p
        while p < len(line) and line[p] not in _SPACE:
            p += 1
        if p >= len(line):
            self.out("No address!\n")
            return
        rules = line[q:p]
        if self.addr.invalid(line[p + 1 :], True):
            return
        # as sendmail: each address starts one past the previous delimiter
        while True:
            p += 1
            rest = line[p:]
            scanned = self.addr.scan(rest, ",", self.world.tables.no_comments)
            if scanned.tokens is not None:
                self.run_rulesets(rules, scanned.tokens)
            p += max(scanned.end, 0)
            if p >= len(line):
                break

    def run_rulesets(self, rules: str, pvp: list[str]) -> None:
        """Rewrite `pvp` through each ruleset of a comma-separated list, in turn."""
        names = rules
        while names:
            number = self.world.book.find(names)
            if number < 0:
                self.out(f"Undefined ruleset {names}\n")
                break
            status = self.rw.rewrite(pvp, number)
            if status != EX_OK:
                self.out(f"== Ruleset {names} ({number}) status {status}\n")
            comma = names.find(",")
            names = names[comma + 1 :] if comma >= 0 else ""

    # ------------------------------------------------------------ "/..."

    def slash_command(self, line: str) -> bool:
        line = line.rstrip(_SPACE)
        cut = _first_of(line, " \t")
        if cut >= 0:
            command, arg = line[:cut], line[cut:].lstrip(_SPACE)
        else:
            command, arg = line, ""
        name = command[1:].lower()
        if name == "":
            self.out("Usage: /[canon|map|mx|parse|try|tryflags]\n")
        elif name == "quit":
            return False
        elif name == "mx":
            self.cmd_mx(arg)
        elif name == "canon":
            self.cmd_canon(arg)
        elif name == "map":
            self.cmd_map(arg)
        elif name == "try":
            self.cmd_try(arg)
        elif name == "tryflags":
            self.cmd_tryflags(arg)
        elif name == "parse":
            self.cmd_parse(arg)
        elif name == "sender":
            self.cmd_sender(arg)
        elif name == "expand":
            self.cmd_expand(arg)
        elif name == "header":
            self.cmd_header(arg)
        elif name in ("gethostbyname", "dnslookup"):
            pass
        else:
            self.out(f'Unknown "/" command {command}\n')
        return True

    def cmd_mx(self, host: str) -> None:
        if not host:
            self.out("Usage: /mx address\n")
            return
        lookup = self.mx_lookup or self.world.resolver.mx_hosts
        hosts = lookup(host)
        if hosts == mp.NULL_MX:
            self.out(f"getmxrr({host}) returns null MX (See RFC7505)\n")
            return
        count = hosts if isinstance(hosts, int) else len(hosts)
        self.out(f"getmxrr({host}) returns {count} value(s):\n")
        for mx in hosts if isinstance(hosts, list) else []:
            self.out(f"\t{mx}\n")

    def cmd_canon(self, host: str) -> None:
        if not host:
            self.out("Usage: /canon address\n")
            return
        if len(host) >= 256:
            self.out("Name too long\n")
            return
        found, _status = self.world.resolver.canonical_name(host)
        self.out(f"getcanonname({host}) returns {found if found is not None else host}\n")

    def cmd_map(self, arg: str) -> None:
        if not arg:
            self.out("Usage: /map mapname key\n")
            return
        cut = _first_of(arg, _SPACE)
        if cut < 0:
            self.out("No key specified\n")
            return
        mapname, key = arg[:cut], arg[cut + 1 :]
        themap = self.world.maps.get(mapname.lower())
        if themap is None:
            self.out(f'Map named "{mapname}" not found\n')
            return
        if not themap.is_open and not themap.flags.optional:
            self.out(f'Map named "{mapname}" not open\n')
            return
        self.out(f"map_lookup: {mapname} ({key}) ")
        result, status = themap.lookup(key, [key])
        if result is None:
            self.out(f"no match ({status})\n")
        else:
            self.out(f"returns {result} ({status})\n")

    def cmd_try(self, arg: str) -> None:
        cut = _first_of(arg, " \t")
        if cut < 0:
            self.out("Usage: /try mailer address\n")
            return
        mname = arg[:cut]
        address = arg[cut:].lstrip(_SPACE)
        if not address:
            self.out("Usage: /try mailer address\n")
            return
        mailer = self.world.mailer(mname)
        if mailer is None:
            self.out(f"Unknown mailer {mname}\n")
            return
        where = "header" if self.tryflags & RF_HEADERADDR else "envelope"
        who = "sender" if self.tryflags & RF_SENDERADDR else "recipient"
        self.out(f"Trying {where} {who} address {address} for mailer {mname}\n")
        result, rcode = self.addr.remotename(address, mailer, self.tryflags)
        self.out(
            f"Rcode = {rcode}, addr = {tk.xputs(result) if result is not None else '<NULL>'}\n"
        )

    def cmd_tryflags(self, arg: str) -> None:
        if not arg:
            self.out("Usage: /tryflags [Hh|Ee][Ss|Rr]\n")
            return
        for ch in arg:
            if ch in "Hh":
                self.tryflags |= RF_HEADERADDR
            elif ch in "Ee":
                self.tryflags &= ~RF_HEADERADDR
            elif ch in "Ss":
                self.tryflags |= RF_SENDERADDR
            elif ch in "Rr":
                self.tryflags &= ~RF_SENDERADDR
        kind = ("h" if self.tryflags & RF_HEADERADDR else "e") + " "
        kind += "s" if self.tryflags & RF_SENDERADDR else "r"
        self.rw.macros[macro_id("addr_type")] = kind

    def cmd_parse(self, arg: str) -> None:
        if not arg:
            self.out("Usage: /parse address\n")
            return
        cracked = crackaddr(arg, self.world.must_quote)
        where = "header" if self.tryflags & RF_HEADERADDR else "envelope"
        who = "sender" if self.tryflags & RF_SENDERADDR else "recipient"
        self.out(f"Cracked address = {tk.xputs(cracked)}\nParsing {where} {who} address\n")
        parsed = self.addr.parseaddr(arg, self.tryflags, "\0", True)
        if parsed is None:
            self.out("Cannot parse\n")
        elif parsed.host:
            self.out(
                f"mailer {parsed.mailer.name}, host {parsed.host}, user {tk.xputs(parsed.user)}\n"
            )
        else:
            self.out(f"mailer {parsed.mailer.name}, user {tk.xputs(parsed.user)}\n")
        self.messages.to = None

    def cmd_sender(self, arg: str) -> None:
        if not arg:
            self.out("Usage: /sender address\n")
            return
        sender = self.setsender(arg)
        self.out(f"addr={sender}\n")

    def setsender(self, sender: str) -> str:
        """sendmail's setsender() as far as -bt shows it: the parse, then rulesets 3, 1, 4."""
        self.addr.parseaddr(sender, RF_SENDERADDR, " ", False)
        scanned = self.addr.scan(sender, " ")
        if scanned.tokens is None:
            return sender
        pvp = scanned.tokens
        self.rw.rewrite(pvp, 3)
        self.rw.rewrite(pvp, 1)
        self.rw.rewrite(pvp, 4)
        return self.rw.cat(pvp)

    def cmd_expand(self, arg: str) -> None:
        if not arg:
            self.out("Usage: /expand string\n")
            return
        self.out(tk.xputs(tk.expand(arg, self.rw.macros.get)))

    def cmd_header(self, arg: str) -> None:
        if not arg:
            self.out("Usage: /header header\n")
            return
        name, value = _header_name(arg)
        if name is None:
            # chompheader() of a user's header: `?flags?` is no condition there, so
            # `?P?Return-Path` is a name and `?P Return-Path:` a syntax error
            self.out(f'header syntax error, line "{arg}"\nul = 00000000\n')
            return
        flags = header_flags(name) | H_USER
        own = self.world.header_checks.get(name.lower())
        if own is not None and own[1]:
            flags |= H_STRIPCOMM
        # `H*: $>rs` checks every header that has no ruleset of its own
        check = own or self.world.header_checks.get("*")
        if check is not None:
            self.check_header(name, value.strip(), *check)
        self.out(f"ul = 0x{flags:08x}\n")

    def check_header(self, name: str, value: str, ruleset: str, strip: bool) -> None:
        """chompheader()'s check: the header's ruleset over its value, traced; an
        `$#error` result is reported as sendmail reports a refused header."""
        macros = {
            "hdr_name": name,
            "hdrlen": str(len(value)),
            "currHeader": '"' + value.replace('"', '\\"') + '"',
        }
        text = strip_comments(value) if strip else value
        verdict = run_check(
            self.world,
            ruleset,
            text,
            macros={**{k: v for k, v in self.rw.macros.items()}, **macros},
            trace=lambda line: self.write(line + "\n"),
        )
        if verdict.reply is not None and verdict.action in ("reject", "tempfail"):
            self.messages.usrerr(verdict.reply)


def _header_name(line: str) -> tuple[str | None, str]:
    """chompheader()'s split of `Name: value`: the name is printable characters other
    than `:`, blanks may follow it, then the colon; (None, "") when that fails."""
    end = 0
    while end < len(line) and "!" <= line[end] <= "~" and line[end] != ":":
        end += 1
    rest = line[end:].lstrip(" \t")
    if not end or not rest.startswith(":"):
        return None, ""
    return line[:end], rest[1:]


def strip_comments(text: str) -> str:
    """A header value without its (comments), as sendmail strips them for `$>` checks."""
    return " ".join(address_strip_comments(text).split())


def tk_version() -> str:
    from pysendmail.rules.context import VERSION

    return VERSION


def _first_of(text: str, chars: str) -> int:
    for index, ch in enumerate(text):
        if ch in chars:
            return index
    return -1


def _macro_id_parse(text: str) -> tuple[str | None, str]:
    """sendmail's macid_parse(): a one-letter or `{long}` macro name and what follows."""
    if not text:
        return None, ""
    if text[0] == "{":
        end = text.find("}")
        if end < 0:
            return None, ""
        name = text[1:end]
        if not name:
            return None, ""
        return macro_id(name), text[end + 1 :]
    return macro_id(text[0]), text[1:]


def format_mailer(mailer: Mailer, world: RuleWorld) -> str:
    """One mailer as sendmail's printmailer() writes it for `=M`."""

    def rs(number: int) -> str:
        return world.book.names.get(number, str(number))

    argv = " ".join(tk.xputs(word) for word in mailer.argv)
    flags = "".join(sorted(set(mailer.flags), key=ord))
    text = (
        f"mailer {mailer.number} ({mailer.name}): P={mailer.path} "
        f"S={rs(mailer.se_rwset)}/{rs(mailer.sh_rwset)} "
        f"R={rs(mailer.re_rwset)}/{rs(mailer.rh_rwset)} "
        f"M={mailer.maxsize} U={mailer.uid}:{mailer.gid} F={flags} "
        f"L={mailer.linelimit} E={tk.xputs(mailer.eol)}"
    )
    if mailer.charset is not None:
        text += f" C={mailer.charset}"
    text += (
        f" T={mailer.mtatype or '<undefined>'}/{mailer.addrtype or '<undefined>'}"
        f"/{mailer.diagtype or '<undefined>'} r={mailer.maxrcpt}"
    )
    if mailer.argv:
        text += f" A={argv}"
    return text


def _read_lines(instream: IO[str] | IO[bytes]) -> Iterator[str]:
    """Input lines as sendmail's fgets() with a MAXLINE buffer gives them (long ones split)."""
    limit = tk.MAXLINE - 1
    while True:
        raw = instream.readline(limit)
        if not raw:
            return
        text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        if text.endswith("\n"):
            text = text[:-1]
        yield text


def run_testmode(
    config: Config | CfFile | RuleWorld,
    instream: IO[str] | IO[bytes],
    outstream: IO[str] | IO[bytes],
    *,
    hostname: str | None = None,
    banner: bool = True,
    prompt: bool = True,
    help_file: str | None = None,
    world: RuleWorld | None = None,
    show_version: bool = False,
) -> int:
    """Run -bt over `instream`, writing sendmail's output to `outstream`; the exit status.

    `prompt` is sendmail's behaviour on a terminal (and what the fixtures record); with
    prompt=False each line is echoed as `> line` instead, as sendmail does on a pipe.
    `show_version` prints the `-d0.1` block first (what `sendmail -d0.1 -bt` shows).
    """
    if world is None:
        world = _world_of(config, hostname)
    if help_file is None:
        help_file = world.help_file
    binary = not isinstance(outstream, io.TextIOBase) and "b" in getattr(outstream, "mode", "")

    def write(text: str) -> None:
        if binary:
            outstream.write(text.encode("latin-1", "replace"))  # type: ignore[arg-type]
        else:
            outstream.write(text)  # type: ignore[arg-type]

    session = TestMode(world, write, help_file=help_file)
    if show_version:
        write(version_block(world))
    if banner:
        write(BANNER)
    lines = _read_lines(instream)
    while True:
        if prompt:
            write(PROMPT)
        flush = getattr(outstream, "flush", None)
        if flush is not None:
            flush()
        line = next(lines, None)
        if line is None:
            break
        if not prompt:
            write(f"> {line}\n")
        try:
            if not session.line(line):
                break
        except RecursionError:
            write("rewrite: excessive recursion\n")
    return session.exit_status


def _world_of(config: Config | CfFile | RuleWorld, hostname: str | None) -> RuleWorld:
    if isinstance(config, RuleWorld):
        return config
    if isinstance(config, Config):
        return build_world(config.cf, hostname=hostname or config.hostname, config=config)
    return build_world(config, hostname=hostname)


COMPILED_WITH = (
    " Compiled with: DNSMAP IPV6_FULL LDAPMAP LDAP_NETWORK_TIMEOUT\n"
    "\t\tLDAP_REFERRALS LOG MAP_REGEX MATCHGECOS MAXDAEMONS=64 MILTER\n"
    "\t\tMIME7TO8 MIME8TO7 NAMED_BIND NETINET NETINET6 NETUNIX NEWDB=5.3\n"
    "\t\tNIS NISPLUS PIPELINING SASLv2 SCANF SOCKETMAP STARTTLS\n"
    "\t\tTCPWRAPPERS TLS_EC TLS_VRFY_PER_CTX USERDB USE_LDAP_INIT XDEBUG\n"
)


def version_lines(world: RuleWorld) -> str:
    """The `-d0.1` system identity block (`$w`, `$j`, `$m`, `$k` after readcf)."""

    def value(mid: str) -> str:
        return tk.xputs(tk.expand(world.macros.get(mid, ""), world.macros.get))

    return (
        "============ SYSTEM IDENTITY (after readcf) ============\n"
        f"      (short domain name) $w = {value('w')}\n"
        f"  (canonical domain name) $j = {value('j')}\n"
        f"         (subdomain name) $m = {value('m')}\n"
        f"              (node name) $k = {value('k')}\n"
        "========================================================\n"
    )


def version_block(world: RuleWorld) -> str:
    """What `-d0.1` prints before anything else: the version, the compile options
    (those of the sendmail 8.17 we stand in for) and the system identity after readcf."""
    return f"Version {tk_version()}\n" + COMPILED_WITH + "\n" + version_lines(world) + "\n"


__all__ = [
    "BANNER",
    "TestMode",
    "format_mailer",
    "macro_name",
    "run_testmode",
    "version_block",
    "version_lines",
]
