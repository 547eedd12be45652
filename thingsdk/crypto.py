"""CPython signing keys on `cryptography`, with the core's signer/verifier interface, and key files."""

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from thingsdk.core.cose import ALG_EDDSA
from thingsdk.core.keys import key_id
from thingsdk.storage import atomic_write

ALG_ES256 = -7
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Ed25519Signer:
    """Signs with an Ed25519 private key held by `cryptography`."""

    alg = ALG_EDDSA

    def __init__(self, private_key):
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes(*_RAW)
        self.kid = key_id(self.public_key)

    @classmethod
    def generate(cls) -> "Ed25519Signer":
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "Ed25519Signer":
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    def seed(self):
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def sign(self, data):
        return self._key.sign(data)

    def verifier(self):
        return Ed25519Verifier(self.public_key)


class Ed25519Verifier:
    """Verifies Ed25519 signatures for one public key (32 raw bytes)."""

    alg = ALG_EDDSA

    def __init__(self, public_key):
        self.public_key = bytes(public_key)
        self.kid = key_id(self.public_key)
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)

    def verify(self, signature, data):
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


class P256Verifier:
    """Verifies COSE ES256 signatures (raw r || s) for a P-256 public key; for interop with peers."""

    alg = ALG_ES256

    def __init__(self, x, y, kid=None):
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        )
        self._key = numbers.public_key()
        self.kid = kid

    def verify(self, signature, data):
        if len(signature) != 64:
            return False
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            self._key.verify(der, data, ec.ECDSA(ec.hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def save_keypair(signer, private_path, public_path):
    """Write the private key (PKCS#8 PEM, mode 0600) and the public key (PEM)."""
    private_pem = signer._key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = signer._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write(Path(private_path), private_pem, mode=0o600)
    atomic_write(Path(public_path), public_pem, mode=0o644)


ALLOW_SHARED_KEYS = "THINGSDK_ALLOW_SHARED_KEYS"  # set to 1 to use keys others may read


def load_signer(path: "str | os.PathLike[str]") -> "Ed25519Signer":
    """An Ed25519Signer from a PKCS#8 PEM private key file. A key file that its group or others
    may read or write is refused (chmod 600 it), unless the environment sets
    THINGSDK_ALLOW_SHARED_KEYS=1; errors name the file."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077 and os.name == "posix" and os.environ.get(ALLOW_SHARED_KEYS) != "1":
        raise ValueError("%s: a private key that others may read (mode %04o): chmod 600 it, or "
                         "set %s=1 to use it anyway" % (path, mode, ALLOW_SHARED_KEYS))
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (TypeError, ValueError, UnsupportedAlgorithm) as exc:  # TypeError: encrypted
        raise ValueError("%s: not a usable private key (%s)" % (path, exc)) from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("%s is not an Ed25519 private key" % path)
    return Ed25519Signer(key)


def load_public_key(text):
    """Raw 32-byte Ed25519 public key from PEM text or 64 hex digits."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key.public_bytes(*_RAW)
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes (64 hex digits)")
    return raw
