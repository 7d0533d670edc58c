"""Compiled maps: the .pysm file, freshness against the source, K-line lookup flags."""

from __future__ import annotations

import os
import sqlite3

import pytest

from pysendmail.config.compiled import (
    AliasTable,
    MapFlags,
    compile_source,
    compiled_path,
    iter_compiled,
    open_map,
    source_path,
    write_compiled,
)
from pysendmail.config.model import MapSpec
from pysendmail.errors import ConfigError, Location

HERE = Location("test.cf", 1)


def spec(path, *flags: str, map_class: str = "hash", name: str = "m") -> MapSpec:
    return MapSpec(name, map_class, (*flags, str(path)), HERE)


def set_mtime(path, seconds: int) -> None:
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


def test_paths_never_collide_with_sendmails_databases(tmp_path):
    assert compiled_path(tmp_path / "access").name == "access.pysm"
    assert compiled_path(tmp_path / "access.db").name == "access.pysm"
    assert source_path(tmp_path / "aliases.db") == tmp_path / "aliases"


def test_source_is_read_when_there_is_no_compiled_form(tmp_path):
    source = tmp_path / "access"
    source.write_text("Connect:127.0.0.3\tREJECT\nFrom:Spam.Example.NET\tDISCARD\n")
    access = open_map(spec(source, "-T<TMPF>"))
    assert access.lookup("connect:127.0.0.3") == "REJECT"
    assert access.lookup("From:spam.example.net") == "DISCARD"
    assert access.lookup("From:other.example.net") is None


def test_fresh_compiled_form_is_used_and_stale_one_is_not(tmp_path):
    source = tmp_path / "virtusertable"
    source.write_text("a@example.org alice\n")
    compile_source(source)
    compiled = compiled_path(source)
    # Prove which one answered: the compiled file says something the source does not.
    write_compiled(compiled, [("a@example.org", "from-compiled")])
    set_mtime(source, 1_000)
    set_mtime(compiled, 2_000)
    assert open_map(spec(source)).lookup("a@example.org") == "from-compiled"
    set_mtime(source, 3_000)  # the source was edited after makemap
    assert open_map(spec(source)).lookup("a@example.org") == "alice"


def test_compiled_form_without_source_is_used(tmp_path):
    write_compiled(tmp_path / "m.pysm", [("k", "v")])
    assert open_map(spec(tmp_path / "m")).lookup("K") == "v"


def test_flags_keep_case_match_only_append(tmp_path):
    source = tmp_path / "m"
    source.write_text("MixedKey value\nplain other\n")
    assert open_map(spec(source, "-f")).lookup("MixedKey") == "value"
    assert open_map(spec(source, "-f")).lookup("mixedkey") is None
    # Without -f both the stored keys and the looked-up key are folded.
    assert open_map(spec(source)).lookup("MIXEDKEY") == "value"
    assert open_map(spec(source, "-m")).lookup("Plain") == "Plain"
    assert open_map(spec(source, "-a.FOUND")).lookup("plain") == "other.FOUND"


def test_dequoting_of_keys_unless_q(tmp_path):
    source = tmp_path / "m"
    source.write_text("key v\n")
    assert open_map(spec(source)).lookup('"key"') == "v"
    assert open_map(spec(source, "-q")).lookup('"key"') is None


def test_missing_file_is_an_error_unless_optional(tmp_path):
    with pytest.raises(ConfigError, match="cannot open map file"):
        open_map(spec(tmp_path / "gone")).lookup("x")
    assert open_map(spec(tmp_path / "gone", "-o")).lookup("x") is None


def test_text_map_columns_and_delimiter(tmp_path):
    source = tmp_path / "passwd"
    source.write_text("alice:x:1001:1001\nbob:x:1002:1002\n")
    users = open_map(spec(source, "-z:", "-k0", "-v2", map_class="text"))
    assert users.lookup("bob") == "1002"


def test_flags_from_the_model_mapping():
    flags = MapFlags.from_flags({"-T": "<TMPF>", "-o": "", "-f": ""})
    assert (flags.tempfail_append, flags.optional, flags.fold_case) == ("<TMPF>", True, False)


def test_non_file_classes_are_refused():
    with pytest.raises(ConfigError, match="not a file map"):
        open_map(MapSpec("r", "regex", ("-a@MATCH", "^x"), HERE))


def test_write_is_atomic_and_keeps_every_byte(tmp_path):
    dest = tmp_path / "m.pysm"
    weird = "caf\udce9"  # a byte that is not UTF-8, carried as a surrogate escape
    write_compiled(dest, [(weird, "v1"), ("k", "v")])
    assert list(iter_compiled(dest)) == [(weird, "v1"), ("k", "v")]
    assert [p.name for p in tmp_path.iterdir()] == ["m.pysm"]  # no temporary file left
    db = sqlite3.connect(dest)
    assert db.execute("SELECT value FROM meta WHERE name='format'").fetchone() == ("1",)
    db.close()


def test_compiled_file_takes_the_sources_mode(tmp_path):
    source = tmp_path / "authinfo"
    source.write_text('AuthInfo:h "U:u" "P:p"\n')
    source.chmod(0o600)
    result, _ = compile_source(source)
    assert result.path.stat().st_mode & 0o777 == 0o600


def test_a_file_that_is_not_a_compiled_map_is_a_config_error(tmp_path):
    (tmp_path / "m.pysm").write_bytes(b"not sqlite at all")
    with pytest.raises(ConfigError, match="not a compiled map"):
        open_map(spec(tmp_path / "m")).lookup("x")


def test_alias_table_from_source_then_from_compiled(tmp_path):
    from pysendmail.config.aliases import read_aliases
    from pysendmail.config.compiled import write_compiled_aliases

    source = tmp_path / "aliases"
    source.write_text('sales: alice,\n\tbob\ndevnull: "|/bin/cat >/dev/null"\n')
    table = AliasTable(source)
    assert [t.value for t in table.lookup("SALES").targets] == ["alice", "bob"]
    write_compiled_aliases(read_aliases(source))
    set_mtime(source, 1_000)
    compiled = AliasTable(source)
    assert [t.value for t in compiled.lookup("sales").targets] == ["alice", "bob"]
    assert compiled.lookup("devnull").targets[0].value == "|/bin/cat >/dev/null"
    assert compiled._compiled is not None  # answered from the compiled form
    assert compiled.lookup("nobody") is None


def test_a_map_shared_between_threads(tmp_path):
    import threading

    source = tmp_path / "access"
    source.write_text("".join(f"k{i} v{i}\n" for i in range(200)))
    compile_source(source)
    shared = open_map(spec(source))
    wrong: list[str] = []

    def look() -> None:
        for i in range(200):
            if shared.lookup(f"K{i}") != f"v{i}":
                wrong.append(f"k{i}")

    threads = [threading.Thread(target=look) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert shared._db is not None


def test_a_missing_file_keeps_failing_and_recovers_when_it_appears(tmp_path):
    missing = open_map(spec(tmp_path / "later"))
    for _ in range(2):
        with pytest.raises(ConfigError):
            missing.lookup("x")
    (tmp_path / "later").write_text("x found\n")
    assert missing.lookup("x") == "found"
    aliases = AliasTable(tmp_path / "aliases")
    with pytest.raises(ConfigError):
        aliases.lookup("a")
    (tmp_path / "aliases").write_text("a: b\n")
    assert aliases.lookup("a").targets[0].value == "b"
