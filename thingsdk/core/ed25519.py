"""Ed25519 signatures (RFC 8032) in Python, for MicroPython and as a CPython fallback.

Signatures are byte-identical to OpenSSL's (Ed25519 is deterministic) and verification is as
strict: S must be below L, the public key must be a canonical encoding of a curve point, and the
recomputed R must encode to exactly the R of the signature. This is not constant-time code: it
protects messages, not against an attacker who can time the device.

Points are in extended twisted-Edwards coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z.
Signing multiplies the base point with a radix-16 comb over a table frozen into flash, or else
with a window over its multiples, built on first use; verifying adds a signed radix-16 window of
the public key (its multiples are kept, affine and packed in bytes, by a `Verifier`), sharing the
doublings with the base point's window where there is no comb.
"""

from thingsdk.core.check import const
from thingsdk.core.keys import key_id
from thingsdk.core.sha512 import sha512

ALG = -8  # COSE EdDSA

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = 0x52036CEE2B6FFE738CC740797779E89800700A4D4141D8AB75EB4DCA135978A3  # -121665/121666
_D2 = 0x2406D9DC56DFFCE7198E80F2EEF3D13000E0149A8283B156EBD69B9426B2F159  # 2 * _D
_SQRT_M1 = 0x2B8324804FC1DF0B2B4D00993DFBD7A72F431806AD2FE478C4EE1B274A0EA0B0
_BX = 0x216936D3CD6E53FEC0A4E231FDD6DC5C692CC7609525A7B2C9562D608F25D51A
_BY = 0x6666666666666666666666666666666666666666666666666666666666666658
_BASE = (_BX, _BY, 1, _BX * _BY % _P)
_IDENTITY = (0, 1, 1, 0)

# The base-point comb: entry 8j + m - 1 of a table of spacing S is m * 16**(S * j) * B for
# m = 1..8, stored as the affine (y + x, y - x, 2dxy) in 3 * 32 little-endian bytes; a base-point
# multiplication is then 64 additions and 4 * (S - 1) doublings. Frozen into firmware, a table of
# spacing 4 (12,288 bytes, 12 doublings) is a constant in flash. Built in the heap on first use,
# it has spacing 64: one row, B's own multiples (768 bytes), as a Verifier keeps its key's. Heap
# is what a stock board is shortest of: against spacing 16 (3,072 bytes), measured on the 32-bit
# unix port in a 128 KB heap, a whole order completes in 3 KB less heap and signing takes 7.3 ms
# instead of 4.8, while verifying, which then adds both windows over one run of doublings, takes
# 7.3 ms instead of 8.0.
_BUILT_SPACING = const(64)
_comb = None  # (table, spacing)


def _add(p, q, negate=False):
    """p + q (or p - q when negate), with q cached as (Y + X, Y - X, 2Z, 2dT)."""
    x1, y1, z1, t1 = p
    yp, ym, z2, t2 = q
    if negate:
        yp, ym, t2 = ym, yp, -t2
    a = (y1 - x1) * ym % _P
    b = (y1 + x1) * yp % _P
    c = t1 * t2 % _P
    d = z1 * z2 % _P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _add_affine(p, q, negate):
    """p + q (or p - q when negate), with q affine as (y + x, y - x, 2dxy)."""
    x1, y1, z1, t1 = p
    yp, ym, t2 = q
    if negate:
        yp, ym, t2 = ym, yp, -t2
    a = (y1 - x1) * ym % _P
    b = (y1 + x1) * yp % _P
    c = t1 * t2 % _P
    d = z1 + z1
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p, n=1):
    """2**n * p; T is only computed for the result."""
    x, y, z, _ = p
    for _ in range(n):
        a = x * x % _P
        b = y * y % _P
        c = z * z % _P
        h = a + b
        s = x + y
        e = h - s * s % _P
        g = a - b
        f = c + c + g
        x = e * f % _P
        y = g * h % _P
        z = f * g % _P
    return (x, y, z, e * h % _P)


