"""The sendmail 8.17 command line, read the way sendmail reads it.

This module owns the argument syntax only: which letters exist, which take a value,
the pre-pass sendmail runs before getopt (`-q` alone means "run once", `-C` alone means
`sendmail.cf`, `-d` alone means `-d0-99.1`), POSIX getopt itself (clusters such as
`-ti`, attached and separate values, `--`), and the checks sendmail makes while it reads
each flag (`Invalid operation mode x`, `More than one "from" person`, ...). It returns an
`Invocation`; it never reads the configuration, the message or the queue.

It is on the submission path, so it imports nothing but the standard library and
pysendmail.record (see the start-up budget in bench/README.md).
"""

from __future__ import annotations

import os

from pysendmail.record import field, record

# Operation modes, by the letter of `-b`.
MODE_DELIVER = "m"  # the default: read a message from stdin and send it
MODE_DAEMON = "d"
MODE_FOREGROUND_DAEMON = "D"
MODE_SMTP = "s"
MODE_INIT_ALIASES = "i"
MODE_VERIFY = "v"
MODE_TEST = "t"
MODE_PRINT_QUEUE = "p"
MODE_QUEUE_STATS = "P"
MODE_HOST_STATUS = "h"
MODE_PURGE_HOST_STATUS = "H"
MODE_ARPAFTP = "a"
MODE_CHECK_CONFIG = "C"
MODE_QUEUE_RUN = "q"  # not a -b letter: what a -q turns the default mode into

VALID_MODES = frozenset("mdDsivtpPhHaC")
FROZEN_MODE = "z"

# getopt's option string of sendmail 8.17: a letter followed by ':' takes a value.
OPTION_STRING = "A:B:b:C:cD:d:e:F:f:Gh:IiL:M:mN:nO:o:p:Q:q:R:r:sTtUV:vX:"

# argv[0] personalities.
PERSONALITIES = {
    "newaliases": MODE_INIT_ALIASES,
    "mailq": MODE_PRINT_QUEUE,
    "smtpd": MODE_DAEMON,
    "hoststat": MODE_HOST_STATUS,
    "purgestat": MODE_PURGE_HOST_STATUS,
}

# Modes a -q may be combined with (it turns the default mode into a queue run).
_QUEUE_COMPATIBLE = frozenset(
    [MODE_DELIVER, MODE_DAEMON, MODE_FOREGROUND_DAEMON, MODE_PRINT_QUEUE, MODE_QUEUE_RUN]
)


def _takes_value(letter: str) -> bool:
    index = OPTION_STRING.find(letter)
    return index >= 0 and letter != ":" and OPTION_STRING[index + 1 : index + 2] == ":"


class ArgumentError(Exception):
    """A flag getopt itself rejects: printed on stderr, exit 64 at once."""


@record
class QueueRunRequest:
    """What a `-q` asked for: an interval (None = once) and the limits on which items."""

    interval: str | None = None  # as given, e.g. "30m"; None for a single run
    ids: list[tuple[str, bool]] = field(default_factory=list)  # (substring, negated)
    recipients: list[tuple[str, bool]] = field(default_factory=list)
    senders: list[tuple[str, bool]] = field(default_factory=list)
    quarantine_reasons: list[tuple[str, bool]] = field(default_factory=list)
    queue_group: str | None = None
    foreground: bool = False
    persistent: bool = False
    lost_items: bool = False


@record
class OptionSetting:
    """One `-oXvalue` (letter) or `-O Name=value` (name) in command-line order."""

    letter: str | None
    name: str | None
    value: str


@record
class Invocation:
    """Everything the command line said, before any configuration is read."""

    program: str  # argv[0] as given
    source_argv: list[str] = field(default_factory=list)  # the whole argv, as given
    mode: str = MODE_DELIVER
    config_file: str | None = None  # -C
    submit_cf: str | None = None  # -A c|m
    debug_flags: list[str] = field(default_factory=list)
    debug_file: str | None = None  # -D
    sender: str | None = None  # -f / -r
    sender_flag: str = "f"  # which of the two set it, for X-Authentication-Warning
    full_name: str | None = None  # -F (or $NAME from the environment)
    read_recipients: bool = False  # -t
    settings: list[OptionSetting] = field(default_factory=list)  # -o, -O, -i, -v, ...
    macros: dict[str, str] = field(default_factory=dict)  # -M and -p
    hop_count: int | None = None
    body_type: str | None = None  # -B
    notify: str | None = None  # -N as given
    ret: str | None = None  # -R as given
    envid: str | None = None  # -V
    gateway: bool = False  # -G: relay (gateway) submission
    no_alias: bool = False  # -n
    queue_run: QueueRunRequest | None = None
    quarantine_reason: str | None = None  # -Q reason; None with -Q alone: release
    quarantining: bool = False  # -Q was given
    log_label: str | None = None  # -L
    traffic_log: str | None = None  # -X
    recipients: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # usrerr lines: exit 64 after reading
    json_listing: bool = False  # --json (our extension) with -bp / mailq

    @property
    def verbose(self) -> bool:
        return any(s.letter == "v" for s in self.settings)

    @property
    def daemon_flags(self) -> str:
        """${daemon_flags} of a command-line submission: MSA unless -G."""
        return "CC f" if self.gateway else "c u"

    def debug_levels(self) -> dict[int, int]:
        """The `-dX.Y` flags as {category: level}; malformed ones are ignored, as sendmail does."""
        levels: dict[int, int] = {}
        for flag in self.debug_flags:
            for item in flag.split(","):
                cats, _, level_text = item.partition(".")
                level = int(level_text) if level_text.isdigit() else 1
                low, _, high = cats.partition("-")
                if not low.isdigit() or (high and not high.isdigit()):
                    continue
                for category in range(int(low), int(high or low) + 1):
                    levels[category] = level
        return levels


