"""Command-line submissions compared with the qf/df files sendmail 8.17 wrote for the same
input (cli_cases.jsonl), times, dates and queue IDs masked.

The submission runs in-process against the fixture's office.cf, read with the config
parser; the caller is root (uid 0 from the password database) except in `untrusted_f`,
where the caller is the fixture's mallory (uid 1003) given as a Caller record: the queue
files are compared as text, their owner is not (see test_cli_handoff for a real user).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from pysendmail.cli.options import parse_args
from pysendmail.cli.runtime import overrides_from
from pysendmail.cli.submit import Caller, SubmitContext, submit
from pysendmail.config.cfparse import read_cf
from pysendmail.config.options import parse_bool
from tests.conftest import FIXTURES_SRC

CASES = {
    json.loads(line)["name"]: json.loads(line)
    for line in (FIXTURES_SRC / "cli" / "cli_cases.jsonl").read_text().splitlines()
    if line.strip()
}

# Cases whose queue files need nothing beyond the command line and the cf. The others
# (t_to_cc_bcc_queue, t_plus_args: alias expansion and unknown users at submission)
# need routing and are compared once it is wired.
SUBMIT_CASES = [
    "submit_odq_local",
    "submit_odq_noheaders",
    "submit_odq_dsn",
    "dot_oi",
    "no_trailing_newline",
    "crlf_input",
    "long_line",
    "eight_bit",
    "t_resent",
    "t_group_syntax",
    "untrusted_f",
]

_DATE = re.compile(
    r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d (GMT|[+-]\d{4}[^\n]*)"
)


def mask(text: str, qid: str) -> str:
    text = text.replace(qid, "QID")
    text = re.sub(r"^T\d+$", "T<time>", text, flags=re.M)
    text = _DATE.sub("<date>", text)
    return re.sub(r"<\d{12}\.QID@", "<<t>.QID@", text)


def context_from_cf(cf_file: Path, inv) -> SubmitContext:
    cf = read_cf(cf_file)
    overrides = overrides_from(inv)
    file_options = {name: value for name, value, _ in cf.options}
    options = {**file_options, **overrides.options}
    macros = {name: value for name, value, _ in cf.macros}
    local: set[str] = set()
    for source in cf.class_sources:
        if source.class_name != "w":
            continue
        local.update(source.words)
        if source.file:
            for line in Path(source.file).read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    local.add(line.split()[0])
    return SubmitContext(
        hostname=macros["j"],
        queue_dir=options["QueueDirectory"],
        templates=cf.headers,
        trusted_users=frozenset(user for user, _ in cf.trusted_users),
        local_domains=frozenset(local),
        macros=macros,
        ignore_dots=parse_bool(options.get("IgnoreDots", "False")),
        old_style_headers=parse_bool(options.get("OldStyleHeaders", "False")),
        delivery_mode=options.get("DeliveryMode", "b")[:1],
        queue_dir_from_command_line="QueueDirectory" in overrides.options,
        config_from_command_line=inv.config_file,
        fsync=False,
    )


@pytest.mark.parametrize("name", SUBMIT_CASES)
def test_queue_files_match_sendmail(name: str, oracle_dir: Path, tmp_path: Path) -> None:
    case = CASES[name]
    argv = [a.replace("@ORACLE@", str(oracle_dir)) for a in case["argv"]]
    inv = parse_args(argv, environ={})
    ctx = context_from_cf(Path(inv.config_file), inv)
    Path(ctx.queue_dir).mkdir(parents=True, exist_ok=True)
    for old in Path(ctx.queue_dir).iterdir():
        old.unlink()
    caller = Caller.from_uid(0) if case["run_as"] == "root" else Caller(1003, 1003, "mallory")
    out = io.StringIO()
    outcome = submit(ctx, inv, caller, io.BytesIO(case["stdin"].encode()), out)
    assert out.getvalue() == case["stdout"]
    assert outcome.exit_code == case["exit_code"]

    expected = {
        fname[:2]: data["text"].replace("@ORACLE@", str(oracle_dir))
        for fname, data in case["queue_files"].items()
    }
    want_qid = next(f for f in case["queue_files"] if f.startswith("qf"))[2:]
    written = {p.name for p in Path(ctx.queue_dir).iterdir()}
    bounces = {name[2:] for name in written} - {outcome.qid}
    # sendmail mailed a report about the recipients it refused: ours is queued for that.
    bounced = any("Returned mail" in box["text"] for box in case["mailboxes"].values())
    assert len(bounces) == (1 if bounced else 0)
    for qid in bounces:
        report = (Path(ctx.queue_dir) / f"qf{qid}").read_text()
        assert "\nS<>\n" in report and "\nRPFD:root\n" in report
        assert "Subject: Returned mail: see transcript for details" in report
    assert written == {f"{kind}{qid}" for kind in ("qf", "df") for qid in {outcome.qid, *bounces}}
    qf = (Path(ctx.queue_dir) / f"qf{outcome.qid}").read_bytes().decode("utf-8", "surrogateescape")
    df = (Path(ctx.queue_dir) / f"df{outcome.qid}").read_bytes()
    # The fixture shows the 0x81 macro byte as the four characters \x81.
    qf = qf.replace("\udc81", "\\x81")
    assert mask(qf, outcome.qid) == mask(expected["qf"], want_qid)
    assert df == expected["df"].encode()
    for path in Path(ctx.queue_dir).iterdir():
        assert path.stat().st_mode & 0o777 == 0o600


def test_no_recipients_refused_before_reading(oracle_dir: Path) -> None:
    case = CASES["submit_no_recipients"]
    argv = [a.replace("@ORACLE@", str(oracle_dir)) for a in case["argv"]]
    inv = parse_args(argv, environ={})
    ctx = context_from_cf(Path(inv.config_file), inv)
    out = io.StringIO()
    outcome = submit(ctx, inv, Caller.from_uid(0), io.BytesIO(case["stdin"].encode()), out)
    assert (out.getvalue(), outcome.exit_code, outcome.qid) == (
        case["stdout"],
        case["exit_code"],
        None,
    )


def test_t_without_recipient_headers_queues_nothing(oracle_dir: Path) -> None:
    case = CASES["t_no_recipients"]
    argv = [a.replace("@ORACLE@", str(oracle_dir)) for a in case["argv"]]
    inv = parse_args(argv, environ={})
    ctx = context_from_cf(Path(inv.config_file), inv)
    Path(ctx.queue_dir).mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    outcome = submit(ctx, inv, Caller.from_uid(0), io.BytesIO(case["stdin"].encode()), out)
    assert (out.getvalue(), outcome.exit_code) == (case["stdout"], case["exit_code"])
    assert list(Path(ctx.queue_dir).iterdir()) == []


# Submissions whose recipients go through routing (aliases, unknown users, remote hosts).
ROUTED_CASES = ["t_to_cc_bcc_queue", "t_plus_args", "submit_odq_local", "t_group_syntax"]


def fixture_users(name: str):
    """The fixture machine's users (alice 1001, bob 1002, mallory 1003, root), injected
    into routing instead of this machine's password database."""
    from pysendmail.routing import LocalUser

    table = {"root": 0, "alice": 1001, "bob": 1002, "mallory": 1003}
    uid = table.get(name)
    home = "/root" if name == "root" else f"/nonexistent/{name}"
    return None if uid is None else LocalUser(name, uid, uid, home)


