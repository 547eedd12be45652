"""The device runtime end to end on a real mosquitto (mutual TLS, the thingsdk ACL) with the
reference vendor, in accelerated time; and its faults: a broker restart, the device process
killed at each state of an order, duplicated deliveries, replayed and tampered messages, the
vendor down for a while. Each fault test asserts exactly one order per need at the vendor, and
that it was delivered.
"""

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from broker import HOST, wait_for

from thingsdk import codec, topics
from thingsdk.core import envelope, lifecycle, mandate
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Signer
from thingsdk.device import config
from thingsdk.seller.serve import Server
from world import (DAY, HOUR, ROOT, SIMULATED, SLOT, TIMEOUT, Tap, World,
                   assert_one_order_delivered, audit, states_audited)

# ---- the happy path ----------------------------------------------------------------------------

def test_a_simulated_filter_is_reordered_delivered_and_refilled(world):
    world.start_vendor()
    device = world.device(owner_kept=False)
    assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
    assert_one_order_delivered(world)
    need = world.need()
    # The closed record is kept before its audit entry: let the device's thread append it.
    assert wait_for(lambda: ("delivered", "closed") in states_audited(world), TIMEOUT)
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


def test_a_device_without_its_broker_says_it_queues_and_then_that_it_connected(world, caplog):
    caplog.set_level(logging.INFO)
    path = world.config(SIMULATED)  # (enrols the device at the running broker)
    world.broker.stop()
    device = config.load(path)
    device.start()
    try:
        lines = [r.getMessage() for r in caplog.records]
        assert any(line.startswith("queued mandate ") and line.endswith(
            " until the broker is reached") for line in lines), lines
        assert not [line for line in lines if line.startswith("sent ")]
        assert wait_for(lambda: any(r.getMessage().startswith("cannot connect to %s:%d ("
                                                              % (HOST, world.broker.tls_port))
                                    for r in caplog.records), TIMEOUT)
        world.broker.start()
        assert device.transport.wait_connected(TIMEOUT)
        assert wait_for(lambda: "connected to %s:%d" % (HOST, world.broker.tls_port)
                        in [r.getMessage() for r in caplog.records], TIMEOUT)
    finally:
        device.close()


def test_a_missing_or_garbage_tls_key_stops_device_run_in_one_line_naming_it(world, capsys):
    from thingsdk.cli import main

    path = world.config(SIMULATED)
    _, key = world.broker.pki.client(topics.kid_hex(world.kid))
    text = path.read_text()
    path.write_text(text.replace(key, key + ".gone"))
    assert main(["device", "run", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        "thingsdk device: error: client key %s.gone: No such file or directory\n" % key)
    garbage = world.folder / "garbage.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnonsense\n")
    path.write_text(text.replace(key, str(garbage)))
    assert main(["device", "run", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        "thingsdk device: error: client key %s: not a PEM key\n" % garbage)


def test_a_fault_report_gets_the_vendors_steps(world):
    world.start_vendor()
    device = world.device()
    assert wait_for(lambda: device.refusals == {} and world.store.levels(world.kid), TIMEOUT)
    need = device.report_fault("e21-flow-sensor", {"flow": 0, "firmware": "1.2.0"})

    def case():
        return next(r for r in world.records() if r["need"] == need)

    assert wait_for(lambda: case()["state"] == lifecycle.CLOSED, TIMEOUT), case()
    assert case()["kind"] == lifecycle.SUPPORT and case()["reason"] == "answered"

    def steps():  # the closed record is kept before its audit entry: the device's thread adds it
        return [r["steps"] for r in audit(world) if r.get("need") == need and "steps" in r]

    assert wait_for(lambda: steps(), TIMEOUT)
    assert steps() == [["We opened a case and will get back to you within one working day."]]


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
        return super()._publish(answers + answers)


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

    def _answer_batch(self, messages):
        if any(payload(data)[2] == m.ORDER for _, data in messages) and not self.crashed.is_set():
            self.crashed.set()
            self.stop()
            raise RuntimeError("down before handling the order")
        return super()._answer_batch(messages)


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
