"""The board's state on flash: the same store as thingsdk.device.state.StateFolder, for MicroPython.

    needs/<need id>.cbor     one lifecycle record each
    outbox/<id>-<exp>.cose   the sealed bytes of every message sent, kept until it expires
    from-owner/              messages from the owner dropped in as files (read as they are)
    <name>.cbor              ledger, consumables, the inbox's replay guard, device facts
    mandate.cwt              the mandate held
    seq                      the sequence checkpoint
    audit.log, audit.old     the audit log, in two halves so it never outgrows its bound

Every file this store writes ends with an 8-byte trailer (big-endian body length, CRC-32), and is
replaced by writing `<file>.tmp`, syncing, then renaming it over the file (removing the file first
where the file system will not rename onto one, as FAT). A file that is missing while a complete
`.tmp` is there (a power cut between the remove and the rename) is recovered; a torn `.tmp` is
dropped. A corrupt file reads as missing and is counted in `corrupt`, except the sequence
checkpoint: that raises CheckpointError, as numbers must never start over.

Missing files are told apart by os.stat, not errno: the WebAssembly port's errors carry
Emscripten's numbers, which its errno module does not.
"""

import binascii
import os
import struct

from thingsdk.core import cbor, journal
from thingsdk.core.replay import CheckpointError, StoredSequence

NEEDS, OUTBOX, FROM_OWNER = "needs", "outbox", "from-owner"
_FRAME = ">II"  # length, CRC-32: the trailer of a file (an audit record's header is journal's)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def read(path):
    """The bytes of path, or None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        if _exists(path):
            raise
        return None


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        if _exists(path):
            raise


def _sync():
    sync = getattr(os, "sync", None)
    if sync:
        sync()


def _put(path, data):
    """Replace path with data: a reader finds the old or the new content, never part of it."""
    _replace(path, lambda f: f.write(data))


def _put_sealed(path, body):
    """Replace path with body and its trailer, written one after the other."""
    _replace(path, _sealing(lambda write: write(body)))


def _put_encoded(path, obj):
    """Replace path with obj's CBOR and its trailer, written as it is encoded: the encoding is
    never held whole, so saving a record asks a fragmented heap for no large block."""
    _replace(path, _sealing(lambda write: cbor.dump(obj, write)))


def _sealing(body):
    """A fill for _replace: `body(write)` writes the content piece by piece, then the trailer
    (length, CRC-32) of what it wrote follows."""
    def fill(f):
        sums = [0, 0]
        body(_summing(sums, f.write))
        f.write(struct.pack(_FRAME, sums[0], sums[1] & 0xFFFFFFFF))

    return fill


def _summing(sums, write):
    """write(), adding the length and the CRC-32 of each piece to sums ([length, CRC-32])."""
    def add(piece):
        write(piece)
        sums[0] += len(piece)
        sums[1] = binascii.crc32(piece, sums[1])

    return add


def _replace(path, fill):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        fill(f)
        f.flush()
    _sync()
    _rename(tmp, path)
    _sync()


def _rename(src, dst):
    try:
        os.rename(src, dst)
    except OSError:  # FAT refuses to rename onto an existing file
        _remove(dst)
        os.rename(src, dst)


def _unseal(data):
    """The body of sealed data, or None if it is torn or corrupt."""
    if len(data) < 8:
        return None
    body = data[:-8]
    if struct.unpack(_FRAME, data[-8:]) != (len(body), binascii.crc32(body) & 0xFFFFFFFF):
        return None
    return body


def _get(path):
    """(body, corrupt) of the sealed file at path; body is None when missing or corrupt."""
    data = read(path)
    if data is None:
        tmp = path + ".tmp"
        data = read(tmp)
        if data is None:
            return None, False
        if _unseal(data) is None:
            _remove(tmp)  # torn while being written: the write never happened
            return None, False
        os.rename(tmp, path)
    body = _unseal(data)
    return body, body is None


def _drop(path):
    _remove(path)
    _remove(path + ".tmp")  # or a stale copy would come back as the file


def _mkdirs(path):
    at = 0
    while at >= 0:
        at = path.find("/", at + 1)
        folder = path if at < 0 else path[:at]
        if not _exists(folder):
            os.mkdir(folder)


def _hex(data):
    return binascii.hexlify(data).decode()


class FlashState:
    """One device's state under `root` (created if missing)."""

    def __init__(self, root="/state", block=64, audit_limit=16384):
        self.root = root.rstrip("/")
        for name in (NEEDS, OUTBOX, FROM_OWNER):
            _mkdirs(self._path(name))
        self.corrupt = 0
        self.audit = AuditLog(self._path("audit.log"), audit_limit)
        self.sequence = Sequence(self._path("seq"), block)

    def _path(self, *names):
        return "/".join((self.root,) + names)

    def _body(self, path):
        body, corrupt = _get(path)
        self.corrupt += corrupt
        return body

    # Plain data and blobs.

    def load(self, name, default=None):
        """The data saved under name, or default (also when the file is corrupt)."""
        body = self._body(self._path(name + ".cbor"))
        if body is not None:
            try:
                return cbor.loads(body)
            except ValueError:
                self.corrupt += 1
        return default

    def save(self, name, obj):
        _put_encoded(self._path(name + ".cbor"), obj)

    def mandate(self):
        """The mandate token held, or None."""
        return self._body(self._path("mandate.cwt"))

    def save_mandate(self, token):
        _put_sealed(self._path("mandate.cwt"), token)

    # Lifecycle records.

    def records(self):
        """Every need record kept, as plain data, in file name order; corrupt ones are skipped."""
        names = set()
        for name in os.listdir(self._path(NEEDS)):
            name = name[:-4] if name.endswith(".tmp") else name
            if name.endswith(".cbor"):
                names.add(name)
        found = []
        for name in sorted(names):
            body = self._body(self._path(NEEDS, name))
            if body is not None:
                try:
                    found.append(cbor.loads(body))
                except ValueError:
                    self.corrupt += 1
        return found

    def save_record(self, record):
        _put_encoded(self._record_path(record["need"]), record)

    def drop_record(self, need_id):
        _drop(self._record_path(need_id))

    def _record_path(self, need_id):
        return self._path(NEEDS, _hex(need_id) + ".cbor")

    # The outbox.

    def sealed(self, msg_id, exp):
        """The bytes sealed under msg_id (expiring at exp), or None."""
        return self._body(self._sealed_path(msg_id, exp))

    def keep_sealed(self, msg_id, exp, data):
        """Keep sealed bytes (before they are published) until `exp`."""
        _put_sealed(self._sealed_path(msg_id, exp), data)

    def _sealed_path(self, msg_id, exp):
        return self._path(OUTBOX, "%s-%d.cose" % (_hex(msg_id), exp))

    def prune_sealed(self, now):
        """Forget the sealed messages that have expired: nobody may accept them any more."""
        for name in os.listdir(self._path(OUTBOX)):
            stem = name[:-4] if name.endswith(".tmp") else name
            if stem.endswith(".cose") and int(stem[:-5].rsplit("-", 1)[1]) <= now:
                _remove(self._path(OUTBOX, name))

    # Messages from the owner, as files.

    def owner_drops(self):
        """[(path, bytes)] of the files dropped in from-owner/, oldest name first."""
        folder = self._path(FROM_OWNER)
        return [(folder + "/" + name, read(folder + "/" + name))
                for name in sorted(os.listdir(folder)) if not name.startswith(".")]

    def done_with(self, path):
        """Remove a dropped-in file once its message was handled."""
        _remove(path)


