from check import unhex
from thingsdk.core.mac import equal, hmac_sha256


def test_rfc4231_case_2():
    tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert tag == unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_rfc4231_case_6_long_key():
    tag = hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert tag == unhex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_equal():
    assert equal(b"abc", b"abc")
    assert not equal(b"abc", b"abd")
    assert not equal(b"abc", b"ab")
