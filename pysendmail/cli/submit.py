"""`sendmail [-t] [-i] [-f addr] rcpt...`: a message from standard input into the queue.

This module owns a command-line submission from the moment the command line is read to
the moment the message is durable: who the caller is and whether they are trusted, the
envelope (sender, recipients from argv and, with -t, from To/Cc/Bcc or the Resent- set),
the headers sendmail adds (through `stamp`), the refusals (no recipients, a header that
smuggles a line break), and the exit status. The body is streamed from stdin to the df
file (`collect`); nothing is acknowledged (exit 0) before `Draft.commit()` returned.

A caller who may write the queue directory (root, or the owner of a private queue)
writes it directly; any other caller hands the message over: to the running daemon's
local socket (`socketsubmit`), else to the submission directory (`handoff`).
"""

from __future__ import annotations

import os
import sys
import time

from pysendmail import SENDMAIL_VERSION, address, loglines, stamp
from pysendmail.cli.collect import Collected, collect
from pysendmail.cli.options import Invocation
from pysendmail.config.model import HeaderSpec
from pysendmail.envelope import BodyType, ControllingUser, Envelope, Notify, Recipient, Ret
from pysendmail.errors import AddressSyntaxError, QueueError
from pysendmail.headers import RECIPIENT_HEADERS, RESENT_RECIPIENT_HEADERS, Header
from pysendmail.queue.qf import initial_priority
from pysendmail.record import field, record
from pysendmail.sysexits import ExitCode

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, BinaryIO, TextIO

NO_RECIPIENTS = "Recipient names must be specified"
NO_HEADER_RECIPIENTS = "No recipient addresses found in header"


@record(frozen=True)
class Caller:
    """The user running the command (its real uid), as sendmail's RealUserName knows it."""

    uid: int
    gid: int
    name: str
    gecos: str = ""
    home: str = "/"

    @classmethod
    def from_uid(cls, uid: int) -> Caller:
        import pwd

        try:
            pw = pwd.getpwuid(uid)
        except KeyError:
            return cls(uid=uid, gid=os.getgid(), name=f"Unknown UID {uid}")
        return cls(uid=uid, gid=pw.pw_gid, name=pw.pw_name, gecos=pw.pw_gecos, home=pw.pw_dir)

    def full_name(self) -> str:
        """The gecos full name: up to the first comma, `&` standing for the login name."""
        name = self.gecos.split(",", 1)[0]
        return name.replace("&", self.name[:1].upper() + self.name[1:])


@record
class SubmitContext:
    """What a submission needs from the configuration (and the command line's overrides)."""

    hostname: str  # $j
    queue_dir: str
    templates: Sequence[HeaderSpec] = ()
    trusted_users: frozenset[str] = frozenset({"root"})
    local_domains: frozenset[str] = frozenset()  # class w
    macros: Mapping[str, str] = field(default_factory=dict)  # the cf's D lines
    ignore_dots: bool = False
    old_style_headers: bool = False
    delivery_mode: str = "b"  # b background, i interactive, q queue only, d defer
    error_mode: str = "p"  # p print, m mail, w write, q quiet, e exit status
    queue_dir_from_command_line: bool = False
    config_from_command_line: str | None = None
    fsync: bool = True
    # Alias expansion and recipient checks at submission: (lists, allow_programs) ->
    # routing.Expansion. None: recipients are queued as given.
    expand: Callable[[list[str], bool], Any] | None = None
    # Where -oew writes: None for the caller's own terminal (ttypath); the daemon sets
    # the terminal a user handed over with the submission.
    terminal_opener: Callable[[], Any] | None = None


@record
class Outcome:
    exit_code: int
    qid: str | None = None
    report_qid: str | None = None  # the failure report queued for refused recipients


def _quote_full_name(name: str) -> str:
    """A full name with RFC 5322 specials is written as a quoted string, as sendmail does."""
    specials = set('()<>@,;:\\".[]')
    if not any(ch in specials for ch in name):
        return name
    if name.startswith('"') and name.endswith('"') and len(name) > 1:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _notify(text: str | None) -> frozenset[Notify] | None:
    if text is None:
        return None
    if text.lower() == "never":
        return frozenset({Notify.NEVER})
    return frozenset(Notify(word.upper()) for word in text.split(",") if word)


