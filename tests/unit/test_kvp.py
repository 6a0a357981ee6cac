import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import kvp
from tests.conftest import REPO

POOLS = REPO / "tests" / "data" / "pools"  # copied from ../shared/testdata/pools


def test_reads_a_pool_written_by_the_real_daemon():
    pool = kvp.decode((POOLS / "real-daemon-1.kvp_pool_0").read_bytes())
    expected = json.loads((POOLS / "real-daemon-1.expected.json").read_text())
    assert [{"key": k, "value": v} for k, v in pool.items] == expected
    assert pool.warnings == ()


def test_fields_are_cut_at_the_first_nul():
    record = b"cifsmount".ljust(512, b"\0") + b"short\0old long tail".ljust(2048, b"\0")
    assert kvp.decode(record).items == (("cifsmount", "short"),)


def test_field_without_nul_takes_the_whole_field():
    record = b"k" * 512 + b"v" * 2048
    assert kvp.decode(record).items == (("k" * 512, "v" * 2048),)


def test_trailing_partial_record_is_ignored_with_a_warning():
    data = kvp.encode([("a", "1")]) + b"b\0\0"
    pool = kvp.decode(data)
    assert pool.items == (("a", "1"),)
    assert "trailing partial record of 3 bytes" in pool.warnings[0]


def test_undecodable_bytes_are_replaced_and_reported():
    record = b"k\xff".ljust(512, b"\0") + b"v".ljust(2048, b"\0")
    pool = kvp.decode(record)
    assert pool.items == (("k\ufffd", "v"),)
    assert "record 0: key is not valid UTF-8" in pool.warnings[0]


def test_duplicated_key_last_record_wins():
    pool = kvp.decode(kvp.encode([("a", "1"), ("b", "2")]) + kvp.encode([("a", "3")]))
    assert pool.as_dict() == {"a": "3", "b": "2"}
    assert any("repeated" in w for w in pool.warnings)


def test_empty_key_records_are_skipped():
    pool = kvp.decode(bytes(kvp.RECORD_SIZE) + kvp.encode([("a", "1")]))
    assert pool.items == (("a", "1"),)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("", "v", "key is empty"),
        ("k" * 512, "v", "512 UTF-8 bytes, at most 511"),
        ("é" * 256, "v", "512 UTF-8 bytes, at most 511"),
        ("k", "v" * 2048, "value of 2048 UTF-8 bytes, at most 2047"),
        ("k", "a\0b", "NUL"),
        ("k", "\udcff", "not encodable"),
    ],
)
def test_unstorable_items_are_refused(key, value, message):
    with pytest.raises(kvp.KvpError, match=message):
        kvp.encode([(key, value)])


def test_largest_items_fit():
    items = [("k" * 511, "v" * 2047)]
    assert kvp.decode(kvp.encode(items)).items == tuple(items)


def test_write_refuses_host_pools_and_writes_nothing(tmp_path):
    with pytest.raises(kvp.KvpError, match="guest writes pool 1 only"):
        kvp.write_guest_items(str(tmp_path), 0, {"a": "1"})
    assert list(tmp_path.iterdir()) == []


def test_update_checks_every_item_before_writing(tmp_path):
    path = str(tmp_path / ".kvp_pool_1")
    kvp.update_pool(path, {"a": "1"})
    before = open(path, "rb").read()
    with pytest.raises(kvp.KvpError):
        kvp.update_pool(path, {"b": "2", "c": "x" * 3000})
    assert open(path, "rb").read() == before


def test_update_sets_deletes_and_reports_change(tmp_path):
    path = str(tmp_path / ".kvp_pool_1")
    assert kvp.update_pool(path, {"a": "1", "b": "2"})
    assert not kvp.update_pool(path, {"a": "1"})
    assert kvp.update_pool(path, {"a": None, "c": "3"})
    assert kvp.read_pool(path).items == (("b", "2"), ("c", "3"))
    assert len(open(path, "rb").read()) == 2 * kvp.RECORD_SIZE


def test_missing_pool_reads_empty(tmp_path):
    assert kvp.read_pool(str(tmp_path / ".kvp_pool_0")).items == ()


def test_pool_numbers_are_checked():
    with pytest.raises(kvp.KvpError, match="pool 5 does not exist"):
        kvp.pool_path("/x", 5)


keys = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=120)
values = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=500)


@given(st.dictionaries(keys, values, max_size=8))
def test_round_trip(items):
    assert kvp.decode(kvp.encode(items.items())).items == tuple(items.items())


# Whole pool files from the record grammar, against the rules: test_pool_grammar.py.


@given(st.lists(st.tuples(st.binary(max_size=600), st.binary(max_size=2100)), max_size=4), st.binary(max_size=100))
def test_garbage_after_nul_never_reaches_items(fields, tail):
    data = b""
    expected = {}
    for k, v in fields:
        k = k.replace(b"\0", b"")[:511]
        v = v.replace(b"\0", b"")[:2047]
        if not k:
            continue
        key_field = (k + b"\0" + tail)[:512].ljust(512, b"\0")
        value_field = (v + b"\0" + tail)[:2048].ljust(2048, b"\0")
        data += key_field + value_field
        expected[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    assert kvp.decode(data).as_dict() == expected
