"""Addresses through the rules: sendmail's parseaddr(), buildaddr(), remotename(),
crackaddr() and setsender(), over a `Rewriter`.

This module owns how an address string becomes a mailer triple (`$#mailer $@host
$:user`, then rulesets 2, the mailer's R= set and 4) and how an address is
rewritten for a mailer (rulesets 3, 1 or 2, the mailer's S=/R= set, 4), with
sendmail's error messages and exit statuses. `-bt` (/parse, /try, /sender), the
SMTP policy and the router share it. Pure: no I/O beyond the callbacks.
"""

from __future__ import annotations

from pysendmail.record import record
from pysendmail.rules import tokenizer as tk
from pysendmail.rules.context import (
    ERROR_MAILER,
    M_CHECKFILE,
    M_CHECKINCLUDE,
    M_CHECKPROG,
    M_CHECKUDB,
    M_HST_UPPER,
    M_LOCALMAILER,
    M_NOCOMMENT,
    M_USR_UPPER,
    Mailer,
    RuleWorld,
)
from pysendmail.rules.engine import EX_OK, EX_TEMPFAIL, Messages, Rewriter, is_enhanced_status
from pysendmail.rules.memo import Reads, still_valid
from pysendmail.rules.tokenizer import CANONHOST, CANONNET, CANONUSER, MACROEXPAND, MAXNAME
from pysendmail.rules.tokenizer import ascii_digits as _ascii_digits
from pysendmail.sysexits import ExitCode

TYPE_CHECKING = False  # typing stays off the import path (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Hashable
    from typing import TypeVar

    T = TypeVar("T")

RF_SENDERADDR = 0x001
RF_HEADERADDR = 0x002
RF_CANONICAL = 0x004
RF_ADDDOMAIN = 0x008

_ERROR_CODES = {
    "usage": int(ExitCode.USAGE),
    "nouser": int(ExitCode.NOUSER),
    "nohost": int(ExitCode.NOHOST),
    "unavailable": int(ExitCode.UNAVAILABLE),
    "software": int(ExitCode.SOFTWARE),
    "tempfail": int(ExitCode.TEMPFAIL),
    "protocol": int(ExitCode.PROTOCOL),
    "config": int(ExitCode.CONFIG),
}


@record
class ParsedAddress:
    """What parseaddr() leaves in an ADDRESS: the mailer, host and user, and its state."""

    mailer: Mailer
    host: str | None
    user: str
    bad: bool = False
    queue_up: bool = False
    status: str | None = None  # the DSN status from an error triple
    not_remote: bool = False


def dsn_to_exit(dsn: str) -> int:
    """sendmail's dsntoexitstat(): an enhanced status code as a sysexits value."""
    if dsn.startswith("2"):
        return int(ExitCode.OK)
    if dsn.startswith("4"):
        return int(ExitCode.TEMPFAIL)
    if not dsn.startswith("5") or dsn[1:2] != ".":
        return int(ExitCode.CONFIG)
    parts = dsn[2:].split(".")
    code2 = _atoi(parts[0])
    code3 = _atoi(parts[1]) if len(parts) > 1 else 0
    table = {
        0: {None: ExitCode.UNAVAILABLE},
        1: {
            0: ExitCode.DATAERR,
            1: ExitCode.NOUSER,
            6: ExitCode.NOUSER,
            2: ExitCode.NOHOST,
            3: ExitCode.USAGE,
            4: ExitCode.NOUSER,
            5: ExitCode.OK,
        },
        2: {
            0: ExitCode.UNAVAILABLE,
            1: ExitCode.UNAVAILABLE,
            2: ExitCode.UNAVAILABLE,
            4: ExitCode.UNAVAILABLE,
            3: ExitCode.DATAERR,
        },
        3: {None: ExitCode.OSERR},
        4: {None: ExitCode.UNAVAILABLE},
        5: {None: ExitCode.PROTOCOL},
        6: {None: ExitCode.UNAVAILABLE},
        7: {None: ExitCode.DATAERR},
    }
    row = table.get(code2)
    if row is None:
        return int(ExitCode.UNAVAILABLE)
    if None in row:
        return int(row[None])
    return int(row.get(code3, ExitCode.UNAVAILABLE))


