"""The two codecs (portable core, cbor2 edge) against Appendix A, each other, and bad input.

The edge decodes with the core, so decoding is tested once per codec for the contract and
against cbor-diag as an independent parser of what the core accepts; encoding differs (cbor2 at
the edge) and is compared byte for byte."""

import datetime
import decimal
import math
import time

import cbor2
import cbor_diag
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from check import load_json
from thingsdk import codec
from thingsdk.core import cbor as core
from thingsdk.core.cbor import UNDEFINED, CBORError, Tag

CODECS = [pytest.param(core, id="core"), pytest.param(codec, id="codec")]
APPENDIX_A = load_json("cbor/appendix_a.json")
INDEFINITE_OR_SIMPLE = ("indefinite-length items are not supported", "unsupported simple value")
DIAGNOSTIC = {  # expectations for the examples that have a diagnostic instead of a decoded value
    "Infinity": math.inf,
    "-Infinity": -math.inf,
    "NaN": math.nan,
    "undefined": UNDEFINED,
    '0("2013-03-21T20:04:00Z")': Tag(0, "2013-03-21T20:04:00Z"),
    "1(1363896240)": Tag(1, 1363896240),
    "1(1363896240.5)": Tag(1, 1363896240.5),
    "23(h'01020304')": Tag(23, bytes.fromhex("01020304")),
    "24(h'6449455446')": Tag(24, bytes.fromhex("6449455446")),
    '32("http://www.example.com")': Tag(32, "http://www.example.com"),
    "h''": b"",
    "h'01020304'": bytes.fromhex("01020304"),
    "{1: 2, 3: 4}": {1: 2, 3: 4},
}


def same(a, b):
    """Equality telling 1, 1.0, True and 0.0, -0.0 apart, with NaN equal to NaN, map order aside."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        a, b = (sorted(d.items(), key=lambda item: core.dumps(item[0])) for d in (a, b))
        return len(a) == len(b) and all(same(x[0], y[0]) and same(x[1], y[1]) for x, y in zip(a, b))
    if isinstance(a, Tag):
        return a.tag == b.tag and same(a.value, b.value)
    return a == b


def outcome(decoder, data, **kwargs):
    """("value", v) or ("error",) — anything but a value or CBORError fails the test."""
    try:
        return ("value", decoder.loads(data, **kwargs))
    except CBORError:
        return ("error",)


def agree(data, **kwargs):
    """The core gives a value or raises CBORError; a value is well-formed CBOR to cbor-diag (an
    independent parser without tag semantics) too and re-encodes to the input's value."""
    a = outcome(core, data, **kwargs)
    if a[0] == "value":
        cbor_diag.cbor2diag(data)
        assert same(core.loads(core.dumps(a[1]), max_depth=64), a[1]), data.hex()
    return a


# --- Appendix A --------------------------------------------------------------------------------


@pytest.mark.parametrize("example", APPENDIX_A, ids=[e["hex"] for e in APPENDIX_A])
@pytest.mark.parametrize("impl", CODECS)
def test_appendix_a(impl, example):
    data = bytes.fromhex(example["hex"])
    expected = example["decoded"] if "decoded" in example else DIAGNOSTIC.get(example["diagnostic"])
    deterministic = example["roundtrip"] and not example.get("diagnostic", "").startswith("simple(")
    try:
        value = impl.loads(data)
    except CBORError as exc:
        assert not deterministic, "a deterministic example must decode"
        assert str(exc).startswith(INDEFINITE_OR_SIMPLE)
        return
    assert same(value, expected)
    if deterministic:
        assert impl.dumps(value) == data


def test_appendix_a_refusals_are_exactly_the_unsupported_examples():
    refused = [e["hex"] for e in APPENDIX_A if outcome(core, bytes.fromhex(e["hex"])) == ("error",)]
    simple = [e["hex"] for e in APPENDIX_A if e.get("diagnostic", "").startswith("simple(")]
    indefinite = [h for h in refused if h not in simple]
    assert set(simple) <= set(refused) and len(indefinite) == 11
    assert all(int(h[:2], 16) & 0x1F == 31 or "9f" in h or "bf" in h for h in indefinite)


# --- ordering and the cbor2 behaviours the edge works around -----------------------------------


@pytest.mark.parametrize("impl", CODECS)
def test_map_keys_sort_bytewise(impl):
    value = {"a": 4, -1: 3, 100: 2, 24: 1}
    encoded = impl.dumps(value)
    assert encoded == bytes.fromhex("a4" "181801" "186402" "2003" "616104")
    assert list(impl.loads(encoded)) == [24, 100, -1, "a"]
    # cbor2's canonical mode sorts length-first (RFC 7049), which puts -1 first:
    length_first = bytes.fromhex("a4" "2003" "181801" "186402" "616104")
    assert cbor2.dumps(value, canonical=True) == length_first


