"""The man pages of the tables part render without a groff warning."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

PAGES = [
    "aliases.5",
    "newaliases.1",
    "makemap.8",
    "praliases.8",
    "access.5",
    "virtusertable.5",
    "mailertable.5",
    "genericstable.5",
]


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("page", PAGES)
def test_man_page_renders_without_warnings(page):
    result = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(REPO_ROOT / "man" / page)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
