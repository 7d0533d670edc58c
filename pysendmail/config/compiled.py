"""Compiled maps: our own on-disk form of a map source, and the map objects lookups use.

The compiled form is an SQLite database at `<source>.pysm`, a name sendmail never uses,
so pysendmail never writes a file sendmail reads (`access.db`, `aliases.db` stay theirs).
Why SQLite and not a pickle: a lookup opens the file and reads one row through an index,
so a `sendmail` process that starts for one message does not load a 100,000-entry table;
the file cannot run code when read (a pickle can, and map files are not always root's);
and a build goes to a temporary file that is renamed into place, so a reader sees the old
map or the new one, never half of one. Keys and values are stored as bytes (UTF-8 with
surrogate escapes), so any source byte survives.

A compiled map is used only while it is at least as new as its source; otherwise the
source text is read (makemap's line discipline, `mapsource.split_map_lines`). This is how
an administrator who edits `/etc/mail/access` and forgets makemap still gets what the file
says.

`open_map(spec)` gives a `Map` for the file-backed classes (`hash`, `btree`, `dbm`,
`implicit`, `text`) honouring the K-line flags that matter for a lookup: `-f` (keep the
key's case), `-m` (return the key, not the value), `-o` (a missing file is an empty map),
`-a` (append to a found value), `-T` (append on a temporary failure), `-q` (do not strip
quotes from the key), `-z` / `-k` / `-v` (columns of a text map), `-N`/`-O` (null bytes,
meaningless here and accepted).
"""

from __future__ import annotations

import os
from _thread import allocate_lock  # threading.Lock without importing threading

from pysendmail.config.aliases import AliasEntry, AliasFile, parse_aliases, read_aliases
from pysendmail.errors import ConfigError, TempFailure
from pysendmail.record import field, record

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path  # imported where a Path is made: not on the submission path

    from pysendmail.config.mapsource import MapEntry
    from pysendmail.config.model import MapSpec

COMPILED_SUFFIX = ".pysm"
FORMAT_VERSION = "1"
FILE_MAP_CLASSES = frozenset({"hash", "btree", "dbm", "implicit"})
# The suffixes sendmail adds to a K line's file name for its own databases.
_SENDMAIL_DB_SUFFIXES = (".db", ".dir", ".pag")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(data: bytes) -> str:
    return bytes(data).decode("utf-8", "surrogateescape")


def _source_name(map_file: str | os.PathLike[str]) -> str:
    text = os.fspath(map_file)
    for suffix in _SENDMAIL_DB_SUFFIXES:
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def _compiled_name(map_file: str | os.PathLike[str]) -> str:
    return _source_name(map_file) + COMPILED_SUFFIX


def source_path(map_file: str | os.PathLike[str]) -> Path:
    """The text source for a K line's file (`/etc/mail/access.db` -> `/etc/mail/access`)."""
    from pathlib import Path

    return Path(_source_name(map_file))


def compiled_path(map_file: str | os.PathLike[str]) -> Path:
    """Where our compiled form of a map lives: `<source>.pysm`."""
    from pathlib import Path

    return Path(_compiled_name(map_file))


def is_fresh(compiled: str | os.PathLike[str], source: str | os.PathLike[str]) -> bool:
    """True when the compiled file exists and is at least as new as the source (or the
    source is gone)."""
    try:
        compiled_mtime = os.stat(compiled).st_mtime_ns
    except OSError:
        return False
    try:
        return compiled_mtime >= os.stat(source).st_mtime_ns
    except OSError:
        return True


# ---------------------------------------------------------------- writing


@record
class BuildResult:
    path: Path
    entries: int  # entries offered
    ignored: int = 0  # offered but not stored: the key was there and replace was off


def write_compiled(
    dest: str | os.PathLike[str],
    entries: Iterable[tuple[str, str]],
    *,
    fold_case: bool = True,
    append: bool = False,
    replace: bool = True,
    source: str = "",
) -> BuildResult:
    """Write entries (key, value) to a compiled map at `dest`, atomically.

    `append` keeps what an existing compiled map holds (makemap -o). When a key is already
    there, `replace` decides whether the new value wins or the first one stays.
    """
    import tempfile  # only writing a map pays for it
    from pathlib import Path

    dest = Path(dest)

    fd, temp_name = tempfile.mkstemp(prefix=".pysm-", dir=dest.parent or ".")
    os.close(fd)
    count = ignored = 0
    try:
        import sqlite3  # only building or reading a compiled map pays for it

        db = sqlite3.connect(temp_name)
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
            db.execute("CREATE TABLE map (key BLOB PRIMARY KEY, value BLOB)")
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("format", FORMAT_VERSION),
                    ("fold_case", "1" if fold_case else "0"),
                    ("source", source),
                ],
            )
            if append and dest.exists():
                for key, value in iter_compiled(dest):
                    db.execute("INSERT INTO map VALUES (?, ?)", (_encode(key), _encode(value)))
            verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
            rows = [(_encode(key), _encode(value)) for key, value in entries]
            before = db.total_changes
            db.executemany(f"{verb} INTO map VALUES (?, ?)", rows)
            count = len(rows)
            if not replace:
                ignored = count - (db.total_changes - before)
            db.commit()
        finally:
            db.close()
        with open(temp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp_name, _mode_for(dest, source))
        os.replace(temp_name, dest)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return BuildResult(dest, count, ignored)


