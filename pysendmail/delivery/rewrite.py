"""The addresses of a message's headers as one mailer is given them (sendmail's
putheader() and commaize()).

A sender header (From:, Sender:, Reply-To:, Errors-To:, Resent-From/Sender/Reply-To,
Disposition-Notification-To: `headers.is_sender_header`) and a recipient header (To:,
Cc:, Bcc:, Resent-To/Cc/Bcc, Apparently-To) hold a comma-separated list of addresses;
each one is handed to the mailer's rewriting (`AddressRewrite`: rulesets 1 or 2, the
mailer's S= or R= header part, 4), which keeps its phrase and comments (crackaddr) and
replaces the address only. Each such header is written again as commaize() writes it:
the addresses joined by ", ", folded before the 79th column onto lines indented by eight
spaces (`a@x,b@y` goes out as `a@x, b@y`, as sendmail sends it). A message none of whose
address headers holds `,`, `(`, `<` or `;` is old style: its recipient lists are
separated by blanks.

Pure: header records in, header records out. The queued message is never changed; the
deliverers build the rewritten copy for each delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pysendmail.address import parse_item, split_commas
from pysendmail.errors import MailError
from pysendmail.headers import Header, is_bcc_header, is_recipient_header, is_sender_header

# (address, sender?, header?) -> the address as this mailer writes it
AddressRewrite = Callable[[str, bool, bool], str]

MAX_HEADER_LINE = 78  # commaize()'s omax for a mailer without L= (or with L= > 80)


def split_addresses(value: str) -> list[str]:
    """The addresses of a header value, split at the commas outside quotes, comments
    and angle brackets (route addresses keep theirs), each without the blanks around it."""
    return split_commas(value)


def split_old_style(value: str) -> list[str]:
    """An old-style list (`alice bob`): the addresses separated by blanks, except that
    blanks around an `@` do not end one (`bob @ host`), quoted strings kept whole."""
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value.strip():
        if escaped or quoted:
            current.append(ch)
            quoted = quoted and (escaped or ch != '"')
            escaped = not escaped and ch == "\\"
            continue
        if ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = True
        elif ch in " \t\r\n":
            if current:
                words.append("".join(current))
                current = []
            continue
        current.append(ch)
    if current:
        words.append("".join(current))
    names: list[str] = []
    for word in words:
        if names and (word.startswith("@") or names[-1].endswith("@")):
            names[-1] += " " + word
        else:
            names.append(word)
    return names


def is_old_style(headers: Iterable[Header]) -> bool:
    """sendmail's EF_OLDSTYLE: no sender or recipient header holds `,`, `(`, `<` or `;`,
    so the recipient lists are taken as blank-separated."""
    return not any(
        (is_sender_header(h.name) or is_recipient_header(h.name))
        and any(ch in h.value for ch in ",(<;")
        for h in headers
    )


def commaize(name: str, addresses: Iterable[str], *, line_limit: int = 0) -> str:
    """The value of header `name` holding `addresses`, folded as sendmail folds it."""
    limit = line_limit - 2 if 2 <= line_limit <= MAX_HEADER_LINE + 2 else MAX_HEADER_LINE
    column = len(name) + 2  # "Name: "
    out: list[str] = []
    for address in addresses:
        if not out:
            out.append(address)
            column += len(address)
            continue
        column += len(address) + 2
        if column > limit:
            out.append(",\n        " + address)
            column = 8 + len(address)
        else:
            out.append(", " + address)
    return "".join(out)


def add_domain(address: str, domain: str) -> str:
    """`address` with `@domain` after its local part when it has no domain (sendmail's
    RF_ADDDOMAIN); as it is otherwise, or when it does not parse."""
    try:
        addr = parse_item(address).addr_spec
    except MailError:
        return address
    if not addr or "@" in addr or addr not in address or addr.startswith(("|", "/")):
        return address
    return address.replace(addr, f"{addr}@{domain}", 1)


def rewrite_header(
    header: Header,
    rewrite: AddressRewrite,
    *,
    line_limit: int = 0,
    from_domain: str | None = None,
    old_style: bool = False,
) -> Header:
    """One header with its addresses rewritten for a mailer, written again as commaize()
    writes it; itself when it is no address header. With `from_domain` (the message came
    from a mailer with F=C), an address without a domain gets that one first; with
    `old_style`, a recipient list is split at blanks."""
    sender = is_sender_header(header.name)
    if (not sender and not is_recipient_header(header.name)) or is_bcc_header(header.name):
        return header  # a Bcc: goes out empty or not at all (headers.render)
    split = split_old_style if old_style and not sender else split_addresses
    addresses = split(header.unfolded())
    given = [add_domain(a, from_domain) for a in addresses] if from_domain else addresses
    rewritten = [rewrite(address, sender, True) for address in given]
    kept = [address for address in rewritten if address]
    value = commaize(header.name, kept, line_limit=line_limit)
    return Header(
        name=header.name,
        value=value,
        condition=header.condition,
        macro_condition=header.macro_condition,
    )


def rewrite_headers(
    headers: Iterable[Header],
    rewrite: AddressRewrite,
    *,
    line_limit: int = 0,
    from_domain: str | None = None,
) -> list[Header]:
    """The header list with every sender and recipient header rewritten for a mailer."""
    headers = list(headers)
    old_style = is_old_style(headers)
    return [
        rewrite_header(
            h, rewrite, line_limit=line_limit, from_domain=from_domain, old_style=old_style
        )
        for h in headers
    ]
