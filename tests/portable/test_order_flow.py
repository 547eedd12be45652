"""A whole order on the portable agent and the firmware's flash store, on CPython and MicroPython:
quote, decision, order, receipt, shipment, delivery, refill, every message signed and verified by
the core; then the same state read back from flash carries on where it was."""

import sys

from order_flow import Flow
from test_flash import _scenario
from thingsdk.core import lifecycle
from thingsdk.core import messages as m
from thingsdk.core.agent import (CHECKING, DECIDING, OCCASIONAL, SPARE_CLOSED, SPARE_IDS,
                                  STARTING, drop)
from thingsdk.core.replay import MAX_SEQ


def _one_order(root):
    flow = Flow(root)
    flow.run()
    need = flow.need()
    assert need["state"] == lifecycle.CLOSED and need["reason"] == "refilled"
    assert need["delivered"][1] == need["order"]["qty"]
    assert sorted(flow.vendor.got[:3]) == [m.STATUS, m.QUOTE_REQUEST, m.MANDATE]
    assert flow.vendor.got.count(m.ORDER) == 1 and flow.vendor.refused == 0
    assert flow.agent.refusals == {}
    ledger = flow.agent.ledger.to_state()
    assert ledger  # the order's money is on record
    decisions = [r for r in flow.agent.state.audit.records() if r.get("action")]
    assert [d["action"] for d in decisions] == ["buy"] and decisions[0]["reason"] == "within-policy"


def test_an_order_runs_from_need_to_refill():
    _scenario(_one_order)


def _lean(record):
    return not (record["offers"] or record["decision"] or record["order"] or record["receipt"]
                or record["shipments"] or record["vendor"] or record["owner"] or record["first"])


def _orders_in_a_row(root):
    flow = Flow(root)
    orders = flow.agent.orders
    assert orders.keep_closed == (SPARE_CLOSED if flow.agent.spare else lifecycle.MAX_CLOSED)
    orders.keep_closed = SPARE_CLOSED  # as a board's agent keeps them (CPython's keeps more)
    flow.orders(3)
    assert flow.vendor.got.count(m.ORDER) == 3 and flow.vendor.refused == 0
    # The latest two closed needs are kept, in memory and on flash; the first is gone from both.
    kept = orders.records()
    assert [r["state"] for r in kept] == [lifecycle.CLOSED] * SPARE_CLOSED
    assert all(r["reason"] == "refilled" for r in kept)
    # In a board's memory they keep what a late message is matched by and what rests a slot, not
    # their offers, decision, order and the rest, which their records on flash keep.
    on_flash = flow.agent.state.records()
    assert all(r["offers"] and r["decision"] and r["order"] and r["receipt"] and r["shipments"]
               and r["vendor"] and r["first"] for r in on_flash)
    assert [_lean(r) for r in kept] == [flow.agent.spare] * SPARE_CLOSED
    assert all(r["oid"] and r["delivered"] and r["ids"] and r["closed"] for r in kept)
    assert sorted(r["need"] for r in on_flash) == sorted(r["need"] for r in kept)
    # Late messages still meet their closed need, lean or not, by the order they name, the message
    # they answer or the order an error refers to, and change nothing.
    latest = kept[-1]
    for t, re, body in ((m.DELIVERY, None, {"order": latest["oid"]}),
                        (m.OFFER, latest["ids"][0][0], {}),
                        (m.ERROR, None, {"ref": latest["oid"]})):
        msg = {"from": b"", "id": bytes(16), "t": t, "re": re, "b": body, "data": None}
        assert orders.message(msg, flow.now)[0][2]["ignored"] == "closed"
    assert orders.ignored == {"closed": 3} and orders.records() == kept
    # A board's inbox remembers the ids of the SPARE_IDS latest messages of each sender (a Pi's,
    # the replay guard's 32): three orders brought more than that from the vendor, and none was
    # refused. Started again from flash, it reads back as many, and its closed needs are lean
    # again once carried on.
    assert flow.agent.refusals == {}
    for agent in (flow.agent, flow.restarted().agent):
        most = max(len(sender[3]) for sender in agent.inbox.guard.to_state()["senders"])
        assert most == SPARE_IDS if agent.spare else most > SPARE_IDS
        kept = agent.orders.records()
        assert [_lean(r) for r in kept] == [agent.spare] * SPARE_CLOSED
        assert sorted(r["need"] for r in on_flash) == sorted(r["need"] for r in kept)


