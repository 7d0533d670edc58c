"""The rewriting-rule engine: sendmail's rewrite() over compiled rulesets.

This module owns what a ruleset does to a token list: LHS matching (`$*` with
backtracking, `$+`, `$-`, `$@`, `$=X`/`$~X` with members of several tokens,
`$&X`, literals without regard to case), RHS substitution (`$1`-`$9`, `$:`
once, `$@` return, `$&X`), `$[ ... $]` and `$( map key $@ arg $: default $)`
lookups through injected maps, `$>` subroutine calls, and the limits (100
rewrites of one rule, recursion depth, expansion length) with sendmail's
messages. It also compiles the `R` lines of a cf into token lists.

It is pure: no files, no sockets. Maps and the host lookup are objects handed in;
trace lines (`canonify input: ...`) and error messages go to callbacks. Bad input
never raises: a broken rule or address yields sendmail's status code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Protocol

from pysendmail.record import field, record
from pysendmail.rules import tokenizer as tk
from pysendmail.rules.memo import STATIC, Reads, RuleMemo
from pysendmail.rules.tokenizer import (
    CALLSUBR,
    CANONHOST,
    CANONNET,
    CANONUSER,
    CONDFI,
    CONDIF,
    HOSTBEGIN,
    HOSTEND,
    LOOKUPBEGIN,
    LOOKUPEND,
    MACRODEXPAND,
    MATCHANY,
    MATCHCLASS,
    MATCHNCLASS,
    MATCHONE,
    MATCHREPL,
    MATCHZANY,
    MATCHZERO,
    MAXATOM,
    TokenTables,
)
from pysendmail.rules.tokenizer import ascii_digits as _ascii_digits
from pysendmail.sysexits import ExitCode

MAXRWSETS = 200  # numbered sets are 0..99, named ones count down from 199
MAX_RULE_RECURSION = 50
MAX_SUBR = 50
MAX_LOOP = 100
MAX_MAP_ARGS = 10
MAXMATCH = 9

EX_OK = int(ExitCode.OK)
EX_USAGE = int(ExitCode.USAGE)
EX_DATAERR = int(ExitCode.DATAERR)
EX_SOFTWARE = int(ExitCode.SOFTWARE)
EX_TEMPFAIL = int(ExitCode.TEMPFAIL)
EX_CONFIG = int(ExitCode.CONFIG)

_SMTP_CODES_WITH_TO = ("050", "250", "252", "450", "550", "553")
_FUZZY = (MATCHZANY, MATCHANY, MATCHONE, MATCHCLASS, MATCHNCLASS)

# What each LHS token asks of the workspace, decided once per rule (CompiledRule.ops).
OP_LITERAL, OP_ZANY, OP_ZERO, OP_ANY, OP_ONE, OP_CLASS, OP_NCLASS, OP_MACRO = range(8)
_ANYTHING = (OP_ZANY,)  # an LHS of `$*` alone
RHS_TOKEN, RHS_SLOT, RHS_MACRO = range(3)
_OPS = {
    MATCHZANY: OP_ZANY,
    MATCHZERO: OP_ZERO,
    MATCHANY: OP_ANY,
    MATCHONE: OP_ONE,
    MATCHCLASS: OP_CLASS,
    MATCHNCLASS: OP_NCLASS,
    MACRODEXPAND: OP_MACRO,
}


def is_enhanced_status(text: str, delim: str) -> int:
    """sendmail's isenhsc(): the length of a leading `x.y.z` followed by `delim`, else 0."""
    i = 0
    n = len(text)
    if n < 5 or text[0] not in "245" or text[1] != ".":
        return 0
    i = 2
    start = i
    while i < n and _ascii_digits(text[i]):
        i += 1
    if i == start or i - start > 3 or i >= n or text[i] != ".":
        return 0
    i += 1
    start = i
    while i < n and _ascii_digits(text[i]):
        i += 1
    if i == start or i - start > 3:
        return 0
    if delim == "\0":
        return i if i == n else 0
    return i if i < n and text[i] == delim else 0


