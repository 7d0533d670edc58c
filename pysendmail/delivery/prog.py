"""Program mailers: the `prog` mailer (`|command` targets, `P=/bin/sh, A=sh -c $u`),
`procmail`, and any `M` line whose `P=` is a program (the office fixture's local
mailer `P=.../bin/deliver, A=deliver -d $u`).

As sendmail runs them:
- argv comes from the mailer's `A=`, each word with its macros (`$u $h $f $g $z`)
  replaced; a value always stays ONE argument (a word that is exactly `$u` becomes
  one argument per recipient for an F=m mailer). No shell is ever built here, so
  nothing in an address can reach one; `sh -c $u` runs the command that the
  controlling user wrote in an alias or .forward, which is what that mailer is for.
- the environment is built from scratch: `AGENT=sendmail`, `TZ` as TimeZoneSpec says,
  and the cf's `E` lines; nothing else of ours leaks through.
- the working directory is the first usable one of `D=` (`$z:/`: the user's home, /).
- the program runs as the controlling user, never as root: a root controlling user or
  none means DefaultUser. Only a mailer with F=S (the stock local mailer, which must
  write into /var/mail) keeps root, and only when the caller allows it.
- a program still running after `timeout` is killed with its process group and the
  delivery deferred; an exit status maps through sysexits as sendmail maps it
  (75, 74, 71 → try later; 67, 68 and all other codes → bounce).
"""

from __future__ import annotations

import errno
import functools
import grp
import os
import pwd
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from pysendmail.config.model import Config, MailerSpec
from pysendmail.config.options import OptionError, parse_duration
from pysendmail.delivery.message import OutgoingMessage, bare_sender, mailer_stream
from pysendmail.delivery.result import DeliveryResult
from pysendmail.envelope import ControllingUser
from pysendmail.errors import Location
from pysendmail.record import field, record

DEFAULT_PROGRAM_TIMEOUT = 600.0  # seconds; the caller passes the configured value
_OUTPUT_KEPT = 4096


@record(frozen=True)
class RunIdentity:
    """Who a program or file delivery runs as."""

    user: str
    uid: int
    gid: int
    home: str = "/"


@record(frozen=True)
class ProgramOutcome:
    exit_code: int | None  # None: killed (timeout, signal) or never started
    output: bytes = b""
    timed_out: bool = False
    signal: int | None = None
    start_error: OSError | None = None
    wait_expired: bool = False  # it had all the data but did not exit within W=


@record(frozen=True)
class ProgramSettings:
    """What a program delivery needs from the configuration (see `from_config`)."""

    timeout: float = DEFAULT_PROGRAM_TIMEOUT
    environment: Mapping[str, str] = field(default_factory=lambda: {"AGENT": "sendmail"})
    default_user: RunIdentity | None = None  # None: look up DefaultUser's default

    @classmethod
    def from_config(cls, config: Config | None, timeout: float | None = None) -> ProgramSettings:
        return cls(
            timeout=DEFAULT_PROGRAM_TIMEOUT if timeout is None else timeout,
            environment=mailer_environment(config),
            default_user=default_user(config),
        )


# ---------------------------------------------------------------- environment, identity