@pytest.mark.parametrize("impl", CODECS)
def test_float16_range_that_cbor2_5_writes_as_float32(impl):
    cases = {32768.0: "f97800", 65504.0: "f97bff", -40000.0: "f9f8e2", 32768.5: "fa47000080"}
    for value, text in cases.items():
        assert impl.dumps(value).hex() == text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("c074323031332d30332d32315432303a30343a30305a", Tag(0, "2013-03-21T20:04:00Z")),
        ("d81c80", Tag(28, [])),  # cbor2: shareable
        ("d81d00", Tag(29, 0)),  # cbor2: shared reference
        ("d9010283010203", Tag(258, [1, 2, 3])),  # cbor2: set
        ("d9d9f701", Tag(55799, 1)),  # cbor2: self-describe, dropped
        ("d9010082d81900d81900", Tag(256, [Tag(25, 0), Tag(25, 0)])),  # cbor2: string references
        ("d825" "82" "c249010000000000000000" "c349" + "ff" * 9, Tag(37, [2**64, -(2**72)])),
        ("dbffffffffffffffff" "c1" "f7", Tag(2**64 - 1, Tag(1, UNDEFINED))),
    ],
)
@pytest.mark.parametrize("impl", CODECS)
def test_tags_other_than_bignums_stay_tags(impl, text, expected):
    data = bytes.fromhex(text)
    assert same(impl.loads(data), expected)
    assert impl.dumps(expected) == data


@pytest.mark.parametrize("impl", CODECS)
def test_values_cbor2_would_encode_are_outside_the_data_model(impl):
    outside = [(1, 2), {1}, datetime.date(2024, 1, 1), decimal.Decimal(1), cbor2.CBORTag(1, 2)]
    for value in outside:
        with pytest.raises(CBORError):
            impl.dumps(value)


@pytest.mark.parametrize("impl", CODECS)
def test_the_errors_say_which_rule_was_broken(impl):
    cases = {
        "a201000101": "duplicate map key",
        "a2616100616101": "duplicate map key",
        "a2c1610000c1610001": "map keys must be integers or short text",
        "a2f50001f5": "map keys must be integers or short text",
        "a1c1810000": "map keys must be integers or short text",
        "a1c249010000000000000000f6": "map keys must be integers or short text",
        "a1410000": "map keys must be integers or short text",
        "a1f93c0000": "map keys must be integers or short text",
        "9f01ff": "indefinite-length items are not supported",
        "f0": "unsupported simple value",
        "8181818100": "nesting deeper than max_depth",
        "0000": "trailing bytes",
        "5b800000000000000000": "exceeds the remaining input",
        "c20a": "bignum content must be a byte string",
    }
    for text, message in cases.items():
        with pytest.raises(CBORError, match=message):
            impl.loads(bytes.fromhex(text), max_depth=3)
    with pytest.raises(CBORError):
        impl.loads(bytes.fromhex("62c080"))


# --- the data model: both codecs agree byte for byte and round-trip ---------------------------

EDGE_INTS = [0, 23, 24, 255, 256, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 2**64]
TAG_NUMBERS = st.sampled_from([0, 1, 24, 256, 2**32, 2**64 - 1]) | st.integers(0, 2**64 - 1)
TAGS = TAG_NUMBERS.filter(lambda n: n not in (2, 3))
KEYS = st.integers(-(2**64), 2**64 - 1) | st.text(max_size=8)  # what the decoders accept
ANY_KEYS = st.one_of(  # what the encoders write
    st.integers(-(2**70), 2**70),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.builds(Tag, TAGS, st.integers() | st.text(max_size=4)),
)
SCALARS = st.one_of(
    st.sampled_from(EDGE_INTS + [-n for n in EDGE_INTS] + [-n - 1 for n in EDGE_INTS]),
    st.integers(-(2**200), 2**200),
    st.floats(width=16) | st.floats(width=32) | st.floats(),
    st.text(),
    st.binary(),
    st.sampled_from([True, False, None, UNDEFINED]),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(KEYS, children, max_size=5),
        st.builds(Tag, TAGS, children),
    ),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_both_codecs_encode_alike_and_round_trip(value):
    encoded = core.dumps(value)
    assert codec.dumps(value) == encoded
    assert same(core.loads(encoded, max_depth=64), value)
    assert same(codec.loads(encoded, max_depth=64), value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(ANY_KEYS, st.none() | st.integers(), min_size=1, max_size=12))
def test_both_encoders_order_any_keys_bytewise(value):
    """Keys the decoders refuse (bytes, tags, big integers) still encode in deterministic order."""
    entries = sorted(core.dumps(k) + core.dumps(v) for k, v in value.items())
    expected = core.encode_head(5, len(value)) + b"".join(entries)
    assert codec.dumps(value) == expected == core.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, st.none(), min_size=2, max_size=12))
def test_encoded_map_keys_are_in_bytewise_order(value):
    for impl in (core, codec):
        keys = [core.dumps(k) for k in impl.loads(impl.dumps(value))]
        assert keys == sorted(keys)


