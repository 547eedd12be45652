from thingsdk.core import ed25519
from thingsdk.core.keys import key_id
from thingsdk.core.sha512 import sha512
from check import load_json, raises, unhex
from samples import RFC8032

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493


def pattern(n):
    return bytes(i & 255 for i in range(n))


def test_sha512_fips_examples():
    assert sha512(b"") == unhex(
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
    )
    assert sha512(b"abc") == unhex(
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    )
    two_blocks = (
        b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
        b"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
    )
    assert sha512(two_blocks) == unhex(
        "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
        "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"
    )


def test_sha512_padding_boundaries():
    # 111 bytes is the longest message whose length still fits in its last block; 112 is not.
    digests = {
        111: "a1a111449b198d9b1f538bad7f3fc1022b3a5b1a5e90a0bc860de8512746cbc3"
        "1599e6c834de3a3235327af0b51ff57bf7acf1974a73014d9c3953812edc7c8d",
        112: "c5fbd731d19d2ae1180f001be72c2c1aaba1d7b094b3748880e24593b8e117a7"
        "50e11c1bd867cc2f96dace8c8b74abd2d5c4f236be444e77d30d1916174070b9",
        127: "eab89674feaa34e27aebeeff3c0a4d70070bb872d5e9f186cf1dbbdee517b6e3"
        "5724d629ff025a5b07185e911ada7e3c8acf830aa0e4f71777bd2d44f504f7f0",
        128: "1dffd5e3adb71d45d2245939665521ae001a317a03720a45732ba1900ca3b835"
        "1fc5c9b4ca513eba6f80bc7b1d1fdad4abd13491cb824d61b08d8c0e1561b3f7",
        239: "cb4c7fd522756d5781ad3a4f590a1d862906b960e7720136cb3fb36b563caa1e"
        "a5689134291fa79c80ccc2b4092b41df32ebdcb36dbe79db483440228c1622a8",
        240: "6c48466c9f6c07e4ab762c696b7eeb35cfe236fca73683e5fab873ac3489b4d2"
        "eb3d7afcce7e8165dbbf37aded3b5b0c889c0b7e0f1790a8330d8677429d91a5",
    }
    for n in digests:
        assert sha512(pattern(n)) == unhex(digests[n]), n
    assert sha512(bytearray(pattern(128))) == unhex(digests[128])


def test_rfc8032_known_answers():
    for case in RFC8032:
        seed, public, message, signature = (unhex(v) for v in case)
        assert ed25519.public_key(seed) == public
        assert ed25519.sign(seed, message) == signature
        assert ed25519.verify(public, message, signature)
        assert not ed25519.verify(public, message + b"\x00", signature)


def test_wycheproof_vectors():
    vectors = load_json("ed25519/wycheproof_ed25519_test.json")
    count = 0
    for group in vectors["testGroups"]:
        public = unhex(group["publicKey"]["pk"])
        verifier = ed25519.Verifier(public)
        unkept = ed25519.Verifier(public, keep=False)  # its multiples made for each signature
        for case in group["tests"]:
            message, signature = unhex(case["msg"]), unhex(case["sig"])
            expected = case["result"] == "valid"
            assert ed25519.verify(public, message, signature) is expected, case["tcId"]
            assert verifier.verify(signature, message) is expected, case["tcId"]
            assert unkept.verify(signature, message) is expected, case["tcId"]
            count += 1
    assert count == vectors["numberOfTests"]


def test_signer_and_verifier_objects():
    seed, public, message, signature = (unhex(v) for v in RFC8032[2])
    signer = ed25519.Signer(seed)
    assert signer.alg == ed25519.ALG == -8
    assert signer.public_key == public
    assert signer.kid == key_id(public)
    assert signer.sign(message) == signature
    assert signer.sign(bytearray(message)) == signature
    verifier = ed25519.Verifier(bytearray(public))
    assert verifier.alg == -8
    assert verifier.kid == key_id(public)
    assert verifier.public_key == public
    assert verifier.verify(signature, message)
    assert verifier.verify(bytearray(signature), bytearray(message))
    assert not verifier.verify(signature, b"\xaf\x83")
    other = ed25519.Signer(unhex(RFC8032[0][0]))
    assert not verifier.verify(other.sign(message), message)


def test_tampered_signatures_are_rejected():
    _, public, message, signature = (unhex(v) for v in RFC8032[1])
    for i in (0, 5, 31, 32, 40, 63):
        for bit in (1, 128):
            bad = bytearray(signature)
            bad[i] ^= bit
            assert not ed25519.verify(public, message, bytes(bad)), (i, bit)


def test_malformed_inputs_return_false():
    _, public, message, signature = (unhex(v) for v in RFC8032[0])
    s = int.from_bytes(signature[32:], "little")
    assert not ed25519.verify(public, message, signature[:63])
    assert not ed25519.verify(public, message, signature + b"\x00")
    assert not ed25519.verify(public, message, b"")
    assert not ed25519.verify(public[:31], message, signature)
    assert not ed25519.verify(public + b"\x00", message, signature)
    # S + L is the same scalar; RFC 8032 requires S < L.
    assert not ed25519.verify(public, message, signature[:32] + (s + L).to_bytes(32, "little"))
    assert not ed25519.verify(public, message, signature[:32] + b"\xff" * 32)


def test_public_keys_must_be_canonical_points():
    _, _, message, signature = (unhex(v) for v in RFC8032[0])
    identity = (1).to_bytes(32, "little")
    # R = identity and S = 0 verifies for the identity as public key (cofactorless, like OpenSSL).
    assert ed25519.verify(identity, message, identity + bytes(32))
    # y = 1 encoded as p + 1, and y = 1 with the sign bit of x = 0 set: not canonical.
    assert not ed25519.verify((P + 1).to_bytes(32, "little"), message, identity + bytes(32))
    assert not ed25519.verify((1 + 2**255).to_bytes(32, "little"), message, identity + bytes(32))
    # y = 2 is not the y of any curve point.
    assert not ed25519.verify((2).to_bytes(32, "little"), message, signature)
    for keep in (True, False):
        assert not ed25519.Verifier((2).to_bytes(32, "little"), keep).verify(signature, message)


def test_wrong_key_lengths_raise():
    raises(ValueError, ed25519.Signer, bytes(31))
    raises(ValueError, ed25519.Verifier, bytes(33))
    raises(ValueError, ed25519.sign, bytes(64), b"")
    raises(ValueError, ed25519.public_key, b"")
