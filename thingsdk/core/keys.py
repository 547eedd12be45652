"""Key ids: short, stable names for public keys."""

import binascii
import hashlib

KID_LENGTH = 8


def key_id(public_key):
    """The key id of a public key: the first 8 bytes of its SHA-256."""
    return hashlib.sha256(bytes(public_key)).digest()[:KID_LENGTH]


def kid_hex(kid):
    """A key id as text, lower-case hex: a CWT's `iss`/`sub`, a device's name on the broker."""
    if not isinstance(kid, (bytes, bytearray)) or len(kid) != KID_LENGTH:
        raise ValueError("a key id is 8 bytes")
    return binascii.hexlify(bytes(kid)).decode()
