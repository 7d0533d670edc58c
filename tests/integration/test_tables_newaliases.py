"""`newaliases` as a program, against sendmail's record of the same command line."""

from __future__ import annotations

import json
import subprocess

from pysendmail.config.compiled import compiled_path, iter_compiled
from tests.conftest import command, subprocess_env


def test_newaliases_argv0_prints_what_sendmail_printed(oracle_dir):
    case = next(
        json.loads(line)
        for line in (oracle_dir / "cli/cli_cases.jsonl").read_text().splitlines()
        if json.loads(line)["name"] == "newaliases_argv0"
    )
    alias_path = oracle_dir / "cli/runs/newaliases_argv0/aliases"
    alias_path.parent.mkdir(parents=True, exist_ok=True)
    alias_path.write_bytes((oracle_dir / "configs/office/aliases").read_bytes())
    result = subprocess.run(
        [*command("newaliases"), *case["argv"][1:]],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )
    # The fixtures' README: each @ORACLE@ path in the file changes the byte totals by
    # (this path's length - 21).
    extra = len(str(oracle_dir)) - 21
    expected = (
        case["stdout"]
        .replace("longest 59 ", f"longest {59 + extra} ")
        .replace("406 bytes", f"{406 + 2 * extra} bytes")
    )
    assert (result.returncode, result.stdout) == (case["exit_code"], expected)
    assert dict(iter_compiled(compiled_path(alias_path)))["team"].startswith(":include:")