def _mode_for(dest: Path, source: str) -> int:
    """Keep an existing compiled map's mode, else the source's (authinfo is not for all
    eyes), else owner read-write, group read."""
    from pathlib import Path

    for candidate in (dest, Path(source) if source else None):
        if candidate is not None:
            try:
                return candidate.stat().st_mode & 0o666
            except OSError:
                continue
    return 0o640


def iter_compiled(path: str | os.PathLike[str]) -> Iterator[tuple[str, str]]:
    """Every (key, value) of a compiled map, in the order they were written."""
    db = _connect(os.fspath(path))
    try:
        for key, value in db.execute("SELECT key, value FROM map ORDER BY rowid"):
            yield _decode(key), _decode(value)
    finally:
        db.close()


def _connect(path: str | Path) -> sqlite3.Connection:
    # Reading needs only the C module: the `sqlite3` package adds datetime adapters and
    # imports functools and collections, a third of a submission's cost of a compiled
    # alias file (bench/README.md).
    try:
        import _sqlite3 as sqlite3
    except ImportError:  # pragma: no cover - a Python whose sqlite3 is laid out otherwise
        import sqlite3

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: not a compiled map ({exc})") from exc
    return db


# ---------------------------------------------------------------- reading


@record(frozen=True)
class MapFlags:
    """The K-line flags that change what a lookup returns."""

    fold_case: bool = True  # not -f
    match_only: bool = False  # -m
    optional: bool = False  # -o
    append: str = ""  # -a
    tempfail_append: str = ""  # -T
    dequote: bool = True  # not -q
    delimiter: str | None = None  # -z (text maps); None: white space
    key_column: int = 0  # -k (text maps)
    value_column: int | None = None  # -v (text maps); None: the rest of the line
    space_sub: str | None = None  # -S: what a space in the key stands for (unused here)

    @classmethod
    def from_spec(cls, spec: MapSpec) -> MapFlags:
        return cls.from_flags(_spec_flags(spec))

    @classmethod
    def from_flags(cls, flags: dict[str, str]) -> MapFlags:
        def column(flag: str) -> int | None:
            text = flags.get(flag)
            return int(text) if text and text.isdigit() else None

        delimiter = flags.get("-z")
        if delimiter is not None:
            delimiter = {"\\t": "\t", "\\n": "\n", "\\\\": "\\", "": None}.get(
                delimiter, delimiter[:1]
            )
        return cls(
            fold_case="-f" not in flags,
            match_only="-m" in flags,
            optional="-o" in flags,
            append=flags.get("-a", ""),
            tempfail_append=flags.get("-T", ""),
            dequote="-q" not in flags,
            delimiter=delimiter,
            key_column=column("-k") or 0,
            value_column=column("-v"),
            space_sub=flags.get("-S"),
        )


def _spec_flags(spec: MapSpec) -> dict[str, str]:
    flags = dict(spec.flags)
    if not flags:
        for arg in spec.args:
            if arg.startswith("-") and len(arg) >= 2:
                flags[arg[:2]] = arg[2:]
    return flags


def _spec_file(spec: MapSpec) -> str | None:
    if spec.file:
        return spec.file
    files = [arg for arg in spec.args if not arg.startswith("-")]
    return files[-1] if files else None


