"""The examples for users in cf/ and the embedded default translate without an error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pysendmail.config.mapsource import read_map_source
from pysendmail.config.translate import DEFAULT_CF, translate
from tests.conftest import REPO_ROOT

CF_DIR = REPO_ROOT / "cf"
HOST = "mail.example.org"


@pytest.fixture
def etc_mail(tmp_path: Path) -> Path:
    """cf/ copied to a temporary /etc/mail, the example cf pointed at it."""
    dest = tmp_path / "mail"
    shutil.copytree(CF_DIR, dest)
    cf = dest / "sendmail.cf"
    cf.write_text(cf.read_text().replace("/etc/mail/", f"{dest}/"))
    return dest


def test_example_cf_translates_to_what_its_mc_asks_for(etc_mail: Path) -> None:
    config = translate(etc_mail / "sendmail.cf", hostname="box.example.org")
    assert config.diagnostics == ()
    assert config.hostname == HOST
    assert {"example.org", "mail.example.org", "example.net"} <= config.local_host_names
    assert config.relay_domains == {"partner.example.com"}
    assert config.smart_host == "relay:[smtp.provider.example]"
    assert config.masquerade_as == "example.org"
    assert config.masquerade_domains == {"mail.example.org"}
    assert config.generics_domains == {"mail.example.org"}
    assert config.classes["E"] == {"root"}
    assert [(d.name, d.port, d.modifiers) for d in config.daemons] == [
        ("MTA", 25, frozenset()),
        ("MSA", 587, frozenset("Ea")),
    ]
    assert config.option("MaxMessageSize") == 26214400
    assert config.option("MaxRecipientsPerMessage") == 100
    assert config.option("MaxDaemonChildren") == 20
    assert config.option("PrivacyOptions") == (
        "authwarnings", "needmailhelo", "noexpn", "novrfy", "restrictqrun",
    )  # fmt: skip
    maps = config.maps
    assert {
        name: maps[name].file for name in ("access", "virtuser", "mailertable", "generics")
    } == {
        "access": str(etc_mail / "access"),
        "virtuser": str(etc_mail / "virtusertable"),
        "mailertable": str(etc_mail / "mailertable"),
        "generics": str(etc_mail / "genericstable"),
    }


@pytest.mark.parametrize("name", ["access", "virtusertable", "mailertable", "genericstable"])
def test_example_map_sources_have_no_errors(name: str) -> None:
    source = read_map_source(CF_DIR / name)
    assert [str(d) for d in source.diagnostics] == []
    assert source.entries


def test_embedded_default_translates_without_diagnostics() -> None:
    assert translate(None, hostname=HOST).diagnostics == ()


@pytest.mark.skipif(
    not Path("/usr/share/sendmail/cf/m4/cf.m4").exists() or shutil.which("m4") is None,
    reason="needs m4 and the cf macros of sendmail (Debian package sendmail-cf)",
)
@pytest.mark.parametrize(
    ("mc", "cf"),
    [("pysendmail-default.mc", DEFAULT_CF), ("sendmail.mc", CF_DIR / "sendmail.cf")],
)
def test_shipped_cf_files_are_what_m4_makes_of_their_mc(mc: str, cf: Path) -> None:
    made = subprocess.run(
        ["m4", "/usr/share/sendmail/cf/m4/cf.m4", str(CF_DIR / mc)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body = [line for line in made.splitlines() if not line.startswith("##### ")]
    shipped = [line for line in cf.read_text().splitlines() if not line.startswith("##### ")]
    assert body == shipped
