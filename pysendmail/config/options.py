"""The one registry of sendmail options: long name, old one-letter name, type, default, doc.

It drives `O` lines in sendmail.cf, `-O Name=value` and `-oXvalue` on the command line,
`pysendmail-cf translate` and the docs. Names are matched without regard to case, as
sendmail does. `parse_value(name, raw)` turns the text of a value into its typed form:

    duration  `5d`, `4h`, `30m`, `1h30m`, a bare number in the option's unit -> seconds
    size, int integers (`MaxMessageSize=100000`); mode an octal file mode (`0600`)
    bool      sendmail's rule: empty, or starting with t/T/y/Y, is true; anything else false
    str       the text as written (macro references stay unexpanded)
    list      comma-separated words; repeated `O` lines add to the list
    multi     each `O` line is one entry kept whole (DaemonPortOptions: one daemon a line)

This module reads no files and knows nothing of where a value came from.
"""

from __future__ import annotations

from pysendmail.record import record

TYPE_CHECKING = False  # not importing collections at run time: start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping

KINDS = ("duration", "size", "int", "bool", "str", "list", "multi", "mode")


class OptionError(ValueError):
    """A value that does not fit its option's type, or an option nobody knows."""


@record(frozen=True)
class OptionSpec:
    name: str  # sendmail's long name, with its usual capitals
    letter: str | None  # the old one-letter name (`-oQ`, `OQ`), if it has one
    kind: str  # one of KINDS
    default: object
    doc: str
    unit: str = "s"  # for durations: the unit of a bare number

    def parse(self, raw: str) -> object:
        return _PARSERS[self.kind](raw, self)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(raw: str, unit: str = "s") -> int:
    """`1h30m` -> 5400; a number without a unit is in `unit`; an empty value is 0."""
    text = raw.strip()
    if not text:
        return 0
    import re  # not at import: the submission path does without it (bench/README.md)

    part = re.compile(r"([0-9]{1,12})([smhdw]?)", re.IGNORECASE)
    total = 0
    pos = 0
    while pos < len(text):
        match = part.match(text, pos)
        if not match:
            raise OptionError(f"invalid time value {raw!r}")
        number, suffix = match.groups()
        total += int(number) * _UNITS[(suffix or unit).lower()]
        pos = match.end()
    return total


def _parse_int(raw: str, spec: OptionSpec | None = None) -> int:
    text = raw.strip()
    try:
        return int(text) if text else 0
    except ValueError:  # also a number too long to convert
        raise OptionError(f"invalid number {raw!r}") from None


def _parse_size(raw: str, spec: OptionSpec | None = None) -> int:
    value = _parse_int(raw, spec)
    if value < 0:
        raise OptionError(f"invalid size {raw!r}")
    return value


def _parse_mode(raw: str, spec: OptionSpec | None = None) -> int:
    try:
        return int(raw.strip(), 8)
    except ValueError:
        raise OptionError(f"invalid file mode {raw!r}") from None


def parse_bool(raw: str, spec: OptionSpec | None = None) -> bool:
    """sendmail's atobool: no value, or one starting with t or y, means true."""
    text = raw.strip()
    return not text or text[0] in "tTyY"


def _parse_list(raw: str, spec: OptionSpec | None = None) -> tuple[str, ...]:
    import re  # not at import: the submission path does without it

    return tuple(word for word in re.split(r"[,\s]+", raw.strip()) if word)


def _parse_duration_opt(raw: str, spec: OptionSpec | None = None) -> int:
    return parse_duration(raw, spec.unit if spec else "s")


_PARSERS = {
    "duration": _parse_duration_opt,
    "size": _parse_size,
    "int": _parse_int,
    "bool": parse_bool,
    "str": lambda raw, spec=None: raw.strip(),
    "list": _parse_list,
    "multi": lambda raw, spec=None: (raw.strip(),),
    "mode": _parse_mode,
}

