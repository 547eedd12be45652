"""Scenarios of thingsdk's firmware on a board, each unchanged on a real board (--board PORT) and on
the virtual one (the default): deploy and boot, provisioning, a purchase, an over-budget refusal,
an owner's approval, a power cut between deciding and publishing, a tampered vendor message, the
broker down, a skewed clock. The vendor is the reference one, on the rig's mosquitto."""

import re

from thingsdk import codec, topics
from thingsdk.core import envelope, lifecycle
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Signer, Ed25519Verifier
from thingsdk.owner import answer, open_request
from dut import STOPPED
from world import Tap, assert_one_order_delivered

FUTURE = 7  # real seconds the board's clock runs ahead: hours of the world's accelerated time


def test_deploy_and_boot(board, rig, broker, make_world, make_dut):
    world = make_world(broker)
    make_dut(world)
    files = board.ls("/lib")
    assert "app.mpy" in files and "thingsdk" in files and board.ls("/")["main.py"] > 0
    board.soft_reset()
    out = board.exec("import app\nprint(app.boot())")
    assert "thingsdk: held by the test rig: not started" in out and "None" in out
    rig.set_hook({})  # no longer held: the next power-up starts the device from main.py
    board.hard_reset()
    board.expect(r"thingsdk: sent mandate", 60)
    board.expect(r"thingsdk: started, device %s" % topics.kid_hex(world.kid), 60)
    rig.set_hook({"hold": True})


def test_provisioning_with_an_identity_bundle(board, broker, make_world, make_dut):
    """The board holds the bundle's identity: its key signs what the bundle's public key verifies,
    and it trusts the pinned vendor and owner keys only."""
    world = make_world(broker)
    make_dut(world)
    config = board.eval("__import__('json').load(open('/identity/config.json'))")
    assert config["device_kid"] == topics.kid_hex(world.kid)
    assert config["vendor_kid"] == world.vendor_key.kid.hex()
    assert config["owner_kid"] == world.owner_key.kid.hex()
    signature = board.eval("__import__('thingsdk.core.ed25519').core.ed25519.Signer("
                           "open('/identity/device.seed', 'rb').read()).sign(b'provisioned')")
    assert Ed25519Verifier(world.device_key.public_key).verify(signature, b"provisioned")
    assert board.get("/identity/mandate.cwt") == (world.folder / "mandate.cwt").read_bytes()


def test_a_purchase_from_depletion_to_refill(board, broker, make_world, make_dut):
    world = make_world(broker)
    world.start_vendor()
    dut = make_dut(world)
    assert dut.run_until(dut.reached(lifecycle.CLOSED)), dut.need()
    assert_one_order_delivered(world, dut)
    decisions = dut.decisions()
    assert [d["action"] for d in decisions] == ["buy"] and decisions[0]["reason"] == "within-policy"
    # What the board signed verifies on the host; what the vendor signed verified on the board.
    sent = dut.verified_uplinks()
    assert sent[m.ORDER] == 1 and sent[m.QUOTE_REQUEST] >= 1 and sent[m.MANDATE] >= 1
    need = dut.need()
    assert need["receipt"][0] == "accepted" and need["shipments"] and need["delivered"]
    assert world.server.service.refusals == {}


def test_an_order_over_budget_is_refused(board, broker, make_world, make_dut):
    world = make_world(broker, rules=[["budget", {"cur": "EUR", "max": 1000, "period": "month"}]])
    world.start_vendor()
    dut = make_dut(world)
    assert dut.run_until(lambda: dut.decisions()), dut.need()
    decision = dut.decisions()[0]
    assert decision["action"] == "refuse" and "budget" in decision["reason"], decision
    assert "budget" in decision["text"]
    assert world.orders() == [] and m.ORDER not in dut.verified_uplinks()


def test_the_owner_approves_an_order_above_the_limit(board, broker, make_world, make_dut):
    world = make_world(broker, rules=[["approval-above", {"cur": "EUR", "amount": 1000}]])
    world.start_vendor()
    dut = make_dut(world)
    assert dut.run_until(dut.reached(lifecycle.APPROVING)), dut.need()
    assert world.orders() == []
    requests, why = [], []
    for data in dut.outbox():
        try:
            requests.append(open_request(data, world.owner_key, int(world.clock()),
                                         world.device_key.public_key))
        except ValueError as exc:  # a message for the vendor
            why.append(str(exc))
    assert len(requests) == 1, why
    approval = answer(requests[0], "approve", world.owner_key, 1, int(world.clock()),
                      b"owner-approval-1")
    board.put(approval, "/state/from-owner/approval.cose")
    assert dut.run_until(dut.reached(lifecycle.CLOSED)), dut.need()
    assert_one_order_delivered(world, dut)
    assert [d["action"] for d in dut.decisions()] == ["ask", "buy"]


