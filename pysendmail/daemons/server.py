"""What an SMTP server needs from the configuration, gathered once per Config.

Owns the bridge from a translated `Config` (or, for tests, plain values) to the session's
`SessionSettings`, the HELP text read from the cf's `HelpFile`, and the greeting and
`Received:` texts expanded from the cf's macros. The socket daemons (`smtpd.py`) and
`-bs` (`serve_stdio`) both build their sessions through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pysendmail.config.macros import expand


def load_help_topics(
    path: str | Path | None, macros: Mapping[str, str]
) -> dict[str, tuple[str, ...]] | None:
    """The helpfile as topic -> lines; None when there is no file (HELP not implemented).

    Lines are `topic<TAB>text`; `#` lines are comments, and `#vers 2` (or later) turns on
    macro expansion in the text, as sendmail does.
    """
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    version = 0
    topics: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            words = line[1:].split()
            if len(words) == 2 and words[0] == "vers" and words[1].isdigit():
                version = int(words[1])
            continue
        topic, tab, rest = line.partition("\t")
        if not tab:
            topic, rest = line, ""
        if version >= 2:
            rest = expand(rest, macros)
        topics.setdefault(topic.lower(), []).append(rest)
    return {topic: tuple(lines) for topic, lines in topics.items()}
