"""The system's accounts as POP3 (and SMTP AUTH) users: /etc/shadow checked by crypt(3).

`verify_system_account(user, password)` is true when `user` has an account in
/etc/passwd with a uid of at least `FIRST_VALID_UID` (people, not daemons nor root),
an /etc/shadow entry whose hash is not locked (`!`, `*`) or empty, that has not expired,
and `password` hashes to that entry through libcrypt's crypt() (yescrypt, SHA-512 and
every other method the system's libcrypt knows). The stdlib `crypt` module is deprecated
(PEP 594), so libcrypt is called through ctypes. Only root can read /etc/shadow: for any
other user every check is false.

crypt() returns a pointer into a static buffer, so calls are serialised by a lock; an
unknown user costs a crypt() too, so timing does not tell which part was wrong.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac
import os
import pwd
import threading
import time
from pathlib import Path

SHADOW = Path("/etc/shadow")
# Debian's UID_MIN (login.defs): accounts below it are the system's own, and root.
FIRST_VALID_UID = 1000
# A SHA-512 setting: the cost of a check for a user that has no usable hash.
_DUMMY_SETTING = b"$6$pysendmailpop3$"

_crypt_lock = threading.Lock()
_libcrypt: ctypes.CDLL | None = None


def _crypt_function() -> ctypes._CFuncPtr | None:
    global _libcrypt
    if _libcrypt is None:
        name = ctypes.util.find_library("crypt")
        if name is None:
            return None
        _libcrypt = ctypes.CDLL(name, use_errno=True)
        _libcrypt.crypt.restype = ctypes.c_char_p
        _libcrypt.crypt.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    return _libcrypt.crypt


def crypt(password: str, setting: str | bytes) -> str | None:
    """crypt(3) of `password` with `setting` (a salt or a whole hash); None when libcrypt
    is absent or refuses the setting (it returns NULL or a `*` failure token)."""
    function = _crypt_function()
    if function is None:
        return None
    key = password.encode("utf-8", "surrogateescape")
    salt = setting.encode("ascii", "replace") if isinstance(setting, str) else setting
    if b"\0" in key:
        return None
    with _crypt_lock:
        result = function(key, salt)
    if not result or result.startswith(b"*"):
        return None
    return result.decode("ascii", "replace")


def available() -> bool:
    """True when libcrypt can be called and /etc/shadow read (in practice: as root)."""
    return _crypt_function() is not None and os.access(SHADOW, os.R_OK)


def shadow_entry(user: str, shadow: Path = SHADOW) -> list[str] | None:
    """The fields of `user`'s line in the shadow file, or None."""
    try:
        text = shadow.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 8 and fields[0] == user:
            return fields
    return None


def _usable_hash(user: str, shadow: Path, today: int) -> str | None:
    try:
        account = pwd.getpwnam(user)
    except (KeyError, ValueError):
        return None
    if account.pw_uid < FIRST_VALID_UID:
        return None
    fields = shadow_entry(user, shadow)
    if fields is None:
        return None
    stored, expire = fields[1], fields[7]
    if not stored or stored[0] in "!*":
        return None  # no password, or locked (usermod -L, passwd -l)
    if expire.isdigit() and int(expire) <= today:
        return None  # the account expired (chage -E)
    return stored


def verify_system_account(
    user: str, password: str, *, shadow: Path = SHADOW, today: int | None = None
) -> bool:
    """True when `password` is `user`'s system password (see the module's rules)."""
    if today is None:
        today = int(time.time() // 86400)
    stored = _usable_hash(user, shadow, today) if user and ":" not in user else None
    computed = crypt(password, stored if stored is not None else _DUMMY_SETTING)
    if stored is None or computed is None:
        return False
    return hmac.compare_digest(computed.encode(), stored.encode())
