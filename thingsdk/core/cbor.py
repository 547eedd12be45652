"""Deterministic CBOR (RFC 8949 §4.2.1) with depth and length limits, for CPython and MicroPython.

Data model: int, bytes (bytearray encodes as bytes), str, list, dict, bool, None, float, `Tag` and
`UNDEFINED` (the simple value undefined, f7). Ints outside -2**64 ... 2**64-1 travel as bignum
tags 2/3 and decode back to int. `dumps` writes the core deterministic encoding; `loads` accepts
any well-formed definite-length encoding of the data model (it does not insist on the shortest
forms) and raises `CBORError` for everything else: indefinite lengths, simple values other than
false/true/null/undefined, invalid UTF-8, nesting deeper than `max_depth` (arrays, maps and tags
other than bignums each add a level), truncated input and trailing bytes. Limits keep the cost of
hostile input linear in its length: a map holds at most 256 entries, its keys are integers
(-2**64 ... 2**64-1) or text of at most 255 bytes, each key once (other keys, such as big integers
that all hash alike, are refused before they are hashed); a bignum has at most 128 bytes of
content. Error messages never quote decoded values. Decoded maps keep the encoded key order on
CPython; MicroPython dicts keep none.

Floats: on boards whose MicroPython has single-precision floats, float64 and float32 items decode
rounded to the board's float (float64 values may become inf or 0), and `dumps` never needs more
than float32. Protocol messages carry no floats for this reason. float16 is converted by hand, as
some ports' struct lacks the "e" format.
"""

import struct

_UINT64_LIMIT = 1 << 64


class CBORError(ValueError):
    """Malformed or unsupported CBOR, or a value outside the data model."""


class Tag:
    """A tagged data item: tag number (0 ... 2**64-1, not 2 or 3: bignums are ints) and value."""

    def __init__(self, tag, value):
        if not isinstance(tag, int) or not 0 <= tag < _UINT64_LIMIT or tag == 2 or tag == 3:
            raise CBORError("invalid tag number (bignums are ints)")
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __hash__(self):
        return hash((self.tag, self.value))

    def __repr__(self):
        return "Tag(%r, %r)" % (self.tag, self.value)


class _Undefined:
    """The type of UNDEFINED."""

    def __repr__(self):
        return "UNDEFINED"


UNDEFINED = _Undefined()
_SIMPLE = (False, True, None, UNDEFINED)  # simple values 20..23


def encode_head(major, arg):
    """The head of a data item: major type and argument, in the shortest form."""
    initial = major << 5
    if arg < 24:
        return bytes((initial | arg,))
    if arg < 0x100:
        return bytes((initial | 24, arg))
    if arg < 0x10000:
        return struct.pack(">BH", initial | 25, arg)
    if arg < 0x100000000:
        return struct.pack(">BI", initial | 26, arg)
    return struct.pack(">BQ", initial | 27, arg)


def decode_head(data, pos):
    """Read the head at data[pos]: (major type, additional info, argument, position after it).

    Raises CBORError for truncation, reserved or indefinite forms, simple values outside the data
    model, and lengths or item counts that claim more than the remaining bytes could hold.
    For floats the argument is the raw bits.
    """
    if pos >= len(data):
        raise CBORError("truncated input")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        arg = info
    elif info < 28:
        end = pos + (1 << (info - 24))
        if end > len(data):
            raise CBORError("truncated input")
        arg = int.from_bytes(data[pos:end], "big")
        pos = end
    elif info == 31 and major != 0 and major != 1 and major != 6:
        raise CBORError("indefinite-length items are not supported")
    else:
        raise CBORError("malformed head: additional information %d" % info)
    if major == 7 and not (20 <= info <= 23 or 25 <= info <= 27):
        raise CBORError("unsupported simple value %d" % arg)
    if 2 <= major <= 5 and (2 * arg if major == 5 else arg) > len(data) - pos:
        raise CBORError("length %d exceeds the remaining input" % arg)
    return major, info, arg, pos


def decode_bignum(data, tag, pos):
    """The int of bignum tag 2 or 3 whose content starts at data[pos]: (int, position after it)."""
    major, _, length, pos = decode_head(data, pos)
    if major != 2 or length > 128:
        raise CBORError("bignum content must be a byte string of at most 128 bytes")
    n = int.from_bytes(data[pos : pos + length], "big")
    return (n if tag == 2 else -1 - n), pos + length


def dumps(obj):
    """obj in the core deterministic encoding."""
    out = bytearray()
    dump(obj, out.extend)
    return bytes(out)


def dump(obj, write):
    """Encode obj, handing the encoding to write() piece by piece (heads, strings, small items)
    as it goes: a board can write a record to a file without ever holding its encoding whole."""
    try:
        _encode(obj, write)
    except RuntimeError:  # RecursionError on CPython; MicroPython raises RuntimeError itself
        raise CBORError("nesting too deep to encode")


def loads(data, max_depth=16):
    """The one data item that data holds."""
    data = bytes(data)
    try:
        value, end = _decode(data, 0, max_depth)
    except RuntimeError:
        raise CBORError("nesting too deep for this interpreter")
    if end != len(data):
        raise CBORError("trailing bytes after the data item")
    return value


