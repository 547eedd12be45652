"""The world the examples run in: an owner who signs the device's mandate, the reference vendor
(thingsdk.seller) on an MQTT broker (the one given, or the demo's embedded amqtt broker) and one
accelerated clock shared by all of them.

An example builds its device's sensors and consumables, asks `World.device` for a Device and
follows it with `World.follow`, which prints what the device does (from its audit log) until a
goal is reached. Everything lives in a temporary folder that is removed at the end.
"""

import argparse
import glob
import os
import tempfile
import threading
import time
from pathlib import Path

from thingsdk import codec, topics
from thingsdk.core import lifecycle
from thingsdk.core import mandate as md
from thingsdk.core import money
from thingsdk.core.consumable import DAY
from thingsdk.crypto import Ed25519Signer
from thingsdk.device.config import AcceleratedClock
from thingsdk.device.runtime import Device
from thingsdk.device.state import StateFolder
from thingsdk.device.status import report
from thingsdk.demo.broker import EmbeddedBroker
from thingsdk.mqtt import V5, Backoff, Transport
from thingsdk.owner import build_claims
from thingsdk.seller import catalog
from thingsdk.seller.serve import Server
from thingsdk.seller.service import Service, register
from thingsdk.seller.store import Store

# The vendor's shop for every example (see thingsdk/seller/catalog.example.toml for the format).
SHOP = """
[vendor]
offer_hours = 24
visit_hours = 72
[skus.WF-300]
title = "Fridge water filter WF-300 (300 l)"
category = "water-filter"
price = [2450, "EUR"]
shipping = [498, "EUR"]
lead_hours = 24
stock = 50
[skus.BEANS-1KG]
title = "Espresso beans, 1 kg"
category = "coffee-beans"
price = [1890, "EUR"]
shipping = [390, "EUR"]
lead_hours = 24
stock = 50
[skus.INK-XL-BK]
title = "Black ink cartridge XL (1000 pages)"
category = "ink-black"
price = [3190, "EUR"]
shipping = [0, "EUR"]
lead_hours = 24
stock = 50
[skus.service-visit]
title = "Technician visit"
category = "service"
price = [8900, "EUR"]
shipping = [0, "EUR"]
lead_hours = 48
stock = 5
[support]
steps = ["We opened a case and will get back to you within one working day."]
[support.faults.coin-jam]
steps = ["Open the coin mechanism and remove any bent coins or foreign objects.",
         "Clean the coin path with a dry brush and close it until it clicks.",
         "If coins still jam, book the technician visit we quoted."]
visit = true
"""
# Waits fitted to accelerated time (thingsdk.core.lifecycle.DEFAULTS are for real time).
LIFECYCLE = {"ttl": 12 * 3600, "quote_wait": 1800, "order_wait": 1800, "order_wait_max": 14400}


def gpio_present():
    """Whether this machine has GPIO chips (a Raspberry Pi has /dev/gpiochip*)."""
    return bool(glob.glob("/dev/gpiochip*"))