def _body_type(inv: Invocation, has_8bit: bool) -> BodyType | None:
    if inv.body_type is None:
        return None
    wanted = inv.body_type.upper()
    if wanted == "8BITMIME" and not has_8bit:
        return BodyType.SEVEN_BIT  # what sendmail records for a 7-bit body
    return BodyType(wanted)


class RecipientList:
    """Recipients in sendmail's order, each once; errors kept for the caller to print."""

    def __init__(self, local_domains: frozenset[str]) -> None:
        self._local_domains = {d.lower() for d in local_domains}
        self._seen: set[tuple[str, str]] = set()
        self.local: list[str] = []
        self.remote: list[str] = []
        self.errors: list[str] = []

    def _key(self, addr_spec: str) -> tuple[str, str]:
        local, domain = address.split_addr_spec(addr_spec)
        if domain is None or domain.lower().rstrip(".") in self._local_domains:
            return ("local", address.unquote_local_part(local))
        return ("remote", f"{local}@{domain.lower()}")

    def add_list(self, text: str, *, old_style: bool = False) -> None:
        try:
            items = address.parse_list(text, old_style=old_style)
        except AddressSyntaxError as exc:
            self.errors.append(f"{text.strip()}... {exc.text}")
            return
        for item in items:
            if item.empty_group:
                self.errors.append(f"{item.text}... {address.EMPTY_GROUP_ERROR}")
                continue
            if not item.addr_spec:
                continue
            key = self._key(item.addr_spec)
            if key in self._seen:
                continue
            self._seen.add(key)
            (self.local if key[0] == "local" else self.remote).append(item.text)

    @property
    def addresses(self) -> list[str]:
        # Local recipients first, as sendmail's queue files list them.
        return self.local + self.remote

    def __len__(self) -> int:
        return len(self.local) + len(self.remote)


def header_recipients(headers: Sequence[Header]) -> list[Header]:
    """The headers -t reads: the Resent- set when there is one, else To, Cc and Bcc."""
    resent = [h for h in headers if h.name.lower() in {n.lower() for n in RESENT_RECIPIENT_HEADERS}]
    if resent:
        return resent
    wanted = {n.lower() for n in RECIPIENT_HEADERS}
    return [h for h in headers if h.key in wanted]


def _has_recipient_headers(headers: Sequence[Header]) -> bool:
    keys = {n.lower() for n in (*RECIPIENT_HEADERS, *RESENT_RECIPIENT_HEADERS)}
    return any(h.key in keys for h in headers)


def _auth_warnings(ctx: SubmitContext, inv: Invocation, caller: Caller, trusted: bool) -> list[str]:
    warnings: list[str] = []
    if inv.sender is not None and inv.sender != caller.name and not trusted:
        warnings.append(f"{caller.name} set sender to {inv.sender} using -{inv.sender_flag}")
    if ctx.queue_dir_from_command_line and not trusted:
        warnings.append(f"Processed from queue {ctx.queue_dir}")
    if ctx.config_from_command_line is not None and caller.uid != 0:
        warnings.append(f"Processed by {caller.name} with -C {ctx.config_from_command_line}")
    return warnings


def is_trusted(ctx: SubmitContext, caller: Caller) -> bool:
    return caller.uid == 0 or caller.name in ctx.trusted_users


