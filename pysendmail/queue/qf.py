"""The sendmail 8 queue file format (qf/df), version 8: reading and writing, queue IDs,
priorities. The one module that knows the format; nothing here touches the disk.

A message in the queue is two files in QueueDirectory: `df<ID>` holds the body exactly
as collected (LF line ends, no dot-stuffing), `qf<ID>` the envelope and the headers:

    V8                      format version
    T<secs>                 time queued          K<secs>  last attempt (0 = never)
    N<n>                    attempts so far      P<n>     priority (lower goes first)
    I<maj>/<min>/<ino>      the df's device/inode (written after a queue run)
    M<text>                 status of the last attempt (shown by mailq)
    B<type>                 BODY= (7BIT, 8BITMIME)
    F<letters>              envelope flags: w warned, r is a DSN, 8 8-bit body,
                            b remove Bcc, d RET= given, n RET=HDRS, s split
    $<c><value>, ${name}<value>  saved macros
    S<sender>  Z<envid>  A<auth>
    C<user>:<uid>:<gid>:<addr>   controlling user of the following recipients; bare C ends
    Q<orcpt>  r<final-recipient>  R<flags>:<address>   one recipient (flags P S F D N A)
    H?<flags>?Name: value   a header; continuation lines start with a TAB or space;
                            0x81 + letter is a macro reference for delivery time
    .                       end of file

What sendmail 8.17 wrote (tests/fixtures: queue_samples/) parses to the same bytes when
rendered again. Lines of other known types (E, d, q, !, j, Y) are kept verbatim.
"""

from __future__ import annotations

import itertools
import os
import time
from _thread import allocate_lock  # threading.Lock without importing threading

from pysendmail.envelope import Envelope, Notify, Recipient, Ret
from pysendmail.headers import Header, decode, encode, header_from_lines
from pysendmail.record import field, record

TYPE_CHECKING = False  # not importing collections at run time: start-up time
if TYPE_CHECKING:
    from collections.abc import Iterable

QF_VERSION = 8

# sendmail's default priority factors (RecipientFactor, ClassFactor, RetryFactor).
RECIPIENT_FACTOR = 30000
CLASS_FACTOR = 1800
RETRY_FACTOR = 90000

# Letters of the F line, in the order sendmail writes them.
_FLAG_ORDER = "wr8bdns"
# Line types kept verbatim (error recipient, data dir, quarantine, deliver-by, ...).
_KEPT_TYPES = frozenset("Edq!jY")

_BASE60 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"


class QueueFileCorrupt(ValueError):
    """A qf that cannot be read as version 8 (it is renamed Qf<ID> by the store)."""


# ---------------------------------------------------------------- queue IDs


class QueueIdGenerator:
    """Queue IDs of sendmail's shape: `YMDhms` + two sequence characters + the pid.

    Each of year (mod 60), month, day, hour, minute and second is one base-60 character,
    the two sequence characters count through 3600 values starting at a random point,
    and the pid is written with at least six digits: `6AQBB1RV009525`.
    """

    def __init__(self, pid: int | None = None) -> None:
        self._pid = pid
        self._lock = allocate_lock()
        self._counter = itertools.count(int.from_bytes(os.urandom(2), "big") % 3600)

    def next_id(self, now: float | None = None) -> str:
        tm = time.gmtime(time.time() if now is None else now)
        with self._lock:
            seq = next(self._counter) % 3600
        pid = os.getpid() if self._pid is None else self._pid
        stamp = "".join(
            _BASE60[v]
            for v in (
                (tm.tm_year - 1900) % 60,
                tm.tm_mon - 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec,
            )
        )
        return f"{stamp}{_BASE60[seq // 60]}{_BASE60[seq % 60]}{pid:06d}"


def is_queue_id(text: str) -> bool:
    import re  # not at import: the submission path does without it (bench/README.md)

    return re.match(r"^[0-9A-Za-x]{8}\d{6,}$", text) is not None


# ---------------------------------------------------------------- priority


def initial_priority(msg_size: int, nrcpts: int, msg_class: int = 0) -> int:
    """sendmail's e_msgpriority: size - class*ClassFactor + recipients*RecipientFactor."""
    return msg_size - msg_class * CLASS_FACTOR + nrcpts * RECIPIENT_FACTOR


def retry_priority(priority: int) -> int:
    """The priority after one more failed attempt (RetryFactor added)."""
    return priority + RETRY_FACTOR


# ---------------------------------------------------------------- the records


