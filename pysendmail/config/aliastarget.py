"""What one target of an alias is, from its text: an address, a `"|program"`, a `/file`,
an `:include:/path` or an `error:code text`.

Its own module so that routing can tell the kinds apart on every recipient without
importing the aliases(5) parser (config/aliases.py), which only a local user's lookup
needs: start-up time of `sendmail -t -i` (bench/README.md).
"""

from __future__ import annotations

from pysendmail.constants import StrConstants

INCLUDE_PREFIX = ":include:"
ERROR_PREFIX = "error:"


class TargetKind(StrConstants):
    ADDRESS = "address"
    PROGRAM = "program"  # "|command args"
    FILE = "file"  # "/path/to/file"
    INCLUDE = "include"  # :include:/path
    ERROR = "error"  # error:5.1.1:550 text


def classify_target(text: str) -> tuple[TargetKind, str]:
    """What a target (as written) is, and its value without quotes or prefix."""
    inner = text.strip()
    if len(inner) >= 2 and inner[0] == '"' and inner[-1] == '"':
        inner = inner[1:-1].replace('\\"', '"')
    if inner.startswith("|"):
        return TargetKind.PROGRAM, inner
    if inner.startswith("/"):
        return TargetKind.FILE, inner
    if inner.lower().startswith(INCLUDE_PREFIX):
        return TargetKind.INCLUDE, inner[len(INCLUDE_PREFIX) :].strip()
    if inner.lower().startswith(ERROR_PREFIX):
        return TargetKind.ERROR, inner[len(ERROR_PREFIX) :].strip()
    return TargetKind.ADDRESS, text.strip()
