"""Which addresses table routing reads as sendmail's tokenizer would, and which need the
rules engine (`needs_rules`). Kept apart from rules/routes.py so that the router can ask
on every submission without importing the engine (start-up time, bench/README.md)."""

from __future__ import annotations

_MAX_PLAIN = 200  # longer addresses meet sendmail's token and address limits


def _outside_quotes_and_comments(text: str) -> str:
    """The address with quoted strings replaced by `q` and (comments) dropped."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
            if not quoted and not depth:
                out.append("q")
            continue
        if ch == "\\":
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"' and not depth:
            quoted = True
            out.append("q")
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return "".join(out)


def needs_rules(address: str) -> bool:
    """Whether an address needs sendmail's tokenizer to be read as sendmail reads it:
    blanks inside the address proper (`alice bob` is `alice.bob` with BlankSub `.`),
    nested `<<>>`, a colon that is neither route nor group syntax, a stray `;`, and
    addresses long enough to meet sendmail's token limits. Table routing reads the rest
    (phrases, comments, quoted local parts, routes, groups) as sendmail does."""
    if len(address) > _MAX_PLAIN:
        return True
    bare = _outside_quotes_and_comments(address.strip())
    if bare.count("<") > 1 or bare.count(">") > 1:
        return True
    inner = bare
    if "<" in bare and ">" in bare.partition("<")[2]:
        inner = bare.partition("<")[2].partition(">")[0]
        if not inner.strip() and inner:
            return True
    inner = inner.strip()
    if any(ch.isspace() for ch in inner):
        return True
    if ":" in inner and not inner.startswith("@") and not inner.endswith(";"):
        return True
    return inner.endswith(";") and ":" not in inner
