"""The modes other than submission: each imports its part only when it runs.

`runner(mode)` returns `run(invocation, out, err) -> exit status` for a mode, or raises
`Unavailable` when the part that does it is not installed, so that the command says so
(exit 69) instead of pretending.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from pysendmail.cli.options import Invocation
from pysendmail.cli.sendmail import Unavailable

Runner = Callable[[Invocation, TextIO, TextIO], int]

_RUNNERS: dict[str, Runner] = {}


def runner(mode: str) -> Runner:
    found = _RUNNERS.get(mode)
    if found is None:
        raise Unavailable(mode)
    return found