# --- bad input: a value or CBORError, the same from both, quickly -------------------------------


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=48))
def test_random_bytes(data):
    agree(data)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_every_truncation_is_refused(value):
    encoded = core.dumps(value)
    for end in range(len(encoded)):
        assert agree(encoded[:end], max_depth=64) == ("error",)


@settings(max_examples=500, deadline=None)
@given(VALUES, st.data())
def test_bit_flips(value, data):
    encoded = bytearray(core.dumps(value))
    bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    agree(bytes(encoded), max_depth=64)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\x81", b"\xa1\x00", b"\xc1", b"\xc2", b"\x9f", b"\x5f", b"\0"])))
def test_nesting_fragments(fragments):
    agree(b"".join(fragments), max_depth=8)


@pytest.mark.parametrize("impl", CODECS)
@pytest.mark.parametrize("head", [b"\x81", b"\xc1", b"\xa1\x00", b"\x9f", b"\x5f"])
def test_deep_nesting_is_refused_quickly(impl, head):
    data = head * 10000 + b"\x00"
    for max_depth in (16, 10**6):
        start = time.perf_counter()
        with pytest.raises(CBORError):
            impl.loads(data, max_depth=max_depth)
        assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("impl", CODECS)
def test_deep_values_are_refused_when_encoding(impl):
    value = []
    for _ in range(10000):
        value = [value]
    with pytest.raises(CBORError):
        impl.dumps(value)


@pytest.mark.parametrize("impl", CODECS)
@pytest.mark.parametrize("initial", [0x5B, 0x7B, 0x9B, 0xBB])
@pytest.mark.parametrize("length", [2**63, 2**64 - 1, 2**32, 10])
def test_huge_claimed_lengths_fail_before_allocating(impl, initial, length):
    data = bytes([initial]) + length.to_bytes(8, "big") + b"\x00"
    start = time.perf_counter()
    with pytest.raises(CBORError, match="exceeds the remaining input"):
        impl.loads(data)
    assert time.perf_counter() - start < 0.1


# --- limits that keep hostile input cheap -------------------------------------------------------


def colliding_bignum_keys(count):
    """A map of `count` distinct big-integer keys that CPython hashes alike (n mod 2**61-1)."""
    step = (1 << 61) - 1
    parts = [core.encode_head(5, count)]
    for i in range(count):
        parts += [core.dumps(2**64 + i * step), b"\xf6"]
    return b"".join(parts)


@pytest.mark.parametrize("impl", CODECS)
def test_keys_other_than_ints_and_short_text_are_refused_before_hashing(impl):
    data = colliding_bignum_keys(256)
    assert len({hash(2**64 + i * ((1 << 61) - 1)) for i in range(256)}) == 1
    with pytest.raises(CBORError, match="map keys must be integers or short text"):
        impl.loads(data)
    assert impl.loads(b"\xa1\x78\xff" + b"k" * 255 + b"\x00") == {"k" * 255: 0}
    with pytest.raises(CBORError, match="map keys must be integers or short text"):
        impl.loads(b"\xa1\x79\x01\x00" + b"k" * 256 + b"\x00")
    assert impl.loads(bytes.fromhex("a23bffffffffffffffff001bffffffffffffffff01")) == {
        -(2**64): 0, 2**64 - 1: 1}


@pytest.mark.parametrize("impl", CODECS)
def test_map_size_is_bounded(impl):
    entries = b"".join(core.dumps(i) + b"\xf6" for i in range(257))
    assert len(impl.loads(b"\xb9\x01\x00" + entries[: -len(core.dumps(256) + b"\xf6")])) == 256
    with pytest.raises(CBORError, match="more than 256 entries"):
        impl.loads(b"\xb9\x01\x01" + entries)


@pytest.mark.parametrize("impl", CODECS)
def test_bignums_are_bounded_and_errors_never_quote_values(impl):
    assert impl.loads(core.dumps(2**1024 - 1)) == 2**1024 - 1
    huge = 10**4301  # more digits than CPython converts to text by default
    with pytest.raises(CBORError, match="at most 128 bytes"):
        impl.loads(core.dumps(huge))
    key = 2**63 + 5
    with pytest.raises(CBORError) as err:
        impl.loads(b"\xa2" + core.dumps(key) + b"\x00" + core.dumps(key) + b"\x00")
    assert str(err.value) == "duplicate map key"


@pytest.mark.parametrize("impl", CODECS)
def test_invalid_utf8_is_refused_without_growing_memory(impl):
    import tracemalloc

    data = bytes.fromhex("a10061ff")  # the text value is a lone continuation byte
    for _ in range(1000):
        with pytest.raises(CBORError, match="invalid UTF-8"):
            impl.loads(data)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(20000):
        try:
            impl.loads(data)
        except CBORError:
            pass
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 1024, grown