# name, letter, kind, default, doc[, unit]
# fmt: off
_TABLE: list[tuple] = [
    # -- files and directories
    ("AliasFile", "A", "list", ("/etc/mail/aliases",), "alias files, `[class:]path`"),
    ("HelpFile", "H", "str", "/etc/mail/helpfile", "the text for SMTP HELP"),
    ("HostsFile", None, "str", "/etc/hosts", "hosts file for `files` host lookups"),
    ("ServiceSwitchFile", None, "str", "/etc/mail/service.switch", "sources for hosts, aliases"),
    ("QueueDirectory", "Q", "str", "/var/spool/mqueue", "the mail queue directory"),
    ("StatusFile", "S", "str", "/etc/mail/statistics", "the delivery statistics file"),
    ("HostStatusDirectory", None, "str", None, "where persistent host status is kept"),
    ("PidFile", None, "str", "/var/run/sendmail.pid", "the daemon's pid file"),
    ("DeadLetterDrop", None, "str", None, "where to save a bounce that cannot be returned"),
    ("ForwardPath", "J", "str", "$z/.forward.$w:$z/.forward", "where to look for .forward files"),
    ("ErrorHeader", "E", "str", None, "a file (or text) to put above error messages"),
    ("SafeFileEnvironment", None, "str", None, "chroot for writing to files"),
    ("ControlSocketName", None, "str", None, "the daemon's control socket"),
    ("UserDatabaseSpec", "U", "str", None, "user database files"),
    ("DefaultAuthInfo", None, "str", None, "file of default outgoing AUTH data"),
    ("RandFile", None, "str", None, "random data source for TLS"),
    ("CACertFile", None, "str", None, "file of trusted CA certificates"),
    ("CACertPath", None, "str", None, "directory of trusted CA certificates"),
    ("ServerCertFile", None, "str", None, "the server's TLS certificate"),
    ("ServerKeyFile", None, "str", None, "the server's TLS private key"),
    ("ClientCertFile", None, "str", None, "the client's TLS certificate"),
    ("ClientKeyFile", None, "str", None, "the client's TLS private key"),
    ("CRLFile", None, "str", None, "certificate revocation list file"),
    ("CRLPath", None, "str", None, "certificate revocation list directory"),
    ("DHParameters", None, "str", None, "Diffie-Hellman parameters for TLS"),
    ("SharedMemoryKeyFile", None, "str", None, "where an auto-selected shared memory key is kept"),
    ("TempFileMode", "F", "mode", 0o600, "mode of temporary and queue files"),
    ("QueueFileMode", None, "mode", 0o600, "mode of qf files"),
    # -- limits
    ("MaxMessageSize", None, "size", 0, "largest message accepted, in bytes (0: no limit)"),
    ("MaxRecipientsPerMessage", None, "int", 0, "recipients accepted per envelope (0: no limit)"),
    ("MaxHopCount", "h", "int", 25, "Received headers before a message is bounced as looping"),
    ("MaxDaemonChildren", None, "int", 0, "concurrent daemon children (0: no limit)"),
    ("ConnectionRateThrottle", None, "int", 0, "new connections accepted per window (0: no limit)"),
    ("ConnectionRateWindowSize", None, "duration", 60, "the window of ConnectionRateThrottle"),
    ("MaxHeadersLength", None, "size", 32768, "total header bytes accepted"),
    ("MaxMimeHeaderLength", None, "str", "0/0", "longest MIME header / parameter"),
    ("MaxAliasRecursion", None, "int", 10, "depth of alias expansion"),
    ("MaxNOOPCommands", None, "int", 20, "NOOP-like commands before slowing down"),
    ("BadRcptThrottle", None, "int", 0, "bad RCPTs before each further one is delayed"),
    ("MinFreeBlocks", "b", "int", 100, "free disk blocks needed to accept mail"),
    ("QueueLA", "x", "int", None, "load average at which mail is only queued (8 per CPU)"),
    ("RefuseLA", "X", "int", None, "load average refusing connections (12 per CPU)"),
    ("DelayLA", None, "int", 0, "load average at which connections are slowed (0: never)"),
    ("QueueFactor", "q", "int", 600000, "slope of the queue-only function"),
    ("MaxQueueChildren", None, "int", 0, "concurrent queue runners (0: no limit)"),
    ("MaxRunnersPerQueue", None, "int", 1, "queue runners per queue group"),
    ("MaxQueueRunSize", None, "int", 0, "jobs read per queue run (0: no limit)"),
    ("NiceQueueRun", None, "int", 0, "nice(3) increment of queue runs"),
    ("RecipientFactor", "y", "int", 30000, "priority penalty per recipient"),
    ("ClassFactor", "z", "int", 1800, "priority weight of the Precedence class"),
    ("RetryFactor", "Z", "int", 90000, "priority penalty per delivery attempt"),
    ("CheckpointInterval", "C", "int", 10, "deliveries between queue file checkpoints"),
    ("ConnectionCacheSize", "k", "int", 2, "open outgoing connections kept"),
    ("DataFileBufferSize", None, "size", 4096, "df bytes kept in memory"),
    ("XscriptFileBufferSize", None, "size", 4096, "xf bytes kept in memory"),
    ("SharedMemoryKey", None, "int", 0, "shared memory key (0: none)"),
    ("FastSplit", None, "int", 1, "split envelopes without MX lookups"),
    ("AuthMaxBits", None, "int", 0, "largest SASL security strength"),
    ("LogLevel", "L", "int", 9, "how much is logged"),
    ("MilterLogLevel", None, "int", 0, "how much milter activity is logged"),
    # -- durations
    ("AliasWait", "a", "duration", 600, "how long to wait for an alias rebuild", "m"),
    ("ConnectionCacheTimeout", "K", "duration", 300, "how long a cached connection is kept", "m"),
    ("MinQueueAge", None, "duration", 0, "time in queue before a retry", "m"),
    ("MaxQueueAge", None, "duration", 0, "largest retry interval", "m"),
    ("DialDelay", None, "duration", 0, "wait before retrying a dial-up connection"),
    ("RejectLogInterval", None, "duration", 10800, "how often refused connections are logged", "h"),
    ("DeliverByMin", None, "duration", 0, "smallest DELIVERBY time (negative: off)"),
    # -- booleans
    ("SevenBitInput", "7", "bool", False, "strip message bodies to 7 bits"),
    ("HoldExpensive", "c", "bool", False, "queue mail for expensive mailers"),
    ("SaveFromLine", "f", "bool", False, "keep a Unix From_ line as a header"),
    ("MatchGECOS", "G", "bool", False, "match local names against full names"),
    ("IgnoreDots", "i", "bool", False, "a line with a lone dot does not end a message"),
    ("SendMimeErrors", "j", "bool", False, "send bounces as MIME (RFC 3462)"),
    ("UseErrorsTo", "l", "bool", False, "send errors to Errors-To:"),
    ("MeToo", "m", "bool", True, "send to the sender too when a list includes them"),
    ("CheckAliases", "n", "bool", False, "check alias targets in newaliases"),
    ("OldStyleHeaders", "o", "bool", False, "headers may use spaces between addresses"),
    ("DontPruneRoutes", "R", "bool", False, "keep source routes"),
    ("Verbose", "v", "bool", False, "report each step"),
    ("TryNullMXList", "w", "bool", False, "try a host directly when we are its best MX"),
    ("ForkEachJob", "Y", "bool", False, "one process per queued job"),
    ("AutoRebuildAliases", "D", "bool", False, "rebuild alias files when out of date (obsolete)"),
    ("SingleThreadDelivery", None, "bool", False, "one delivery per host at a time"),
    ("ColonOkInAddr", None, "bool", False, "colons are allowed in addresses"),
    ("DontExpandCnames", None, "bool", False, "do not replace CNAMEs by canonical names"),
    ("SingleLineFromHeader", None, "bool", False, "unwrap From: onto one line"),
    ("AllowBogusHELO", None, "bool", False, "accept HELO without a host name"),
    ("DontInitGroups", None, "bool", False, "do not call initgroups(3)"),
    ("UnsafeGroupWrites", None, "bool", True, "group-writable .forward files are untrusted"),
    ("DontProbeInterfaces", None, "bool", False, "do not add interface names to class w"),
    ("RrtImpliesDsn", None, "bool", False, "Return-Receipt-To: asks for a DSN"),
    ("SoftBounce", None, "bool", False, "issue 4xx instead of 5xx"),
    ("UseMSP", None, "bool", False, "run as a mail submission program"),
    ("RequiresDirfsync", None, "bool", True, "fsync the queue directory after renames"),
    ("TLSFallbacktoClear", None, "bool", False, "retry in clear text after a TLS failure"),
    ("UseCompressedIPv6Addresses", None, "bool", False, "write IPv6 addresses compressed"),
    ("RejectNUL", None, "bool", False, "reject messages containing NUL bytes"),
    # -- words and text
    ("BlankSub", "B", "str", " ", "character that replaces blanks in addresses"),
    ("DeliveryMode", "d", "str", "background", "interactive, background, queueonly or defer"),
    ("ErrorMode", "e", "str", "print", "print, mail, write, quiet or e (exit status)"),
    ("EightBitMode", "8", "str", "pass8", "mimefy, pass8 or strict"),
    ("ResolverOptions", "I", "str", "", "resolver flags (+AAONLY, +WorkAroundBrokenAAAA, ...)"),
    ("PostmasterCopy", "P", "str", None, "who gets copies of bounces"),
    ("SuperSafe", "s", "str", "true", "fsync queue files first"),
    ("TimeZoneSpec", "t", "str", None, "the TZ to use"),
    ("DefaultUser", "u", "str", "1:1", "user[:group] for deliveries with no other owner"),
    ("FallbackMXhost", "V", "str", None, "host to try when all MX hosts fail"),
    ("FallbackSmartHost", None, "str", None, "smart host to try when all else fails"),
    ("TrustedUser", None, "str", "root", "user who may own files and start the daemon"),
    ("RunAsUser", None, "str", None, "user the daemon works as after binding"),
    ("SmtpGreetingMessage", None, "str", "$j Sendmail $v/$Z; $b", "text of the 220 greeting"),
    ("UnixFromLine", None, "str", "From $g $d", "the From_ line of mbox deliveries"),
    ("OperatorChars", None, "str", ".:%@!^/[]+", "characters that are tokens in addresses"),
    ("MustQuoteChars", None, "str", ".'", "characters that force quoting a full name"),
    ("DefaultCharSet", None, "str", "unknown-8bit", "charset for 8-bit mail without MIME"),
    ("NoRecipientAction", None, "str", "none", "header to add with no recipients"),
    ("DoubleBounceAddress", None, "str", "postmaster", "who gets bounces of bounces"),
    ("ConnectOnlyTo", None, "str", None, "connect only to this address (testing)"),
    ("ProcessTitlePrefix", None, "str", None, "prefix of the ps(1) title"),
    ("MailboxDatabase", None, "str", "pw", "where local mailboxes are looked up"),
    ("QueueSortOrder", None, "str", "priority", "order of queue runs"),
    ("DirectSubmissionModifiers", None, "str", "", "{daemon_flags} for command-line submissions"),
    ("HeloName", None, "str", None, "the name used in outgoing HELO/EHLO"),
    ("AuthMechanisms", None, "str", "GSSAPI KERBEROS_V4 DIGEST-MD5 CRAM-MD5", "SASL mechanisms"),
    ("AuthRealm", None, "str", None, "the SASL realm"),
    ("TLSSrvOptions", None, "str", "", "STARTTLS server flags (V: no client cert)"),
    ("CipherList", None, "str", None, "TLS cipher list"),
    ("ServerSSLOptions", None, "str", None, "TLS server options"),
    ("ClientSSLOptions", None, "str", None, "TLS client options"),
    ("SSLEngine", None, "str", None, "TLS engine"),
    ("SSLEnginePath", None, "str", None, "path of the TLS engine library"),
    ("CertFingerprintAlgorithm", None, "str", None, "digest for certificate fingerprints"),
    ("DANE", None, "str", None, "DANE support"),
    ("LDAPDefaultSpec", None, "str", None, "default LDAP map arguments"),
    # -- lists
    ("PrivacyOptions", "p", "list", (), "noexpn, novrfy, goaway, authwarnings, ..."),
    ("AuthOptions", None, "list", (), "SASL flags (A, a, c, d, f, m, p, y, ...)"),
    ("DontBlameSendmail", None, "list", ("safe",), "file safety checks to relax"),
    ("InputMailFilters", None, "list", (), "milters used, in order"),
    ("DaemonPortOptions", "O", "multi", (), "one SMTP daemon: Name=, Port=, Addr=, M="),
    ("ClientPortOptions", None, "multi", (), "outgoing connection options, per family"),
    # -- old forms that set several options at once (expand_compound splits them)
    ("Timeout", "r", "str", None, "old form: `5m` sets every read timeout, or `mail=10m,rcpt=1h`"),
    ("QueueTimeout", "T", "str", None, "old form: `5d/4h` sets queuereturn/queuewarn"),
    # -- pysendmail's own options (sendmail warns about them; pysendmail reads them)
    ("LocalMaildir", None, "str", None, "deliver local mail to this Maildir, e.g. `$z/Maildir`"),
    ("ResolverNameServers", None, "list", (), "DNS servers to ask instead of resolv.conf's"),
    ("ResolverPort", None, "int", 53, "the port of ResolverNameServers"),
    # -- timeouts (`Timeout.x`)
    ("Timeout.initial", None, "duration", 300, "wait for the greeting", "m"),
    ("Timeout.connect", None, "duration", 0, "wait for connect(2) (0: the system's)", "m"),
    ("Timeout.aconnect", None, "duration", 0, "all connection attempts of one delivery", "m"),
    ("Timeout.iconnect", None, "duration", 0, "first connection attempt of a message", "m"),
    ("Timeout.helo", None, "duration", 300, "reply to HELO/EHLO", "m"),
    ("Timeout.mail", None, "duration", 600, "reply to MAIL", "m"),
    ("Timeout.rcpt", None, "duration", 3600, "reply to RCPT", "m"),
    ("Timeout.datainit", None, "duration", 300, "reply to DATA", "m"),
    ("Timeout.datablock", None, "duration", 3600, "each read of message data", "m"),
    ("Timeout.datafinal", None, "duration", 3600, "reply to the final dot", "m"),
    ("Timeout.rset", None, "duration", 300, "reply to RSET", "m"),
    ("Timeout.quit", None, "duration", 120, "reply to QUIT", "m"),
    ("Timeout.misc", None, "duration", 120, "reply to other commands", "m"),
    ("Timeout.command", None, "duration", 3600, "the server's wait for the next command", "m"),
    ("Timeout.ident", None, "duration", 5, "IDENT lookups", "m"),
    ("Timeout.fileopen", None, "duration", 60, "opening .forward and :include: files", "m"),
    ("Timeout.control", None, "duration", 120, "control socket commands", "m"),
    ("Timeout.lhlo", None, "duration", 120, "reply to LHLO", "m"),
    ("Timeout.auth", None, "duration", 600, "an AUTH exchange", "m"),
    ("Timeout.starttls", None, "duration", 3600, "the STARTTLS handshake", "m"),
    ("Timeout.hoststatus", None, "duration", 1800, "how long host status is believed", "m"),
    ("Timeout.queuereturn", None, "duration", 432000, "time in queue before a bounce", "d"),
    ("Timeout.queuereturn.normal", None, "duration", 432000, "queuereturn, normal precedence", "d"),
    ("Timeout.queuereturn.urgent", None, "duration", 172800, "queuereturn, urgent precedence", "d"),
    ("Timeout.queuereturn.non-urgent", None, "duration", 604800, "queuereturn, non-urgent", "d"),
    ("Timeout.queuereturn.dsn", None, "duration", 432000, "queuereturn, DSNs", "d"),
    ("Timeout.queuewarn", None, "duration", 14400, "time in queue before a delay warning", "h"),
    ("Timeout.queuewarn.normal", None, "duration", 14400, "queuewarn, normal precedence", "h"),
    ("Timeout.queuewarn.urgent", None, "duration", 3600, "queuewarn, urgent precedence", "h"),
    ("Timeout.queuewarn.non-urgent", None, "duration", 43200, "queuewarn, non-urgent", "h"),
    ("Timeout.queuewarn.dsn", None, "duration", 14400, "queuewarn, DSNs", "h"),
    ("Timeout.resolver.retrans", None, "duration", 5, "resolver retransmission time"),
    ("Timeout.resolver.retrans.first", None, "duration", 5, "resolver retransmission, first try"),
    ("Timeout.resolver.retrans.normal", None, "duration", 5, "resolver retransmission, later"),
    ("Timeout.resolver.retry", None, "int", 4, "resolver retries"),
    ("Timeout.resolver.retry.first", None, "int", 4, "resolver retries, first try"),
    ("Timeout.resolver.retry.normal", None, "int", 4, "resolver retries, later tries"),
]
# fmt: on


