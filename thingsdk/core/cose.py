"""COSE_Sign1 and COSE_Mac0 (RFC 9052): build, and verify strictly.

Keys and the CBOR codec come in as arguments (see docs/architecture.md). Verification is strict
and cheap for what is refused: before anything is decoded the raw bytes must be exactly the
tag, an array of four, the protected header as a byte string (at most 256 bytes), an
unprotected header that is empty or holds only a kid, and the payload and proof as byte strings,
every head in its shortest form and nothing after them. Then the protected header alone is
decoded: the algorithm is read from it only, a `crit` label this module does not understand is
refused, the kid may not stand in both buckets, and the header is used exactly as received. The
key is looked up and the proof checked before the caller decodes the payload.
"""

from thingsdk.core.cbor import decode_head, encode_head
from thingsdk.core.check import const

SIGN1_TAG = 18
_MAC0_TAG = const(17)

ALG = 1
CRIT = 2
CONTENT_TYPE = 3
KID = 4
UNDERSTOOD = (ALG, CRIT, CONTENT_TYPE, KID)

ALG_EDDSA = -8
# RFC 9864's fully specified name for the same signatures as EdDSA on Ed25519
_ALG_ED25519 = const(-19)
_SAME_ALG = {_ALG_ED25519: ALG_EDDSA}

MAX_MESSAGE_BYTES = 16384  # the protocol's largest message, a support request, is under 13 KB
_MAX_PROTECTED = const(256)


