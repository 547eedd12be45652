# Order lifecycle scenarios that run on CPython (pytest) and on MicroPython alike.
from check import raises
from samples import OWNER, TS, VENDOR, build, example_bodies
from thingsdk.core import approval
from thingsdk.core import lifecycle as lc
from thingsdk.core import messages as m
from thingsdk.core.messages import MessageError

SLOT = "water-filter"
OTHER = b"\x99" * 8  # a key the need does not know


class Ids:
    """Deterministic 16-byte ids: 1, 2, 3... in the first two bytes."""

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return bytes([self.n % 256, self.n // 256]) + bytes(14)


def ask():
    return {"slot": SLOT, "sku": "WF-300", "qty": 2}


def offer_body(n=1, until=TS + 86400):
    body = example_bodies()[m.OFFER]
    body["offer"] = bytes([0xA0 + n]) * 16
    body["until"] = until
    return body


def kinds(effects):
    return [e[0] for e in effects]


def sends(effects):
    return [e[2] for e in effects if e[0] == "send"]


def only(effects, kind):
    found = [e for e in effects if e[0] == kind]
    assert len(found) == 1, (kind, effects)
    return found[0]


def persisted_before_sends(effects, stored):
    """Every send comes after a persist that records its message id; `stored` holds the records
    last persisted, by need id, and is brought up to date."""
    for e in effects:
        if e[0] == "persist":
            stored[e[1]] = e[2]
        if e[0] == "send":
            record = stored.get(e[1])
            assert record is not None and [e[2]["id"], e[2]["t"]] in record["ids"], effects


class Device:
    """An Orders container with a clock, and helpers to feed it messages."""

    def __init__(self, config=None):
        self.ids = Ids()
        self.orders = lc.Orders(self.ids, config)
        self.now = TS
        self.effects = []
        self.stored = {}

    def feed(self, effects):
        persisted_before_sends(effects, self.stored)
        self.effects = effects
        return effects

    def need(self, slot=SLOT):
        fx = self.feed(self.orders.need(slot, dict(ask(), slot=slot), VENDOR, OWNER, self.now))
        self.rec = self.orders.open_for(slot)
        return fx

    @property
    def record(self):
        return self.orders.needs[self.rec["need"]]

    def state(self):
        return self.record["state"]

    def msg(self, t, body, re=None, sender=VENDOR, data=None):
        event = {"from": sender, "id": self.ids(), "t": t, "re": re, "b": body, "data": data}
        return self.feed(self.orders.message(event, self.now))

    def last_sent(self, t):
        return [msg for msg in sends(self.effects) if msg["t"] == t][-1]

    def offer(self, n=1, until=TS + 86400):
        quote = self.record["out"]
        return self.msg(m.OFFER, offer_body(n, until), re=quote["id"])

    def decide(self, action="buy", n=1, **extra):
        decision = {"action": action, "offer": bytes([0xA0 + n]) * 16, "mandate": 7,
                    "reason": "within-policy", "text": "The filter runs out in 20 days."}
        decision.update(extra)
        return self.feed(self.orders.decided(self.rec["need"], decision, self.now))

    def order(self, **extra):
        self.need()
        self.offer()
        self.decide(**extra)
        return self.last_sent(m.ORDER)

    def receipt(self, status="accepted", re=None, **fields):
        if re is None:
            re = [i for i, t in self.record["ids"] if t == m.ORDER][-1]
        body = {"order": self.record["oid"], "status": status}
        body.update(fields or ({"reason": "out-of-stock"} if status == "rejected"
                               else {"ref": "ACME-1"}))
        return self.msg(m.RECEIPT, body, re=re)

    def shipment(self, track="JD01"):
        return self.msg(m.SHIPMENT, {"order": self.record["oid"], "carrier": "DHL",
                                     "track": track, "eta": self.now + 86400})

    def delivery(self, at=None):
        at = self.now if at is None else at
        return self.msg(m.DELIVERY, {"order": self.record["oid"], "at": at, "qty": 2})

    def tick(self, at=None):
        self.now = self.record["due"] if at is None else at
        return self.feed(self.orders.tick(self.now))


def test_happy_path_from_need_to_refill():
    d = Device()
    fx = d.need()
    assert kinds(fx) == ["persist", "send", "timer", "audit"]
    quote = sends(fx)[0]
    assert (quote["t"], quote["to"], quote["b"]) == (m.QUOTE_REQUEST, VENDOR, ask())
    fx = d.offer()
    assert d.state() == lc.DECIDING
    decide = only(fx, "decide")
    assert decide[2] == [[VENDOR, offer_body()]] and decide[3] is None
    fx = d.decide(hold_until=TS + 86400)
    assert kinds(fx)[:5] == ["persist", "reserve", "incoming", "send", "timer"]
    order = d.last_sent(m.ORDER)["b"]
    oid = d.record["oid"]
    assert order == {"order": oid, "offer": offer_body()["offer"], "sku": "WF-300", "qty": 2,
                     "total": [5398, "EUR"], "mandate": 7, "test": False}
    assert only(fx, "reserve")[2:] == (oid, [5398, "EUR"])
    assert only(fx, "incoming")[2:] == (SLOT, oid, 2)
    fx = d.receipt()
    assert d.state() == lc.PLACED and only(fx, "commit")[2] == oid
    assert d.record["receipt"] == ["accepted", "ACME-1"]
    d.shipment()
    assert d.state() == lc.SHIPPED
    fx = d.delivery(offer_body()["arrive"] + 2 * 86400)  # two days later than offered
    assert d.state() == lc.DELIVERED and only(fx, "received")[2:] == (SLOT, oid, 2, 2 * 86400)
    fx = d.feed(d.orders.refilled(SLOT, d.now))
    assert d.state() == lc.CLOSED and d.record["reason"] == "refilled"
    assert d.record["money"] == "committed" and d.orders.open_for(SLOT) is None
    assert d.orders.ignored == {}


def approve(request):
    """An owner's approval body answering the approval request (an event dict)."""
    body = {"req": request["b"]["req"], "decision": "approve"}
    body.update(approval.terms(request["b"]["order"]))
    return body


def test_approval_approved_orders_carrying_the_approval_itself():
    d = Device()
    d.need()
    d.offer()
    fx = d.decide("ask")
    request = d.last_sent(m.APPROVAL_REQUEST)
    assert request["to"] == OWNER and d.state() == lc.APPROVING
    assert request["b"]["order"]["offer"] == offer_body()["offer"]
    assert request["b"]["until"] == TS + 12 * 3600 and only(fx, "timer")[2] == TS + 12 * 3600
    sealed = b"\xd2the owner's approval, as it came"
    fx = d.msg(m.APPROVAL, approve(request), re=request["id"], sender=OWNER, data=sealed)
    assert d.record["appr"] == sealed
    assert d.state() == lc.DECIDING and only(fx, "decide")[3] == sealed
    d.decide("buy")
    assert d.last_sent(m.ORDER)["b"]["appr"] == sealed


def test_approval_declined_closes_the_need():
    d = Device()
    d.need()
    d.offer()
    d.decide("ask")
    request = d.last_sent(m.APPROVAL_REQUEST)
    d.msg(m.APPROVAL, {"req": request["b"]["req"], "decision": "decline"}, re=request["id"],
          sender=OWNER)
    assert (d.state(), d.record["reason"], d.record["money"]) == (lc.CLOSED, "declined", None)


def test_approval_from_someone_else_does_not_count():
    d = Device()
    d.need()
    d.offer()
    d.decide("ask")
    request = d.last_sent(m.APPROVAL_REQUEST)
    fx = d.msg(m.APPROVAL, approve(request), re=request["id"], sender=VENDOR, data=b"\xd2")
    assert d.state() == lc.APPROVING and kinds(fx) == ["audit"]
    assert d.orders.ignored == {"wrong-sender": 1}


def test_approval_timeout_declines_by_default():
    d = Device()
    d.need()
    d.offer()
    d.decide("ask")
    assert d.tick(TS + 12 * 3600 - 1) == []
    d.tick()
    assert (d.state(), d.record["reason"]) == (lc.CLOSED, "approval-timeout")


def test_approval_timeout_can_requote_instead():
    d = Device({"approval_timeout": "requote"})
    d.need()
    first_quote = d.record["out"]["id"]
    d.offer()
    d.decide("ask")
    fx = d.tick()
    quote = d.last_sent(m.QUOTE_REQUEST)
    assert d.state() == lc.QUOTING and quote["id"] != first_quote and d.record["rounds"] == 1
    assert d.record["offers"] == [] and "persist" in kinds(fx)


def test_rejected_receipt_closes_and_releases():
    d = Device()
    d.order()
    oid = d.record["oid"]
    fx = d.receipt("rejected", reason="offer-expired")
    assert (d.state(), d.record["reason"]) == (lc.CLOSED, "offer-expired")
    assert only(fx, "release")[2] == oid and only(fx, "cancelled")[2:] == (SLOT, oid)
    assert sends(fx) == []


def test_duplicate_receipt_counts_as_covered_and_a_refill_closes_it():
    d = Device()
    d.order()
    fx = d.receipt("duplicate", ref="ACME-0")
    assert d.state() == lc.PLACED and "commit" in kinds(fx)
    assert d.record["receipt"] == ["duplicate", "ACME-0"]
    assert d.orders.need(SLOT, ask(), VENDOR, OWNER, d.now)[0][2]["ignored"] == "order-in-flight"
    d.feed(d.orders.refilled(SLOT, d.now))
    assert (d.state(), d.record["reason"], d.record["stock"]) == (lc.CLOSED, "refilled",
                                                                  "cancelled")


def test_a_refill_seen_before_the_delivery_news_closes_the_need_when_it_comes():
    """The owner put the new filter in while the vendor's shipment and delivery messages were
    held up (a broker down): the refill is remembered, and the delivery news closes the need
    instead of leaving it waiting a month for a refill that already happened."""
    d = Device()
    d.order()
    d.receipt()
    fx = d.feed(d.orders.refilled(SLOT, d.now))
    assert d.state() == lc.PLACED and d.record["refilled"] == d.now
    assert only(fx, "audit")[2] == {"early": "refilled", "state": lc.PLACED, "at": d.now}
    d.shipment()
    fx = d.delivery()
    assert (d.state(), d.record["reason"], d.record["stock"]) == (lc.CLOSED, "refilled",
                                                                  "received")
    assert only(fx, "received")[2:5] == (SLOT, d.record["oid"], 2)
    assert lc.from_state(lc.to_state(d.record)) == d.record


def test_a_record_written_before_early_refills_were_remembered_still_loads():
    d = Device()
    d.order()
    old = lc.to_state(d.record)
    del old["refilled"]
    assert lc.from_state(old)["refilled"] is None


def test_vendor_cancel_closes_and_releases():
    d = Device()
    d.order()
    d.receipt()
    fx = d.msg(m.CANCEL, {"order": d.record["oid"], "by": "vendor", "reason": "out-of-stock"})
    assert (d.state(), d.record["reason"]) == (lc.CLOSED, "out-of-stock")
    assert "release" in kinds(fx) and "cancelled" in kinds(fx) and sends(fx) == []


def test_owner_cancel_inside_the_window_tells_the_vendor():
    d = Device()
    d.order(hold_until=TS + 86400)
    d.receipt()
    d.now += 86400 - 1
    fx = d.feed(d.orders.cancel(d.rec["need"], d.now))
    cancel = d.last_sent(m.CANCEL)
    assert cancel["b"] == {"order": d.record["oid"], "by": "owner", "reason": "changed-mind"}
    assert cancel["to"] == VENDOR and d.state() == lc.CLOSED and "release" in kinds(fx)


def test_owner_cancel_after_the_window_is_refused():
    d = Device()
    d.order(hold_until=TS + 3600)
    d.receipt()
    d.now += 3600
    fx = d.feed(d.orders.cancel(d.rec["need"], d.now))
    assert kinds(fx) == ["audit"] and fx[0][2]["ignored"] == "cancel-window-closed"
    assert d.state() == lc.PLACED and d.orders.ignored == {"cancel-window-closed": 1}


def test_owner_cancel_message_before_a_receipt():
    d = Device()
    d.order()
    fx = d.msg(m.CANCEL, {"order": d.record["oid"], "by": "owner", "reason": "not-needed"},
               sender=OWNER)
    assert d.last_sent(m.CANCEL)["b"]["reason"] == "not-needed" and d.state() == lc.CLOSED
    assert "release" in kinds(fx)


def test_quote_is_retried_with_backoff_then_given_up():
    d = Device({"quote_wait": 100, "quote_retries": 2})
    d.need()
    quote_id = d.record["out"]["id"]
    waits = []
    for _ in range(2):
        start = d.now
        fx = d.tick()
        assert sends(fx)[0]["id"] == quote_id  # the same message, still fresh
        waits.append(only(fx, "timer")[2] - d.now)
        assert d.now > start
    assert waits == [200, 400]
    d.tick()
    assert (d.state(), d.record["reason"]) == (lc.CLOSED, "no-offers")


def test_order_is_resent_under_the_same_order_id_until_a_receipt():
    d = Device({"ttl": 3600, "order_wait": 600, "order_wait_max": 1800})
    first = d.order()
    oid = d.record["oid"]
    fx = d.tick()
    assert sends(fx) == [first]  # the same message id: the same bytes go out again
    ids = []
    for _ in range(5):
        fx = d.tick()
        again = sends(fx)[0]
        assert again["b"] == first["b"] and again["b"]["order"] == oid
        assert (again["id"] == first["id"]) == (d.now + lc.SKEW < first["exp"])
        ids.append(again["id"])
        assert only(fx, "timer")[2] - d.now <= 1800 * 5 // 4
    assert ids[0] == first["id"] and ids[-1] != first["id"]  # expired bytes: sealed anew
    d.receipt(re=first["id"])  # a late answer to the first copy still counts
    assert d.state() == lc.PLACED and d.record["oid"] == oid


def test_a_message_refused_as_a_replay_goes_again_as_a_new_one():
    d = Device()
    first = d.order()
    d.feed(d.orders.need("coffee", dict(ask(), slot="coffee"), VENDOR, OWNER, d.now))
    quote = d.orders.open_for("coffee")["out"]  # a second need, still quoting
    fx = d.feed(d.orders.resend(quote["id"], d.now))
    [again] = sends(fx)  # only the need whose message was refused
    assert again["t"] == m.QUOTE_REQUEST and again["id"] != quote["id"]
    assert again["b"] == quote["b"] and d.orders.open_for("coffee")["out"] == again
    fx = d.feed(d.orders.resend(first["id"], d.now))
    [order] = sends(fx)
    assert order["id"] != first["id"] and order["b"] == first["b"]  # the same order id
    assert d.state() == lc.ORDERING
    d.receipt(re=order["id"])
    assert d.state() == lc.PLACED
    assert d.orders.resend(order["id"], d.now) == []  # nothing pending any more
    assert d.orders.resend(quote["id"], d.now) == []  # an old copy: its need sent anew already


def test_no_news_past_the_arrival_asks_the_vendor_until_the_order_is_overdue():
    d = Device({"news_wait": 3600, "late": 86400})
    d.order()
    d.receipt()
    arrive = offer_body()["arrive"]
    assert d.record["due"] == arrive + 3600
    fx = d.tick()
    [query] = sends(fx)
    assert (query["t"], query["b"], query["to"]) == (m.ORDER_QUERY, {"order": d.record["oid"]},
                                                     VENDOR)
    waits = [only(fx, "timer")[2] - d.now]
    while d.state() == lc.PLACED:
        fx = d.tick()
        if d.state() == lc.PLACED:
            assert [msg["t"] for msg in sends(fx)] == [m.ORDER_QUERY]
            waits.append(only(fx, "timer")[2] - d.now)
    assert 3600 <= waits[0] <= 3600 * 5 // 4 and len(waits) >= 3  # with the need's own spread
    assert all(2 * a <= b for a, b in zip(waits[:-2], waits[1:-1]))  # each wait twice the last
    assert waits[-1] <= waits[-2] * 2  # the last cut short: the order is overdue by then
    assert d.record["reason"] == "overdue" and d.now == arrive + 86400
    assert d.record["money"] == "committed" and d.record["stock"] == "cancelled"


def test_the_vendors_answer_to_a_query_brings_the_lost_news():
    d = Device({"news_wait": 3600})
    d.order()
    d.receipt()
    query = sends(d.tick())[0]
    fx = d.receipt(re=query["id"])  # still only accepted: the receipt again, answering the query
    assert kinds(fx) == ["audit"]  # counted as a duplicate, not as uncorrelated
    assert d.orders.ignored == {"duplicate": 1} and d.state() == lc.PLACED
    d.shipment()
    assert d.state() == lc.SHIPPED and d.record["out"] is None
    assert d.record["due"] == d.now + 86400 + 3600  # the shipment's eta, and the wait again
    query = sends(d.tick())[0]
    assert query["t"] == m.ORDER_QUERY and d.record["out"] == query
    d.delivery()
    assert d.state() == lc.DELIVERED and d.record["out"] is None


def test_order_without_any_receipt_is_abandoned_and_released():
    d = Device({"order_give_up": 3600, "order_wait": 1000})
    d.order()
    while d.state() == lc.ORDERING:
        fx = d.tick()
    assert d.record["reason"] == "no-receipt" and "release" in kinds(fx)
    assert d.last_sent(m.CANCEL)["b"]["by"] == "device"


def test_shipment_before_receipt_implies_acceptance():
    d = Device()
    d.order()
    fx = d.shipment()
    assert d.state() == lc.SHIPPED and "commit" in kinds(fx)
    fx = d.receipt()  # the late receipt fills in the reference, nothing goes back
    assert d.state() == lc.SHIPPED and d.record["receipt"] == ["accepted", "ACME-1"]
    assert kinds(fx) == ["persist"]
    d.receipt(ref="ACME-2")
    assert d.orders.ignored == {"receipt-conflict": 1}


def test_delivery_before_anything_else():
    d = Device()
    d.order()
    fx = d.delivery()
    assert d.state() == lc.DELIVERED and "commit" in kinds(fx) and "received" in kinds(fx)
    d.shipment()
    d.receipt("rejected")
    assert d.state() == lc.DELIVERED
    assert d.orders.ignored == {"late-shipment": 1, "receipt-conflict": 1}


def test_duplicated_messages_change_nothing():
    d = Device()
    d.need()
    quote = d.record["out"]
    d.offer()
    before = d.record
    assert kinds(d.msg(m.OFFER, offer_body(), re=quote["id"])) == ["audit"]
    assert d.record == before
    d.decide()
    d.receipt()
    d.receipt()
    d.shipment()
    d.shipment()
    d.delivery()
    d.delivery()
    assert d.orders.ignored == {"duplicate": 4}
    assert d.state() == lc.DELIVERED


def test_a_second_offer_asks_for_a_new_decision():
    d = Device()
    d.need()
    quote = d.record["out"]
    d.offer(1)
    fx = d.msg(m.OFFER, offer_body(2), re=quote["id"])
    assert len(only(fx, "decide")[2]) == 2
    d.decide(n=2)
    assert d.last_sent(m.ORDER)["b"]["offer"] == offer_body(2)["offer"]


def test_unexpected_messages_are_ignored_and_counted():
    d = Device()
    d.order()
    oid = d.record["oid"]
    d.msg(m.SHIPMENT, {"order": b"\x42" * 16, "carrier": "DHL", "track": "X", "eta": TS})
    d.msg(m.RECEIPT, {"order": oid, "status": "accepted", "ref": "R"}, re=b"\x43" * 16)
    d.msg(m.DELIVERY, {"order": oid, "at": TS, "qty": 2}, sender=OTHER)
    d.msg(m.OFFER, offer_body(3), re=b"\x44" * 16)
    d.msg(m.PROMOTION, example_bodies()[m.PROMOTION])
    assert d.state() == lc.ORDERING
    assert d.orders.ignored == {"unknown": 3, "uncorrelated": 1, "wrong-sender": 1}
    d.receipt("rejected")
    d.delivery()
    assert d.state() == lc.CLOSED and d.orders.ignored["closed"] == 1


def test_an_answer_must_answer_our_message():
    d = Device()
    d.order()
    other = d.ids()
    d.record["ids"].append([other, m.QUOTE_REQUEST])  # an id we sent, but not an order
    d.receipt(re=other)
    assert d.state() == lc.ORDERING and d.orders.ignored == {"uncorrelated": 1}


def test_decision_in_another_state_is_ignored_and_bad_ones_refused():
    d = Device()
    d.need()
    d.decide()
    assert d.orders.ignored == {"unexpected-decision": 1}
    d.offer()
    raises(lc.LifecycleError, d.decide, n=5)
    raises(lc.LifecycleError, d.decide, action="sell")
    raises(lc.LifecycleError, d.decide, mandate=None)
    raises(MessageError, d.decide, "ask", text="")
    assert d.state() == lc.DECIDING


def test_wait_decision_asks_again_later_within_bounded_rounds():
    d = Device({"rounds": 1})
    d.need()
    d.offer()
    d.decide("wait", until=TS + 7200)
    assert d.state() == lc.WAITING and d.record["due"] == TS + 7200
    d.tick()
    assert d.state() == lc.QUOTING and d.last_sent(m.QUOTE_REQUEST)
    d.offer()
    d.decide("wait")
    assert d.record["due"] == d.now + 3600
    d.tick()
    assert (d.state(), d.record["reason"]) == (lc.CLOSED, "too-many-rounds")


def test_refuse_decision_closes_with_its_reason():
    d = Device()
    d.need()
    d.offer()
    d.decide("refuse", reason="over-budget")
    assert (d.state(), d.record["reason"]) == (lc.CLOSED, "over-budget")


def test_refused_reservation_closes_the_need():
    d = Device()
    d.order()
    fx = d.feed(d.orders.refused(d.rec["need"], "full", d.now))
    assert (d.state(), d.record["reason"], d.record["money"]) == (lc.CLOSED, "full", "released")
    assert "cancelled" in kinds(fx)


def test_one_open_need_per_slot():
    d = Device()
    d.need()
    fx = d.orders.need(SLOT, ask(), VENDOR, OWNER, d.now)
    assert kinds(fx) == ["audit"] and d.orders.ignored == {"order-in-flight": 1}
    d.need("ice-maker")
    assert len(d.orders.needs) == 2


def test_resume_in_ordering_sends_the_same_order():
    d = Device({"ttl": 3600})
    first = d.order()
    saved = d.orders.to_state()
    again = lc.Orders(d.ids, {"ttl": 3600}, saved)
    stored = {rec["need"]: rec for rec in saved}
    fx = again.resume(d.now + 60)
    persisted_before_sends(fx, stored)
    assert sends(fx) == [first]
    assert kinds(fx) == ["reserve", "incoming", "send", "timer"]
    fx = again.resume(d.now + 3600)
    persisted_before_sends(fx, stored)
    resent = sends(fx)[0]
    assert kinds(fx)[0] == "persist" and resent["id"] != first["id"]
    assert resent["b"] == first["b"] and again.needs[d.rec["need"]] == fx[0][2]


def test_resume_restates_money_stock_and_decisions():
    d = Device()
    d.need()
    d.offer()
    assert kinds(lc.resume(d.record, d.now, d.orders.config, d.ids)[1]) == ["decide"]
    d.decide(hold_until=TS + 86400)
    d.receipt()
    fx = lc.resume(d.record, d.now, d.orders.config, d.ids)[1]
    assert kinds(fx) == ["commit", "incoming", "timer"]
    d.feed(d.orders.cancel(d.rec["need"], d.now))
    cancel = d.last_sent(m.CANCEL)
    fx = lc.resume(d.record, d.now + 60, d.orders.config, d.ids)[1]
    assert kinds(fx) == ["release", "cancelled", "send"] and sends(fx) == [cancel]
    assert lc.resume(d.record, cancel["exp"], d.orders.config, d.ids)[1][2:] == []


def test_records_round_trip_and_malformed_ones_are_refused():
    d = Device()
    d.order()
    state = lc.to_state(d.record)
    assert lc.from_state(state) == d.record
    bad = []
    for key, value in (("state", "lost"), ("money", "spent"), ("ids", [[b"x", 4]]),
                       ("oid", None), ("tries", -1), ("v", 2), ("order", {"order": b"1" * 16})):
        broken = lc.to_state(d.record)
        broken[key] = value
        bad.append(broken)
    missing = lc.to_state(d.record)
    del missing["due"]
    bad.append(missing)
    closed = lc.to_state(d.record)
    closed.update({"state": lc.CLOSED, "reason": "x"})
    bad.append(closed)  # closed with money still reserved
    for broken in bad:
        raises(ValueError, lc.from_state, broken)
    raises(lc.LifecycleError, lc.from_state, [])


def test_settings_are_checked():
    raises(lc.LifecycleError, lc.make_config, {"retries": 3})
    raises(lc.LifecycleError, lc.make_config, {"quote_wait": True})
    raises(lc.LifecycleError, lc.make_config, {"approval_timeout": "approve"})
    assert lc.make_config({"rounds": 0})["rounds"] == 0


def test_support_reply_with_steps_only_closes():
    d = Device()
    fx = d.feed(d.orders.support("ice-maker", "e21-flow-sensor", {"fw": "2.4.1"}, VENDOR,
                                 OWNER, d.now))
    request = sends(fx)[0]
    d.rec = d.orders.open_for("ice-maker")
    assert request["t"] == m.SUPPORT_REQUEST and request["b"]["fault"] == "e21-flow-sensor"
    fx = d.msg(m.SUPPORT_REPLY, {"case": request["b"]["case"], "steps": ["Reseat the filter."]},
               re=request["id"])
    assert (d.state(), d.record["reason"]) == (lc.CLOSED, "answered")
    assert [e[2]["steps"] for e in fx if e[0] == "audit" and "steps" in e[2]] == [
        ["Reseat the filter."]]


def test_support_visit_goes_through_the_decision_like_a_purchase():
    d = Device()
    fx = d.feed(d.orders.support("ice-maker", "e21-flow-sensor", {}, VENDOR, OWNER, d.now))
    request = sends(fx)[0]
    case = request["b"]["case"]
    d.rec = d.orders.open_for("ice-maker")
    fx = d.msg(m.SUPPORT_REPLY, {"case": case, "steps": ["Call us."],
                                 "visit": {"price": [8900, "EUR"], "until": TS + 86400}},
               re=request["id"])
    visit = only(fx, "decide")[2][0][1]
    assert (visit["offer"], visit["sku"], visit["total"]) == (case, lc.VISIT_SKU, [8900, "EUR"])
    fx = d.feed(d.orders.decided(d.rec["need"], {"action": "buy", "offer": case, "mandate": 7},
                                 d.now))
    assert d.last_sent(m.ORDER)["b"]["offer"] == case and "incoming" not in kinds(fx)
    d.receipt()
    assert d.state() == lc.PLACED


def test_closed_needs_are_pruned_from_the_container():
    d = Device({"quote_retries": 0, "wait": 0})  # no need rests its slot (see below)
    dropped = []
    for i in range(lc.MAX_CLOSED + 2):
        d.need("slot-%d" % i)
        dropped += [e for e in d.tick() if e[0] == "drop"]
    assert len(d.orders.needs) == lc.MAX_CLOSED and len(dropped) == 2


def test_a_container_keeps_as_many_closed_needs_as_it_is_told_the_latest():
    d = Device({"quote_retries": 0, "wait": 0})
    d.orders = lc.Orders(d.ids, d.orders.config, keep_closed=2)
    needs, dropped = [], []
    for i in range(5):
        d.need("slot-%d" % i)
        needs.append(d.rec["need"])
        dropped += [e[1] for e in d.tick() if e[0] == "drop"]
    assert dropped == needs[:3]
    assert sorted(d.orders.needs) == sorted(needs[3:])
    for bad in (0, lc.MAX_CLOSED + 1, "2"):
        raises(lc.LifecycleError, lc.Orders, d.ids, keep_closed=bad)


def test_closed_needs_read_back_past_what_a_container_keeps_are_let_go_as_it_resumes():
    # Five closed needs written by a device that kept them all, read back by one that keeps two
    # (a board after a firmware that kept more): the three oldest go as it starts.
    d = Device({"quote_retries": 0, "wait": 0})
    needs = []
    for i in range(5):
        d.need("slot-%d" % i)
        needs.append(d.rec["need"])
        d.tick()
    fewer = lc.Orders(d.ids, d.orders.config, d.orders.to_state(), keep_closed=2)
    assert len(fewer.needs) == 5
    fx = fewer.resume(d.now)
    assert [e[1] for e in fx if e[0] == "drop"] == needs[:3]
    assert sorted(fewer.needs) == sorted(needs[3:])


def test_a_closed_need_that_rests_its_slot_is_kept_until_the_rest_ends():
    # Three slots' needs close without an offer within the hour (`wait`): each slot rests, and
    # a container that keeps two closed needs keeps the third while its slot rests, so that the
    # slot is not asked for again at once; the first event after the rest lets it go.
    d = Device({"quote_retries": 0})
    d.orders = lc.Orders(d.ids, d.orders.config, keep_closed=2)
    needs = []
    for i in range(3):
        d.need("slot-%d" % i)
        needs.append(d.rec["need"])
        assert [e for e in d.tick() if e[0] == "drop"] == []
    assert sorted(d.orders.needs) == sorted(needs)
    first = d.orders.needs[needs[0]]
    assert lc.resting(first, d.now, d.orders.config)
    d.now = first["closed"] + d.orders.config["wait"]
    assert not lc.resting(first, d.now, d.orders.config)
    d.need("slot-3")
    assert [e[1] for e in d.offer() if e[0] == "drop"] == [needs[0]]
    assert sorted(d.orders.needs) == sorted(needs[1:] + [d.rec["need"]])


def test_an_opened_message_becomes_an_event():
    d = Device()
    d.need()
    quote = d.record["out"]
    opened = m.parse(build(m.OFFER, offer_body(), reply_to=quote["id"], sender_kid=VENDOR,
                           recipient_kid=b"D" * 8))
    event = lc.from_message(opened, b"\xd2as it came")
    assert event == {"from": VENDOR, "id": opened.id, "t": m.OFFER, "re": quote["id"],
                     "b": offer_body(), "data": b"\xd2as it came"}
    d.feed(d.orders.message(event, d.now))
    assert d.state() == lc.DECIDING


def test_a_vendor_error_about_our_order_is_audited_and_the_retries_go_on():
    d = Device()
    d.order()
    fx = d.msg(m.ERROR, {"code": "rate-limited", "text": "Slow down.", "ref": d.record["oid"]})
    assert [e[2]["error"] for e in fx if e[0] == "audit"] == ["rate-limited"]
    assert d.state() == lc.ORDERING and d.orders.ignored == {}
    assert sends(d.tick())[0]["b"]["order"] == d.record["oid"]


def test_a_step_that_would_break_the_state_table_is_refused():
    d = Device()
    d.need()
    d.offer()
    d.decide("buy")
    assert d.state() == lc.ORDERING
    step = lc._Step(d.record, d.now, lc.make_config(), d.ids)
    step.rec["state"] = lc.QUOTING  # an order placed cannot go back to quoting
    raises(lc.LifecycleError, step.finish)
    assert lc._may_follow(lc.ORDERING, lc.PLACED) and lc._may_follow(None, lc.QUOTING)
    assert not lc._may_follow(lc.CLOSED, lc.QUOTING) and not lc._may_follow(lc.DELIVERED,
                                                                            lc.SHIPPED)
    states = [state for state, _ in lc.NEXT]
    assert sorted(states) == sorted(lc.RANK)  # every state has its row
    for state, following in lc.NEXT:
        assert all(lc.RANK[n] > lc.RANK[state] or lc.RANK[n] == 0 == lc.RANK[state]
                   for n in following)  # a need only moves up the rank, as RANK says
