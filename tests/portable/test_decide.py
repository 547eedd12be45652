# Decision scenarios (decide, approval, money) on the portable core: CPython and MicroPython alike.
from check import raises
from samples import DEVICE, OWNER, TS, VENDOR

from thingsdk.core import approval, cbor, messages
from thingsdk.core import mandate as md
from thingsdk.core.consumable import Consumable
from thingsdk.core.decide import Decision, decide, sentence
from thingsdk.core.ledger import Ledger
from thingsdk.core.money import text as money

DAY = 86400
NOW = TS + 10 * DAY + 12 * 3600  # 2026-01-11 12:00 UTC
OTHER = b"\x0b" * 8  # another vendor
NAMES = {"water-filter": "Filter", VENDOR: "vendor A", OTHER: "vendor B"}
MONTHLY = ["budget", {"cur": "EUR", "max": 5000, "period": "month"}]


def slot(level, per_day=12, sku="WF-300"):
    """A water filter read every 6 hours for 4 days, used evenly: ~level/per_day days left.
    Reorder point: 3 days of use over the lead time, and a safety stock of twice the use while a
    delivery comes a day and a half late (half the spread): 36 + 36 = 72 l."""
    c = Consumable("water-filter", "l", 300, sku=sku, lead_time=3 * DAY, lead_spread=3 * DAY)
    for i in range(17):
        c.read(NOW - (16 - i) * 6 * 3600, level + per_day * (16 - i) // 4)
    return c


def mandate(*constraints, **times):
    claims = md.make_claims(OWNER, bytes(range(32)), 7, times.get("nbf", TS),
                            times.get("exp", TS + 365 * DAY), constraints)
    return md.Mandate(claims, None)


def offer(n=3, total=2490, days=3, sku="WF-300", qty=1, test=False, until=NOW + DAY):
    return {"offer": bytes([n]) * 16, "sku": sku, "title": "Fridge water filter", "qty": qty,
            "price": [total // qty, "EUR"], "ship": [total % qty, "EUR"], "total": [total, "EUR"],
            "lead": days * DAY, "arrive": NOW + days * DAY, "until": until, "test": test}


def run(c, m, offers=(), ledger=None, now=NOW, **options):
    return decide(c, c.forecast(now), m, ledger or Ledger(m.limits() if m else ()),
                  list(offers), now, names=NAMES, **options)


def test_buys_within_policy_and_says_why():
    m = mandate(MONTHLY, ["vendors", {"kids": [VENDOR]}], ["cancel-window", {"seconds": 3600}])
    ledger = Ledger(m.limits())
    ledger.reserve(b"\x01" * 16, 1890, "EUR", NOW - DAY)
    d = run(slot(72), m, [(VENDOR, offer())], ledger)
    assert (d.action, d.reason) == ("buy", "within-policy")
    assert d.text == ("Filter has ~6 days left; ordered tomorrow, it might come too late; vendor "
                      "A delivers in 3 days for 24.90 EUR; within the 50.00 EUR budget this month "
                      "(6.20 EUR left after this order).")
    assert (d.vendor, d.quantity, d.total, d.test) == (VENDOR, 1, [2490, "EUR"], False)
    assert d.hold_until == NOW + 3600 and d.offer["offer"] == b"\x03" * 16
    body = d.order(b"\x04" * 16)
    assert body == {"order": b"\x04" * 16, "offer": b"\x03" * 16, "sku": "WF-300", "qty": 1,
                    "total": [2490, "EUR"], "mandate": 7, "test": False}
    messages.build(messages.ORDER, body, DEVICE, VENDOR, 1, NOW, NOW + 60, b"\x05" * 16)
    record = d.to_record()
    assert record["action"] == "buy" and record["checks"][0] == ["budget", "ok", "ok"]
    assert cbor.loads(cbor.dumps(record)) == record


def test_waits_while_stock_lasts_or_an_order_is_on_its_way():
    m = mandate(MONTHLY)
    d = run(slot(204), m, [(VENDOR, offer())])
    assert (d.action, d.reason, d.quantity) == ("wait", "enough-stock", 0)
    assert d.text == "Filter has ~17 days left; above its reorder point, so nothing to buy."
    c = slot(24)
    c.add_order(b"\x04" * 16, 1)
    d = run(c, m, [(VENDOR, offer())])
    assert (d.action, d.reason) == ("wait", "order-in-flight")
    raises(ValueError, d.order, b"\x06" * 16)
    empty = Consumable("water-filter", "l", 300)
    assert run(empty, m).reason == "no-reading"


def test_at_the_reorder_point_without_offers_it_asks_vendors():
    d = run(slot(48), mandate(MONTHLY))
    assert (d.action, d.reason, d.quantity) == ("wait", "reorder-point-reached", 1)
    assert d.text == "Filter has ~4 days left; at its reorder point, asking vendors for 1."


def test_asks_for_no_more_than_the_mandate_allows_and_says_why():
    c = slot(48)
    c.order_qty = 31  # a heavy user's need: 31 filters
    item = ["items", {"allow": [{"sku": "WF-300", "max-price": [2990, "EUR"], "max-qty": 12}]}]
    d = run(c, mandate(item))
    assert (d.reason, d.quantity) == ("reorder-point-reached", 12)
    assert d.text.endswith("asking vendors for 12; 12 of the 31 needed, as the mandate allows "
                           "12 per order.")
    per_order = ["amount-range", {"cur": "EUR", "min": 100, "max": 20000}]
    d = run(c, mandate(item, per_order, MONTHLY))  # (50.00 - 3.90) / 29.90 at most
    assert d.quantity == 1 and "as 1 fit the 50.00 EUR left this month" in d.text
    ledger = Ledger(mandate(MONTHLY).limits())
    ledger.reserve(b"\x01" * 16, 4500, "EUR", NOW - DAY)
    d = run(c, mandate(item, per_order, MONTHLY), ledger=ledger)  # nothing fits: one is asked,
    assert d.quantity == 1 and "5.00 EUR left this month" in d.text  # the offer decides
    c.ship_cost = 390
    d = run(c, mandate(item, per_order), usual_price=[2490, "EUR"])
    assert d.quantity == 7 and d.text.endswith("as 7 fit the 200.00 EUR limit per order.")
    m = mandate(item, per_order)
    d = run(c, m, [(VENDOR, offer(qty=7, total=7 * 2490 + 390))], usual_price=[2490, "EUR"])
    assert (d.action, d.reason, d.quantity) == ("buy", "within-policy", 7)


def test_the_last_orders_a_month_allows_last_until_the_month_ends():
    monthly = ["recurrence", {"max": 3, "period": "month"}]
    c = slot(48)  # 12 l a day; 1 filter of 300 l needed
    assert run(c, mandate(monthly)).quantity == 1
    ledger = Ledger(mandate(monthly).limits())
    for n in range(2):
        ledger.reserve(bytes([n + 1]) * 16, 100, "EUR", NOW - DAY)
    d = run(c, mandate(monthly), ledger=ledger)  # 20.5 days of the month left, one order
    assert d.quantity == 1  # 246 l: one filter covers it
    c.estimator = slot(48, per_day=36).estimator  # 36 l a day: 738 l to the month's end
    d = run(c, mandate(monthly), ledger=ledger)
    assert d.quantity == 3 and d.text.endswith(
        "asking vendors for 3; 3, to last with 1 order left this month.")
    d = run(c, mandate(monthly), [(VENDOR, offer(qty=3, total=3 * 2490 + 390))], ledger=ledger)
    assert (d.action, d.quantity) == ("buy", 3)  # the buy says why it holds that many, too
    assert d.text == ("Filter has ~1 day left; no offer arrives before it may run out, so the "
                      "soonest; vendor A delivers in 3 days for 78.60 EUR; 3, to last with 1 "
                      "order left this month; within your policy.")
    d = run(c, mandate(monthly), [(VENDOR, offer(qty=2, total=2 * 2490 + 390))], ledger=ledger)
    assert "to last" not in d.text  # an offer of another quantity: that reason is not its own
    c.pack = 1  # absurdly small items: never more than an order may hold
    assert run(c, mandate(monthly), ledger=ledger).quantity == 738
    c.estimator = slot(48, per_day=10 ** 9).estimator
    assert run(c, mandate(monthly), ledger=ledger).quantity == 1000000


def test_an_offer_that_would_still_arrive_in_time_tomorrow_waits():
    m = mandate(MONTHLY)
    c = slot(36)
    c.lead_spread = c.late = 0  # deliveries come when promised: no safety stock for lateness
    d = run(c, m, [(VENDOR, offer(days=1))])  # 3 days left; ordered tomorrow, it comes in 2
    assert (d.action, d.reason, d.quantity, d.until) == ("wait", "in-time-later", 1, NOW + DAY)
    assert d.text == ("Filter has ~3 days left; vendor A delivers in 1 day for 24.90 EUR; in "
                      "time if ordered tomorrow too, so not yet.")
    assert run(c, m, [(VENDOR, offer(days=2))]).reason == "in-time-later"
    c.add_order(b"\x07" * 16, 1)
    c.receive(b"\x07" * 16, 0, late=2 * DAY)  # deliveries came late: 1 day, root mean square
    d = run(c, m, [(VENDOR, offer(days=1))])  # 24 l until it comes a day later, 24 for lateness
    assert (d.action, d.reason) == ("buy", "within-policy")
    assert run(slot(60), m, [(VENDOR, offer(days=2))]).action == "buy"  # may come 3 days late


def test_no_order_without_a_mandate_that_holds_now():
    c, offers = slot(48), [(VENDOR, offer())]
    assert run(c, None, offers).reason == "no-mandate"
    d = run(c, mandate(exp=NOW), offers)
    assert (d.action, d.reason) == ("refuse", "mandate-expired")
    d = run(c, mandate(nbf=NOW + 60), offers)
    assert (d.action, d.reason, d.until) == ("wait", "mandate-not-yet-valid", NOW + 60)
    d = run(c, mandate(MONTHLY, ["acme:carbon", {"max-kg": 3}]), offers)
    assert (d.action, d.reason) == ("refuse", "unknown-constraint")
    assert d.text.endswith("the mandate has a rule this device does not know (acme:carbon).")


def test_offers_that_are_expired_test_or_for_another_item_are_not_valid():
    offers = [(VENDOR, offer(until=NOW)), (VENDOR, offer(4, sku="AQ-9")),
              (VENDOR, offer(5, test=True))]
    d = run(slot(48), mandate(MONTHLY), offers)
    assert (d.action, d.reason, d.offer) == ("refuse", "no-valid-offer", None)


def test_refusals_name_the_constraint_that_fails():
    m = mandate(MONTHLY, ["vendors", {"kids": [VENDOR]}])
    d = run(slot(48), m, [(VENDOR, offer(total=5100)), (OTHER, offer(4, total=5200))])
    assert (d.action, d.reason, d.vendor) == ("refuse", "over-budget", VENDOR)
    assert d.text == ("Filter has ~4 days left; vendor A delivers in 3 days for 51.00 EUR; over "
                      "the 50.00 EUR budget this month (50.00 EUR left).")
    d = run(slot(48), m, [(OTHER, offer(4))])
    assert (d.action, d.reason) == ("refuse", "vendor-not-allowed")
    d = run(slot(48), mandate(["recurrence", {"max": 1, "period": "month"}]),
            [(VENDOR, offer())], Ledger([["recurrence", {"max": 1, "period": "month"}]]))
    assert d.action == "buy"


def test_the_cheapest_offer_that_arrives_in_time_else_the_soonest():
    m = mandate(MONTHLY)
    offers = [(VENDOR, offer(3, 2490, days=3)), (OTHER, offer(4, 1990, days=7)),
              (OTHER, offer(5, 2290, days=4))]
    c = slot(84)
    c.lead_time = 4 * DAY  # the slowest offer it waits for
    assert run(c, m, offers).offer["offer"] == b"\x05" * 16  # the 1990 one comes too late
    d = run(slot(24), m, offers)  # 2 days left: none in time
    assert (d.action, d.offer["offer"]) == ("buy", b"\x03" * 16)
    assert d.text.startswith("Filter has ~2 days left; no offer arrives before it may run out, "
                             "so the soonest; vendor A delivers in 3 days for 24.90 EUR")


def test_above_the_approval_limit_it_asks_the_owner():
    m = mandate(MONTHLY, ["approval-above", {"cur": "EUR", "amount": 2000}],
                ["cancel-window", {"seconds": 600}])
    d = run(slot(48), m, [(VENDOR, offer())])
    assert (d.action, d.reason, d.hold_until) == ("ask", "above-approval-threshold", NOW + 600)
    assert d.text == ("Filter has ~4 days left; no offer arrives before it may run out, so the "
                      "soonest; vendor A delivers in 3 days for 24.90 EUR; above your 20.00 EUR "
                      "approval limit.")
    req = approval.request(d, b"\x09" * 16, NOW, ttl=3600)
    assert req["until"] == NOW + 3600 and req["why"] == d.text and req["order"]["vendor"] == VENDOR
    messages.build(messages.APPROVAL_REQUEST, req, DEVICE, OWNER, 2, NOW, NOW + 3600, b"\x0a" * 16)
    raises(ValueError, approval.request, run(slot(48), mandate(), [(VENDOR, offer())]), b"", NOW)


def answer(decision, sender=OWNER, terms=None):
    """The owner's approval message (parsed) answering request `terms` (an approval request
    body: an approval names what it approves)."""
    body = {"req": b"\x09" * 16, "decision": decision}
    if decision == "approve":
        body.update(approval.terms(terms["order"]))
    return messages.parse(messages.build(messages.APPROVAL, body, sender, DEVICE, 3, NOW, NOW + 60,
                                         b"\x0c" * 16, b"\x0a" * 16))


def test_the_owners_answer_turns_the_question_into_a_decision():
    m = mandate(MONTHLY, ["approval-above", {"cur": "EUR", "amount": 2000}])
    ledger = Ledger(m.limits())
    asked = run(slot(48), m, [(VENDOR, offer())], ledger)
    req = approval.request(asked, b"\x09" * 16, NOW, ttl=3600)
    d = approval.resolve(asked, req, answer("approve", terms=req), m, ledger, NOW + 60, NAMES)
    assert (d.action, d.reason, d.approval) == ("buy", "approved", b"\x0c" * 16)
    assert d.text.startswith("The owner approved; vendor A delivers in 3 days for 24.90 EUR")
    assert d.order(b"\x04" * 16, b"\xd2sealed")["appr"] == b"\xd2sealed"
    other = dict(req, order=dict(req["order"], total=[2400, "EUR"]))  # not what was asked
    raises(ValueError, approval.resolve, asked, req, answer("approve", terms=other), m, ledger,
           NOW + 60)
    assert approval.resolve(asked, req, answer("decline"), m, ledger, NOW).reason == "declined"
    waiting = approval.resolve(asked, req, None, m, ledger, NOW + 60)
    assert (waiting.action, waiting.reason, waiting.until) == ("wait", "awaiting-approval",
                                                               NOW + 3600)
    for late in (None, answer("approve", terms=req)):
        d = approval.resolve(asked, req, late, m, ledger, NOW + 3600)
        assert (d.action, d.reason) == ("refuse", "approval-timeout")
    raises(ValueError, approval.resolve, asked, req, answer("approve", VENDOR, req), m, ledger,
           NOW)
    ledger.reserve(b"\x01" * 16, 4000, "EUR", NOW)  # the budget was spent meanwhile
    d = approval.resolve(asked, req, answer("approve", terms=req), m, ledger, NOW + 60)
    assert (d.action, d.reason) == ("refuse", "over-budget")


def test_quiet_hours_make_it_wait_until_they_end():
    m = mandate(["quiet-hours", {"tz": 60, "start": 720, "end": 840}])  # 12:00..14:00 at UTC+1
    d = run(slot(48), m, [(VENDOR, offer())])  # 13:00 local
    assert (d.action, d.reason, d.until) == ("wait", "quiet-hours", NOW + 3600)
    assert d.text.endswith("quiet hours until 14:00 local time.")
    assert run(slot(48), m, [(VENDOR, offer())], now=NOW + 3600).action == "buy"


def test_test_mode_orders_are_test_orders():
    m = mandate(["test-mode", {}])
    d = run(slot(48), m, [(VENDOR, offer(test=True))])
    assert (d.action, d.test, d.order(b"\x04" * 16)["test"]) == ("buy", True, True)
    assert run(slot(48), m, [(VENDOR, offer())]).reason == "not-test-offer"


def test_a_promotion_is_taken_early_only_when_it_saves_more_than_holding_costs():
    m = mandate(MONTHLY)
    promo = [(VENDOR, offer(total=1990))]
    c = slot(144)  # 12 days left, 6 days above the reorder point
    d = run(c, m, promo, usual_price=[2490, "EUR"], holding_cost=50)
    assert (d.action, d.reason) == ("buy", "promotion")
    assert d.text == ("Filter has ~12 days left; a promotion saves 5.00 EUR against the usual "
                      "price, more than the 3.00 EUR it costs to hold the items ~6 days early; "
                      "vendor A delivers in 3 days for 19.90 EUR; within the 50.00 EUR budget "
                      "this month (30.10 EUR left after this order).")
    assert run(c, m, promo, usual_price=[2490, "EUR"], holding_cost=90).reason == "enough-stock"
    assert run(c, m, promo).reason == "enough-stock"  # no usual price: nothing to compare
    tight = mandate(["budget", {"cur": "EUR", "max": 1000, "period": "month"}])
    assert run(c, tight, promo, usual_price=[2490, "EUR"]).reason == "enough-stock"
    c.shelf_life = 30 * DAY  # a perishable is not bought early
    assert run(c, m, promo, usual_price=[2490, "EUR"], holding_cost=50).reason == "enough-stock"


def test_money_is_shown_with_the_currencys_decimals():
    assert money(2490, "EUR") == "24.90 EUR" and money(5, "EUR") == "0.05 EUR"
    assert money(2490, "JPY") == "2490 JPY" and money(1005, "KWD") == "1.005 KWD"
    assert money(10 ** 12, "USD") == "10000000000.00 USD"


def test_sentences_stay_within_the_protocols_bound():
    long = sentence(["é" * 200, "x" * 200])
    assert len(long.encode()) <= 280 and long.endswith("...")
    assert sentence(["short", "and sweet"]) == "Short; and sweet."
    assert isinstance(Decision("wait", "enough-stock", "x", NOW).to_record(), dict)