class Messages:
    """sendmail's usrerr()/syserr()/setstat(): the message lines and the exit status.

    `emit` receives each message as -bt prints it (`addr... text`, codes stripped).
    """

    def __init__(self, emit: Callable[[str], None] | None = None) -> None:
        self.emit = emit
        self.to: str | None = None
        self.exit_stat = EX_OK
        self.lines: list[str] = []
        self.raw: list[str] = []  # the messages as given, SMTP codes kept

    def _format(self, message: str, default_code: str) -> str:
        code = default_code
        if len(message) >= 4 and _ascii_digits(message[:3]) and message[3] in " -":
            code = message[:3]
            message = message[4:]
        enh = is_enhanced_status(message, " ")
        if enh:
            message = message[enh + 1 :]
        prefix = ""
        if self.to and code in _SMTP_CODES_WITH_TO:
            prefix = tk.shortenstring(self.to) + "... "
        return "".join(chr(ord(c) & 0x7F) for c in prefix + message)

    def _put(self, text: str) -> None:
        self.lines.append(text)
        if self.emit is not None:
            self.emit(text)

    def usrerr(self, message: str) -> None:
        self.raw.append(message)
        self._put(self._format(message, "501"))

    def syserr(self, message: str) -> None:
        self.raw.append(message)
        self._put(self._format(message, "554"))
        if self.exit_stat == EX_OK:
            self.exit_stat = EX_SOFTWARE

    def setstat(self, status: int) -> None:
        if self.exit_stat in (EX_OK, EX_TEMPFAIL):
            self.exit_stat = status


class RuleMap(Protocol):
    """What the engine needs of a map: lookup() and two flags that change the key."""

    spacesub: str | None  # None: the cf's BlankSub
    keep_quotes: bool
    defer_tempfail: bool  # False with -q: a temporary failure does not defer

    def lookup(self, key: str, args: Sequence[str]) -> tuple[str | None, int]:
        """(replacement or None, sysexits status) for `key`; args[0] is the key."""
        ...

    def memo_stamp(self) -> object | None:
        """What the map's answers depend on that may change (None: do not remember
        answers that used this map). See rules/memo.py."""
        ...


