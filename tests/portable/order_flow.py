"""A whole order as a board lives it, on CPython or MicroPython alike: the portable agent with the
firmware's flash store, a consumable running low, and a vendor answering with signed messages
(offer, receipt; shipment and delivery an hour apart), every one sealed and opened by the core's
own Ed25519 and CBOR. No network: `Flow.turn()` moves time on an hour and carries messages both
ways, so a test can follow each step and a benchmark can measure the heap between them.
"""

from flash import FlashState
from thingsdk.core import cbor, ed25519, envelope, lifecycle, mandate
from thingsdk.core import messages as m
from thingsdk.core.agent import LEVEL, Agent, Slot
from thingsdk.core.consumable import DAY, Consumable
from thingsdk.core.replay import REPLAYED, TOO_OLD

START = 1767225600
HOUR = 3600
PRICE, SHIP = 1890, 490  # EUR cents


class Tank:
    """A level source used at `per_hour` from `level`; `refill()` fills it."""

    kind = LEVEL

    def __init__(self, level=1000, per_hour=20):
        self.level, self.per_hour = level, per_hour

    def read(self, now):
        return self.level

    def refill(self):
        self.level = 1000


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
        msg_id = bytes([self.serial]) * m.ID_SIZE
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


class Flow:
    """The device (an Agent on a FlashState under `root`) and its vendor, one hour a turn from
    `now`."""

    def __init__(self, root, now=START, order_qty=None):
        device, vendor, owner = (ed25519.Signer(bytes([n]) * 32) for n in (1, 2, 3))
        claims = mandate.make_claims(owner.kid, device.public_key, 1, START - 60, START + 365 * DAY,
                                     [["vendors", {"kids": [vendor.kid]}],
                                      ["budget", {"cur": "EUR", "max": 10000, "period": "month"}]])
        self.tank = Tank()
        consumable = Consumable("coffee", "g", 1000, sku="BEANS-1KG", lead_time=DAY,
                                lead_spread=DAY // 2, order_qty=order_qty)
        self.uplinks, self.downlinks = [], []
        self.root = root
        self.serial, self.started = 0, now
        self.agent = Agent(device, ed25519.Verifier(vendor.public_key),
                           ed25519.Verifier(owner.public_key), FlashState(root),
                           [Slot(consumable, self.tank)], cbor, self._new_id, now,
                           publish=lambda data, msg_type: self.uplinks.append(data))
        self.agent.start(now, mandate.issue(claims, owner, cbor))
        self.vendor = Vendor(vendor, ed25519.Verifier(device.public_key))
        self.now = now

    def _new_id(self):
        self.serial += 1  # unique across restarts too: a restart begins at a later time
        return self.started.to_bytes(8, "big") + self.serial.to_bytes(8, "big")

    def need(self):
        records = self.agent.orders.records()
        return records[0] if records else None

    def turn(self):
        """An hour on: the tank is used (and refilled once delivered), the agent steps, the
        vendor answers what the device sent and the device receives the answers. A downlink
        stays in `downlinks` until the agent has taken it whole, as a broker keeps a QoS 1
        message its subscriber has not acknowledged: a device restarted after an error gets it
        again."""
        self.now += HOUR
        need = self.need()
        if need is not None and need["state"] == lifecycle.DELIVERED:
            self.tank.refill()
        self.tank.level = max(0, self.tank.level - self.tank.per_hour)
        self.agent.step(self.now)
        self.downlinks += self.vendor.due(self.now)
        while self.uplinks:
            self.downlinks += self.vendor.answer(self.uplinks.pop(0), self.now)
        while self.downlinks:
            self.agent.receive(self.downlinks[0], self.now)
            self.downlinks.pop(0)

    def restarted(self):
        """The device restarted on the same flash, an agent anew, in the same world: the vendor,
        the tank, and the messages in flight either way."""
        again = Flow(self.root, self.now)
        again.vendor, again.tank.level = self.vendor, self.tank.level
        again.uplinks, again.downlinks = self.uplinks, self.downlinks
        return again

    def run(self, turns=200):
        """Turn until the need closes; the number of turns taken."""
        for n in range(1, turns + 1):
            self.turn()
            need = self.need()
            if need is not None and need["state"] == lifecycle.CLOSED:
                return n
        raise AssertionError("no closed need after %d turns: %r" % (turns, self.need()))
