"""A fleet of simulated devices ordering through one local mosquitto from the reference vendor.

    python bench/fleet.py [--devices 1000] [--raw 20000]

Starts mosquitto on loopback and `thingsdk vendor serve` in its own process; opens one MQTT
connection per simulated device; each device sends its owner's mandate and a quote request, orders
the offer it gets, and waits for the receipt. Prints orders per second end to end and p50/p99
latency from order to receipt, next to the broker's raw QoS 1 publish->deliver rate measured with
plain paho clients on the same broker in the same run.
"""

import argparse
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from broker import HOST, Broker, Pki  # noqa: E402
from thingsdk import codec, topics  # noqa: E402
from thingsdk.core import envelope, mandate, messages  # noqa: E402
from thingsdk.crypto import Ed25519Signer, save_keypair  # noqa: E402
from thingsdk.vendor.service import register  # noqa: E402
from thingsdk.vendor.store import Store  # noqa: E402

DAY = 86400
CATALOG = """
[vendor]
offer_hours = 24
visit_hours = 168

[skus.INK-XL-BK]
title = "Black ink cartridge XL"
category = "ink-black"
price = [3190, "EUR"]
shipping = [0, "EUR"]
lead_hours = 48
stock = %d

[support]
steps = ["We opened a case."]
"""


def new_client(client_id):
    return paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=paho.MQTTv311, clean_session=True)


class SimDevice:
    """One device: its keys, its inbox for the vendor's answers, its MQTT client, its progress."""

    def __init__(self, signer, vendor_kid, token):
        self.signer = signer
        self.vendor_kid = vendor_kid
        self.token = token
        self.inbox = None
        self.seq = 0
        self.client = new_client(topics.kid_hex(signer.kid))
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.order_sent = self.receipt_at = self.outcome = None
        self.refused = 0

    def trust(self, vendor_verifier):
        self.inbox = envelope.Inbox(self.signer.kid, {vendor_verifier.kid: vendor_verifier}, codec)

    def send(self, msg_type, body, reply_to=None):
        self.seq += 1
        data = envelope.seal(msg_type, body, self.signer, self.vendor_kid, self.seq,
                             int(time.time()), os.urandom(16), codec, reply_to=reply_to)
        self.client.publish(topics.uplink(self.signer.kid), data, qos=1)

    def _connected(self, client, userdata, flags, reason, properties):
        client.subscribe(topics.downlink(self.signer.kid), qos=1)
        self.send(messages.MANDATE, {"cwt": self.token})
        self.send(messages.QUOTE_REQUEST, {"slot": "ink", "sku": "INK-XL-BK", "qty": 1})

    def _message(self, client, userdata, msg):
        opened = self.inbox.open(msg.payload, int(time.time()))
        if opened.status != envelope.ACCEPT:
            self.refused += 1
            return
        self.inbox.commit(opened)
        m = opened.message
        if m.type == messages.OFFER and self.order_sent is None:
            self.order_sent = time.perf_counter()
            self.send(messages.ORDER, messages.order_body(m.body, os.urandom(16), 1))
        elif m.type in (messages.RECEIPT, messages.ERROR) and self.outcome is None:
            self.outcome = m.body.get("status", "error")
            self.receipt_at = time.perf_counter()


def drive(devices, port, timeout):
    """Connect every device and pump their sockets in this thread until all have receipts."""
    selector = selectors.DefaultSelector()
    for d in devices:
        d.client.connect(HOST, port, keepalive=600)
        selector.register(d.client.socket(), selectors.EVENT_READ, d.client)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(d.outcome is None for d in devices):
        for d in devices:
            if d.client.want_write():
                d.client.loop_write()
        for key, _ in selector.select(timeout=0.05):
            key.data.loop_read()
    for d in devices:
        d.client.disconnect()


