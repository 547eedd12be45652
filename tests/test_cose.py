"""COSE_Sign1 and COSE_Mac0 against the cose-wg examples, python-cwt as an independent peer, and bad
input."""

import base64

import pytest
from hypothesis import given, settings, strategies as st
from check import load_json, unhex
from cose_peer import Peer
from thingsdk import codec as cpython_codec
from thingsdk.core import cbor as core_codec
from thingsdk.core import cose, ed25519
from thingsdk.core.cbor import Tag
from thingsdk.core.mac import HmacKey, hmac_sha256
from thingsdk.crypto import Ed25519Signer, Ed25519Verifier, P256Verifier

CODECS = [pytest.param(cpython_codec, id="cbor2"), pytest.param(core_codec, id="core")]
CONTENT = b"This is the content."


def vector(name):
    return load_json("cose/" + name + ".json")


def p256_keys(v):
    key = v["input"]["sign0"]["key"]
    b64 = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
    return {key["kid"].encode(): P256Verifier(b64(key["x"]), b64(key["y"]))}


def mac_key(v):
    k = v["input"]["mac0"]["recipients"][0]["key"]["k"]
    return HmacKey(base64.urlsafe_b64decode(k + "=" * (-len(k) % 4)))


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("signer_type", ["cryptography", "core"])
def test_eddsa_sig_01_matches_byte_for_byte(codec, signer_type):
    v = vector("eddsa-examples/eddsa-sig-01")
    seed = unhex(v["input"]["sign0"]["key"]["d_hex"])
    signer = Ed25519Signer.from_seed(seed) if signer_type == "cryptography" else ed25519.Signer(seed)
    out = cose.sign1(CONTENT, signer, codec, protected={cose.ALG: -8, cose.CONTENT_TYPE: 0},
                     unprotected={cose.KID: b"11"})
    assert out.hex().upper() == v["output"]["cbor"]
    verified = cose.verify_sign1(out, {b"11": Ed25519Verifier(signer.public_key)}, codec)
    assert verified.payload == CONTENT and verified.kid == b"11" and verified.alg == -8


@pytest.mark.parametrize("codec", CODECS)
def test_sign_pass_02_external_aad(codec):
    v = vector("sign1-tests/sign-pass-02")
    aad = unhex(v["input"]["sign0"]["external"])
    data = unhex(v["output"]["cbor"])
    assert cose.verify_sign1(data, p256_keys(v), codec, external_aad=aad).payload == CONTENT
    with pytest.raises(cose.CoseError) as err:
        cose.verify_sign1(data, p256_keys(v), codec)
    assert err.value.code == "bad-signature"


# The strict verifier refuses two of the "pass" vectors on purpose: sign-pass-01 carries alg in the
# unprotected header (an attacker could change it; only a kid may stand there), sign-pass-03 omits
# the COSE tag.
STRICT_REFUSALS = {"sign-pass-01": "bad-header", "sign-pass-03": "bad-tag"}
SIGN_FAILS = {
    "sign-fail-01": "bad-tag",        # wrong CBOR tag
    "sign-fail-02": "bad-signature",  # signature changed
    "sign-fail-03": "bad-alg",        # alg -999
    "sign-fail-04": "bad-alg",        # alg "unknown"
    "sign-fail-06": "bad-signature",  # protected attribute added
    "sign-fail-07": "bad-signature",  # protected attribute removed
}


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("name,code", sorted({**SIGN_FAILS, **STRICT_REFUSALS}.items()))
def test_sign1_vectors_refused(codec, name, code):
    v = vector("sign1-tests/" + name)
    with pytest.raises(cose.CoseError) as err:
        cose.verify_sign1(unhex(v["output"]["cbor"]), p256_keys(v), codec)
    assert err.value.code == code


@pytest.mark.parametrize("codec", CODECS)
def test_sign_pass_01_was_signed_over_other_protected_bytes(codec):
    """sign-pass-01 carries h'A0' but was signed over h'': only a verifier that re-encodes the
    protected header accepts it. We use the bytes as received, so it could never pass here."""
    v = vector("sign1-tests/sign-pass-01")
    protected, _, payload, sig = codec.loads(unhex(v["output"]["cbor"])).value
    key = p256_keys(v)[b"11"]
    assert protected == b"\xa0"
    assert not key.verify(sig, codec.dumps(["Signature1", protected, b"", payload]))
    assert key.verify(sig, codec.dumps(["Signature1", b"", b"", payload]))


@pytest.mark.parametrize("codec", CODECS)
def test_hmac_01_verifies(codec):
    v = vector("mac0-tests/HMac-01")
    data = unhex(v["output"]["cbor"])
    assert cose.verify_mac0(data, {None: mac_key(v)}, codec).payload == CONTENT
    assert cose.mac0(CONTENT, mac_key(v), codec) == data


