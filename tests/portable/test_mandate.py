# Mandate scenarios on the portable core alone (core Ed25519, core CBOR): CPython and MicroPython.
from check import raises
from samples import TS, VENDOR, example_claims

from thingsdk.core import cbor, ed25519, policy
from thingsdk.core import mandate as md
from thingsdk.core.ledger import Ledger

OWNER = ed25519.Signer(bytes(range(32)))
DEVICE = ed25519.Signer(bytes(range(1, 33)))
OWNER_KEY = ed25519.Verifier(OWNER.public_key)
NOW = TS + 10 * 86400 + 12 * 3600  # 2026-01-11 12:00 UTC
YEAR = 365 * 86400
_TOKENS = {}


def claims(version=7, constraints=(), nbf=TS, exp=TS + YEAR):
    return md.make_claims(OWNER.kid, DEVICE.public_key, version, nbf, exp, constraints)


def token(version=7, constraints=(), nbf=TS, exp=TS + YEAR):
    """A signed mandate, made once per set of arguments (signing is slow on a board)."""
    key = (version, repr(constraints), nbf, exp)
    if key not in _TOKENS:
        _TOKENS[key] = md.issue(claims(version, constraints, nbf, exp), OWNER, cbor)
    return _TOKENS[key]


def code(fn, *args):
    return raises(md.MandateError, fn, *args).code


def test_issue_and_verify_round_trip():
    rules = [["budget", {"cur": "EUR", "max": 5000, "period": "month"}],
             ["vendors", {"kids": [VENDOR]}]]
    m = md.verify(token(7, rules), OWNER_KEY, cbor, DEVICE.kid, NOW)
    assert (m.version, m.not_before, m.expires, m.issued_at) == (7, TS, TS + YEAR, TS)
    assert m.owner == md.kid_hex(OWNER.kid) and m.device == md.kid_hex(DEVICE.kid)
    assert m.constraints == [(k, p) for k, p in rules]
    assert m.of_kind("vendors") == [{"kids": [VENDOR]}] and m.of_kind("items") == []
    assert m.limits() == [rules[0]]
    signed = cbor.loads(m.token).value
    assert cbor.loads(signed[0]) == {1: -8, 4: OWNER.kid} and signed[1] == {}


def test_tampered_or_foreign_mandates_are_refused():
    good = token()
    bad = bytearray(good)
    bad[-70] ^= 1  # inside the payload
    assert code(md.verify, bytes(bad), OWNER_KEY, cbor, DEVICE.kid, NOW) == "bad-signature"
    forged = md.issue(claims(), OWNER, cbor)[:-64] + DEVICE.sign(b"x")
    assert code(md.verify, forged, OWNER_KEY, cbor, DEVICE.kid, NOW) == "bad-signature"
    other = ed25519.Verifier(DEVICE.public_key)
    assert code(md.verify, good, other, cbor, DEVICE.kid, NOW) == "wrong-owner"
    assert code(md.verify, good, OWNER_KEY, cbor, OWNER.kid, NOW) == "wrong-device"
    assert code(md.verify, b"\xd2\x84", OWNER_KEY, cbor, DEVICE.kid, NOW) == "malformed"
    assert code(md.verify, bytes(2049), OWNER_KEY, cbor, DEVICE.kid, NOW) == "malformed"


def test_iss_must_be_the_signer_and_sub_cnf_the_device():
    c = claims()
    c[md.ISS] = md.kid_hex(DEVICE.kid)
    assert code(md.issue, c, OWNER, cbor) == "wrong-owner"
    c = claims()
    c[md.CNF][1][-2] = OWNER.public_key  # sub still names the device, cnf another key
    signed = md.issue(c, OWNER, cbor)
    assert code(md.verify, signed, OWNER_KEY, cbor, DEVICE.kid, NOW) == "wrong-device"


def test_validity_window_is_nbf_inclusive_exp_exclusive():
    t = token(nbf=NOW, exp=NOW + 60)
    assert md.verify(t, OWNER_KEY, cbor, DEVICE.kid, NOW).status(NOW + 59) is None
    assert code(md.verify, t, OWNER_KEY, cbor, DEVICE.kid, NOW - 1) == "not-yet-valid"
    assert code(md.verify, t, OWNER_KEY, cbor, DEVICE.kid, NOW + 60) == "expired"


