"""load_config(): the cached Config of the submission path, rebuilt when a source changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pysendmail.config import cache
from pysendmail.config.cache import load_config
from pysendmail.config.model import Overrides
from tests.conftest import subprocess_env

DEFAULT_CF = Path(cache.__file__).with_name("default.cf")

HOST = "mail.example.com"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "pysendmail"


@pytest.fixture
def office(oracle_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the office cf and its class files, free to change."""
    src = oracle_dir / "configs/office"
    dest = tmp_path / "office"
    dest.mkdir()
    for name in ("local-host-names", "relay-domains"):
        (dest / name).write_text((src / name).read_text())
    text = (
        (src / "office.cf")
        .read_text()
        .replace(str(src) + "/local-host-names", str(dest / "local-host-names"))
    )
    text = text.replace(str(src) + "/relay-domains", str(dest / "relay-domains"))
    (dest / "office.cf").write_text(text)
    return dest


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    stamp = path.stat().st_mtime_ns + 2_000_000_000  # a new mtime even on coarse clocks
    os.utime(path, ns=(stamp, stamp))


def test_second_load_comes_from_the_cache(office: Path, cache_home: Path) -> None:
    first = load_config(office / "office.cf", hostname=HOST)
    files = list(cache_home.glob("config-*.marshal"))
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o777 == 0o600
    second = load_config(office / "office.cf", hostname=HOST)
    assert second == first
    assert second is not first


def test_a_changed_cf_is_translated_again(office: Path, cache_home: Path) -> None:
    assert load_config(office / "office.cf", hostname=HOST).option("MaxMessageSize") == 100000
    rewrite(office / "office.cf", "O MaxMessageSize=100000", "O MaxMessageSize=2000")
    assert load_config(office / "office.cf", hostname=HOST).option("MaxMessageSize") == 2000


def test_a_changed_class_file_is_read_again(office: Path, cache_home: Path) -> None:
    assert "new.example.org" not in load_config(office / "office.cf", hostname=HOST).relay_domains
    rewrite(office / "relay-domains", "partner.example.org", "partner.example.org\nnew.example.org")
    assert "new.example.org" in load_config(office / "office.cf", hostname=HOST).relay_domains


def test_overrides_are_part_of_the_cache_identity(office: Path, cache_home: Path) -> None:
    plain = load_config(office / "office.cf", hostname=HOST)
    other = load_config(
        office / "office.cf", Overrides(options={"MaxHopCount": "5"}), hostname=HOST
    )
    assert (plain.option("MaxHopCount"), other.option("MaxHopCount")) == (25, 5)
    assert len(list(cache_home.glob("config-*.marshal"))) == 2


def test_a_corrupt_cache_is_rebuilt(office: Path, cache_home: Path) -> None:
    load_config(office / "office.cf", hostname=HOST)
    (cached,) = cache_home.glob("config-*.marshal")
    cached.write_bytes(b"not a pickle")
    assert load_config(office / "office.cf", hostname=HOST).option("MaxMessageSize") == 100000
    assert cached.read_bytes() != b"not a pickle"


def change_behind_the_cache(cf: Path, old: str, new: str) -> None:
    """Change the cf keeping its size and mtime: only a cache that is not read sees it."""
    assert len(old) == len(new)
    before = cf.stat()
    cf.write_text(cf.read_text().replace(old, new))
    os.utime(cf, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_trusted_cache_is_believed_while_stamps_match(office: Path, cache_home: Path) -> None:
    load_config(office / "office.cf", hostname=HOST)
    change_behind_the_cache(office / "office.cf", "Size=100000", "Size=300000")
    assert load_config(office / "office.cf", hostname=HOST).option("MaxMessageSize") == 100000


def test_a_world_writable_cache_dir_is_not_trusted(office: Path, cache_home: Path) -> None:
    load_config(office / "office.cf", hostname=HOST)
    cache_home.chmod(0o777)
    change_behind_the_cache(office / "office.cf", "Size=100000", "Size=300000")
    assert load_config(office / "office.cf", hostname=HOST).option("MaxMessageSize") == 300000


def test_no_cache_directory_still_gives_a_config(
    office: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "")
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)
    assert cache.cache_dir() is None
    assert load_config(office / "office.cf", hostname=HOST).hostname == HOST