def _prepass(program: str, args: list[str]) -> list[str]:
    """sendmail's rewrite of argv before getopt: fills in the values that may be left out."""
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg.startswith("--"):
            break
        letter = arg[1:2]
        following = args[i + 1] if i + 1 < len(args) else None
        if arg.startswith("-Q.") or (arg == "-Q" and following == "."):
            # "." is how sendmail itself spells "no reason": a user may not give it.
            raise ArgumentError(f"{program}: -Q. is not allowed")
        if (
            len(arg) == 2
            and _takes_value(letter)
            and letter != "d"
            and following is not None
            and not following.startswith("-")
        ):
            i += 2
            continue
        if arg == "-C":
            args[i] = "-Csendmail.cf"
        elif arg == "-q":
            args[i] = "-q0"
        elif arg == "-Q":
            args[i] = "-Q."
        elif arg == "-d":
            args[i] = "-d0-99.1"
        i += 1
    return args


def _getopt(program: str, args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """POSIX getopt over OPTION_STRING: stops at the first operand or after `--`."""
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return found, args[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            return found, args[i:]
        pos = 1
        while pos < len(arg):
            letter = arg[pos]
            if letter == ":" or letter not in OPTION_STRING:
                raise ArgumentError(f"{program}: invalid option -- '{letter}'")
            if _takes_value(letter):
                if pos + 1 < len(arg):
                    found.append((letter, arg[pos + 1 :]))
                elif i + 1 < len(args):
                    i += 1
                    found.append((letter, args[i]))
                else:
                    raise ArgumentError(f"{program}: option requires an argument -- '{letter}'")
                break
            found.append((letter, ""))
            pos += 1
        i += 1
    return found, []


def _is_xtext(text: str) -> bool:
    """RFC 3461 xtext: printable ASCII except '+' and '=', with '+XX' hex escapes."""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "+":
            hexpart = text[i + 1 : i + 3]
            if len(hexpart) != 2 or any(c not in "0123456789ABCDEF" for c in hexpart):
                return False
            i += 3
            continue
        if not ("!" <= ch <= "~") or ch == "=":
            return False
        i += 1
    return True


def _queue_limit(inv: Invocation, value: str) -> None:
    if inv.mode not in _QUEUE_COMPATIBLE:
        inv.errors.append(f"Can not use -q with -b{inv.mode}")
        return
    if inv.mode == MODE_DELIVER:
        inv.mode = MODE_QUEUE_RUN
    inv.full_name = None
    request = inv.queue_run or QueueRunRequest()
    inv.queue_run = request
    negated = value.startswith("!")
    if negated:
        value = value[1:]
    kind, rest = value[:1], value[1:]
    if kind == "I":
        request.ids.append((rest, negated))
    elif kind == "R":
        request.recipients.append((rest, negated))
    elif kind == "S":
        request.senders.append((rest, negated))
    elif kind == "Q":
        request.quarantine_reasons.append((rest, negated))
    elif kind == "G":
        request.queue_group = rest
    elif kind == "L":
        request.lost_items = True
    elif kind in ("f", "p"):
        request.foreground = True
        request.persistent = kind == "p"
        if rest:
            _queue_interval(inv, request, rest)
    else:
        _queue_interval(inv, request, value)


_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, default_unit: str = "m") -> int | None:
    """sendmail's convtime: `1h30m`, `90` (in default_unit); None when malformed."""
    total = 0
    number = ""
    for ch in text:
        if ch.isdigit():
            number += ch
            continue
        if ch not in _TIME_UNITS or not number:
            return None
        total += int(number) * _TIME_UNITS[ch]
        number = ""
    if number:
        total += int(number) * _TIME_UNITS[default_unit]
    return total


def _queue_interval(inv: Invocation, request: QueueRunRequest, text: str) -> None:
    seconds = parse_duration(text)
    if seconds is None:
        inv.errors.append(f"Invalid time unit `{text}'")
        return
    request.interval = None if seconds == 0 else text


def _macro(inv: Invocation, text: str) -> None:
    if text.startswith("{"):
        end = text.find("}")
        if end < 0:
            inv.errors.append(f"Unbalanced {{ on {text}")
            return
        name, value = text[1:end], text[end + 1 :]
    else:
        name, value = text[:1], text[1:]
    if not name:
        inv.errors.append("Macro name required")
        return
    inv.macros[name] = value


def _notify(inv: Invocation, value: str) -> None:
    inv.notify = value
    if value.lower() == "never":
        return
    for word in value.split(","):
        if word.lower() not in ("success", "failure", "delay"):
            inv.errors.append("Invalid -N argument")


def _apply(inv: Invocation, letter: str, value: str) -> None:
    """One getopt result, with the checks sendmail makes as it reads the flag."""
    if letter == "b":
        mode = value[:1] or " "
        if mode in VALID_MODES:
            inv.mode = mode
        elif mode == FROZEN_MODE:
            inv.errors.append("Frozen configurations unsupported")
        else:
            inv.errors.append(f"Invalid operation mode {mode}")
    elif letter == "A":
        inv.submit_cf = value
    elif letter == "B":
        inv.body_type = value
    elif letter == "C":
        inv.config_file = value
    elif letter == "D":
        inv.debug_file = value
    elif letter == "d":
        inv.debug_flags.append(value)
    elif letter in "fr":
        if inv.sender is not None:
            inv.errors.append('More than one "from" person')
            return
        inv.sender = value
        inv.sender_flag = letter
    elif letter == "F":
        inv.full_name = value
    elif letter == "G":
        inv.gateway = True
    elif letter == "h":
        if value.lstrip("+-").isdigit():
            inv.hop_count = int(value)
        else:
            inv.errors.append(f"Bad hop count ({value})")
    elif letter == "L":
        inv.log_label = value
    elif letter == "M":
        _macro(inv, value)
    elif letter == "N":
        _notify(inv, value)
    elif letter == "n":
        inv.no_alias = True
    elif letter == "o":
        inv.settings.append(OptionSetting(letter=value[:1], name=None, value=value[1:]))
    elif letter == "O":
        name, _, option_value = value.partition("=")
        inv.settings.append(OptionSetting(letter=None, name=name.strip(), value=option_value))
    elif letter == "p":
        protocol, colon, host = value.partition(":")
        if colon and host:
            inv.macros["s"] = host
        if protocol:
            inv.macros["r"] = protocol
    elif letter == "Q":
        if inv.mode not in (MODE_DELIVER, MODE_QUEUE_RUN):
            inv.errors.append(f"Can not use -Q with -b{inv.mode}")
            return
        # -Q turns a submission into an operation on the queue, as in sendmail.
        inv.mode = MODE_QUEUE_RUN
        inv.full_name = None
        inv.quarantining = True
        inv.quarantine_reason = None if value == "." else value
    elif letter == "q":
        _queue_limit(inv, value)
    elif letter == "R":
        if inv.ret is not None:
            inv.errors.append("Duplicate -R flag")
            return
        inv.ret = value
        if value.lower() not in ("hdrs", "full"):
            inv.errors.append("Invalid -R value")
    elif letter == "t":
        inv.read_recipients = True
    elif letter == "V":
        if _is_xtext(value):
            inv.envid = value
        else:
            inv.errors.append("Invalid syntax in -V flag")
    elif letter == "X":
        inv.traffic_log = value
    elif letter in "cimTv":
        inv.settings.append(OptionSetting(letter=letter, name=None, value="T"))
    elif letter == "e":
        inv.settings.append(OptionSetting(letter="e", name=None, value=value))
    elif letter == "s":
        inv.settings.append(OptionSetting(letter="f", name=None, value="T"))
    elif letter == "I":
        inv.mode = MODE_INIT_ALIASES
    # "U" (initial user submission) is the default already.


def parse_args(argv: list[str], environ: dict[str, str] | None = None) -> Invocation:
    """Read a full argv (argv[0] included). Raises ArgumentError for what getopt rejects."""
    program = argv[0] if argv else "sendmail"
    inv = Invocation(program=program, source_argv=list(argv))
    inv.mode = PERSONALITIES.get(os.path.basename(program), MODE_DELIVER)
    env = os.environ if environ is None else environ
    inv.full_name = env.get("NAME")
    args = argv[1:]
    inv.json_listing, args = _take_json_flag(args)
    found, operands = _getopt(program, _prepass(program, args))
    for letter, value in found:
        _apply(inv, letter, value)
    inv.recipients = operands
    if inv.json_listing and inv.mode != MODE_PRINT_QUEUE:
        raise ArgumentError(f"{program}: --json goes only with -bp (mailq)")
    return inv


def _take_json_flag(args: list[str]) -> tuple[bool, list[str]]:
    """`--json` among the options (before the first operand or `--`), taken out."""
    for index, arg in enumerate(args):
        if arg == "--json":
            return True, args[:index] + args[index + 1 :]
        if arg == "--" or not arg.startswith("-"):
            break
    return False, args
