"""The device's state folder: what the runtime must find again after a power cut or a kill.

    needs/<need id>.cbor     one lifecycle record each (thingsdk.core.lifecycle.to_state)
    outbox/<id>-<exp>.cose   the sealed bytes of every message sent, kept until it expires
    from-owner/              messages from the owner dropped in as files (approvals, mandates)
    <name>.cbor              ledger, consumables, the inbox's replay guard, device facts
    mandate.cwt              the mandate held
    seq                      the sequence checkpoint (storage.SequenceStore)
    audit.log                the audit log (audit.AuditLog)

Every file is replaced with storage.atomic_write, so a reader finds the old or the new content.
"""

import os
from pathlib import Path

from thingsdk import codec
from thingsdk.audit import AuditLog
from thingsdk.storage import SequenceStore, atomic_write, read_bytes

NEEDS, OUTBOX, FROM_OWNER = "needs", "outbox", "from-owner"


class StateError(ValueError):
    """A file of the state folder that cannot be read; the message names it."""


def read_data(path):
    """The data in the file at path (None if there is none), or StateError naming it: a damaged
    file is never taken for a missing one, which could undo what it kept (the ledger's spend)."""
    data = read_bytes(path)
    if data is None:
        return None
    try:
        return codec.loads(data)
    except ValueError as exc:
        raise StateError("%s: damaged (%s): restore it from a backup of the state folder"
                         % (path, exc)) from exc


class StateFolder:
    """One device's state folder (created if missing)."""

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = Path(path)
        for name in (NEEDS, OUTBOX, FROM_OWNER):
            (self.path / name).mkdir(parents=True, exist_ok=True)
        self.audit = AuditLog(self.path / "audit.log")
        self.sequence = SequenceStore(self.path / "seq")

    # Plain data and blobs.

    def load(self, name, default=None):
        """The data saved under name, or default."""
        data = read_data(self.path / (name + ".cbor"))
        return default if data is None else data

    def save(self, name, obj):
        atomic_write(self.path / (name + ".cbor"), codec.dumps(obj))

    def mandate(self):
        """The mandate token held, or None."""
        return read_bytes(self.path / "mandate.cwt")

    def save_mandate(self, token):
        atomic_write(self.path / "mandate.cwt", token)

    # Lifecycle records.

    def records(self):
        """Every need record kept, as plain data."""
        folder = self.path / NEEDS
        return [read_data(folder / name) for name in sorted(os.listdir(folder))
                if name.endswith(".cbor")]

    def save_record(self, record):
        atomic_write(self._record_path(record["need"]), codec.dumps(record))

    def drop_record(self, need_id):
        _unlink(self._record_path(need_id))

    def _record_path(self, need_id):
        return self.path / NEEDS / (need_id.hex() + ".cbor")

    # The outbox.

    def sealed(self, msg_id, exp):
        """The bytes sealed under msg_id (expiring at exp), or None."""
        return read_bytes(self._sealed_path(msg_id, exp))

    def keep_sealed(self, msg_id, exp, data):
        """Keep sealed bytes (before they are published) until `exp`."""
        atomic_write(self._sealed_path(msg_id, exp), data)

    def _sealed_path(self, msg_id, exp):
        return self.path / OUTBOX / ("%s-%d.cose" % (msg_id.hex(), exp))

    def prune_sealed(self, now):
        """Forget the sealed messages that have expired: nobody may accept them any more."""
        for name in os.listdir(self.path / OUTBOX):
            stem = name.rsplit(".", 1)[0]
            if name.endswith(".cose") and int(stem.rsplit("-", 1)[1]) <= now:
                _unlink(self.path / OUTBOX / name)

    # Messages from the owner, as files.

    def owner_drops(self):
        """[(path, bytes)] of the files dropped in from-owner/, oldest name first."""
        folder = self.path / FROM_OWNER
        return [(folder / name, read_bytes(folder / name)) for name in sorted(os.listdir(folder))
                if not name.startswith(".")]

    def done_with(self, path):
        """Remove a dropped-in file once its message was handled."""
        _unlink(path)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