MAC_FAILS = {
    "mac-fail-01": "bad-tag",
    "mac-fail-02": "bad-mac",
    "mac-fail-03": "bad-alg",
    "mac-fail-04": "bad-alg",
    "mac-fail-06": "bad-mac",
    "mac-fail-07": "bad-mac",
    "mac-pass-01": "bad-header",
    "mac-pass-02": "bad-header",
}


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("name,code", sorted(MAC_FAILS.items()))
def test_mac0_vectors_refused(codec, name, code):
    v = vector("mac0-tests/" + name)
    with pytest.raises(cose.CoseError) as err:
        cose.verify_mac0(unhex(v["output"]["cbor"]), {None: mac_key(v)}, codec)
    assert err.value.code == code


def test_mac_structure_with_external_aad_matches_vector():
    """Our MAC0 structure (with external_aad) gives the vector's tag, though we refuse its alg."""
    v = vector("mac0-tests/mac-pass-02")
    protected, _, payload, tag = core_codec.loads(unhex(v["output"]["cbor"])).value
    aad = unhex(v["input"]["mac0"].get("external", ""))
    secret = mac_key(v)._secret
    assert hmac_sha256(secret, core_codec.dumps(["MAC0", protected, aad, payload])) == tag


@pytest.fixture(scope="module")
def peer():
    p = Peer()
    yield p
    p.close()


@pytest.mark.parametrize("codec", CODECS)
def test_python_cwt_verifies_ours_and_we_verify_python_cwt(peer, codec):
    signer = Ed25519Signer.generate()
    ours = cose.sign1(b"order 42", signer, codec)
    assert peer.verify(signer.public_key, signer.kid, ours) == b"order 42"
    forged = ours[:-1] + bytes([ours[-1] ^ 1])
    assert peer.verify(signer.public_key, signer.kid, forged) is None

    keys = {signer.kid: signer.verifier()}
    # python-cwt puts the kid in the unprotected header by default, which COSE itself allows.
    for kid_protected in (True, False):
        theirs = peer.sign(signer.seed(), signer.kid, b"offer 7", kid_protected)
        got = cose.verify_sign1(theirs, keys, codec)
        assert got.payload == b"offer 7" and got.kid == signer.kid
        assert bool(got.unprotected) is not kid_protected


@pytest.fixture(scope="module")
def signed():
    signer = Ed25519Signer.from_seed(bytes(range(32)))
    return signer, cose.sign1(b"payload", signer, cpython_codec)


def resign(signer, protected, unprotected=None, payload=b"payload"):
    return cose.sign1(payload, signer, cpython_codec, protected=protected, unprotected=unprotected)


@pytest.mark.parametrize(
    "protected,unprotected,code",
    [
        ({1: -8, 4: b"K", 2: [99], 99: 1}, None, "unknown-crit"),
        ({1: -8, 4: b"K", 2: []}, None, "bad-header"),
        ({1: -8, 4: b"K"}, {4: b"K"}, "bad-header"),
        ({1: -8, 4: b"K"}, {2: [1]}, "bad-header"),
        ({1: -8, 4: b"K"}, {99: "x"}, "bad-header"),
        ({1: -8, 4: b"K", 2: None}, None, "bad-header"),
        ({1: -7, 4: b"K"}, None, "bad-alg"),
        ({1: 2**40, 4: b"K"}, None, "bad-alg"),
        ({4: b"K"}, {1: -8}, "bad-header"),
        ({4: b"K"}, None, "unprotected-alg"),
        ({1: -8, 4: b"K", 99: "x" * 300}, None, "bad-header"),
        ({1: -8, 4: b"other"}, None, "unknown-key"),
        ({1: -8, 4: "K"}, None, "bad-header"),
    ],
)
def test_strict_header_rules(signed, protected, unprotected, code):
    signer = signed[0]
    data = resign(signer, protected, unprotected)
    with pytest.raises(cose.CoseError) as err:
        cose.verify_sign1(data, {b"K": signer.verifier(), "K": signer.verifier()}, cpython_codec)
    assert err.value.code == code


def test_crit_naming_an_understood_label_is_accepted(signed):
    signer = signed[0]
    data = resign(signer, {1: -8, 4: b"K", 3: 0, 2: [3]})
    assert cose.verify_sign1(data, {b"K": signer.verifier()}, cpython_codec).payload == b"payload"


def test_fully_specified_ed25519_alg_is_accepted(signed):
    signer = signed[0]
    data = resign(signer, {1: -19, 4: b"K"})
    assert cose.verify_sign1(data, {b"K": signer.verifier()}, cpython_codec).alg == -19


def test_protected_bytes_are_used_as_received(signed):
    """A non-deterministic but valid protected header still verifies: it is never re-encoded."""
    signer, _ = signed
    protected = bytes.fromhex("a2") + bytes.fromhex("1801") + bytes.fromhex("27") + bytes.fromhex("0441") + b"K"
    tbs = cpython_codec.dumps(["Signature1", protected, b"", b"p"])
    data = cpython_codec.dumps(Tag(18, [protected, {}, b"p", signer.sign(tbs)]))
    assert cose.verify_sign1(data, {b"K": signer.verifier()}, cpython_codec).payload == b"p"


