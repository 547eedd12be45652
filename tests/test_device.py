"""The device runtime end to end on a real mosquitto (mutual TLS, the thingsdk ACL) with the
reference vendor, in accelerated time; and its faults: a broker restart, the device process
killed at each state of an order, duplicated deliveries, replayed and tampered messages, the
vendor down for a while. Each fault test asserts exactly one order per need at the vendor, and
that it was delivered.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from broker import VENDOR, wait_for
from device_driver import OwnerKeptLevel

from thingsdk import codec, topics
from thingsdk.audit import AuditLog
from thingsdk.core import envelope, lifecycle, mandate
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Signer, save_keypair
from thingsdk.device import config
from thingsdk.device.config import AcceleratedClock
from thingsdk.mqtt import Backoff, Transport
from thingsdk.vendor import catalog
from thingsdk.vendor.serve import Server
from thingsdk.vendor.service import Service, register
from thingsdk.vendor.store import Store

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


class World:
    """Keys, a mandate, the reference vendor (its own thread, on the broker's TLS listener as
    the `vendor` user) and a device's config file, all on one accelerated clock."""

    def __init__(self, folder, broker, speed=SPEED):
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
             ["budget", {"cur": "EUR", "max": 20000, "period": "month"}]])
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
""" % (self.vendor_key.public_key.hex(), self.owner_key.public_key.hex(), self.broker.tls_url,
       self.broker.pki.ca_file, cert, key, self.clock.speed, self.clock.start, LIFECYCLE, SLOT,
       4 * HOUR, 2 * HOUR, sensor)
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

    def records(self):
        """The need records as persisted in the state folder."""
        folder = self.folder / "state" / "needs"
        if not folder.exists():
            return []
        return [codec.loads((folder / name).read_bytes()) for name in sorted(os.listdir(folder))
                if name.endswith(".cbor")]

    def need(self):
        """The first need (the one these scenarios follow), or None."""
        records = sorted(self.records(), key=lambda r: r["at"])
        return records[0] if records else None

    def reached(self, *states):
        return lambda: (self.need() or {}).get("state") in states

    def close(self):
        for stop, thread in self.devices:
            stop.set()
            thread.join(TIMEOUT)
        self.stop_vendor()
        self.store.db.close()


# A sensor used 200 ml an hour, refilled (by the simulation) when below 60 ml.
SIMULATED = '{type = "simulated", daily_use = 4800, noise = 0.0, variability = 0.0, ' \
            'refill_below = 60}'


@pytest.fixture
def world(tmp_path, broker):
    w = World(tmp_path, broker)
    try:
        yield w
    finally:
        w.close()


def assert_one_order_delivered(world):
    """Exactly one order at the vendor, for this need, and delivered."""
    need = world.need()
    orders = world.orders()
    assert [o["id"] for o in orders] == [need["oid"]], orders
    assert orders[0]["status"] == "delivered"
    assert need["state"] == lifecycle.CLOSED and need["reason"] == "refilled"
    assert need["delivered"][1] == orders[0]["qty"]


def audit(world):
    return AuditLog(world.folder / "state" / "audit.log").records()


def states_audited(world):
    return [(r["from"], r["state"]) for r in audit(world) if "from" in r]


# ---- the happy path ----------------------------------------------------------------------------

def test_a_simulated_filter_is_reordered_delivered_and_refilled(world):
    world.start_vendor()
    device = world.device(owner_kept=False)
    assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
    assert_one_order_delivered(world)
    need = world.need()
    assert states_audited(world)[:7] == [
        (None, "quoting"), ("quoting", "deciding"), ("deciding", "ordering"),
        ("ordering", "placed"), ("placed", "shipped"), ("shipped", "delivered"),
        ("delivered", "closed")]
    decisions = [r for r in audit(world) if r.get("need") == need["need"] and "action" in r]
    assert [d["action"] for d in decisions] == ["buy"]
    decision = decisions[0]
    assert decision["reason"] == "within-policy" and decision["vendor"] == world.vendor_key.kid
    assert decision["offer"] == need["order"]["offer"] and decision["mandate"] == 1
    assert decision["text"].startswith("Water filter has") and "delivers in" in decision["text"]
    assert [c[:2] for c in decision["checks"]] == [["vendors", "ok"], ["budget", "ok"]]
    # The heartbeat told the vendor the level; the order's money is committed in the ledger.
    levels = world.store.levels(world.kid)
    assert levels[SLOT][1:3] == (1000, "ml")
    assert device.ledger.state_of(need["oid"]) == "committed"
    assert device.refusals == {} and world.server.service.refusals == {}


def test_a_fault_report_gets_the_vendors_steps(world):
    world.start_vendor()
    device = world.device()
    assert wait_for(lambda: device.refusals == {} and world.store.levels(world.kid), TIMEOUT)
    need = device.report_fault("e21-flow-sensor", {"flow": 0, "firmware": "1.2.0"})

    def case():
        return next(r for r in world.records() if r["need"] == need)

    assert wait_for(lambda: case()["state"] == lifecycle.CLOSED, TIMEOUT), case()
    assert case()["kind"] == lifecycle.SUPPORT and case()["reason"] == "answered"
    steps = [r["steps"] for r in audit(world) if r.get("need") == need and "steps" in r]
    assert steps == [["We opened a case and will get back to you within one working day."]]


def test_a_newer_mandate_dropped_in_by_the_owner_replaces_the_one_held(world):
    device = config.load(world.config(SIMULATED))  # not started: offline
    now = int(world.clock())
    claims = mandate.make_claims(world.owner_key.kid, world.device_key.public_key, 2, now - 60,
                                 now + DAY, [["vendors", {"kids": [world.vendor_key.kid]}]])
    token = mandate.issue(claims, world.owner_key, codec)
    drops = world.folder / "state" / "from-owner"
    (drops / "mandate.cose").write_bytes(envelope.seal(
        m.MANDATE, {"cwt": token}, world.owner_key, world.kid, 0, now, os.urandom(16), codec))
    device.step(now)
    assert device.mandate.version == 2 and os.listdir(drops) == []
    assert config.load(world.config(SIMULATED)).mandate.token == token


# ---- faults ------------------------------------------------------------------------------------

def test_a_broker_restart_in_the_middle_of_an_order(tmp_path, persistent_broker):
    world = World(tmp_path, persistent_broker)
    try:
        world.start_vendor()
        device = world.device()
        assert wait_for(world.reached(lifecycle.ORDERING, lifecycle.PLACED), TIMEOUT)
        persistent_broker.restart()
        assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
        assert_one_order_delivered(world)
        assert device.transport.reconnects >= 1
    finally:
        world.close()


KILLS = ["quoting", "deciding", "ordering", "ordering:published", "placed", "shipped",
         "delivered"]


def test_the_device_process_killed_at_each_state_of_an_order(world):
    world.start_vendor()
    path = world.config(SIMULATED)
    kills = world.folder / "kills.json"
    kills.write_text(json.dumps({"targets": KILLS, "done": []}))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, str(ROOT / "tests" / "device_driver.py"), str(path), str(kills)]
    up = Tap(world.broker, topics.uplink(world.kid))
    process = None
    killed = 0
    with open(world.folder / "device.log", "wb") as log:
        try:
            deadline = time.monotonic() + 2 * TIMEOUT
            while time.monotonic() < deadline:
                if process is None or process.poll() is not None:
                    if process is not None:
                        assert process.returncode == -signal.SIGKILL, process.returncode
                        killed += 1
                    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
                if world.reached(lifecycle.CLOSED)():
                    break
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            assert process.wait(TIMEOUT) == 0
        finally:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
            up.close()
    assert json.loads(kills.read_text())["done"] == KILLS and killed == len(KILLS), \
        (world.folder / "device.log").read_text()
    assert_one_order_delivered(world)
    orders = [payload(d)[10] for d in up.seen if payload(d)[2] == m.ORDER]
    assert orders and all(body == world.need()["order"] for body in orders)  # one order id
    assert world.server.service.refusals == {}


class TwiceServer(Server):
    """A vendor whose every answer the broker delivers twice."""

    def _publish(self, answers):
        super()._publish(answers + answers)


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


def payload(data):
    """The message map inside sealed bytes (not verified)."""
    return codec.loads(codec.loads(data).value[2])


def test_duplicated_deliveries_are_recognised_and_answered_alike(world):
    world.start_vendor(TwiceServer)
    republished = set()

    def republish(tap, data):  # every uplink message a second time
        digest = hashlib.sha256(data).digest()
        if digest not in republished:
            republished.add(digest)
            tap.transport.publish(topics.uplink(world.kid), data)

    up = Tap(world.broker, topics.uplink(world.kid), republish)
    down = Tap(world.broker, topics.downlink(world.kid))
    try:
        device = world.device()
        assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
        assert_one_order_delivered(world)
        receipts = [d for d in down.seen if payload(d)[2] == m.RECEIPT]
        assert len(receipts) >= 4 and len(set(receipts)) == 1  # the same answer every time
        orders = [d for d in up.seen if payload(d)[2] == m.ORDER]
        assert len(orders) >= 2
        assert device.duplicates >= 5 and device.refusals == {}
        assert world.server.service.refusals == {}
    finally:
        up.close()
        down.close()


def test_replayed_reordered_and_tampered_messages_are_refused_and_change_nothing(
        tmp_path, broker):
    world = World(tmp_path, broker, speed=1000)
    down = Tap(broker, topics.downlink(world.kid))
    try:
        world.start_vendor()
        device = world.device()
        assert wait_for(world.reached(lifecycle.PLACED), TIMEOUT), world.need()
        need = world.need()
        receipt = next(d for d in down.seen if payload(d)[2] == m.RECEIPT)
        offer = next(d for d in down.seen if payload(d)[2] == m.OFFER)
        seq = payload(receipt)[5]
        now = int(world.clock())
        delivery = {"order": need["oid"], "at": now, "qty": 1}
        other = Ed25519Signer.generate()

        def forged(signer=world.vendor_key, to=world.kid, seq=10 ** 6, ts=now, ttl=HOUR):
            return envelope.seal(m.DELIVERY, delivery, signer, to, seq, ts, os.urandom(16),
                                 codec, ttl)

        injected = [
            receipt[:-1] + bytes([receipt[-1] ^ 1]),  # tampered signature
            forged(signer=other),  # a key the device does not trust
            forged(seq=seq),  # a sequence number already used, under a new id
            forged(to=other.kid),  # for another device
            forged(ts=now - 2 * HOUR),  # expired
            forged(ts=now + HOUR),  # from the future
            receipt, offer,  # genuine, again and out of order: duplicates
        ]
        for data in injected:
            down.publish(topics.downlink(world.kid), data)
        expected = {"bad-signature": 1, "unknown-key": 1, "replayed": 1, "not-for-us": 1,
                    "expired": 1, "from-future": 1}
        assert wait_for(lambda: device.refusals == expected and device.duplicates >= 2,
                        TIMEOUT), (device.refusals, device.duplicates)
        after = world.need()
        assert after["state"] in (lifecycle.PLACED, lifecycle.SHIPPED)
        assert after["delivered"] is None and after["receipt"] == need["receipt"]
        assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
        assert_one_order_delivered(world)
        assert world.need()["delivered"][0] != now  # the vendor's delivery, not the forged one
    finally:
        down.close()
        world.close()


class CrashOnOrder(Server):
    """A vendor that goes down when the first order reaches it, before handling it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.crashed = threading.Event()

    def _answer(self, topic, data):
        if payload(data)[2] == m.ORDER and not self.crashed.is_set():
            self.crashed.set()
            self.stop()
            return []
        return super()._answer(topic, data)


def test_the_vendor_down_for_a_while_gets_the_order_once_it_is_back(world):
    vendor = world.start_vendor(CrashOnOrder)
    device = world.device()
    assert vendor.crashed.wait(TIMEOUT)
    world.stop_vendor()
    # While the vendor is down the device sends its order again, waiting longer each time.
    assert wait_for(lambda: (world.need() or {}).get("tries", 0) >= 2, TIMEOUT), world.need()
    assert world.orders() == []
    world.start_vendor()
    assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
    assert_one_order_delivered(world)
    assert device.refusals == {}