def test_malformed_claims_are_refused_before_signing():
    assert code(claims, 0) == "malformed"  # version 0
    assert code(claims, 7, [["shipping-window", {}]]) == "malformed"  # bare unknown kind
    assert code(claims, 7, [["budget", {"cur": "EUR", "max": 1}]]) == "malformed"  # no period
    assert code(claims, 7, (), NOW, NOW) == "malformed"  # nbf not before exp
    ok = claims(7, [["acme:carbon", {"max-kg": 3}]])  # namespaced kinds are held, fail later
    assert ok[md.CONSTRAINTS] == [["acme:carbon", {"max-kg": 3}]]


def test_a_newer_version_replaces_and_an_older_is_stale():
    v7 = md.accept(None, token(7), OWNER_KEY, cbor, DEVICE.kid, NOW)
    assert md.accept(v7, token(7), OWNER_KEY, cbor, DEVICE.kid, NOW) is v7  # a redelivery
    v8 = md.accept(v7, token(8), OWNER_KEY, cbor, DEVICE.kid, NOW)
    assert v8.version == 8
    assert code(md.accept, v8, token(7), OWNER_KEY, cbor, DEVICE.kid, NOW) == "stale-version"
    other8 = token(8, [["test-mode", {}]])
    assert code(md.accept, v8, other8, OWNER_KEY, cbor, DEVICE.kid, NOW) == "stale-version"


# ---- evaluating constraints (thingsdk.core.policy) ---------------------------------------------
def offer(total=2490, price=None, qty=1, sku="WF-300", test=False, cur="EUR"):
    price = total if price is None else price
    return {"offer": bytes(16), "sku": sku, "title": "Filter", "qty": qty, "price": [price, cur],
            "ship": [total - price * qty, cur], "total": [total, cur], "lead": 86400,
            "arrive": NOW + 86400, "until": NOW + 3600, "test": test}


def judge(rule, o=None, ledger=None, now=NOW, vendor=VENDOR, category=None, approved=False,
          zones=None):
    m = md.Mandate(claims(7, [rule]), None)
    p = policy.Proposal(vendor, o or offer(), category, approved)
    (check,) = policy.evaluate(m, p, ledger or Ledger(m.limits()), now, zones)
    return check


def test_amount_range():
    rule = ["amount-range", {"cur": "EUR", "min": 100, "max": 3000}]
    assert judge(rule, offer(3000)).outcome == "ok"
    c = judge(rule, offer(3001))
    assert (c.outcome, c.reason) == ("refuse", "amount-out-of-range")
    assert c.text == "the total 30.01 EUR is outside 1.00 EUR..30.00 EUR"
    assert judge(rule, offer(2000, cur="USD")).reason == "wrong-currency"


def test_budget_counts_reserved_and_committed_orders_of_the_month():
    rule = ["budget", {"cur": "EUR", "max": 5000, "period": "month"}]
    ledger = Ledger([rule])
    assert ledger.reserve(b"a" * 16, 1890, "EUR", NOW - 3600) == "reserved"
    c = judge(rule, offer(2490), ledger)
    assert c.outcome == "ok"
    assert c.text == "within the 50.00 EUR budget this month (6.20 EUR left after this order)"
    ledger.commit(b"a" * 16)
    c = judge(rule, offer(3200), ledger)
    assert (c.outcome, c.reason) == ("refuse", "over-budget")
    assert c.text == "over the 50.00 EUR budget this month (31.10 EUR left)"
    rolling = ["budget", {"cur": "EUR", "max": 5000, "period": "rolling", "window": 30 * 86400}]
    assert "budget in the last 30 days" in judge(rolling).text


def test_recurrence_caps_orders_per_period():
    rule = ["recurrence", {"max": 1, "period": "rolling", "window": 7 * 86400}]
    ledger = Ledger([rule])
    assert judge(rule, ledger=ledger).text == "order 1 of at most 1 in the last 7 days"
    ledger.reserve(b"a" * 16, 2490, "EUR", NOW - 6 * 86400)
    c = judge(rule, ledger=ledger)
    assert (c.outcome, c.reason) == ("refuse", "over-recurrence")
    assert judge(rule, ledger=ledger, now=NOW + 86400).outcome == "ok"


