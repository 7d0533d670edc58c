"""makemap, praliases and newaliases as commands: output, files written, exit codes."""

from __future__ import annotations

import io
import json
import subprocess

from pysendmail.cli import admin, makemap, praliases
from pysendmail.config.compiled import compiled_path, iter_compiled
from pysendmail.config.model import CfFile, Config
from tests.conftest import command, subprocess_env


def make_config(**options) -> Config:
    """A Config with only what newaliases reads (the translator is tested on its own)."""
    cf = CfFile("test.cf", (), (), (), (), (), (), (), (), (), ())
    return Config(
        cf_path="test.cf",
        cf=cf,
        macros={},
        classes={},
        options=options,
        mailers={},
        maps={},
        rulesets={},
        headers=(),
        daemons=(),
        hostname="mail.example.com",
        local_host_names=frozenset({"mail.example.com", "example.com"}),
    )


def run_makemap(*args: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = makemap.main(["makemap", *args], io.StringIO(stdin), out, err)
    return status, out.getvalue(), err.getvalue()


def cli_case(oracle_dir, name: str) -> dict:
    for line in (oracle_dir / "cli/cli_cases.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["name"] == name:
            return case
    raise KeyError(name)


# ---------------------------------------------------------------- makemap


def test_makemap_builds_and_dumps(tmp_path):
    name = str(tmp_path / "virtusertable")
    status, out, err = run_makemap("hash", name, stdin="Info@Example.org\talice\n#x\n")
    assert (status, out, err) == (0, "", "")
    assert list(iter_compiled(compiled_path(name))) == [("info@example.org", "alice")]
    status, out, _ = run_makemap("-u", "hash", name)
    assert (status, out) == (0, "info@example.org\talice\n")


def test_makemap_reports_bad_lines_and_exits_dataerr(tmp_path):
    name = str(tmp_path / "access")
    status, _, err = run_makemap("hash", name, stdin="a OK\nlonely\na REJECT\n")
    assert status == 65
    assert err == (
        f"makemap: {name}: line 2: no RHS for LHS lonely\n"
        f"makemap: {name}: line 3: key a: duplicate key\n"
    )
    assert dict(iter_compiled(compiled_path(name))) == {"a": "OK"}


def test_makemap_options_f_r_e_t_and_append(tmp_path):
    name = str(tmp_path / "m")
    assert run_makemap("-f", "-r", "hash", name, stdin="Key 1\nKey 2\n")[0] == 0
    assert dict(iter_compiled(compiled_path(name))) == {"Key": "2"}
    assert run_makemap("-e", "-t:", "hash", name, stdin="x:\ny:a b\n")[0] == 0
    assert dict(iter_compiled(compiled_path(name))) == {"x": "", "y": "a b"}
    assert run_makemap("-o", "hash", name, stdin="z 3\n")[0] == 0
    assert dict(iter_compiled(compiled_path(name))) == {"x": "", "y": "a b", "z": "3"}
    status, _, err = run_makemap("-o", "hash", name, stdin="z 4\n")
    assert status == 65 and "key z: duplicate key" in err


def test_makemap_usage_list_and_unknown_type(tmp_path):
    status, out, _ = run_makemap("-l")
    assert (status, out.split()) == (0, ["hash", "btree", "dbm", "implicit"])
    status, _, err = run_makemap("hash")
    assert status == 64 and err.startswith("Usage: makemap ")
    status, _, err = run_makemap("-Z", "hash", "x")
    assert status == 64
    status, _, err = run_makemap("cdb", str(tmp_path / "x"))
    assert (status, err) == (64, "makemap: Unknown database type cdb\n")


def test_makemap_personality_runs_from_argv0(tmp_path):
    name = str(tmp_path / "mailertable")
    result = subprocess.run(
        [*command("makemap"), "hash", name],
        input=".example.com\tsmtp:[127.0.0.1]\n",
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert dict(iter_compiled(compiled_path(name))) == {".example.com": "smtp:[127.0.0.1]"}


# ---------------------------------------------------------------- newaliases


def test_newaliases_matches_sendmails_output_for_the_office_aliases(oracle_dir):
    case = cli_case(oracle_dir, "newaliases_argv0")
    alias_path = oracle_dir / "cli/runs/newaliases_argv0/aliases"
    alias_path.parent.mkdir(parents=True, exist_ok=True)
    alias_path.write_bytes((oracle_dir / "configs/office/aliases").read_bytes())
    out, err = io.StringIO(), io.StringIO()
    status = admin.newaliases(make_config(AliasFile=(str(alias_path),)), out, err)
    # The README: totals change by (path length - 21) for each @ORACLE@ path in the file.
    extra = len(str(oracle_dir)) - 21
    expected = (
        case["stdout"]
        .replace("longest 59 ", f"longest {59 + extra} ")
        .replace("406 bytes", f"{406 + 2 * extra} bytes")
    )
    assert (status, out.getvalue(), err.getvalue()) == (case["exit_code"], expected, "")
    assert dict(iter_compiled(compiled_path(alias_path)))["sales"] == "alice, bob"


def test_newaliases_syntax_errors_then_statistics_and_exit_70(tmp_path):
    path = tmp_path / "aliases"
    # A line starting with a space right after an entry would continue it: after a comment
    # it is an error.
    path.write_text("# x\n bad continuation\nnocolon\nfar@remote.example.net: bob\nok: alice\n")
    out = io.StringIO()
    status = admin.newaliases(make_config(AliasFile=(f"hash:{path}",)), out, io.StringIO())
    assert status == 70
    assert out.getvalue() == (
        f"{path}: line 2: Non-continuation line starts with space\n"
        f"{path}: line 3: missing colon\n"
        f"{path}: line 4: far@remote.example.net... cannot alias non-local names\n"
        f"{path}: 1 aliases, longest 5 bytes, 7 bytes total\n"
    )


def test_check_aliases_reports_targets_sendmail_cannot_parse_and_keeps_them(tmp_path):
    # What sendmail 8.17 printed for this file with -O CheckAliases=True (its domain
    # lookup of a@b.c, which pysendmail does not make, left out).
    path = tmp_path / "aliases"
    path.write_text('good: root\nbad: foo<bar\nbad2: root, "unterminated\nbad3: <<x>>\n')
    for check, expected in ((False, ""), (True, "")):
        out = io.StringIO()
        config = make_config(AliasFile=(str(path),), CheckAliases=check)
        assert admin.newaliases(config, out, io.StringIO()) == 0
        if check:
            expected = (
                f"{path}: line 2: foo<bar... Unbalanced '<'\n"
                f"{path}: line 3: \"unterminated... Unbalanced '\"'\n"
            )
        assert out.getvalue() == expected + f"{path}: 4 aliases, longest 19 bytes, 50 bytes total\n"


def test_newaliases_missing_file(tmp_path):
    path = tmp_path / "nothere"
    out = io.StringIO()
    status = admin.newaliases(make_config(AliasFile=(str(path),)), out, io.StringIO())
    assert out.getvalue() == f"newaliases: cannot open {path}: No such file or directory\n"
    assert status == 0
    assert not compiled_path(path).exists()


def test_alias_file_option_forms():
    config = make_config(AliasFile=("hash:/a", "/b", "nis:mail.aliases", "text:/c"))
    assert admin.alias_files(config) == ["/a", "/b", "/c"]
    assert admin.alias_files(make_config(AliasFile="/x,/y")) == ["/x", "/y"]


# ---------------------------------------------------------------- praliases


def test_praliases_lists_all_and_asked_keys(tmp_path):
    path = tmp_path / "aliases"
    path.write_text("Sales: alice, bob\nroot: alice\n")
    out = io.StringIO()
    assert praliases.main(["praliases", "-f", str(path)], out) == 0
    assert out.getvalue() == "sales:alice, bob\nroot:alice\n"
    out = io.StringIO()
    assert praliases.main(["praliases", "-f", str(path), "ROOT", "nobody"], out) == 0
    assert out.getvalue() == "root:alice\nnobody: No such key\n"


def test_praliases_reads_alias_file_from_the_cf(tmp_path):
    path = tmp_path / "aliases"
    path.write_text("a: b\n")
    cf = tmp_path / "sendmail.cf"
    cf.write_text(f"V10/Berkeley\nO AliasFile={path}\n")
    result = subprocess.run(
        [*command("praliases"), "-C", str(cf)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "a:b\n")


def test_newaliases_with_the_translated_office_config_and_an_override(oracle_dir):
    from pysendmail.config.model import Overrides
    from pysendmail.config.translate import translate

    case = cli_case(oracle_dir, "newaliases_argv0")
    alias_path = oracle_dir / "cli/runs/newaliases_argv0/aliases"
    alias_path.parent.mkdir(parents=True, exist_ok=True)
    alias_path.write_bytes((oracle_dir / "configs/office/aliases").read_bytes())
    config = translate(
        oracle_dir / "configs/office/office.cf",
        Overrides(options={"AliasFile": str(alias_path)}),
        hostname="mail.example.com",
    )
    out = io.StringIO()
    assert admin.newaliases(config, out, io.StringIO()) == case["exit_code"]
    extra = len(str(oracle_dir)) - 21
    assert out.getvalue() == f"{alias_path}: 18 aliases, longest {59 + extra} bytes, " + (
        f"{406 + 2 * extra} bytes total\n"
    )
