"""The world the device scenarios run in: keys, a mandate, the reference vendor on a real
mosquitto (mutual TLS, the thingsdk ACL) and a device's config, all on one accelerated clock.
"""

import os
import threading
import time
from pathlib import Path

from broker import VENDOR
from device_driver import OwnerKeptLevel

from thingsdk import codec, topics
from thingsdk.audit import AuditLog
from thingsdk.core import lifecycle, mandate
from thingsdk.crypto import Ed25519Signer, save_keypair
from thingsdk.device import config
from thingsdk.device.config import AcceleratedClock
from thingsdk.mqtt import Backoff, Transport
from thingsdk.seller import catalog
from thingsdk.seller.serve import Server
from thingsdk.seller.service import Service, register
from thingsdk.seller.store import Store

HOUR, DAY = 3600, 86400
SPEED = 2000  # simulated seconds per real second
TIMEOUT = 40.0  # real seconds; the scenarios take a few
SLOT = "water-filter"
CATALOG = """
[vendor]
offer_hours = 24
[skus.WF-300]
title = "Fridge water filter WF-300"
category = "water-filter"
price = [2450, "EUR"]
shipping = [498, "EUR"]
lead_hours = 2
stock = 50
[support]
steps = ["We opened a case and will get back to you within one working day."]
"""
LIFECYCLE = """
[lifecycle]
ttl = 43200
quote_wait = 1800
order_wait = 1800
order_wait_max = 14400
"""
ROOT = Path(__file__).resolve().parent.parent
ADC_PIN = {"esp32": 34, "pico_w": 26}  # where a board's tank sensor is wired (hil/README.md)
FULL = 65535  # the ADC's reading of a full tank


class Needs:
    """need() and reached() over `records()`, a device's need records: the first need is the
    one the scenarios follow."""

    def need(self):
        """The first need, or None."""
        records = sorted(self.records(), key=lambda r: r["at"])
        return records[0] if records else None

    def reached(self, *states):
        return lambda: (self.need() or {}).get("state") in states


class World(Needs):
    """Keys, a mandate (vendors: this world's; a budget of 200.00 EUR a month; and `rules`), the
    reference vendor (its own thread, on the broker's TLS listener as the `vendor` user) and a
    device's config file, all on one accelerated clock."""

    def __init__(self, folder, broker, speed=SPEED, rules=()):
        self.folder, self.broker = folder, broker
        self.clock = AcceleratedClock(speed, time.time())
        self.device_key = Ed25519Signer.generate()
        self.kid = self.device_key.kid
        self.vendor_key, self.owner_key = Ed25519Signer.generate(), Ed25519Signer.generate()
        save_keypair(self.device_key, folder / "device.key", folder / "device.pub")
        now = int(self.clock())
        claims = mandate.make_claims(
            self.owner_key.kid, self.device_key.public_key, 1, now - 60, now + 365 * DAY,
            [["vendors", {"kids": [self.vendor_key.kid]}],
             ["budget", {"cur": "EUR", "max": 20000, "period": "month"}]] + list(rules))
        (folder / "mandate.cwt").write_bytes(mandate.issue(claims, self.owner_key, codec))
        self.store = Store(folder / "vendor.db")
        register(self.store, self.device_key.public_key, self.owner_key.public_key, now)
        self.catalog = catalog.parse(CATALOG)
        self.vendor_tls = dict(zip(("cert_file", "key_file"), broker.pki.client(VENDOR)),
                               ca_file=str(broker.pki.ca_file))
        self.server = self.thread = None
        self.devices = []

    # The vendor.

    def start_vendor(self, server_class=Server):
        service = Service(Store(self.folder / "vendor.db"), self.catalog, self.vendor_key,
                          ttl=12 * HOUR)
        transport = Transport(self.broker.tls_url, "vendor-1", backoff=Backoff(0.05, 0.5),
                              **self.vendor_tls)
        self.server = server_class(service, transport, clock=self.clock)
        self.thread = threading.Thread(target=self.server.run)
        self.thread.start()
        assert self.server.ready.wait(TIMEOUT)
        return self.server

    def stop_vendor(self):
        if self.server is not None:
            self.server.stop()
            self.thread.join(TIMEOUT)
            self.server = None

    def orders(self):
        """The vendor's orders from the device."""
        return self.store.orders(self.kid)

    # The device.

    def config(self, sensor):
        """The device's config file; `sensor` is the TOML of its sensor table."""
        cert, key = self.broker.pki.client(topics.kid_hex(self.kid))
        text = """
[device]
key = "device.key"
state = "state"
vendor = "%s"
owner = "%s"
mandate = "mandate.cwt"
interval = 0.05

[broker]
url = "%s"
ca = "%s"
cert = "%s"
key = "%s"
backoff = [0.05, 0.5]
""" % (self.vendor_key.public_key.hex(), self.owner_key.public_key.hex(), self.broker.tls_url,
       self.broker.pki.ca_file, cert, key) + self._clock_and_slot(sensor)
        path = self.folder / "device.toml"
        path.write_text(text)
        return path

    def device(self, owner_kept=True):
        """A Device from the config file, running in a thread; its level kept by the owner of
        tests/device_driver.py, or simulated as configured."""
        device = config.load(self.config(SIMULATED))
        if owner_kept:
            device.slots[SLOT].source = OwnerKeptLevel(device, SLOT)
        stop = threading.Event()
        thread = threading.Thread(target=device.run, args=(stop,))
        thread.start()
        self.devices.append((stop, thread))
        return device

    def _clock_and_slot(self, sensor):
        """device.toml's [clock], [lifecycle] and the world's one consumable, read by `sensor`."""
        return """
[clock]
speed = %r
start = %r
%s
[[consumables]]
slot = "%s"
unit = "ml"
capacity = 1000
sku = "WF-300"
lead_time = %d
lead_spread = %d
min_interval = 600
sensor = %s
""" % (self.clock.speed, self.clock.start, LIFECYCLE, SLOT, 4 * HOUR, 2 * HOUR, sensor)

    # A board.

    def build_board(self, tls=True, board="pico_w", interval=0.05):
        """A board's folder made by `thingsdk firmware build` from an identity bundle: the
        world's consumable on an ADC (ADC_PIN; raw 0 empty, FULL full), the broker's TLS listener
        (or its plain one), this world's clock and lifecycle."""
        from thingsdk.firmware_build import build

        bundle = self.folder / "bundle"
        bundle.mkdir()
        save_keypair(self.device_key, bundle / "device.key", bundle / "device.pub")
        (bundle / "vendor.pub").write_text(self.vendor_key.public_key.hex())
        (bundle / "owner.pub").write_text(self.owner_key.public_key.hex())
        (bundle / "mandate.cwt").write_bytes((self.folder / "mandate.cwt").read_bytes())
        broker = 'url = "%s"' % self.broker.url
        if tls:
            cert, key = self.broker.pki.client(topics.kid_hex(self.kid))
            broker = 'url = "%s"\nca = "%s"\ncert = "%s"\nkey = "%s"' % (
                self.broker.tls_url, self.broker.pki.ca_file, cert, key)
        (bundle / "device.toml").write_text("""
[device]
key = "device.key"
vendor = "vendor.pub"
owner = "owner.pub"
mandate = "mandate.cwt"
interval = %r

[broker]
%s
""" % (interval, broker) + self._clock_and_slot(
            '{type = "adc", pin = %d, empty = 0, full = %d}' % (ADC_PIN[board], FULL)))
        out = self.folder / board
        # force: a stock ESP32 build is refused for its heap (bench/firmware.py measures it), but
        # the virtual board has no heap limit; a real ESP32 on the rig runs a frozen image.
        build(board, bundle, out, force=True)
        return out

    def records(self):
        """The need records as persisted in the state folder."""
        folder = self.folder / "state" / "needs"
        if not folder.exists():
            return []
        return [codec.loads((folder / name).read_bytes()) for name in sorted(os.listdir(folder))
                if name.endswith(".cbor")]

    def close(self):
        for stop, thread in self.devices:
            stop.set()
            thread.join(TIMEOUT)
        self.stop_vendor()
        self.store.close()


