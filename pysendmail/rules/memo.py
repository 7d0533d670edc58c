"""The remembered results of ruleset calls, for one RuleWorld (one loaded configuration).

A ruleset call's result depends on its input tokens, on the world's rules, classes and
maps, and on the macros the rules read with `$&x`. `RuleMemo` keeps, per
(ruleset, input tokens, recursion level, token limit), the resulting tokens and status
with what the call read: every macro value (its absence included) and a stamp of every
map that can change (a file map's files: see `Map.memo_stamp`). A remembered result is
served only when every recorded macro has the same value now and every recorded map
the same stamp, so it is the answer the rules would give again.

The engine (`Rewriter.rewrite`) records nothing, and so remembers nothing, for a call
that wrote a message or an error, consulted a map without a stamp (DNS host lookups,
`arith`, `macro`, `sequence`, `user`, `aliases`: see rules/maps.py) or ran traced
(`-bt`). A world built anew (SIGHUP) starts with an empty memo; -bt's world (its `.D`,
`.C` and `S` change it) has none. Bounded: the least recently used entries go first.
Thread-safe: the daemon's sessions share one memo.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol

from pysendmail.record import field, record

DEFAULT_SIZE = 8192  # keys
VARIANTS = 4  # results a key keeps


class _Static:
    def __repr__(self) -> str:
        return "STATIC"


# The memo stamp of a map whose answers never change while its world lives.
STATIC: object = _Static()

Key = tuple[object, ...]


class StampedMap(Protocol):
    def memo_stamp(self) -> object | None: ...


@record
class Reads:
    """What one ruleset call (with the calls it made) depended on, as it ran."""

    macros: dict[str, str | None] = field(default_factory=dict)
    maps: dict[int, tuple[StampedMap, object]] = field(default_factory=dict)
    tainted: bool = False

    def merge(self, other: Reads) -> None:
        self.macros.update(other.macros)
        self.maps.update(other.maps)
        self.tainted = self.tainted or other.tainted


@record(frozen=True)
class Remembered:
    tokens: tuple[str, ...]
    status: int
    reads: Reads


class RuleMemo:
    """An LRU of ruleset results, each valid while what it read is unchanged."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[Key, tuple[Remembered, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key, macros: Mapping[str, str]) -> Remembered | None:
        with self._lock:
            variants = self._entries.get(key)
            if variants is not None:
                self._entries.move_to_end(key)
                variants = list(variants)
        for found in variants or ():
            if _still_valid(found.reads, macros):
                self.hits += 1
                return found
        self.misses += 1
        return None

    def put(self, key: Key, tokens: tuple[str, ...], status: int, reads: Reads) -> None:
        """Remember a result; a key keeps a few (VARIANTS) results that read different
        macro values (one client's and another's), the latest first."""
        entry = Remembered(tokens, status, reads)
        with self._lock:
            variants = self._entries.get(key, ())
            self._entries[key] = (entry, *variants[: VARIANTS - 1])
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _still_valid(reads: Reads, macros: Mapping[str, str]) -> bool:
    for mid, value in reads.macros.items():
        if macros.get(mid) != value:
            return False
    return all(themap.memo_stamp() == stamp for themap, stamp in reads.maps.values())