@record(frozen=True)
class CompiledRule:
    lhs: tuple[str, ...]
    rhs: tuple[str, ...]
    where: str = ""  # file:line, for messages
    # What any matching workspace must hold, to skip most rules without matching:
    literals: frozenset[str] = field(init=False, default=frozenset())
    min_tokens: int = field(init=False, default=0)
    # The LHS with literal tokens in ASCII lower case, compared with the lowered workspace.
    folded: tuple[str, ...] = field(init=False, default=(), compare=False, repr=False)
    # The OP_* of each LHS token, and its class or macro id (the token's second character).
    ops: tuple[int, ...] = field(init=False, default=(), compare=False, repr=False)
    ids: tuple[str, ...] = field(init=False, default=(), compare=False, repr=False)
    # Whether the RHS starts with `$:` (apply once) or `$@` (apply and return).
    once: bool = field(init=False, default=False, compare=False, repr=False)
    last: bool = field(init=False, default=False, compare=False, repr=False)
    # The folded literal the workspace must start (end) with, when the LHS starts (ends)
    # with a literal: no binding can move it.
    head: str | None = field(init=False, default=None, compare=False, repr=False)
    tail: str | None = field(init=False, default=None, compare=False, repr=False)
    # The RHS after its `$:`/`$@`, each token as (RHS_*, token or slot or macro id, folded
    # token or the slot's digit); whether it substitutes ($1, $&x) and whether its own
    # tokens open a lookup or call a ruleset.
    plan: tuple[tuple[int, str | int, str], ...] = field(
        init=False, default=(), compare=False, repr=False
    )
    substitutes: bool = field(init=False, default=False, compare=False, repr=False)
    rhs_lookup: bool = field(init=False, default=False, compare=False, repr=False)
    rhs_call: bool = field(init=False, default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folded", tuple(_casefold_ascii(t) for t in self.lhs))
        object.__setattr__(self, "ops", tuple(_OPS.get(t[:1], OP_LITERAL) for t in self.lhs))
        object.__setattr__(self, "ids", tuple(t[1:2] for t in self.lhs))
        head = self.rhs[0][:1] if self.rhs else ""
        object.__setattr__(self, "once", head == CANONUSER)
        object.__setattr__(self, "last", head == CANONHOST)
        if self.ops and self.ops[0] == OP_LITERAL:
            object.__setattr__(self, "head", self.folded[0])
        if self.ops and self.ops[-1] == OP_LITERAL:
            object.__setattr__(self, "tail", self.folded[-1])
        plan: list[tuple[int, str | int, str]] = []
        for token in self.rhs[1:] if self.once or self.last else self.rhs:
            kind = token[:1]
            if kind == MATCHREPL:
                plan.append((RHS_SLOT, ord(token[1:2] or "0") - ord("1"), token[1:2]))
            elif kind == MACRODEXPAND:
                plan.append((RHS_MACRO, token[1:2], ""))
            else:
                plan.append((RHS_TOKEN, token, _casefold_ascii(token)))
        object.__setattr__(self, "plan", tuple(plan))
        object.__setattr__(self, "substitutes", any(kind != RHS_TOKEN for kind, *_ in plan))
        heads = {token[:1] for token in self.rhs}
        object.__setattr__(self, "rhs_lookup", bool(heads & {HOSTBEGIN, LOOKUPBEGIN}))
        object.__setattr__(self, "rhs_call", CALLSUBR in heads)
        literals = set()
        needed = 0
        for token in self.lhs:
            head = token[:1]
            if head in (MATCHZANY, MATCHZERO, MACRODEXPAND):
                continue
            needed += 1
            if head not in _FUZZY:
                literals.add(_casefold_ascii(token))
        object.__setattr__(self, "literals", frozenset(literals))
        object.__setattr__(self, "min_tokens", needed)


@record
class RuleBook:
    """All rulesets of a configuration: rules by number, names both ways."""

    rules: dict[int, tuple[CompiledRule, ...]] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    next_named: int = MAXRWSETS
    # find()'s answers by text; emptied whenever enter() names a ruleset.
    found: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def enter(self, name: str | None, number: int | None) -> int:
        """strtorwset(ST_ENTER): the number of a ruleset, making it if new."""
        self.found.clear()
        if name is None:
            assert number is not None
            return number
        if name in self.numbers:
            found = self.numbers[name]
            if number is not None and number != found:
                self.numbers[name] = number
                self.names[number] = name
                return number
            return found
        if number is None:
            self.next_named -= 1
            number = self.next_named
        self.numbers[name] = number
        self.names[number] = name
        return number

    def find(self, text: str) -> int:
        """strtorwset(ST_FIND): the number of the ruleset named (or numbered) by `text`, or -1."""
        known = self.found.get(text)
        if known is None:
            known = self.found[text] = self._find(text)
        return known

    def _find(self, text: str) -> int:
        text = text.lstrip()
        if not text:
            return -1
        if _ascii_digits(text[0]):
            digits = ""
            for ch in text:
                if not _ascii_digits(ch):
                    break
                digits += ch
            number = int(digits)
            return number if number < MAXRWSETS // 2 else -1
        end = 0
        while end < len(text) and text[end].isascii() and (text[end].isalnum() or text[end] == "_"):
            end += 1
        name = text[:end]
        if not name or not (name[0].isalpha() or name[0] == "_"):
            return -1
        return self.numbers.get(name, -1)

    def display_name(self, number: int) -> str:
        return self.names.get(number, str(number))


def compile_side(text: str, tables: TokenTables, lookup: tk.MacroLookup) -> list[str] | None:
    """One side of an `R` line as readcf() keeps it: `$` translated, macros expanded, scanned."""
    expanded = tk.expand(tk.translate_dollars(text), lookup)
    return tk.prescan(expanded, "\t", tables.no_comments, ignore=True).tokens


_LHS_BOTCH = {
    MATCHREPL: "$1-$9",
    CANONUSER: "$:",
    CALLSUBR: "$>",
    CONDIF: "$?",
    CONDFI: "$.",
    HOSTBEGIN: "$[",
    HOSTEND: "$]",
    LOOKUPBEGIN: "$(",
    LOOKUPEND: "$)",
}
_RHS_BOTCH = {MATCHZANY: "$*", MATCHANY: "$+", MATCHONE: "$-", MATCHCLASS: "$=", MATCHNCLASS: "$~"}


def compile_rule(
    lhs_text: str,
    rhs_text: str,
    tables: TokenTables,
    lookup: tk.MacroLookup,
    complain: Callable[[str], None],
    where: str = "",
) -> CompiledRule:
    """An `R` line's two sides as token tuples, with readcf()'s checks reported to `complain`."""
    lhs = compile_side(lhs_text, tables, lookup)
    nfuzzy = 0
    if lhs is None:
        complain("R line: null LHS")
        lhs = []
    for token in lhs:
        if token[:1] in _FUZZY:
            nfuzzy += 1
        botch = _LHS_BOTCH.get(token[:1])
        if botch is not None:
            complain(f"Inappropriate use of {botch} on LHS")
    if nfuzzy > MAXMATCH:
        complain("R line: too many wildcards")
        lhs = []
    rhs = compile_side(rhs_text, tables, lookup)
    if rhs is None:
        complain("R line: null RHS")
        rhs = []
    in_map = False
    for token in rhs:
        head = token[:1]
        if head == MATCHREPL:
            digit = token[1:2]
            if not digit or digit <= "0" or ord(digit) > ord("0") + nfuzzy:
                complain(f"replacement ${digit} out of bounds")
        elif head in (HOSTBEGIN, LOOKUPBEGIN):
            if in_map:
                complain("cannot nest map lookups")
            in_map = True
        elif head in (HOSTEND, LOOKUPEND):
            in_map = False
        botch = _RHS_BOTCH.get(head)
        if botch is not None:
            complain(f"Inappropriate use of {botch} on RHS")
    return CompiledRule(tuple(lhs), tuple(rhs), where)


def stripquotes(text: str) -> str:
    """sendmail's stripquotes(): drop unescaped double quotes and the backslashes."""
    if '"' not in text and "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "\\":
            if i < n:
                out.append(text[i])
                i += 1
            continue
        if ch == '"':
            continue
        out.append(ch)
    return "".join(out)


class Rewriter:
    """Runs rulesets over token lists, as sendmail's rewrite() and callsubr()."""

    def __init__(
        self,
        book: RuleBook,
        *,
        tables: TokenTables,
        space_sub: str,
        classes: Mapping[str, frozenset[str] | set[str]],
        maps: Mapping[str, RuleMap],
        macros: MutableMapping[str, str],
        messages: Messages | None = None,
        trace: Callable[[str], None] | None = None,
        memo: RuleMemo | None = None,
        private_macros: bool = False,
    ) -> None:
        self.book = book
        self.tables = tables
        self.space_sub = space_sub
        self.classes = classes
        self.maps = maps
        self.macros = macros
        self.messages = messages if messages is not None else Messages()
        self.trace = trace
        # A traced call must print every line each time: nothing is remembered then.
        self.memo = memo if trace is None else None
        # True when nothing reads `macros` after the outermost rewrite() returns (a check
        # ruleset run by rules/checks.py): then a macro that call sets dies with it, and
        # its result may be remembered all the same; anywhere else a call that sets a
        # macro (the `macro` map) is run every time, for its effect.
        self.private_macros = private_macros
        self._reads: list[Reads] = []  # what each call being remembered has read so far
        self._longest: dict[str, tuple[int, int]] = {}  # class id -> (members, longest)

    # ------------------------------------------------------------ helpers

    def macvalue(self, mid: str) -> str | None:
        value = self.macros.get(mid)
        if self._reads:
            self._reads[-1].read(mid, value)
        return value

    def in_class(self, word: str, class_id: str) -> bool:
        members = self.classes.get(class_id)
        return members is not None and word.lower() in members

    def cat(self, tokens: Iterable[str], spacesub: str | None = None) -> str:
        return tk.cataddr(tokens, spacesub or self.space_sub, self.tables.address)

    def _trace(self, what: str, name: str, tokens: Sequence[str]) -> None:
        if self.trace is not None:
            self.trace(f"{name[:16]:<16} {what}{tk.printav(tokens)}")

    # ------------------------------------------------------------ rewrite()

    def rewrite(
        self, pvp: list[str], ruleset: int, reclevel: int = 0, maxatom: int = MAXATOM
    ) -> int:
        """Rewrite `pvp` in place through `ruleset`; the sysexits status (EX_OK normally)."""
        memo = self.memo
        if memo is None:
            return self._rewrite(pvp, ruleset, reclevel, maxatom)
        key = (ruleset, reclevel, maxatom, *pvp)
        private = reclevel == 0 and self.private_macros
        found = memo.get(key, self.macros, private)
        if found is not None:
            pvp[:] = found.tokens
            if self._reads:
                self._reads[-1].merge(found.reads)
            return found.status
        reads = Reads()
        messages = self.messages
        said = len(messages.raw)
        exit_stat = messages.exit_stat
        self._reads.append(reads)
        try:
            status = self._rewrite(pvp, ruleset, reclevel, maxatom)
        finally:
            self._reads.pop()
        if len(messages.raw) != said or messages.exit_stat != exit_stat:
            reads.tainted = True
        if not reads.tainted and (private or not reads.written):
            memo.put(key, tuple(pvp), status, reads)
        if self._reads:
            self._reads[-1].merge(reads)
        return status

    def _rewrite(self, pvp: list[str], ruleset: int, reclevel: int, maxatom: int) -> int:
        if ruleset < 0 or ruleset >= MAXRWSETS:
            self.messages.syserr(f"554 5.3.5 rewrite: illegal ruleset number {ruleset}")
            return EX_CONFIG
        rulename = self.book.display_name(ruleset)
        if self.trace is not None:
            self._trace("  input:", rulename, pvp)
        if reclevel > MAX_RULE_RECURSION:
            self.messages.syserr(
                f"rewrite: excessive recursion (max {MAX_RULE_RECURSION}), ruleset {rulename}"
            )
            return EX_CONFIG
        reclevel += 1
        rstat = EX_OK
        rules = self.book.rules.get(ruleset, ())
        nrules = len(rules)
        index = 0
        loopcount = 0
        lowered = _lowered(pvp)
        present = set(lowered)
        size = len(pvp)
        first = lowered[0] if size else None
        final = lowered[-1] if size else None
        done = bool(pvp) and pvp[0][:1] == CANONNET
        match = self._match
        while index < nrules and not done:
            rule = rules[index]
            loopcount += 1
            if loopcount > MAX_LOOP:
                self.messages.syserr(
                    f"554 5.3.5 Infinite loop in ruleset {rulename}, rule {index + 1}"
                )
                break
            head = rule.head
            tail = rule.tail
            if (
                rule.min_tokens > size
                or (head is not None and head != first)
                or (tail is not None and tail != final)
                or not rule.literals <= present
                or (matches := match(rule, pvp, lowered)) is None
            ):
                index += 1
                loopcount = 0
                continue
            if rule.once:
                index += 1
                loopcount = 0
            npvp: list[str] = []
            nlowered: list[str] = []  # npvp's tokens folded, as they come
            for kind, value, folded in rule.plan:
                if kind == RHS_TOKEN:
                    if len(npvp) >= maxatom:
                        return self._toolong()
                    npvp.append(value)  # type: ignore[arg-type]
                    nlowered.append(folded)
                elif kind == RHS_SLOT:
                    if value < 0 or value >= len(matches):  # type: ignore[operator]
                        self.messages.syserr(
                            f"554 5.3.5 rewrite: ruleset {rulename}: "
                            f"replacement ${folded} out of bounds"
                        )
                        return EX_CONFIG
                    m = matches[value]  # type: ignore[index]
                    npvp.extend(pvp[m[1] : m[2] + 1])
                    nlowered.extend(lowered[m[1] : m[2] + 1])
                    if len(npvp) > maxatom:
                        return self._toolong()
                else:
                    macro = self.macvalue(value)  # type: ignore[arg-type]
                    if not macro:
                        continue
                    scanned = tk.prescan(
                        macro, "\0", self.tables.address, report=self.messages.usrerr
                    )
                    if scanned.tokens is None:
                        return EX_DATAERR
                    npvp.extend(scanned.tokens)
                    nlowered.extend(_lowered(scanned.tokens))
                    if len(npvp) > maxatom:
                        return self._toolong()
            # A substituted token may open a lookup or call a ruleset as well as the
            # rule's own: one scan of the joined text says whether any does.
            if rule.substitutes:
                joined = "".join(npvp)
                lookup = HOSTBEGIN in joined or LOOKUPBEGIN in joined
                call = CALLSUBR in joined
            else:
                lookup = rule.rhs_lookup
                call = rule.rhs_call
            if lookup:
                status = self._lookups(npvp, maxatom)
                if isinstance(status, tuple):
                    return status[0]
                if status == EX_TEMPFAIL:
                    rstat = EX_TEMPFAIL
                call = CALLSUBR in "".join(npvp)
            if call:
                status = self._callsubr(npvp, reclevel)
                if rstat == EX_OK or status == EX_TEMPFAIL:
                    rstat = status
            if lookup or call:
                nlowered = _lowered(npvp)
            if npvp != pvp:
                pvp[:] = npvp
                lowered = nlowered
                present = set(nlowered)
                size = len(pvp)
                first = lowered[0] if size else None
                final = lowered[-1] if size else None
                done = bool(pvp) and pvp[0][:1] == CANONNET
            if rule.last:
                break
        if self.trace is not None:
            self._trace("returns:", rulename, pvp)
        return rstat

    def _toolong(self) -> int:
        self.messages.syserr("554 5.3.0 rewrite: expansion too long")
        return EX_DATAERR

    # ------------------------------------------------------------ LHS matching

    def _match(
        self, rule: CompiledRule, pvp: Sequence[str], lowered: Sequence[str]
    ) -> list[list[int]] | None:
        """The bindings `[LHS index, first, last]` of the fuzzy LHS tokens when the rule's
        LHS matches all of `pvp` (`lowered`: its tokens in ASCII lower case), else None."""
        ops = rule.ops
        if ops == _ANYTHING:
            return [[0, 0, len(pvp) - 1]]
        ids = rule.ids
        folded = rule.folded
        mlist: list[list[int]] = []
        rvp = 0
        avp = 0
        nl = len(ops)
        na = len(pvp)
        while avp < na or rvp < nl:
            ok = True
            if rvp >= nl:
                ok = False
            else:
                op = ops[rvp]
                if op == OP_LITERAL:
                    if avp < na and folded[rvp] == lowered[avp]:
                        avp += 1
                    else:
                        ok = False
                elif avp >= na and op != OP_ZANY and op != OP_ZERO:
                    ok = False
                elif op == OP_ZANY:
                    mlist.append([rvp, avp, avp - 1])
                elif op in (OP_ANY, OP_ONE):
                    mlist.append([rvp, avp, avp])
                    avp += 1
                elif op == OP_CLASS:
                    m = [rvp, avp, avp - 1]
                    if self._extend_class(m, pvp, ids[rvp]):
                        mlist.append(m)
                        avp = m[2] + 1
                    else:
                        ok = False
                elif op == OP_NCLASS:
                    if self.in_class(pvp[avp], ids[rvp]):
                        ok = False
                    else:
                        mlist.append([rvp, avp, avp])
                        avp += 1
                elif op == OP_MACRO:
                    value = self.macvalue(ids[rvp])
                    save = avp
                    if value:
                        pos = 0
                        while pos < len(value):
                            if avp >= na:
                                ok = False
                                break
                            token = pvp[avp]
                            if value[pos : pos + len(token)].lower() != token.lower():
                                ok = False
                                break
                            pos += len(token)
                            avp += 1
                        if not ok:
                            avp = save
                # OP_ZERO ($@ on a left-hand side) matches nothing and always succeeds
            if ok:
                rvp += 1
                continue
            # back up: extend the latest binding that can still grow
            resumed = False
            while mlist:
                m = mlist[-1]
                rvp = m[0]
                avp = m[2] + 1
                if avp >= na:
                    mlist.pop()
                    continue
                op = ops[rvp]
                if op in (OP_ANY, OP_ZANY):
                    following = rvp + 1
                    if following < nl and ops[following] == OP_LITERAL:
                        # Any longer binding whose next token is not that literal fails
                        # at the literal and comes back here: go straight to one that is.
                        try:
                            avp = lowered.index(folded[following], avp + 1) - 1
                        except ValueError:
                            mlist.pop()
                            continue
                    m[2] = avp
                    avp += 1
                    rvp += 1
                    resumed = True
                    break
                if op == OP_CLASS and self._extend_class(m, pvp, ids[rvp]):
                    avp = m[2] + 1
                    rvp += 1
                    resumed = True
                    break
                mlist.pop()
            if not resumed:
                return None
        return mlist

    def _extend_class(self, m: list[int], pvp: Sequence[str], class_id: str) -> bool:
        """Grow the binding `m` one token at a time until its tokens are a member of the
        class. The text grows with every token, so once it is longer than the class's
        longest member no longer binding can be one."""
        members = self.classes.get(class_id)
        if members is None:
            return False
        longest = self._longest_member(class_id, members)
        table = self.tables.address
        sub = self.space_sub
        first = m[1]
        last = m[2]
        word = self.cat(pvp[first : last + 1]) if last >= first else ""
        prev_atom = False
        for token in reversed(pvp[first : last + 1]):
            if token:
                code = ord(token[-1])
                prev_atom = (table[code] if code < 256 else tk.ATM) == tk.ATM
                break
        n = len(pvp)
        while True:
            last += 1
            if last >= n:
                return False
            token = pvp[last]
            if token:
                code = ord(token[0])
                if prev_atom and sub and (table[code] if code < 256 else tk.ATM) == tk.ATM:
                    word += sub
                word += token
                code = ord(token[-1])
                prev_atom = (table[code] if code < 256 else tk.ATM) == tk.ATM
            folded = word.lower()
            if folded in members:
                m[2] = last
                return True
            if len(folded) > longest:
                return False

    def _longest_member(self, class_id: str, members: frozenset[str] | set[str]) -> int:
        """The length of the class's longest member (classes only ever grow: -bt's .C)."""
        known = self._longest.get(class_id)
        if known is not None and known[0] == len(members):
            return known[1]
        longest = max((len(word) for word in members), default=0)
        self._longest[class_id] = (len(members), longest)
        return longest

    # ------------------------------------------------------------ $[ $] and $( $)

    def _lookups(self, npvp: list[str], maxatom: int) -> int | tuple[int]:
        rstat = EX_OK
        i = 0
        while i < len(npvp):
            head = npvp[i][:1]
            if head == HOSTBEGIN:
                endtoken = HOSTEND
                mapname = "host"
                j = i + 1
            elif head == LOOKUPBEGIN:
                endtoken = LOOKUPEND
                if i + 1 >= len(npvp):
                    self.messages.syserr("554 5.3.0 rewrite: missing mapname")
                    return (EX_CONFIG,)
                mapname = npvp[i + 1]
                j = i + 2
            else:
                i += 1
                continue
            themap = self.maps.get(mapname.lower())
            if themap is None:
                self.messages.syserr(f"554 5.3.0 rewrite: map {mapname} not found")
            key_start = j
            key_end: int | None = None
            args: list[str] = []
            default: list[str] | None = None
            segment_start: int | None = None
            segment_kind = ""
            while j < len(npvp) and npvp[j][:1] != endtoken:
                kind = npvp[j][:1]
                if kind not in (CANONHOST, CANONUSER):
                    j += 1
                    continue
                if key_end is None:
                    key_end = j
                if segment_start is not None:
                    segment = npvp[segment_start:j]
                    if segment_kind == "arg":
                        if len(args) < MAX_MAP_ARGS - 2:
                            args.append(self.cat(segment))
                    else:
                        default = segment
                segment_start = j + 1
                segment_kind = "arg" if kind == CANONHOST else "default"
                j += 1
            if key_end is None:
                key_end = j
            if segment_start is not None:
                segment = npvp[segment_start:j]
                if segment_kind == "arg":
                    if len(args) < MAX_MAP_ARGS - 2:
                        args.append(self.cat(segment))
                else:
                    default = segment
            close = j + 1 if j < len(npvp) else j
            key_tokens = npvp[key_start:key_end]
            replacement: str | None = None
            if themap is not None:
                if self._reads:
                    self._note_map(themap)
                key = self.cat(key_tokens, themap.spacesub)
                replacement, status = self.map_lookup(themap, key, args)
                if status == EX_TEMPFAIL and themap.defer_tempfail:
                    rstat = EX_TEMPFAIL
            if replacement is None and default is not None:
                replacement = self.cat(default)
            if replacement is None:
                new_tokens = list(key_tokens)
            elif replacement == "":
                new_tokens = []
            else:
                scanned = tk.prescan(
                    replacement, "\0", self.tables.address, report=self.messages.usrerr
                )
                if scanned.tokens is None:
                    return (EX_DATAERR,)
                new_tokens = scanned.tokens
            npvp[i:close] = new_tokens
            if len(npvp) > maxatom:
                return (self._toolong(),)
            i += len(new_tokens)
        return rstat

    def _note_map(self, themap: RuleMap) -> None:
        """The call being remembered consulted `themap`: its answer holds while the map's
        stamp is the same, and is not remembered for a map without one."""
        reads = self._reads[-1]
        if getattr(themap, "sets_macro", False):
            return  # map_lookup() notes the macro it sets
        stamp_of = getattr(themap, "memo_stamp", None)
        stamp = stamp_of() if stamp_of is not None else None
        if stamp is None:
            reads.tainted = True
        elif stamp is not STATIC:
            reads.maps[id(themap)] = (themap, stamp)

    def map_lookup(self, themap: RuleMap, key: str, args: Sequence[str]) -> tuple[str | None, int]:
        """sendmail's map_lookup(): quotes stripped from the key unless the map keeps them."""
        if not themap.keep_quotes:
            key = stripquotes(key)
        try:
            lookup_in = getattr(themap, "lookup_in", None)
            if lookup_in is not None:
                if self._reads and getattr(themap, "sets_macro", False):
                    self._reads[-1].written.add(tk.macro_id(key))
                elif self._reads:
                    self._reads[-1].tainted = True
                return lookup_in(key, [key, *args], self.macros)
            return themap.lookup(key, [key, *args])
        except Exception as exc:  # a map must never take the engine down
            self.messages.syserr(f"451 4.3.0 map lookup ({key}): {exc}")
            return None, EX_TEMPFAIL

    # ------------------------------------------------------------ $>

    def _callsubr(self, pvp: list[str], reclevel: int) -> int:
        calls: list[tuple[int, int]] = []
        j = 0
        while j < len(pvp):
            if pvp[j][:1] == CALLSUBR and j + 1 < len(pvp):
                name = stripquotes(pvp[j + 1])
                pvp[j + 1] = name
                subr = self.book.find(name)
                if subr < 0:
                    self.messages.syserr(f"554 5.3.5 Unknown ruleset {name}")
                    return EX_CONFIG
                if not self.book.rules.get(subr):
                    del pvp[j : j + 2]
                    # sendmail's loop steps past the token that moved into place
                    j += 1
                    continue
                if len(calls) + 1 >= MAX_SUBR:
                    self.messages.syserr(f"554 5.3.0 Too many subroutine calls ({MAX_SUBR} max)")
                    return EX_CONFIG
                calls.append((subr, j))
            j += 1
        rstat = EX_OK
        for subr, at in reversed(calls):
            del pvp[at : at + 2]
            tail = pvp[at:]
            status = self.rewrite(tail, subr, reclevel, MAXATOM - at)
            pvp[at:] = tail
            if status not in (EX_OK, EX_TEMPFAIL):
                return status
            if rstat == EX_OK or status == EX_TEMPFAIL:
                rstat = status
        return rstat


def _casefold_ascii(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _lowered(tokens: Sequence[str]) -> list[str]:
    return [t.lower() if t.isascii() else t.translate(_ASCII_LOWER) for t in tokens]


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
