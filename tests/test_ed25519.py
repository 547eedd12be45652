"""The pure-Python Ed25519 and SHA-512 against Wycheproof, RFC 8032, hashlib and `cryptography`."""

import hashlib

import pytest
from check import load_json
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from thingsdk.core import ed25519
from thingsdk.core.keys import key_id
from thingsdk.core.sha512 import sha512
from samples import RFC8032

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493


def wycheproof_cases():
    vectors = load_json("ed25519/wycheproof_ed25519_test.json")
    cases = [
        pytest.param(group["publicKey"]["pk"], case, id="tc%d" % case["tcId"])
        for group in vectors["testGroups"]
        for case in group["tests"]
    ]
    assert len(cases) == vectors["numberOfTests"]
    return cases


@pytest.mark.parametrize("public_hex, case", wycheproof_cases())
def test_wycheproof(public_hex, case):
    public = bytes.fromhex(public_hex)
    message, signature = bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
    expected = case["result"] == "valid"
    assert ed25519.verify(public, message, signature) is expected
    assert ed25519.Verifier(public).verify(signature, message) is expected


@pytest.mark.parametrize("secret, public, message, signature", RFC8032)
def test_rfc8032(secret, public, message, signature):
    seed, public, message, signature = map(bytes.fromhex, (secret, public, message, signature))
    assert ed25519.public_key(seed) == public
    assert ed25519.sign(seed, message) == signature
    assert ed25519.Signer(seed).sign(message) == signature
    assert ed25519.verify(public, message, signature)
    assert ed25519.Verifier(public).verify(signature, message)


def openssl_pair(seed):
    private = Ed25519PrivateKey.from_private_bytes(seed)
    return private, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def openssl_verifies(public, message, signature):
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except InvalidSignature:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=600))
def test_agrees_with_cryptography(seed, message):
    private, public = openssl_pair(seed)
    ours = ed25519.sign(seed, message)
    theirs = private.sign(message)
    assert ed25519.public_key(seed) == public
    assert ours == theirs
    assert openssl_verifies(public, message, ours)
    assert ed25519.verify(public, message, theirs)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(min_size=1, max_size=300),
    position=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_tampering_is_rejected(seed, message, position, bit):
    signer = ed25519.Signer(seed)
    verifier = ed25519.Verifier(signer.public_key)
    signature = signer.sign(message)
    assert verifier.verify(signature, message)
    bad_signature = bytearray(signature)
    bad_signature[position % 64] ^= 1 << bit
    assert not verifier.verify(bytes(bad_signature), message)
    bad_message = bytearray(message)
    bad_message[position % len(message)] ^= 1 << bit
    assert not verifier.verify(signature, bytes(bad_message))
    assert not openssl_verifies(signer.public_key, bytes(bad_message), signature)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_sha512_agrees_with_hashlib(data):
    assert sha512(data) == hashlib.sha512(data).digest()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=5))
def test_sha512_of_parts_is_that_of_their_concatenation(parts):
    assert sha512(*parts) == hashlib.sha512(b"".join(parts)).digest()
    assert sha512(*map(bytearray, parts)) == sha512(b"".join(parts))


@pytest.mark.parametrize("length", [*range(0, 20), *range(104, 136), *range(232, 264), 1000])
def test_sha512_around_padding_boundaries(length):
    data = bytes((i * 31 + length) & 255 for i in range(length))
    assert sha512(data) == hashlib.sha512(data).digest()


def test_signer_and_verifier_attributes():
    seed = bytes(range(32))
    _, public = openssl_pair(seed)
    signer = ed25519.Signer(seed)
    verifier = ed25519.Verifier(public)
    for key in (signer, verifier):
        assert key.alg == ed25519.ALG == -8
        assert key.public_key == public
        assert key.kid == key_id(public)


def test_signer_keeps_the_expanded_key(monkeypatch):
    seed = bytes(range(32))
    signer = ed25519.Signer(seed)
    expected = {m: ed25519.sign(seed, m) for m in (b"one", b"two")}
    hashed = []

    def counting_sha512(*parts):
        hashed.append(b"".join(parts))
        return sha512(*parts)

    monkeypatch.setattr(ed25519, "sha512", counting_sha512)
    for message, signature in expected.items():
        assert signer.sign(message) == signature
    # Each signature hashes prefix || message and R || A || message, never the seed again.
    assert len(hashed) == 4
    assert seed not in hashed
    assert all(h.endswith(m) for h, m in zip(hashed, [b"one", b"one", b"two", b"two"]))


def test_verifier_decodes_its_key_once(monkeypatch):
    seed = bytes(range(32))
    signer = ed25519.Signer(seed)
    decoded = []
    real_decode = ed25519._decode
    monkeypatch.setattr(ed25519, "_decode", lambda s: decoded.append(s) or real_decode(s))
    verifier = ed25519.Verifier(signer.public_key)
    for message in (b"a", b"b", b"c"):
        assert verifier.verify(signer.sign(message), message)
    assert decoded == [signer.public_key]


def test_malformed_input_returns_false():
    seed = bytes(range(32))
    _, public = openssl_pair(seed)
    message = b"message"
    signature = ed25519.sign(seed, message)
    r, s = signature[:32], int.from_bytes(signature[32:], "little")
    for bad_public, bad_signature in [
        (public, signature[:-1]),
        (public, signature + b"\x00"),
        (public, b""),
        (public[:-1], signature),
        (b"", signature),
        (public, r + (s + L).to_bytes(32, "little")),  # same scalar, S >= L
        (public, r + (s + 8 * L).to_bytes(32, "little")),
        (public, r + b"\xff" * 32),
        ((2).to_bytes(32, "little"), signature),  # not the y of a curve point
        (public, (2).to_bytes(32, "little") + signature[32:]),
    ]:
        assert ed25519.verify(bad_public, message, bad_signature) is False


def test_non_canonical_public_keys_are_rejected():
    """RFC 8032 section 5.1.3 strictly; OpenSSL accepts these keys (it reduces y mod p)."""
    identity = (1).to_bytes(32, "little")
    signature = identity + bytes(32)  # R = identity, S = 0: valid for a key of small order
    assert ed25519.verify(identity, b"m", signature)
    assert openssl_verifies(identity, b"m", signature)
    for alias in ((P + 1).to_bytes(32, "little"), (1 + 2**255).to_bytes(32, "little")):
        assert openssl_verifies(alias, b"m", signature)
        assert not ed25519.verify(alias, b"m", signature)


def test_wrong_key_lengths_raise_value_error():
    with pytest.raises(ValueError):
        ed25519.Signer(bytes(31))
    with pytest.raises(ValueError):
        ed25519.Verifier(bytes(33))


@pytest.mark.parametrize("spacing", [1, 2, 4, 8, 16, 32, 64])
def test_every_comb_spacing_signs_as_openssl_does(spacing, monkeypatch):
    monkeypatch.setattr(ed25519, "_comb", (ed25519.make_table(spacing), spacing))
    for seed in (bytes(32), bytes(range(32))):
        private, public = openssl_pair(seed)
        message = b"comb spacing %d" % spacing
        signer = ed25519.Signer(seed)
        assert signer.public_key == public
        assert signer.sign(message) == private.sign(message)
        assert ed25519.Verifier(public).verify(private.sign(message), message)


def test_the_frozen_comb_module_holds_the_table_it_names():
    from thingsdk.firmware_build import comb_module

    namespace = {}
    exec(comb_module(), namespace)
    assert namespace["SPACING"] == 4
    assert namespace["TABLE"] == bytes(ed25519.make_table(4))
    assert len(namespace["TABLE"]) == 12288
