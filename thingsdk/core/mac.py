"""HMAC-SHA256 (RFC 2104) and a constant-time compare, on MicroPython's hashlib alone."""

import hashlib

from thingsdk.core.check import const

_ALG_HMAC_256_256 = const(5)
_BLOCK = 64


def hmac_sha256(key, data):
    """The 32-byte HMAC-SHA256 of data under key."""
    key = bytes(key)
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(data)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def equal(a, b):
    """Compare two byte strings in time that depends only on their lengths."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0


class HmacKey:
    """A shared secret for COSE_Mac0 with HMAC 256/256 (boards provisioned with a shared key)."""

    alg = _ALG_HMAC_256_256

    def __init__(self, secret, kid=None):
        if len(secret) < 32:
            raise ValueError("an HMAC 256/256 key needs at least 32 bytes")
        self._secret = bytes(secret)
        self.kid = kid

    def mac(self, data):
        return hmac_sha256(self._secret, data)
