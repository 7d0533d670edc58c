"""The APOP secrets file (pysendmail.passwd): plain-text secrets kept apart from the scrypt
hashes, private to their owner, refused when others could read them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pysendmail import passwd
from pysendmail.errors import ConfigError


def test_secrets_are_stored_beside_the_password_file_mode_0600(tmp_path: Path) -> None:
    path = passwd.apop_path(tmp_path / "pysendmail.passwd")
    assert path == tmp_path / "pysendmail.apop"
    passwd.set_apop_secret("alice", "s3cret: with colon", path=path)
    passwd.set_apop_secret("bob", "other", path=path)
    passwd.set_apop_secret("alice", "changed", path=path)
    assert passwd.read_apop_secrets(path) == {"alice": "changed", "bob": "other"}
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path).st_uid == os.geteuid()
    assert not (tmp_path / "pysendmail.passwd").exists()  # the hash file is not touched


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pysendmail.apop"
    passwd.set_apop_secret("alice", "secret", path=path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="mode 0644"):
        passwd.read_apop_secrets(path)


def test_malformed_line_is_named_and_missing_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "pysendmail.apop"
    assert passwd.read_apop_secrets(path) == {}
    path.write_text("# comment\nalice:ok\nbob\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        passwd.read_apop_secrets(path)
    assert caught.value.location.line == 3


@pytest.mark.parametrize(("user", "secret"), [("a:b", "x"), ("alice", ""), ("alice", "a\nb")])
def test_bad_names_and_secrets_are_refused(tmp_path: Path, user: str, secret: str) -> None:
    with pytest.raises(ValueError):
        passwd.set_apop_secret(user, secret, path=tmp_path / "pysendmail.apop")
