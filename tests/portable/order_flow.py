"""A whole order as a board lives it, on CPython or MicroPython alike: the portable agent with the
firmware's flash store, a consumable running low, and a vendor answering with signed messages
(offer, receipt; shipment and delivery an hour apart), every one sealed and opened by the core's
own Ed25519 and CBOR. No network: `Flow.turn()` moves time on an hour and carries messages both
ways, so a test can follow each step and a benchmark can measure the heap between them.
"""

import sys

from flash import FlashState
from thingsdk.core import cbor, ed25519, lifecycle
from thingsdk.core.agent import LEVEL, Agent, Slot
from thingsdk.core.consumable import DAY, Consumable

START = 1767225600
HOUR = 3600


class Tank:
    """A level source used at `per_hour` from `level`; `refill()` fills it."""

    kind = LEVEL

    def __init__(self, level=1000, per_hour=20):
        self.level, self.per_hour = level, per_hour

    def read(self, now):
        return self.level

    def refill(self):
        self.level = 1000


class Flow:
    """The device (an Agent on a FlashState under `root`) and its world, one hour a turn from
    `now`: `world` (by default an order_vendor.World) holds the vendor's and the owner's public
    keys and the mandate the owner signed, and answers what the device sends as the vendor
    (`answer`, `due`). `history`: how many readings the device kept before `now`, three hours
    apart (the tank used as in the turns and refilled at 100), as after days of running: 32 fill
    its rate estimate's window."""

    def __init__(self, root, now=START, order_qty=None, world=None, history=0):
        device = ed25519.Signer(bytes([1]) * 32)
        if world is None:  # the vendor and the owner's mandate, here (order_vendor.World)
            from order_vendor import World

            world = World(device.public_key)
        self.tank = Tank()
        consumable = Consumable("coffee", "g", 1000, sku="BEANS-1KG", lead_time=DAY,
                                lead_spread=DAY // 2, order_qty=order_qty)
        used = 3 * self.tank.per_hour  # between two readings of the history
        for back in range(history, 0, -1):
            consumable.read(now - back * 3 * HOUR, 1000 - (history - back) * used % 900)
        self.uplinks, self.downlinks = [], []
        self.root = root
        self.serial, self.started = 0, now
        self.agent = Agent(device, ed25519.Verifier(world.vendor_key),  # as app
                           ed25519.Verifier(world.owner_key, False), FlashState(root),
                           [Slot(consumable, self.tank)], cbor, self._new_id, now,
                           publish=lambda data, msg_type: self.uplinks.append(data),
                           spare=sys.implementation.name == "micropython")  # as a board does
        self.agent.start(now, world.mandate)
        self.vendor = world
        self.now = now

    def _new_id(self):
        self.serial += 1  # unique across restarts too: a restart begins at a later time
        return self.started.to_bytes(8, "big") + self.serial.to_bytes(8, "big")

    def need(self):
        """The first need kept, whole: a board keeps its closed needs lean in memory (its
        lifecycle.Orders' `lean`), and the record on flash holds what they let go of."""
        for need in self.agent.orders.records()[:1]:
            if need["state"] != lifecycle.CLOSED:
                return need
            return [r for r in self.agent.state.records() if r["need"] == need["need"]][0]
        return None

    def turn(self):
        """An hour on: the tank is used (and refilled once delivered), the agent steps, the
        vendor answers what the device sent and the device receives the answers. A downlink
        stays in `downlinks` until the agent has taken it whole, as a broker keeps a QoS 1
        message its subscriber has not acknowledged: a device restarted after an error gets it
        again."""
        self.now += HOUR
        for need in self.agent.orders.records()[:1]:  # in memory (need() may read flash)
            if need["state"] == lifecycle.DELIVERED:
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
        again = Flow(self.root, self.now, world=self.vendor)
        again.tank.level = self.tank.level
        again.uplinks, again.downlinks = self.uplinks, self.downlinks
        return again

    def orders(self, count, each=None):
        """Order `count` times in a row, each once the last was delivered and its refill seen
        (`turn` refills the tank for the first need only), as a device does for months; the
        turns taken. `each(closed)`, if given, is called after every turn with the number of
        orders closed so far."""
        closed = []
        for n in range(1, 200 * count + 1):
            for need in self.agent.orders.records()[-1:]:  # the latest
                if need["state"] == lifecycle.DELIVERED:
                    self.tank.refill()
            need = None  # no record held while the turn runs (a board's heap is measured)
            self.turn()
            for need in self.agent.orders.records():
                done = need["state"] == lifecycle.CLOSED and need["oid"] is not None
                if done and need["need"] not in closed:
                    closed.append(need["need"])
            need = None
            if each is not None:
                each(len(closed))
            if len(closed) == count:
                return n
        raise AssertionError("%d of %d orders closed: %r" % (len(closed), count,
                                                            self.agent.orders.records()))

    def run(self, turns=200):
        """Turn until the need closes; the number of turns taken."""
        for n in range(1, turns + 1):
            self.turn()
            need = self.need()
            if need is not None and need["state"] == lifecycle.CLOSED:
                return n
        raise AssertionError("no closed need after %d turns: %r" % (turns, self.need()))
