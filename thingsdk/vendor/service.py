"""The vendor's message handler, independent of the transport: bytes from a device in, sealed
answers out, every step recorded in the Store inside one transaction.

`handle(data, device_kid, now)` opens a device's message with an Inbox that trusts the registered
device keys: the message is parsed and its signature verified before the Store's write lock is
taken, and only the replay guard (the device's persisted state) and the answer run inside the
transaction. Refusals are counted in `refusals` (reason -> count) and not answered (but for a
device's own message refused as a replay: see resync below), and each
takes a token from the uplink's bucket in `limiter` (a RefusalLimiter): an uplink that keeps
sending what is refused has its messages dropped unread (`rate-limited`) until its bucket
refills. A message must be signed by the device whose uplink it came on (`topic-mismatch`
otherwise). A redelivered message (same id, same bytes) gets the answers
sent the first time, byte for byte. Then, by type:

- quote-request: a signed offer (recorded, so an order can be checked against it), or an error;
- order, cancel: see `thingsdk.vendor.ordering`;
- mandate: the owner-signed token, verified for this device and kept when its version is
  higher (`mandate.accept`); a refusal is answered with an error naming why;
- order-query: the order's latest news again (`_order_query`);
- support-request: the catalog's steps for the fault, with a quoted visit where it says so (the
  visit is recorded as an offer under the case id, as the device lifecycle orders it);
- status: the levels are recorded; error: logged; other types: answered `unexpected-type`.

- resync: see `thingsdk.vendor.resync`. A message refused by the replay guard as replayed or
  too old (but signed by the device) is answered there too, with a resync nonce, so a device
  that lost its counters learns it and can rejoin; a replayed resync is not.

A deregistered (revoked) device's orders are rejected (`device-deregistered`) and its other
requests answered with an error of that code.

Gaps: the `approval-above` constraint is satisfied at the vendor by the order's `appr` field,
but `appr` is only the id of the owner's approval message, which goes from the owner to the device
and never reaches the vendor, so the vendor cannot verify that the owner approved: a compromised
device can skip approvals (not budgets, items, amounts or recurrence: those the vendor re-checks).
And the vendor's ledger holds only its own orders: budgets and recurrence are enforced per vendor.

`register` and `revoke` manage the device registry. `advance(now)` simulates fulfilment: accepted
non-test orders ship halfway through their lead time and are delivered at its end.
`promote(kid, name, now)` pushes a catalog promotion.
"""

import logging
import os

from thingsdk import codec as default_codec
from thingsdk import topics
from thingsdk.core import envelope, mandate
from thingsdk.core import messages as m
from thingsdk.core.consumable import DAY
from thingsdk.core.decide import sentence
from thingsdk.core.keys import key_id
from thingsdk.core.ledger import MAX_AMOUNT
from thingsdk.core.lifecycle import VISIT_SKU
from thingsdk.core.replay import REPLAYED, TOO_OLD, ReplayGuard
from thingsdk.crypto import Ed25519Verifier
from thingsdk.vendor import ordering, resync
from thingsdk.vendor.limiter import RefusalLimiter
from thingsdk.vendor.ordering import error
from thingsdk.zones import zone_offset

TTL = 6 * 3600  # lifetime of the messages the vendor sends
CARRIER = "thingsdk-sim"
MANDATE_CACHE = 1024  # verified mandates remembered
REMIND_DAYS = 3  # deliveries are repeated on a device's status for this long after arrival
STALE = (REPLAYED, TOO_OLD)  # refusals that a device which lost its counters meets: answered
log = logging.getLogger(__name__)


def register(store, device_public_key, owner_public_key, now):
    """Register (or renew) a device and the owner who signs its mandates; returns its kid."""
    for key in (device_public_key, owner_public_key):
        Ed25519Verifier(key)  # ValueError for anything but an Ed25519 public key
    kid = key_id(device_public_key)
    with store.transaction():
        store.register(kid, bytes(device_public_key), bytes(owner_public_key), now)
    return kid