def arguments(doc, hardware=True):
    """The examples' command line: --broker, --speed, --timeout, and --simulate/--hardware
    (simulated unless GPIO is present) when the example has real hardware to read."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     epilog="See the script's docstring for the wiring.")
    parser.add_argument("--broker", help="the MQTT broker, e.g. mqtt://127.0.0.1:1883 "
                                         "(default: one embedded in this process)")
    parser.add_argument("--speed", type=float, help="simulated seconds per real second "
                                                    "(default: 3600, or 1 on hardware)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="give up after this many real seconds (default: 300)")
    if hardware:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--simulate", action="store_true", default=None,
                          help="simulate the sensor (the default without GPIO)")
        mode.add_argument("--hardware", dest="simulate", action="store_false",
                          help="read the real sensor (the default with GPIO)")
    args = parser.parse_args()
    if getattr(args, "simulate", None) is None:
        args.simulate = not hardware or not gpio_present()
    if args.speed is None:
        args.speed = 3600.0 if args.simulate else 1.0
    return args


class Simulated:
    """A real sensor source fed by a simulation: `feed(now)` makes the sensor's input (pulses on
    a mock pin, pages the host records) just before each reading."""

    def __init__(self, source, feed):
        self.source, self.feed, self.kind = source, feed, source.kind

    def read(self, now):
        self.feed(now)
        return self.source.read(now)


class World:
    """Keys, the owner's mandate (the `mandate create` options given) and the vendor, serving
    on the broker in a thread, on one clock running `args.speed` times faster."""

    def __init__(self, args, mandate_options):
        self.args = args
        self.clock = AcceleratedClock(args.speed, time.time())
        self.start = int(self.clock())
        self.owner, self.vendor = Ed25519Signer.generate(), Ed25519Signer.generate()
        self.key = Ed25519Signer.generate()  # the device's
        options = dict(mandate_options, version=1, **{"device-pub": self.key.public_key.hex()})
        self.mandate = md.issue(build_claims(options, self.owner.kid, self.start), self.owner,
                                codec)
        self._tmp = tempfile.TemporaryDirectory(prefix="thingsdk-example-")
        self.folder = Path(self._tmp.name)
        self.state = StateFolder(self.folder / "state")
        store = Store(self.folder / "vendor.db")
        register(store, self.key.public_key, self.owner.public_key, self.start)
        self._embedded = None if args.broker else EmbeddedBroker()
        link = self._embedded.__enter__() if self._embedded else None
        self.broker = (link.url, link.version) if link else (args.broker, V5)
        self.server = Server(Service(store, catalog.parse(SHOP), self.vendor, ttl=12 * 3600),
                             self._transport("example-vendor-" + os.urandom(4).hex()),
                             interval=600, clock=self.clock)
        self._threads = [threading.Thread(target=self.server.run, daemon=True)]
        self._threads[0].start()
        self._stop = threading.Event()
        self._seen = 0
        if not self.server.ready.wait(30):
            self.close()
            raise SystemExit("the vendor could not subscribe on %s" % self.broker[0])

    def device(self, slots):
        """The Device with these Slots, running in a thread from now on."""
        transport = self._transport(topics.kid_hex(self.key.kid), topics.presence(self.key.kid))
        device = Device(self.key, self.vendor.public_key, self.owner.public_key, self.state,
                        slots, transport, self.clock, LIFECYCLE, DAY, 0.05, self.mandate)
        thread = threading.Thread(target=device.run, args=(self._stop,), daemon=True)
        self._threads.append(thread)
        thread.start()
        return device

    def _transport(self, client_id, presence=None):
        url, version = self.broker
        return Transport(url, client_id, presence=presence, version=version,
                         backoff=Backoff(0.05, 1.0))

    def needs(self):
        """The device's need records by slot (read from its state folder)."""
        return {r["slot"]: r for r in self.state.records()}

    def follow(self, goal):
        """Print what the device does until goal(needs by slot) holds; exit on timeout."""
        deadline = time.monotonic() + self.args.timeout
        while not goal(self.needs()):
            self._tell()
            if time.monotonic() > deadline:
                raise SystemExit("TIMEOUT after %g real seconds" % self.args.timeout)
            time.sleep(0.02)
        self._tell()

    def close(self):
        """Stop the device and the vendor; print the device's status; remove the folder."""
        self._stop.set()
        self.server.stop()
        for thread in self._threads:
            thread.join(30)
        self._tell()  # what the last step wrote after the goal was met
        if self._embedded:
            self._embedded.__exit__(None, None, None)
        print("\nthe device's state, as `thingsdk status` shows it:")
        print(report(self.state.path, int(self.clock()), self.key.kid, self.owner.public_key))
        self._tmp.cleanup()

    def _tell(self):
        records = self.state.audit.records()
        slots = {r["need"]: r["slot"] for r in self.state.records()}
        for record in records[self._seen:]:
            line = _story(record, slots.get(record.get("need"), "-"), self.needs())
            if line:
                print("%s  %s" % (self._when(record.get("at", self.start)), line))
        self._seen = len(records)

    def _when(self, at):
        day, rest = divmod(at - self.start, DAY)
        return "day %d %02d:%02d" % (day, rest // 3600, rest % 3600 // 60)


def _story(record, slot, needs):
    """One audit record as a line of the story, or None for the ones not worth telling."""
    if "action" in record:
        return "%s: decided to %s. %s" % (slot, record["action"], record["text"])
    if "steps" in record:
        return "SUPPORT REPLY for %s:\n%s" % (slot, "\n".join(
            "    %d. %s" % (i, step) for i, step in enumerate(record["steps"], 1)))
    if "from" not in record:
        return None
    state, rec = record["state"], needs.get(slot) or {}
    line = "%s: %s -> %s" % (slot, record["from"] or "new need", state)
    if state == lifecycle.PLACED and rec.get("order"):
        order = rec["order"]
        line = "ORDER PLACED for %s: %d x %s, %s (vendor's ref %s)" % (
            slot, order["qty"], order["sku"], money.text(*order["total"]),
            (rec["receipt"] or ["", "-"])[1])
    elif state == lifecycle.DELIVERED:
        line = "DELIVERED to %s" % slot
    elif state == lifecycle.CLOSED:
        line += " (%s)" % record["reason"]
    return line