def submit(
    ctx: SubmitContext,
    inv: Invocation,
    caller: Caller,
    stdin: BinaryIO,
    out: TextIO,
    *,
    now: float | None = None,
) -> Outcome:
    """Queue the message on `stdin`; errors for the user go to `out` as sendmail prints them."""
    from pysendmail.queue.store import QueueStore

    if not inv.read_recipients and not inv.recipients:
        out.write(NO_RECIPIENTS + "\n")
        return Outcome(int(ExitCode.USAGE))
    if not os.path.isdir(ctx.queue_dir):
        out.write(f"can not chdir({ctx.queue_dir}/): No such file or directory\n")
        return Outcome(int(ExitCode.CONFIG))

    now = time.time() if now is None else now
    argv_recipients = RecipientList(ctx.local_domains)
    for arg in inv.recipients:
        argv_recipients.add_list(arg)

    store = QueueStore(ctx.queue_dir, fsync=ctx.fsync)
    try:
        draft = store.open_draft()
    except QueueError as exc:
        out.write(f"{exc.text}\n")
        return Outcome(int(ExitCode.TEMPFAIL))
    with draft:
        try:
            collected = collect(stdin, draft.write, ignore_dots=ctx.ignore_dots)
        except QueueError as exc:
            out.write(f"{exc.text}\n")
            return Outcome(int(ExitCode.TEMPFAIL))
        return _finish(ctx, inv, caller, draft, collected, argv_recipients, out, now)


@record
class Target:
    """One recipient line of the queue file."""

    address: str  # as written (`Carol <carol@partner.example.org>`, `alice`)
    final_recipient: str | None = None  # None: the queue writes the qualified address
    primary: bool = True
    from_alias: bool = False
    controlling_user: ControllingUser | None = None
    host: str = ""


@record
class Resolved:
    """The recipients of a submission and what went wrong with the others."""

    targets: list[Target] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (address, text, status)
    exit_code: int = 0
    status_line: str | None = None  # the qf M line


def _resolve_plain(lists: list[str], ctx: SubmitContext) -> Resolved:
    """Without routing: each address once, as given (local ones first)."""
    recipients = RecipientList(ctx.local_domains)
    for text in lists:
        recipients.add_list(text)
    resolved = Resolved(targets=[Target(address=a) for a in recipients.addresses])
    for line in recipients.errors:
        address, _, text = line.partition("... ")
        resolved.errors.append((address, text, "5.1.3"))
        resolved.status_line = line
    resolved.exit_code = int(ExitCode.USAGE) if recipients.errors else 0
    return resolved


def _resolve_routed(lists: list[str], ctx: SubmitContext, caller: Caller) -> Resolved:
    """With routing: aliases expanded, unknown users and hosts found, as sendmail does
    before it queues; local deliveries first, then by host, in expansion order."""
    assert ctx.expand is not None
    expansion = ctx.expand(lists, caller.uid == 0)
    resolved = Resolved(exit_code=int(expansion.exit_code()))
    for delivery in expansion.deliveries:
        aliased = bool(delivery.original) and delivery.original != delivery.address
        resolved.targets.append(
            Target(
                address=delivery.address,
                final_recipient=(
                    "RFC822; " + address.parse_item(delivery.original).addr_spec
                    if aliased
                    else None
                ),
                primary=not aliased,
                from_alias=aliased,
                controlling_user=delivery.controlling_user,
                host=delivery.host.lower(),
            )
        )
    resolved.targets.sort(key=lambda t: t.host)
    for event in expansion.errors:
        error = event.error
        status = error.status if error is not None else "5.0.0"
        resolved.errors.append((event.address, event.text, status))
        syntax = error is not None and error.exit_code == ExitCode.USAGE
        resolved.status_line = (
            f"{event.address}... {event.text}" if syntax and event.address else event.text
        )
    return resolved