class Sequence(StoredSequence):
    """This sender's sequence numbers; the reservation checkpoint is written once per `block`."""

    def __init__(self, path, block=64):
        self.path = path
        super().__init__(block)

    def load(self):
        try:
            body, corrupt = _get(self.path)
            if corrupt:
                raise ValueError("torn or corrupt")
            return 0 if body is None else cbor.loads(body)
        except (OSError, ValueError) as exc:
            raise CheckpointError("sequence checkpoint %s: %s" % (self.path, exc))

    def save(self, checkpoint):
        _put_encoded(self.path, checkpoint)


class AuditLog:
    """Records appended to `path` (framed as thingsdk.audit's: length, CRC-32, CBOR body).

    When a record would take `path` past limit/2 bytes, `path` becomes `<path without .log>.old`
    (replacing the older half) and a new file starts: the log keeps about the last `limit` bytes.
    A torn last record (a power cut) is cut off by the next append; a damaged one is skipped by
    readers (counted in `damaged`) and kept by appends, which go on after it.
    """

    def __init__(self, path, limit=16384):
        self.path = path
        self.old = (path[:-4] if path.endswith(".log") else path) + ".old"
        self.half = limit // 2
        self._end = None  # the size of `path` as this object last left it
        self.damaged = 0  # damaged records skipped by the last reading

    def append(self, record):
        """Append one record (a CBOR-encodable map) and sync it to flash. The record is encoded
        twice, for its frame's head (length, CRC-32) and then into the file piece by piece: a
        board's fragmented heap is never asked for the encoding whole."""
        sums = [0, 0]
        cbor.dump(record, _summing(sums, len))  # counted only
        size = journal.HEADER + sums[0]
        if size > self.half:
            raise ValueError("audit record of %d bytes exceeds %d" % (sums[0], self.half - 8))
        try:
            end = os.stat(self.path)[6]
        except OSError:
            end = None
        if end is None or end != self._end:
            data = self._data()
            _, end, state, _ = self._scan(data)
            if state == journal.TORN:
                _put(self.path, data[:end])
        if end and end + size > self.half:
            _rename(self.path, self.old)
            end = 0
        with open(self.path, "ab") as f:
            f.write(journal.head(sums[0], sums[1]))
            cbor.dump(record, f.write)
            f.flush()
        _sync()
        self._end = end + size

    def records(self):
        """Every intact record, oldest first; damaged ones are skipped and counted."""
        old = read(self.old)
        found, self.damaged = [], 0
        for data in (old or b"", self._data()):
            records, _, _, skipped = self._scan(data)
            found += records
            self.damaged += skipped
        return found

    def _scan(self, data):
        return journal.scan(data, cbor.loads, self.half - journal.HEADER)

    def _data(self):
        data = read(self.path)
        if data is None and _exists(self.path + ".tmp"):
            os.rename(self.path + ".tmp", self.path)  # cut off a torn tail; the cut was complete
            data = read(self.path)
        return data or b""
