"""config.snapshot: a Config stored as marshal data comes back equal, its rarely read
parts (the raw cf, the rulesets) decoded only when first read."""

from __future__ import annotations

import marshal
from pathlib import Path

import pytest

from pysendmail.config.model import Config, FrozenMap
from pysendmail.config.snapshot import SnapshotError, freeze, read_header, thaw
from pysendmail.config.translate import translate
from pysendmail.record import replace

CONFIGS = ("debian/debian.cf", "office/office.cf", "nullclient/nullclient.cf")


def stored_and_back(config: Config, header: object = ("identity", ())) -> Config:
    found = read_header(freeze(config, header))
    assert found is not None
    assert found[0] == header
    return thaw(found[1])


@pytest.mark.parametrize("name", CONFIGS)
def test_a_translated_config_comes_back_equal(oracle_dir: Path, name: str) -> None:
    config = translate(oracle_dir / "configs" / name)
    back = stored_and_back(config)
    assert back == config
    assert hash(back) == hash(config)
    assert type(back) is Config  # comparing read the lazy parts: a plain Config now


def test_the_embedded_default_comes_back_equal() -> None:
    config = translate(None)
    assert stored_and_back(config) == config


def test_cf_and_rulesets_are_decoded_only_when_read(oracle_dir: Path) -> None:
    config = translate(oracle_dir / "configs/office/office.cf")
    back = stored_and_back(config)
    assert "cf" not in back.__dict__ and "rulesets" not in back.__dict__
    assert back.hostname == config.hostname and back.mailers == config.mailers
    assert "rulesets" not in back.__dict__
    assert back.rulesets == config.rulesets
    assert back.cf == config.cf
    assert type(back) is Config and "_snapshot_lazy" not in back.__dict__


def test_records_frozen_maps_and_paths_keep_their_types(oracle_dir: Path) -> None:
    config = replace(translate(None), state_dir=Path("/var/lib/somewhere"))
    back = stored_and_back(config)
    assert back.state_dir == Path("/var/lib/somewhere")
    assert type(back.mailers) is FrozenMap
    with pytest.raises(TypeError):
        back.mailers["new"] = back.mailers["local"]  # type: ignore[index]
    assert back.mailers["local"].location == config.mailers["local"].location


def test_objects_shared_in_the_config_stay_shared(oracle_dir: Path) -> None:
    config = translate(oracle_dir / "configs/office/office.cf")
    shared = {id(r) for r in config.cf.rulesets}
    back = stored_and_back(config)
    back_ids = {id(r) for r in back.cf.rulesets}
    expected = sum(id(r) in shared for r in config.rulesets.values())
    assert expected > 0
    assert sum(id(r) in back_ids for r in back.rulesets.values()) == expected


def test_a_record_whose_fields_changed_makes_the_snapshot_unreadable() -> None:
    found = read_header(freeze(translate(None), "h"))
    assert found is not None
    payload = list(found[1])
    classes = [list(entry) for entry in payload[2]]
    classes[0][2] = (*classes[0][2], "a_field_added_later")
    payload[2] = [tuple(entry) for entry in classes]
    with pytest.raises(SnapshotError):
        thaw(tuple(payload))


def test_other_data_is_no_snapshot() -> None:
    assert read_header(b"not marshal data") is None
    assert read_header(marshal.dumps(("an", "old", "format"))) is None


def test_a_value_of_an_unknown_type_cannot_be_stored() -> None:
    config = replace(translate(None), options=FrozenMap({"Odd": object()}))
    with pytest.raises(SnapshotError):
        freeze(config, "h")