def _finish(
    ctx: SubmitContext,
    inv: Invocation,
    caller: Caller,
    draft,
    collected: Collected,
    argv_recipients: RecipientList,
    out: TextIO,
    now: float,
) -> Outcome:
    headers = collected.headers
    single_argv_recipient = argv_recipients.addresses[0] if len(argv_recipients) == 1 else None
    lists = list(inv.recipients)
    if inv.read_recipients:
        if collected.headers_have_bare_cr:
            # `To: a<CR>Bcc: b` would hide a recipient from whoever reads the headers.
            out.write("Message refused: a header line holds a bare carriage return\n")
            return Outcome(int(ExitCode.DATAERR))
        for header in header_recipients(headers):
            items = address.split_list(header.unfolded(), old_style=ctx.old_style_headers)
            if items:
                lists.append(", ".join(items))
        if not lists:
            out.write(NO_HEADER_RECIPIENTS + "\n")
            return Outcome(int(ExitCode.OK))
    if ctx.expand is not None:
        resolved = _resolve_routed(lists, ctx, caller)
    else:
        resolved = _resolve_plain(lists, ctx)
    if ctx.error_mode == "p":  # sendmail holds the errors in every other mode (HoldErrs)
        for rcpt, text, _ in resolved.errors:
            out.write(f"{rcpt}... {text}\n" if rcpt else f"{text}\n")

    trusted = is_trusted(ctx, caller)
    sender = inv.sender if inv.sender is not None else caller.name
    forged = inv.sender is not None and inv.sender != caller.name and not trusted
    full_name = inv.full_name
    if full_name is None and (inv.sender is None or inv.sender == caller.name):
        full_name = caller.full_name() or None

    macros: dict[str, str] = {k: v for k, v in ctx.macros.items()}
    macros.setdefault("v", SENDMAIL_VERSION)
    macros.update(inv.macros)
    persistent = {"_": f"{caller.name}@localhost"}
    for name in ("r", "s"):
        if inv.macros.get(name):
            persistent[name] = inv.macros[name]
    persistent["daemon_flags"] = inv.daemon_flags
    date = stamp.arpadate(now)
    macros.update(persistent)
    macros.update(
        {
            "a": date,
            "b": date,
            "t": stamp.time_macro(now),
            "g": sender,
            "x": _quote_full_name(full_name) if full_name else "",
            "i": draft.qid,
            "j": ctx.hostname,
            "u": single_argv_recipient or "",
        }
    )
    queued_headers = stamp.default_headers(
        ctx.templates, headers, macros, _auth_warnings(ctx, inv, caller, trusted)
    )
    flags = set()
    if _has_recipient_headers(headers):
        flags.add("b")
    if not resolved.errors:
        flags.add("s")
    if collected.has_8bit:
        flags.add("8")
    notify = _notify(inv.notify)
    envelope = Envelope(
        sender=sender,
        recipients=[
            Recipient(
                address=t.address,
                notify=notify,
                primary=t.primary,
                from_alias=t.from_alias,
                controlling_user=t.controlling_user,
            )
            for t in resolved.targets
        ],
        body_type=_body_type(inv, collected.has_8bit),
        ret=None if inv.ret is None else Ret(inv.ret.upper()),
        envid=inv.envid,
        auth=None if forged else f"{caller.name}@{ctx.hostname}",
        macros=persistent,
        flags=flags,
    )
    queue_file = draft.build_queue_file(
        envelope, queued_headers, msg_size=collected.size, hostname=ctx.hostname, now=now
    )
    for target, line in zip(resolved.targets, queue_file.recipients, strict=True):
        if target.final_recipient is not None:
            line.final_recipient = target.final_recipient
    queue_file.status = resolved.status_line
    # sendmail's priority counts the addresses named (each once), not what they expand to.
    named = RecipientList(ctx.local_domains)
    for text in lists:
        named.add_list(text)
    queue_file.priority = initial_priority(collected.size, len(named))
    qid = report_qid = None
    try:
        if resolved.errors and not _reported_on_terminal(ctx, caller, draft, queue_file, resolved):
            report_qid = _bounce(ctx, draft, queue_file, resolved, now)
        if resolved.targets:
            qid = draft.commit_queue_file(queue_file)
    except QueueError as exc:
        out.write(f"{exc.text}\n")
        return Outcome(int(ExitCode.TEMPFAIL))
    if qid is not None:
        message_ids = [h.value.strip() for h in queued_headers if h.key == "message-id"]
        loglines.write_line(
            loglines.format_from(
                qid,
                sender=sender,
                size=collected.size,
                nrcpts=len(queue_file.recipients),
                msgid=message_ids[0] if message_ids else None,
                relay=persistent["_"],
            )
        )
    return Outcome(resolved.exit_code, qid, report_qid)


