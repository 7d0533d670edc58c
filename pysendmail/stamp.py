"""The headers sendmail adds to a message it accepts: its cf's `H` lines, expanded.

This module owns sendmail's header templates at queueing time: the macro syntax of `H`
lines (`$x`, `${name}`, `$?x then $| else $.`), the dates sendmail writes (`$a`, `$b`,
`$t`), which defaults a message gets (a Date:, From:, Message-Id: only when it lacks one;
Resent-* ones only for a resent message; a header whose value expands to nothing is
left out; Return-Path keeps `$g` for delivery time), and the X-Authentication-Warning
lines. It reads nothing and writes nothing: values in, `Header` records out. Every door
uses it (the command line in cli/submit.py, the SMTP daemon in daemons/smtpd.py), so it
sits on the bottom floor beside headers.py.
"""

from __future__ import annotations

import time

from pysendmail.headers import H_ACHECK, H_FORCE, MACRO_CHAR, Header, header_flags
from pysendmail.record import record

TYPE_CHECKING = False  # not importing collections at run time: start-up time
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

# Headers whose macros are bound at delivery time, not when queued.
_BIND_LATE = frozenset({"return-path"})
# Trace headers: added even when the message already carries one of the same name.
_TRACE = frozenset({"received"})


@record(frozen=True)
class HeaderTemplate:
    """One `H` line: `H?flags?Name: value` (value unexpanded)."""

    name: str
    value: str
    flags: str = ""
    macro_condition: str | None = None


def _macro_ref(text: str, pos: int) -> tuple[str, int]:
    """The macro name at text[pos] (after the `$` and operator) and the index after it."""
    if text[pos : pos + 1] == "{":
        end = text.find("}", pos)
        if end < 0:
            return text[pos + 1 :], len(text)
        return text[pos + 1 : end], end + 1
    return text[pos : pos + 1], pos + 1


def expand(template: str, macros: Mapping[str, str], *, late: bool = False) -> str:
    """Expand sendmail macro syntax (values expanded in turn, by config.macros). With
    `late`, references are kept as 0x81 references, bound at delivery time."""
    if not late:
        from pysendmail.config import macros as cf_macros

        return cf_macros.expand(template, macros)
    out: list[str] = []
    # Each open conditional: (taking this branch?, was the condition true?)
    stack: list[tuple[bool, bool]] = []
    i = 0
    n = len(template)

    def active() -> bool:
        return all(taking for taking, _ in stack)

    while i < n:
        ch = template[i]
        if ch != "$" or i + 1 >= n:
            if active():
                out.append(ch)
            i += 1
            continue
        op = template[i + 1]
        if op == "?":
            name, i = _macro_ref(template, i + 2)
            truth = bool(macros.get(name))
            stack.append((truth, truth))
            continue
        if op == "|":
            if stack:
                _, truth = stack.pop()
                stack.append((not truth, truth))
            i += 2
            continue
        if op == ".":
            if stack:
                stack.pop()
            i += 2
            continue
        if op == "$":
            if active():
                out.append("$")
            i += 2
            continue
        if op == "&":
            name, i = _macro_ref(template, i + 2)
        else:
            name, i = _macro_ref(template, i + 1)
        if active():
            if late:
                out.append(MACRO_CHAR + (name if len(name) == 1 else "{" + name + "}"))
            else:
                out.append(macros.get(name, ""))
    return "".join(out)


def arpadate(when: float) -> str:
    """A date as sendmail writes it: `Thu, 26 Nov 2026 11:11:01 GMT`, or with the
    numeric offset and the zone's name (`Mon, 2 Jan 2006 08:04:05 -0700 (MST)`)."""
    tm = time.localtime(when)
    text = time.strftime("%a, ", tm) + str(tm.tm_mday) + time.strftime(" %b %Y %H:%M:%S", tm)
    offset = (tm.tm_gmtoff or 0) // 60
    if offset == 0:
        return f"{text} GMT"
    sign = "-" if offset < 0 else "+"
    offset = min(abs(offset), 23 * 60 + 59)
    zone = f" ({tm.tm_zone})" if tm.tm_zone else ""
    return f"{text} {sign}{offset // 60:02d}{offset % 60:02d}{zone}"


def time_macro(when: float) -> str:
    """`$t`: the time as YYYYMMDDhhmm in UTC (the first part of generated Message-Ids)."""
    return time.strftime("%Y%m%d%H%M", time.gmtime(when))


def is_resent(headers: Iterable[Header]) -> bool:
    return any(h.key.startswith("resent-") for h in headers)


def default_headers(
    templates: Sequence[HeaderTemplate],
    message_headers: Sequence[Header],
    macros: Mapping[str, str],
    warnings: Sequence[str] = (),
) -> list[Header]:
    """The headers of the queued message: the templates sendmail adds, with the
    X-Authentication-Warning lines after the trace headers, then the message's own."""
    present = {h.key for h in message_headers}
    resent = is_resent(message_headers)
    added: list[Header] = []
    trace_end = 0
    for template in templates:
        key = template.name.lower()
        if key.startswith("resent-") and not resent:
            continue
        if key in present and key not in _TRACE:
            continue
        value = expand(template.value, macros, late=key in _BIND_LATE)
        if not value.strip():
            continue
        added.append(
            Header(
                name=template.name,
                value=value,
                condition=template.flags,
                macro_condition=template.macro_condition,
            )
        )
        if key in _TRACE or key in _BIND_LATE:
            trace_end = len(added)
    _inherit_conditions(templates, message_headers)
    host = macros.get("j", "")
    warning_headers = [
        Header(name="X-Authentication-Warning", value=f"{host}: {text}") for text in warnings
    ]
    return [*added[:trace_end], *warning_headers, *added[trace_end:], *message_headers]


def _inherit_conditions(templates: Sequence[HeaderTemplate], headers: Sequence[Header]) -> None:
    """sendmail's chompheader(): a message's own header takes the `?flags?` of the `H`
    line it replaces. It matters for the H_ACHECK headers (a user's `Full-Name:` goes
    only to a mailer with F=x, as `H?x?Full-Name:` would), which the qf keeps."""
    conditions = {
        t.name.lower(): t.flags for t in templates if t.flags and not header_flags(t.name) & H_FORCE
    }
    for header in headers:
        if header.condition or not header_flags(header.name) & H_ACHECK:
            continue
        header.condition = conditions.get(header.key, "")
