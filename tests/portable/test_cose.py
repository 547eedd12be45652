"""COSE on the portable core alone: core CBOR codec, core Ed25519, core HMAC."""

import binascii

from check import load_json, raises, unhex
from thingsdk.core import cbor, cose, ed25519
from thingsdk.core.mac import HmacKey

CONTENT = b"This is the content."


def _eddsa_vector():
    v = load_json("cose/eddsa-examples/eddsa-sig-01.json")
    return v, ed25519.Signer(unhex(v["input"]["sign0"]["key"]["d_hex"]))


def test_eddsa_sig_01_byte_for_byte():
    v, signer = _eddsa_vector()
    out = cose.sign1(CONTENT, signer, cbor, protected={cose.ALG: -8, cose.CONTENT_TYPE: 0},
                     unprotected={cose.KID: b"11"})
    assert out == unhex(v["output"]["cbor"])
    got = cose.verify_sign1(out, {b"11": ed25519.Verifier(signer.public_key)}, cbor)
    assert got.payload == CONTENT


def test_default_headers_round_trip_and_tamper():
    _, signer = _eddsa_vector()
    keys = {signer.kid: ed25519.Verifier(signer.public_key)}
    out = cose.sign1(b"order", signer, cbor, external_aad=b"topic")
    got = cose.verify_sign1(out, keys, cbor, external_aad=b"topic")
    assert got.kid == signer.kid and got.alg == -8 and got.payload == b"order"
    assert raises(cose.CoseError, cose.verify_sign1, out, keys, cbor).code == "bad-signature"
    bad = bytearray(out)
    bad[-1] ^= 1
    assert raises(cose.CoseError, cose.verify_sign1, bytes(bad), keys, cbor).code == "bad-signature"
    assert raises(cose.CoseError, cose.verify_sign1, out[:-3], keys, cbor).code == "malformed"
    assert raises(cose.CoseError, cose.verify_sign1, out, {}, cbor).code == "unknown-key"


def test_unknown_crit_refused():
    _, signer = _eddsa_vector()
    out = cose.sign1(b"x", signer, cbor, protected={1: -8, 4: signer.kid, 2: [77], 77: 0})
    keys = {signer.kid: ed25519.Verifier(signer.public_key)}
    assert raises(cose.CoseError, cose.verify_sign1, out, keys, cbor).code == "unknown-crit"


def _mac_key(v):
    k = v["input"]["mac0"]["recipients"][0]["key"]["k"]
    k = k.replace("-", "+").replace("_", "/")
    return HmacKey(binascii.a2b_base64((k + "=" * (-len(k) % 4)).encode()))


def test_hmac_01_vector():
    v = load_json("cose/mac0-tests/HMac-01.json")
    key = _mac_key(v)
    assert cose.mac0(CONTENT, key, cbor) == unhex(v["output"]["cbor"])
    assert cose.verify_mac0(unhex(v["output"]["cbor"]), {None: key}, cbor).payload == CONTENT
    bad = load_json("cose/mac0-tests/mac-fail-02.json")
    assert raises(cose.CoseError, cose.verify_mac0, unhex(bad["output"]["cbor"]), {None: key},
                  cbor).code == "bad-mac"


def test_only_the_one_encoding_is_opened():
    """Additions to the unprotected header, longer heads, crit null, long protected headers and
    signatures of another length are refused before the signature is checked."""
    _, signer = _eddsa_vector()
    out = cose.sign1(b"order", signer, cbor)

    class Untouchable:
        alg = -8

        def verify(self, *_):
            raise AssertionError("the signature was checked")

    keys = {signer.kid: Untouchable()}
    head = out[2:16]  # the protected header: 4d a2 01 27 04 48 <kid>
    rest = out[17:]  # after the empty unprotected map: payload, signature
    assert out[:2] + head + b"\xa0" + rest == out
    cases = {
        out[:2] + head + b"\xa1\x18\x63\x61x" + rest: "bad-header",
        out[:2] + head + b"\xa1\x01\x27" + rest: "bad-header",
        out[:2] + b"\x58\x0d" + head[1:] + b"\xa0" + rest: "malformed",
        out[:2] + head + b"\xa0\x58\x05" + rest[1:]: "malformed",
        b"\xd8\x12" + out[1:]: "bad-tag",
        b"\xd2\x98\x04" + out[2:]: "malformed",
        out + b"\x00": "malformed",
        cose.sign1(b"x", signer, cbor, protected={1: -8, 4: signer.kid, 2: None}): "bad-header",
        cose.sign1(b"x", signer, cbor, protected={1: -8, 4: signer.kid, 9: "x" * 250}):
            "bad-header",
        cbor.dumps(cbor.Tag(18, [head[1:], {}, b"x", bytes(63)])): "bad-signature",
    }
    for data, code in cases.items():
        assert raises(cose.CoseError, cose.verify_sign1, data, keys, cbor).code == code, data