def _bounce(ctx: SubmitContext, draft, queue_file, resolved: Resolved, now: float) -> str | None:
    """Queue the report about the recipients refused at submission (the message itself is
    returned in it), so that nothing is lost though the caller may not read stdout."""
    from pysendmail.delivery.dsn import DsnKind, OriginalMessage, RecipientReport, build_dsn
    from pysendmail.queue.store import QueueStore

    draft._flush()  # the df must hold every byte before it is read back (no public flush yet)
    body = draft.store.path("df", draft.qid).read_bytes()
    original = OriginalMessage(
        qid=draft.qid,
        sender=queue_file.sender,
        headers=queue_file.headers,
        body=body,
        arrival=now,
        received_from=queue_file.macros.get("_", ""),
        envid=queue_file.envid,
    )
    reports = [
        RecipientReport(
            address=rcpt,
            final_recipient="RFC822; " + address.qualify(_bare(rcpt), ctx.hostname),
            action="failed",
            status=status,
            diagnostic=f"X-Unix; {_reply_code(status)} {status} {text}",
            reason=f"{_reply_code(status)} {status} {text}",
            actual_recipient=_actual_recipient(rcpt, ctx),
            last_attempt=now,
        )
        for rcpt, text, status in resolved.errors
    ]
    store = QueueStore(ctx.queue_dir, fsync=ctx.fsync)
    report_draft = store.open_draft()
    with report_draft:
        dsn = build_dsn(
            DsnKind.FAILURE,
            original,
            reports,
            qid=report_draft.qid,
            hostname=ctx.hostname,
            now=now,
            transcript=[f"{_reply_code(s)} {s} {r}... {t}" for r, t, s in resolved.errors],
        )
        if dsn is None:
            return None
        report_draft.write(dsn.body)
        return report_draft.commit(dsn.envelope, dsn.headers, hostname=ctx.hostname, now=now)


def _reported_on_terminal(ctx: SubmitContext, caller: Caller, draft, queue_file, resolved) -> bool:
    """-oew: the refused recipients on the caller's terminal and the message in
    dead.letter, as sendmail's savemail() does; False when that cannot be (then mailed)."""
    if ctx.error_mode != "w":
        return False
    from pysendmail.cli.deadletter import report_refused

    draft._flush()  # the df must hold every byte before it is saved (no public flush yet)
    transcript = [f"{_reply_code(s)} {s} {r}... {t}" for r, t, s in resolved.errors]
    return report_refused(
        queue_file,
        draft.store.path("df", draft.qid),
        transcript,
        caller_uid=caller.uid,
        caller_gid=caller.gid,
        local_domains=ctx.local_domains,
        daemon_name=ctx.macros.get("n") or "MAILER-DAEMON",
        terminal_opener=ctx.terminal_opener,
    )


def _actual_recipient(rcpt: str, ctx: SubmitContext) -> str | None:
    """`rfc822; user@$j` for a local address, as sendmail reports one; None otherwise."""
    addr = _bare(rcpt)
    local, domain = address.split_addr_spec(addr)
    if domain is not None and domain.lower().rstrip(".") not in ctx.local_domains:
        return None
    return f"rfc822; {local}@{ctx.hostname}"


def _bare(text: str) -> str:
    try:
        return address.parse_item(text).addr_spec or text
    except AddressSyntaxError:
        return text


def _reply_code(status: str) -> str:
    return "553" if status == "5.1.3" else ("550" if status.startswith("5") else "451")


def run(inv: Invocation, out: TextIO, err: TextIO) -> int:
    """The -bm mode: load the configuration, submit, start delivery as the mode says."""
    from pysendmail.cli import runtime

    config = runtime.load_config(inv)
    ctx = runtime.submit_context(config, inv)
    status = status_by_error_mode(ctx, _submit_and_deliver(config, ctx, inv, out, err))
    if ctx.delivery_mode != "i":
        # Everything this process does is done and on disk (a background attempt runs
        # in a child of its own): the program may end without the interpreter's teardown.
        from pysendmail.cli import main as program

        program.allow_quick_exit()
    return status


def status_by_error_mode(ctx: SubmitContext, status: int) -> int:
    """-oee mails the errors back and always exits 0, as sendmail's finis() makes it."""
    return int(ExitCode.OK) if ctx.error_mode == "e" else status


