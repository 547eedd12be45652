"""The vendor's message handler, independent of the transport: bytes from a device in, sealed
answers out, every step recorded in the Store inside one transaction.

`handle(data, device_kid, now)` opens a device's message with an Inbox that trusts the registered
device keys: the message is parsed and its signature verified before the Store's write lock is
taken, and only the replay guard (the device's persisted state) and the answer run inside the
transaction. `handle_batch` does the same for many messages in one transaction (one commit), each
in its own savepoint. An answer is numbered, checked and encoded inside the transaction and kept
so; it is signed after the commit, with the write lock released (a signature is the costliest
step of an answer, and Ed25519 signs the same payload to the same bytes every time). Device
keys, replay guards and verified mandates are remembered between messages, a guard or mandate
used only while the device's row still holds what it was made from.
Refusals are counted in `refusals` (reason -> count) and not answered (but for a device's own
message refused as a replay: see resync below), and each
takes a token from the uplink's bucket in `limiter` (a RefusalLimiter): an uplink that keeps
sending what is refused has its messages dropped unread (`rate-limited`) until its bucket
refills. A message must be signed by the device whose uplink it came on (`topic-mismatch`
otherwise). Each signed message then takes a token from its device's bucket in `rates` (a
DeviceLimiter): one over the device's rate is refused `rate-limited`, answered with an error of
that code at most once per `rates.answer_every` seconds and otherwise dropped, and neither acted
on nor remembered, so the device may send it again later; these refusals are counted and logged
once per RATE_LOG_EVERY seconds at most. A redelivered message (same id, same bytes) gets the answers
sent the first time, byte for byte. Then, by type:

- quote-request: a signed offer (recorded, so an order can be checked against it), or an error;
  one that names an offer is a counter-proposal: see `thingsdk.seller.counter_offers`;
- order, cancel: see `thingsdk.seller.ordering`;
- mandate: the owner-signed token, verified for this device before the lock is taken (again
  under it if the device changed owner meanwhile) and kept when its version is higher
  (`mandate.held_after`); a refusal is answered with an error naming why;
- order-query: the order's latest news again (`_order_query`);
- support-request: the catalog's steps for the fault, with a quoted visit where it says so (the
  visit is recorded as an offer under the case id, as the device lifecycle orders it);
- status: the levels are recorded; error: logged; other types: answered `unexpected-type`.

- resync: see `thingsdk.seller.resync`. A message refused by the replay guard as replayed or
  too old (but signed by the device) is answered there too, with a resync nonce, so a device
  that lost its counters learns it and can rejoin; a replayed resync is not.

A device's own message refused as from the future is answered with an error `from-future` that
says by how much the device's clock is ahead, signed with the vendor's time: skew is said, not
only refused.

A deregistered (revoked) device's orders are rejected (`device-deregistered`) and its other
requests answered with an error of that code.

The `approval-above` constraint is met at the vendor only by the owner's approval message the
order carries (`appr`), verified with the owner's key and naming this device, this vendor, the
offer (id and digest) and its total, within its lifetime (`thingsdk.seller.ordering`): a
compromised device cannot claim an approval it never got. Gap: the vendor's ledger holds only its
own orders, so budgets and recurrence are enforced per vendor.

`register` and `revoke` manage the device registry. `advance(now)` simulates fulfilment: accepted
non-test orders ship halfway through their lead time and are delivered at its end.
`promote(kid, name, now)` pushes a catalog promotion.
"""

import logging
import os
import time

from thingsdk import codec as default_codec
from thingsdk import topics
from thingsdk.core import cose, envelope, mandate, restore
from thingsdk.core import messages as m
from thingsdk.core.consumable import DAY
from thingsdk.core.decide import sentence
from thingsdk.core.keys import key_id
from thingsdk.core.ledger import MAX_AMOUNT
from thingsdk.core.lifecycle import VISIT_SKU
from thingsdk.core.replay import FROM_FUTURE, REPLAYED, TOO_OLD, ReplayGuard
from thingsdk.crypto import Ed25519Verifier
from thingsdk.seller import counter_offers, ordering, resync
from thingsdk.seller.limiter import DeviceLimiter, RefusalLimiter
from thingsdk.seller.ordering import error
from thingsdk.zones import zone_offset