@record
class QueueRecipient:
    """One `R` line with the `C`, `Q` and `r` lines that belong to it."""

    address: str  # as given: "bob", "<bob>", "Carol <carol@partner.example.org>"
    flags: str = "PFD"  # letters before the colon
    final_recipient: str | None = None  # "RFC822; bob@mail.example.com"
    orcpt: str | None = None  # "rfc822;bob@example.com"
    controlling_user: str | None = None  # "alice:1001:1001:sales", ":alice"

    @property
    def primary(self) -> bool:
        return "P" in self.flags

    @property
    def notify(self) -> frozenset[Notify] | None:
        """NOTIFY= as given, or None when the submitter did not say (failure and delay)."""
        if "N" not in self.flags:
            return None
        letters = {"S": Notify.SUCCESS, "F": Notify.FAILURE, "D": Notify.DELAY}
        chosen = {letters[c] for c in self.flags if c in letters}
        return frozenset(chosen) if chosen else frozenset({Notify.NEVER})

    def notifies(self, event: Notify) -> bool:
        """Whether a DSN is wanted for `event` (SUCCESS, FAILURE or DELAY)."""
        notify = self.notify
        if notify is None:
            return event in (Notify.FAILURE, Notify.DELAY)
        return event in notify

    @property
    def bare_address(self) -> str:
        """The address without a phrase or angle brackets: "carol@partner.example.org"."""
        addr = self.address.strip()
        if "<" in addr and addr.endswith(">"):
            addr = addr[addr.rindex("<") + 1 : -1]
        return addr.strip()


@record
class QueueFile:
    """A parsed qf file. Mutable: the queue runner updates it and writes it back."""

    qid: str
    sender: str
    queued_at: int = 0  # T
    last_attempt: int = 0  # K
    attempts: int = 0  # N
    priority: int = 0  # P
    df_inode: str | None = None  # I: "254/0/5317806"
    status: str | None = None  # M
    body_type: str | None = None  # B
    flags: str = ""  # F letters
    macros: dict[str, str] = field(default_factory=dict)  # "_" -> "root@localhost"
    envid: str | None = None  # Z
    auth: str | None = None  # A
    recipients: list[QueueRecipient] = field(default_factory=list)
    headers: list[Header] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # kept lines of other types, verbatim
    version: int = QF_VERSION

    def has_flag(self, letter: str) -> bool:
        return letter in self.flags

    def set_flag(self, letter: str, on: bool = True) -> None:
        letters = set(self.flags)
        if on:
            letters.add(letter)
        else:
            letters.discard(letter)
        self.flags = order_flags(letters)

    @property
    def is_bounce(self) -> bool:
        return self.sender in ("<>", "")


def order_flags(letters: Iterable[str]) -> str:
    chosen = set(letters)
    known = "".join(c for c in _FLAG_ORDER if c in chosen)
    return known + "".join(sorted(chosen - set(_FLAG_ORDER)))


# ---------------------------------------------------------------- parsing