# The registry's indexes are built when first used, and an OptionSpec only for an option
# asked for: `sendmail -t -i -oi` looks up one or two of some two hundred (start-up time,
# bench/README.md). The first row of a name wins, the last of a letter.
_INDEX: list[tuple[dict[str, tuple], dict[str, str]]] = []  # (rows by name, name by letter)
_SPECS: dict[str, OptionSpec] = {}  # lower-case name -> its OptionSpec, once made


def _index() -> tuple[dict[str, tuple], dict[str, str]]:
    if not _INDEX:
        rows: dict[str, tuple] = {}
        for row in _TABLE:
            rows.setdefault(row[0].lower(), row)
        letters = {row[1]: lower for lower, row in rows.items() if row[1]}
        _INDEX.append((rows, letters))  # whole or not at all: threads may race here
    return _INDEX[0]


def _spec(lower: str) -> OptionSpec | None:
    spec = _SPECS.get(lower)
    if spec is None:
        row = _index()[0].get(lower)
        if row is None:
            return None
        spec = _SPECS.setdefault(lower, OptionSpec(*row))
        assert spec.kind in KINDS, spec
    return spec


def _all_options() -> Mapping[str, OptionSpec]:
    options = globals().get("OPTIONS")
    if options is None:
        from types import MappingProxyType

        specs = [_spec(lower) for lower in _index()[0]]
        options = MappingProxyType({spec.name: spec for spec in specs if spec is not None})
        globals()["OPTIONS"] = options
    return options


