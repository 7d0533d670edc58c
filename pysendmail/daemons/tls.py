"""Server-side TLS contexts from the cf's certificate options, for STARTTLS, SMTPS and POP3.

Owns the mapping from `ServerCertFile`, `ServerKeyFile`, `CACertFile` and `CACertPath`
(m4: confSERVER_CERT, confSERVER_KEY, confCACERT, confCACERT_PATH) to an `ssl.SSLContext`
with sane defaults (TLS 1.2 or later, the ssl module's default ciphers). A context is
made only when both the certificate and its key are configured; a configured file that
cannot be read is a ConfigError naming the option, so the daemon refuses to start rather
than silently offering no TLS.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from pysendmail.errors import ConfigError


def server_context(
    cert_file: str,
    key_file: str,
    ca_file: str | None = None,
    ca_path: str | None = None,
    *,
    request_client_cert: bool = False,
) -> ssl.SSLContext:
    """A server context that presents `cert_file`/`key_file`.

    With CA certificates, a client certificate is asked for (not required), as sendmail
    does to fill `${verify}`; without, none is asked.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"ServerCertFile={cert_file}, ServerKeyFile={key_file}: cannot load: {error}"
        ) from error
    if ca_file or ca_path:
        try:
            context.load_verify_locations(cafile=ca_file or None, capath=ca_path or None)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"CACertFile={ca_file} CACertPath={ca_path}: {error}") from error
        if request_client_cert:
            context.verify_mode = ssl.CERT_OPTIONAL
    return context


def context_from_options(options: Mapping[str, object]) -> ssl.SSLContext | None:
    """The server context the options describe, or None when no certificate is set."""
    cert = options.get("ServerCertFile")
    key = options.get("ServerKeyFile")
    if not cert or not key:
        return None
    ca_file = options.get("CACertFile")
    ca_path = options.get("CACertPath")
    return server_context(
        str(cert),
        str(key),
        str(ca_file) if ca_file else None,
        str(ca_path) if ca_path else None,
        request_client_cert=bool(ca_file or ca_path),
    )


def tls_version_macros(connection: ssl.SSLSocket) -> dict[str, str]:
    """sendmail's `${tls_version}`, `${cipher}`, `${cipher_bits}`, `${verify}` for Received:."""
    cipher = connection.cipher()
    macros = {"tls_version": connection.version() or ""}
    if cipher:
        macros["cipher"] = cipher[0]
        macros["cipher_bits"] = str(cipher[2])
    try:
        peer = connection.getpeercert()
    except ValueError:
        peer = None
    macros["verify"] = "OK" if peer else "NO"
    return macros
