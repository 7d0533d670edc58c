"""The scrypt password file used by SMTP AUTH and POP3."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pysendmail import passwd
from pysendmail.errors import ConfigError


def test_set_then_verify(tmp_path: Path) -> None:
    path = tmp_path / "pysendmail.passwd"
    passwd.set_password("alice", "correct horse", path=path)
    assert passwd.verify("alice", "correct horse", path=path)
    assert not passwd.verify("alice", "wrong", path=path)
    assert not passwd.verify("bob", "correct horse", path=path)


def test_file_holds_no_clear_text_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "pysendmail.passwd"
    passwd.set_password("alice", "s3cret-pass", path=path)
    text = path.read_text()
    assert "s3cret-pass" not in text
    assert text.startswith("alice:$scrypt$ln=14,r=8,p=1$")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_changing_a_password_keeps_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "pysendmail.passwd"
    path.write_text("# users of the office\n")
    passwd.set_password("alice", "one", path=path)
    passwd.set_password("bob", "two", path=path)
    passwd.set_password("alice", "three", path=path)
    lines = path.read_text().splitlines()
    assert lines[0] == "# users of the office"
    assert [line.split(":")[0] for line in lines[1:]] == ["alice", "bob"]
    assert passwd.verify("alice", "three", path=path)
    assert not passwd.verify("alice", "one", path=path)
    assert passwd.verify("bob", "two", path=path)


def test_same_password_gets_different_salts(tmp_path: Path) -> None:
    assert passwd.hash_password("x") != passwd.hash_password("x")


def test_malformed_line_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "pysendmail.passwd"
    path.write_text("# c\nalice:plaintext\n")
    with pytest.raises(ConfigError) as caught:
        passwd.verify("alice", "plaintext", path=path)
    assert str(caught.value) == f"{path}:2:1: malformed password entry"


def test_missing_file_verifies_nobody(tmp_path: Path) -> None:
    assert not passwd.verify("alice", "x", path=tmp_path / "absent")


def test_bad_user_names_are_refused(tmp_path: Path) -> None:
    for bad in ("", "a:b", "a b", "#x"):
        with pytest.raises(ValueError):
            passwd.set_password(bad, "x", path=tmp_path / "p")


def test_malformed_hash_never_matches() -> None:
    assert not passwd.check_hash("$scrypt$ln=99,r=8,p=1$AAAA$AAAA", "x")
    assert not passwd.check_hash("nothing", "x")


def test_path_is_beside_the_cf_or_in_the_state_dir(tmp_path: Path) -> None:
    assert passwd.passwd_path("/etc/mail/sendmail.cf") == Path("/etc/mail/pysendmail.passwd")
    assert passwd.passwd_path(None, tmp_path) == tmp_path / "pysendmail.passwd"
    assert passwd.passwd_path(None) == passwd.DEFAULT_PATH
