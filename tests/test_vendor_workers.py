"""`thingsdk vendor serve --workers 2` on a real mosquitto: two worker processes share the devices,
each device's messages are handled in the order it sent them, and a worker killed (SIGKILL) in the
middle of a burst is started again by its supervisor and loses nothing it acknowledged.

Each device orders one item and cancels that order right after it, before any answer: a cancel
handled before its order would be answered `unknown-order`, so every cancel confirmed shows the
device's messages were handled in order.
"""

import contextlib
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker import wait_for
from test_vendor import Device, backend, postgres  # noqa: F401 (the fixtures: both stores)
from test_vendor_crash import CATALOG, SKUS, TIMEOUT, Fleet
from thingsdk import topics
from thingsdk.core import messages as m
from thingsdk.core import restore
from thingsdk.crypto import Ed25519Signer, save_keypair
from thingsdk.mqtt import Ack, Transport
from thingsdk.seller import catalog
from thingsdk.seller.serve import Server, parse_part, part_of
from thingsdk.seller.service import Service, register
from thingsdk.seller.store import Store, open_store

DEVICES = 120
WORKERS = 2


def start_workers(folder, url, db):
    log = open(folder / "vendor.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "thingsdk.cli", "vendor", "serve", "--broker", url,
         "--db", str(db), "--catalog", str(folder / "catalog.toml"),
         "--key", str(folder / "vendor.key"), "--client-id", "vendor-under-test",
         "--interval", "3600", "--workers", str(WORKERS)], stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    text = lambda: (folder / "vendor.log").read_text()  # noqa: E731
    assert wait_for(lambda: text().count(" serving ") == WORKERS or process.poll() is not None,
                    TIMEOUT), text()
    assert process.poll() is None, text()
    return process, text


@contextlib.contextmanager
def stopped_at_the_end(supervisor, fleet, log):
    """The workers stopped cleanly once the block is done (killed if it failed), and the
    devices' connection closed."""
    try:
        yield
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(TIMEOUT) == 0, log()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        fleet.transport.close(timeout=1)


def worker_pid(log, index):
    """The pid of the latest process of worker `index`, from the supervisor's log."""
    return int(re.findall(r"vendor worker %d of \d+ started, pid (\d+)" % index, log)[-1])


