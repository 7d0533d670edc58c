"""Shared by the cli tests: the users the sendmail 8.17 records were made with."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

import pytest

FIXTURE_USERS = {"alice": 1001, "bob": 1002, "mallory": 1003}


@pytest.fixture(scope="session")
def fixture_users() -> None:
    for name, uid in FIXTURE_USERS.items():
        try:
            pwd.getpwnam(name)
            continue
        except KeyError:
            pass
        if os.geteuid() != 0 or shutil.which("useradd") is None:
            pytest.skip("the fixture users are absent and cannot be created here")
        subprocess.run(
            ["useradd", "-M", "-u", str(uid), "-s", "/usr/sbin/nologin", name], check=True
        )


UNPRIVILEGED_USER = "pysendmail-test"


def unprivileged_user() -> pwd.struct_passwd:
    """The ordinary user `pysendmail-test`, created with useradd when absent (as root)."""
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        pass
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip(f"{UNPRIVILEGED_USER} is absent and cannot be created here")
    useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    subprocess.run([*useradd, UNPRIVILEGED_USER], check=True)
    return pwd.getpwnam(UNPRIVILEGED_USER)