def test_vendors_and_items():
    assert judge(["vendors", {"kids": [VENDOR]}]).outcome == "ok"
    assert judge(["vendors", {"kids": [VENDOR]}], vendor=bytes(8)).reason == "vendor-not-allowed"
    rule = ["items", {"allow": [{"sku": "WF-300", "max-price": [2500, "EUR"], "max-qty": 2},
                                {"cat": "water-filter", "max-price": [3000, "EUR"], "max-qty": 1}]}]
    assert judge(rule, offer(5000, 2500, 2)).outcome == "ok"
    assert judge(rule, offer(2600)).reason == "item-price-too-high"
    assert judge(rule, offer(7500, 2500, 3)).reason == "item-qty-too-high"
    assert judge(rule, offer(2900, sku="AQ-9")).reason == "item-not-allowed"
    assert judge(rule, offer(2900, sku="AQ-9"), category="water-filter").outcome == "ok"
    assert judge(rule, offer(2400, cur="USD")).reason == "wrong-currency"


def test_approval_above_asks_and_the_owners_approval_satisfies_it():
    rule = ["approval-above", {"cur": "EUR", "amount": 4000}]
    assert judge(rule, offer(4000)).outcome == "ok"
    c = judge(rule, offer(4001))
    assert (c.outcome, c.reason, c.text) == ("ask", "above-approval-threshold",
                                             "above your 40.00 EUR approval limit")
    assert judge(rule, offer(4001), approved=True).outcome == "ok"
    assert judge(rule, offer(100, cur="USD")).outcome == "ask"


def test_cancel_window_gives_the_hold_time():
    c = judge(["cancel-window", {"seconds": 86400}])
    assert (c.outcome, c.until, c.text) == ("ok", NOW + 86400, "you can cancel it for 1 day")


def test_quiet_hours_wait_until_the_end_in_local_time():
    rule = ["quiet-hours", {"tz": 60, "start": 1320, "end": 420}]  # 22:00..07:00 at UTC+1
    assert judge(rule, now=NOW).outcome == "ok"  # 13:00 local
    night = TS + 10 * 86400 + 22 * 3600 + 30  # 23:00:30 local
    c = judge(rule, now=night)
    assert (c.outcome, c.reason) == ("wait", "quiet-hours")
    assert c.until == TS + 11 * 86400 + 6 * 3600 and c.text == "quiet hours until 07:00 local time"
    assert judge(rule, now=c.until).outcome == "ok"
    assert judge(rule, now=c.until - 1).outcome == "wait"
    day = ["quiet-hours", {"tz": -300, "start": 720, "end": 780}]  # 12:00..13:00 at UTC-5
    assert judge(day, now=NOW + 5 * 3600).outcome == "wait"
    assert judge(day, now=NOW + 6 * 3600).outcome == "ok"


def test_quiet_hours_by_zone_need_a_resolver_else_all_day_is_quiet():
    rule = ["quiet-hours", {"zone": "Europe/Berlin", "start": 1320, "end": 420}]
    c = judge(rule)
    assert (c.outcome, c.until) == ("wait", None)
    berlin = {"Europe/Berlin": 60}.get
    assert judge(rule, zones=lambda name, now: berlin(name)).outcome == "ok"


def test_test_mode_allows_test_offers_only():
    assert judge(["test-mode", {}], offer(test=True)).outcome == "ok"
    assert judge(["test-mode", {}], offer()).reason == "not-test-offer"


def test_unknown_constraints_fail_closed():
    c = judge(["acme:carbon", {"max-kg": 3}])
    assert (c.kind, c.outcome, c.reason) == ("acme:carbon", "refuse", "unknown-constraint")
    assert policy.unknown(md.Mandate(example_claims(), None)) == []


def test_the_most_severe_check_decides():
    m = md.Mandate(claims(7, [["approval-above", {"cur": "EUR", "amount": 100}],
                              ["vendors", {"kids": [VENDOR]}],
                              ["quiet-hours", {"tz": 0, "start": 0, "end": 1439}]]), None)
    checks = policy.evaluate(m, policy.Proposal(VENDOR, offer()), Ledger(), NOW)
    assert [c.outcome for c in checks] == ["ask", "ok", "wait"]
    assert policy.deciding(checks).kind == "quiet-hours" and policy.outcome(checks) == "wait"
    assert policy.outcome(checks[1:2]) == "ok" and policy.deciding(checks[1:2]) is None
