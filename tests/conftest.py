"""Shared test helpers: the sendmail 8.17 fixtures (with @ORACLE@ filled in) and a way to
run pysendmail's commands as subprocesses from this checkout, under any argv[0]."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _find_fixtures() -> Path:
    env = os.environ.get("PYSENDMAIL_FIXTURES")
    if env:
        return Path(env)
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared" / "fixtures" / "sendmail-8.17"
        if candidate.is_dir():
            return candidate
    raise RuntimeError("sendmail-8.17 fixtures not found: set PYSENDMAIL_FIXTURES")


FIXTURES_SRC = _find_fixtures()

# No queue run started by a test (in this process or a child) may connect anywhere but
# loopback, whatever a fixture's hosts file maps a name to (queue/service.py).
os.environ.setdefault("PYSENDMAIL_LOOPBACK_ONLY", "1")
PLACEHOLDER = b"@ORACLE@"


@pytest.fixture(scope="session")
def oracle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the fixtures with @ORACLE@ replaced by the copy's own path."""
    dest = tmp_path_factory.mktemp("oracle") / "sendmail-8.17"
    shutil.copytree(FIXTURES_SRC, dest, symlinks=True)
    for path in dest.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if PLACEHOLDER in data:
                path.write_bytes(data.replace(PLACEHOLDER, str(dest).encode()))
        if path.is_file() or path.is_dir():
            path.chmod(path.stat().st_mode | 0o200)
    return dest


def cli_case(oracle_dir: Path, name: str) -> dict:
    """One recorded case of cli/cli_cases.jsonl (with @ORACLE@ filled in), by name."""
    import json

    for line in (oracle_dir / "cli" / "cli_cases.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["name"] == name:
            return case
    raise KeyError(name)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for running this checkout's code in a child process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def command(argv0: str = "sendmail") -> list[str]:
    """argv prefix that runs pysendmail from this checkout as if invoked as `argv0`."""
    code = (
        "import sys; sys.argv[0] = sys.argv.pop(1); "
        "from pysendmail.cli.main import main; sys.exit(main(sys.argv))"
    )
    return [sys.executable, "-c", code, argv0]
