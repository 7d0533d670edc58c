"""The header side of per-mailer rewriting (delivery/rewrite.py) and the `?flags?` /
H_ACHECK rules of which headers a mailer is given (headers.py, stamp.py)."""

from __future__ import annotations

from pysendmail.delivery.rewrite import commaize, rewrite_headers, split_addresses
from pysendmail.headers import Header, is_recipient_header, is_sender_header, render
from pysendmail.stamp import HeaderTemplate, default_headers


def qualify(address: str, sender: bool, header: bool) -> str:
    """A stand-in for a mailer's rules: senders to example.com, recipients to $j."""
    if "@" in address:
        return address
    domain = "example.com" if sender else "mail.example.com"
    if address.endswith(">"):
        return address[:-1] + f"@{domain}>"
    return f"{address}@{domain}"


def test_addresses_split_at_commas_outside_quotes_comments_and_angles():
    value = '"Doe, J." <j@x>, bob (Bob, the builder), <@a,@b:c@d>,, carol'
    assert split_addresses(value) == [
        '"Doe, J." <j@x>',
        "bob (Bob, the builder)",
        "<@a,@b:c@d>",
        "carol",
    ]


def test_sender_and_recipient_headers_are_sendmails_h_from_and_h_rcpt():
    senders = ["From", "sender", "Reply-To", "Errors-To", "Resent-From", "Resent-Sender"]
    senders += ["Resent-Reply-To", "Disposition-Notification-To"]
    assert all(is_sender_header(name) for name in senders)
    recipients = ["To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc", "Apparently-To"]
    assert all(is_recipient_header(name) for name in recipients)
    assert not is_sender_header("Return-Receipt-To") and not is_recipient_header("Subject")


def test_only_the_address_is_replaced_phrase_and_comments_stay():
    headers = [
        Header("From", '"Alice A." <alice>', raw='From: "Alice A." <alice>\n'),
        Header("Cc", "carol, dave@elsewhere.example"),
        Header("Subject", "alice"),
    ]
    out = rewrite_headers(headers, qualify)
    assert out[0].value == '"Alice A." <alice@example.com>'
    assert out[1].value == "carol@mail.example.com, dave@elsewhere.example"
    assert out[2] is headers[2]


def test_address_headers_are_written_again_as_commaize_writes_them():
    header = Header("To", "a@x,b@y", raw="To: a@x,b@y\n")
    assert rewrite_headers([header], qualify)[0].value == "a@x, b@y"


def test_an_old_style_message_has_blank_separated_recipient_lists():
    headers = [Header("From", "bob"), Header("To", 'alice carol "d e" f @ host')]
    out = rewrite_headers(headers, qualify)
    unfolded = out[1].value.replace(",\n        ", ", ")
    assert unfolded == (
        'alice@mail.example.com, carol@mail.example.com, "d e"@mail.example.com, f @ host'
    )
    # one comma, parenthesis, angle or semicolon anywhere: new style, one address
    headers.append(Header("Cc", "x, y"))
    assert rewrite_headers(headers, qualify)[1].value == 'alice carol "d e" f @ host'  # one


def test_long_lists_are_folded_as_commaize_folds_them():
    names = [f"user{i:02d}" for i in range(12)]
    value = commaize("To", [f"{n}@mail.example.com" for n in names])
    lines = value.split("\n")
    assert len(lines) > 1
    assert all(line.startswith("        ") for line in lines[1:])
    assert len("To: " + lines[0]) <= 78 and all(len(line) <= 78 for line in lines)
    expected = [f"{n}@mail.example.com" for n in names]
    assert value.replace(",\n        ", ", ").split(", ") == expected


def test_a_users_return_path_and_content_length_never_go_out():
    headers = [
        Header("Return-Path", "<forged@example.net>"),
        Header("Content-Length", "12"),
        Header("Full-Name", "Joe"),
        Header("Subject", "x"),
    ]
    assert render(headers, "lsDFMPxn") == b"Subject: x\n"


def test_a_users_full_name_takes_the_condition_of_the_h_line_it_replaces():
    templates = [HeaderTemplate("Full-Name", "$?x$x$.", flags="x")]
    own = [Header("Full-Name", "Joe User")]
    stamped = default_headers(templates, own, {"x": "Root"})
    assert [(h.name, h.value, h.condition) for h in stamped] == [("Full-Name", "Joe User", "x")]
    assert render(stamped, "mDFMuX") == b""
    assert render(stamped, "DFMx") == b"Full-Name: Joe User\n"


def test_f_c_gives_addresses_without_a_domain_the_senders():
    headers = [Header("To", "alice, bob@elsewhere.example, carol (Carol), Dan <dan>")]
    kept = rewrite_headers(
        headers, lambda address, sender, header: address, from_domain="far.example"
    )
    assert kept[0].value == (
        "alice@far.example, bob@elsewhere.example, carol@far.example (Carol),\n"
        "        Dan <dan@far.example>"
    )
