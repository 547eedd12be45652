"""Records framed for an append-only log (the audit log, on a Pi and on a board's flash): a 4-byte
big-endian length, the CRC-32 of the body, then the body. A power cut can only tear the last
frame (TORN): a writer cuts it off. A complete frame that fails its check is damage, not a power
cut: readers skip it and count it, and a writer keeps it and appends after it."""

import binascii
import struct

HEADER = 8
INTACT, TORN = "intact", "torn"


def frame(body):
    """The bytes to append for one record's body."""
    return head(len(body), binascii.crc32(body)) + body


def head(length, crc):
    """The HEADER bytes that go before a body of `length` bytes whose CRC-32 is `crc`: for a
    writer that sends the body on its own, never holding the frame whole."""
    return struct.pack(">II", length, crc & 0xFFFFFFFF)


def scan(data, loads, most):
    """(the records of log bytes `data`, decoded by `loads`; the offset after the last whole
    frame, where a writer cuts a torn tail before appending; TORN or INTACT for the tail; how
    many damaged stretches were skipped). A complete frame that fails its check, or a body over
    `most` bytes, is damage, not a power cut: it is skipped and reading goes on at the next frame
    that checks, so one bad record never hides those after it (a writer keeps the damaged bytes
    and appends after them). A frame cut short with no good frame after it is a torn tail."""
    records, pos, skipped = [], 0, 0
    while pos < len(data):
        found = _frame_at(data, pos, loads, most)
        if found is not None:
            records.append(found[0])
            pos = found[1]
            continue
        resume = pos + 1
        while resume <= len(data) - HEADER and _frame_at(data, resume, loads, most) is None:
            resume += 1
        if resume > len(data) - HEADER:  # nothing good after it
            if pos + HEADER > len(data) or _end(data, pos) > len(data):
                return records, pos, TORN, skipped
            return records, len(data), INTACT, skipped + 1
        skipped += 1
        pos = resume
    return records, pos, INTACT, skipped


def _end(data, pos):
    return pos + HEADER + struct.unpack_from(">I", data, pos)[0]


def _frame_at(data, pos, loads, most):
    """(record, end) of a frame at data[pos] that checks, else None."""
    if pos + HEADER > len(data):
        return None
    length, crc = struct.unpack_from(">II", data, pos)
    end = pos + HEADER + length
    if length > most or end > len(data):
        return None
    body = data[pos + HEADER:end]
    if binascii.crc32(body) & 0xFFFFFFFF != crc:
        return None
    try:
        return loads(body), end
    except ValueError:
        return None
