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
