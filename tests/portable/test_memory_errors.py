"""A board's heap can run out in the middle of an order: a MemoryError at any effect the agent
carries out (before it or right after it) loses nothing. The device restarts on the same flash
(as a board does after the error, or after a power cut), carries on where its flash says it
was, and the order completes with exactly one order at the vendor, no refusal on either side,
and sequence numbers that never went back. Runs on CPython and on MicroPython."""

from order_flow import Flow
from test_flash import _scenario
from thingsdk.core import lifecycle
from thingsdk.core import messages as m


def _inject(flow, at, after):
    """Make the agent's `at`-th effect (counted from 1) raise MemoryError, before or after it is
    carried out; returns the count of effects so far."""
    seen = [0]
    carry_out = flow.agent._carry_out

    def failing(effect, now):
        seen[0] += 1
        if seen[0] == at and not after:
            raise MemoryError("injected before effect %d (%s)" % (at, effect[0]))
        carry_out(effect, now)
        if seen[0] == at and after:
            raise MemoryError("injected after effect %d (%s)" % (at, effect[0]))

    flow.agent._carry_out = failing
    return seen


def _order_survives(root, at, after):
    """True when the injection hit (and the order still completed as it should), False when
    the order had fewer effects than `at`."""
    flow = Flow(root)
    seen = _inject(flow, at, after)
    for _ in range(200):
        try:
            flow.turn()
        except MemoryError:
            break
        need = flow.need()
        if need is not None and need["state"] == lifecycle.CLOSED:
            return False  # no effect number `at`: nothing was injected
    else:
        raise AssertionError("neither closed nor failed")
    assert seen[0] == at
    used = flow.agent.state.sequence.take()
    again = flow.restarted()
    assert again.agent.state.sequence.take() > used  # sequence numbers never go back
    again.run()
    need = again.need()
    assert need["state"] == lifecycle.CLOSED and need["reason"] == "refilled", need
    assert again.vendor.got.count(m.ORDER) == 1, again.vendor.got
    assert again.vendor.refused == 0 and again.agent.refusals == {}
    assert again.agent.state.corrupt == 0
    return True


def _every_effect(after):
    at = 1
    while True:
        hit = []
        _scenario(lambda root: hit.append(_order_survives(root, at, after)))
        if not hit[0]:
            break
        at += 1
    assert at > 20  # a whole order carries out more effects than that


def test_a_memory_error_before_any_effect_loses_nothing():
    _every_effect(after=False)


def test_a_memory_error_after_any_effect_loses_nothing():
    _every_effect(after=True)
