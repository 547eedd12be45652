"""Key ids: short, stable names for public keys."""

import hashlib

KID_LENGTH = 8


def key_id(public_key):
    """The key id of a public key: the first 8 bytes of its SHA-256."""
    return hashlib.sha256(bytes(public_key)).digest()[:KID_LENGTH]
