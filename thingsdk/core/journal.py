"""Records framed for an append-only log (the audit log, on a Pi and on a board's flash): a 4-byte
big-endian length, the CRC-32 of the body, then the body. A power cut can only tear the last
frame: reading stops there (TORN). A complete frame that fails its check is damage, not a power
cut (CORRUPT): reading stops there too, and a writer must not cut off what follows it."""

import binascii
import struct

HEADER = 8
INTACT, TORN, CORRUPT = "intact", "torn", "corrupt"


def frame(body):
    """The bytes to append for one record's body."""
    return struct.pack(">II", len(body), binascii.crc32(body) & 0xFFFFFFFF) + body


def scan(data, loads, most):
    """(the records of log bytes `data`, decoded by `loads`, up to the first frame that is not
    intact; the offset where those end; INTACT, TORN or CORRUPT). A body over `most` bytes is
    CORRUPT."""
    records, pos = [], 0
    while pos < len(data):
        if pos + HEADER > len(data):
            return records, pos, TORN
        length, crc = struct.unpack_from(">II", data, pos)
        end = pos + HEADER + length
        if length > most:
            return records, pos, CORRUPT
        if end > len(data):
            return records, pos, TORN
        body = data[pos + HEADER:end]
        try:
            if binascii.crc32(body) & 0xFFFFFFFF != crc:
                raise ValueError("CRC mismatch")
            records.append(loads(body))
        except ValueError:
            return records, pos, CORRUPT
        pos = end
    return records, pos, INTACT