def __getattr__(name: str) -> object:
    if name == "OPTIONS":  # every option, by its long name (built when first read)
        return _all_options()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# `Or` (old read timeouts, `Or5m` or `Orinitial=5m,mail=10m`) and `OT` (`OT5d/4h`) set
# several options at once; they are written as the compound names below.
COMPOUND_LETTERS = {"r": "Timeout", "T": "QueueTimeout"}
# `-oMxvalue` / `OMxvalue` define macro x, they are not an option.
MACRO_LETTER = "M"

# Read timeouts that `Or` with one value (or `Timeout=5m`) sets all at once.
_READ_TIMEOUTS = (
    "initial", "helo", "mail", "rcpt", "datainit", "datablock", "datafinal", "rset", "quit",
    "misc", "command", "ident", "fileopen", "control", "lhlo", "auth", "starttls",
)  # fmt: skip


def option_spec(name: str) -> OptionSpec | None:
    """The option called `name` (any case), or None."""
    spec = _spec(name.lower())
    if spec is None and name.lower().startswith("milter."):
        return OptionSpec(name, None, "str", None, "milter setting")
    return spec


def option_by_letter(letter: str) -> OptionSpec | None:
    """The option with the old one-letter name `letter`, or None (sendmail ignores those)."""
    lower = _index()[1].get(letter)
    return _spec(lower) if lower is not None else None


