"""The device's audit log: an append-only file of decision records that survives power cuts.

Each record is a frame: 4-byte big-endian length, 4-byte CRC-32 of the body, then the body (one
CBOR map). Appends are written with O_APPEND and fsynced before `append` returns. A power cut can
only tear the last frame; reading stops there, and the next append first cuts the torn tail off.
A complete frame that fails its CRC is corruption, not a power cut: reading stops there too, but
appending refuses (AuditLogCorrupt) rather than cut off what follows it.
"""

import os

from thingsdk import codec
from thingsdk.core import journal

MAX_RECORD = 64 * 1024


class AuditLogCorrupt(ValueError):
    """A complete frame in the middle of the log fails its check."""


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
                _, good_end, state = self._scan()
            if state == "corrupt":
                raise AuditLogCorrupt("%s: corrupt record at byte %d" % (self.path, good_end))
            if state == "torn":
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
        """(every intact record, the log's state()), from one reading of the file."""
        records, _, state = self._scan()
        return records, state

    def state(self):
        """"intact", "torn" (a partial last frame, as a power cut leaves) or "corrupt"."""
        return self._scan()[2]

    def _scan(self):
        """(intact records, where they end, state)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return [], 0, "intact"
        return journal.scan(data, codec.loads, MAX_RECORD)
