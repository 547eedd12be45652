"""Rejoining a device that lost its sequence counters: the vendor's side (docs/protocol.md,
"Resync"). Both functions run inside the Service's transaction and return (type, body) answers.

`challenge` answers a device message that the replay guard refused as replayed or too old, and
whose signature is the device's own: a resync-nonce with a fresh nonce (the one still pending,
while it lasts, so a burst of stale messages yields one nonce) and the highest sequence number
seen from the device. `rejoin` takes the device's resync: it must quote the pending nonce before
it expires, and is accepted once (the nonce is then spent); its own sequence number, above
everything seen, has already passed the replay guard, so every later message of the device must
be above it too. It answers with the device's open orders, so a device that lost its records
knows what is on its way. Both are logged at WARNING, naming the device.

The pending nonce and the count of resyncs accepted (the device's epoch) live in the `resyncs`
table of the Store's database.
"""

import logging

from thingsdk import codec
from thingsdk.core import messages as m
from thingsdk.seller.ordering import error

NONCE_TTL = 600  # seconds a resync nonce may be quoted
MAX_ORDERS = 16  # open orders told in a resync-reply (the protocol's bound)
STALE_NONCE = "stale-nonce"
log = logging.getLogger(__name__)


def _row(store, kid):
    return store.db.execute("SELECT nonce, until, epoch FROM resyncs WHERE device = ?",
                            (kid,)).fetchone()


def challenge(service, device, floor, msg, now):
    """The resync-nonce for a message of the device refused as replayed or too old; `floor` is
    the highest sequence number seen from the device."""
    store, kid = service.store, device.kid
    row = _row(store, kid)
    if row is not None and row[0] is not None and now < row[1]:
        nonce, until = row[0], row[1]
        log.info("device %s: message %s (seq %d) refused as a replay; resync nonce repeated",
                 kid.hex(), msg.id[:4].hex(), msg.seq)
    else:
        nonce, until = service.new_id(), now + NONCE_TTL
        store.db.execute("INSERT INTO resyncs (device, nonce, until) VALUES (?, ?, ?) "
                         "ON CONFLICT (device) DO UPDATE SET nonce = excluded.nonce, "
                         "until = excluded.until", (kid, nonce, until))
        service.note_kept(log, logging.WARNING, "device %s sent message %s with seq %d, at or "
                          "below the %d seen before: its counters were lost or restored from an "
                          "old copy (or someone replays its messages); sent it a resync nonce",
                          kid.hex(), msg.id[:4].hex(), msg.seq, floor)
    return [(m.RESYNC_NONCE, {"nonce": nonce, "floor": floor, "until": until})]


def rejoin(service, device, msg, now):
    """The answer to a resync: the open orders, once per nonce; else an error (counted)."""
    store, kid = service.store, device.kid
    row = _row(store, kid)
    if row is None or row[0] != msg.body["nonce"] or now >= row[1]:
        service.refusals[STALE_NONCE] = service.refusals.get(STALE_NONCE, 0) + 1
        log.warning("device %s: resync %s refused: its nonce is not the one pending, or expired",
                    kid.hex(), msg.id[:4].hex())
        return [error(STALE_NONCE, "That resync nonce was spent or has expired; a refused "
                      "message brings a new one.", msg.id)]
    epoch = row[2] + 1
    store.db.execute("UPDATE resyncs SET nonce = NULL, until = NULL, epoch = ?, at = ? "
                     "WHERE device = ?", (epoch, now, kid))
    orders = open_orders(store, kid)
    service.note_kept(log, logging.WARNING, "device %s rejoined (resync %d): its sequence numbers "
                      "start again at %d; told it of %d open order(s)", kid.hex(), epoch, msg.seq,
                      len(orders))
    return [(m.RESYNC_REPLY, {"from": msg.seq, "epoch": epoch, "orders": orders})]


def open_orders(store, kid):
    """The device's accepted or shipped orders as resync-reply entries, oldest first."""
    found = []
    for row in store.orders(kid):
        if row["status"] in ("accepted", "shipped") and len(found) < MAX_ORDERS:
            found.append({"order": row["id"], "sku": row["sku"], "qty": row["qty"],
                          "status": row["status"], "ref": codec.loads(row["receipt"])["ref"],
                          "eta": row["arrives_at"]})
    return found
