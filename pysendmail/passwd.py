"""The password file for SMTP AUTH and POP3: `pysendmail.passwd` beside the sendmail.cf in use,
and the APOP secrets file `pysendmail.apop` beside it.

One `user:hash` a line; `#` comments and blank lines are allowed. A hash is
`$scrypt$ln=14,r=8,p=1$<salt>$<key>` (salt and key in unpadded base64), made with
hashlib.scrypt. Passwords are never stored or logged in clear. The file is written
whole to a temporary file and renamed, mode 0600, so a reader never sees half of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path

from pysendmail.errors import ConfigError, Location

FILE_NAME = "pysendmail.passwd"
DEFAULT_PATH = Path("/etc/mail") / FILE_NAME

_LOG_N, _R, _P = 14, 8, 1
_KEY_LEN = 32
_HASH = re.compile(r"\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)\Z")
_VALID_USER = re.compile(r"[^:\s#][^:\s]*\Z")


def passwd_path(cf_path: str | os.PathLike[str] | None, state_dir: Path | None = None) -> Path:
    """Where the password file is: beside the cf, or in the state directory of the
    embedded default (cf_path None), else /etc/mail."""
    if cf_path is not None:
        return Path(cf_path).parent / FILE_NAME
    if state_dir is not None:
        return Path(state_dir) / FILE_NAME
    return DEFAULT_PATH


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"),
        salt=salt,
        n=1 << log_n,
        r=r,
        p=p,
        maxmem=256 * 1024 * 1024,
        dklen=_KEY_LEN,
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = _derive(password, salt, _LOG_N, _R, _P)
    return f"$scrypt$ln={_LOG_N},r={_R},p={_P}${_b64(salt)}${_b64(key)}"


def check_hash(stored: str, password: str) -> bool:
    """True when `password` matches the `stored` hash; False for a malformed hash."""
    match = _HASH.match(stored)
    if not match:
        return False
    log_n, r, p = (int(x) for x in match.group(1, 2, 3))
    if not (1 <= log_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    try:
        salt, key = _unb64(match.group(4)), _unb64(match.group(5))
        return hmac.compare_digest(_derive(password, salt, log_n, r, p), key)
    except (ValueError, MemoryError):
        return False


def read_entries(path: Path) -> dict[str, str]:
    """user -> hash; a missing file is empty; a malformed line is a ConfigError naming it."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", Location(str(path), 0, 0)) from exc
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        user, colon, stored = stripped.partition(":")
        if not colon or not _VALID_USER.match(user) or not _HASH.match(stored):
            raise ConfigError("malformed password entry", Location(str(path), number, 1))
        entries[user] = stored
    return entries


_DUMMY_HASH = None


def verify(user: str, password: str, *, path: Path = DEFAULT_PATH) -> bool:
    """True when `user` is in the file at `path` with this `password`. An unknown
    user costs the same work as a wrong password, so timing tells nothing."""
    global _DUMMY_HASH
    stored = read_entries(Path(path)).get(user)
    if stored is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_hex(8))
        check_hash(_DUMMY_HASH, password)
        return False
    return check_hash(stored, password)


def set_password(user: str, password: str, *, path: Path = DEFAULT_PATH) -> None:
    """Add `user` or change their password; other lines (comments too) are kept."""
    if not _VALID_USER.match(user):
        raise ValueError(f"invalid user name {user!r}")
    path = Path(path)
    read_entries(path)  # refuse to rewrite a file we cannot read correctly
    _write_entry(path, user, f"{user}:{hash_password(password)}")


def _write_entry(path: Path, user: str, entry: str) -> None:
    """Put `entry` in place of `user`'s line of the file at `path` (or after the last
    line): written whole to a temporary file, mode 0600, renamed over the old one."""
    try:
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except FileNotFoundError:
        lines = []
    for index, line in enumerate(lines):
        if line.strip().partition(":")[0] == user and not line.lstrip().startswith("#"):
            lines[index] = entry
            break
    else:
        lines.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- APOP shared secrets
#
# APOP (RFC 1939 section 7) proves knowledge of a secret by MD5(timestamp + secret), so
# the server must hold the secret itself, not a hash of it: whoever reads this file can
# log in as every user in it. It is a separate file, so that the scrypt file never holds
# anything plain, written mode 0600 (owned by root when root writes it), and refused
# when group or others may read it, as qpopper's popauth and Dovecot's plain passdbs.

APOP_FILE_NAME = "pysendmail.apop"


def apop_path(password_file: Path) -> Path:
    """The APOP secrets file: beside the password file."""
    return Path(password_file).with_name(APOP_FILE_NAME)


def read_apop_secrets(path: Path) -> dict[str, str]:
    """user -> secret; a missing file is empty. A file others can read, or a malformed
    line, is a ConfigError naming it."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", Location(str(path), 0, 0)) from exc
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & 0o077:
            raise ConfigError(
                f"holds plain-text-equivalent secrets but has mode {stat.S_IMODE(mode):04o}"
                " (chmod 600)",
                Location(str(path), 0, 0),
            )
        text = handle.read()
    secrets_of: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, colon, secret = line.partition(":")
        if not colon or not _VALID_USER.match(user) or not secret:
            raise ConfigError("malformed APOP entry", Location(str(path), number, 1))
        secrets_of[user] = secret
    return secrets_of


def set_apop_secret(user: str, secret: str, *, path: Path) -> None:
    """Add `user`'s APOP secret or change it; other lines (comments too) are kept."""
    if not _VALID_USER.match(user):
        raise ValueError(f"invalid user name {user!r}")
    if not secret or "\n" in secret or "\r" in secret:
        raise ValueError("an APOP secret is one non-empty line")
    path = Path(path)
    read_apop_secrets(path)  # refuse to rewrite a file we cannot read correctly
    _write_entry(path, user, f"{user}:{secret}")