def _cached(p):
    """p as _add wants its second operand."""
    x, y, z, t = p
    return ((y + x) % _P, (y - x) % _P, z + z, t * _D2 % _P)


def _inverses(values):
    """The inverses of nonzero field elements, with one exponentiation (Montgomery's trick)."""
    prefix = [1]
    for v in values:
        prefix.append(prefix[-1] * v % _P)
    inv = pow(prefix[-1], _P - 2, _P)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = prefix[i] * inv % _P
        inv = inv * values[i] % _P
    return out


def _base_table():
    """(table, spacing) of the base-point comb: the frozen constant module's
    (thingsdk.core.ed25519_comb, written by `thingsdk firmware build --frozen`), else one built on
    first use."""
    global _comb
    if _comb is None:
        try:
            from thingsdk.core.ed25519_comb import SPACING, TABLE  # pyright: ignore (frozen only)
        except ImportError:
            SPACING = _BUILT_SPACING
            TABLE = make_table(SPACING)
        _comb = (TABLE, SPACING)
    return _comb


def make_table(spacing):
    """The comb table of the base point with this spacing (1, 2, 4, 8, 16, 32 or 64)."""
    rows = 64 // spacing
    table = bytearray(768 * rows)
    p = _BASE
    for j in range(rows):
        _multiples(p, table, 768 * j)
        p = _double(p, 4 * spacing)
    return table


def _table_point(table, index):
    """Entry index of the comb table as (y + x, y - x, 2dxy)."""
    i = 96 * index
    return (
        int.from_bytes(table[i:i + 32], "little"),
        int.from_bytes(table[i + 32:i + 64], "little"),
        int.from_bytes(table[i + 64:i + 96], "little"),
    )


def _radix16(k):
    """The 64 signed digits (-8..7) of k < 2**253 in radix 16, least significant first, each
    plus 8 in a bytearray: 64 bytes, where a list of them asked a board's heap for a run of 256."""
    digits = bytearray(64)
    carry = i = 0
    for byte in k.to_bytes(32, "little"):
        for v in (byte & 15, byte >> 4):
            v += carry
            carry = (v + 8) >> 4
            digits[i] = v - (carry << 4) + 8
            i += 1
    return digits