def test_a_power_cut_between_deciding_and_publishing(board, rig, broker, make_world, make_dut):
    """The board keeps the sealed order, then loses power before it publishes it: after the
    restart the same order goes out, and the vendor gets exactly one."""
    world = make_world(broker)
    world.start_vendor()
    dut = make_dut(world, hook={"cut_before": "order"})
    for _ in range(60):
        rig.set_adc(dut.pin, dut.tank.raw())
        out = dut.run(until=STOPPED + "|thingsdk: holding the order for the rig: cut the power now")
        if "cut the power now" in out:
            break
    else:
        raise AssertionError("the board never kept an order: %r" % dut.need())
    board.hard_reset()  # the power is cut with the order sealed and kept, not published
    assert world.orders() == []
    need = dut.need()
    assert need["state"] == lifecycle.ORDERING and need["oid"]
    rig.set_hook({"hold": True})
    assert dut.run_until(dut.reached(lifecycle.CLOSED)), dut.need()
    assert_one_order_delivered(world, dut)
    assert dut.need()["oid"] == need["oid"]
    assert dut.verified_uplinks()[m.ORDER] >= 1


def test_a_tampered_vendor_message_is_refused_on_the_board(board, broker, make_world, make_dut):
    world = make_world(broker)
    world.start_vendor()
    dut = make_dut(world)
    down = Tap(broker, topics.downlink(world.kid))
    try:
        assert dut.run_until(lambda: len(down.seen) >= 1), dut.need()
        genuine = down.seen[0]
        flipped = bytearray(genuine)
        flipped[-5] ^= 0x40
        forger = Ed25519Signer.generate()
        forged = envelope.seal(m.ERROR, {"code": "out-of-stock", "text": "forged"}, forger,
                               world.kid, 1, int(world.clock()), b"forged-message-1", codec)
        down.publish(topics.downlink(world.kid), bytes(flipped))
        down.publish(topics.downlink(world.kid), forged)
        out = dut.run()
        assert re.search(r"thingsdk: refused bad-signature", out), out
        assert re.search(r"thingsdk: refused unknown-key", out), out
        assert dut.run_until(dut.reached(lifecycle.CLOSED)), dut.need()
        assert_one_order_delivered(world, dut)
    finally:
        down.close()


def test_the_broker_down_then_back(board, persistent_broker, make_world, make_dut):
    world = make_world(persistent_broker)
    world.start_vendor()
    dut = make_dut(world)
    assert dut.run_until(dut.reached(lifecycle.QUOTING, lifecycle.DECIDING, lifecycle.ORDERING,
                                      lifecycle.PLACED)), dut.need()
    persistent_broker.stop()
    for _ in range(3):  # the board goes on without its broker: nothing is lost or sent twice
        dut.rig.set_adc(dut.pin, dut.tank.raw())
        out = dut.run()
        assert "error in a turn" not in out, out
    persistent_broker.start()
    assert dut.run_until(dut.reached(lifecycle.CLOSED)), dut.need()
    assert_one_order_delivered(world, dut)


def test_a_board_clock_ahead_is_refused_then_recovers(board, rig, broker, make_world, make_dut):
    """The board's clock runs hours ahead: the vendor refuses its messages as from the future and
    no order is placed; with the clock set right, the purchase completes once."""
    world = make_world(broker)
    world.start_vendor()
    dut = make_dut(world)
    rig.skew_clock(FUTURE)
    for _ in range(8):
        rig.set_adc(dut.pin, dut.tank.raw())
        dut.run()
    assert world.server.service.refusals.get("from-future", 0) >= 1, world.server.service.refusals
    assert world.orders() == []
    rig.skew_clock(0)
    assert dut.run_until(dut.reached(lifecycle.CLOSED)), dut.need()
    assert_one_order_delivered(world, dut)
