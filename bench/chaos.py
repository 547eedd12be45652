"""Chaos with real processes: the vendor, the broker and devices killed (SIGKILL) at random.

    python bench/chaos.py [--devices 6] [--cycles 20] [--seed 1]

Starts mosquitto (persistence on) on loopback, the reference vendor in its own process, and one
`thingsdk device run` process per device, all on one accelerated clock, each device buying water
filters for a simulated tank again and again. Then, `--cycles` times, waits a moment and kills
one of them at random with SIGKILL, starting it again a moment later. Then lets everything run
quietly, stops it cleanly, and checks, from the devices' state folders and the vendor's database:

- every need has at most one order id, and each order a need placed is at the vendor once;
- no device is charged twice: the vendor's spend record of each device holds exactly its orders
  that were accepted and not cancelled, each once;
- nothing is stuck: once quiet, no need begun more than STUCK ago is still short of a receipt
  (asking, deciding or ordering), and every order the vendor accepted has moved on (shipped,
  delivered or cancelled) when its lead time has passed.

Prints what was killed, the counts, and each check as met or NOT met. The vendor runs the same
Server, Service and Store as `thingsdk vendor serve`, in a process of its own started by this
file so that it can read the devices' accelerated clock.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from broker import Broker, Pki, wait_for  # noqa: E402
from world import CATALOG, LIFECYCLE, SIMULATED  # noqa: E402 (the device scenarios' world)

from thingsdk import codec  # noqa: E402
from thingsdk.core import lifecycle, mandate, restore  # noqa: E402
from thingsdk.core.ledger import COMMITTED, Ledger  # noqa: E402
from thingsdk.crypto import Ed25519Signer, save_keypair  # noqa: E402
from thingsdk.seller.service import register  # noqa: E402
from thingsdk.seller.store import Store  # noqa: E402

SPEED = 2000  # simulated seconds per real second
HOUR, DAY = 3600, 86400
DEVICE = """
[device]
key = "device.key"
state = "state"
vendor = "%(vendor)s"
owner = "%(owner)s"
mandate = "mandate.cwt"
interval = 0.05

[broker]
url = "%(url)s"
backoff = [0.05, 0.5]

[clock]
speed = %(speed)r
start = %(start)r

%(lifecycle)s
[[consumables]]
slot = "water-filter"
unit = "ml"
capacity = 1000
sku = "WF-300"
lead_time = %(lead)d
lead_spread = 3600
min_interval = 600
sensor = %(sensor)s
"""
STUCK = 4 * HOUR  # a need not ordered yet this long after it began is stuck, once all is quiet


def vendor_main(folder, url, speed, start):
    """The vendor process: Server, Service and Store as `vendor serve` builds them, on the
    devices' accelerated clock."""
    import logging
    import threading

    from thingsdk.crypto import load_signer
    from thingsdk.device.config import AcceleratedClock
    from thingsdk.mqtt import Transport
    from thingsdk.seller import catalog
    from thingsdk.seller.serve import Server
    from thingsdk.seller.service import Service

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signer = load_signer(folder / "vendor.key")
    service = Service(Store(folder / "vendor.db"), catalog.load(folder / "catalog.toml"), signer,
                      ttl=12 * HOUR)
    server = Server(service, Transport(url, "chaos-vendor"), interval=0.2,
                    clock=AcceleratedClock(speed, start))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (server.stop(), stop.set()))
    server.run()


class Process:
    """A child process started by `argv`, its output appended to `log`, killed and started again
    on demand."""

    def __init__(self, name, argv, log, cwd=None):
        self.name, self.argv, self.log, self.cwd = name, argv, log, cwd
        self.process = None
        self.kills = 0

    def start(self):
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=out, cwd=self.cwd)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class BrokerProcess:
    """The broker as a Process: killed with SIGKILL, started again on the same ports."""

    name = "broker"

    def __init__(self, broker):
        self.broker = broker
        self.kills = 0

    def kill(self):
        self.broker._process.send_signal(signal.SIGKILL)
        self.broker.stop()  # waits for it and closes its pipe
        self.kills += 1

    def start(self):
        self.broker.start()


def make_devices(folder, n, vendor, owner, url, start):
    """n device folders (key, mandate, config) registered at the vendor's database."""
    store = Store(folder / "vendor.db")
    devices = []
    now = int(start)
    for i in range(n):
        home = folder / ("device-%d" % i)
        home.mkdir()
        key = Ed25519Signer.generate()
        save_keypair(key, home / "device.key", home / "device.pub")
        claims = mandate.make_claims(owner.kid, key.public_key, 1, now - 60, now + 365 * DAY,
                                     [["vendors", {"kids": [vendor.kid]}],
                                      ["budget", {"cur": "EUR", "max": 10 ** 7,
                                                  "period": "month"}]])
        (home / "mandate.cwt").write_bytes(mandate.issue(claims, owner, codec))
        (home / "device.toml").write_text(DEVICE % {
            "vendor": vendor.public_key.hex(), "owner": owner.public_key.hex(), "url": url,
            "speed": SPEED, "start": start, "lead": 4 * HOUR, "lifecycle": LIFECYCLE,
            "sensor": SIMULATED})
        register(store, key.public_key, owner.public_key, now)
        devices.append((key.kid, home))
    store.close()
    return devices


