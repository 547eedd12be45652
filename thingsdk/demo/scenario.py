"""The demo's cast: one owner, and three things that buy their consumables from the reference
vendor's example catalog, each with its own key, state folder, simulated sensor and mandate.

The numbers are chosen so that, in about five simulated days, the fridge orders within its
policy, the printer counters the vendor's offer (two cartridges for less), takes the vendor's
answer (credit toward its next order) and its order is above its owner's approval threshold, and
the coffee machine's second order would overrun its budget.
"""

import itertools
import queue

from thingsdk import codec, topics
from thingsdk.core import mandate as md
from thingsdk.core.consumable import DAY, Consumable, RateEstimator
from thingsdk.core.keys import key_id
from thingsdk.crypto import Ed25519Signer
from thingsdk.device.runtime import Device, Slot
from thingsdk.device.state import StateFolder
from thingsdk.owner import answer, build_claims, new_id
from thingsdk.owner_wire import OwnerLink
from thingsdk.sensors.simulated import SimulatedLevel

HOUR = 3600
TIMEOUT = 10.0  # real seconds for the broker to take the owner's answer
# Waits of a few simulated hours (the demo steps its things every half hour); a need that ends
# without an order rests two days before the thing asks again.
LIFECYCLE = {"quote_wait": 2 * HOUR, "order_wait": 2 * HOUR, "order_wait_max": 12 * HOUR,
             "wait": 2 * DAY}
HEARTBEAT = 12 * HOUR  # a status message twice a simulated day
MIN_INTERVAL = 2 * HOUR  # the least time between the readings the rate estimate keeps


class Fault:
    """A fault a thing reports `after` seconds into the story: code, diagnostics, a sentence."""

    def __init__(self, code, diag, text, after):
        self.code, self.diag, self.text, self.after = code, diag, text, after


class Spec:
    """One thing of the story: its `name` (short) and `title`; its consumable slot (unit,
    capacity, the catalog's sku, the lead time it expects); its use (the level it starts at, the
    use a day, the sensor's noise); the owner's rules for it, as `thingsdk mandate create`
    options; what the owner does with a delivery (`refill`, a phrase); a Fault it reports;
    whether the demo tampers with the first offer the vendor makes it; and the lifecycle's
    `counter` setting (counter-proposals a need may make)."""

    def __init__(self, name, title, slot, unit, capacity, sku, lead_time, start, daily_use,
                 noise, rules, refill, fault=None, tamper=False, counter=0):
        self.name, self.title, self.slot, self.unit = name, title, slot, unit
        self.capacity, self.sku, self.lead_time = capacity, sku, lead_time
        self.start, self.daily_use, self.noise = start, daily_use, noise
        self.rules, self.refill, self.fault, self.tamper = rules, refill, fault, tamper
        self.counter = counter


THINGS = (
    Spec("fridge", "fridge", "water-filter", "ml", 300000, "WF-300", 3 * DAY, start=30000,
         daily_use=6000, noise=100,
         rules={"budget": "60.00EUR/rolling:30d", "item": "WF-300:30.00EUR:1",
                "approval-above": "40.00EUR"},
         refill="fits the new water filter in the fridge", tamper=True),
    Spec("printer", "printer", "black-ink", "page", 1000, "INK-XL-BK", 2 * DAY, start=420,
         daily_use=90, noise=2,
         rules={"budget": "80.00EUR/rolling:30d", "item": "INK-XL-BK:35.00EUR:2",
                "approval-above": "30.00EUR"},
         refill="puts the new ink cartridge in the printer",
         fault=Fault("ink-smear", {"nozzles-clogged": 3, "firmware": "2.4.1"},
                     "Every page has grey streaks.", 36 * HOUR), counter=1),
    Spec("coffee", "coffee machine", "coffee-beans", "g", 1000, "BEANS-1KG", 2 * DAY, start=1000,
         daily_use=250, noise=2,
         rules={"budget": "40.00EUR/rolling:30d", "item": "BEANS-1KG:20.00EUR:1",
                "approval-above": "30.00EUR"},
         refill="pours the new beans into the coffee machine"),
)


class OwnerRefilledLevel(SimulatedLevel):
    """A SimulatedLevel that starts at `level` and never refills by itself: the owner puts a
    delivered consumable in (`refill()`), which the next reading shows."""

    def __init__(self, capacity, daily_use, start, level, **options):
        super().__init__(capacity, daily_use, start, **options)
        self.true_level = float(level)
        self._refill = False

    def refill(self):
        self._refill = True

    def read(self, now):
        if self._refill:
            self.advance(now)
            self.true_level = float(self.capacity)
            self.refills += 1
            self._refill = False
        return super().read(now)


class Owner:
    """The things' owner: one key that signs each thing's mandate, as `thingsdk mandate create`
    does, and, once connected, reads the things' messages to it on the broker and answers their
    approval requests there, as `thingsdk owner approve --broker` does."""

    def __init__(self):
        self.signer = Ed25519Signer.generate()
        self._seq = itertools.count(1)
        self.heard = queue.Queue()  # Heard, from the link's thread
        self.link = None

    def mandate(self, spec, device_public, vendor_kid, now):
        """Version 1 of the thing's mandate: the spec's rules, and only this vendor."""
        options = dict(spec.rules, vendor=vendor_kid.hex(), version=1)
        options["device-pub"] = device_public.hex()
        return md.issue(build_claims(options, self.signer.kid, now), self.signer, codec)

    def connect(self, transport, devices, clock):
        """Read the to-owner topics of `devices` (public keys) on `transport` (its client id
        the owner's key id), with the demo's `clock`; not started."""
        self.link = OwnerLink(transport, self.signer, devices, on_heard=self.heard.put,
                              clock=clock)
        return self.link

    def approve(self, request, now):
        """Approve a verified approval request on the broker; returns the approval's bytes."""
        data = answer(request, "approve", self.signer, next(self._seq), now, new_id())
        self.link.send(request.kid, data).wait(TIMEOUT)
        return data


class Thing:
    """A Device built from a Spec with a key of its own, on the Transport (not started) that
    `transport(client id)` makes, its usage simulated from `seed`; its sensor at hand."""

    def __init__(self, spec, folder, owner, vendor_public, clock, transport, seed):
        now = int(clock())
        self.spec, self.signer = spec, Ed25519Signer.generate()
        self.kid = self.signer.kid
        self.sensor = OwnerRefilledLevel(spec.capacity, spec.daily_use, now, spec.start,
                                         noise=spec.noise, seed="%s-%s" % (seed, spec.name))
        consumable = Consumable(spec.slot, spec.unit, spec.capacity, sku=spec.sku,
                                lead_time=spec.lead_time, lead_spread=spec.lead_time // 4,
                                estimator=RateEstimator(min_interval=MIN_INTERVAL,
                                                        noise=max(1, spec.capacity // 50)))
        mandate = owner.mandate(spec, self.signer.public_key, key_id(vendor_public), now)
        self.device = Device(self.signer, vendor_public, owner.signer.public_key,
                             StateFolder(folder / spec.name), [Slot(consumable, self.sensor)],
                             transport(topics.kid_hex(self.kid)), clock,
                             dict(LIFECYCLE, counter=spec.counter),
                             HEARTBEAT, mandate=mandate)

    @property
    def consumable(self):
        return self.device.slots[self.spec.slot].consumable
