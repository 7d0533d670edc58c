"""The sysexits(3) codes, in one enum: every exit status of every command comes from here.

`ExitCode` behaves as an IntEnum; it is an IntConstants so that the submission path does
not import `enum` (pysendmail.constants)."""

from pysendmail.constants import IntConstants


class ExitCode(IntConstants):
    OK = 0
    USAGE = 64  # command line usage error
    DATAERR = 65  # data format error
    NOINPUT = 66  # cannot open input
    NOUSER = 67  # addressee unknown
    NOHOST = 68  # host name unknown
    UNAVAILABLE = 69  # service unavailable
    SOFTWARE = 70  # internal software error
    OSERR = 71  # system error (e.g., can't fork)
    OSFILE = 72  # critical OS file missing
    CANTCREAT = 73  # can't create (user) output file
    IOERR = 74  # input/output error
    TEMPFAIL = 75  # temp failure; user is invited to retry
    PROTOCOL = 76  # remote error in protocol
    NOPERM = 77  # permission denied
    CONFIG = 78  # configuration error

    @property
    def is_temporary(self) -> bool:
        return self in _TEMPORARY


# sendmail queues a recipient again only when its mailer exits with one of these
# (deliver.c's markfailure); every other non-zero code bounces.
_TEMPORARY = frozenset({ExitCode.TEMPFAIL, ExitCode.IOERR, ExitCode.OSERR})