@pytest.mark.parametrize("codec", CODECS)
def test_tampering_is_detected(signed, codec):
    signer, data = signed
    keys = {signer.kid: signer.verifier()}
    assert cose.verify_sign1(data, keys, codec).payload == b"payload"
    flipped = 0
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= bit
            with pytest.raises(cose.CoseError):
                cose.verify_sign1(bytes(bad), keys, codec)
            flipped += 1
    assert flipped == 2 * len(data)


@pytest.mark.parametrize("codec", CODECS)
def test_truncations_are_refused(signed, codec):
    signer, data = signed
    for n in range(len(data)):
        with pytest.raises(cose.CoseError):
            cose.verify_sign1(data[:n], {signer.kid: signer.verifier()}, codec)


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_cose_error(codec, blob):
    signer = Ed25519Signer.from_seed(bytes(32))
    with pytest.raises(cose.CoseError):
        cose.verify_sign1(blob, {signer.kid: signer.verifier()}, codec)


def test_oversized_message_is_refused_before_decoding():
    with pytest.raises(cose.CoseError) as err:
        cose.verify_sign1(b"\xd2" + bytes(cose.MAX_MESSAGE_BYTES), {}, cpython_codec)
    assert err.value.code == "too-large"


def test_detached_payload_is_refused(signed):
    signer = signed[0]
    data = cpython_codec.dumps(Tag(18, [cpython_codec.dumps({1: -8, 4: signer.kid}), {}, None, bytes(64)]))
    with pytest.raises(cose.CoseError) as err:
        cose.verify_sign1(data, {signer.kid: signer.verifier()}, cpython_codec)
    assert err.value.code == "malformed" and "detached" in str(err.value)


def longer_head(item):
    """The same item with its head one size longer than the shortest form."""
    major, info = item[0] >> 5, item[0] & 0x1F
    if info < 24:
        return bytes((major << 5 | 24, info)) + item[1:]
    size = 1 << (info - 24)
    return bytes((major << 5 | (info + 1),)) + bytes(size) + item[1:]


@pytest.mark.parametrize("codec", CODECS)
def test_the_outer_structure_must_be_exact(signed, codec):
    """Other encodings of the same message, and additions to it, are refused before any signature
    is checked (the verifier below fails the test if it is called)."""
    signer, data = signed
    protected, _, payload, signature = core_codec.loads(data).value
    parts = [core_codec.dumps(protected), b"\xa0", core_codec.dumps(payload),
             core_codec.dumps(signature)]

    class Untouchable:
        alg = -8

        def verify(self, *_):
            raise AssertionError("the signature was checked")

    variants = {
        "tag with a long head": b"\xd8\x12\x84" + b"".join(parts),
        "array with a long head": b"\xd2\x98\x04" + b"".join(parts),
        "indefinite array": b"\xd2\x9f" + b"".join(parts) + b"\xff",
        "unprotected label": b"\xd2\x84" + parts[0] + b"\xa1\x18\x63\x61x" + b"".join(parts[2:]),
        "unprotected map long head": b"\xd2\x84" + parts[0] + b"\xb8\x00" + b"".join(parts[2:]),
        "trailing byte": data + b"\x00",
        "no tag": data[1:],
    }
    for i in (0, 2, 3):
        longer = list(parts)
        longer[i] = longer_head(parts[i])
        variants["long head of part %d" % i] = b"\xd2\x84" + b"".join(longer)
    for name, variant in variants.items():
        with pytest.raises(cose.CoseError) as err:
            cose.verify_sign1(variant, {signer.kid: Untouchable()}, codec)
        assert err.value.code in ("malformed", "bad-header", "bad-tag"), name
    assert cose.verify_sign1(b"\xd2\x84" + b"".join(parts), {signer.kid: signer.verifier()},
                             codec).payload == b"payload"


def test_signatures_of_other_lengths_are_refused_unchecked(signed):
    signer, data = signed
    protected, _, payload, signature = core_codec.loads(data).value
    for sig in (signature[:63], signature + b"\x00", b""):
        bad = core_codec.dumps(Tag(18, [protected, {}, payload, sig]))
        with pytest.raises(cose.CoseError) as err:
            cose.verify_sign1(bad, {signer.kid: signer.verifier()}, cpython_codec)
        assert err.value.code == "bad-signature"


@pytest.mark.parametrize("key", [Ed25519Signer.from_seed(b"\x05" * 32),
                                 HmacKey(b"\x06" * 32), HmacKey(b"\x06" * 32, kid=b"k" * 30)],
                         ids=["ed25519", "hmac", "hmac-long-kid"])
def test_default_protected_header_is_the_deterministic_encoding(key):
    """sign1 and mac0 write the default protected header, {alg, kid}, without the codec: it must
    be byte for byte what the codec writes."""
    build = cose.mac0 if isinstance(key, HmacKey) else cose.sign1
    data = build(b"payload", key, core_codec)
    expected = {cose.ALG: key.alg}
    if key.kid is not None:
        expected[cose.KID] = key.kid
    protected = core_codec.dumps(expected)
    written = core_codec.encode_head(2, len(protected)) + protected
    assert data[2:2 + len(written)] == written