def test_parts_split_the_devices_by_key_id():
    assert parse_part("1/2") == (1, 2)
    for bad in ("2/2", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_part(bad)
    kids = [Ed25519Signer.from_seed(bytes([i]) * 32).kid for i in range(40)]
    parts = [part_of(kid, 2) for kid in kids]
    assert set(parts) == {0, 1}
    assert parts == [int.from_bytes(kid, "big") % 2 for kid in kids]


def test_two_workers_keep_each_devices_order_and_lose_nothing_when_one_is_killed(
        broker, tmp_path, backend):
    vendor, owner = Ed25519Signer.generate(), Ed25519Signer.generate()
    save_keypair(vendor, tmp_path / "vendor.key", tmp_path / "vendor.pub")
    (tmp_path / "catalog.toml").write_text(CATALOG)
    devices = [Device(seed, vendor) for seed in range(10, 10 + DEVICES)]
    assert {part_of(d.kid, WORKERS) for d in devices} == set(range(WORKERS))
    store = open_store(backend)
    now = int(time.time())
    for device in devices:
        register(store, device.signer.public_key, owner.public_key, now)
    for i in range(WORKERS):  # sessions as a vendor that took every uplink left them
        held_all_uplinks(broker.url, "vendor-under-test-%dof%d" % (i, WORKERS))
    supervisor, log = start_workers(tmp_path, broker.url, backend)
    fleet = Fleet(broker.url, devices)
    with stopped_at_the_end(supervisor, fleet, log):
        offers = fleet.mandates_and_offers(owner, vendor, now)

        # The burst: per device, an order, its cancel at once, a status, and a second order.
        cancelled, kept = {}, {}  # order id -> device
        level = {"slots": [{"slot": "ink", "unit": "pcs", "level": 1, "cap": 4, "rate": 0}]}
        sent = []
        for device in devices:
            first = m.order_body(offers[(device.kid, SKUS[0])], os.urandom(16), 1)
            second = m.order_body(offers[(device.kid, SKUS[1])], os.urandom(16), 1)
            cancelled[first["order"]], kept[second["order"]] = device, device
            sent += [fleet.send(device, m.ORDER, first),
                     fleet.send(device, m.CANCEL, {"order": first["order"], "by": "owner",
                                                   "reason": "changed-mind"}),
                     fleet.send(device, m.STATUS, level),
                     fleet.send(device, m.ORDER, second)]
        answers = {d.kid: [] for d in devices}  # device -> [(type, order id, status)] in order

        def answered():
            for device, answer in fleet.answers():
                answers[device.kid].append((answer.type, answer.body.get("order"),
                                            answer.body.get("status", answer.body.get("code"))))
            return sum(len(a) for a in answers.values())

        # Worker 1 killed once a quarter of the answers are in: some more are on their way.
        expected = 3 * DEVICES  # two receipts and a cancel confirmation per device
        assert wait_for(lambda: answered() >= expected // 4, TIMEOUT)
        killed = worker_pid(log(), 1)
        os.kill(killed, signal.SIGKILL)
        # Counted at the kill, not once the new worker is up: by then it may have caught up.
        assert answered() < expected, "the burst was over before the kill"
        assert all(ack.wait(TIMEOUT) and not ack.refused for ack in sent)
        assert wait_for(lambda: worker_pid(log(), 1) != killed, TIMEOUT), log()
        assert wait_for(lambda: answered() and all(len(set(a)) >= 3 for a in answers.values()),
                        TIMEOUT), answers
        assert "killed by SIGKILL" in log()

        for device in devices:
            # Answers to messages already handled are sent again: first occurrences, in order.
            seen = list(dict.fromkeys(answers[device.kid]))
            first, second = [o for o, d in cancelled.items() if d is device] + \
                            [o for o, d in kept.items() if d is device]
            assert seen == [(m.RECEIPT, first, "accepted"), (m.CANCEL, first, None),
                            (m.RECEIPT, second, "accepted")], (device.kid.hex(), seen)
        # Each worker, asked for its counters, was given its own part's uplinks only (its
        # session's plain subscription gone): none passed over, and it did work.
        supervisor.send_signal(signal.SIGUSR1)
        assert wait_for(lambda: log().count("vendor counters") == WORKERS, TIMEOUT), log()
        for i in range(WORKERS):
            said = re.search(r"vendor counters \(devices of part %d of %d\): .*passed over: (\d+);"
                             r" (\d+) transactions held the write lock" % (i, WORKERS), log())
            assert said and int(said.group(1)) == 0 and int(said.group(2)) > 0, log()
    assert "vendor workers stopped (1 restarted on the way)" in log()

    # In the vendor's books: one order per need, the cancelled one released, the other charged.
    for device in devices:
        rows = {r["id"]: r for r in store.orders(device.kid)}
        assert sorted(r["sku"] for r in rows.values()) == sorted(SKUS)
        ledger = restore.ledger(store.device(device.kid).ledger)
        for order_id, row in rows.items():
            if order_id in cancelled:
                assert row["status"] == "cancelled" and ledger.state_of(order_id) is None
            else:
                assert row["status"] == "accepted" and ledger.state_of(order_id) == "committed"
        assert ledger.usage({"cur": "EUR", "period": "month"}, now)[0] == 1


def held_all_uplinks(url, client_id):
    """Leave the persistent session of `client_id` subscribed to every device's uplink."""
    transport = Transport(url, client_id).start()
    try:
        assert transport.subscribe(topics.every(topics.UP)).wait(TIMEOUT)
    finally:
        transport.close(timeout=1)


def test_a_device_registered_while_the_workers_run_is_served(broker, tmp_path, backend):
    """Each worker subscribes to its own devices' uplinks: one registered after it started is
    subscribed to at its next look, and served by its part's worker alone."""
    vendor, owner = Ed25519Signer.generate(), Ed25519Signer.generate()
    save_keypair(vendor, tmp_path / "vendor.key", tmp_path / "vendor.pub")
    (tmp_path / "catalog.toml").write_text(CATALOG)
    store = open_store(backend)
    supervisor, log = start_workers(tmp_path, broker.url, backend)
    assert re.findall(r"on the uplinks of its (\d+) registered devices", log()) == ["0", "0"]
    devices = [Device(seed, vendor) for seed in range(200, 206)]
    assert {part_of(d.kid, WORKERS) for d in devices} == set(range(WORKERS))
    fleet = Fleet(broker.url, devices)
    with stopped_at_the_end(supervisor, fleet, log):
        now = int(time.time())
        for device in devices:
            register(store, device.signer.public_key, owner.public_key, now)
        for i in range(WORKERS):
            mine = sum(part_of(d.kid, WORKERS) == i for d in devices)
            said = "newly registered devices (devices of part %d of %d), %d in all" % (
                i, WORKERS, mine)
            assert wait_for(lambda: said in log(), TIMEOUT), log()
        offers = fleet.mandates_and_offers(owner, vendor, now)
        assert len(offers) == len(devices) * len(SKUS)
        assert fleet.answers() == []  # one offer each: no worker answered another's device
    assert re.findall(r"passed over: (\d+);", log()) == ["0", "0"], log()
    assert "unknown-device" not in log()


class SubscribeRecorder:
    """A transport that records the filters subscribed to, each SUBSCRIBE answered at once with
    `reasons`."""

    host, port = "broker.test", 1883

    def __init__(self, reasons=1):
        self.subscribed = []
        self.reasons = reasons

    def ack(self, delivery):
        pass

    def subscribe(self, topic_filter):
        self.subscribed.append(topic_filter)
        ack = Ack()
        ack._answer([self.reasons] * len(topic_filter))
        return ack


def test_a_worker_that_cannot_read_new_registrations_skips_none_and_says_a_refusal(
        tmp_path, caplog):
    """Registrations are read page by page; a read that fails is logged and tried again at the
    next look from the first device not yet subscribed to, so none is skipped or taken twice. A
    SUBSCRIBE the broker refuses is said as an error."""
    store = open_store(tmp_path / "vendor.db")
    owner = Ed25519Signer.generate()
    signers = [Ed25519Signer.from_seed(bytes([i]) * 32) for i in range(60, 72)]
    for signer in signers:
        register(store, signer.public_key, owner.public_key, 1)
    pages, fail = [], [2]  # the second page read fails once

    def devices_after(number, limit=1000):
        pages.append(number)
        if len(pages) in fail:
            fail.clear()
            raise sqlite3.OperationalError("disk I/O error")
        return Store.devices_after(store, number, limit=3)

    store.devices_after = devices_after
    service = Service(store, catalog.parse(CATALOG), Ed25519Signer.generate())
    server = Server(service, SubscribeRecorder(), part=(1, 2))
    with caplog.at_level(logging.INFO, logger="thingsdk.seller.serve"):
        server._new_registrations()
        assert "could not read the newly registered devices" in caplog.text
        server._new_registrations()
    mine = [topics.uplink(s.kid) for s in signers if part_of(s.kid, 2) == 1]
    got = [f for chunk in server.transport.subscribed for f in chunk]
    assert got == mine and len(set(got)) == len(got)
    assert ", %d in all" % len(mine) in caplog.text

    server.transport.reasons = 0x87  # not authorised
    late = next(signer for signer in (Ed25519Signer.from_seed(bytes([i]) * 32)
                                      for i in range(99, 120)) if part_of(signer.kid, 2) == 1)
    register(store, late.public_key, owner.public_key, 2)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="thingsdk.seller.serve"):
        server._new_registrations()
    assert server.transport.subscribed[-1] == (topics.uplink(late.kid),)
    assert "vendor REFUSED by broker.test:1883: the uplinks of newly registered devices (devices "\
           "of part 1 of 2) (1 SUBSCRIBEs)" in caplog.text, caplog.text


def test_workers_and_a_shared_subscription_are_refused_together(tmp_path, capsys):
    from thingsdk.cli import main

    common = ["vendor", "serve", "--broker", "mqtt://127.0.0.1:1", "--db", str(tmp_path / "v.db"),
              "--catalog", "c.toml", "--key", "v.key", "--share", "vendor"]
    for extra in (["--workers", "2"], ["--part", "0/2"]):
        assert main(common + extra) == 2
        assert "use one or the other" in capsys.readouterr().err
    assert not (tmp_path / "v.db").exists()


def test_sqlite_writers_take_turns_on_the_lock_file(tmp_path):
    """A writer waits on `<file>.lock` (woken when it is released), not only on SQLite's lock."""
    import threading

    from thingsdk.seller.store import Store, WriterLock

    db = tmp_path / "vendor.db"
    store, entered = Store(db), threading.Event()

    def write():
        with store.transaction():
            store.next_seq()
            entered.set()

    with WriterLock(db):  # SQLite's own lock is free meanwhile
        writer = threading.Thread(target=write)
        writer.start()
        assert not entered.wait(0.3)
    assert entered.wait(10)
    writer.join()
    assert (tmp_path / "vendor.db.lock").exists() and store.next_seq() == 1


def test_a_store_leaves_no_file_open_once_closed_or_let_go(tmp_path):
    """Each SQLite store holds its database and its lock file open: closed with it, and let go
    with it too (a reader of the vendor's orders in a loop used to leak a descriptor a time)."""
    import gc

    from thingsdk.seller.store import Store

    def open_files():
        gc.collect()  # a store let go, in a reference cycle or not
        return sorted(os.listdir("/proc/self/fd"))

    Store(tmp_path / "vendor.db").close()  # the database and its lock file made
    before = open_files()
    for _ in range(20):
        assert Store(tmp_path / "vendor.db").orders(b"\x01" * 8) == []
    assert open_files() == before
    store = Store(tmp_path / "vendor.db")
    assert len(open_files()) > len(before)
    store.close()
    assert open_files() == before


def test_workers_stop_when_their_supervisor_is_killed(broker, tmp_path):
    """A supervisor killed with SIGKILL leaves no worker behind to race its next one's sessions."""
    vendor = Ed25519Signer.generate()
    save_keypair(vendor, tmp_path / "vendor.key", tmp_path / "vendor.pub")
    (tmp_path / "catalog.toml").write_text(CATALOG)
    supervisor, log = start_workers(tmp_path, broker.url, tmp_path / "vendor.db")
    pids = [worker_pid(log(), i) for i in range(WORKERS)]
    try:
        supervisor.kill()
        supervisor.wait(TIMEOUT)

        def gone(pid):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            # Reparented and exited but not yet reaped: a zombie has stopped all the same.
            return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] == "Z"

        assert wait_for(lambda: all(gone(pid) for pid in pids), TIMEOUT), log()
        assert log().count("supervisor (pid %d) is gone: stopping" % supervisor.pid) == WORKERS
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_workers_that_could_not_start_are_not_started(tmp_path, capsys):
    """A setting every worker would refuse is said once, and no worker is started."""
    from thingsdk.cli import main

    vendor = Ed25519Signer.generate()
    save_keypair(vendor, tmp_path / "vendor.key", tmp_path / "vendor.pub")
    broken = tmp_path / "catalog.toml"
    broken.write_text(CATALOG.replace("stock = 100000", "stock = -1", 1))
    assert main(["vendor", "serve", "--broker", "mqtt://127.0.0.1:1", "--db",
                 str(tmp_path / "v.db"), "--catalog", str(broken), "--key",
                 str(tmp_path / "vendor.key"), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err == "thingsdk vendor: error: %s: skus.INK-XL-BK.stock: must be 0 or more\n" % broken
