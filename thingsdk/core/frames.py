"""Frames on the serial line between a board without a network and its gateway.

A frame is `kind (1 byte) | seq (2 bytes, big-endian) | payload | CRC-32 (4 bytes, big-endian)`,
the CRC (binascii.crc32, as zlib's) over everything before it. On the wire each frame is COBS
encoded and written between two zero bytes.

Why COBS: the encoded frame holds no zero byte, so a zero always means "frame boundary" and a
receiver that lost sync (line noise, a board rebooting mid-frame) is back in step at the next zero,
with no escape state to get wrong. Its overhead is fixed and small (one byte per 254, where SLIP
doubles a payload of escape bytes in the worst case), so the largest frame is known in advance.
The leading zero cuts off noise that came while the line was idle, so it spoils no frame. The
CRC-32 catches what noise does to a frame; such frames are dropped and counted, and the sender's
retry brings the data again. Payloads are at most MAX_PAYLOAD bytes.

Kinds: UP (board to gateway) and DOWN (gateway to board) carry a message (see `message`); SUB asks
for a topic filter; ACK and NAK answer an UP, DOWN or SUB by its seq (a NAK's payload says why);
PING (board) asks for a STATUS (gateway), whose payload is one byte: 1 when the gateway's broker
connection is up; PRESENCE (board) says `online` or `offline`. Seq 0 is for frames not answered.
"""

import binascii
import struct

UP, DOWN, SUB, ACK, NAK, PING, STATUS, PRESENCE = 1, 2, 3, 4, 5, 6, 7, 8
KINDS = (UP, DOWN, SUB, ACK, NAK, PING, STATUS, PRESENCE)
MAX_PAYLOAD = 2048
_HEADER, _CRC = 3, 4
_MAX_RAW = _HEADER + MAX_PAYLOAD + _CRC
MAX_ENCODED = _MAX_RAW + _MAX_RAW // 254 + 1  # COBS adds at most one byte per 254, plus one

# Decoder error counters.
BAD_CRC, TOO_LONG, MALFORMED, UNKNOWN_KIND = "bad-crc", "too-long", "malformed", "unknown-kind"


class FrameError(ValueError):
    """A frame or message that cannot be built or read."""


def cobs_encode(data):
    """COBS: data with every zero byte replaced, so the result holds none."""
    out = bytearray(1)
    code_at, code = 0, 1
    for byte in data:
        if byte:
            out.append(byte)
            code += 1
        if not byte or code == 0xFF:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data):
    """The data cobs_encode was given; FrameError if data is not a COBS encoding."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if not code or end > n:
            raise FrameError("not COBS")
        block = data[i + 1:end]
        if 0 in block:
            raise FrameError("not COBS")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode(kind, seq, payload=b""):
    """The bytes to write for one frame, delimiters included."""
    if kind not in KINDS:
        raise FrameError("unknown frame kind %r" % (kind,))
    if not 0 <= seq <= 0xFFFF:
        raise FrameError("seq out of range: %r" % (seq,))
    if len(payload) > MAX_PAYLOAD:
        raise FrameError("payload of %d bytes exceeds %d" % (len(payload), MAX_PAYLOAD))
    raw = struct.pack(">BH", kind, seq) + bytes(payload)
    raw += struct.pack(">I", binascii.crc32(raw) & 0xFFFFFFFF)
    return b"\x00" + cobs_encode(raw) + b"\x00"


class Decoder:
    """Bytes in, complete frames out: `feed(data)` returns [(kind, seq, payload)].

    Frames that fail are dropped: `errors` counts them by reason (BAD_CRC, TOO_LONG, MALFORMED,
    UNKNOWN_KIND) and `bad` in all. Empty frames (two zeros in a row) are not errors.
    """

    def __init__(self):
        self._buf = bytearray()
        self._skipping = False  # an over-long frame is being thrown away up to the next zero
        self.errors = {}
        self.bad = 0

    def feed(self, data):
        frames = []
        for byte in data:
            if byte:
                if self._skipping:
                    continue
                self._buf.append(byte)
                if len(self._buf) > MAX_ENCODED:
                    self._fail(TOO_LONG)
                    self._buf = bytearray()
                    self._skipping = True
                continue
            if self._skipping:
                self._skipping = False
            elif self._buf:
                frame = self._frame(bytes(self._buf))
                self._buf = bytearray()
                if frame:
                    frames.append(frame)
        return frames

    def _frame(self, encoded):
        try:
            raw = cobs_decode(encoded)
        except FrameError:
            return self._fail(MALFORMED)
        if len(raw) < _HEADER + _CRC:
            return self._fail(MALFORMED)
        if struct.unpack(">I", raw[-_CRC:])[0] != binascii.crc32(raw[:-_CRC]) & 0xFFFFFFFF:
            return self._fail(BAD_CRC)
        kind, seq = struct.unpack(">BH", raw[:_HEADER])
        if kind not in KINDS:
            return self._fail(UNKNOWN_KIND)
        return kind, seq, raw[_HEADER:-_CRC]

    def _fail(self, reason):
        self.errors[reason] = self.errors.get(reason, 0) + 1
        self.bad += 1
        return None


def message(topic, data, retain=False, qos=1):
    """An UP or DOWN payload: `flags | topic length | topic (UTF-8) | data`; flags are
    retain (bit 0) and QoS (bits 1-2, 0 or 1)."""
    name = topic.encode()
    if not 0 < len(name) <= 255:
        raise FrameError("a topic is 1 to 255 bytes")
    if qos not in (0, 1):
        raise FrameError("QoS is 0 or 1")
    return bytes((qos << 1 | bool(retain), len(name))) + name + bytes(data)


def parse_message(payload):
    """(topic, data, retain, qos) of an UP or DOWN payload; FrameError if malformed."""
    if len(payload) < 2:
        raise FrameError("message too short")
    flags, size = payload[0], payload[1]
    if flags & ~3 or not 0 < size <= len(payload) - 2:
        raise FrameError("bad message header")
    try:
        topic = str(payload[2:2 + size], "utf-8")
    except UnicodeError:
        raise FrameError("topic is not UTF-8")
    return topic, bytes(payload[2 + size:]), bool(flags & 1), flags >> 1