def test_a_board_keeps_its_latest_closed_needs_only():
    _scenario(_orders_in_a_row)


def _spares(root):
    names = ["thingsdk.core." + name for name in DECIDING]
    checking = ["thingsdk.core." + name for name in CHECKING]
    held = [(name, sys.modules.get(name)) for name in names + checking]  # put back after
    drop(DECIDING)
    flow = Flow(root)
    flow.agent.spare = True  # as a board's agent (order_flow sets it on MicroPython)
    loaded, judged, judge = [], [], flow.agent._judge

    def _judging(*args):  # the validator of messages is out of the heap while it decides
        taken = judge(*args)
        judged.append([name for name in checking if name in sys.modules])
        return taken

    flow.agent._judge = _judging
    try:
        for _ in range(200):
            flow.turn()
            loaded += [name for name in names if name in sys.modules]
            if flow.need() is not None and flow.need()["state"] == lifecycle.CLOSED:
                break
    finally:
        emptied = [name for name, module in held if module is not None and not module.__dict__]
        _put_back(held)
    if sys.implementation.name == "micropython":  # a stale pointer to a dropped module keeps
        # none of its code alive: its globals were emptied
        assert emptied == [name for name, module in held if module is not None]
    else:
        assert emptied == []  # CPython keeps them whole for code that still holds them
    assert flow.need()["state"] == lifecycle.CLOSED and flow.vendor.got.count(m.ORDER) == 1
    decisions = [r for r in flow.agent.state.audit.records() if r.get("action")]
    assert [d["action"] for d in decisions] == ["buy"]
    assert loaded == []  # the need was opened and decided, and no turn ended with them loaded
    assert judged == [[]]


def test_an_agent_that_spares_its_heap_drops_the_deciding_code_after_each_decision():
    _scenario(_spares)


def _put_back(held):
    """The (name, module) pairs `held` back in sys.modules and their package, as a test found
    them (a module a test dropped stays loaded in the modules that imported it), but those whose
    globals the drop emptied (on MicroPython, agent.drop): the next import loads them anew."""
    package = sys.modules["thingsdk.core"]
    for name, module in held:
        if module is not None and module.__dict__:
            sys.modules[name] = module
            setattr(package, name.split(".")[-1], module)


def _new_mandate(root):
    flow = Flow(root)
    flow.agent.spare = True  # as a board's agent (order_flow sets it on MicroPython)
    # imported once the Flow is made: a board's agent drops the mandate's code as it starts
    from thingsdk.core import cbor, ed25519, envelope, mandate
    from thingsdk.core.consumable import DAY

    held = [("thingsdk.core.mandate", mandate)]
    owner = ed25519.Signer(bytes([3]) * 32)  # the owner of order_vendor.World
    claims = mandate.make_claims(owner.kid, flow.agent.signer.public_key, 2, flow.now - 60,
                                 flow.now + DAY, [])
    data = envelope.seal(m.MANDATE, {"cwt": mandate.issue(claims, owner, cbor)}, owner,
                         flow.agent.kid, 1, flow.now, bytes(range(16)), cbor)
    try:
        flow.agent.receive(data, flow.now)
        loaded = "thingsdk.core.mandate" in sys.modules
    finally:
        _put_back(held)
    assert flow.agent.mandate.version == 2
    assert not loaded  # the code that verified it left the heap; the Mandate held needs none


def test_an_agent_that_spares_its_heap_drops_the_mandate_code_once_a_new_mandate_is_held():
    _scenario(_new_mandate)


