"""The LHS matcher (Rewriter._match, compiled once per rule) against a plain reading of
sendmail's rewrite() matching loop, on random rules and workspaces: the same bindings, or
no match, every time. The reference tries every extension one token at a time, as
sendmail does; the engine skips the ones that cannot match."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.rules import tokenizer as tk
from pysendmail.rules.engine import CompiledRule, Rewriter, RuleBook
from pysendmail.rules.tokenizer import (
    MACRODEXPAND,
    MATCHANY,
    MATCHCLASS,
    MATCHNCLASS,
    MATCHONE,
    MATCHZANY,
    MATCHZERO,
)

TABLES = tk.TokenTables.build(".:%@!^/[]+")
CLASSES = {
    "w": frozenset({"a", "a.b", "b@c", "a.b.c.d", "ab"}),
    "m": frozenset({"b"}),
    "e": frozenset(),
}
MACROS = {"x": "a.b", "y": "B"}
WORDS = ["a", "b", "A", "c", "d", "ab", ".", "@", "<", ">", ""]
FUZZY = [
    MATCHZANY,
    MATCHANY,
    MATCHONE,
    MATCHZERO,
    MATCHCLASS + "w",
    MATCHCLASS + "m",
    MATCHCLASS + "e",
    MATCHCLASS + "z",
    MATCHNCLASS + "w",
    MACRODEXPAND + "x",
    MACRODEXPAND + "y",
    MACRODEXPAND + "q",
]


def reference(lhs: list[str], pvp: list[str]) -> list[tuple[int, int, int]] | None:
    """sendmail's matching loop, step by step (bindings as [LHS index, first, last])."""

    def in_class(word: str, cid: str) -> bool:
        members = CLASSES.get(cid)
        return members is not None and word.lower() in members

    def extend(m: list[int], cid: str) -> bool:
        while True:
            if m[2] + 1 >= len(pvp):
                return False
            m[2] += 1
            if in_class(tk.cataddr(pvp[m[1] : m[2] + 1], ".", TABLES.address), cid):
                return True

    mlist: list[list[int]] = []
    rvp = avp = 0
    while avp < len(pvp) or rvp < len(lhs):
        ok = True
        if rvp >= len(lhs):
            ok = False
        else:
            rp = lhs[rvp]
            head = rp[:1]
            if avp >= len(pvp) and head not in (MATCHZANY, MATCHZERO):
                ok = False
            elif head == MATCHCLASS:
                m = [rvp, avp, avp - 1]
                ok = extend(m, rp[1:])
                if ok:
                    mlist.append(m)
                    avp = m[2] + 1
            elif head == MATCHNCLASS and in_class(pvp[avp], rp[1:]):
                ok = False
            elif head in (MATCHNCLASS, MATCHONE, MATCHANY):
                mlist.append([rvp, avp, avp])
                avp += 1
            elif head == MATCHZANY:
                mlist.append([rvp, avp, avp - 1])
            elif head == MATCHZERO:
                pass
            elif head == MACRODEXPAND:
                value = MACROS.get(rp[1:])
                save = avp
                pos = 0
                while value and pos < len(value):
                    if avp >= len(pvp) or (
                        value[pos : pos + len(pvp[avp])].lower() != pvp[avp].lower()
                    ):
                        ok = False
                        avp = save
                        break
                    pos += len(pvp[avp])
                    avp += 1
            elif rp.lower() != pvp[avp].lower():
                ok = False
            else:
                avp += 1
        if ok:
            rvp += 1
            continue
        while mlist:
            m = mlist[-1]
            rvp = m[0]
            avp = m[2] + 1
            head = lhs[rvp][:1]
            if avp < len(pvp) and head in (MATCHANY, MATCHZANY):
                m[2] = avp
                avp += 1
                rvp += 1
                break
            if avp < len(pvp) and head == MATCHCLASS and extend(m, lhs[rvp][1:]):
                avp = m[2] + 1
                rvp += 1
                break
            mlist.pop()
        else:
            return None
    return [tuple(m) for m in mlist]  # type: ignore[misc]


def engine() -> Rewriter:
    return Rewriter(
        RuleBook(), tables=TABLES, space_sub=".", classes=CLASSES, maps={}, macros=dict(MACROS)
    )


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.sampled_from(WORDS[:-1] + FUZZY), max_size=7),
    st.lists(st.sampled_from(WORDS), max_size=9),
)
def test_the_matcher_binds_as_sendmails_loop(lhs: list[str], pvp: list[str]) -> None:
    rule = CompiledRule(tuple(lhs), ())
    lowered = [token.lower() for token in pvp]
    found = engine()._match(rule, pvp, lowered)
    expected = reference(lhs, pvp)
    assert (None if found is None else [tuple(m) for m in found]) == expected


def test_a_class_member_of_several_tokens_is_found_past_shorter_failures() -> None:
    lhs = ["x", MATCHZANY, MATCHCLASS + "w", "@", MATCHZANY]
    pvp = ["x", "q", "a", ".", "b", ".", "c", ".", "d", "@", "e"]
    rule = CompiledRule(tuple(lhs), ())
    found = engine()._match(rule, pvp, [token.lower() for token in pvp])
    assert found == [[1, 1, 1], [2, 2, 8], [4, 10, 10]]
    assert [tuple(m) for m in found] == reference(lhs, pvp)
