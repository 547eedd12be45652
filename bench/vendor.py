"""The vendor's handler alone (no MQTT, a real SQLite file) against the crypto-only ceiling.

    python bench/vendor.py [--devices 400] [--batch 64] [--rounds 3] [--postgres]

A fleet of devices is registered, sends its owners' mandates and asks for two offers each (not
timed); then every device's two orders are handled, timed, in batches of 1 (one transaction and
one commit each, as before group commit) and of `--batch` (Service.handle_batch), each on a
fresh database. An order costs the vendor one Ed25519 verify (the device's signature) and one
sign (its receipt): the ceiling is the same verifies and signs with raw `cryptography` on
messages of the same size, measured in the same run. Prints orders per second for each batch
size, the ceiling, their ratio, and the target (the handler >= 50 % of the ceiling on one core)
as met or NOT met; and how long the store's write lock was held per order in the batches, what
bounds several workers however many there are (docs/architecture.md). Everything runs on one
thread, so both figures are per core. With `--postgres`, the batches run on a PostgreSQL server
(on this machine, over its Unix socket) too.

Measured on a shared 2-core machine (defaults): batches of 64 at about 2,500 orders/s, 34-35 % of a
ceiling near 7,300/s, from 2,100/s (29 %) before the vendor stopped repeating work per order; on
PostgreSQL about 930/s, from 670/s the same day before an order's four reads became two statements
(820/s on a quieter day, from 710/s before the vendor stopped repeating work per order). Where an
order's time goes, after the two signature operations (about a third): its nine SQL statements (a
quarter on SQLite, most of it on PostgreSQL, where each read is a round trip; writes go out
pipelined), then checking and decoding the payload it came in and the one it answers with, in pure
Python, and the order's own checks (offer, stock, mandate, ledger, policy).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from thingsdk import codec  # noqa: E402
from thingsdk.core import envelope, mandate  # noqa: E402
from thingsdk.core import messages as m  # noqa: E402
from thingsdk.crypto import Ed25519Signer  # noqa: E402
from thingsdk.seller import catalog  # noqa: E402
from thingsdk.seller.service import Service, register  # noqa: E402
from thingsdk.seller.store import open_store  # noqa: E402
from load_catalog import SKUS, catalog as load_catalog  # noqa: E402

TARGET = 0.5
DAY = 86400
VENDOR = Ed25519Signer.from_seed(b"\x01" * 32)
OWNER = Ed25519Signer.from_seed(b"\x02" * 32)


class BenchDevice:
    def __init__(self, n):
        self.signer = Ed25519Signer.from_seed(n.to_bytes(4, "big") * 8)
        self.kid = self.signer.kid
        self.seq = 0
        self.inbox = envelope.Inbox(self.kid, {VENDOR.kid: VENDOR.verifier()}, codec)

    def seal(self, msg_type, body, now):
        self.seq += 1
        return envelope.seal(msg_type, body, self.signer, VENDOR.kid, self.seq, now,
                             os.urandom(16), codec, 3600)


def prepared(where, n_devices, now):
    """A Service on a fresh database (see open_store) whose devices hold offers, and their
    sealed orders."""
    service = Service(open_store(where), catalog.parse(load_catalog(1000000)), VENDOR)
    devices = [BenchDevice(i) for i in range(1, n_devices + 1)]
    constraints = [["vendors", {"kids": [VENDOR.kid]}],
                   ["budget", {"cur": "EUR", "max": 10 ** 7, "period": "month"}]]
    warmup = []
    for d in devices:
        register(service.store, d.signer.public_key, OWNER.public_key, now)
        claims = mandate.make_claims(OWNER.kid, d.signer.public_key, 1, now - 60, now + DAY,
                                     constraints)
        warmup.append((d.seal(m.MANDATE, {"cwt": mandate.issue(claims, OWNER, codec)}, now),
                       d.kid))
        for sku in SKUS:
            warmup.append((d.seal(m.QUOTE_REQUEST, {"slot": sku.lower(), "sku": sku, "qty": 1},
                                  now), d.kid))
    by_kid = {d.kid: d for d in devices}
    orders = []
    for i in range(0, len(warmup), 64):
        for answers in service.handle_batch(warmup[i:i + 64], now):
            for topic, data in answers:
                d = by_kid[bytes.fromhex(topic.rsplit("/", 1)[1])]
                offer = d.inbox.open(data, now).message.body
                orders.append((d.seal(m.ORDER, m.order_body(offer, os.urandom(16), 1), now),
                               d.kid))
    return service, orders


def handler_rate(n_devices, batch, now, postgres=None):
    """Orders per second through Service.handle_batch in batches of `batch`, the order size, and
    the seconds per order the store's write lock was held; on a fresh SQLite file, or a fresh
    database of the `postgres` server (tests/postgres.py)."""
    with tempfile.TemporaryDirectory() as folder:
        where = postgres.database() if postgres else Path(folder) / "vendor.db"
        service, orders = prepared(where, n_devices, now)
        held = service.store.lock_time.held
        start = time.perf_counter()
        accepted = 0
        for i in range(0, len(orders), batch):
            for answers in service.handle_batch(orders[i:i + batch], now):
                accepted += len(answers)
        elapsed = time.perf_counter() - start
        held = (service.store.lock_time.held - held) / len(orders)
        assert accepted == len(orders), (accepted, len(orders))
        assert [o["status"] for o in service.store.orders(orders[0][1])] == ["accepted"] * 2
        service.store.close()
        return len(orders) / elapsed, len(orders[0][0]), held


def crypto_ceiling(n, size):
    """Orders per second if an order cost only one raw Ed25519 verify and one sign of `size`
    bytes (the device's order and the vendor's receipt)."""
    device, vendor = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    public = device.public_key()
    messages = [os.urandom(size) for _ in range(n)]
    signatures = [device.sign(data) for data in messages]
    start = time.perf_counter()
    for data, signature in zip(messages, signatures):
        public.verify(signature, data)
        vendor.sign(data)
    return n / (time.perf_counter() - start)


def run(n_devices, batch, rounds, postgres=None):
    """Each figure is the best of `rounds`, all measured in turn in every round, so that other
    work on the machine slows them alike. With a `postgres` server, batches on PostgreSQL too."""
    now = int(time.time())
    single = batched = ceiling = on_postgres = 0.0
    held = []
    for _ in range(rounds):
        rate, size, _ = handler_rate(n_devices, 1, now)
        single = max(single, rate)
        rate, _, lock = handler_rate(n_devices, batch, now)
        batched = max(batched, rate)
        held.append(lock)
        if postgres:
            on_postgres = max(on_postgres, handler_rate(n_devices, batch, now, postgres)[0])
        ceiling = max(ceiling, crypto_ceiling(2 * n_devices, size))
    ratio = batched / ceiling
    print("vendor handler, %d orders from %d devices (one thread), an order %d bytes, best of %d"
          % (2 * n_devices, n_devices, size, rounds))
    print("  batch of 1 (a commit per order)   %7.0f orders/s   %5.1f %% of the ceiling"
          % (single, 100 * single / ceiling))
    print("  batch of %-3d (group commit)       %7.0f orders/s   %5.1f %% of the ceiling"
          % (batch, batched, 100 * ratio))
    print("    the write lock held %.0f µs an order (least of %d; the receipt is signed after "
          "the commit, outside it)" % (1e6 * min(held), rounds))
    if postgres:
        print("  batch of %-3d on PostgreSQL        %7.0f orders/s   %5.1f %% of the ceiling"
              % (batch, on_postgres, 100 * on_postgres / ceiling))
    print("  crypto-only ceiling (raw cryptography: 1 verify + 1 sign per order)  %7.0f orders/s"
          % ceiling)
    print("  group commit / a commit per order %.2fx" % (batched / single))
    print("  target: handler >= %d %% of the ceiling per core: %s (%.1f %%)"
          % (100 * TARGET, "met" if ratio >= TARGET else "NOT met", 100 * ratio))
    return ratio >= TARGET


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", action="store_true",
                        help="measure the batches on PostgreSQL too (a server started from "
                             "Debian's binaries, see tests/postgres.py)")
    args = parser.parse_args()
    if not args.postgres:
        run(args.devices, args.batch, args.rounds)
        return
    from postgres import Postgres

    server = Postgres()
    try:
        run(args.devices, args.batch, args.rounds, server)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