def test_a_cached_load_imports_neither_lark_nor_the_translator(
    office: Path, tmp_path: Path
) -> None:
    code = (
        "import sys; from pysendmail.config.cache import load_config; "
        f"c = load_config({str(office / 'office.cf')!r}, hostname={HOST!r}); "
        "print(c.option('MaxMessageSize'), 'lark' in sys.modules, "
        "'pysendmail.config.translate' in sys.modules)"
    )
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert first.stdout.split() == ["100000", "True", "True"]
    assert second.stdout.split() == ["100000", "False", "False"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_no_cache_is_written_into_a_home_that_is_not_ours(
    office: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "someone"
    home.mkdir()
    os.chown(home, 4321, 4321)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    assert load_config(office / "office.cf", hostname=HOST).hostname == HOST
    assert list(home.iterdir()) == []


def test_the_cache_keeps_only_the_newest_entries(
    office: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "MAX_CACHED_CONFIGS", 3)
    for number in range(5):
        overrides = Overrides(options={"MaxHopCount": str(30 + number)})
        load_config(office / "office.cf", overrides, hostname=HOST)
        newest = max(cache_home.glob("config-*.marshal"), key=lambda p: p.stat().st_mtime_ns)
        stamp = 1_000_000_000 * (number + 1)  # distinct mtimes, oldest first
        os.utime(newest, ns=(stamp, stamp))
    kept = sorted(p.stat().st_mtime_ns for p in cache_home.glob("config-*.marshal"))
    assert kept == [3_000_000_000, 4_000_000_000, 5_000_000_000]
    last = Overrides(options={"MaxHopCount": "34"})
    assert load_config(office / "office.cf", last, hostname=HOST).option("MaxHopCount") == 34
    first = Overrides(options={"MaxHopCount": "30"})
    assert load_config(office / "office.cf", first, hostname=HOST).option("MaxHopCount") == 30


# What a submission must not load: the grammar, the command-line framework, the resolver,
# and the standard library's costliest modules (bench/README.md, "sendmail -t -i").
HEAVY_FOR_SUBMISSION = (
    "lark",
    "click",
    "dns",
    "typing",
    "tempfile",
    "random",
    "logging",
    "email",
    "inspect",
    "dataclasses",
    "pysendmail.config.translate",
    "pysendmail.rules.engine",
    "pysendmail.rules.routes",
    # the standard library's own costly imports (bench/README.md); not functools nor
    # collections, which the SQLite module of the compiled aliases imports itself
    "re",
    "pathlib",
    "enum",
    "pickle",
    "_pickle",
    "threading",
)


def test_a_submission_loads_none_of_the_heavy_modules(tmp_path: Path) -> None:
    """On a cf whose routing rules are stock (the embedded default's), aliases compiled
    (the compiled form is SQLite: sqlite3 is the one costly module a submission needs)."""
    queue = tmp_path / "mqueue"
    queue.mkdir(mode=0o700)
    (tmp_path / "aliases").write_text("postmaster: root\nteam: root, postmaster\n")
    show = "import sys; print(' '.join(sorted(sys.modules)))"
    submit = (
        "import sys, atexit; "
        "atexit.register(lambda: print(' '.join(sorted(sys.modules)))); "
        "from pysendmail.cli.main import main; sys.exit(main(['sendmail', *sys.argv[1:]]))"
    )
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    options = ["-C", str(DEFAULT_CF), "-O", f"QueueDirectory={queue}"]
    options += ["-O", f"AliasFile={tmp_path / 'aliases'}"]
    newaliases = [sys.executable, "-c", submit, *options, "-bi"]
    assert subprocess.run(newaliases, env=env, capture_output=True).returncode == 0
    message = b"From: alice@example.com\nTo: team, bob@example.org\nSubject: s\n\nbody\n"
    # The first submission translates the cf for these options (lark: site-packages);
    # the second, measured, runs without `site`, whose .pth files may import re or typing.
    for python in ([sys.executable], [sys.executable, "-S"]):
        argv = [*python, "-c", submit, *options, "-odq", "-t", "-i"]
        run = subprocess.run(argv, input=message, env=env, capture_output=True)
        assert run.returncode == 0, run.stderr
    bare = subprocess.run(
        [sys.executable, "-S", "-c", show], env=env, capture_output=True, text=True
    )
    loaded = set(run.stdout.decode().split()) - set(bare.stdout.split())
    assert len(list(queue.glob("qf*"))) == 2
    assert "pysendmail.queue.store" in loaded
    heavy = {name for name in loaded if name.split(".")[0] in HEAVY_FOR_SUBMISSION}
    heavy |= {name for name in loaded if name in HEAVY_FOR_SUBMISSION}
    assert heavy == set()


INSTALLED_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pysendmail"


def test_the_installed_command_imports_nothing_heavy_before_pysendmail(tmp_path: Path) -> None:
    """The script pip installs as `pysendmail` (sendmail, mailq ... link to it) adds no
    import of its own to a submission: pip's console-script wrapper imported `re`."""
    queue = tmp_path / "mqueue"
    queue.mkdir(mode=0o700)
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    options = ["-C", str(DEFAULT_CF), "-O", f"QueueDirectory={queue}", "-odq", "-t", "-i"]
    message = b"From: alice@example.com\nTo: bob@example.org\nSubject: s\n\nbody\n"
    # the first run fills the configuration cache (the translator imports re and lark)
    for flags in ([], ["-S", "-X", "importtime"]):
        argv = [sys.executable, *flags, str(INSTALLED_SCRIPT), *options]
        run = subprocess.run(argv, input=message, env=env, capture_output=True)
        assert run.returncode == 0, run.stderr
    imported = {
        line.split("|")[-1].strip()
        for line in run.stderr.decode().splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "pysendmail.cli.main" in imported
    assert imported.isdisjoint({"re", "typing", "enum", "pathlib", "pickle"}), imported
    assert len(list(queue.glob("qf*"))) == 2
