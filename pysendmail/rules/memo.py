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
`arith`, `sequence`, `user`, `aliases`: see rules/maps.py) or ran traced (`-bt`). A
call that set a macro (the `macro` map) is remembered only when it is the outermost call
of a caller whose macros nobody reads afterwards (a check ruleset, rules/checks.py): the
macro dies with the call, so skipping the call skips nothing anyone sees; the macros it
read after setting them are its own doing, not what it depends on. Anywhere else such a
call runs every time, for its effect. A world built anew (SIGHUP) starts with an empty
memo; -bt's world (its `.D`, `.C` and `S` change it) has none. Bounded: the least
recently used entries go first. Thread-safe: the daemon's sessions share one memo.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol

from pysendmail.record import field, record

OUTER_SIZE = 8192  # keys asked by the engine's users (about 1 KB each)
INNER_SIZE = 4096  # keys of subroutine calls
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
    """What one ruleset call (with the calls it made) depended on, as it ran: the macros
    it read before setting them itself, the maps, and the macros it set (`macro` map)."""

    macros: dict[str, str | None] = field(default_factory=dict)
    maps: dict[int, tuple[StampedMap, object]] = field(default_factory=dict)
    tainted: bool = False
    written: set[str] = field(default_factory=set)

    def read(self, mid: str, value: str | None) -> None:
        if mid not in self.written:
            self.macros.setdefault(mid, value)

    def merge(self, other: Reads) -> None:
        for mid, value in other.macros.items():
            self.read(mid, value)
        self.maps.update(other.maps)
        self.tainted = self.tainted or other.tainted
        self.written |= other.written


@record(frozen=True)
class Remembered:
    tokens: tuple[str, ...]
    status: int
    reads: Reads


class _Lru:
    """Keys to a few results each, the least recently used key dropped beyond `size`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[Key, tuple[Remembered, ...]] = OrderedDict()

    def get(self, key: Key) -> tuple[Remembered, ...]:
        variants = self.entries.get(key)
        if variants is None:
            return ()
        self.entries.move_to_end(key)
        return variants

    def put(self, key: Key, entry: Remembered) -> None:
        variants = self.entries.get(key, ())
        self.entries[key] = (entry, *variants[: VARIANTS - 1])
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


class RuleMemo:
    """Ruleset results, each valid while what it read is unchanged.

    The calls the engine's users make (a check ruleset, rulesets 3 and 0 of an address)
    and the subroutine calls they make are kept apart: an address's dozens of subroutine
    calls never push out the few answers its next message asks for again."""

    def __init__(self, size: int = OUTER_SIZE, inner_size: int = INNER_SIZE) -> None:
        self._outer = _Lru(size)  # recursion level 0
        self._inner = _Lru(inner_size)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._outer.entries) + len(self._inner.entries)

    def _tier(self, key: Key) -> _Lru:
        return self._outer if key[1] == 0 else self._inner

    def get(self, key: Key, macros: Mapping[str, str], private: bool = False) -> Remembered | None:
        """A remembered result that holds for `macros`; one whose call set macros only
        for a `private` caller (whose macros die with the call: see Rewriter)."""
        with self._lock:
            variants = self._tier(key).get(key)
        for found in variants:
            if found.reads.written and not private:
                continue
            if still_valid(found.reads, macros):
                self.hits += 1
                return found
        self.misses += 1
        return None

    def put(self, key: Key, tokens: tuple[str, ...], status: int, reads: Reads) -> None:
        """Remember a result; a key keeps a few (VARIANTS) results that read different
        macro values (one client's and another's), the latest first."""
        entry = Remembered(tokens, status, reads)
        with self._lock:
            self._tier(key).put(key, entry)

    def clear(self) -> None:
        with self._lock:
            self._outer.entries.clear()
            self._inner.entries.clear()


def still_valid(reads: Reads, macros: Mapping[str, str]) -> bool:
    """Whether every macro `reads` recorded has that value in `macros` and every map
    it consulted the same stamp."""
    for mid, value in reads.macros.items():
        if macros.get(mid) != value:
            return False
    return all(themap.memo_stamp() == stamp for themap, stamp in reads.maps.values())
