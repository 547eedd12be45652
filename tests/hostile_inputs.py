"""Messages that anyone who can publish to an uplink can send without a key, and a seeded
mutator of genuine ones: for the fuzz test (test_hostile.py) and bench/hostile.py."""

import random

from thingsdk.core import cbor, cose

MAX = cose.MAX_MESSAGE_BYTES


def _bstr(data):
    return cbor.encode_head(2, len(data)) + data


def _sign1(protected, unprotected, payload, signature=bytes(64)):
    """A COSE_Sign1 with these raw parts (unprotected already encoded)."""
    return b"\xd2\x84" + _bstr(protected) + unprotected + _bstr(payload) + _bstr(signature)


def _colliding_keys(count):
    """A map of `count` big-integer keys that CPython hashes alike (n mod 2**61-1)."""
    step = (1 << 61) - 1
    return cbor.encode_head(5, count) + b"".join(
        cbor.dumps(2**64 + i * step) + b"\xf6" for i in range(count))


def crafted(kid, seed=1):
    """{kind: [messages]}: unauthenticated messages of each kind, naming `kid` (a key the
    receiver knows) where that makes them cost more."""
    rnd = random.Random(seed)
    protected = cbor.dumps({1: -8, 4: kid})
    unknown = cbor.dumps({1: -8, 4: b"\xee" * 8})
    most = MAX - 100  # payload bytes that still fit
    fit = MAX // 13  # colliding keys that fit
    distinct = cbor.encode_head(5, 1000) + b"".join(cbor.dumps(i) + b"\xf6" for i in range(1000))
    return {
        "garbage": [rnd.randbytes(rnd.randint(1, MAX)) for _ in range(16)],
        "oversized": [b"\xd2" + bytes(MAX), b"\xd2\x84" + rnd.randbytes(100000),
                      _sign1(protected, b"\xa0", bytes(MAX))],
        "max size, known kid": [_sign1(protected, b"\xa0", bytes(n))
                                for n in (most, most // 2, most // 4, 1000)],
        "max size, unknown kid": [_sign1(unknown, b"\xa0", bytes(n)) for n in (most, most // 2)],
        "crafted keys, unprotected": [_sign1(protected, _colliding_keys(n), b"")
                                      for n in (fit, 100, 2)] + [_sign1(protected, distinct, b"")],
        "crafted keys, protected": [  # colliding, a byte-string key, a duplicate, too many
            _sign1(_colliding_keys(20), b"\xa0", b"x"), _sign1(b"\xa1\x41\x00\x00", b"\xa0", b"x"),
            _sign1(b"\xa3\x01\x27\x04\x48" + kid + b"\x01\x27", b"\xa0", b"x"),
            _sign1(distinct[:250], b"\xa0", b"x")],
        "crafted keys, payload": [_sign1(protected, b"\xa0", _colliding_keys(n))
                                  for n in (fit, fit // 2)]
        + [_sign1(protected, b"\xa0", distinct)],
        "invalid UTF-8": [bytes.fromhex("d28440a10061ff4040"),
                          _sign1(b"\xa2\x01\x27\x04\x61\xff", b"\xa0", b""),
                          _sign1(protected, b"\xa0", b"\xa1\x01\x61\xff"),
                          _sign1(protected, b"\xa0", b"\x62\xc0\x80"),
                          _sign1(protected, b"\xa0", b"\x63\xed\xa0\x80"),
                          _sign1(protected, b"\xa1\x04\x63\xed\xa0\x80", b"")],
        "deep nesting": [_sign1(b"\x81" * 200 + b"\x00", b"\xa0", b""),
                         b"\xd2\x84" + b"\x81" * 2000 + b"\x00",
                         _sign1(protected, b"\xa1\x00" + b"\x81" * 2000 + b"\x00", b""),
                         _sign1(protected, b"\xa0", b"\x81" * most + b"\x00"),
                         _sign1(protected, b"\xa0", b"\xa1\x00" * (most // 2) + b"\x00")],
        "tag floods": [b"\xd2" * 4000, b"\xd8\x12" * 4000,
                       _sign1(b"\xc1" * 200 + b"\x00", b"\xa0", b""),
                       _sign1(protected, b"\xa0", b"\xc1" * most + b"\x00")],
        "long heads": [b"\xd2\x84\x58" + bytes((len(protected),)) + protected + b"\xa0\x40\x58\x40"
                       + bytes(64), b"\xd8\x12" + _sign1(protected, b"\xa0", b"")[1:],
                       b"\xd2\x84" + _bstr(protected) + b"\xa0\x58\x00\x58\x40" + bytes(64),
                       b"\xd2\x84" + _bstr(protected) + b"\xa0\x40\x59\x00\x40" + bytes(64)],
    }


FRAGMENTS = [b"\xa1\x18\x63\x61x", b"\xa1\x04\x48" + bytes(8), b"\xa1\x01\x27", b"\x9f",
             b"\xff", b"\xc1", b"\xd2", b"\x7b" + b"\xff" * 8, b"\x61\xff", b"\x18", b"\xf6",
             b"\xa0", b"\x40", b"\x81" * 20]


UNPROTECTED = [b"\xa1\x18\x63\x61x", b"\xa1\x04\x48" + bytes(8), b"\xa1\x01\x27",
               b"\xbf\xff", b"\xb8\x00", b"\xa1\x02\x81\x01", b"\xa2\x03\x00\x18\x63\xf6"]


def _parts(data):
    """The raw items of a tagged COSE array of four (heads included), or None."""
    if data[:2] != b"\xd2\x84":
        return None
    parts, pos = [], 2
    try:
        for _ in range(4):
            major, _, arg, start = cbor.decode_head(data, pos)
            end = start + arg if major in (2, 3) else start if major != 5 else None
            if end is None:  # a map: skip it with the decoder
                end = start
                for _ in range(2 * arg):
                    end = cbor.decode_head(data, end)[3]
            parts.append(data[pos:end])
            pos = end
    except ValueError:
        return None
    return parts if pos == len(data) else None


def _longer(item):
    """The item with its head one size longer."""
    major, info = item[0] >> 5, item[0] & 0x1F
    if info < 24:
        return bytes((major << 5 | 24, info)) + item[1:]
    if info < 27:
        return bytes((major << 5 | (info + 1),)) + bytes(1 << (info - 24)) + item[1:]
    return item


def mutate(data, rnd):
    """One random change to data: bit flips, byte changes, insertions, deletions, truncation,
    duplication, a fragment of CBOR spliced in, or, for a COSE_Sign1, the same parts with another
    unprotected header, a longer head, or another tag head."""
    parts = _parts(data) if rnd.random() < 0.3 else None
    if parts:
        how = rnd.randrange(3)
        if how == 0:
            parts[1] = rnd.choice(UNPROTECTED)
        elif how == 1:
            i = rnd.randrange(4)
            parts[i] = _longer(parts[i])
        return (b"\xd8\x12\x84", b"\xd2\x98\x04", b"\xd2\x84")[rnd.randrange(3) if how == 2
                                                                  else 2] + b"".join(parts)
    data = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        how = rnd.randrange(7)
        i = rnd.randrange(len(data) + 1) if data else 0
        if how == 0 and data:
            data[min(i, len(data) - 1)] ^= 1 << rnd.randrange(8)
        elif how == 1 and data:
            data[min(i, len(data) - 1)] = rnd.randrange(256)
        elif how == 2:
            data[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
        elif how == 3 and data:
            del data[i : i + rnd.randint(1, 8)]
        elif how == 4:
            del data[i:]
        elif how == 5:
            data[i:i] = data[rnd.randrange(len(data) + 1):][: rnd.randint(1, 64)]
        else:
            data[i:i] = rnd.choice(FRAGMENTS)
    return bytes(data)
