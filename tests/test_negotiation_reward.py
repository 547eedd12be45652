"""A reward in a negotiation, device and reference vendor together: the device counters an offer,
the vendor's Service answers with credit toward the next order, the device judges that credit by
when it expects its next order and buys, and the vendor takes the credit off the next order's
total. Every message is signed and verified on both sides."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "portable"))

from order_flow import DAY, START, Flow  # noqa: E402
from test_negotiation import _decisions  # noqa: E402
from thingsdk import codec  # noqa: E402
from thingsdk.core import counter, lifecycle, mandate  # noqa: E402
from thingsdk.core.consumable import Consumable  # noqa: E402
from thingsdk.crypto import Ed25519Signer  # noqa: E402
from thingsdk.seller import catalog  # noqa: E402
from thingsdk.seller.service import Service, register  # noqa: E402
from thingsdk.seller.store import open_store  # noqa: E402

CATALOG = """
[vendor]
offer_hours = 24
[skus.BEANS-1KG]
title = "Espresso beans, 1 kg"
category = "coffee-beans"
price = [1890, "EUR"]
shipping = [0, "EUR"]
lead_hours = 24
stock = 100
reward_percent = 10
[support]
steps = ["We will get back to you."]
"""


class ServiceVendor:
    """The reference vendor's Service in the order flow's place: what the device sends is
    handled as the vendor's MQTT side would, and fulfilment is simulated as time passes."""

    def __init__(self, folder, device_public, owner_public):
        self.signer = Ed25519Signer.from_seed(bytes([2]) * 32)  # the key the flow trusts
        self.service = Service(open_store(folder / "vendor.db"),
                               catalog.parse(CATALOG, "test catalog"), self.signer, codec)
        self.device = register(self.service.store, device_public, owner_public, START - 60)

    def answer(self, data, now):
        return [sealed for _, sealed in self.service.handle(data, self.device, now)]

    def due(self, now):
        return [sealed for _, sealed in self.service.advance(now)]


def _flow(folder):
    flow = Flow(str(folder / "device"))
    flow.agent.orders.config = lifecycle.make_config({"counter": 1, "quote_wait": 2 * 3600})
    consumable = flow.agent.slots["coffee"].consumable
    consumable.hold_cost = 3650  # ten cents a bag a day
    consumable.lead_time = 2 * DAY
    device_public = flow.agent.signer.public_key
    owner_public = Ed25519Signer.from_seed(bytes([3]) * 32).public_key
    flow.vendor = ServiceVendor(folder, device_public, owner_public)
    return flow


def test_the_device_takes_a_reward_and_the_vendor_takes_it_off_the_next_order(tmp_path):
    flow = _flow(tmp_path)
    flow.run()
    first = flow.need()
    decisions = _decisions(flow)
    assert [d["action"] for d in decisions] == ["counter", "buy"], decisions
    asked = decisions[0]["ask"]
    assert asked["qty"] == 2 and asked["price"][0] < 1890
    bought = decisions[1]
    reward = 2 * 1890 // 10  # 10 % back: worth more than the few cents asked off the price
    assert first["order"]["qty"] == 2 and first["order"]["total"] == [2 * 1890, "EUR"]
    assert "3.78 EUR credit for the next order worth 3.7" in bought["text"], bought["text"]
    assert "took 2 at 18.90 EUR" in bought["text"] and "left 1 at 18.90 EUR" in bought["text"]
    store = flow.vendor.service.store
    assert store.credit(flow.vendor.device, "EUR") == reward
    flow.agent.orders.config = lifecycle.make_config({"counter": 0, "quote_wait": 2 * 3600})
    for _ in range(200):  # the next need: its offer takes the credit off, and the order pays so
        flow.turn()
        records = flow.agent.orders.records()
        if len(records) > 1 and records[-1]["state"] == lifecycle.CLOSED:
            break
    second = flow.agent.orders.records()[-1]
    assert second["need"] != first["need"] and second["order"] is not None
    offer = second["offers"][0][1]
    assert offer["credit"] == [reward, "EUR"]
    assert second["order"]["total"] == [1890 * second["order"]["qty"] - reward, "EUR"]
    assert store.credit(flow.vendor.device, "EUR") == 0


def test_credit_for_an_order_after_the_mandate_ends_is_worth_nothing_and_the_device_says_so(
        tmp_path):
    flow = _flow(tmp_path)
    owner = Ed25519Signer.from_seed(bytes([3]) * 32)
    claims = mandate.make_claims(owner.kid, flow.agent.signer.public_key, 2, START - 60,
                                 START + 2 * DAY, [["vendors", {"kids": [flow.vendor.signer.kid]}]])
    assert flow.agent.take_mandate(mandate.issue(claims, owner, codec), START)
    flow.run()
    need = flow.need()
    counter_, bought = _decisions(flow)
    assert counter_["action"] == "counter" and counter_["ask"]["price"][0] < 1890
    assert need["order"]["qty"] == 1 and need["order"]["total"] == [1890, "EUR"]
    assert "left 2 at 18.90 EUR" in bought["text"] and "worth nothing" in bought["text"]
    assert flow.vendor.service.store.credit(flow.vendor.device, "EUR") == 0


def _consumable():
    """A tenth of a bag used a day, known for a week; ten cents a bag a day to hold."""
    c = Consumable("coffee", "g", 1000, sku="BEANS-1KG", lead_time=DAY, lead_spread=DAY // 2,
                   hold_cost=3650)
    for day in range(8):
        c.read(START + day * DAY, 1000 - 100 * day)
    return c


def test_a_reward_is_worth_less_the_further_off_the_next_order_and_nothing_past_the_mandate():
    c = _consumable()
    now = START + 7 * DAY
    offer = {"offer": b"o" * 16, "sku": "BEANS-1KG", "title": "Beans", "qty": 1,
             "price": [1890, "EUR"], "ship": [490, "EUR"], "total": [2380, "EUR"],
             "lead": DAY, "arrive": now + DAY, "until": now + DAY, "test": False,
             "reward": [500, "EUR"]}
    _, _, soon = counter.cost(c, offer, now, now + 365 * DAY)
    _, _, later = counter.cost(c, dict(offer, qty=3), now, now + 365 * DAY)
    assert 0 < later < soon < 500  # three bags put the next order further off
    assert counter.cost(c, offer, now, now + DAY)[2] == 0  # the mandate ends before it
    plain = counter.cost(c, dict(offer, reward=[0, "EUR"]), now, now + 365 * DAY)
    assert plain[0] - counter.cost(c, offer, now, now + 365 * DAY)[0] == soon
