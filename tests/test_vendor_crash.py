"""`thingsdk vendor serve` killed (SIGKILL) in the middle of a burst of orders, on a real mosquitto,
and started again: nothing it acknowledged is lost, nothing is done twice.

Devices are simulated by one MQTT client that publishes each device's signed messages on its
uplink and reads every downlink; they never send anything twice, so an order the vendor took from
the broker and lost would stay unanswered.
"""

import os
import signal
import subprocess
import sys
import threading
import time

from broker import wait_for
from load_catalog import SKUS, catalog as load_catalog
from test_vendor import Device, backend, postgres  # noqa: F401 (the fixtures: both stores)
from thingsdk import codec, topics
from thingsdk.core import envelope, mandate, restore
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Signer, save_keypair
from thingsdk.mqtt import Backoff, Transport
from thingsdk.seller.service import register
from thingsdk.seller.store import open_store

DEVICES = 120
STATUSES = 3  # status messages per device in the burst, besides its orders
TIMEOUT = 60.0
CATALOG = load_catalog(100000)


class Fleet:
    """Devices on one MQTT connection: each one's answers opened as the device opens them."""

    def __init__(self, url, devices):
        self.devices = {d.kid: d for d in devices}
        self.arrived = []  # (device kid, bytes), as they come
        self._lock = threading.Lock()
        self.transport = Transport(url, "fleet", on_message=self._arrived,
                                   backoff=Backoff(0.05, 0.4)).start()
        assert self.transport.subscribe(topics.every(topics.DOWN)).wait(TIMEOUT)

    def _arrived(self, topic, payload):
        with self._lock:
            self.arrived.append((topics.parse(topic)[1], payload))

    def send(self, device, msg_type, body):
        return self.transport.publish(topics.uplink(device.kid),
                                      device.seal(msg_type, body, int(time.time())))

    def mandates_and_offers(self, owner, vendor, now):
        """Each device sends its owner's mandate and asks for an offer of every item; the offers
        once all are in, by (device kid, sku)."""
        budget = [["vendors", {"kids": [vendor.kid]}],
                  ["budget", {"cur": "EUR", "max": 10 ** 7, "period": "month"}]]
        for device in self.devices.values():
            claims = mandate.make_claims(owner.kid, device.signer.public_key, 1, now - 60,
                                         now + 86400, budget)
            self.send(device, m.MANDATE, {"cwt": mandate.issue(claims, owner, codec)})
            for sku in SKUS:
                self.send(device, m.QUOTE_REQUEST, {"slot": sku.lower(), "sku": sku, "qty": 1})
        offers = {}
        assert wait_for(lambda: offers.update({(d.kid, a.body["sku"]): a.body
                                               for d, a in self.answers() if a.type == m.OFFER})
                        or len(offers) == len(self.devices) * len(SKUS), TIMEOUT), len(offers)
        return offers

    def answers(self):
        """Every answer so far, opened by its device: [(device, Message or DUPLICATE)]."""
        with self._lock:
            arrived, self.arrived = self.arrived, []
        out = []
        for kid, data in arrived:
            device = self.devices[kid]
            opened = device.inbox.open(data, int(time.time()))
            assert opened.status in (envelope.ACCEPT, envelope.DUPLICATE), opened
            if opened.status == envelope.ACCEPT:
                device.inbox.commit(opened)
                out.append((device, opened.message))
        return out