def _base_mult(k):
    """k * B for 0 <= k < L."""
    table, spacing = _base_table()
    digits = _radix16(k)
    p = _IDENTITY
    for s in range(spacing - 1, -1, -1):
        for j in range(64 // spacing):
            d = digits[j * spacing + s] - 8
            if d:
                p = _add_affine(p, _table_point(table, 8 * j + abs(d) - 1), d < 0)
        if s:
            p = _double(p, 4)
    return p


def _multiples(p, out=None, at=0):
    """p, 2p, ..., 8p as affine (y + x, y - x, 2dxy), 96 bytes each, written into out from `at`
    (a comb table row), else into a 768-byte bytearray made before them: a Verifier keeps it
    (0.8 KB of heap where the points as ints took 2.6 KB), and a board's heap is asked for the
    run before the points' garbage fragments it."""
    if out is None:
        out = bytearray(768)
    q = _cached(p)
    row = [p]
    for _ in range(7):
        row.append(_add(row[-1], q))
    for (x, y, _, _), zi in zip(row, _inverses([m[2] for m in row])):
        x = x * zi % _P
        y = y * zi % _P
        for v in ((y + x) % _P, (y - x) % _P, x * y % _P * _D2 % _P):
            out[at:at + 32] = v.to_bytes(32, "little")
            at += 32
    return out


def _window_mult(multiples, k, minus=None):
    """k * p for 0 <= k < L, given _multiples(p); with `minus` (_multiples(q), j), k * p - j * q,
    both windows added over one run of doublings."""
    digits = _radix16(k)
    other, others = (minus[0], _radix16(minus[1])) if minus else (None, None)
    p = _IDENTITY
    for i in range(63, -1, -1):
        d = digits[i] - 8
        if d:
            p = _add_affine(p, _table_point(multiples, abs(d) - 1), d < 0)
        if others is not None:
            d = others[i] - 8
            if d:
                p = _add_affine(p, _table_point(other, abs(d) - 1), d > 0)
        if i:
            p = _double(p, 4)
    return p


def _encode(p):
    x, y, z, _ = p
    zi = pow(z, _P - 2, _P)
    x = x * zi % _P
    y = y * zi % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _decode(s):
    """The point encoded by 32 bytes s, or None if s is not a canonical encoding of a point.

    Strictly RFC 8032 section 5.1.3: y >= p and x = 0 with the sign bit set are rejected (OpenSSL
    accepts both in public keys; no key made by key generation is either).
    """
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    yy = y * y % _P
    u = yy - 1
    v = _D * yy + 1
    v3 = v * v % _P * v % _P
    x = u * v3 % _P * pow(u * v3 % _P * v3 % _P * v % _P, (_P - 5) // 8, _P) % _P
    vxx = v * x % _P * x % _P
    if vxx != u % _P:
        if vxx != -u % _P:
            return None
        x = x * _SQRT_M1 % _P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _scalar(digest):
    return int.from_bytes(digest, "little") % _L


class Signer:
    """An Ed25519 signing key from its 32-byte seed; the expanded key is kept."""

    alg = ALG

    def __init__(self, seed):
        seed = bytes(seed)
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        h = sha512(seed)
        a = int.from_bytes(h[:32], "little")
        a = (a & ((1 << 254) - 8)) | (1 << 254)
        self._a = a % _L
        self._prefix = h[32:]
        self.public_key = _encode(_base_mult(self._a))
        self.kid = key_id(self.public_key)

    def sign(self, data):
        """The 64-byte signature of data (bytes-like)."""
        r = _scalar(sha512(self._prefix, data))
        big_r = _encode(_base_mult(r))
        k = _scalar(sha512(big_r, self.public_key, data))
        return big_r + ((r + k * self._a) % _L).to_bytes(32, "little")


class Verifier:
    """An Ed25519 public key. The multiples of its point are kept for verifying (768 bytes), or,
    with `keep` False, made anew for each signature verified: for a board, whose heap is short at
    every moment and which verifies a few messages an order; a verify then takes about a sixth
    longer (on the 32-bit unix port in a 128 KB heap, 12.8 ms against 10.9)."""

    alg = ALG

    def __init__(self, public_key, keep=True):
        public_key = bytes(public_key)
        if len(public_key) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self.public_key = public_key
        self.kid = key_id(public_key)
        point = _decode(public_key)
        self._valid = point is not None  # a key that does not decode verifies nothing
        self._multiples = _multiples(point) if keep and self._valid else None

    def verify(self, signature, data):
        """Whether signature is a valid signature of data by this key."""
        signature = bytes(signature)
        if not self._valid or len(signature) != 64:
            return False
        s = int.from_bytes(signature[32:], "little")
        if s >= _L:
            return False
        big_r = signature[:32]
        k = _scalar(sha512(big_r, self.public_key, data))
        # R == s*B - k*A, checked on the encoding, as RFC 8032 section 5.1.7 allows.
        multiples = self._multiples or _multiples(_decode(self.public_key))
        table, spacing = _base_table()
        if spacing == 64:  # B's multiples only: both windows share the doublings
            p = _window_mult(table, s, (multiples, k))
        else:
            p = _add(_base_mult(s), _cached(_window_mult(multiples, k)), True)
        return _encode(p) == big_r


def public_key(seed):
    """The 32-byte public key of a 32-byte seed."""
    return Signer(seed).public_key


def sign(seed, message):
    """The 64-byte signature of message under the key with this seed."""
    return Signer(seed).sign(message)


def verify(public_key, message, signature):
    """Whether signature is valid for message and public_key; False on any malformed input."""
    try:
        verifier = Verifier(public_key)
    except ValueError:
        return False
    return verifier.verify(signature, message)