def _atoi(text: str) -> int:
    digits = ""
    for ch in text:
        if not _ascii_digits(ch):
            break
        digits += ch
    return int(digits) if digits else 0


def _is_smtp_reply(text: str) -> bool:
    return (
        len(text) >= 3
        and _ascii_digits(text[:3])
        and text[0] in "2345"
        and (len(text) == 3 or text[3] in " -")
    )


class AddressRules:
    """parseaddr() and friends over one Rewriter (its macros, messages and trace)."""

    def __init__(self, world: RuleWorld, rewriter: Rewriter) -> None:
        self.world = world
        self.rw = rewriter
        self.messages = rewriter.messages

    # ------------------------------------------------------------ scanning

    def scan(self, text: str, delim: str = "\0", table: tuple[int, ...] | None = None) -> tk.Scan:
        """prescan() with sendmail's e_to set to the text while it scans."""
        saved = self.messages.to
        self.messages.to = text
        scanned = tk.prescan(
            text,
            delim,
            table if table is not None else self.world.tables.address,
            report=self.messages.usrerr,
        )
        self.messages.to = saved
        return scanned

    def invalid(self, addr: str, is_rcpt: bool) -> bool:
        """sendmail's invalidaddr(): 8-bit (0x80-0x9f) characters and overlong addresses."""
        bad = False
        for index, ch in enumerate(addr):
            if (ord(ch) & 0o340) == 0o200:
                self.messages.setstat(int(ExitCode.USAGE))
                bad = True
            if index + 1 > MAXNAME - 1:
                self.messages.usrerr(
                    f'553 5.1.0 Address "{addr[:index]}" too long ({MAXNAME - 1} bytes max)'
                )
                return True
        if bad:
            cleaned = "".join("?" if (ord(c) & 0o340) == 0o200 else c for c in addr)
            code = "5.1.3" if is_rcpt else "5.1.7"
            self.messages.usrerr(f'501 {code} 8-bit character in mailbox address "{cleaned}"')
        return bad

    # ------------------------------------------------------------ parseaddr

    def parseaddr(
        self, addr: str, flags: int = 0, delim: str = "\0", is_rcpt: bool = True
    ) -> ParsedAddress | None:
        """An address resolved to its mailer, host and user (None when it cannot be scanned)."""
        self.messages.to = addr
        scanned = self.scan(addr, delim)
        if scanned.tokens is None:
            return None
        end = scanned.end if delim != "\0" else len(addr)
        if self.invalid(addr[:end] if delim != "\0" else addr, is_rcpt):
            return None
        pvp = scanned.tokens
        queue_up = False
        if self.rw.rewrite(pvp, 3) == EX_TEMPFAIL:
            queue_up = True
        if self.rw.rewrite(pvp, 0) == EX_TEMPFAIL:
            queue_up = True
        parsed = self.buildaddr(pvp, flags)
        if queue_up and not parsed.bad:
            self.messages.usrerr("Transient parse error -- message queued for future delivery")
            parsed.queue_up = True
            parsed.status = "4.4.3"
        return parsed

    def buildaddr(self, pvp: list[str], flags: int) -> ParsedAddress:
        """A resolved triple (`$#mailer $@host $:user`) as an address, errors reported."""
        if not pvp or pvp[0][:1] != CANONNET:
            self.messages.syserr("554 5.3.5 buildaddr: no mailer in parsed address")
            return self._bad()
        tv = 1
        mname = pvp[tv] if tv < len(pvp) else ""
        tv += 1
        hostp: int | None = None
        if tv < len(pvp) and pvp[tv][:1] == CANONHOST:
            tv += 1
            hostp = tv
        while tv < len(pvp) and pvp[tv][:1] != CANONUSER:
            tv += 1
        if tv >= len(pvp):
            self.messages.syserr("554 5.3.5 buildaddr: no user")
            return self._bad()
        hbuf = ""
        if hostp == tv:
            hostp = None
        elif hostp is not None:
            hbuf = self.rw.cat(pvp[hostp:tv])
        tv += 1
        ubuf = self.rw.cat(pvp[tv:], " ")

        if mname.lower() == "error":
            return self._error_triple(hostp is not None, hbuf, ubuf)

        mailer = self.world.mailer(mname)
        if mailer is None:
            self.messages.syserr(f"554 5.3.5 buildaddr: unknown mailer {mname}")
            return self._bad()
        host: str | None = hbuf if hostp is not None else None
        if hostp is None and not mailer.has(M_LOCALMAILER):
            self.messages.syserr("554 5.3.5 buildaddr: no host")
            return self._bad()
        not_remote = False
        p = ubuf
        if mailer.has(M_CHECKUDB) and p.startswith("@"):
            p = p[1:]
            tv += 1
            not_remote = True
        if p.startswith('"'):
            p = p[1:]
        if p.startswith("|") and mailer.has(M_CHECKPROG):
            mailer = self.world.mailers[0]
        elif p.startswith("/") and mailer.has(M_CHECKFILE):
            mailer = self.world.mailers[1]
        elif p.startswith(":") and mailer.has(M_CHECKINCLUDE):
            stripped = _stripquotes(ubuf)
            if stripped[:9].lower() == ":include:":
                return ParsedAddress(self.world.mailers[2], host, stripped[9:])
        if host is not None:
            self.rw.macros["h"] = host
        else:
            self.rw.macros.pop("h", None)
        rest = pvp[tv:]
        if self.world.config_level >= 10 or not flags & (RF_SENDERADDR | RF_HEADERADDR):
            self.rw.rewrite(rest, 2)
            if mailer.re_rwset > 0:
                self.rw.rewrite(rest, mailer.re_rwset)
        self.rw.rewrite(rest, 4)
        user = self.rw.cat(rest)
        if host is not None and not mailer.has(M_HST_UPPER):
            host = host.lower()
        if not mailer.has(M_USR_UPPER):
            user = user.lower()
        return ParsedAddress(mailer, host, user, not_remote=not_remote)

    def _bad(self) -> ParsedAddress:
        tempfail = self.messages.exit_stat == EX_TEMPFAIL
        return ParsedAddress(ERROR_MAILER, None, "", bad=not tempfail, queue_up=tempfail)

    def _error_triple(self, has_host: bool, hbuf: str, ubuf: str) -> ParsedAddress:
        parsed = ParsedAddress(ERROR_MAILER, hbuf if has_host else None, ubuf, bad=True)
        if has_host:
            if "." in hbuf:
                parsed.status = hbuf
                self.messages.setstat(dsn_to_exit(hbuf))
            elif _ascii_digits(hbuf[:1]):
                self.messages.setstat(_atoi(hbuf))
            else:
                self.messages.setstat(_ERROR_CODES.get(hbuf.lower(), int(ExitCode.UNAVAILABLE)))
        else:
            self.messages.setstat(int(ExitCode.UNAVAILABLE))
        text = _stripquotes(ubuf)
        if _is_smtp_reply(text) and text[3:4] == " ":
            enh = is_enhanced_status(text[4:], " ")
            if enh:
                self.messages.usrerr(text)
            elif is_enhanced_status(hbuf, "\0"):
                self.messages.usrerr(f"{text[:3]} {hbuf} {text[4:]}")
            else:
                self.messages.usrerr(text)
            if text.startswith("4"):
                parsed.queue_up = True
                parsed.bad = False
        else:
            self.messages.usrerr(f"553 5.3.0 {text}")
        if self.messages.exit_stat == EX_TEMPFAIL:
            parsed.queue_up = True
            parsed.bad = False
        return parsed

    # ------------------------------------------------------------ remotename

    def remotename(self, name: str, mailer: Mailer, flags: int) -> tuple[str, int]:
        """An address as it is presented to `mailer` (sendmail's remotename()), and Rcode."""
        status = EX_OK
        if flags & RF_SENDERADDR:
            rwset = mailer.sh_rwset if flags & RF_HEADERADDR else mailer.se_rwset
            kind = "s"
        else:
            rwset = mailer.rh_rwset if flags & RF_HEADERADDR else mailer.re_rwset
            kind = "r"
        if rwset < 0:
            return name, status
        self.rw.macros[tk.macro_id("addr_type")] = (
            "h" if flags & RF_HEADERADDR else "e"
        ) + f" {kind}"
        if flags & RF_CANONICAL or mailer.has(M_NOCOMMENT):
            fancy = MACROEXPAND + "g"
        else:
            fancy = crackaddr(name, self.world.must_quote)
        scanned = self.scan(name)
        if scanned.tokens is None:
            return name, status
        pvp = scanned.tokens
        if self.rw.rewrite(pvp, 3) == EX_TEMPFAIL:
            status = EX_TEMPFAIL
        if self.rw.rewrite(pvp, 1 if flags & RF_SENDERADDR else 2) == EX_TEMPFAIL:
            status = EX_TEMPFAIL
        if rwset > 0 and self.rw.rewrite(pvp, rwset) == EX_TEMPFAIL:
            status = EX_TEMPFAIL
        if self.rw.rewrite(pvp, 4) == EX_TEMPFAIL:
            status = EX_TEMPFAIL
        lbuf = self.rw.cat(pvp)
        saved = self.rw.macros.get("g")
        self.rw.macros["g"] = lbuf
        try:
            if flags & RF_CANONICAL and lbuf.startswith("@"):
                result = tk.expand("<" + MACROEXPAND + "g>", self.rw.macros.get)
            else:
                result = tk.expand(fancy, self.rw.macros.get)
        finally:
            if saved is None:
                self.rw.macros.pop("g", None)
            else:
                self.rw.macros["g"] = saved
        return result[:MAXNAME_I], status


