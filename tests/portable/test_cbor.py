from thingsdk.core.cbor import CBORError, Tag, UNDEFINED, dumps, loads
from check import load_json, raises, unhex

DOUBLE_FLOATS = 1.0 + 2.0**-52 != 1.0  # False on boards with single-precision floats
INF = float("inf")

# Appendix A examples that carry a diagnostic instead of a decoded value.
DIAGNOSTIC = {
    "Infinity": INF,
    "-Infinity": -INF,
    "undefined": UNDEFINED,
    '0("2013-03-21T20:04:00Z")': Tag(0, "2013-03-21T20:04:00Z"),
    "1(1363896240)": Tag(1, 1363896240),
    "1(1363896240.5)": Tag(1, 1363896240.5),
    "23(h'01020304')": Tag(23, b"\x01\x02\x03\x04"),
    "24(h'6449455446')": Tag(24, b"dIETF"),
    '32("http://www.example.com")': Tag(32, "http://www.example.com"),
    "h''": b"",
    "h'01020304'": b"\x01\x02\x03\x04",
    "{1: 2, 3: 4}": {1: 2, 3: 4},
}
UNSUPPORTED = ("indefinite-length items are not supported", "unsupported simple value")


def decode_or_refuse(data):
    """The decoded value, or None when loads refused the example as unsupported."""
    try:
        return (loads(data),)
    except CBORError as exc:
        assert str(exc).startswith(UNSUPPORTED), str(exc)
        return None


def matches(value, example):
    if example.get("diagnostic") == "NaN":
        return value != value
    expected = example["decoded"] if "decoded" in example else DIAGNOSTIC[example["diagnostic"]]
    return same(value, expected)


def same(value, expected):
    if type(value) is not type(expected):
        return False
    if isinstance(value, Tag):
        return value.tag == expected.tag and same(value.value, expected.value)
    if isinstance(value, float) and not DOUBLE_FLOATS and value != expected:
        # MicroPython's single-precision parser can read a decimal one unit in the last place
        # off (6.103515625e-05, exactly 2**-14, reads as 2**-14 less one ulp): the expected value
        # is what is inexact, so allow that one unit.
        return abs(value - expected) <= abs(expected) * 2.0**-23
    return value == expected


def test_appendix_a_examples_decode_or_are_refused_as_unsupported():
    refused = 0
    for example in load_json("cbor/appendix_a.json"):
        data = unhex(example["hex"])
        result = decode_or_refuse(data)
        if result is None:
            refused += 1
            continue
        assert matches(result[0], example), example["hex"]
        value = result[0].value if isinstance(result[0], Tag) else result[0]
        if example["roundtrip"] and (DOUBLE_FLOATS or not isinstance(value, float)):
            assert dumps(result[0]) == data, example["hex"]
    assert refused == 14  # 11 indefinite-length items, simple(16), simple(24), simple(255)


def test_appendix_a_deterministic_examples_are_all_supported():
    for example in load_json("cbor/appendix_a.json"):
        if example["roundtrip"] and not example.get("diagnostic", "").startswith("simple("):
            assert decode_or_refuse(unhex(example["hex"])) is not None, example["hex"]


def test_map_keys_sort_bytewise_not_length_first():
    encoded = dumps({"a": 4, -1: 3, 100: 2, 24: 1})
    assert encoded == unhex("a4" "181801" "186402" "2003" "616104")
    assert dumps({b"\x01": 0, "": 0, 0: 0}) == unhex("a3" "0000" "410100" "6000")