TTL = 6 * 3600  # lifetime of the messages the vendor sends
CARRIER = "thingsdk-sim"
MANDATE_CACHE = 65536  # devices whose verified mandate is remembered
KEY_CACHE = 65536  # device keys remembered
RATE_LOG_EVERY = 10.0  # seconds between reports of rate-limited messages
OVER_RATE = "over-rate"  # the status of a checked message its device sent over its rate
# An inbox checks a message before the lock is taken with no replay guard: the device's own is
# set inside the transaction (Service._act), and admitting with this one fails loudly.
_GUARD_SET_LATER = object()
REMIND_DAYS = 3  # deliveries are repeated on a device's status for this long after arrival
STALE = (REPLAYED, TOO_OLD)  # refusals that a device which lost its counters meets: answered
# The first byte of a COSE_Sign1 (tag 18): the answers a vendor kept signed, before it signed
# them after the commit, begin with it; an encoded payload, a map, never does.
_SIGNED = 0xD2
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
                 zones=zone_offset, limiter=None, rates=None):
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
        self.rates = rates if rates is not None else DeviceLimiter()
        self._keys = {}  # device kid -> its key's verifier; oldest first
        self._guards = {}  # device kid -> (replay state bytes saved, its ReplayGuard)
        self._unsaid, self._say_at = 0, 0.0  # rate-limited refusals not yet logged; when next
        self._mandates = {}  # device kid -> (token, owner key, its Mandate); oldest first
        self._notes = None  # in handle_batch: the lines note_kept holds until the commit

    def held_mandate(self, device):
        """The device's newest accepted Mandate, or None. Verified once and then remembered per
        device (for the last MANDATE_CACHE devices; those accepted here are remembered as they
        are kept), and taken from memory only while the device's row still holds that very token
        under that very owner key: a new mandate, or a new owner, is verified anew."""
        if device.mandate is None:
            return None
        held = self._mandates.get(device.kid)
        if held is not None and held[0] == device.mandate and held[1] == device.owner_key:
            return held[2]
        verified = mandate.verify(device.mandate, Ed25519Verifier(device.owner_key), self.codec,
                                  device.kid, device.mandate_nbf)
        self._remember_mandate(device, verified)
        return verified

    def _remember_mandate(self, device, verified):
        self._mandates.pop(device.kid, None)
        if len(self._mandates) >= MANDATE_CACHE:
            del self._mandates[next(iter(self._mandates))]
        self._mandates[device.kid] = (verified.token, device.owner_key, verified)

    # Messages.

    def handle(self, data, device_kid, now):
        """The (topic, bytes) answers to one message from the uplink of device_kid."""
        return self.handle_batch([(data, device_kid)], now)[0]

    def handle_batch(self, uplinks, now):
        """The answers to each (data, device kid) in order, as `handle` gives them, from one
        transaction (one commit). Every message is read, parsed and verified before the write lock
        is taken; inside it each runs in its own savepoint, so one that fails is logged and
        answered with nothing while the others are kept. Messages of one device are acted on in
        the order given. The answers are signed once the transaction is committed, and what the
        work did is logged then (note_kept)."""
        answers = [[] for _ in uplinks]
        checked = [(i, kid, self._check(data, kid, now)) for i, (data, kid) in enumerate(uplinks)]
        checked = [(i, kid, found) for i, kid, found in checked if found]
        if not checked:
            return answers
        self._notes = []
        try:
            with self.store.transaction():
                for i, kid, (inbox, opened, ready) in checked:
                    noted = len(self._notes)
                    try:
                        with self.store.savepoint():
                            kept = self._act(kid, inbox, opened, ready, now)
                        answers[i] = kept  # once kept: a write may be refused when it ends
                    except Exception:  # rolled back to the savepoint; the batch goes on
                        del self._notes[noted:]
                        log.exception("vendor work failed on a message from device %s",
                                      kid.hex())
            notes = self._notes
        finally:
            self._notes = None
        for logger, level, text, args in notes:
            logger.log(level, text, *args)
        return [[(topics.downlink(kid), self._signed(reply)) for reply in kept]
                for kept, (_, kid) in zip(answers, uplinks)]

    def note_kept(self, logger, level, text, *args):
        """Have `logger` log a line about what the work under the transaction did (an order
        accepted, a device rejoined) once that work is committed: work rolled back, to its
        savepoint or with the whole transaction, says nothing. Outside handle_batch, at once."""
        if self._notes is None:
            logger.log(level, text, *args)
        else:
            self._notes.append((logger, level, text, args))

    def _check(self, data, device_kid, now):
        """(inbox, opened, ready) for a message that passed every check needing no lock, or None
        if it was refused (counted). A message that exceeds its device's rate is given as opened
        with status OVER_RATE, to be answered `rate-limited` (see DeviceLimiter), or refused
        unanswered. `ready` is work done here for the work under the lock: a mandate message's
        token verified (_verified_token), else None."""
        if not self.limiter.allows(device_kid):
            self.refusals["rate-limited"] = self.refusals.get("rate-limited", 0) + 1
            return None
        own = self._device_key(device_kid)
        if own is None:
            return self._refuse("unknown-device", device_kid)
        inbox = envelope.Inbox(self.kid, lambda kid: own if kid == device_kid else
                               self._verifier(kid), self.codec, _GUARD_SET_LATER)
        opened = inbox.check(data)
        if opened.status == envelope.REJECT:
            return self._refused(inbox, device_kid)
        msg = opened.message
        if msg.kid != device_kid:
            return self._refuse("topic-mismatch", device_kid)
        if not self.rates.take(device_kid):
            self._rate_limited(device_kid)
            if not self.rates.answer_due(device_kid):
                return None
            opened.status = OVER_RATE
            return inbox, opened, None
        if msg.type == m.ORDER and device_kid not in self._mandates:
            # verify the mandate an order is checked against, lock not held (one verified before
            # is checked against the device's row inside the lock, and verified there if replaced)
            self.held_mandate(self.store.device(device_kid))
        if msg.type == m.MANDATE:
            owner_key = self.store.device(device_kid).owner_key
            return inbox, opened, self._verified_token(owner_key, msg.body["cwt"], device_kid, now)
        return inbox, opened, None

    def _verified_token(self, owner_key, token, device_kid, now):
        """(owner_key, the Mandate in a mandate message's token or the MandateError it raised):
        verified with the owner key the device's row holds, lock not held, as the order's mandate
        is; _mandate uses it under the lock while the row still holds that key."""
        try:
            return owner_key, mandate.verify(token, Ed25519Verifier(owner_key), self.codec,
                                             device_kid, now)
        except mandate.MandateError as exc:
            return owner_key, exc

    def _act(self, device_kid, inbox, opened, ready, now):
        """The answers to a checked message (and what _check made `ready` for it), inside the
        transaction, as _draft makes them (to be signed after the commit): the replay guard's
        verdict, then the recorded answers of a redelivery or the new ones, kept."""
        msg = opened.message
        if opened.status == OVER_RATE:  # answered, neither acted on nor kept (sent again later)
            ref = msg.body.get("order") if msg.type in (m.ORDER, m.CANCEL) else None
            code, body = error("rate-limited", "Too many messages from this device; send again "
                               "in a while.", ref)
            return [self._draft(device_kid, code, body, now, msg.id)]
        device = self.store.device(device_kid)  # devices are never deleted
        inbox.guard = self._replay_guard(device)
        opened = inbox.admit(opened, now)
        if opened.status == envelope.REJECT:
            self._refused(inbox, device_kid)
            if opened.reason == FROM_FUTURE and not device.revoked:
                return [self._draft(device_kid, *_clock_ahead(msg, now), now, msg.id)]
            if opened.reason not in STALE or msg.type == m.RESYNC or device.revoked:
                return []
            floor = inbox.guard.highest(device_kid)  # a device that lost its counters: resync
            return [self._draft(device_kid, t, body, now, msg.id)
                    for t, body in resync.challenge(self, device, floor, msg, now)]
        if opened.status == envelope.DUPLICATE:
            return self.store.replies(device_kid, msg.id)
        sent = [self._draft(device_kid, t, body, now, msg.id)
                for t, body in self._answer(device, msg, now, ready)]
        inbox.commit(opened)
        kept = self.store.save_state(device, inbox.guard.to_state())
        if len(self._guards) >= KEY_CACHE:
            del self._guards[next(iter(self._guards))]
        self._guards[device_kid] = (kept, inbox.guard)
        self.store.save_replies(device_kid, msg.id, sent, now)
        return sent

    def _replay_guard(self, device):
        """The device's replay guard: the one this service last saved for it if the store still
        holds those very bytes (no other worker has written since, no rollback undid it), else
        decoded from the store. Taken out of memory until saved again, so a guard changed by a
        message whose work is rolled back is never used again."""
        kept = self._guards.pop(device.kid, None)
        if kept is not None and kept[0] == device.replay_bytes:
            return kept[1]
        return restore.replay_guard(device.replay) if device.replay else ReplayGuard()

    def _device_key(self, kid):
        """The verifier of a registered device's key, remembered (a kid names one key for
        good), or None for a kid not registered (not remembered: it may be registered later)."""
        own = self._keys.get(kid)
        if own is None:
            public_key = self.store.public_key(kid)
            if public_key is None:
                return None
            if len(self._keys) >= KEY_CACHE:
                del self._keys[next(iter(self._keys))]
            own = self._keys[kid] = Ed25519Verifier(public_key)
        return own

    def _rate_limited(self, device_kid):
        """Count a refusal for rate; say so at most once per RATE_LOG_EVERY seconds."""
        self.refusals["rate-limited"] = self.refusals.get("rate-limited", 0) + 1
        self._unsaid += 1
        now = time.monotonic()
        if now >= self._say_at:
            self._say_at = now + RATE_LOG_EVERY
            log.warning("rate-limited %d signed messages since the last report; the latest from "
                        "device %s (%d refused while its bucket was kept)", self._unsaid,
                        device_kid.hex(), self.rates.refusals(device_kid))
            self._unsaid = 0

    def _verifier(self, kid):
        public_key = self.store.public_key(kid)
        return Ed25519Verifier(public_key) if public_key else None

    def _refused(self, inbox, device_kid):
        for reason in inbox.rejections:
            self._refuse(reason, device_kid)

    def _refuse(self, reason, device_kid):
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        self.limiter.charge(device_kid)
        log.info("refused a message on the uplink of %s: %s", device_kid.hex(), reason)

    def _draft(self, device_kid, msg_type, body, now, reply_to=None):
        """An answer as the transaction keeps it: envelope.seal's payload, numbered with the
        vendor's next sequence number, checked against the catalog and encoded, so that a body
        the catalog refuses fails (and is rolled back) with the work that made it; its signature
        comes after the commit (_signed)."""
        payload = m.build(msg_type, body, self.kid, device_kid, self.store.next_seq(), now,
                          now + self.ttl, self.new_id(), reply_to)
        return self.codec.dumps(payload)

    def _signed(self, kept):
        """The bytes to publish for an answer as kept: a _draft payload signed, or an answer
        kept already signed (by a vendor that signed inside the transaction) as it is."""
        return kept if kept[0] == _SIGNED else cose.sign1(kept, self.signer, self.codec)

    def _answer(self, device, msg, now, ready):
        if msg.type == m.ORDER:
            return ordering.order(self, device, msg, now)
        if msg.type == m.ERROR:
            log.warning("device %s reports %s: %s", device.kid.hex(), msg.body["code"],
                        msg.body["text"])
            return []
        if device.revoked:  # a heartbeat too: how a revoked device with nothing to order hears
            return [error("device-deregistered", "The owner deregistered this device.")]
        if msg.type == m.MANDATE:
            return self._mandate(device, msg, now, ready)
        if msg.type == m.STATUS:
            self.store.save_levels(device.kid, msg.body["slots"], now)
            return self._reminders(device.kid, now)
        handler = _HANDLERS.get(msg.type)
        if handler is None:
            return [error("unexpected-type", "A vendor does not take %s messages." % msg.name())]
        return handler(self, device, msg, now)

    def _quote(self, device, msg, now):
        b = msg.body
        if "offer" in b:  # a counter-proposal to one of our offers
            return counter_offers.answer(self, device, msg, now)
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
        return self.make_offer(device, item, b["qty"], price, item.shipping, item.lead,
                               test or item.test, now)

    def make_offer(self, device, item, qty, price, ship, lead, test, now, reward=None):
        """[the offer]: qty of a catalog item at a unit price plus shipping, arriving `lead`
        seconds after an order, valid for the catalog's offer hours, recorded so that an order
        can be checked against it; [an error] when its total is more than an order can hold.
        The device's credit in the offer's currency is taken off the total (`credit`), as much
        of it as the total holds; `reward` [amount, currency] is credit that ordering it earns.
        A test offer neither takes nor earns credit."""
        offer = _offer(item, self.new_id(), qty, price, ship, now + self.catalog.offer_ttl,
                       test, now, lead)
        if self.catalog.name:
            offer["from"] = self.catalog.name
        held = 0 if test else min(offer["total"][0], self.store.credit(device.kid, price[1]))
        if held:
            offer["credit"] = [held, price[1]]
            offer["total"] = [offer["total"][0] - held, price[1]]
        if reward and not test:
            offer["reward"] = reward
        if offer["total"][0] > MAX_AMOUNT:
            return [error("too-large", "That quantity is more than one order can hold.")]
        self.store.add_offer(device.kid, offer, now)
        return [(m.OFFER, offer)]

    def _mandate(self, device, msg, now, ready):
        """Keep the token of a mandate message when it replaces the one held; `ready` is the
        token as _check verified it (_verified_token), verified again here if the device's row
        holds another owner key by now."""
        if ready[0] != device.owner_key:
            ready = self._verified_token(device.owner_key, msg.body["cwt"], device.kid, now)
        try:
            current = self.held_mandate(device)
            if isinstance(ready[1], mandate.MandateError):
                raise ready[1]
            new = mandate.held_after(current, ready[1])
        except mandate.MandateError as exc:
            return [error(exc.code, sentence(["mandate refused: " + str(exc).split(": ", 1)[1]]))]
        if new is not current:
            self.store.save_mandate(device.kid, new)
            self._remember_mandate(device, new)
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
            kept = self._draft(device_kid, m.PROMOTION, body, now)
        return [(topics.downlink(device_kid), self._signed(kept))]

    def advance(self, now):
        """Simulated fulfilment up to now: shipment and delivery messages, [(topic, bytes)].
        Answers and offers older than the store keeps are forgotten on the way."""
        out = []
        with self.store.transaction():
            self.store.prune(now)
            for device, order_id, qty, arrives in self.store.due("accepted", "ships_at", now):
                self.store.set_status(device, order_id, "shipped")
                out.append((device, self._draft(device, *self._shipment(device, order_id,
                                                                         arrives), now)))
            for device, order_id, qty, arrives in self.store.due("shipped", "arrives_at", now):
                self.store.set_status(device, order_id, "delivered")
                out.append((device, self._draft(device, *_delivery(order_id, qty, arrives), now)))
        return [(topics.downlink(device), self._signed(kept)) for device, kept in out]

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


def _offer(item, offer_id, qty, price, ship, until, test, now, lead=None):
    """An offer body for qty of a catalog item at a unit price plus shipping, arriving `lead`
    seconds (default: the item's lead time) after an order."""
    lead = item.lead if lead is None else lead
    return {"offer": offer_id, "sku": item.sku, "title": item.title, "qty": qty, "price": price,
            "ship": ship, "total": [price[0] * qty + ship[0], price[1]], "lead": lead,
            "arrive": now + lead, "until": until, "test": test}


def _clock_ahead(msg, now):
    """The error that tells a device (whose signed message this is) its clock runs ahead of the
    vendor's: by how much, signed with the vendor's own time, so it is said, not just refused."""
    return error(FROM_FUTURE, "Your message is stamped %d s after our clock: set your clock "
                 "(NTP); we refuse your messages until then." % (msg.ts - now))


def _delivery(order_id, qty, arrives):
    return m.DELIVERY, {"order": order_id, "at": arrives, "qty": qty}


_HANDLERS = {m.QUOTE_REQUEST: Service._quote, m.CANCEL: ordering.cancel,
             m.SUPPORT_REQUEST: Service._support,
             m.RESYNC: resync.rejoin, m.ORDER_QUERY: Service._order_query}