MAXNAME_I = 1024 * 4


# parseaddr() outcomes a world's users keep (see kept_parse); beyond that many, afresh.
KEPT_PARSES = 4096
_HOST_MACRO = tk.macro_id("h")


def kept_parse(
    world: RuleWorld,
    kept: dict[Hashable, tuple[T, Reads]],
    key: Hashable,
    compute: Callable[[AddressRules], T],
) -> T:
    """What `compute` makes of a fresh AddressRules (a parseaddr() and what it leaves),
    kept in `kept` under `key` with everything its rulesets read (macros, map stamps) and
    given again while all of that is unchanged, as rules/memo.py does for one ruleset
    call: the same answer without parseaddr()'s scanning and its dozen remembered calls.

    Nothing is kept for a world that remembers nothing (-bt), for an outcome whose
    rules wrote a message or set a macro, or that consulted a map without a version.
    `$h`, which buildaddr() sets from the address itself before rulesets 2 and 4 read
    it, is not part of what an outcome depends on."""
    if world.memo is None:
        return compute(AddressRules(world, world.rewriter(messages=Messages())))
    found = kept.get(key)
    if found is not None and still_valid(found[1], world.macros):
        return found[0]
    rules = AddressRules(world, world.rewriter(messages=Messages()))
    reads = Reads()
    rules.rw._reads.append(reads)
    try:
        outcome = compute(rules)
    finally:
        rules.rw._reads.pop()
    if not (reads.tainted or reads.written or rules.messages.raw):
        reads.macros.pop(_HOST_MACRO, None)
        if len(kept) >= KEPT_PARSES:
            kept.clear()
        kept[key] = (outcome, reads)
    return outcome


