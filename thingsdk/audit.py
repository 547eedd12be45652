"""The device's audit log: an append-only file of decision records that survives power cuts.

Each record is a frame: 4-byte big-endian length, 4-byte CRC-32 of the body, then the body (one
CBOR map). Appends are written with O_APPEND and fsynced before `append` returns. A power cut can
only tear the last frame; reading stops there, and the next append first cuts the torn tail off.
A complete frame that fails its CRC is damage, not a power cut: readers skip it (and say how many
they skipped) and read on at the next good frame; appends keep it and go on after it, so one bad
record neither hides the decisions after it nor stops the device keeping new ones.
"""

import os

from thingsdk import codec
from thingsdk.core import journal

MAX_RECORD = 64 * 1024


class AuditLog:
    """Records appended to one file; read back in order."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._known = None  # (size, mtime) of the file as this object last left it, all intact

    def append(self, record):
        """Append one record (a CBOR-encodable map) durably.

        The file is scanned again only when it is not as this object last left it, so a device
        appending decision after decision does not re-read its whole log each time."""
        body = codec.dumps(record)
        if len(body) > MAX_RECORD:
            raise ValueError("audit record of %d bytes exceeds %d" % (len(body), MAX_RECORD))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            info = os.fstat(fd)
            if (info.st_size, info.st_mtime_ns) == self._known:
                good_end, state = info.st_size, "intact"
            else:
                _, good_end, state, _ = self._scan()
            if state == journal.TORN:
                os.ftruncate(fd, good_end)
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, journal.frame(body))
            os.fsync(fd)
            info = os.fstat(fd)
            self._known = (info.st_size, info.st_mtime_ns)
        finally:
            os.close(fd)

    def records(self):
        """Every intact record, oldest first."""
        return self._scan()[0]

    def read(self):
        """(every intact record, the tail's state(), how many damaged records were skipped), from
        one reading of the file."""
        records, _, state, damaged = self._scan()
        return records, state, damaged

    def state(self):
        """"intact", or "torn" (a partial last frame, as a power cut leaves)."""
        return self._scan()[2]

    def damaged(self):
        """How many damaged records reading skips."""
        return self._scan()[3]

    def _scan(self):
        """(intact records, where they end, the tail's state, damaged records skipped)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return [], 0, journal.INTACT, 0
        return journal.scan(data, codec.loads, MAX_RECORD)
