from pysendmail.errors import ConfigError, Location, UserUnknown
from pysendmail.sysexits import ExitCode


def test_user_unknown_gives_exit_code_and_smtp_reply_from_one_object():
    err = UserUnknown("<nobody@example.com>... User unknown")
    assert err.exit_code == ExitCode.NOUSER == 67
    assert err.smtp_reply() == "550 5.1.1 <nobody@example.com>... User unknown"
    assert not err.is_temporary


def test_config_error_names_file_line_and_column():
    err = ConfigError("unknown option Foo", Location("/etc/mail/sendmail.cf", 12, 3))
    assert str(err) == "/etc/mail/sendmail.cf:12:3: unknown option Foo"
    assert err.exit_code == ExitCode.CONFIG == 78


def test_tempfail_exit_codes_are_temporary():
    assert ExitCode.TEMPFAIL.is_temporary
    assert ExitCode.IOERR.is_temporary and ExitCode.OSERR.is_temporary
    assert not ExitCode.NOUSER.is_temporary
    # sendmail bounces on a mailer's EX_CANTCREAT: only 75, 74 and 71 are queued again.
    assert not ExitCode.CANTCREAT.is_temporary