def _stripquotes(text: str) -> str:
    from pysendmail.rules.engine import stripquotes

    return stripquotes(text)


def crackaddr(addr: str, must_quote: str = "@,;:\\()[].'") -> str:
    """sendmail's crackaddr(): the address's comment and phrase kept, the address as `$g`."""
    size = MAXNAME + 1
    bufend = size - 1
    buflim = bufend
    buf: list[str] = []

    def room() -> bool:
        return len(buf) < buflim and buflim <= bufend

    def put(ch: str) -> None:
        if room():
            buf.append(ch)

    i = 0
    n = len(addr)
    while i < n and addr[i] in " \t\n\r\f\v":
        put(addr[i])
        i += 1
    bufhead = len(buf)
    addr_start = i
    p = i
    addrhead = i
    copylev = anglelev = cmtlev = realcmtlev = bracklev = 0
    qmode = realqmode = addangle = False
    putgmac = quoteit = gotangle = gotcolon = False

    def char_at(k: int) -> str:
        return addr[k] if k < n else "\0"

    while p < n:
        c = addr[p]
        p += 1
        if copylev > 0:
            put(c)
        goto_putg = False
        if c == "\\":
            if cmtlev <= 0 and not qmode:
                quoteit = True
            c = char_at(p)
            p += 1
            if c == "\0":
                p -= 1
                goto_putg = True
            else:
                if copylev > 0:
                    put(c)
                goto_putg = True
        if not goto_putg:
            if c == '"' and cmtlev <= 0:
                qmode = not qmode
                if copylev > 0 and room():
                    buflim += -1 if realqmode else 1
                    realqmode = not realqmode
                continue
            if qmode:
                goto_putg = True
        if not goto_putg:
            if c == "(":
                cmtlev += 1
                if room():
                    buflim -= 1
                    realcmtlev += 1
                    copylev += 1
                    if copylev <= 1:
                        if len(buf) != bufhead:
                            put(" ")
                        put(c)
            if cmtlev > 0:
                if c == ")":
                    cmtlev -= 1
                    copylev -= 1
                    if room():
                        realcmtlev -= 1
                        buflim += 1
                continue
            elif c == ")" and copylev > 0 and room() and len(buf) > bufhead:
                buf.pop()
            if c == "[":
                bracklev += 1
            elif c == "]":
                bracklev -= 1
            if c == ":" and anglelev <= 0 and bracklev <= 0 and not gotcolon:
                nxt = char_at(p)
                if nxt in (":", "."):
                    if cmtlev <= 0 and not qmode:
                        quoteit = True
                    if copylev > 0:
                        put(c)
                        put(nxt)
                    p += 1
                    goto_putg = True
                else:
                    gotcolon = True
                    del buf[bufhead:]
                    if quoteit:
                        put('"')
                        p -= 1
                        while p > addr_start:
                            p -= 1
                            if addr[p] not in " \t\n\r\f\v":
                                break
                        p += 1
                    for q in range(addrhead, p):
                        ch = addr[q]
                        if quoteit and ch == '"':
                            put("\\")
                        put(ch)
                    if quoteit:
                        if len(buf) == bufhead + 1:
                            buf.pop()
                        else:
                            put('"')
                        while p < n:
                            ch = addr[p]
                            p += 1
                            put(ch)
                            if ch == ":":
                                break
                    while p < n and addr[p] in " \t\n\r\f\v":
                        put(addr[p])
                        p += 1
                    copylev = 0
                    putgmac = quoteit = False
                    bufhead = len(buf)
                    addrhead = p
                    continue
        if not goto_putg:
            if c == ";" and copylev <= 0:
                put(c)
            if c in must_quote and cmtlev <= 0 and not qmode:
                quoteit = True
            if c == "<":
                if gotangle:
                    quoteit = True
                gotangle = True
                anglelev = 1
                if room():
                    if not addangle:
                        buflim -= 1
                    addangle = True
                del buf[bufhead:]
                if quoteit:
                    put('"')
                    p -= 1
                    while p > addr_start:
                        p -= 1
                        if addr[p] not in " \t\n\r\f\v":
                            break
                    p += 1
                for q in range(addrhead, p):
                    ch = addr[q]
                    if quoteit and ch == '"':
                        put("\\")
                        put(ch)
                    else:
                        put(ch)
                if quoteit:
                    if len(buf) == 1:
                        buf.pop()
                    else:
                        put('"')
                    while p < n:
                        ch = addr[p]
                        p += 1
                        put(ch)
                        if ch == "<":
                            break
                copylev = 0
                putgmac = quoteit = False
                continue
            if c == ">":
                if anglelev > 0:
                    anglelev -= 1
                    if room():
                        if addangle:
                            buflim += 1
                        addangle = False
                elif room():
                    if copylev > 0 and len(buf) > bufhead:
                        buf.pop()
                    quoteit = True
                    continue
                copylev += 1
                if copylev <= 1:
                    put(c)
                continue
        # putg: a real address character
        if copylev <= 0 and not putgmac:
            if buf and buf[-1] == ")":
                put(" ")
            put(MACROEXPAND)
            put("g")
            putgmac = True
    if realqmode and len(buf) < bufend:
        buf.append('"')
    while realcmtlev > 0 and len(buf) < bufend:
        buf.append(")")
        realcmtlev -= 1
    if addangle and len(buf) < bufend:
        buf.append(">")
    if len(buf) < bufend:
        return "".join(buf)
    return MACROEXPAND + "g"