@record
class Map:
    """A map whose entries come from a compiled file or, failing that, the text source."""

    name: str
    map_class: str
    flags: MapFlags
    source: Path | str | None
    compiled: Path | str | None
    _table: dict[str, str] | None = field(default=None, repr=False)
    _db: sqlite3.Connection | None = field(default=None, repr=False)
    _loaded: bool = field(default=False, repr=False)
    # The daemons share one Map between threads: loading and every SQLite read hold this.
    _lock: object = field(default_factory=allocate_lock, repr=False)

    def _ensure_loaded(self) -> None:
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def _load(self) -> None:
        fresh = self.compiled is not None and self.source is not None
        if fresh and is_fresh(self.compiled, self.source):
            self._db = _connect(self.compiled)
            return
        if self.source is None:
            self._table = {}
            return
        try:
            with open(self.source, "rb") as stream:
                data = stream.read()
        except FileNotFoundError as exc:
            if self.flags.optional:
                self._table = {}
                return
            raise ConfigError(f"{self.name}: cannot open map file {self.source}") from exc
        except OSError as exc:
            raise TempFailure(
                f"{self.name}: cannot read map file {self.source}: {exc.strerror}"
                + self.flags.tempfail_append
            ) from exc
        text = data.decode("utf-8", "surrogateescape")
        self._table = self._table_from_text(text)

    def _table_from_text(self, text: str) -> dict[str, str]:
        flags = self.flags
        if self.map_class != "text":
            from pysendmail.config.mapsource import read_table

            return read_table(text, fold_case=flags.fold_case)
        table: dict[str, str] = {}
        for line in text.split("\n"):
            line = line.removesuffix("\r")
            if not line or line.startswith("#"):
                continue
            columns = line.split(flags.delimiter) if flags.delimiter else line.split()
            if len(columns) <= flags.key_column:
                continue
            key = columns[flags.key_column]
            if flags.value_column is None:
                value = (flags.delimiter or " ").join(columns[flags.key_column + 1 :])
            elif flags.value_column < len(columns):
                value = columns[flags.value_column]
            else:
                continue
            table.setdefault(key.lower() if flags.fold_case else key, value)
        return table

    def get(self, key: str) -> str | None:
        """The raw stored value for a key as given (no folding, no flags), or None."""
        if not self._loaded:
            self._ensure_loaded()
        if self._db is not None:
            with self._lock:
                row = self._db.execute("SELECT value FROM map WHERE key = ?", (_encode(key),))
                found = row.fetchone()
            return _decode(found[0]) if found else None
        assert self._table is not None
        return self._table.get(key)

    def lookup(self, key: str) -> str | None:
        """Look a key up as sendmail's map would: folded unless -f, -m, -a applied."""
        wanted = key
        if self.flags.dequote and len(wanted) >= 2 and wanted[0] == wanted[-1] == '"':
            wanted = wanted[1:-1]
        if self.flags.fold_case:
            wanted = wanted.lower()
        value = self.get(wanted)
        if value is None:
            return None
        result = key if self.flags.match_only else value
        return result + self.flags.append

    def __contains__(self, key: str) -> bool:
        return self.lookup(key) is not None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._loaded = False


def open_map(spec: MapSpec) -> Map:
    """The Map for a K line of a file-backed class (hash, btree, dbm, implicit, text)."""
    map_class = spec.map_class.lower()
    if map_class not in FILE_MAP_CLASSES and map_class != "text":
        raise ConfigError(
            f"map {spec.name}: class {spec.map_class} is not a file map", spec.location
        )
    flags = MapFlags.from_spec(spec)
    file = _spec_file(spec)
    if file is None:
        raise ConfigError(f"map {spec.name}: no file named", spec.location)
    if map_class == "text":
        return Map(spec.name, map_class, flags, file, None)
    return Map(spec.name, map_class, flags, _source_name(file), _compiled_name(file))


def open_source_map(
    path: str | os.PathLike[str], *, name: str = "", flags: MapFlags | None = None
) -> Map:
    """A hash-class Map over a source file (and its compiled form), without a K line."""
    return Map(
        name or os.fspath(path),
        "hash",
        flags or MapFlags(),
        source_path(path),
        compiled_path(path),
    )


def compile_source(
    source: str | os.PathLike[str], *, fold_case: bool = True
) -> tuple[BuildResult, list[MapEntry]]:
    """Compile a text source next to itself (`access` -> `access.pysm`)."""
    from pysendmail.config.mapsource import split_map_lines

    path = source_path(source)
    entries, _problems = split_map_lines(
        path.read_bytes().decode("utf-8", "surrogateescape"), str(path), fold_case=fold_case
    )
    result = write_compiled(
        compiled_path(path),
        ((e.key, e.value) for e in entries),
        fold_case=fold_case,
        replace=False,
        source=str(path),
    )
    return result, entries


# ---------------------------------------------------------------- aliases


@record
class AliasTable:
    """The aliases of one alias file, from its compiled form while that is fresh, else
    parsed from the source."""

    source: Path | str
    is_local_domain: Callable[[str], bool] | None = None
    _parsed: AliasFile | None = field(default=None, repr=False)
    _compiled: Map | None = field(default=None, repr=False)
    _loaded: bool = field(default=False, repr=False)
    _lock: object = field(default_factory=allocate_lock, repr=False)

    def _load(self) -> None:
        compiled = _compiled_name(self.source)
        if is_fresh(compiled, self.source):
            self._compiled = Map(str(self.source), "hash", MapFlags(), self.source, compiled)
            return
        self._parsed = read_aliases(self.source, is_local_domain=self.is_local_domain, check=False)

    def lookup(self, name: str) -> AliasEntry | None:
        """The entry for a name; a ConfigError when neither file can be read (again at the
        next lookup: a file that appears later is then used)."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self._load()
                    self._loaded = True
        key = name.lower()
        if self._parsed is not None:
            return self._parsed.entries.get(key)
        assert self._compiled is not None
        rhs = self._compiled.get(key)
        if rhs is None:
            return None
        parsed = parse_aliases(f"{key}:{rhs}\n", str(self.source), check=False).entries.get(key)
        return parsed


def write_compiled_aliases(aliases: AliasFile) -> BuildResult:
    """newaliases' output: `<aliasfile>.pysm` with each key and its raw right-hand side."""
    return write_compiled(
        compiled_path(aliases.path),
        ((key, entry.rhs) for key, entry in aliases.entries.items()),
        source=aliases.path,
    )