def revoke(store, kid):
    """Deregister a device: its orders are refused from now on. False if it is unknown."""
    with store.transaction():
        return store.revoke(kid)


class Service:
    """The vendor: its `store`, `catalog` and `signer` (the key devices address as `to`)."""

    def __init__(self, store, catalog, signer, codec=default_codec, ttl=TTL, new_id=None,
                 zones=zone_offset, limiter=None):
        self.store = store
        self.catalog = catalog
        self.signer = signer
        self.kid = signer.kid
        self.codec = codec
        self.ttl = ttl
        self.new_id = new_id or (lambda: os.urandom(m.ID_SIZE))
        self.zones = zones
        self.refusals = {}
        self.limiter = limiter if limiter is not None else RefusalLimiter()
        self._mandates = {}  # (token, owner key, device kid) -> Mandate verified; oldest first
        resync.prepare(store)

    def held_mandate(self, device):
        """The device's newest accepted Mandate, or None. Verified once and then remembered (for
        the last MANDATE_CACHE tokens), so handling an order verifies no mandate inside the lock."""
        if device.mandate is None:
            return None
        key = (device.mandate, device.owner_key, device.kid)
        held = self._mandates.get(key)
        if held is None:
            held = mandate.verify(device.mandate, Ed25519Verifier(device.owner_key), self.codec,
                                  device.kid, device.mandate_nbf)
            if len(self._mandates) >= MANDATE_CACHE:
                del self._mandates[next(iter(self._mandates))]
            self._mandates[key] = held
        return held

    # Messages.

    def handle(self, data, device_kid, now):
        """The (topic, bytes) answers to one message from the uplink of device_kid."""
        if not self.limiter.allows(device_kid):
            self.refusals["rate-limited"] = self.refusals.get("rate-limited", 0) + 1
            return []
        # Reading, parsing and verifying need no lock: only the replay guard and what follows do.
        public_key = self.store.public_key(device_kid)
        if public_key is None:
            return self._refuse("unknown-device", device_kid)
        own = Ed25519Verifier(public_key)
        inbox = envelope.Inbox(self.kid, lambda kid: own if kid == device_kid else
                               self._verifier(kid), self.codec)
        opened = inbox.check(data)
        if opened.status == envelope.REJECT:
            return self._refused(inbox, device_kid)
        msg = opened.message
        if msg.kid != device_kid:
            return self._refuse("topic-mismatch", device_kid)
        if msg.type == m.ORDER:  # verify the mandate an order is checked against, lock not held
            self.held_mandate(self.store.device(device_kid))
        with self.store.transaction():
            device = self.store.device(device_kid)  # devices are never deleted
            inbox.guard = ReplayGuard.from_state(device.replay) if device.replay else ReplayGuard()
            opened = inbox.admit(opened, now)
            if opened.status == envelope.REJECT:
                self._refused(inbox, device_kid)
                if opened.reason not in STALE or msg.type == m.RESYNC or device.revoked:
                    return []
                floor = inbox.guard.highest(device_kid)
                sent = [self._seal(device_kid, t, body, now, msg.id)
                        for t, body in resync.challenge(self, device, floor, msg, now)]
                return [(topics.downlink(device_kid), reply) for reply in sent]
            if opened.status == envelope.DUPLICATE:
                sent = self.store.replies(device_kid, msg.id)
            else:
                sent = [self._seal(device_kid, t, body, now, msg.id)
                        for t, body in self._answer(device, msg, now)]
                inbox.commit(opened)
                self.store.save_replay(device_kid, inbox.guard.to_state())
                self.store.save_replies(device_kid, msg.id, sent, now)
        return [(topics.downlink(device_kid), reply) for reply in sent]

    def _verifier(self, kid):
        public_key = self.store.public_key(kid)
        return Ed25519Verifier(public_key) if public_key else None

    def _refused(self, inbox, device_kid):
        for reason in inbox.rejections:
            self._refuse(reason, device_kid)
        return []

    def _refuse(self, reason, device_kid):
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        self.limiter.charge(device_kid)
        log.info("refused a message on the uplink of %s: %s", device_kid.hex(), reason)
        return []

    def _seal(self, device_kid, msg_type, body, now, reply_to=None):
        return envelope.seal(msg_type, body, self.signer, device_kid, self.store.next_seq(), now,
                             self.new_id(), self.codec, self.ttl, reply_to)

    def _answer(self, device, msg, now):
        if msg.type == m.ORDER:
            return ordering.order(self, device, msg, now)
        if msg.type == m.STATUS:
            self.store.save_levels(device.kid, msg.body["slots"], now)
            return self._reminders(device.kid, now)
        if msg.type == m.ERROR:
            log.warning("device %s reports %s: %s", device.kid.hex(), msg.body["code"],
                        msg.body["text"])
            return []
        if device.revoked:
            return [error("device-deregistered", "The owner deregistered this device.")]
        handler = _HANDLERS.get(msg.type)
        if handler is None:
            return [error("unexpected-type", "A vendor does not take %s messages." % msg.name())]
        return handler(self, device, msg, now)

    def _quote(self, device, msg, now):
        b = msg.body
        test = b.get("test", False)
        if "sku" in b:
            items = [self.catalog.skus[b["sku"]]] if b["sku"] in self.catalog.skus else []
        else:
            items = [s for s in self.catalog.skus.values()
                     if s.category == b["cat"] and (test or not s.test)]
        if not items:
            return [error("unknown-item", "We do not sell %s." % b.get("sku", b.get("cat")))]
        stocked = [s for s in items if test or s.test or
                   s.stock - self.store.held(s.sku) >= b["qty"]]
        if not stocked:
            return [error("out-of-stock", "We do not have %d in stock." % b["qty"])]
        item = min(stocked, key=lambda s: s.price[0])
        price = item.price
        promo = self.catalog.promotions.get(b.get("promo"))
        if promo and promo.sku == item.sku and now < promo.until and (not promo.max or
                                                                      b["qty"] <= promo.max):
            price = promo.price
        offer = _offer(item, self.new_id(), b["qty"], price, item.shipping,
                       now + self.catalog.offer_ttl, test or item.test, now)
        if offer["total"][0] > MAX_AMOUNT:
            return [error("too-large", "That quantity is more than one order can hold.")]
        self.store.add_offer(device.kid, offer, now)
        return [(m.OFFER, offer)]

    def _mandate(self, device, msg, now):
        owner = Ed25519Verifier(device.owner_key)
        try:
            current = self.held_mandate(device)
            new = mandate.accept(current, msg.body["cwt"], owner, self.codec, device.kid, now)
        except mandate.MandateError as exc:
            return [error(exc.code, sentence(["mandate refused: " + str(exc).split(": ", 1)[1]]))]
        if new is not current:
            self.store.save_mandate(device.kid, new)
        return []

    def _support(self, device, msg, now):
        case = msg.body["case"]
        reply = self.store.case_reply(device.kid, case)
        if reply is None:
            steps, visit = self.catalog.support(msg.body["fault"])
            reply = {"case": case, "steps": steps}
            if visit and self._quote_visit(device, case, now):
                price = self.catalog.skus[VISIT_SKU].price
                reply["visit"] = {"price": price, "until": now + self.catalog.visit_ttl}
            self.store.add_case(device.kid, msg.body, reply, now)
        return [(m.SUPPORT_REPLY, reply)]

    def _quote_visit(self, device, case, now):
        """Record a visit as an offer under the case id, as the device will order it."""
        item = self.catalog.skus[VISIT_SKU]
        visit = _offer(item, case, 1, item.price, [0, item.price[1]],
                       now + self.catalog.visit_ttl, False, now)
        return self.store.add_offer(device.kid, visit, now)

    def _order_query(self, device, msg, now):
        """A device heard nothing of an order past its expected arrival: its latest news again,
        signed anew (a receipt while it has not shipped, else the shipment, delivery or
        cancel), so a shipment or delivery lost on the way is not lost for good."""
        order_id = msg.body["order"]
        found = [row for row in self.store.orders(device.kid) if row["id"] == order_id]
        if not found:
            return [error("unknown-order", "We have no order with that id from this device.",
                          order_id)]
        row = found[0]
        log.info("device %s asked how order %s stands: %s", device.kid.hex(),
                 order_id[:4].hex(), row["status"])
        if row["status"] == "shipped":
            return [self._shipment(device.kid, order_id, row["arrives_at"])]
        if row["status"] == "delivered":
            return [_delivery(order_id, row["qty"], row["arrives_at"])]
        if row["status"] == "cancelled":
            return [(m.CANCEL, {"order": order_id, "by": "vendor", "reason": "cancelled",
                                "text": "This order was cancelled: nothing is charged."})]
        return [(m.RECEIPT, self.codec.loads(row["receipt"]))]

    # Messages the vendor starts.

    def promote(self, device_kid, name, now):
        """Push the catalog's promotion `name` to a device: [(topic, bytes)]."""
        body = self.catalog.promotion(name).body()
        with self.store.transaction():
            return [(topics.downlink(device_kid), self._seal(device_kid, m.PROMOTION, body, now))]

    def advance(self, now):
        """Simulated fulfilment up to now: shipment and delivery messages, [(topic, bytes)].
        Answers and offers older than the store keeps are forgotten on the way."""
        out = []
        with self.store.transaction():
            self.store.prune(now)
            for device, order_id, qty, arrives in self.store.due("accepted", "ships_at", now):
                self.store.set_status(device, order_id, "shipped")
                out.append((device, self._seal(device, *self._shipment(device, order_id, arrives),
                                               now)))
            for device, order_id, qty, arrives in self.store.due("shipped", "arrives_at", now):
                self.store.set_status(device, order_id, "delivered")
                out.append((device, self._seal(device, *_delivery(order_id, qty, arrives), now)))
        return [(topics.downlink(device), data) for device, data in out]

    def _shipment(self, device, order_id, arrives):
        return m.SHIPMENT, {"order": order_id, "carrier": CARRIER, "eta": arrives,
                            "track": self.store.order_ref(device, order_id)}

    def _reminders(self, device, now):
        """Fulfilment news again, for a device whose status shows it is online: shipments on
        their way, and deliveries of the last REMIND_DAYS. Shipment and delivery messages are
        nobody's answer, so a device that lost one (a broker without persistence restarting,
        say) would otherwise never learn of it; a device that has it ignores the repeat."""
        out = []
        for order_id, status, qty, arrives in self.store.news(device, now - REMIND_DAYS * DAY):
            if status == "shipped":
                out.append(self._shipment(device, order_id, arrives))
            else:
                out.append(_delivery(order_id, qty, arrives))
        return out


def _offer(item, offer_id, qty, price, ship, until, test, now):
    """An offer body for qty of a catalog item at a unit price plus shipping."""
    return {"offer": offer_id, "sku": item.sku, "title": item.title, "qty": qty, "price": price,
            "ship": ship, "total": [price[0] * qty + ship[0], price[1]], "lead": item.lead,
            "arrive": now + item.lead, "until": until, "test": test}


def _delivery(order_id, qty, arrives):
    return m.DELIVERY, {"order": order_id, "at": arrives, "qty": qty}


_HANDLERS = {m.QUOTE_REQUEST: Service._quote, m.CANCEL: ordering.cancel,
             m.MANDATE: Service._mandate, m.SUPPORT_REQUEST: Service._support,
             m.RESYNC: resync.rejoin, m.ORDER_QUERY: Service._order_query}
