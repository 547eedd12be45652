"""CPython edge: the codec contract of `thingsdk.core.cbor`, with cbor2 encoding and decoding.

cbor2 (5.x and 6.x) differs from the contract in ways its common public API cannot switch off:
`canonical=True` sorts map keys length-first (RFC 7049), `loads` ignores trailing bytes and accepts
duplicate keys, indefinite lengths and any simple value, and turns many tags into Python objects
(datetimes, sets, shared references...). So `dumps` hands cbor2 (in its plain mode, which keeps a
map's order) copies of the maps with their keys sorted bytewise, and floats and tags already
encoded by the core, which a `default` hook writes as they are; `loads` first checks the structure
with the core's head parser, replaces every tag except bignums by a stand-in tag that cbor2 leaves
alone, and converts the result back. Data model, limits and errors are the core's.
"""

from collections.abc import Mapping

import cbor2

from thingsdk.core import cbor as core
from thingsdk.core.cbor import UNDEFINED, CBORError, Tag

__all__ = ["CBORError", "Tag", "UNDEFINED", "dumps", "loads"]

_STAND_IN = 1 << 63  # stand-in tag numbers start here: cbor2 gives none of them a meaning


def dumps(obj):
    """obj in the core deterministic encoding."""
    try:
        return cbor2.dumps(_prepare(obj), default=_write_encoded)
    except CBORError:
        raise
    except Exception as exc:  # RecursionError, cbor2's errors, UnicodeEncodeError...
        raise CBORError("cannot encode: %s" % exc) from exc


def loads(data, max_depth=16):
    """The one data item that data holds."""
    data = bytes(data)
    try:
        scan = _Scan(data, max_depth)
    except RecursionError:
        raise CBORError("nesting too deep for this interpreter") from None
    if scan.end != len(data):
        raise CBORError("trailing bytes after the data item")
    try:
        decoded = cbor2.loads(scan.stand_in_tags())
    except Exception as exc:  # what the scan leaves to cbor2: UTF-8, and cbor2's own limits
        raise CBORError("invalid input: %s" % exc) from exc
    value = scan.adopt(decoded)
    if scan.entries:
        raise CBORError("duplicate map key")
    return value


class _Encoded:
    """Bytes that are already CBOR, for the default hook to write as they are."""

    def __init__(self, data):
        self.data = data


def _write_encoded(encoder, value):
    """cbor2's default hook; _prepare leaves it nothing but _Encoded."""
    encoder.write(value.data)


_UINT_LIMIT = 1 << 64
_SCALARS = {bytes, str, int, bool, float, type(None)}


def _entries(obj):
    """A map's (order, prepared key, prepared value), in bytewise order of the encoded keys.

    Keys cbor2 encodes plainly are ordered without encoding them: by major type, then by value
    for integers, and by length then content for strings, which is their encodings' order.
    """
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
    return entries


def _prepare(obj):
    """obj for cbor2's plain mode: maps copied with keys in bytewise order of their encodings,
    floats and Tags already encoded, UNDEFINED as cbor2.undefined; refuses what is outside the
    data model."""
    if isinstance(obj, dict):
        return {key: _prepare(v) for _, key, v in _entries(obj)}
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


class _Scan:
    """One structural pass over the input, enforcing what cbor2 does not; then adopts its result."""

    def __init__(self, data, max_depth):
        self.data = data
        self.tags = []  # (head start, head end, tag number) of each tag except bignums
        self.entries = 0  # map entries claimed; adopt() subtracts those that survive decoding
        self.end = self._item(0, max_depth, False)

    def _item(self, pos, depth, in_key):
        start = pos
        major, _, arg, pos = core.decode_head(self.data, pos)
        if major == 2 or major == 3:
            return pos + arg
        if major == 6 and (arg == 2 or arg == 3):
            return core.decode_bignum(self.data, arg, pos)[1]
        if major < 2 or major == 7:
            return pos
        if depth <= 0:
            raise CBORError("nesting deeper than max_depth")
        if major == 6:
            self.tags.append((start, pos, arg))
            return self._item(pos, depth - 1, in_key)
        if in_key:
            raise CBORError("map key is an array or a map")
        if major == 4:
            for _ in range(arg):
                pos = self._item(pos, depth - 1, False)
            return pos
        self.entries += arg
        for _ in range(arg):
            pos = self._item(pos, depth - 1, True)
            pos = self._item(pos, depth - 1, False)
        return pos

    def stand_in_tags(self):
        """The data with tag i's head replaced by the head of stand-in tag _STAND_IN + i."""
        parts, last = [], 0
        for i, (start, end, _) in enumerate(self.tags):
            parts += [self.data[last:start], core.encode_head(6, _STAND_IN + i)]
            last = end
        parts.append(self.data[last:])
        return b"".join(parts)

    def adopt(self, value):
        """cbor2's result in the core's data model, counting the map entries that survived."""
        if type(value) in _SCALARS:
            return value
        if isinstance(value, cbor2.CBORTag):
            return Tag(self.tags[value.tag - _STAND_IN][2], self.adopt(value.value))
        if isinstance(value, (list, tuple)):  # cbor2 6 decodes inside tags as tuple and frozendict
            return [self.adopt(item) for item in value]
        if isinstance(value, Mapping):
            adopted = {self.adopt(k): self.adopt(v) for k, v in value.items()}
            self.entries -= len(adopted)
            return adopted
        if value is cbor2.undefined:
            return UNDEFINED
        return value
