"""Serial-line framing (thingsdk.core.frames): COBS, CRC-32, resynchronisation, limits."""

from check import raises
from thingsdk.core import frames


def test_cobs_round_trips_at_every_block_boundary():
    cases = [b"", b"\x00", b"\x00\x00", b"\x11\x22\x00\x33", bytes(range(256)) * 3]
    for n in (1, 253, 254, 255, 508, 509):
        cases += [b"\x01" * n, b"\x01" * n + b"\x00", b"\x00" + b"\x02" * n]
    for data in cases:
        encoded = frames.cobs_encode(data)
        assert 0 not in encoded
        assert len(encoded) <= len(data) + len(data) // 254 + 1
        assert frames.cobs_decode(encoded) == data
    assert frames.cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert frames.cobs_encode(b"") == b"\x01"
    raises(frames.FrameError, frames.cobs_decode, b"\x05\x11")
    raises(frames.FrameError, frames.cobs_decode, b"\x00")


def test_a_frame_is_kind_seq_payload_and_crc32_between_zeros():
    wire = frames.encode(frames.UP, 0x0102, b"hi")
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    raw = frames.cobs_decode(wire[1:-1])
    assert raw[:5] == b"\x01\x01\x02hi"
    assert raw[5:] == b"\xd9\x30\x55\xf5"  # CRC-32 (zlib's) of 01 01 02 68 69
    assert frames.Decoder().feed(wire) == [(frames.UP, 0x0102, b"hi")]


def test_frames_split_anywhere_and_joined_come_out_whole():
    payloads = [b"", b"\x00" * 10, bytes(range(256)) * 8, b"x" * frames.MAX_PAYLOAD]
    wire = b"".join(frames.encode(frames.DOWN, i + 1, p) for i, p in enumerate(payloads))
    for size in (1, 7, 255, len(wire)):
        decoder = frames.Decoder()
        got = []
        for i in range(0, len(wire), size):
            got += decoder.feed(wire[i:i + size])
        assert got == [(frames.DOWN, i + 1, p) for i, p in enumerate(payloads)]
        assert decoder.bad == 0


def test_noise_and_corruption_are_dropped_counted_and_the_next_frame_survives():
    good = frames.encode(frames.ACK, 7)
    corrupted = bytearray(frames.encode(frames.UP, 8, b"order"))
    corrupted[5] ^= 0x40
    decoder = frames.Decoder()
    got = decoder.feed(b"\x13\x37noise" + good + bytes(corrupted) + b"\xff\xfe" + good)
    assert got == [(frames.ACK, 7, b""), (frames.ACK, 7, b"")]
    # the noise before the first frame and between the others is dropped as malformed
    assert decoder.errors == {frames.BAD_CRC: 1, frames.MALFORMED: 2} and decoder.bad == 3
    # a byte lost in the middle of a frame: that frame is dropped, the next is read
    lossy = frames.encode(frames.UP, 9, b"abcdef")
    got = decoder.feed(lossy[:4] + lossy[5:] + good)
    assert got == [(frames.ACK, 7, b"")] and decoder.bad == 4


def test_unknown_kinds_and_short_frames_are_refused():
    import binascii
    import struct

    raw = b"\x63\x00\x01"
    raw += struct.pack(">I", binascii.crc32(raw) & 0xFFFFFFFF)
    decoder = frames.Decoder()
    assert decoder.feed(b"\x00" + frames.cobs_encode(raw) + b"\x00") == []
    assert decoder.feed(b"\x00" + frames.cobs_encode(b"\x01\x00") + b"\x00\x00\x00") == []
    assert decoder.errors == {frames.UNKNOWN_KIND: 1, frames.MALFORMED: 1}


def test_an_over_long_frame_is_skipped_to_the_next_zero():
    decoder = frames.Decoder()
    assert decoder.feed(b"\x00" + b"\x07" * (frames.MAX_ENCODED + 10)) == []
    assert decoder.errors == {frames.TOO_LONG: 1}
    assert decoder.feed(b"\x07\x07\x00" + frames.encode(frames.PING, 0)) == [(frames.PING, 0, b"")]
    assert decoder.bad == 1
    raises(frames.FrameError, frames.encode, frames.UP, 1, b"x" * (frames.MAX_PAYLOAD + 1))
    raises(frames.FrameError, frames.encode, 99, 1, b"")
    raises(frames.FrameError, frames.encode, frames.UP, 0x10000, b"")


def test_messages_carry_topic_flags_and_opaque_bytes():
    topic = "thingsdk/v1/up/0123456789abcdef"
    data = bytes(range(256))
    payload = frames.message(topic, data, retain=True, qos=1)
    assert payload[:2] == bytes((3, len(topic)))
    assert frames.parse_message(payload) == (topic, data, True, 1)
    assert frames.parse_message(frames.message("t", b"", qos=0)) == ("t", b"", False, 0)
    for bad in (b"", b"\x00", b"\x00\x05abc", b"\x00\x00x", b"\x08\x01t", b"\x00\x02\xff\xfe"):
        raises(frames.FrameError, frames.parse_message, bad)
    raises(frames.FrameError, frames.message, "", b"x")
    raises(frames.FrameError, frames.message, "t" * 256, b"x")
    raises(frames.FrameError, frames.message, "t", b"x", qos=2)
