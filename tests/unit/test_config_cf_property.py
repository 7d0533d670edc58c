"""Property: no text makes the sendmail.cf parser raise anything but ConfigError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.config.cfparse import parse_cf
from pysendmail.errors import ConfigError

# Line starts that reach every line type, so the text is not only "unknown line" errors.
_STARTS = [*"VDCFOMQXKSRHPTE# \t", "O ", "R$*\t", "H?", "K x ", "S", "F-o", "M x,"]
_line = st.builds(
    lambda start, body: start + body,
    st.sampled_from(_STARTS),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=12).map("\n".join))
def test_cf_like_text_never_raises(text: str) -> None:
    try:
        cf = parse_cf(text, "prop.cf")
    except ConfigError:
        return
    for diagnostic in cf.diagnostics:
        assert diagnostic.location.file == "prop.cf"
        assert diagnostic.location.line >= 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    try:
        parse_cf(text, "prop.cf")
    except ConfigError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.lists(_line, max_size=10).map("\n".join))
def test_translating_cf_like_text_never_raises(tmp_path_factory, text: str) -> None:
    from pysendmail.config.translate import translate

    cf = tmp_path_factory.mktemp("prop") / "prop.cf"
    cf.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        config = translate(cf, hostname="mail.example.com")
    except ConfigError:
        return
    assert all(d.location.file for d in config.diagnostics)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["O MaxMessageSize=", "O Timeout.queuewarn=", "O TempFileMode=",
                     "O DaemonPortOptions=", "S", "V", "P x=", "O MeToo=", "OQ"]),
    st.text(max_size=60) | st.from_regex(r"[0-9]{10,6000}", fullmatch=True),
)  # fmt: skip
def test_option_values_and_numbers_of_any_size_never_raise(tmp_path_factory, start, value) -> None:
    from pysendmail.config.translate import translate

    cf = tmp_path_factory.mktemp("prop") / "prop.cf"
    cf.write_text(f"V10/Berkeley\n{start}{value}\n", encoding="utf-8", errors="surrogateescape")
    try:
        translate(cf, hostname="mail.example.com")
    except ConfigError:
        pass