def _submit_and_deliver(config, ctx: SubmitContext, inv: Invocation, out: TextIO, err) -> int:
    caller = Caller.from_uid(os.getuid())
    if caller.uid != 0 and not os.access(ctx.queue_dir, os.W_OK | os.X_OK):
        if not inv.read_recipients and not inv.recipients:
            out.write(NO_RECIPIENTS + "\n")
            return int(ExitCode.USAGE)
        return _hand_over(ctx, inv, caller, out, err)
    outcome = submit(ctx, inv, caller, sys.stdin.buffer, out)
    queued = [q for q in (outcome.qid, outcome.report_qid) if q]
    if not queued or ctx.delivery_mode in ("q", "d"):
        return outcome.exit_code
    import gc

    gc.enable()  # a delivery attempt may run long (cli.main turned the collector off)
    if ctx.delivery_mode == "i":
        verbose = out if inv.verbose else None
        failures = _failure_hook(ctx, caller, out)
        return _deliver_now(config, queued, outcome.exit_code, verbose, failures)
    # A detached attempt cannot talk to its caller: failures are mailed, as sendmail's
    # disconnect() makes them.
    _deliver_in_background(config, queued)
    return outcome.exit_code


def _hand_over(
    ctx: SubmitContext, inv: Invocation, caller: Caller, out: TextIO, err: TextIO
) -> int:
    """A user who may not write the queue: the running daemon's local socket, else (no
    daemon, or it cannot take the message now) the submission directory."""
    from pysendmail.cli import handoff, socketsubmit

    path = socketsubmit.command_line_socket_path(ctx.queue_dir)
    if not os.path.exists(path):
        return handoff.hand_over(ctx, inv, caller, sys.stdin.buffer, out, err)
    spool = socketsubmit.Spool(sys.stdin.buffer, ctx.ignore_dots)
    status = socketsubmit.submit(path, inv, spool, out, error_mode=ctx.error_mode)
    if status is not None:
        return status
    return handoff.hand_over(ctx, inv, caller, spool.rewound(), out, err)


def _failure_hook(ctx: SubmitContext, caller: Caller, out: TextIO):
    """What -odi does with a message that failed (dead.letter, by ErrorMode)."""
    from pysendmail.cli.deadletter import failure_hook

    return failure_hook(
        error_mode=ctx.error_mode,
        caller_uid=caller.uid,
        caller_gid=caller.gid,
        local_domains=ctx.local_domains,
        hostname=ctx.hostname,
        out=out,
        daemon_name=ctx.macros.get("n") or "MAILER-DAEMON",
        terminal_opener=ctx.terminal_opener,
    )


def _deliver_now(
    config, qids: list[str], status: int, verbose: TextIO | None, failures=None
) -> int:
    """-odi: one delivery attempt before exiting. A recipient that failed for good makes
    the exit status its mailer's (68 for an unknown host; 69 when there is none) unless
    submission already set one; deferred ones stay queued (0)."""
    from pysendmail import log
    from pysendmail.queue.service import runner_for_config

    log.configure(quiet=True)  # the to= lines; none on the user's terminal
    runner = runner_for_config(config, verbose=verbose)
    failed_codes: list[int] = []

    def remember(queue_file, message, failed) -> bool:
        failed_codes.extend(r.exit_code for _, r in failed if r.exit_code)
        return failures is not None and failures(queue_file, message, failed)

    runner.return_failures = remember
    pending = list(qids)
    while pending:
        result = runner.run_one(pending.pop(0))
        if result is None:
            continue
        if result.bounced and status == ExitCode.OK:
            usable = [c for c in failed_codes if 64 <= c <= 78]
            status = usable[0] if usable else int(ExitCode.UNAVAILABLE)
        pending.extend(result.dsn_ids)
    return status


def _deliver_in_background(config, qids: list[str]) -> None:
    """-odb: the caller gets its exit status now; a detached child makes the attempt.
    The message is already durable, so a child that dies loses nothing: the next queue
    run delivers it."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        return
    status = 0
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        _deliver_now(config, qids, 0, None)
    except BaseException:
        status = 1
    finally:
        os._exit(status)
