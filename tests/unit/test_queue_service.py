"""The queue's remote mailers find AUTH credentials where sendmail finds them."""

from __future__ import annotations

import shutil
from pathlib import Path

from pysendmail.config.model import Overrides
from pysendmail.config.translate import translate
from pysendmail.delivery.remote import AuthInfo
from pysendmail.queue.service import deliverers_for_config, smart_host_credentials


def office_config(oracle_dir: Path, tmp_path: Path, access_text: str):
    office = tmp_path / "office"
    shutil.copytree(oracle_dir / "configs" / "office", office)
    cf = office / "office.cf"
    cf.write_text(cf.read_text().replace(str(oracle_dir / "configs" / "office"), str(office)))
    (office / "access").write_text(access_text)
    options = {"QueueDirectory": str(tmp_path / "mqueue")}
    return translate(str(cf), Overrides(options=options), hostname="mail.example.com")


def test_access_db_authinfo_entries_give_the_smart_host_credentials(oracle_dir, tmp_path):
    config = office_config(
        oracle_dir,
        tmp_path,
        'AuthInfo:smarthost.example.net "U:relayuser" "P:s3cret" "M:PLAIN"\n',
    )
    find = smart_host_credentials(config)
    assert find is not None
    found = find("smarthost.example.net", "127.0.0.1")
    assert isinstance(found, AuthInfo)
    assert (found.user, found.password, found.mechanisms) == ("relayuser", "s3cret", ("PLAIN",))
    assert find("other.example.org", "127.0.0.2") is None
    # and the SMTP mailers the queue runs are given that lookup
    remote = deliverers_for_config(config)["esmtp"]
    assert remote.settings.auth_lookup("smarthost.example.net", "127.0.0.1") == found
