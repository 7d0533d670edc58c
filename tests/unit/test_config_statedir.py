"""The state directory of a non-root embedded default is made ready."""

from __future__ import annotations

import stat
from pathlib import Path

from pysendmail.config.model import Overrides
from pysendmail.config.statedir import prepare_state_dir
from pysendmail.config.translate import DefaultEnvironment, translate


def test_a_fresh_state_dir_gets_its_directories_and_an_aliases_file(tmp_path: Path) -> None:
    state = tmp_path / "state" / "pysendmail"
    config = translate(
        None, hostname="h.example", default_environment=DefaultEnvironment(False, state)
    )
    created = prepare_state_dir(config)
    for sub in ("mqueue", "hoststat", "mail"):
        assert (state / sub).is_dir()
        assert stat.S_IMODE((state / sub).stat().st_mode) == 0o700
    assert (state / "aliases").read_text().startswith("#")
    assert str(state / "aliases") in created
    # A second run changes nothing.
    (state / "aliases").write_text("root: alice\n")
    assert prepare_state_dir(config) == []
    assert (state / "aliases").read_text() == "root: alice\n"


def test_root_default_makes_nothing_where_the_queue_exists(tmp_path: Path) -> None:
    config = translate(
        None,
        Overrides(options={"QueueDirectory": str(tmp_path), "HostStatusDirectory": str(tmp_path)}),
        hostname="h.example",
        default_environment=DefaultEnvironment(True, None),
    )
    assert prepare_state_dir(config) == []


def test_root_embedded_default_gets_its_queue_directory(tmp_path: Path) -> None:
    queue_dir = tmp_path / "spool" / "mqueue"
    status_dir = queue_dir / ".hoststat"
    options = {"QueueDirectory": str(queue_dir), "HostStatusDirectory": str(status_dir)}
    config = translate(
        None,
        Overrides(options=options),
        hostname="h.example",
        default_environment=DefaultEnvironment(True, None),
    )
    assert prepare_state_dir(config) == [str(queue_dir), str(status_dir)]
    assert stat.S_IMODE(queue_dir.stat().st_mode) == 0o700
    assert prepare_state_dir(config) == []


def test_a_real_cf_gets_nothing_made(tmp_path: Path, oracle_dir: Path) -> None:
    queue_dir = tmp_path / "missing-queue"
    cf = oracle_dir / "configs" / "office" / "office.cf"
    config = translate(
        str(cf), Overrides(options={"QueueDirectory": str(queue_dir)}), hostname="h.example"
    )
    assert prepare_state_dir(config) == []
    assert not queue_dir.exists()
