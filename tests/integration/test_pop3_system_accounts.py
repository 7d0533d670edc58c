"""`pysendmail-pop3d --system-accounts`: a real account made here with useradd and a
known password (removed after), checked through /etc/shadow and libcrypt's crypt()."""

from __future__ import annotations

import os
import poplib
import shutil
import subprocess

import pytest

from pysendmail import maildrop, sysaccounts
from tests.integration.pop3_support import message
from tests.integration.test_pop3_cli import Running

PASSWORD = "letmein-9"


@pytest.fixture
def account():
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("openssl"):
        pytest.skip("making a real account needs root, useradd and openssl")
    if not sysaccounts.available():
        pytest.skip("no libcrypt on this machine")
    name = f"pysmpop{os.getpid() % 100000}"
    # the hash comes from openssl, not from the code under test
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "pysendmailtest", PASSWORD],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    useradd = ["useradd", "--no-create-home", "--no-user-group", "--shell", "/usr/sbin/nologin"]
    subprocess.run([*useradd, "--password", hashed, name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def test_system_account_logs_in_and_a_locked_one_does_not(account, oracle_dir, tmp_path):
    spool = tmp_path / "mail"
    spool.mkdir()
    maildrop.append_mbox(spool / account, "sender@example.com", [message(1)])
    cf = oracle_dir / "configs" / "office" / "office.cf"
    argv = ["-C", str(cf), "--foreground", "--listen", "127.0.0.1:0", "--mailbox-dir", str(spool)]
    daemon = Running([*argv, "--allow-plaintext-auth", "--system-accounts"])
    try:
        assert any("system accounts (/etc/shadow" in line for line in daemon.banner)
        client = poplib.POP3("127.0.0.1", daemon.port, timeout=10)
        client.user(account)
        client.pass_(PASSWORD)
        assert client.stat()[0] == 1
        client.quit()
        subprocess.run(["usermod", "-L", account], check=True)
        client = poplib.POP3("127.0.0.1", daemon.port, timeout=10)
        client.user(account)
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.pass_(PASSWORD)
        client.quit()
    finally:
        assert daemon.stop() == 0


def test_shadow_rules(account, tmp_path):
    shadow = tmp_path / "shadow"
    stored = sysaccounts.shadow_entry(account)
    assert stored is not None

    def check(user: str, password: str, **fields: str) -> bool:
        line = list(stored)
        line[0] = user
        line[1] = fields.get("hash", line[1])
        line[7] = fields.get("expire", "")
        shadow.write_text(":".join(line) + "\n")
        return sysaccounts.verify_system_account(user, password, shadow=shadow, today=20000)

    assert check(account, PASSWORD)
    assert not check(account, PASSWORD + "x")
    assert not check(account, PASSWORD, hash="!" + stored[1])  # locked
    assert not check(account, PASSWORD, hash="")  # no password: never a login
    assert not check(account, PASSWORD, expire="19999")  # expired yesterday
    assert check(account, PASSWORD, expire="20001")
    assert not check("root", PASSWORD)  # uid 0 (below 1000) is never a POP3 user
    assert not check("no-such-user-here", PASSWORD)
