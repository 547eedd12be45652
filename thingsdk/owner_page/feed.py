"""The owner's side of the broker for the owner's page: what its devices and their vendor say,
verified, kept, and the owner's signed answers to approval requests.

The Feed reads the broker through the owner's link (thingsdk.owner_wire.OwnerLink: its
certificate's CN as client id, a persistent session, QoS 1), for each of its devices the uplink,
downlink, presence and to-owner topics. Every message is opened before it is shown as verified: on
to-owner by the link (addressed to the owner, signed by the device), on the uplink and downlink by
an observer inbox (thingsdk.core.envelope: addressed to the vendor or the device, signed by the
device or the vendor); each has its own replay guard. A message that does not open is counted by
reason and kept as an unverified entry; nothing a peer sends raises. What was received is kept in
a small SQLite file, so a restart shows the history again. `answer` signs the owner's answer with
its key (the key stays in this process), keeps it and sends it on the device's from-owner topic;
`start` sends kept answers again while their requests stand.

`on_change(callback)` registers a function called (in the MQTT thread) after every change.
"""

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from thingsdk import codec, topics
from thingsdk.core import envelope, messages, replay, schemas
from thingsdk.core.keys import key_id
from thingsdk.crypto import Ed25519Verifier
from thingsdk.owner import answer, new_id
from thingsdk.owner_wire import Heard, OwnerLink

# Kept in memory per device (the file keeps all): the latest statuses, for the plots, apart from
# the other messages, so that a device's frequent statuses never push out its orders and requests.
STATUSES, MESSAGES = 200, 2000
DEREGISTERED = "device-deregistered"


@dataclass
class Entry:
    """One message seen: when, on which topic kind, verified or not (then `reason`), and the
    opened message if it opened."""
    at: int
    kind: str
    verified: bool
    message: "messages.Message | None" = None
    reason: str = ""
    data: bytes = b""


@dataclass
class Device:
    """What the page knows of one device."""
    kid: bytes
    presence: str = "unknown"
    entries: list = field(default_factory=list)  # every message but verified statuses
    statuses: list = field(default_factory=list)  # the verified statuses
    answered: dict = field(default_factory=dict)  # request id -> "approve" or "decline"
    rejected: dict = field(default_factory=dict)  # reason -> count

    def verified(self, msg_type=None):
        return [e for e in self.entries
                if e.verified and (msg_type is None or e.message.type == msg_type)]

    @property
    def revoked(self):
        return any(e.message.body.get("code") == DEREGISTERED
                   for e in self.verified(messages.ERROR))

    def pending(self, now):
        """The approval requests neither answered nor lapsed."""
        return [e.message for e in self.verified(messages.APPROVAL_REQUEST)
                if e.message.body["req"] not in self.answered and now < e.message.body["until"]]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (n INTEGER PRIMARY KEY, kid BLOB, at INTEGER, kind TEXT,
                                    verified INTEGER, reason TEXT, data BLOB);
CREATE TABLE IF NOT EXISTS answers (req BLOB PRIMARY KEY, kid BLOB, decision TEXT, at INTEGER,
                                    until INTEGER, data BLOB);
