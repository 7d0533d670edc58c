"""The man pages of the config part render without a groff warning."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

PAGES = ["pysendmail-cf.8", "sendmail.cf.5"]


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("page", PAGES)
def test_man_page_renders_without_warnings(page: str) -> None:
    result = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(REPO_ROOT / "man" / page)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
