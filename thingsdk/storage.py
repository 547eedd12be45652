"""CPython edge: crash-safe file writes and the persisted sequence checkpoint."""

import binascii
import os
import re
import tempfile

from thingsdk.core.replay import MAX_SEQ, CheckpointError, StoredSequence

__all__ = ["CheckpointError", "SequenceStore", "atomic_write", "read_bytes"]


def atomic_write(path, data: bytes, mode=0o600):
    """Replace path with data: readers see the old or the new content, never part of it.

    The temporary file gets `mode` before any data is written, so secrets are never exposed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with open(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    folder_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)


def read_bytes(path, default=None):
    """The content of path, or default if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return default


_CHECKPOINT = re.compile(rb"(0|[1-9][0-9]{0,15}) ([0-9a-f]{8})\n")


def _encode_checkpoint(checkpoint):
    digits = b"%d" % checkpoint
    return b"%s %08x\n" % (digits, binascii.crc32(digits))


def _decode_checkpoint(content):
    match = _CHECKPOINT.fullmatch(content)
    if not match or int(match[2], 16) != binascii.crc32(match[1]):
        raise ValueError("not '<checkpoint> <crc32 hex>\\n' with a matching CRC")
    checkpoint = int(match[1])
    if checkpoint > MAX_SEQ + 1:
        raise ValueError("checkpoint %d is beyond 2**53" % checkpoint)
    return checkpoint


class SequenceStore(StoredSequence):
    """This sender's sequence numbers, with the reservation checkpoint kept in a file.

    A missing file starts at 0; a corrupt or unreadable one raises CheckpointError rather than
    restarting. One process owns the file at a time.
    """

    def __init__(self, path, block=64):
        self.path = os.fspath(path)
        super().__init__(block)

    def load(self):
        try:
            content = read_bytes(self.path)
            return 0 if content is None else _decode_checkpoint(content)
        except (OSError, ValueError) as exc:
            raise CheckpointError("sequence checkpoint %s: %s" % (self.path, exc)) from exc

    def save(self, checkpoint):
        atomic_write(self.path, _encode_checkpoint(checkpoint))