# A sensor used 200 ml an hour, refilled (by the simulation) when below 60 ml.
SIMULATED = '{type = "simulated", daily_use = 4800, noise = 0.0, variability = 0.0, ' \
            'refill_below = 60}'


class Tank:
    """The water a filter has left: used at `per_hour` ml an hour on the world's clock from
    `level`, and refilled by its owner once the vendor says the order was delivered."""

    def __init__(self, world, level=700, per_hour=100):
        self.world, self.per_hour = world, per_hour
        self.level, self.since, self.refilled = level, world.clock(), False

    def raw(self):
        """The tank as a board's ADC reads it now (0 empty, FULL full)."""
        now = self.world.clock()
        orders = self.world.orders()
        if not self.refilled and orders and orders[0]["status"] == "delivered":
            self.level, self.since, self.refilled = 1000, now, True
        level = max(0, self.level - int(self.per_hour * (now - self.since) / 3600))
        return level * FULL // 1000


class Tap:
    """A client on the broker's plain listener (no ACL: broker rights), recording what passes on
    a topic, and publishing what a test injects."""

    def __init__(self, broker, topic, on_message=None):
        self.seen = []
        self.on_message = on_message
        self.transport = Transport(broker.url, "tap-" + os.urandom(4).hex(),
                                   on_message=self._seen, backoff=Backoff(0.05, 0.5)).start()
        assert self.transport.subscribe(topic).wait(TIMEOUT)

    def _seen(self, topic, payload):
        self.seen.append(payload)
        if self.on_message:
            self.on_message(self, payload)

    def publish(self, topic, payload):
        assert self.transport.publish(topic, payload).wait(TIMEOUT)

    def close(self):
        self.transport.close()


def assert_one_order_delivered(world, device=None):
    """Exactly one order at the vendor, for the need `device` follows (Needs; by default the
    world's own device), delivered and refilled."""
    need = (device or world).need()
    orders = world.orders()
    assert [o["id"] for o in orders] == [need["oid"]], orders
    assert orders[0]["status"] == "delivered"
    assert need["state"] == lifecycle.CLOSED and need["reason"] == "refilled", need
    assert need["delivered"][1] == orders[0]["qty"]


def audit(world):
    return AuditLog(world.folder / "state" / "audit.log").records()


def states_audited(world):
    return [(r["from"], r["state"]) for r in audit(world) if "from" in r]
