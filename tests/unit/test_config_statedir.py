"""The state directory of a non-root embedded default is made ready."""

from __future__ import annotations

import stat
from pathlib import Path

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


def test_nothing_is_made_for_a_config_without_a_state_dir() -> None:
    config = translate(
        None, hostname="h.example", default_environment=DefaultEnvironment(True, None)
    )
    assert prepare_state_dir(config) == []