def mailer_environment(
    config: Config | None, parent_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """AGENT=sendmail, TZ per TimeZoneSpec (unset: none; empty: ours), the cf's E lines."""
    parent = os.environ if parent_env is None else parent_env
    env = {"AGENT": "sendmail"}
    zone = config.option("TimeZoneSpec") if config is not None else None
    if zone is not None:
        zone = str(zone)
        if zone:
            env["TZ"] = zone
        elif "TZ" in parent:
            env["TZ"] = parent["TZ"]
    if config is not None:
        for kind, text, _location in config.cf.other:
            if kind != "E" or not text:
                continue
            name, eq, value = text.partition("=")
            if not eq:
                if name in parent:
                    env[name] = parent[name]
            else:
                env[name] = value
    return env


def _identity_from_pw(entry: pwd.struct_passwd) -> RunIdentity:
    return RunIdentity(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir or "/")


def default_user(config: Config | None) -> RunIdentity:
    """DefaultUser (`user`, `user:group`, `uid:gid`); sendmail's default is mailnull,
    else daemon, else uid 1."""
    raw = str(config.option("DefaultUser", "") or "") if config is not None else ""
    candidates = [raw] if raw else ["mailnull", "daemon"]
    for spec in candidates:
        user, _, group = spec.partition(":")
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            ident = _identity_from_pw(entry)
        except (KeyError, ValueError):
            if user.isdigit():
                ident = RunIdentity(user, int(user), int(group) if group.isdigit() else 1, "/")
            else:
                continue
        if group.isdigit():
            ident = RunIdentity(ident.user, ident.uid, int(group), ident.home)
        if ident.uid != 0:
            return ident
    return RunIdentity("daemon", 1, 1, "/")


class MailerUserError(ValueError):
    """A mailer's U= names a user or group this system does not have."""


def parse_run_as(spec: str) -> RunIdentity:
    """A mailer's U=: `user`, `user:group`, `uid:gid`, `:group` is not allowed."""
    user, _, group = spec.strip().partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        ident = _identity_from_pw(entry)
    except KeyError:
        if not user.isdigit():
            raise MailerUserError(f"U={spec}: unknown user {user}") from None
        ident = RunIdentity(user, int(user), int(user), "/")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise MailerUserError(f"U={spec}: unknown group {group}") from None
        ident = RunIdentity(ident.user, ident.uid, gid, ident.home)
    return ident


def mailer_identity(
    mailer: MailerSpec | None,
    controlling: ControllingUser | RunIdentity | None,
    settings: ProgramSettings,
    *,
    keep_root: bool = False,
) -> RunIdentity | None:
    """Who a mailer program runs as: the mailer's U= when it has one (it wins over the
    controlling user and over F=S, as in sendmail), else as `identity_for` says.
    Raises MailerUserError for a U= this system cannot satisfy."""
    spec = mailer.fields.get("U", "").strip() if mailer is not None else ""
    if spec:
        if os.geteuid() != 0:
            return None  # only root can switch; sendmail too runs it as itself then
        ident = parse_run_as(spec)
        return None if ident.uid == 0 else ident
    return identity_for(controlling, settings, keep_root=keep_root)


def mailer_root_dir(mailer: MailerSpec | None, macros: Mapping[str, str]) -> str | None:
    """The mailer's /= (chroot before exec), its macros expanded; None for none or `/`."""
    raw = mailer.fields.get("/", "").strip() if mailer is not None else ""
    root = expand_word(raw, macros) if raw else ""
    return root if root and os.path.normpath(root) != "/" else None


def mailer_wait(mailer: MailerSpec | None) -> float | None:
    """The mailer's W=: how long it may take to exit once it has all the data."""
    raw = mailer.fields.get("W", "").strip() if mailer is not None else ""
    if not raw:
        return None
    try:
        return float(parse_duration(raw, "s")) or None
    except OptionError:
        return None


def identity_for(
    controlling: ControllingUser | RunIdentity | None,
    settings: ProgramSettings,
    *,
    keep_root: bool = False,
) -> RunIdentity | None:
    """The identity to switch to, or None to run as we are (not root, or F=S allowed)."""
    if os.geteuid() != 0 or keep_root:
        return None
    if controlling is not None and controlling.uid != 0:
        if isinstance(controlling, RunIdentity):
            return controlling
        try:
            home = pwd.getpwuid(controlling.uid).pw_dir
        except KeyError:
            home = "/"
        return RunIdentity(controlling.user, controlling.uid, controlling.gid, home)
    return settings.default_user or default_user(None)


# ---------------------------------------------------------------- argv


_MACRO = re.compile(r"\$(\{[^}]*\}|.)")


def expand_word(word: str, macros: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        ref = match.group(1)
        name = ref[1:-1] if ref.startswith("{") else ref
        return "$" if name == "$" else macros.get(name, "")

    return _MACRO.sub(value, word)


def expand_argv(
    template: Sequence[str], macros: Mapping[str, str], users: Sequence[str]
) -> list[str]:
    """A= words with macros replaced; a word that is exactly `$u` gives one argument per
    user, every other word exactly one argument whatever its value holds."""
    argv: list[str] = []
    for word in template:
        if word == "$u":
            argv.extend(users)
        else:
            argv.append(expand_word(word, {**macros, "u": users[0] if users else ""}))
    return argv


def mailer_eol(mailer: MailerSpec | None) -> bytes:
    raw = mailer.fields.get("E", "") if mailer is not None else ""
    if not raw:
        return b"\n"
    return raw.replace("\\r", "\r").replace("\\n", "\n").encode()


def mailer_directories(mailer: MailerSpec | None, home: str) -> list[str]:
    raw = mailer.fields.get("D", "") if mailer is not None else ""
    dirs = [expand_word(d, {"z": home}) for d in raw.split(":") if d] if raw else []
    return dirs or ["/"]


# ---------------------------------------------------------------- running


def inside_root(root_dir: str | None, path: str) -> str:
    """Where `path` of a chrooted program is seen from outside the chroot."""
    if not root_dir:
        return path
    return os.path.join(root_dir, path.lstrip("/"))


def _enter(root_dir: str, directory: str, identity: RunIdentity | None) -> None:
    """In the child, before exec: chroot (needs root), then drop to the identity."""
    os.chroot(root_dir)
    os.chdir(directory)
    if identity is not None:
        os.setgroups([])
        os.setgid(identity.gid)
        os.setuid(identity.uid)


def spawn_program(
    argv: Sequence[str],
    *,
    executable: str,
    identity: RunIdentity | None,
    environment: Mapping[str, str],
    directories: Sequence[str] = ("/",),
    root_dir: str | None = None,
    stdin: object = subprocess.PIPE,
    stdout: object = subprocess.PIPE,
    stderr: object = subprocess.STDOUT,
) -> subprocess.Popen[bytes] | OSError:
    """Start a mailer program as `identity` in the first usable directory of D= (inside
    the chroot `root_dir`, the mailer's /=, when given); the OSError when it cannot."""
    options: dict[str, object] = {}
    if root_dir:
        pass  # the identity is taken in _enter, after the chroot that needs root
    elif identity is not None:
        options.update(user=identity.uid, group=identity.gid, extra_groups=[])
    last_error: OSError | None = None
    for directory in [*directories, "/"]:
        if not os.path.isdir(inside_root(root_dir, directory)):
            continue
        if root_dir:
            options["preexec_fn"] = functools.partial(_enter, root_dir, directory, identity)
        else:
            options["cwd"] = directory
        try:
            return subprocess.Popen(
                list(argv),
                executable=executable,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=dict(environment),
                close_fds=True,
                start_new_session=True,
                **options,  # type: ignore[arg-type]
            )
        except PermissionError as err:
            last_error = err
            if err.filename not in (directory, None):
                break  # the program, not the directory
        except OSError as err:
            last_error = err
            break
        except subprocess.SubprocessError as err:  # chroot or setuid failed in the child
            return OSError(errno.EAGAIN, f"cannot enter {root_dir}: {err}")
    return last_error or OSError(errno.ENOENT, "no usable directory")


def run_program(
    argv: Sequence[str],
    *,
    executable: str,
    stdin_chunks: Iterable[bytes],
    identity: RunIdentity | None,
    environment: Mapping[str, str],
    directories: Sequence[str] = ("/",),
    timeout: float = DEFAULT_PROGRAM_TIMEOUT,
    root_dir: str | None = None,
    wait_timeout: float | None = None,
) -> ProgramOutcome:
    """Run a mailer program with the message on its standard input. `timeout` bounds
    the whole run; `wait_timeout` (the mailer's W=) how long it may take to exit once
    it has all the data."""
    started = spawn_program(
        argv,
        executable=executable,
        identity=identity,
        environment=environment,
        directories=directories,
        root_dir=root_dir,
    )
    if isinstance(started, OSError):
        return ProgramOutcome(None, start_error=started)
    proc = started

    output = bytearray()
    feed_error: list[OSError] = []

    def feed() -> None:
        assert proc.stdin is not None
        try:
            for chunk in stdin_chunks:
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass  # the program stopped reading: its exit status decides
        except OSError as err:
            feed_error.append(err)
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def drain() -> None:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(4096):
            output.extend(chunk)
            del output[:-_OUTPUT_KEPT]

    feeder = threading.Thread(target=feed, daemon=True)
    drainer = threading.Thread(target=drain, daemon=True)
    deadline = time.monotonic() + timeout
    feeder.start()
    drainer.start()
    timed_out = wait_expired = False
    feeder.join(timeout=timeout)
    try:
        if feeder.is_alive():
            raise subprocess.TimeoutExpired(argv, timeout)
        remaining = max(0.0, deadline - time.monotonic())
        if wait_timeout is not None and wait_timeout < remaining:
            try:
                proc.wait(timeout=wait_timeout)
            except subprocess.TimeoutExpired:
                wait_expired = True
                raise
        else:
            proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    feeder.join(timeout=5)
    drainer.join(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()
    if timed_out:
        return ProgramOutcome(None, bytes(output), timed_out=True, wait_expired=wait_expired)
    if feed_error:
        return ProgramOutcome(None, bytes(output), start_error=feed_error[0])
    if proc.returncode < 0:
        return ProgramOutcome(None, bytes(output), signal=-proc.returncode)
    return ProgramOutcome(proc.returncode, bytes(output))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def outcome_result(
    recipient: str, outcome: ProgramOutcome, *, mailer: str, program: str
) -> DeliveryResult:
    """The DeliveryResult sendmail would log for a program's outcome."""
    last_line = outcome.output.strip().splitlines()[-1:] or [b""]
    detail = last_line[0].decode("utf-8", "replace")[:200]
    extra = {"mailer": mailer, "relay": "local"}
    if outcome.wait_expired:
        # sendmail: "endmailer prog: wait timeout", then EX_TEMPFAIL
        return DeliveryResult.deferred(
            recipient,
            f"Deferred: {program}: wait timeout",
            status="4.4.1",
            diagnostic_code="X-Unix; wait timeout",
            **extra,
        )
    if outcome.timed_out:
        return DeliveryResult.deferred(
            recipient,
            f"Deferred: timeout waiting for {program}",
            status="4.4.1",
            diagnostic_code="X-Unix; timeout",
            **extra,
        )
    if outcome.signal is not None:
        return DeliveryResult.deferred(
            recipient,
            f"Deferred: mailer {program} died with signal {outcome.signal}",
            status="4.3.0",
            diagnostic_code=f"X-Unix; signal {outcome.signal}",
            **extra,
        )
    if outcome.exit_code is None:
        err = outcome.start_error
        reason = (err.strerror or str(err)) if err else "cannot run"
        if err is not None and getattr(err, "errno", None) in _TRANSIENT_ERRNOS:
            return DeliveryResult.from_exit(recipient, 71, f"{program}: {reason}", **extra)
        return DeliveryResult.from_exit(recipient, 69, f"Cannot exec {program}: {reason}", **extra)
    return DeliveryResult.from_exit(
        recipient,
        outcome.exit_code,
        detail if outcome.exit_code else "",
        diagnostic_code=f"X-Unix; {detail or outcome.exit_code}" if outcome.exit_code else None,
        **extra,
    )


_TRANSIENT_ERRNOS = {11, 12, 23, 24, 28, 122}  # EAGAIN ENOMEM ENFILE EMFILE ENOSPC EDQUOT


# ---------------------------------------------------------------- entry points


@record(frozen=True)
class ProgramTarget:
    """One recipient handed to a program mailer: the address to report, the `$u` value
    (for `|cmd` the command without its bar) and who controls it (qf `C` line)."""

    recipient: str
    user: str
    host: str = ""
    controlling_user: ControllingUser | RunIdentity | None = None


def run_mailer(
    message: OutgoingMessage,
    targets: Sequence[ProgramTarget],
    mailer: MailerSpec,
    settings: ProgramSettings,
    *,
    macros: Mapping[str, str] | None = None,
    allow_root: bool = False,
) -> list[DeliveryResult]:
    """Deliver to `targets` through the program mailer `mailer` (its P=, A=, F=, E=,
    D=): one run per target, or one for all with F=m. Never raises for a delivery
    problem: each target gets its DeliveryResult."""
    if not targets:
        return []
    flags = mailer.flags
    groups: list[list[ProgramTarget]]
    if "m" in flags and len({id(t.controlling_user) for t in targets}) == 1:
        groups = [list(targets)]
    else:
        groups = [[t] for t in targets]
    results: list[DeliveryResult] = []
    program = os.path.basename(mailer.path) or mailer.name
    for group in groups:
        first = group[0]
        try:
            identity = mailer_identity(
                mailer, first.controlling_user, settings, keep_root=allow_root and "S" in flags
            )
        except MailerUserError as err:
            results.extend(_config_error(t.recipient, mailer, str(err)) for t in group)
            continue
        home = identity.home if identity else home_of(first.controlling_user)
        values = {**mailer_macros(message, first.host, home), **(macros or {})}
        argv = expand_argv(mailer.argv, values, [t.user for t in group])
        outcome = run_program(
            argv,
            executable=mailer.path,
            stdin_chunks=mailer_stream(message, flags, eol=mailer_eol(mailer)),
            identity=identity,
            environment=settings.environment,
            directories=mailer_directories(mailer, home),
            timeout=settings.timeout,
            root_dir=mailer_root_dir(mailer, values),
            wait_timeout=mailer_wait(mailer),
        )
        for target in group:
            results.append(
                outcome_result(target.recipient, outcome, mailer=mailer.name, program=program)
            )
    return results


def _config_error(recipient: str, mailer: MailerSpec, text: str) -> DeliveryResult:
    """A mailer the configuration got wrong: the mail waits for the admin's fix."""
    return DeliveryResult.deferred(
        recipient, f"Deferred: {text}", status="4.3.5", mailer=mailer.name, relay="local"
    )


def mailer_macros(message: OutgoingMessage, host: str, home: str) -> dict[str, str]:
    """$f, $g, $h and $z as a program mailer's A= arguments see them."""
    return {"f": message.from_macro(), "g": bare_sender(message.sender), "h": host, "z": home}


def home_of(controlling: ControllingUser | RunIdentity | None) -> str:
    if isinstance(controlling, RunIdentity):
        return controlling.home
    if controlling is not None:
        try:
            return pwd.getpwuid(controlling.uid).pw_dir
        except KeyError:
            return "/"
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return "/"


def default_prog_mailer() -> MailerSpec:
    """The stock `prog` mailer, used when the configuration defines none."""
    return MailerSpec(
        "prog",
        {
            "P": "/bin/sh",
            "F": "lsDFMoqeu9",
            "D": "$z:/",
            "T": "X-Unix/X-Unix/X-Unix",
            "A": "sh -c $u",
        },
        Location("<builtin>", 0),
    )


def deliver_prog(
    message: OutgoingMessage,
    command: str,
    recipient: str,
    controlling_user: ControllingUser | RunIdentity | None,
    settings: ProgramSettings,
    *,
    mailer: MailerSpec | None = None,
) -> DeliveryResult:
    """Deliver to a `|command` target (the bar may be given or not) through the prog
    mailer, as the controlling user (never root)."""
    command = command.removeprefix("|").strip()
    if command.startswith('"') and command.endswith('"') and len(command) >= 2:
        command = command[1:-1]
    target = ProgramTarget(recipient, command, controlling_user=controlling_user)
    spec = mailer or default_prog_mailer()
    return run_mailer(message, [target], spec, settings)[0]
