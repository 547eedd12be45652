from thingsdk.core.keys import key_id, KID_LENGTH
from check import unhex


def test_key_id_is_sha256_prefix():
    # sha256("abc") begins ba7816bf8f01cfea
    assert key_id(b"abc") == unhex("ba7816bf8f01cfea")
    assert len(key_id(b"\x00" * 32)) == KID_LENGTH
