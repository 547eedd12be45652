"""Decisions on CPython: the offer choice and the never-twice rule hold for any offers (hypothesis),
money never goes through float, and a whole ask-approve-order exchange runs over signed messages
whose bodies match the CDDL."""

from decimal import Decimal
from pathlib import Path

import pycddl
import samples
from hypothesis import given
from hypothesis import strategies as st

from thingsdk import codec
from thingsdk.core import approval, envelope, messages, policy
from thingsdk.core import mandate as md
from thingsdk.core.consumable import DAY, Consumable
from thingsdk.core.decide import decide
from thingsdk.core.ledger import Ledger
from thingsdk.core.money import DECIMALS
from thingsdk.core.money import text as money_text
from thingsdk.crypto import Ed25519Signer

SPEC = (Path(__file__).resolve().parent.parent / "spec" / "thingsdk.cddl").read_text()
OWNER = Ed25519Signer.from_seed(bytes(range(32)))
DEVICE = Ed25519Signer.from_seed(bytes(range(1, 33)))
VENDOR = Ed25519Signer.from_seed(bytes(range(2, 34)))
STRANGER = b"\x0b" * 8
NOW = samples.TS + 10 * DAY + 12 * 3600
RULES = [["budget", {"cur": "EUR", "max": 6000, "period": "month"}],
         ["vendors", {"kids": [VENDOR.kid]}],
         ["approval-above", {"cur": "EUR", "amount": 4000}],
         ["cancel-window", {"seconds": 1800}]]
MANDATE = md.Mandate(md.make_claims(OWNER.kid, DEVICE.public_key, 3, samples.TS,
                                    samples.TS + 365 * DAY, RULES), None)


