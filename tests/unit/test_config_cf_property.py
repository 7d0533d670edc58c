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
