"""A device that lost its sequence counters rejoins the vendor (docs/protocol.md, "Resync"), on a
real mosquitto with the reference vendor and the device runtime, in accelerated time: its state
folder wiped after an order, or while one is open, or restored from an old copy. Each asserts
exactly one order per need at the vendor; a replayed resync is never a second one (the vendor's
refusals of replays are in tests/test_vendor.py).
"""

import logging
import shutil

from broker import wait_for

from thingsdk import codec, topics
from thingsdk.core import lifecycle
from thingsdk.core import messages as m
from thingsdk.core.resync import GAP
from world import TIMEOUT, Tap, World, assert_one_order_delivered, audit


def stop_device(world):
    stop, thread = world.devices.pop()
    stop.set()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def highest(world):
    """The highest sequence number the vendor has seen from the device."""
    return world.store.device(world.kid).replay["senders"][0][1]


def resyncs(world):
    """The device's audit entries about resyncs."""
    return [r for r in audit(world) if "resync" in r]


def sent_types(tap):
    """The message types a Tap saw on the device's uplink, in order."""
    return [codec.loads(codec.loads(data).value[2])[2] for data in tap.seen]


def test_a_wiped_device_rejoins_and_orders_once_per_need(world, caplog):
    caplog.set_level(logging.INFO)
    world.start_vendor()
    world.device()
    assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
    assert_one_order_delivered(world)
    first = world.need()
    stop_device(world)
    floor = highest(world)
    shutil.rmtree(world.folder / "state")  # every counter, record and sealed message gone

    up = Tap(world.broker, topics.uplink(world.kid))
    down = Tap(world.broker, topics.downlink(world.kid))
    device = world.device()
    try:
        assert wait_for(lambda: [r["resync"] for r in resyncs(world)] == ["asked", "done"],
                        TIMEOUT), resyncs(world)
        done = resyncs(world)[1]
        assert done["epoch"] == 1 and done["from"] == floor + GAP + 1
        assert done["orders"] == []  # the first order was delivered: nothing is open
        sent = sent_types(up)  # the mandate, refused before, is told again after the resync
        assert sent.count(m.RESYNC) == 1 and m.MANDATE in sent[sent.index(m.RESYNC):]
        # The new need runs to its end: one more order, delivered, for the one new need.
        assert wait_for(lambda: world.need() and world.need()["state"] == lifecycle.CLOSED,
                        TIMEOUT), (world.need(), world.orders())
        orders = world.orders()  # later needs may have ordered since: one order each
        need = world.need()
        assert need["need"] != first["need"]
        assert [o["id"] for o in orders][:2] == [first["oid"], need["oid"]]
        assert [o["status"] for o in orders][:2] == ["delivered", "delivered"]
        kept = [r["oid"] for r in world.records() if r["oid"] is not None]
        assert all(o["id"] in kept + [first["oid"]] for o in orders), (orders, kept)
        assert all(o["status"] not in ("duplicate", "rejected") for o in orders), orders
        refusals = world.server.service.refusals
        assert refusals.get("too-old", 0) + refusals.get("replayed", 0) >= 1
        assert "stale-nonce" not in refusals

        # Someone replays the resync at once: a duplicate delivery, answered with the first
        # reply byte for byte, and never a second resync.
        [resync] = [d for d, t in zip(up.seen, sent_types(up)) if t == m.RESYNC]
        up.publish(topics.uplink(world.kid), resync)
        assert wait_for(lambda: sent_types(down).count(m.RESYNC_REPLY) == 2, TIMEOUT)
        first_reply, again = [d for d, t in zip(down.seen, sent_types(down))
                              if t == m.RESYNC_REPLY]
        assert again == first_reply
        assert world.store.db.execute("SELECT epoch FROM resyncs").fetchall() == [(1,)]
        assert [r["resync"] for r in resyncs(world)] == ["asked", "done"]
    finally:
        up.close()
        down.close()
    assert device.refusals == {}
    vendor_said = [r.getMessage() for r in caplog.records if r.name == "thingsdk.seller.resync"]
    assert any("counters were lost" in text for text in vendor_said), vendor_said
    assert any("rejoined (resync 1)" in text for text in vendor_said), vendor_said
    device_said = [r.getMessage() for r in caplog.records if "RESYNC" in r.getMessage()]
    assert any(topics.kid_hex(world.vendor_key.kid)[:8] in t for t in device_said), device_said


def test_a_device_restored_from_an_old_backup_rejoins_and_orders_once(world):
    world.start_vendor()
    world.device()
    assert wait_for(world.reached(lifecycle.PLACED, lifecycle.SHIPPED), TIMEOUT), world.need()
    stop_device(world)
    backup = world.folder / "backup"
    shutil.copytree(world.folder / "state", backup)
    device = world.device()  # it carries on, numbering its messages above the copy's
    assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
    seen = highest(world)
    for n in range(3):  # and says a few more things, so the copy's numbers are all used
        device.report_fault("fault-%d" % n, {"n": n})
    assert wait_for(lambda: highest(world) >= seen + 3, TIMEOUT)
    stop_device(world)

    shutil.rmtree(world.folder / "state")
    shutil.copytree(backup, world.folder / "state")  # the old copy comes back
    world.device()
    assert wait_for(lambda: [r["resync"] for r in resyncs(world)] == ["asked", "done"],
                    TIMEOUT), resyncs(world)
    # The restored need learns of the delivery again, and closes; the vendor placed one order.
    assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
    assert_one_order_delivered(world)
    # One resync, however many of the copy's old messages were refused.
    assert [r["resync"] for r in resyncs(world)] == ["asked", "done"]
    assert world.store.db.execute("SELECT epoch FROM resyncs").fetchall() == [(1,)]


def test_a_device_wiped_while_its_order_is_open_does_not_order_it_twice(tmp_path, broker):
    # Slower: a need opens some 2,800 simulated seconds after a start, the open order arrives
    # 7,200 after it was placed; at 150 that leaves the restart 28 s.
    world = World(tmp_path, broker, speed=150)
    try:
        world.start_vendor()
        world.device()
        assert wait_for(world.reached(lifecycle.PLACED), 2 * TIMEOUT), world.need()
        first = world.need()
        stop_device(world)
        shutil.rmtree(world.folder / "state")
        world.device()
        assert wait_for(lambda: [r["resync"] for r in resyncs(world)] == ["asked", "done"],
                        TIMEOUT), resyncs(world)
        assert resyncs(world)[1]["orders"] == [first["oid"]]  # the vendor told it
        assert wait_for(world.reached(lifecycle.PLACED), 2 * TIMEOUT), world.need()
        need = world.need()
        assert need["need"] != first["need"]
        # The need is covered by the open order: the vendor placed nothing new.
        ref = world.orders()[0]["receipt"]
        assert need["receipt"] == ["duplicate", codec.loads(ref)["ref"]]
        assert [o["status"] for o in world.orders()][1:] == ["duplicate"]
        assert world.orders()[0]["status"] in ("accepted", "shipped")  # still on its way
    finally:
        world.close()