def slot(level, per_day=12):
    c = Consumable("water-filter", "l", 300, sku="WF-300", lead_time=3 * DAY, lead_spread=3 * DAY)
    for i in range(17):
        c.read(NOW - (16 - i) * 6 * 3600, level + per_day * (16 - i) // 4)
    return c


def offer(n, total, days, until=NOW + DAY):
    return {"offer": bytes([n]) * 16, "sku": "WF-300", "title": "Fridge water filter", "qty": 1,
            "price": [total, "EUR"], "ship": [0, "EUR"], "total": [total, "EUR"],
            "lead": days * DAY, "arrive": NOW + days * DAY, "until": until, "test": False}


offers_strategy = st.lists(st.tuples(
    st.sampled_from([VENDOR.kid, STRANGER]), st.integers(100, 8000), st.integers(0, 12),
    st.sampled_from([NOW, NOW + DAY])), max_size=6)


@given(st.integers(0, 72), offers_strategy, st.integers(0, 6000))
def test_the_choice_is_the_cheapest_in_time_else_the_soonest(level, specs, spent):
    c = slot(level)
    forecast = c.forecast(NOW)
    ledger = Ledger(MANDATE.limits())
    ledger.reserve(b"\x01" * 16, spent, "EUR", NOW - DAY)
    offers = [(v, offer(n, total, days, until)) for n, (v, total, days, until) in enumerate(specs)]
    d = decide(c, forecast, MANDATE, ledger, offers, NOW)
    assert len(d.text.encode()) <= 280
    assert codec.loads(codec.dumps(d.to_record())) == d.to_record()
    fine = [o for v, o in offers if v == VENDOR.kid and NOW < o["until"]
            and spent + o["total"][0] <= 6000]
    # in time: the stock holds what the slot must cover until the offer comes
    in_time = [o for o in fine if sum(c.cover(o["arrive"] - NOW)) <= c.position(NOW)]
    if d.action in ("buy", "ask"):
        assert d.offer in fine and d.hold_until == NOW + 1800
        assert (d.action == "ask") == (d.total[0] > 4000)
        if in_time:
            assert d.total[0] == min(o["total"][0] for o in in_time)
        else:
            assert d.offer["arrive"] == min(o["arrive"] for o in fine)
    elif d.reason == "in-time-later":  # the cheapest in time could be ordered a day later
        cheapest = min(in_time, key=lambda o: (o["total"][0], o["arrive"]))
        assert sum(c.cover(cheapest["arrive"] + DAY - NOW)) <= c.position(NOW)
        assert d.until >= NOW
    else:
        assert not fine or not c.reorder(NOW)


@given(st.integers(0, 300), offers_strategy)
def test_never_a_second_order_for_the_same_need(level, specs):
    c = slot(level)
    c.add_order(b"\x04" * 16, 1)
    offers = [(v, offer(n, total, days)) for n, (v, total, days, _) in enumerate(specs)]
    d = decide(c, c.forecast(NOW), MANDATE, Ledger(MANDATE.limits()), offers, NOW)
    assert (d.action, d.reason, d.offer) == ("wait", "order-in-flight", None)


@given(st.integers(0, 10**12), st.sampled_from(["EUR", "USD", "GBP"] + sorted(DECIMALS)))
def test_money_text_is_exact(amount, currency):
    places = DECIMALS.get(currency, 2)
    number = Decimal(amount).scaleb(-places)
    assert money_text(amount, currency) == "%s %s" % (format(number, "f"), currency)


def cddl(rule, obj):
    pycddl.Schema("root = %s\n%s" % (rule, SPEC)).validate_cbor(codec.dumps(obj))


def test_ask_approve_and_order_over_signed_messages():
    token = md.issue(md.make_claims(OWNER.kid, DEVICE.public_key, 3, samples.TS,
                                    samples.TS + 365 * DAY, RULES), OWNER, codec)
    held = md.accept(None, token, OWNER.verifier(), codec, DEVICE.kid, NOW)
    ledger = Ledger(held.limits())
    c = slot(48)
    asked = decide(c, c.forecast(NOW), held, ledger, [(VENDOR.kid, offer(3, 5398, 2))], NOW)
    assert (asked.action, asked.reason) == ("ask", "above-approval-threshold")
    body = approval.request(asked, b"\x09" * 16, NOW)
    cddl("approval-request-body", body)
    to_owner = envelope.seal(messages.APPROVAL_REQUEST, body, DEVICE, OWNER.kid, 1, NOW,
                             b"\x0a" * 16, codec)
    owner_inbox = envelope.Inbox(OWNER.kid, {DEVICE.kid: DEVICE.verifier()}, codec)
    request = owner_inbox.open(to_owner, NOW + 5).message
    approve = dict(approval.terms(request.body["order"]), req=request.body["req"],
                   decision="approve")
    cddl("approval-body", approve)
    reply = envelope.seal(messages.APPROVAL, approve, OWNER, DEVICE.kid, 1, NOW + 60,
                          b"\x0c" * 16, codec, reply_to=request.id)
    device_inbox = envelope.Inbox(DEVICE.kid, {OWNER.kid: OWNER.verifier()}, codec)
    answer = device_inbox.open(reply, NOW + 61).message
    final = approval.resolve(asked, body, answer, held, ledger, NOW + 61)
    assert (final.action, final.reason, final.approval) == ("buy", "approved", b"\x0c" * 16)
    order_id = b"\x04" * 16
    assert ledger.reserve(order_id, final.total[0], final.total[1], NOW + 61) == "reserved"
    order = final.order(order_id, reply)
    cddl("order-body", order)
    sent = envelope.seal(messages.ORDER, order, DEVICE, VENDOR.kid, 2, NOW + 61, b"\x0d" * 16,
                         codec)
    vendor_inbox = envelope.Inbox(VENDOR.kid, {DEVICE.kid: DEVICE.verifier()}, codec)
    assert vendor_inbox.open(sent, NOW + 62).message.body == order
    assert order["appr"] == reply  # the owner's approval itself, for the vendor to verify
    again = decide(c, c.forecast(NOW), held, ledger, [(VENDOR.kid, offer(3, 2000, 2))], NOW + 62)
    assert (again.action, again.reason) == ("refuse", "over-budget")  # 53.98 of 60.00 reserved


def test_every_check_of_a_decision_is_in_its_record():
    c = slot(48)
    d = decide(c, c.forecast(NOW), MANDATE, Ledger(MANDATE.limits()),
               [(VENDOR.kid, offer(3, 2490, 2))], NOW)
    assert d.to_record()["checks"] == [[k, policy.OK, policy.OK] for k, _ in RULES]


def test_a_decision_and_the_owner_name_the_vendor_as_its_offer_signed_it():
    from thingsdk.owner import request_report

    token = md.issue(md.make_claims(OWNER.kid, DEVICE.public_key, 3, samples.TS,
                                    samples.TS + 365 * DAY, RULES), OWNER, codec)
    held = md.accept(None, token, OWNER.verifier(), codec, DEVICE.kid, NOW)
    c = slot(48)
    named = dict(offer(3, 5398, 2), **{"from": "AquaPure"})
    asked = decide(c, c.forecast(NOW), held, Ledger(held.limits()), [(VENDOR.kid, named)], NOW)
    assert "AquaPure delivers in 2 days for 53.98 EUR" in asked.text
    assert VENDOR.kid.hex()[:8] not in asked.text
    body = approval.request(asked, b"\x09" * 16, NOW)
    cddl("approval-request-body", body)
    sent = envelope.seal(messages.APPROVAL_REQUEST, body, DEVICE, OWNER.kid, 1, NOW,
                         b"\x0a" * 16, codec)
    request = envelope.Inbox(OWNER.kid, {DEVICE.kid: DEVICE.verifier()}, codec).open(sent, NOW)
    assert "for 53.98 EUR from AquaPure (vendor %s)" % VENDOR.kid.hex() in request_report(
        request.message, True)
    unnamed = decide(c, c.forecast(NOW), held, Ledger(held.limits()),
                     [(VENDOR.kid, offer(3, 5398, 2))], NOW)
    assert "vendor %s delivers" % VENDOR.kid.hex() in unnamed.text
