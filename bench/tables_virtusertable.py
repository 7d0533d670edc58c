"""Load a 100,000-entry virtusertable from its text source and from its compiled form.

    python bench/tables_virtusertable.py [entries]

Prints, for a generated virtusertable in a temporary directory:
- source: opening the map and the first lookup, which reads the whole text source
  (what happens when the source is newer than its compiled form);
- makemap: building the compiled form (makemap hash NAME < NAME);
- compiled: opening the map and the first lookup through the compiled form (what a
  `sendmail` process that starts for one message pays);
- lookups: the mean time of one lookup in each;
- check: the full per-line grammar check of `pysendmail-cf check` (parse_map_source).
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pysendmail.cli import makemap
from pysendmail.config.compiled import Map, MapFlags, compiled_path, source_path
from pysendmail.config.mapsource import MapKind, parse_map_source


def generate(path: Path, entries: int) -> None:
    with path.open("w") as out:
        for i in range(entries):
            out.write(f"user{i}@virtual{i % 100}.example.org\tlocal{i}\n")
        out.write("@virtual0.example.org\tcatchall\n")


def new_map(path: Path) -> Map:
    return Map("virtuser", "hash", MapFlags(), source_path(path), compiled_path(path))


def timed(action):
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    keys = [f"user{i}@virtual{i % 100}.example.org" for i in range(0, entries, entries // 1000)]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "virtusertable"
        generate(source, entries)

        from_source = new_map(source)
        load_source, value = timed(lambda: from_source.lookup(keys[0]))
        assert value == "local0"
        lookup_source, _ = timed(lambda: [from_source.lookup(k) for k in keys])

        text = source.read_text()
        build, status = timed(
            lambda: makemap.main(
                ["makemap", "hash", str(source)], io.StringIO(text), io.StringIO(), io.StringIO()
            )
        )
        assert status == 0
        os.utime(source, (1, 1))  # the compiled form is the newer one

        from_compiled = new_map(source)
        load_compiled, value = timed(lambda: from_compiled.lookup(keys[0]))
        assert value == "local0" and from_compiled._db is not None
        lookup_compiled, _ = timed(lambda: [from_compiled.lookup(k) for k in keys])

        check, parsed = timed(lambda: parse_map_source(text, str(source), MapKind.VIRTUSER))
        assert parsed.diagnostics == ()

    print(f"entries                 {entries}")
    print(f"source: open+1st lookup {load_source * 1000:9.1f} ms")
    print(f"makemap (build .pysm)   {build * 1000:9.1f} ms")
    print(f"compiled: open+1st look {load_compiled * 1000:9.2f} ms")
    print(f"lookup from source      {lookup_source / len(keys) * 1e6:9.2f} us")
    print(f"lookup from compiled    {lookup_compiled / len(keys) * 1e6:9.2f} us")
    print(f"grammar check (all)     {check * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
