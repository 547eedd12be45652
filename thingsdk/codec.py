"""CPython edge: the codec contract of `thingsdk.core.cbor`, encoding with cbor2 and decoding with
the core.

Measured on CPython, the core decodes a COSE_Sign1 in about half the time cbor2 took once the
structural scan and conversions the contract needs were added, and it enforces the decoder limits
(map size, key types, integer size, UTF-8) by itself, so `loads` is the core's. Encoding through
cbor2 is about a third faster than the core for a message payload, so `dumps` keeps it: cbor2
(6.x) differs from the contract in ways its public API cannot switch off (`canonical=True` sorts
map keys length-first, per RFC 7049, and some tags have encoding effects), so `dumps` hands cbor2,
in its plain mode that keeps a map's order, copies of the maps with their keys sorted bytewise,
and floats and tags already encoded by the core, which a `default` hook writes as they are.
"""

import cbor2

from thingsdk.core import cbor as core
from thingsdk.core.cbor import UNDEFINED, CBORError, Tag

__all__ = ["CBORError", "Tag", "UNDEFINED", "dumps", "loads"]


def dumps(obj):
    """obj in the core deterministic encoding."""
    try:
        return cbor2.dumps(_prepare(obj), default=_write_encoded)
    except CBORError:
        raise
    except Exception as exc:  # RecursionError, cbor2's errors, UnicodeEncodeError...
        raise CBORError("cannot encode: %s" % exc) from exc


def loads(data, max_depth=16):
    """The one data item that data holds (the core's decoder)."""
    return core.loads(data, max_depth)


class _Encoded:
    """Bytes that are already CBOR, for the default hook to write as they are."""

    def __init__(self, data):
        self.data = data


def _write_encoded(encoder, value):
    """cbor2's default hook; _prepare leaves it nothing but _Encoded."""
    encoder.write(value.data)


_UINT_LIMIT = 1 << 64


def _entries(obj):
    """A map's (prepared key, value) pairs, in bytewise order of the encoded keys.

    Keys cbor2 encodes plainly are ordered without encoding them: by major type, then by value
    for integers, and by length then content for strings, which is their encodings' order. The
    common maps, all keys small unsigned integers or all ASCII text, sort on the keys themselves.
    """
    kinds = set(map(type, obj))
    if kinds == _INT:
        if min(obj) >= 0 and max(obj) < _UINT_LIMIT:
            return sorted(obj.items())  # keys are distinct: values are never compared
    elif kinds == _STR and all(map(str.isascii, obj)):
        return sorted(obj.items(), key=_ascii_order)
    entries = []
    for k, v in obj.items():
        kind = type(k)
        if kind is int and -_UINT_LIMIT <= k < _UINT_LIMIT:
            order = (0, k, b"") if k >= 0 else (1, -1 - k, b"")
        elif kind is bytes:
            order = (2, len(k), k)
        elif kind is str:
            raw = k.encode()
            order = (3, len(raw), raw)
        else:
            encoded = dumps(k)
            order = (encoded[0] >> 5, 0, encoded)
            k = _Encoded(encoded)
        entries.append((order, k, v))
    entries.sort(key=lambda e: e[0])
    return [(k, v) for _, k, v in entries]


_INT = {int}
_STR = {str}
_PLAIN = frozenset((type(None), bool, int, str, bytes, bytearray))


def _ascii_order(item):
    return len(item[0]), item[0]


def _prepare(obj):
    """obj for cbor2's plain mode: maps copied with keys in bytewise order of their encodings,
    floats and Tags already encoded, UNDEFINED as cbor2.undefined; refuses what is outside the
    data model."""
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    if kind is list:  # plain items are kept without a call for each
        return [item if type(item) in _PLAIN else _prepare(item) for item in obj]
    if kind is dict or isinstance(obj, dict):
        return {key: v if type(v) in _PLAIN else _prepare(v) for key, v in _entries(obj)}
    if isinstance(obj, list):
        return [_prepare(item) for item in obj]
    if obj is None or isinstance(obj, (bool, int, str, bytes, bytearray)):
        return obj
    if isinstance(obj, Tag):  # not a CBORTag: cbor2 gives some tags (e.g. 256) encoding effects
        return _Encoded(core.encode_head(6, obj.tag) + dumps(obj.value))
    if isinstance(obj, float):  # plain mode writes every float as float64
        return _Encoded(core.dumps(obj))
    if obj is UNDEFINED:
        return cbor2.undefined
    raise CBORError("cannot encode %s" % type(obj).__name__)