def start_vendor(folder, url, db):
    log = open(folder / "vendor.log", "a")
    log.write("--- started\n")
    log.flush()
    process = subprocess.Popen(
        [sys.executable, "-m", "thingsdk.cli", "vendor", "serve", "--broker", url,
         "--db", str(db), "--catalog", str(folder / "catalog.toml"),
         "--key", str(folder / "vendor.key"), "--client-id", "vendor-under-test",
         "--interval", "3600"], stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    text = lambda: (folder / "vendor.log").read_text()  # noqa: E731
    assert wait_for(lambda: text().rsplit("--- started", 1)[1].count(" serving ") or
                    process.poll() is not None, TIMEOUT)
    assert process.poll() is None, text()
    return process


def test_a_vendor_killed_mid_burst_loses_nothing_it_acknowledged(broker, tmp_path, backend):
    vendor, owner = Ed25519Signer.generate(), Ed25519Signer.generate()
    save_keypair(vendor, tmp_path / "vendor.key", tmp_path / "vendor.pub")
    (tmp_path / "catalog.toml").write_text(CATALOG)
    devices = [Device(seed, vendor) for seed in range(10, 10 + DEVICES)]
    store = open_store(backend)
    now = int(time.time())
    for device in devices:
        register(store, device.signer.public_key, owner.public_key, now)
    process = start_vendor(tmp_path, broker.url, backend)
    fleet = Fleet(broker.url, devices)
    try:
        offers = fleet.mandates_and_offers(owner, vendor, now)  # an order needs the vendor's offer

        # The burst: every need's order and some status messages, all taken by the broker. The
        # vendor is stopped meanwhile, so that it cannot answer the burst as fast as it is sent
        # and be done before it is killed: the broker queues the burst for it.
        process.send_signal(signal.SIGSTOP)
        orders = {}  # order id -> (device, total)
        sent = []
        level = {"slots": [{"slot": "ink", "unit": "pcs", "level": 1, "cap": 4, "rate": 0}]}
        for round_ in range(max(len(SKUS), STATUSES)):
            for device in devices:
                if round_ < len(SKUS):
                    offer = offers[(device.kid, SKUS[round_])]
                    body = m.order_body(offer, os.urandom(16), 1)
                    orders[body["order"]] = (device, offer["total"][0])
                    sent.append(fleet.send(device, m.ORDER, body))
                if round_ < STATUSES:
                    sent.append(fleet.send(device, m.STATUS, level))
        process.send_signal(signal.SIGCONT)
        receipts = {}

        def receipts_in():
            for device, answer in fleet.answers():
                assert answer.type == m.RECEIPT, (answer.type, answer.body)
                receipts.setdefault(answer.body["order"], []).append(answer.body)
            return receipts

        # Killed once a quarter of the orders are accepted: some more are on their way. Counted
        # in the vendor's store, not in the receipts this process has read, which can trail the
        # vendor by the whole burst when this process is slow.
        assert wait_for(lambda: sum(store.held(sku) for sku in SKUS) >= len(orders) // 4,
                        TIMEOUT)
        process.send_signal(signal.SIGKILL)
        process.wait(TIMEOUT)
        answered_before = len(receipts_in())
        assert all(ack.wait(TIMEOUT) and not ack.refused for ack in sent)
        assert answered_before < len(orders), "the burst was over before the kill"

        process = start_vendor(tmp_path, broker.url, backend)
        assert wait_for(lambda: len(receipts_in()) == len(orders), TIMEOUT), \
            "%d of %d orders never answered" % (len(orders) - len(receipts), len(orders))
        assert all(r["status"] == "accepted" for rs in receipts.values() for r in rs), receipts
        # A redelivered order gets the first receipt again, never a second order.
        assert all(len({r["ref"] for r in rs}) == 1 for rs in receipts.values())
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        fleet.transport.close(timeout=1)

    # In the vendor's books: one order per need, each charged once.
    for device in devices:
        rows = store.orders(device.kid)
        assert sorted(r["sku"] for r in rows) == sorted(SKUS)
        assert all(r["status"] == "accepted" for r in rows)
        ledger = restore.ledger(store.device(device.kid).ledger)
        mine = {oid: total for oid, (d, total) in orders.items() if d is device}
        assert {oid: ledger.state_of(oid) for oid in mine} == {oid: "committed" for oid in mine}
        assert ledger.usage({"cur": "EUR", "period": "month"}, now) == (2, sum(mine.values()), 0)
    assert len(receipts) == len(orders) == DEVICES * len(SKUS)
