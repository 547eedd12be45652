"""Negotiating by logic, on the portable agent and the firmware's flash store, on CPython and
MicroPython: the device counters the vendor's offer, judges every variant on what owning the
items costs, refuses answers that are forged, absurd or over its mandate (counted), and orders
the best offer it has when the vendor does not answer."""

from order_flow import HOUR, Flow
from order_vendor import PRICE, SHIP, Vendor, World
from test_flash import _scenario
from thingsdk.core import lifecycle
from thingsdk.core import messages as m

TIERS = ((4, 1690), (2, 1790))  # (least bags, unit price), the larger first


class Haggler(World):
    """The order flow's vendor, answering counter-proposals by its tiers (and slow shipping from
    five days on), or as `answer_as(body, offer)` says: an offer body, or None for silence; `forged`: those
    answers are changed after they were signed."""

    answer_as, forged = None, False

    def _answer(self, msg, now):
        body = msg.body
        if msg.type != m.QUOTE_REQUEST or "offer" not in body:
            return Vendor._answer(self, msg, now)
        qty = body["qty"]
        price = PRICE
        for least, tier in TIERS:
            if qty >= least:
                price = tier
                break
        ship = 0 if body.get("need", 0) >= now + 5 * 86400 else SHIP
        self.serial += 1
        offer = {"offer": bytes([0x40 + self.serial % 64]) * m.ID_SIZE, "sku": body["sku"],
                 "title": "Espresso beans 1 kg", "qty": qty, "price": [price, "EUR"],
                 "ship": [ship, "EUR"], "total": [price * qty + ship, "EUR"], "lead": 86400,
                 "arrive": now + 86400, "until": now + 86400, "test": False}
        if self.answer_as is not None:
            offer = self.answer_as(body, offer)
            if offer is None:
                return []
        data = self._seal(m.OFFER, offer, now, msg.id)
        if self.forged:  # changed after signing: the last byte is the signature's
            data = data[:-1] + bytes([data[-1] ^ 1])
        return [data]


def _flow(root, answer_as=None, forged=False):
    flow = Flow(root)
    # the vendor answers within the turn after: an hour
    flow.agent.orders.config = lifecycle.make_config({"counter": 2, "quote_wait": 2 * HOUR})
    consumable = flow.agent.slots["coffee"].consumable
    consumable.hold_cost = 365  # a cent a bag a day
    consumable.lead_time = 2 * 86400  # it plans for slower deliveries than this vendor's
    flow.vendor = Haggler(flow.agent.signer.public_key)
    flow.vendor.answer_as, flow.vendor.forged = answer_as, forged
    return flow


def _decisions(flow):
    """The decisions on the first need (the flow ends as it closes: the next may have begun)."""
    need = flow.need()["need"]
    return [r for r in flow.agent.state.audit.records() if r.get("action") and
            r.get("need") == need]


def _counters_then_buys_the_bundle(root):
    flow = _flow(root)
    flow.run()
    need = flow.need()
    assert need["reason"] == "refilled" and flow.vendor.got.count(m.ORDER) == 1
    decisions = _decisions(flow)
    assert [d["action"] for d in decisions] == ["counter", "counter", "buy"], decisions
    first, second, bought = decisions
    assert first["ask"]["qty"] == 2 and first["ask"]["price"] == [PRICE, "EUR"]
    assert second["ask"]["qty"] == 4
    assert bought["reason"] == "lowest-cost"
    assert "took 4 at 16.90 EUR" in bought["text"] and "left 1 at 18.90 EUR" in bought["text"]
    assert need["order"]["qty"] == 4 and need["order"]["total"] == [4 * 1690 + SHIP, "EUR"]
    assert flow.vendor.got.count(m.QUOTE_REQUEST) == 3 and flow.agent.refusals == {}


def test_a_device_counters_twice_and_buys_what_costs_least_per_bag_used():
    _scenario(_counters_then_buys_the_bundle)


def _silent_vendor(root):
    flow = _flow(root, lambda body, offer: None)
    flow.run()
    decisions = _decisions(flow)
    assert [d["action"] for d in decisions] == ["counter", "buy"]
    assert flow.need()["order"]["qty"] == 1  # the offer it had: ordering never waits for long
    assert flow.need()["order"]["total"] == [PRICE + SHIP, "EUR"]


def test_without_an_answer_the_device_buys_the_offer_it_has():
    _scenario(_silent_vendor)


def _refused(root, answer_as, reason, forged=False):
    flow = _flow(root, answer_as, forged)
    flow.run()
    assert flow.need()["order"]["total"] == [PRICE + SHIP, "EUR"]
    if not forged:
        assert flow.agent.orders.ignored == {reason: 1}, flow.agent.orders.ignored
        entries = [r for r in flow.agent.state.audit.records() if r.get("ignored") == reason]
        assert len(entries) == 1
    else:
        assert flow.agent.refusals == {reason: 1}
    assert [d["action"] for d in _decisions(flow)] == ["counter", "buy"]


def _dearer(body, offer):
    offer = dict(offer, price=[PRICE + 1, "EUR"])
    offer["total"] = [offer["price"][0] * offer["qty"] + SHIP, "EUR"]
    return offer


def _other_item(body, offer):
    return dict(offer, sku="BEANS-5KG")


def _over_budget(body, offer):
    return dict(offer, ship=[9000, "EUR"], total=[offer["total"][0] - SHIP + 9000, "EUR"])


def test_an_absurd_answer_is_refused_counted_and_the_offer_bought():
    _scenario(lambda root: _refused(root, _dearer, "absurd-answer"))


def test_an_answer_for_another_item_is_refused_and_counted():
    _scenario(lambda root: _refused(root, _other_item, "other-item"))


def test_an_answer_over_the_mandate_is_refused_and_counted():
    _scenario(lambda root: _refused(root, _over_budget, "over-mandate"))


def test_a_forged_answer_is_refused_by_its_signature():
    _scenario(lambda root: _refused(root, None, "bad-signature", forged=True))
