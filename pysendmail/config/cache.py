"""The translated configuration, cached for the `sendmail` submission path.

Scripts start `sendmail` once per message, so translating sendmail.cf (a Lark parse
of ~2000 lines) on every start would dominate. `load_config()` keeps the `Config` (as
`marshal` data, config.snapshot) in the user's cache directory
(`$XDG_CACHE_HOME/pysendmail`, default `~/.cache/pysendmail`) and uses it while every
file it was built from (the cf and the files its F lines read) has the same mtime and
size, and the inputs that are not files (command-line overrides, host name, user,
pysendmail's version) are the same. Otherwise it translates again and rewrites the cache.

Loading a fresh cache imports neither lark nor the translator, nor pickle. The cache is only
trusted in a directory owned by the user and writable by no one else; when there is
no such place, the config is translated every time (correct, only slower).
"""

from __future__ import annotations

import os

from pysendmail.config.model import Config, Overrides
from pysendmail.config.snapshot import SnapshotError, freeze, read_header, thaw

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO, TypeVar

    T = TypeVar("T")

CACHE_FORMAT = 2  # 2: marshal (config.snapshot) instead of pickle
# Each cf, override set and host name has its own file; more than this many, and the
# oldest are removed when a new one is written (a test suite makes hundreds).
MAX_CACHED_CONFIGS = 32
SYSTEM_CF = "/etc/mail/sendmail.cf"  # as config.translate.SYSTEM_CF, without importing it


def cache_dir(env: dict[str, str] | None = None) -> str | None:
    """The per-user cache directory, or None when there is no home to put it in."""
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CACHE_HOME")
    if not base:
        home = env.get("HOME") or os.path.expanduser("~")
        if not home or home == "~":
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "pysendmail")


def _file_stamp(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_mtime_ns, info.st_size)


def _identity(cf_path: str | None, overrides: Overrides | None, hostname: str | None) -> str:
    from pysendmail import __version__

    parts = [
        str(CACHE_FORMAT),
        __version__,
        cf_path or "<embedded default>",
        repr(sorted((overrides.options if overrides else {}).items())),
        repr(sorted((overrides.macros if overrides else {}).items())),
        hostname or os.uname().nodename,
        str(os.geteuid()),
        os.environ.get("XDG_STATE_HOME", ""),
        os.environ.get("HOME", ""),
    ]
    return "\0".join(parts)


def _safe_dir(directory: str) -> bool:
    try:
        info = os.stat(directory)
    except OSError:
        return False
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _nearest_existing_is_mine(directory: str) -> bool:
    """Whether the closest existing ancestor of `directory` (itself included) is ours."""
    current = os.path.abspath(directory)
    while True:
        try:
            return os.stat(current).st_uid == os.geteuid()
        except FileNotFoundError:
            parent = os.path.dirname(current)
            if parent == current:
                return False
            current = parent
        except (OSError, ValueError):
            return False


def _checksum(identity: str) -> int:
    """32-bit FNV-1a of the identity: zlib's crc32 would load a shared library at every
    start only to name a file."""
    digest = 0x811C9DC5
    for byte in identity.encode("utf-8", "surrogateescape"):
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return digest


def _cache_file(identity: str, directory: str) -> str:
    # A checksum only picks the file name; the identity inside the file is compared whole.
    digest = _checksum(identity)
    return os.path.join(directory, f"config-{digest:08x}.marshal")


def _read_cache(path: str, identity: str) -> Config | None:
    try:
        with open(path, "rb") as stream:
            if os.fstat(stream.fileno()).st_uid != os.geteuid():
                return None
            found = read_header(stream.read())
        if found is None:
            return None
        (stored_identity, stamps), payload = found
        if stored_identity != identity:
            return None
        for source, stamp in stamps:
            if _file_stamp(source) != (tuple(stamp) if stamp is not None else None):
                return None
        return thaw(payload)
    except Exception:  # an unreadable, truncated or outdated cache is only a miss
        return None


def _write_cache(path: str, identity: str, config: Config) -> None:
    if any(source.startswith("|") for source in config.source_files):
        return  # an F|program class: sendmail runs the program at every start, so do we

    stamps = tuple((source, _file_stamp(source)) for source in config.source_files)
    try:
        data = freeze(config, (identity, stamps))
    except (SnapshotError, ValueError):
        return  # a value the snapshot cannot hold: no cache, translated every time
    _store(path, lambda out: out.write(data))


def _store(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Write one cache file atomically (0600, in a directory only we can write)."""
    import pickle
    import tempfile

    directory = os.path.dirname(path)
    if not _nearest_existing_is_mine(directory):
        return  # e.g. root with another user's HOME (sudo): leave their home alone
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not _safe_dir(directory):
            return
        fd, tmp = tempfile.mkstemp(prefix=".config-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        _prune(directory, keep=path)
    except (OSError, pickle.PicklingError):
        pass  # no cache this time: the value itself is fine


def cached_derivation(kind: str, identity: str, build: Callable[[], T]) -> T:
    """A value derived from a configuration (the rules engine's compiled rules), kept in
    the same cache as the Config: `build()` runs only when no file holds `identity`, which
    must name everything the value depends on (it is compared whole, not by checksum)."""
    directory = cache_dir()
    if directory is None:
        return build()
    import pickle  # what is derived holds more kinds of values than a Config

    digest = _checksum(identity)
    path = os.path.join(directory, f"config-{kind}-{digest:08x}.pickle")
    if _safe_dir(directory):
        try:
            with open(path, "rb") as stream:
                if os.fstat(stream.fileno()).st_uid == os.geteuid():
                    stored_identity, value = pickle.load(stream)
                    if stored_identity == identity:
                        return value
        except Exception:  # a missing, truncated or outdated file is only a miss
            pass
    value = build()
    _store(path, lambda out: pickle.dump((identity, value), out, pickle.HIGHEST_PROTOCOL))
    return value


def _prune(directory: str, keep: str) -> None:
    """Remove the least recently written cache files beyond MAX_CACHED_CONFIGS."""
    entries = []
    with os.scandir(directory) as listing:
        for entry in listing:
            if entry.name.startswith("config-") and entry.name.endswith((".pickle", ".marshal")):
                try:
                    entries.append((entry.stat().st_mtime_ns, entry.path))
                except FileNotFoundError:
                    continue
    entries.sort(reverse=True)
    for _, old in entries[MAX_CACHED_CONFIGS:]:
        if old != keep:
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass  # another process pruned it first


def load_config(
    cf_path: str | os.PathLike[str] | None = None,
    overrides: Overrides | None = None,
    *,
    hostname: str | None = None,
    use_cache: bool = True,
) -> Config:
    """The Config for `cf_path` (None: /etc/mail/sendmail.cf if it exists, else the
    embedded default), from the cache when it is fresh. Raises ConfigError when the cf
    cannot be read."""
    if cf_path is not None:
        resolved: str | None = os.fspath(cf_path)
    else:
        resolved = SYSTEM_CF if os.path.exists(SYSTEM_CF) else None
    identity = _identity(resolved, overrides, hostname)
    directory = cache_dir() if use_cache else None
    path = _cache_file(identity, directory) if directory is not None else None
    if path is not None and _safe_dir(os.path.dirname(path)):
        config = _read_cache(path, identity)
        if config is not None:
            return config
    from pysendmail.config.translate import translate

    config = translate(resolved, overrides, hostname=hostname)
    if path is not None:
        _write_cache(path, identity, config)
    return config
