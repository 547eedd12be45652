"""The world of tests/portable/order_flow.py, on CPython or MicroPython alike: the vendor of one
order, with the core alone, and the owner who signed the device's mandate. A board's heap
benchmark runs it on the host instead, and carries its messages to the board over a pipe."""

from order_flow import HOUR, START
from thingsdk.core import cbor, ed25519, envelope
from thingsdk.core import messages as m
from thingsdk.core.consumable import DAY
from thingsdk.core.replay import REPLAYED, TOO_OLD

PRICE, SHIP = 1890, 490  # EUR cents


class Vendor:
    """The vendor's side of one order, with the core alone: offers, then receipt, shipment and
    delivery once the order comes. Refuses (counts) what does not open; a duplicate (the device
    sending a message again, after a restart say) gets the answers the first one got."""

    def __init__(self, signer, device):
        self.signer = signer
        self.inbox = envelope.Inbox(signer.kid, {device.kid: device}, cbor)
        self.device_kid = device.kid
        self.seq, self.serial = 0, 0
        self.refused = 0
        self.got = []
        self.later = []  # (when, type, body, in reply to) of news still to send
        self.answered = {}  # message id -> the sealed answers it got
        self.nonce = None  # the resync nonce pending, and until when

    def _seal(self, msg_type, body, now, reply_to):
        self.seq += 1
        self.serial += 1
        msg_id = self.serial.to_bytes(m.ID_SIZE, "big")
        return envelope.seal(msg_type, body, self.signer, self.device_kid, self.seq, now, msg_id,
                             cbor, DAY, reply_to)

    def answer(self, data, now):
        """The vendor's sealed answers to one uplink. A message signed by the device but refused
        as replayed or too old gets a resync nonce, as the reference vendor sends it."""
        checked = self.inbox.check(data)
        opened = checked if checked.status == envelope.REJECT else self.inbox.admit(checked, now)
        if opened.status == envelope.DUPLICATE:
            return self.answered.get(opened.message.id, [])
        if opened.status != envelope.ACCEPT:
            self.refused += 1
            if opened.reason in (REPLAYED, TOO_OLD) and checked.message.type != m.RESYNC:
                if self.nonce is None:  # a turn is an hour: the nonce lasts two
                    self.nonce = (bytes([0x70 + self.seq % 64]) * m.ID_SIZE, now + 2 * HOUR)
                floor = self.inbox.guard.highest(self.device_kid)
                return [self._seal(m.RESYNC_NONCE, {"nonce": self.nonce[0], "floor": floor,
                                                    "until": self.nonce[1]}, now,
                                   checked.message.id)]
            return []
        self.inbox.commit(opened)
        self.got.append(opened.message.type)
        answers = self._answer(opened.message, now)
        self.answered[opened.message.id] = answers
        return answers

    def _answer(self, msg, now):
        body = msg.body
        if msg.type == m.QUOTE_REQUEST:
            qty = body["qty"]
            return [self._seal(m.OFFER, {
                "offer": b"offer-0000000001", "sku": body["sku"], "title": "Espresso beans 1 kg",
                "qty": qty, "price": [PRICE, "EUR"], "ship": [SHIP, "EUR"],
                "total": [PRICE * qty + SHIP, "EUR"], "lead": DAY, "arrive": now + DAY,
                "until": now + DAY, "test": False}, now, msg.id)]
        if msg.type == m.ORDER:
            order, qty = body["order"], body["qty"]
            self.later.append((now + HOUR, m.SHIPMENT, {"order": order, "carrier": "DHL",
                                                        "track": "T-1", "eta": now + DAY,
                                                        "qty": qty}, msg.id))
            self.later.append((now + 2 * HOUR, m.DELIVERY, {"order": order, "at": now + 2 * HOUR,
                                                            "qty": qty}, msg.id))
            return [self._seal(m.RECEIPT, {"order": order, "status": "accepted", "ref": "R-1"},
                               now, msg.id)]
        if msg.type == m.RESYNC and self.nonce and body["nonce"] == self.nonce[0] \
                and now < self.nonce[1]:
            self.nonce = None
            return [self._seal(m.RESYNC_REPLY, {"from": msg.seq, "epoch": 1, "orders": []}, now,
                               msg.id)]
        return []

    def due(self, now):
        """The sealed news (shipment, delivery) whose time has come."""
        ready = [item for item in self.later if item[0] <= now]
        self.later = [item for item in self.later if item[0] > now]
        return [self._seal(t, body, now, re) for _, t, body, re in ready]


class World(Vendor):
    """The vendor (seed 2) of the device whose public key is `device_key`, with the vendor's and
    the owner's (seed 3) public keys and the mandate the owner signed for the device: a
    monthly budget of 100.00 EUR at this vendor."""

    def __init__(self, device_key):
        from thingsdk.core import mandate  # here: a board's agent drops it (agent.STARTING)

        vendor, owner = (ed25519.Signer(bytes([n]) * 32) for n in (2, 3))
        claims = mandate.make_claims(owner.kid, device_key, 1, START - 60, START + 365 * DAY,
                                     [["vendors", {"kids": [vendor.kid]}],
                                      ["budget", {"cur": "EUR", "max": 10000, "period": "month"}]])
        Vendor.__init__(self, vendor, ed25519.Verifier(device_key))
        self.vendor_key, self.owner_key = vendor.public_key, owner.public_key
        self.mandate = mandate.issue(claims, owner, cbor)