def _resumes(root):
    flow = Flow(root)
    for _ in range(200):
        flow.turn()
        if flow.need() is not None and flow.need()["state"] == lifecycle.PLACED:
            break
    placed = flow.need()
    assert placed["state"] == lifecycle.PLACED
    used = flow.agent.state.sequence.take()
    again = flow.restarted()  # a power cut: the same flash, a new agent
    assert again.need()["need"] == placed["need"] and again.need()["state"] == lifecycle.PLACED
    if again.agent.spare:  # a board's agent drops the code that read its state back
        assert [name for name in STARTING if "thingsdk.core." + name in sys.modules] == []
    assert again.agent.state.sequence.take() > used  # sequence numbers never go back
    again.run()
    assert again.need()["state"] == lifecycle.CLOSED
    assert flow.vendor.got.count(m.ORDER) == 1 and flow.vendor.refused == 0


def test_a_power_cut_mid_order_resumes_from_flash():
    _scenario(_resumes)


def _fewer_fit(root):
    flow = Flow(root, order_qty=31)  # a heavy user's need: 31 bags, the budget is 100.00 EUR
    asked = []
    answer = flow.vendor._answer

    def _answer(msg, now):
        if msg.type == m.QUOTE_REQUEST:
            asked.append(msg.body["qty"])
        return answer(msg, now)

    flow.vendor._answer = _answer
    loaded, judge = [], flow.agent._judge  # the rarer events' code loaded as each one decides

    def _judging(*args):
        loaded.append([name for name in OCCASIONAL if "thingsdk.core." + name in sys.modules])
        return judge(*args)

    flow.agent._judge = _judging
    flow.run()
    need = flow.need()
    assert asked == [31, 5]  # (100.00 - 4.90) / 18.90: 5 bags fit, asked for anew
    if flow.agent.spare:  # a board's agent: the new round after the wait loaded the lifecycle's
        assert loaded == [[], []]  # rarer events, and it dropped them before deciding again
    assert need["state"] == lifecycle.CLOSED and need["order"]["qty"] == 5
    assert need["reason"] == "refilled" and flow.vendor.got.count(m.ORDER) == 1
    decisions = [r for r in flow.agent.state.audit.records() if r.get("action")]
    assert [(d["action"], d["reason"], d["qty"]) for d in decisions] == [
        ("wait", "fewer-fit", 5), ("buy", "within-policy", 5)]
    assert decisions[0]["text"].endswith("asking for 5 instead, as 5 fit the 100.00 EUR left "
                                         "this month.")


def test_an_offer_for_more_than_the_mandate_allows_is_asked_again_for_fewer():
    _scenario(_fewer_fit)


def _heard(root):
    """A Flow whose agent's notes (what a console would show) are kept in a list."""
    flow, notes = Flow(root), []
    flow.agent.note = notes.append
    return flow, notes


def _wrong_owner(root):
    flow, notes = _heard(root)
    # imported once the Flow is made: a board's agent drops the mandate's code as it starts
    from thingsdk.core import cbor, ed25519, mandate
    from thingsdk.core.consumable import DAY

    stranger = ed25519.Signer(bytes([9]) * 32)
    device = flow.agent.signer
    claims = mandate.make_claims(stranger.kid, device.public_key, 7, flow.now - 60,
                                 flow.now + DAY, [])
    assert not flow.agent.take_mandate(mandate.issue(claims, stranger, cbor), flow.now)
    assert [n for n in notes if n.startswith("mandate refused: ")] == [notes[-1]]
    assert "wrong-owner" in notes[-1] or "bad-signature" in notes[-1]
    assert flow.agent.mandate.version == 1  # the owner's mandate stays


def test_a_mandate_from_another_key_is_refused_out_loud():
    _scenario(_wrong_owner)


