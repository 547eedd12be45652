"""The vendor service on a real mosquitto (tests/broker.py): in-process, and as `thingsdk vendor
serve` in a subprocess over mutual TLS with the thingsdk ACL."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from broker import VENDOR, wait_for
from test_vendor import DAY, EXAMPLE, T, Device, World
from thingsdk import codec, topics
from thingsdk.cli import main
from thingsdk.core import envelope, mandate
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Signer, save_keypair
from thingsdk.mqtt import Backoff, Transport
from thingsdk.seller.serve import Server

TIMEOUT = 10.0


class Phone:
    """A device on the broker: its Device side (keys, inbox) and a Transport on its topics."""

    def __init__(self, device, url, clock, **tls):
        self.device = device
        self.clock = clock
        self.received = []
        name = topics.kid_hex(device.kid)
        self.transport = Transport(url, name, on_message=lambda t, p: self.received.append(p),
                                   backoff=Backoff(0.05, 0.4), **tls).start()
        assert self.transport.subscribe(topics.downlink(device.kid)).wait(TIMEOUT)

    def send(self, msg_type, body, uplink_of=None):
        data = self.device.seal(msg_type, body, self.clock())
        uplink = topics.uplink(uplink_of or self.device.kid)
        assert self.transport.publish(uplink, data).wait(TIMEOUT)
        return data

    def ask(self, msg_type, body):
        """Send and wait for the one answer: the opened Message."""
        seen = len(self.received)
        self.send(msg_type, body)
        assert wait_for(lambda: len(self.received) > seen, TIMEOUT)
        opened = self.device.inbox.open(self.received[seen], self.clock())
        assert opened.status == envelope.ACCEPT, opened
        self.device.inbox.commit(opened)
        return opened.message


def order_for(offer):
    return m.order_body(offer, os.urandom(16), 1)


@pytest.fixture
def running(broker, tmp_path):
    """A World whose vendor serves on the broker's plain listener, in a thread, at time T."""
    world = World(tmp_path)
    token = world.mandate(world.a, 1, [["vendors", {"kids": [world.vendor.kid]}]])
    world.send(world.a, m.MANDATE, {"cwt": token})
    transport = Transport(broker.url, "vendor-1", backoff=Backoff(0.05, 0.4))
    server = Server(world.new_service(), transport, clock=lambda: T)
    thread = threading.Thread(target=server.run)
    thread.start()
    assert server.ready.wait(TIMEOUT)
    phones = []

    def phone_of(device):
        phones.append(Phone(device, broker.url, lambda: T))
        return phones[-1]

    yield world, server, phone_of
    server.stop()
    thread.join(TIMEOUT)
    for phone in phones:
        phone.transport.close(timeout=1)


def test_a_device_gets_an_offer_and_a_receipt_through_the_broker(running):
    world, _, phone_of = running
    phone = phone_of(world.a)
    offer = phone.ask(m.QUOTE_REQUEST, {"slot": "ink", "sku": "INK-XL-BK", "qty": 1})
    assert offer.type == m.OFFER and offer.kid == world.vendor.kid
    assert offer.body["total"] == [3190, "EUR"]
    body = order_for(offer.body)
    receipt = phone.ask(m.ORDER, body)
    assert receipt.type == m.RECEIPT and receipt.body["status"] == "accepted"
    assert receipt.body["order"] == body["order"]


def test_a_message_on_another_devices_uplink_is_refused(running):
    world, server, phone_of = running
    a, b = phone_of(world.a), phone_of(world.b)
    b.send(m.QUOTE_REQUEST, {"slot": "ink", "sku": "INK-XL-BK", "qty": 1}, uplink_of=world.a.kid)
    assert wait_for(lambda: server.service.refusals.get("topic-mismatch") == 1, TIMEOUT)
    offer = a.ask(m.QUOTE_REQUEST, {"slot": "ink", "sku": "INK-XL-BK", "qty": 1})
    assert offer.type == m.OFFER and len(a.received) == 1
    assert b.received == [] and server.service.refusals == {"topic-mismatch": 1}


def test_the_vendor_serve_command_over_mutual_tls(broker, pki, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    vendor, owner = Ed25519Signer.generate(), Ed25519Signer.generate()
    save_keypair(vendor, keys / "vendor.key", keys / "vendor.pub")
    device = Device(5, vendor)
    db = str(tmp_path / "vendor.db")
    assert main(["vendor", "register", "--db", db, "--device-pub",
                 device.signer.public_key.hex(), "--owner-pub", owner.public_key.hex()]) == 0
    cert, key = pki.client(VENDOR)
    serve = subprocess.Popen(
        [sys.executable, "-m", "thingsdk.cli", "vendor", "serve", "--broker", broker.tls_url,
         "--db", db, "--catalog", str(EXAMPLE), "--key", str(keys / "vendor.key"),
         "--ca", str(pki.ca_file), "--cert", cert, "--keyfile", key, "--interval", "0.2"],
        stderr=subprocess.PIPE, text=True)
    try:
        for line in serve.stderr:
            if "serving" in line:
                break
        assert serve.poll() is None, "vendor serve exited"
        cert, key = pki.client(topics.kid_hex(device.kid))
        phone = Phone(device, broker.tls_url, lambda: int(time.time()),
                      ca_file=str(pki.ca_file), cert_file=cert, key_file=key)
        now = int(time.time())
        claims = mandate.make_claims(owner.kid, device.signer.public_key, 1, now - 60, now + DAY)
        phone.send(m.MANDATE, {"cwt": mandate.issue(claims, owner, codec)})
        offer = phone.ask(m.QUOTE_REQUEST, {"slot": "beans", "cat": "coffee-beans", "qty": 2})
        assert offer.type == m.OFFER and offer.body["sku"] == "BEANS-1KG"
        receipt = phone.ask(m.ORDER, order_for(offer.body))
        assert receipt.body["status"] == "accepted"
        phone.transport.close(timeout=1)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(TIMEOUT) == 0
        assert "vendor stopped" in serve.stderr.read()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        serve.stderr.close()
