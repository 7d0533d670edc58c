"""The daemon's shared maps say which version of their files they serve, so that the rules
engine's memo (rules/memo.py) never hands one thread's answer to a thread that reads
another version: a compiled map is replaced by a rebuild, and a thread keeps reading the
file it opened."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pysendmail.config.compiled import compile_source, compiled_path, open_source_map, source_path
from pysendmail.daemons.server import _files_stamp
from pysendmail.policy import LoadedLookup, PerThreadLookup


def in_thread(lookup: PerThreadLookup, key: str) -> tuple[object, str | None]:
    found: list[tuple[object, str | None]] = []
    worker = threading.Thread(target=lambda: found.append((lookup.data_stamp(), lookup(key))))
    worker.start()
    worker.join()
    return found[0]


def test_a_rebuilt_compiled_map_is_a_new_version_for_new_threads_only(tmp_path: Path) -> None:
    source = tmp_path / "access"
    source.write_text("From:a.example\tREJECT\n")
    compile_source(source)
    compiled = compiled_path(source)
    lookup = PerThreadLookup(
        lambda: open_source_map(source),
        stamp=lambda: _files_stamp(compiled, source_path(source)),
    )
    first = lookup.data_stamp()
    assert first is not None
    assert lookup("From:a.example") == "REJECT"
    assert in_thread(lookup, "From:a.example") == (first, "REJECT")

    source.write_text("From:a.example\tOK\n")
    compile_source(source)
    stamp, value = in_thread(lookup, "From:a.example")
    assert (stamp != first, value) == (True, "OK")
    # this thread still reads the file it opened, and says so
    assert (lookup.data_stamp(), lookup("From:a.example")) == (first, "REJECT")


def test_a_map_read_into_memory_never_changes(tmp_path: Path) -> None:
    source = tmp_path / "access"
    source.write_text("From:a.example\tREJECT\n")
    table = open_source_map(source)
    shared = LoadedLookup(table)
    assert shared("From:a.example") == "REJECT"
    stamp = shared.data_stamp()
    source.write_text("From:a.example\tOK\n")
    assert (shared.data_stamp(), shared("From:a.example")) == (stamp, "REJECT")


def test_a_map_that_cannot_be_opened_has_no_version_and_still_fails_its_lookups(
    tmp_path: Path,
) -> None:
    def broken() -> object:
        class Broken:
            def lookup(self, key: str) -> str | None:
                raise OSError("unreadable")

        return Broken()

    lookup = PerThreadLookup(broken, stamp=lambda: ("v", 1))
    assert lookup.data_stamp() is None
    with pytest.raises(OSError, match="unreadable"):
        lookup("key")