def parse(data: bytes, qid: str = "") -> QueueFile:
    """Parse the bytes of a qf file. Raises QueueFileCorrupt for anything not readable."""
    text = decode(data)
    if not text.endswith("\n"):
        raise QueueFileCorrupt("truncated queue file (no final newline)")
    lines = text[:-1].split("\n")
    qf = QueueFile(qid=qid, sender="")
    version: int | None = None
    seen_sender = False
    seen_end = False
    controlling: str | None = None
    pending_orcpt: str | None = None
    pending_final: str | None = None
    header_lines: list[str] | None = None
    header_condition = ("", None)

    def finish_header() -> None:
        nonlocal header_lines
        if header_lines is None:
            return
        header = header_from_lines(header_lines)
        header.raw = None
        header.condition, header.macro_condition = header_condition
        qf.headers.append(header)
        header_lines = None

    for number, line in enumerate(lines, 1):
        if seen_end:
            raise QueueFileCorrupt(f"line {number}: text after the end line")
        if line[:1] in (" ", "\t"):
            if header_lines is None:
                raise QueueFileCorrupt(f"line {number}: continuation line outside a header")
            header_lines.append(line)
            continue
        finish_header()
        kind, rest = line[:1], line[1:]
        try:
            if kind == "V":
                version = int(rest)
                if version != QF_VERSION:
                    raise QueueFileCorrupt(f"line {number}: unsupported version {rest}")
            elif kind == "T":
                qf.queued_at = int(rest)
            elif kind == "K":
                qf.last_attempt = int(rest)
            elif kind == "N":
                qf.attempts = int(rest)
            elif kind == "P":
                qf.priority = int(rest)
            elif kind == "I":
                qf.df_inode = rest
            elif kind == "M":
                qf.status = rest
            elif kind == "B":
                qf.body_type = rest
            elif kind == "F":
                qf.flags = rest
            elif kind == "$":
                name, value = _split_macro(rest, number)
                qf.macros[name] = value
            elif kind == "S":
                qf.sender = rest
                seen_sender = True
            elif kind == "Z":
                qf.envid = rest
            elif kind == "A":
                qf.auth = rest
            elif kind == "C":
                controlling = rest or None
            elif kind == "Q":
                pending_orcpt = rest
            elif kind == "r":
                pending_final = rest
            elif kind == "R":
                rflags, colon, address = rest.partition(":")
                if not colon:
                    raise QueueFileCorrupt(f"line {number}: recipient line without flags")
                qf.recipients.append(
                    QueueRecipient(
                        address=address,
                        flags=rflags,
                        final_recipient=pending_final,
                        orcpt=pending_orcpt,
                        controlling_user=controlling,
                    )
                )
                pending_final = pending_orcpt = None
            elif kind == "H":
                header_condition, first = _split_header_condition(rest, number)
                if ":" not in first:
                    raise QueueFileCorrupt(f"line {number}: header without a colon")
                header_lines = [first]
            elif kind == ".":
                if rest:
                    raise QueueFileCorrupt(f"line {number}: bad end line")
                seen_end = True
            elif kind in _KEPT_TYPES:
                qf.other.append(line)
            else:
                raise QueueFileCorrupt(f"line {number}: unknown line type {kind!r}")
        except ValueError as error:
            if isinstance(error, QueueFileCorrupt):
                raise
            raise QueueFileCorrupt(f"line {number}: bad number in {line[:40]!r}") from error
    finish_header()
    if version is None:
        raise QueueFileCorrupt("no V line (not a version 8 queue file)")
    if not seen_sender:
        raise QueueFileCorrupt("no sender (S line)")
    if not seen_end:
        raise QueueFileCorrupt("truncated queue file (no end line)")
    return qf


def _split_macro(rest: str, number: int) -> tuple[str, str]:
    if rest.startswith("{"):
        end = rest.find("}")
        if end < 0:
            raise QueueFileCorrupt(f"line {number}: unterminated macro name")
        return rest[1:end], rest[end + 1 :]
    if not rest:
        raise QueueFileCorrupt(f"line {number}: empty macro line")
    return rest[0], rest[1:]


def _split_header_condition(rest: str, number: int) -> tuple[tuple[str, str | None], str]:
    if not rest.startswith("?"):
        return ("", None), rest
    end = rest.find("?", 1)
    if end < 0:
        raise QueueFileCorrupt(f"line {number}: unterminated header condition")
    cond = rest[1:end]
    if cond.startswith("${") and cond.endswith("}"):
        return ("", cond[2:-1]), rest[end + 1 :]
    return (cond, None), rest[end + 1 :]


# ---------------------------------------------------------------- rendering


def _one_line(text: str) -> str:
    """Keep a single-line field on one line whatever the caller put in it."""
    return text.replace("\r", " ").replace("\n", " ")


def _header_text(header: Header) -> str:
    """`Name: value` with every line break followed by a blank, so it stays one header."""
    lines = header.text().replace("\r\n", "\n").replace("\r", " ").split("\n")
    out = [lines[0]]
    for cont in lines[1:]:
        if cont.strip() == "":
            continue
        out.append(cont if cont[:1] in (" ", "\t") else "\t" + cont)
    return "\n".join(out)