@pytest.mark.parametrize("name", ROUTED_CASES)
def test_routed_queue_files_match_sendmail(name: str, oracle_dir: Path) -> None:
    from pysendmail.cli.runtime import submit_context
    from pysendmail.config.translate import translate
    from pysendmail.routing import Router

    case = CASES[name]
    argv = [a.replace("@ORACLE@", str(oracle_dir)) for a in case["argv"]]
    inv = parse_args(argv, environ={})
    config = translate(inv.config_file, overrides_from(inv))
    ctx = submit_context(config, inv, router=Router(config, users=fixture_users))
    ctx.fsync = False
    queue = Path(ctx.queue_dir)
    queue.mkdir(parents=True, exist_ok=True)
    for old in queue.iterdir():
        old.unlink()
    out = io.StringIO()
    outcome = submit(ctx, inv, Caller.from_uid(0), io.BytesIO(case["stdin"].encode()), out)
    assert (out.getvalue(), outcome.exit_code) == (case["stdout"], case["exit_code"])

    expected = {
        fname[:2]: data["text"].replace("@ORACLE@", str(oracle_dir))
        for fname, data in case["queue_files"].items()
    }
    want_qid = next(f for f in case["queue_files"] if f.startswith("qf"))[2:]
    qf = (queue / f"qf{outcome.qid}").read_bytes().decode("utf-8", "surrogateescape")
    qf = qf.replace("\udc81", "\\x81")
    # sendmail names the controlling user of every alias-expanded local recipient (the
    # `C` lines); routing names one only for |program and /file targets.
    without_c = re.compile(r"^C.*\n", re.M)
    assert without_c.sub("", mask(qf, outcome.qid)) == without_c.sub(
        "", mask(expected["qf"], want_qid)
    )
    assert (queue / f"df{outcome.qid}").read_bytes() == expected["df"].encode()