def _deregistered(root):
    flow, notes = _heard(root)
    error = flow.vendor._seal(m.ERROR, {"code": "device-deregistered",
                                        "text": "The owner deregistered this device."},
                              flow.now, None)
    flow.agent.receive(error, flow.now)
    again = flow.vendor._seal(m.ERROR, {"code": "device-deregistered", "text": "Again."},
                              flow.now, None)
    flow.agent.receive(again, flow.now)  # the answer to its next heartbeat: already said
    assert notes[0] == ("the vendor refused this device: device-deregistered: The owner "
                        "deregistered this device.")
    # and the owner is told once, by a notice kept for it (this agent has no owner topic)
    assert len(notes) == 2 and notes[1].startswith("kept notice ") and \
        notes[1].endswith(" for the owner")


def test_a_device_the_vendor_deregistered_says_so_once():
    _scenario(_deregistered)


def _wiped(root):
    flow = Flow(root)
    flow.run()
    # The flash is wiped (a new folder here): the device numbers its messages from 0 again.
    wiped = Flow(root.rsplit("/", 1)[0] + "/wiped", flow.now)
    wiped.vendor, wiped.tank.level = flow.vendor, flow.tank.level
    wiped.run()
    assert wiped.need()["state"] == lifecycle.CLOSED and wiped.need()["reason"] == "refilled"
    assert flow.vendor.got.count(m.ORDER) == 2  # one for each need
    assert flow.vendor.got.count(m.RESYNC) == 1 and flow.vendor.refused >= 1
    said = [r["resync"] for r in wiped.agent.state.audit.records() if "resync" in r]
    assert said == ["asked", "done"]
    assert wiped.agent.state.sequence.take() > flow.agent.state.sequence.take()


def test_a_wiped_device_rejoins_its_vendor_and_orders_again():
    _scenario(_wiped)


def _odd_nonces(root):
    flow = Flow(root)
    flow.run()
    agent, vendor, now = flow.agent, flow.vendor, flow.now
    notes = []
    agent.note = notes.append
    used = agent.state.sequence.take()

    def nonce(floor, until):
        body = {"nonce": b"n" * 16, "floor": floor, "until": until}
        agent.receive(vendor._seal(m.RESYNC_NONCE, body, now, bytes(16)), now)

    nonce(used, now)  # expired: ignored, and kept in the audit log
    nonce(used, now + 600)  # a floor this device is above already: no resync
    nonce(MAX_SEQ - 10, now + 600)  # no room left above the floor: said, not raised
    assert flow.uplinks == [] and agent.state.sequence.take() == used + 1
    assert [r["ignored"] for r in agent.state.audit.records() if "ignored" in r] == [
        "stale-resync-nonce"]
    assert len(notes) == 1 and "needs a new key" in notes[0]


def test_a_resync_nonce_that_is_stale_needless_or_impossible_changes_nothing():
    _scenario(_odd_nonces)


def _clock_behind(root):
    flow = Flow(root)
    notes = []
    flow.agent.note = notes.append
    ahead = [2 * 3600]  # the vendor's clock is two hours ahead of the device's
    answer, due = flow.vendor.answer, flow.vendor.due
    flow.vendor.answer = lambda data, now: answer(data, now + ahead[0])
    flow.vendor.due = lambda now: due(now + ahead[0])
    for _ in range(100):  # until the vendor's offers have come twice (a quote sent again)
        flow.turn()
        if flow.agent.refusals.get("from-future", 0) >= 2:
            break
    assert flow.agent.refusals["from-future"] >= 2 and flow.vendor.got.count(m.ORDER) == 0
    said = [n for n in notes if "clock" in n]
    assert said == ["this device's clock is 7200 s behind the time the vendor signed: set it "
                    "(NTP); their messages are refused until then"]  # once, however many came
    assert flow.agent.clock_behind == 7200
    flow.now, ahead[0] = flow.now + ahead[0], 0  # the clock is set right
    flow.run()
    assert flow.agent.clock_behind is None and flow.vendor.got.count(m.ORDER) == 1


def test_a_clock_behind_the_vendor_is_said_once_with_by_how_much():
    _scenario(_clock_behind)