def _encode(obj, write):
    if obj is None:
        write(b"\xf6")
    elif obj is False or obj is True:
        write(b"\xf5" if obj else b"\xf4")
    elif isinstance(obj, int):
        _encode_int(obj, write)
    elif isinstance(obj, str):
        try:
            raw = obj.encode()
        except UnicodeError:
            raise CBORError("text is not valid Unicode")
        write(encode_head(3, len(raw)))
        write(raw)
    elif isinstance(obj, (bytes, bytearray)):
        write(encode_head(2, len(obj)))
        write(obj)
    elif isinstance(obj, list):
        write(encode_head(4, len(obj)))
        for item in obj:
            _encode(item, write)
    elif isinstance(obj, dict):
        # Entries sort by their encoded keys: an encoded key is never a prefix of another, so
        # this is the bytewise order of whole entries.
        write(encode_head(5, len(obj)))
        for key, value in sorted([(dumps(k), v) for k, v in obj.items()], key=_first):
            write(key)
            _encode(value, write)
    elif isinstance(obj, float):
        from thingsdk.core.cbor_float import encode_float

        write(encode_float(obj))
    elif isinstance(obj, Tag):
        write(encode_head(6, obj.tag))
        _encode(obj.value, write)
    elif obj is UNDEFINED:
        write(b"\xf7")
    else:
        raise CBORError("cannot encode %s" % type(obj).__name__)


def _first(pair):
    return pair[0]


def _encode_int(n, write):
    major, tag = (0, 2) if n >= 0 else (1, 3)
    if n < 0:
        n = -1 - n
    if n < _UINT64_LIMIT:
        write(encode_head(major, n))
        return
    raw = n.to_bytes((len("%x" % n) + 1) // 2, "big")  # MicroPython ints lack bit_length()
    write(encode_head(6, tag))
    write(encode_head(2, len(raw)))
    write(raw)


def _decode(data, pos, depth):
    if pos < len(data):
        initial = data[pos]
        if initial < 0x18:  # a small unsigned int, the commonest item: its head is its value
            return initial, pos + 1
        # A short byte or text string (its head holds its length) that the input holds whole;
        # one cut short is refused by decode_head below.
        end = pos + 1 + (initial & 0x1F)
        if 0x40 <= initial < 0x78 and (initial & 0x1F) < 24 and end <= len(data):
            raw = data[pos + 1 : end]
            return (raw if initial < 0x60 else _text(raw)), end
    major, info, arg, pos = decode_head(data, pos)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major == 2:
        return data[pos : pos + arg], pos + arg
    if major == 3:
        return _text(data[pos : pos + arg]), pos + arg
    if major == 7:
        return _decode_simple(data, info, arg, pos), pos
    if major == 6 and (arg == 2 or arg == 3):
        return decode_bignum(data, arg, pos)
    if depth <= 0:
        raise CBORError("nesting deeper than max_depth")
    if major == 4:
        items = []
        for _ in range(arg):
            item, pos = _decode(data, pos, depth - 1)
            items.append(item)
        return items, pos
    if major == 5:
        if arg > 256:
            raise CBORError("map of more than 256 entries")
        return _decode_map(data, arg, pos, depth - 1)
    value, pos = _decode(data, pos, depth - 1)
    return Tag(arg, value), pos


def _decode_simple(data, info, arg, pos):
    if info == 25:
        from thingsdk.core.cbor_float import half_to_float

        return half_to_float(arg)
    if info == 26:
        return struct.unpack_from(">f", data, pos - 4)[0]
    if info == 27:
        return struct.unpack_from(">d", data, pos - 8)[0]
    return _SIMPLE[info - 20]


def _decode_map(data, count, pos, depth):
    result = {}
    for _ in range(count):
        # Heads of ints (major 0 and 1, up to 64 bits) and of text shorter than 256 bytes.
        if pos < len(data) and not (data[pos] < 0x40 or 0x60 <= data[pos] <= 0x78):
            raise CBORError("map keys must be integers or short text")
        key, pos = _decode(data, pos, depth)
        if key in result:
            raise CBORError("duplicate map key")
        result[key], pos = _decode(data, pos, depth)
    return result, pos


def _text(raw):
    # Checked by hand: MicroPython's str() lets overlong forms and surrogates through.
    if raw and max(raw) > 0x7F and not _valid_utf8(raw):
        raise CBORError("invalid UTF-8 in text string")
    return str(raw, "utf-8")


def _valid_utf8(raw):
    """Whether raw is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates, or > U+10FFFF)."""
    i, n = 0, len(raw)
    while i < n:
        lead = raw[i]
        if lead < 0x80:
            i += 1
            continue
        if 0xC2 <= lead <= 0xDF:
            size, low, high = 2, 0x80, 0xBF
        elif 0xE0 <= lead <= 0xEF:
            size = 3
            low, high = (0xA0 if lead == 0xE0 else 0x80), (0x9F if lead == 0xED else 0xBF)
        elif 0xF0 <= lead <= 0xF4:
            size = 4
            low, high = (0x90 if lead == 0xF0 else 0x80), (0x8F if lead == 0xF4 else 0xBF)
        else:
            return False
        if i + size > n or not low <= raw[i + 1] <= high:
            return False
        for byte in raw[i + 2 : i + size]:
            if not 0x80 <= byte <= 0xBF:
                return False
        i += size
    return True
