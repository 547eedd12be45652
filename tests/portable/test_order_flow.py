"""A whole order on the portable agent and the firmware's flash store, on CPython and MicroPython:
quote, decision, order, receipt, shipment, delivery, refill, every message signed and verified by
the core; then the same state read back from flash carries on where it was."""

from order_flow import Flow
from test_flash import _scenario
from thingsdk.core import lifecycle
from thingsdk.core import messages as m


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
    assert again.agent.state.sequence.take() > used  # sequence numbers never go back
    again.run()
    assert again.need()["state"] == lifecycle.CLOSED
    assert flow.vendor.got.count(m.ORDER) == 1 and flow.vendor.refused == 0


def test_a_power_cut_mid_order_resumes_from_flash():
    _scenario(_resumes)