def render(qf: QueueFile) -> bytes:
    """The bytes of a qf file for `qf`, as sendmail 8.17 writes them."""
    out: list[str] = [f"V{qf.version}", f"T{qf.queued_at}", f"K{qf.last_attempt}"]
    out.append(f"N{qf.attempts}")
    out.append(f"P{qf.priority}")
    if qf.df_inode:
        out.append(f"I{_one_line(qf.df_inode)}")
    if qf.status:
        out.append(f"M{_one_line(qf.status)}")
    if qf.body_type:
        out.append(f"B{_one_line(qf.body_type)}")
    if qf.flags:
        out.append(f"F{_one_line(qf.flags)}")
    short = [(k, v) for k, v in qf.macros.items() if len(k) == 1]
    long_ = [(k, v) for k, v in qf.macros.items() if len(k) != 1]
    out += [f"${k}{_one_line(v)}" for k, v in short]
    out += [f"${{{k}}}{_one_line(v)}" for k, v in long_]
    out.append(f"S{_one_line(qf.sender)}")
    if qf.envid is not None:
        out.append(f"Z{_one_line(qf.envid)}")
    if qf.auth is not None:
        out.append(f"A{_one_line(qf.auth)}")
    out += [_one_line(line) for line in qf.other]
    controlling: str | None = None
    for rcpt in qf.recipients:
        if rcpt.controlling_user != controlling:
            out.append(f"C{_one_line(rcpt.controlling_user or '')}")
            controlling = rcpt.controlling_user
        if rcpt.orcpt is not None:
            out.append(f"Q{_one_line(rcpt.orcpt)}")
        if rcpt.final_recipient is not None:
            out.append(f"r{_one_line(rcpt.final_recipient)}")
        out.append(f"R{_one_line(rcpt.flags).replace(':', '')}:{_one_line(rcpt.address)}")
    for header in qf.headers:
        if header.macro_condition is not None:
            cond = f"?${{{header.macro_condition}}}?"
        else:
            cond = f"?{header.condition}?"
        out.append(f"H{cond}{_header_text(header)}")
    out.append(".")
    return encode("\n".join(out) + "\n")


# ---------------------------------------------------------------- from an envelope


def recipient_flags(rcpt: Recipient) -> str:
    letters = "P" if rcpt.primary else ""
    if rcpt.notify is None:
        letters += "FD"
    else:
        letters += "N"
        letters += "".join(
            c
            for c, n in (("S", Notify.SUCCESS), ("F", Notify.FAILURE), ("D", Notify.DELAY))
            if n in rcpt.notify
        )
    if rcpt.from_alias:
        letters += "A"
    return letters


def final_recipient(address: str, hostname: str | None = None) -> str:
    """The DSN Final-Recipient sendmail records (`RFC822; bob@mail.example.com`)."""
    addr = QueueRecipient(address=address).bare_address
    if "@" not in addr and hostname:
        addr = f"{addr}@{hostname}"
    return f"RFC822; {addr}"


def from_envelope(
    qid: str,
    envelope: Envelope,
    headers: list[Header],
    *,
    msg_size: int,
    queued_at: int,
    hostname: str | None = None,
    msg_class: int = 0,
) -> QueueFile:
    """A fresh queue file (N0, K0) for a message the doors accepted."""
    flags = set(envelope.flags)
    if envelope.ret is not None:
        flags.add("d")
        if envelope.ret == Ret.HDRS:
            flags.add("n")
    recipients = []
    for rcpt in envelope.recipients:
        cu = rcpt.controlling_user
        controlling = f"{cu.user}:{cu.uid}:{cu.gid}:{cu.address}" if cu else None
        recipients.append(
            QueueRecipient(
                address=rcpt.address,
                flags=recipient_flags(rcpt),
                final_recipient=final_recipient(rcpt.address, hostname),
                orcpt=rcpt.orcpt,
                controlling_user=controlling,
            )
        )
    return QueueFile(
        qid=qid,
        sender=envelope.sender,
        queued_at=queued_at,
        priority=initial_priority(msg_size, len(envelope.recipients), msg_class),
        body_type=envelope.body_type.value if envelope.body_type else None,
        flags=order_flags(flags),
        macros=dict(envelope.macros),
        envid=envelope.envid,
        auth=envelope.auth,
        recipients=recipients,
        headers=list(headers),
    )


def to_envelope(qf: QueueFile) -> Envelope:
    """The envelope a queue file holds (for delivery code that wants the door's view)."""
    from pysendmail.envelope import BodyType

    recipients = [
        Recipient(
            address=r.address,
            notify=r.notify,
            orcpt=r.orcpt,
            primary=r.primary,
            from_alias="A" in r.flags,
        )
        for r in qf.recipients
    ]
    body_type = None
    if qf.body_type in {b.value for b in BodyType}:
        body_type = BodyType(qf.body_type)
    ret = None
    if qf.has_flag("d"):
        ret = Ret.HDRS if qf.has_flag("n") else Ret.FULL
    return Envelope(
        sender=qf.sender,
        recipients=recipients,
        body_type=body_type,
        ret=ret,
        envid=qf.envid,
        auth=qf.auth,
        macros=dict(qf.macros),
        flags=set(qf.flags),
    )
