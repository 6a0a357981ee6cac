"""Pool files generated from their grammar (whole records), checked against
the rules of the README's "Pool files", not against the decoder's output.

A record is 512 bytes of key and 2048 of value; each field is cut at its
first NUL (stale bytes after it), or is the whole field when it has none;
invalid UTF-8 is replaced and reported; an empty key is skipped; a repeated
key: the last record wins; a trailing partial record is ignored with a
warning.
"""

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from agent import kvp
from tests.unit.reach import shares

KEY, VALUE = kvp.KEY_SIZE, kvp.VALUE_SIZE
nul_free_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40)


@st.composite
def field(draw, size, allow_empty):
    """(field bytes, the text the rules say it holds, invalid UTF-8?)"""
    kind = draw(st.sampled_from(["text", "text", "text", "invalid", "full"] + (["empty"] if allow_empty else [])))
    if kind == "empty":
        raw = b""
    elif kind == "invalid":
        raw = draw(nul_free_text).encode() + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"]))
    elif kind == "full":
        # No NUL at all: the whole field is the text.
        raw = (draw(st.sampled_from(["k", "é", "v"])) * size).encode()[:size]
        raw = raw.ljust(size, b"x")
        if raw.decode("utf-8", "replace").endswith("\ufffd"):
            raw = raw[:-1] + b"x"
        return raw, raw.decode("utf-8", "replace"), False
    else:
        raw = draw(nul_free_text).encode()[: size - 1]
        raw = raw.decode("utf-8", "ignore").encode()
    # The NUL, then stale bytes of an older, longer value (NULs among them).
    stale = draw(st.binary(max_size=64))
    body = (raw + b"\0" + stale)[:size].ljust(size, b"\0")
    return body, raw.decode("utf-8", "replace"), kind == "invalid"


@st.composite
def pool_files(draw):
    names = st.sampled_from(["cifsmount", "cifsumount", "moby-agent.state", "com.docker.database.generation"])
    records, data = [], b""
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            name = draw(names)  # a small set of keys: repeats happen
            key_field = (name.encode() + b"\0" + draw(st.binary(max_size=20)))[:KEY].ljust(KEY, b"\0")
            key, key_bad = name, False
        else:
            key_field, key, key_bad = draw(field(KEY, allow_empty=True))
        value_field, value, value_bad = draw(field(VALUE, allow_empty=True))
        if not key and value_bad:
            # An ignored record's bytes: whether they are reported is no rule.
            value_field, value, value_bad = (b"v".ljust(VALUE, b"\0"), "v", False)
        data += key_field + value_field
        records.append((key, value, key_bad or value_bad))
    partial = draw(st.sampled_from([0, 0, 0, 1, 3, KEY, kvp.RECORD_SIZE - 1]))
    data += draw(st.binary(min_size=partial, max_size=partial))
    return data, records, partial


def expected_from_rules(records):
    items, repeated, bad = {}, False, False
    for key, value, invalid in records:
        bad = bad or invalid
        if not key:
            continue
        repeated = repeated or key in items
        items[key] = value
    return items, repeated, bad


@given(pool_files())
def test_whole_records_decode_by_the_rules(case):
    data, records, partial = case
    items, repeated, bad = expected_from_rules(records)
    event(f"{len(items)} item(s)")
    event("repeated key" if repeated else "no repeated key")
    if bad:
        event("invalid UTF-8")
    if partial:
        event("trailing partial record")
    pool = kvp.decode(data)
    assert pool.as_dict() == items
    assert [k for k, _ in pool.items] == list(items)  # each key once, where it first appeared
    text = "\n".join(pool.warnings)
    assert ("trailing partial record" in text) == bool(partial), pool.warnings
    assert ("repeated" in text) == repeated, pool.warnings
    assert ("not valid UTF-8" in text) == bad, pool.warnings


@pytest.mark.reach
def test_the_pool_grammar_reaches_whole_records_and_its_odd_cases():
    def items(case):
        return expected_from_rules(case[1])

    reached = shares(pool_files(), {
        "an item": lambda c: len(items(c)[0]) >= 1,
        "two items": lambda c: len(items(c)[0]) >= 2,
        "a repeated key": lambda c: items(c)[1],
        "invalid UTF-8": lambda c: items(c)[2],
        "a trailing partial record": lambda c: c[2],
    })
    assert reached["an item"] >= 0.9 and reached["two items"] >= 0.5, reached
    odd = ("a repeated key", "invalid UTF-8", "a trailing partial record")
    assert min(reached[k] for k in odd) >= 0.2, reached