CREATE TABLE IF NOT EXISTS presence (kid BLOB PRIMARY KEY, state TEXT);
"""


class Feed:
    """The owner's view of its devices, kept up from the broker by `link` (not started: `start`):
    an OwnerLink for `devices` (their public keys) that reads the topic kinds in ALSO too; its
    callbacks become the Feed's. `vendor`: the vendor's public key; `db`: the history file;
    `next_seq()`: the owner's next message sequence number."""

    ALSO = (topics.UP, topics.DOWN, topics.PRESENCE)

    def __init__(self, link: OwnerLink, devices: list[bytes], vendor: bytes, db: Path,
                 next_seq: Callable[[], int]):
        self.link = link
        self.owner = link.owner
        self.vendor_kid = key_id(vendor)
        self.clock = link.clock
        self._next_seq = next_seq
        self._lock = threading.Lock()
        self._listeners = []
        self.devices = {key_id(pub): Device(key_id(pub)) for pub in devices}
        missing = set(self.ALSO) - set(link.kinds)
        if missing or set(self.devices) - set(link.devices):
            raise ValueError("the owner's link must read the topics %s of every device" % (
                ", ".join(sorted(missing or self.ALSO))))
        self._inboxes = {}
        for pub in devices:
            kid = key_id(pub)
            for kind, keys in ((topics.UP, {kid: Ed25519Verifier(pub)}),
                               (topics.DOWN, {self.vendor_kid: Ed25519Verifier(vendor)})):
                guard = replay.ReplayGuard(max_lifetime=schemas.MAX_LIFETIME)
                self._inboxes[kind, kid] = envelope.Inbox(None, keys, codec, guard, observer=True)
        self.foreign = 0  # messages on topics of no device of this owner
        try:
            self._db = sqlite3.connect(str(db), check_same_thread=False)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ValueError("%s: %s" % (db, exc))
        self._load()
        link.on_heard, link.on_other = self._heard, self._other
        self._started = False

    # ---- the broker -------------------------------------------------------------------------

    def start(self):
        """Start the owner's link (it connects in the background) and send again every answer
        kept but perhaps never sent (the page stopped with it queued), the same bytes, while its
        request stands: the device takes a second copy as a duplicate."""
        self.link.start()
        self._started = True
        for kid, data in self._db.execute("SELECT kid, data FROM answers WHERE until > ?",
                                          (int(self.clock()),)).fetchall():
            if bytes(kid) in self.devices:
                self.link.send(bytes(kid), bytes(data))
        return self

    @property
    def connected(self):
        return self._started and self.link.transport.connected

    def close(self):
        if self._started:
            self.link.close()
        self._db.close()

    def on_change(self, callback):
        """Call callback() after every change, until the returned function is called."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _changed(self):
        for callback in list(self._listeners):
            callback()

    # ---- receiving --------------------------------------------------------------------------

    def receive(self, topic: str, payload: bytes) -> None:
        """One message from the broker, as the link hands it on: verified, kept and shown; bad
        input is counted."""
        self.link.deliver(topic, payload)

    def _heard(self, heard: Heard) -> None:
        """A message on a device's to-owner topic, opened by the link."""
        if heard.refused == envelope.DUPLICATE:
            return
        with self._lock:
            device = self.devices.get(heard.device)
            if device is None:
                self.foreign += 1
                return
            self._record(device, topics.TO_OWNER, heard.message, heard.refused or "",
                         heard.data)
        self._changed()

    def _other(self, topic: str, payload: bytes) -> None:
        try:
            kind, kid = topics.parse(topic)
        except ValueError:
            kind, kid = None, b""
        with self._lock:
            device = self.devices.get(kid)
            if device is None or (kind != topics.PRESENCE and (kind, kid) not in self._inboxes):
                self.foreign += 1
                return
            if kind == topics.PRESENCE:
                device.presence = {topics.ONLINE: "online", topics.OFFLINE: "offline"}.get(
                    payload, "unknown")
                self._db.execute("INSERT OR REPLACE INTO presence VALUES (?, ?)",
                                 (kid, device.presence))
                self._db.commit()
            else:
                self._open(device, kind, payload)
        self._changed()

    def _open(self, device, kind, payload):
        inbox = self._inboxes[kind, device.kid]
        opened = inbox.open(payload, int(self.clock()))
        if opened.status == envelope.DUPLICATE:
            return
        verified = opened.status == envelope.ACCEPT
        if verified:
            inbox.commit(opened)
        self._record(device, kind, opened.message if verified else None,
                     "" if verified else opened.reason, payload)

    def _record(self, device, kind, message, reason, payload):
        """Keep one message opened (message set) or refused (reason set), in memory and file."""
        now = int(self.clock())
        if message is None:
            device.rejected[reason] = device.rejected.get(reason, 0) + 1
        entry = Entry(now, kind, message is not None, message, reason, payload)
        self._keep(device, entry)
        self._db.execute("INSERT INTO entries (kid, at, kind, verified, reason, data) VALUES "
                         "(?, ?, ?, ?, ?, ?)", (device.kid, now, kind, entry.verified, reason,
                                                payload))
        self._db.commit()

    @staticmethod
    def _keep(device, entry):
        if entry.verified and entry.message.type == messages.STATUS:
            device.statuses.append(entry)
            del device.statuses[:-STATUSES]
        else:
            device.entries.append(entry)
            del device.entries[:-MESSAGES]

    def _load(self):
        """The history kept in the file: verified messages were checked when they came."""
        for kid, at, kind, verified, reason, data in self._db.execute(
                "SELECT kid, at, kind, verified, reason, data FROM entries ORDER BY n"):
            device = self.devices.get(bytes(kid))
            if device is None:
                continue
            message = None
            if verified:
                message = self._check(device.kid, kind, bytes(data))
                if message is None:  # the keys given changed since
                    continue
            else:
                device.rejected[reason] = device.rejected.get(reason, 0) + 1
            self._keep(device, Entry(at, kind, bool(verified), message, reason, bytes(data)))
        for req, kid, decision in self._db.execute("SELECT req, kid, decision FROM answers"):
            if bytes(kid) in self.devices:
                self.devices[bytes(kid)].answered[bytes(req)] = decision
        for kid, state in self._db.execute("SELECT kid, state FROM presence"):
            if bytes(kid) in self.devices:
                self.devices[bytes(kid)].presence = state

    def _check(self, kid, kind, data):
        if kind == topics.TO_OWNER:
            return self.link.check(kid, data)
        if (kind, kid) not in self._inboxes:
            return None
        opened = self._inboxes[kind, kid].check(data)
        return None if opened.status == envelope.REJECT else opened.message

    # ---- answering --------------------------------------------------------------------------

    def answer(self, kid: bytes, req: bytes, decision: str) -> bytes:
        """Sign the owner's answer to a pending approval request and publish it to the device.
        Raises ValueError for a request that is not pending (unknown, answered or lapsed)."""
        if decision not in ("approve", "decline"):
            raise ValueError("the answer is approve or decline")
        if not self._started:
            raise ValueError("not connected to the broker yet")
        now = int(self.clock())
        with self._lock:
            device = self.devices.get(kid)
            pending = [m for m in device.pending(now) if m.body["req"] == req] if device else []
            if device is None or not pending:
                raise ValueError("no pending approval request %s" % req.hex())
            data = answer(pending[0], decision, self.owner, self._next_seq(), now, new_id())
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                             (req, kid, decision, now, pending[0].body["until"], data))
            self._db.commit()  # kept, then sent: start() sends it again after a stop
            device.answered[req] = decision
            self.link.send(kid, data)
        self._changed()
        return data

    def snapshot(self) -> "tuple[dict[bytes, Device], bool, int]":
        """A consistent view to render: (devices by kid, connected, foreign count), copied."""
        with self._lock:
            copies = {kid: Device(d.kid, d.presence, list(d.entries), list(d.statuses),
                                  dict(d.answered), dict(d.rejected))
                      for kid, d in self.devices.items()}
            return copies, self.connected, self.foreign