class CoseError(ValueError):
    """A COSE message was refused; `code` says why in one word."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code


class Verified:
    """A message whose signature or MAC checked out."""

    def __init__(self, payload, alg, kid, protected, unprotected):
        self.payload = payload
        self.alg = alg
        self.kid = kid
        self.protected = protected
        self.unprotected = unprotected


def sign1(payload, signer, codec, external_aad=b"", protected=None, unprotected=None):
    """A tagged COSE_Sign1; by default alg and kid go in the protected header."""
    return _build(SIGN1_TAG, "Signature1", payload, signer, signer.sign, codec, external_aad,
                  protected, unprotected)


def mac0(payload, key, codec, external_aad=b"", protected=None, unprotected=None):
    """A tagged COSE_Mac0; by default alg (and kid, if the key has one) go in the protected header."""
    return _build(_MAC0_TAG, "MAC0", payload, key, key.mac, codec, external_aad, protected,
                  unprotected)


def verify_sign1(data, keys, codec, external_aad=b""):
    """Check a COSE_Sign1 and return it as `Verified`; raise CoseError otherwise.

    `keys` maps a kid (bytes, or None when the message names none) to a verifier: a dict, or a
    callable returning the verifier or None.
    """
    opened = _open(data, SIGN1_TAG, keys, codec)
    key, protected_bytes, payload, signature = opened[0], opened[1], opened[2], opened[3]
    to_check = _structure("Signature1", protected_bytes, external_aad, payload)
    if len(signature) != 64 or not key.verify(signature, to_check):
        raise CoseError("bad-signature", "the signature does not verify")
    return opened[4]


def verify_mac0(data, keys, codec, external_aad=b""):
    """Check a COSE_Mac0 and return it as `Verified`; raise CoseError otherwise."""
    from thingsdk.core.mac import equal  # only for a MAC, which a board's orders never check

    opened = _open(data, _MAC0_TAG, keys, codec)
    key, protected_bytes, payload, tag = opened[0], opened[1], opened[2], opened[3]
    if not equal(key.mac(_structure("MAC0", protected_bytes, external_aad, payload)), tag):
        raise CoseError("bad-mac", "the MAC does not verify")
    return opened[4]


def _build(tag, context, payload, key, compute, codec, external_aad, protected, unprotected):
    if protected is None:  # {ALG: alg, KID: kid}, written as codec.dumps would write it
        alg = key.alg
        protected_bytes = b"\xa1\x01" if key.kid is None else b"\xa2\x01"
        protected_bytes += encode_head(0, alg) if alg >= 0 else encode_head(1, -1 - alg)
        if key.kid is not None:
            protected_bytes += b"\x04" + encode_head(2, len(key.kid)) + key.kid
    else:
        protected_bytes = codec.dumps(protected) if protected else b""
    proof = compute(_structure(context, protected_bytes, external_aad, payload))
    # tag([protected, unprotected, payload, proof]) written as codec.dumps would, piece by piece:
    # the three byte strings are not copied into a structure only to be encoded again
    parts = [encode_head(6, tag), b"\x84", encode_head(2, len(protected_bytes)), protected_bytes,
             codec.dumps(unprotected) if unprotected else b"\xa0"]
    for field in (payload, proof):
        parts += (encode_head(2, len(field)), field)
    return b"".join(parts)


def _structure(context, protected_bytes, external_aad, payload):
    """The bytes signed or MACed: the CBOR array [context, protected, external_aad, payload]."""
    parts = [b"\x84", encode_head(3, len(context)), context.encode()]
    for field in (protected_bytes, external_aad, payload):
        parts += (encode_head(2, len(field)), field)
    return b"".join(parts)


def _open(data, tag, keys, codec):
    """Vet the raw bytes and everything but the proof: (key, protected bytes, payload, proof,
    Verified)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise CoseError("too-large", "more than %d bytes" % MAX_MESSAGE_BYTES)
    data = bytes(data)
    if data[0:1] != bytes((0xC0 | tag,)):
        raise CoseError("bad-tag", "COSE tag %d is required" % tag)
    if data[1:2] != b"\x84":
        raise CoseError("malformed", "not an array of four")
    protected_bytes, pos = _bstr(data, 2)
    unprotected = {}
    if data[pos : pos + 2] == b"\xa1\x04":
        unprotected[KID], pos = _bstr(data, pos + 2)
    elif data[pos : pos + 1] == b"\xa0":
        pos += 1
    else:
        raise CoseError("bad-header", "only a kid may be unprotected")
    payload, pos = _bstr(data, pos)
    proof, pos = _bstr(data, pos)
    if pos != len(data):
        raise CoseError("malformed", "trailing bytes")
    if len(protected_bytes) > _MAX_PROTECTED:
        raise CoseError("bad-header", "protected header too long")
    protected = {}
    if protected_bytes:
        try:
            protected = codec.loads(protected_bytes, max_depth=4)
        except ValueError as exc:
            raise CoseError("malformed", "protected header: %s" % exc)
    if not isinstance(protected, dict):
        raise CoseError("malformed", "protected header must be a map")
    kid = protected.get(KID, unprotected.get(KID))
    if KID in protected and unprotected or not isinstance(kid, (bytes, type(None))):
        raise CoseError("bad-header", "kid must be a byte string, in one bucket")
    if CRIT in protected:
        crit = protected[CRIT]
        if not isinstance(crit, list) or not crit:
            raise CoseError("bad-header", "crit must be a non-empty array")
        for label in crit:
            if label not in UNDERSTOOD or label == CRIT or label not in protected:
                raise CoseError("unknown-crit", "a critical header is not understood")
    alg = protected.get(ALG)
    if alg is None:
        raise CoseError("unprotected-alg", "the algorithm must be protected")
    key = keys.get(kid) if hasattr(keys, "get") else keys(kid)
    if key is None:
        raise CoseError("unknown-key", "no key for this kid")
    if not isinstance(alg, int) or _SAME_ALG.get(alg, alg) != key.alg:
        raise CoseError("bad-alg", "not the key's algorithm")
    return key, protected_bytes, payload, proof, Verified(payload, alg, kid, protected, unprotected)


def _bstr(data, pos):
    """The byte string whose head, in its shortest form, is at data[pos]; the position after it."""
    try:
        major, _, length, start = decode_head(data, pos)
    except ValueError:
        major = start = length = 0
    if major != 2 or data[pos:start] != encode_head(2, length):
        raise CoseError("malformed", "expected a byte string, shortest head (no detached payload)")
    return data[start : start + length], start + length