def raw_rate(port, count, size, window=500):
    """Messages per second from one paho publisher through the broker to one paho subscriber.

    The publisher keeps at most `window` messages undelivered, below mosquitto's per-client queue
    limit (1000), past which the broker drops QoS 1 messages for a slow subscriber.
    """
    received = [0]
    progress = threading.Condition()

    def on_message(client, userdata, msg):
        with progress:
            received[0] += 1
            progress.notify_all()

    sub, pub = new_client("raw-sub"), new_client("raw-pub")
    sub.on_message = on_message
    sub.connect(HOST, port)
    sub.subscribe("raw/bench", qos=1)
    sub.loop_start()
    pub.max_inflight_messages_set(100)
    pub.connect(HOST, port)
    pub.loop_start()
    time.sleep(0.5)
    payload = os.urandom(size)
    start = time.perf_counter()
    for sent in range(count):
        with progress:
            progress.wait_for(lambda: sent - received[0] < window, timeout=30)
        pub.publish("raw/bench", payload, qos=1)
    with progress:
        finished = progress.wait_for(lambda: received[0] == count, timeout=60)
    elapsed = time.perf_counter() - start
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    if not finished:
        raise SystemExit("raw run: only %d of %d delivered" % (received[0], count))
    return count / elapsed


def start_vendor(folder, broker, devices, owner):
    vendor = Ed25519Signer.generate()
    save_keypair(vendor, folder / "vendor.key", folder / "vendor.pub")
    db = folder / "vendor.db"
    catalog = folder / "catalog.toml"
    catalog.write_text(CATALOG % len(devices))
    store = Store(str(db))
    now = int(time.time())
    for d in devices:
        register(store, d.signer.public_key, owner.public_key, now)
    store.db.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "thingsdk.cli", "vendor", "serve", "--broker", broker.url,
         "--db", str(db), "--catalog", str(catalog), "--key", str(folder / "vendor.key")],
        stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "serving" in line:
            break
    if proc.poll() is not None:
        raise SystemExit("vendor serve exited: %s" % proc.stderr.read())
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its pipe drained
    return vendor, proc


def make_devices(n, owner):
    devices, now = [], int(time.time())
    for _ in range(n):
        signer = Ed25519Signer.generate()
        claims = mandate.make_claims(owner.kid, signer.public_key, 1, now - 60, now + DAY)
        devices.append(SimDevice(signer, None, mandate.issue(claims, owner, codec)))
    return devices


def run(n_devices, n_raw, timeout=300):
    """The figures of one run, as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "broker").mkdir()
        (folder / "pki").mkdir()
        broker = Broker(folder / "broker", Pki(folder / "pki"))
        broker.start()
        owner = Ed25519Signer.generate()
        devices = make_devices(n_devices, owner)
        vendor, proc = start_vendor(folder, broker, devices, owner)
        try:
            for d in devices:
                d.vendor_kid = vendor.kid
                d.trust(vendor.verifier())
            sealed = envelope.seal(messages.ORDER, {"order": bytes(16), "offer": bytes(16),
                                                    "sku": "INK-XL-BK", "qty": 1,
                                                    "total": [3190, "EUR"], "mandate": 1,
                                                    "test": False},
                                   devices[0].signer, vendor.kid, 1, int(time.time()),
                                   bytes(16), codec)
            raw = raw_rate(broker.port, n_raw, len(sealed))
            drive(devices, broker.port, timeout)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            broker.stop()
    done = [d for d in devices if d.outcome == "accepted"]
    latencies = sorted((d.receipt_at - d.order_sent) * 1000 for d in done)
    span = max(d.receipt_at for d in done) - min(d.order_sent for d in done) if done else 0
    return {
        "devices": n_devices, "receipts": len(done), "refused": sum(d.refused for d in devices),
        "other": sorted(set(d.outcome for d in devices) - {"accepted"}, key=str),
        "orders_per_s": len(done) / span if span else 0.0,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None,
        "raw_msgs_per_s": raw, "order_bytes": len(sealed),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--raw", type=int, default=20000, help="messages in the raw paho run")
    args = parser.parse_args()
    r = run(args.devices, args.raw)
    print("fleet through one local mosquitto: %d device connections" % r["devices"])
    print("  accepted receipts     %d of %d (other outcomes: %s; answers refused: %d)"
          % (r["receipts"], r["devices"], r["other"] or "none", r["refused"]))
    print("  orders per second     %8.1f   (order sent -> receipt, all devices at once)" % r["orders_per_s"])
    print("  latency p50 / p99     %8.1f / %.1f ms" % (r["p50_ms"], r["p99_ms"]))
    print("  raw QoS 1 rate        %8.1f msg/s (plain paho, %d-byte payloads, same broker)"
          % (r["raw_msgs_per_s"], r["order_bytes"]))
    print("  orders/s / raw msg/s  %8.3f" % (r["orders_per_s"] / r["raw_msgs_per_s"]))


if __name__ == "__main__":
    main()