def needs(home):
    """A device's need records, as kept in its state folder."""
    folder = home / "state" / "needs"
    if not folder.exists():
        return []
    return [codec.loads((folder / name).read_bytes()) for name in sorted(os.listdir(folder))
            if name.endswith(".cbor")]


def check(folder, devices, now):
    """The checks of the module's docstring: (counts, {check: problems})."""
    store = Store(folder / "vendor.db")
    problems = {"one order per need": [], "charged once": [], "nothing stuck": []}
    counts = {"needs": 0, "orders": 0, "delivered": 0}
    try:
        for kid, home in devices:
            orders = {o["id"]: o for o in store.orders(kid)}
            counts["orders"] += len(orders)
            counts["delivered"] += sum(o["status"] == "delivered" for o in orders.values())
            for need in needs(home):
                counts["needs"] += 1
                if need.get("oid") is not None and need["state"] not in (
                        lifecycle.ORDERING,) and need["oid"] not in orders:
                    problems["one order per need"].append((kid.hex(), need["oid"].hex()))
                if lifecycle.RANK[need["state"]] <= 1 and need["at"] < now - STUCK:
                    problems["nothing stuck"].append((kid.hex(), need["state"]))
            device = store.device(kid)
            ledger = restore.ledger(device.ledger) if device.ledger else Ledger()
            kept = {oid for oid in orders if ledger.state_of(oid) == COMMITTED}
            placed = {oid for oid, o in orders.items()
                      if o["status"] in ("accepted", "shipped", "delivered")}
            if kept != placed:
                problems["charged once"].append((kid.hex(), len(kept), len(placed)))
            for o in orders.values():
                if o["status"] in ("accepted", "shipped") and o["arrives_at"] < now - HOUR:
                    problems["nothing stuck"].append((kid.hex(), o["id"].hex(), o["status"]))
            # A need's order id is used by one need only.
            oids = [n["oid"] for n in needs(home) if n.get("oid") is not None]
            if len(oids) != len(set(oids)):
                problems["one order per need"].append((kid.hex(), "an order id in two needs"))
    finally:
        store.close()
    return counts, problems


def run(n_devices=6, cycles=20, seed=1, pause=(1.0, 3.0), down=(0.2, 1.0), quiet=15.0,
        out=print):
    """One chaos run: a kill every `pause` seconds (a random span in it), the victim down for
    `down` seconds, then `quiet` seconds without kills. True if every check is met; the figures
    go to `out`."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "broker").mkdir()
        (folder / "pki").mkdir()
        broker = Broker(folder / "broker", Pki(folder / "pki"), persistence=True)
        broker.start()
        start = time.time()
        vendor, owner = Ed25519Signer.generate(), Ed25519Signer.generate()
        save_keypair(vendor, folder / "vendor.key", folder / "vendor.pub")
        (folder / "catalog.toml").write_text(CATALOG)
        devices = make_devices(folder, n_devices, vendor, owner, broker.url, start)
        vendor_process = Process("vendor", [sys.executable, __file__, "--vendor", str(folder),
                                            broker.url, repr(start)], folder / "vendor.log")
        device_processes = [
            Process("device %d" % i, [sys.executable, "-m", "thingsdk.cli", "device", "run",
                                      "--config", "device.toml"], home / "device.log", cwd=home)
            for i, (_, home) in enumerate(devices)]
        everyone = [vendor_process, BrokerProcess(broker)] + device_processes
        try:
            for p in [vendor_process] + device_processes:
                p.start()
            if not wait_for(lambda: any(needs(home) for _, home in devices), 30):
                raise SystemExit("no device began a need: see %s" % folder)
            for cycle in range(cycles):
                time.sleep(rng.uniform(*pause))
                victim = rng.choice(everyone)
                victim.kill()
                time.sleep(rng.uniform(*down))
                victim.start()
            time.sleep(quiet)
        finally:
            for p in device_processes + [vendor_process]:
                p.stop()
            broker.stop()
        now = start + (time.time() - start) * SPEED
        counts, problems = check(folder, devices, now)
    out("chaos: %d devices, %d kills (SIGKILL) in %d cycles, seed %d"
        % (n_devices, sum(p.kills for p in everyone), cycles, seed))
    out("  killed          " + ", ".join("%s %d" % (p.name, p.kills) for p in everyone
                                         if p.kills))
    out("  orders at the vendor %(orders)d, delivered %(delivered)d; needs the devices still keep "
        "%(needs)d (a device keeps its last closed ones only)" % counts)
    for name, found in problems.items():
        out("  %-20s %s" % (name, "met" if not found else "NOT met: %s" % found[:5]))
    return not any(problems.values())


def main():
    if sys.argv[1:2] == ["--vendor"]:
        folder, url, start = sys.argv[2:5]
        vendor_main(Path(folder), url, SPEED, float(start))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=6)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(0 if run(args.devices, args.cycles, args.seed) else 1)


if __name__ == "__main__":
    main()