def canonical_name(name: str) -> str | None:
    spec = option_spec(name)
    return spec.name if spec else None


def parse_value(name: str, raw: str) -> object:
    """The typed value of option `name` written as `raw`; `OptionError` if it does not fit."""
    spec = option_spec(name)
    if spec is None:
        raise OptionError(f"unknown option {name!r}")
    return spec.parse(raw)


def expand_compound(name: str, raw: str) -> list[tuple[str, str]] | None:
    """Split the options that set several others (`Timeout`, `QueueTimeout`) into
    (long name, raw value) pairs; None when `name` is an ordinary option."""
    lower = name.lower()
    if lower in ("timeout", "r"):
        pairs: list[tuple[str, str]] = []
        for part in raw.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" in part:
                key, value = part.split("=", 1)
                pairs.append((f"Timeout.{key.strip()}", value.strip()))
            else:
                pairs.extend((f"Timeout.{which}", part) for which in _READ_TIMEOUTS)
        return pairs
    if lower in ("queuetimeout", "t"):
        returned, _, warned = raw.partition("/")
        pairs = [("Timeout.queuereturn", returned.strip())]
        if warned.strip():
            pairs.append(("Timeout.queuewarn", warned.strip()))
        return pairs
    return None


def defaults() -> dict[str, object]:
    """Every option's default value, by long name."""
    return {spec.name: spec.default for spec in _all_options().values()}