def test_integers_use_the_shortest_head():
    cases = [
        (0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"),
        (65535, "19ffff"), (65536, "1a00010000"), (2**32 - 1, "1affffffff"),
        (2**32, "1b0000000100000000"), (2**64 - 1, "1bffffffffffffffff"),
        (-24, "37"), (-25, "3818"), (-(2**64), "3bffffffffffffffff"),
        (2**64, "c249010000000000000000"), (-(2**64) - 1, "c349010000000000000000"),
        (2**128, "c25101" + "00" * 16), (-(2**72) - 1, "c34a01" + "00" * 9),
    ]
    for value, text in cases:
        assert dumps(value) == unhex(text), value
        assert loads(unhex(text)) == value


def test_bools_are_not_ints():
    assert dumps([True, False, 1, 0]) == unhex("84f5f40100")
    assert loads(unhex("f5")) is True and loads(unhex("f4")) is False


def test_decoding_accepts_longer_than_needed_forms():
    assert loads(unhex("1801")) == 1
    assert loads(unhex("5900026162")) == b"ab"
    assert loads(unhex("c2420001")) == 1  # bignum with a leading zero
    assert loads(unhex("c240")) == 0
    assert loads(unhex("fa3fc00000")) == 1.5


def test_floats_take_the_shortest_exact_width():
    cases = [
        (0.0, "f90000"), (-0.0, "f98000"), (1.5, "f93e00"), (32768.0, "f97800"),
        (65504.0, "f97bff"), (65536.0, "fa47800000"), (2.0**-24, "f90001"),
        (3 * 2.0**-24, "f90003"), (2.0**-14, "f90400"), (2.0**-25, "fa33000000"),
        (100000.0, "fa47c35000"), (2.0**-149, "fa00000001"), (-INF, "f9fc00"),
        (INF, "f97c00"), (float("nan"), "f97e00"),
    ]
    if DOUBLE_FLOATS:
        cases += [(1.1, "fb3ff199999999999a"), (1e300, "fb7e37e43c8800759c")]
    for value, text in cases:
        assert dumps(value) == unhex(text), value
        assert dumps(loads(unhex(text))) == unhex(text)


def test_float16_decodes_by_hand():
    assert loads(unhex("f97bff")) == 65504.0
    assert loads(unhex("f90001")) == 2.0**-24
    assert loads(unhex("f903ff")) == 1023 * 2.0**-24
    assert loads(unhex("f9c400")) == -4.0
    nan = loads(unhex("f97e01"))
    assert nan != nan


def test_nesting_deeper_than_max_depth_is_refused():
    assert loads(b"\x81" * 16 + b"\x00") is not None
    for data in (b"\x81" * 17 + b"\x00", b"\xc1" * 17 + b"\x00", b"\xa1\x00" * 17 + b"\x00"):
        assert "max_depth" in str(raises(CBORError, loads, data))
    assert loads(b"\x81" * 2 + b"\x00", max_depth=2) == [[0]]
    raises(CBORError, loads, b"\x81" * 3 + b"\x00", max_depth=2)
    raises(CBORError, loads, b"\x81" * 10000 + b"\x00")
    assert loads(b"\x81" * 16 + unhex("c24101")) is not None  # a bignum adds no level


def test_claimed_lengths_are_checked_before_allocating():
    for text in (
        "5b8000000000000000" "00",  # a byte string of 2**63 bytes
        "7bffffffffffffffff" "00",
        "9b8000000000000000" "00",  # an array of 2**63 items
        "bbffffffffffffffff" "00",
        "8501020304",  # 5 items, 4 bytes left
        "a2010203",  # 2 entries need 4 bytes, 3 left
        "4301",
    ):
        assert "exceeds" in str(raises(CBORError, loads, unhex(text))), text


def test_truncated_input_and_trailing_bytes_are_refused():
    whole = dumps({"a": [1, 2**70, -1.1, b"xyz", Tag(99, "t")], 1000: None})
    for end in range(len(whole)):
        raises(CBORError, loads, whole[:end])
    assert "trailing" in str(raises(CBORError, loads, whole + b"\x00"))
    raises(CBORError, loads, b"")


def test_map_keys_are_ints_or_short_text_each_once():
    for text in ("a201000101", "a20100180101", "a2616100616101"):
        assert str(raises(CBORError, loads, unhex(text))) == "duplicate map key", text
    big = "c249010000000000000000"  # 2**64, a bignum
    for text in ("a18000", "a1a000", "a1c1810000", "a2f50001f5", "a1410000", "a1f93c0000",
                 "a1" + big + "00", "a1790100" + "61" * 256 + "00"):
        message = str(raises(CBORError, loads, unhex(text)))
        assert message == "map keys must be integers or short text", text
    assert loads(unhex("a2781f" + "61" * 31 + "003bffffffffffffffff01")) == {
        "a" * 31: 0, -(2**64): 1}


def test_maps_and_bignums_are_bounded():
    entries = b"".join(dumps(i) + b"\xf6" for i in range(257))
    assert len(loads(b"\xb9\x01\x00" + entries[:-4])) == 256
    assert "256" in str(raises(CBORError, loads, b"\xb9\x01\x01" + entries))
    assert loads(dumps(2**1024 - 1)) == 2**1024 - 1
    assert "128 bytes" in str(raises(CBORError, loads, dumps(2**1024)))


def test_indefinite_lengths_and_breaks_are_refused():
    for text in ("5f4101ff", "7f6161ff", "9fff", "bfff", "ff", "8201ff"):
        message = str(raises(CBORError, loads, unhex(text)))
        assert message == "indefinite-length items are not supported", text


def test_only_false_true_null_undefined_are_simple_values():
    assert loads(unhex("83f4f5f6")) == [False, True, None]
    assert loads(unhex("f7")) is UNDEFINED
    assert dumps([UNDEFINED]) == unhex("81f7")
    for text in ("e0", "f3", "f818", "f820", "f8ff"):
        assert "simple value" in str(raises(CBORError, loads, unhex(text))), text
    for text in ("fc", "fd", "fe", "1c", "3f", "df"):
        assert "malformed" in str(raises(CBORError, loads, unhex(text))), text


def test_text_must_be_valid_utf8():
    assert loads(unhex("64f0908591")) == "\U00010151"
    assert loads(unhex("63efbfbf")) == "\uffff"
    for text in ("61ff", "62c080", "62c1bf", "63eda080", "63e08080", "64f4908080", "64f5808080",
                 "62c328", "62e282", "6180"):
        assert "UTF-8" in str(raises(CBORError, loads, unhex(text))), text


def test_tags():
    value = Tag(18, [b"p", {4: b"kid"}, Tag(2**64 - 1, None)])
    assert loads(dumps(value)) == value
    assert dumps(Tag(2**64 - 1, 0)) == unhex("dbffffffffffffffff00")
    assert Tag(1, 2) == Tag(1, 2) and Tag(1, 2) != Tag(1, 3) and Tag(1, 2) != Tag(4, 2)
    assert {Tag(1, "x"): 0}[Tag(1, "x")] == 0
    for number in (2, 3, -1, 2**64, "1"):
        raises(CBORError, Tag, number, b"")
    assert "byte string" in str(raises(CBORError, loads, unhex("c201")))


def test_values_outside_the_data_model_are_refused():
    for value in ((1, 2), {1, 2}, object(), [1, (2,)], {"k": {3}}):
        raises(CBORError, dumps, value)
    nested = []
    for _ in range(20000):
        nested = [nested]
    raises(CBORError, dumps, nested)


def test_roundtrip_of_a_message_shaped_value():
    value = {
        "sku": "ink-cartridge-xl",
        1: [1, -1, 2**63, -(2**63), 2**64 + 5, ""],
        "\x00": {"nested": [True, False, None, UNDEFINED, b"\xff" * 300]},
        -7: "\u00fc\u6c34\U00010151",
    }
    encoded = dumps(value)
    assert loads(encoded) == value
    assert loads(bytearray(encoded)) == value and loads(memoryview(encoded)) == value
    assert dumps(loads(encoded)) == encoded
    assert dumps(bytearray(b"ab")) == dumps(b"ab") == unhex("426162")
