"""A counter-proposal in the need's state machine: persisted before it goes, re-sent as the same
message after a restart, bounded by the `counter` setting, and never holding up the order."""

import hashlib

import pytest

from thingsdk.core import lifecycle as lc
from thingsdk.core import messages as m

T = 1767225600
VENDOR, OWNER = b"V" * 8, b"O" * 8
OFFER = {"offer": b"o" * 16, "sku": "BEANS-1KG", "title": "Beans", "qty": 1,
         "price": [1890, "EUR"], "ship": [490, "EUR"], "total": [2380, "EUR"], "lead": 86400,
         "arrive": T + 86400, "until": T + 86400, "test": False}


def ids():
    n = [0]

    def new_id():
        n[0] += 1
        return hashlib.sha256(b"%d" % n[0]).digest()[:16]
    return new_id


def deciding(counter=1):
    orders = lc.Orders(ids(), {"counter": counter})
    effects = orders.need("coffee", {"slot": "coffee", "sku": "BEANS-1KG", "qty": 1}, VENDOR,
                          OWNER, T)
    ask = [e[2] for e in effects if e[0] == "send"][0]
    need = effects[0][1]
    orders.message({"from": VENDOR, "id": b"a" * 16, "t": m.OFFER, "re": ask["id"], "b": OFFER,
                    "data": None}, T + 1)
    return orders, need


def counter(orders, need, now=T + 2):
    ask = {"slot": "coffee", "sku": "BEANS-1KG", "qty": 2, "offer": OFFER["offer"],
           "price": [1800, "EUR"]}
    return orders.decided(need, {"action": "counter", "offer": OFFER["offer"], "ask": ask,
                                 "reason": "counter-proposal"}, now)


def test_a_counter_proposal_is_persisted_before_it_is_sent_and_keeps_the_offer():
    orders, need = deciding()
    effects = counter(orders, need)
    kinds = [e[0] for e in effects]
    assert kinds.index("persist") < kinds.index("send")
    sent = [e[2] for e in effects if e[0] == "send"][0]
    assert sent["t"] == m.QUOTE_REQUEST and sent["b"]["offer"] == OFFER["offer"]
    record = orders.needs[need]
    assert record["state"] == lc.QUOTING and record["offers"][0][1] == OFFER
    assert record["rounds"] == 1
    again = lc.Orders(ids(), {"counter": 1}, orders.to_state())  # a restart
    resent = [e[2] for e in again.resume(T + 60) if e[0] == "send"]
    assert resent == [sent]  # the same message: the vendor answers it once


def test_without_an_answer_the_need_decides_on_the_offers_it_holds():
    orders, need = deciding()
    counter(orders, need)
    effects = orders.tick(T + 2 + 10 * 3600)
    assert orders.needs[need]["state"] == lc.DECIDING
    assert [e for e in effects if e[0] == "decide"][0][2] == [[VENDOR, OFFER]]
    assert not [e for e in effects if e[0] == "send"]  # a counter is not sent again


def test_a_counter_proposal_past_the_rounds_allowed_is_a_bug_not_a_message():
    orders, need = deciding(counter=0)
    with pytest.raises(lc.LifecycleError):
        counter(orders, need)
    assert orders.needs[need]["state"] == lc.DECIDING
