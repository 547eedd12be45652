"""What a mandate's constraints say about one proposed order, constraint by constraint.

`evaluate` returns one Check per constraint, in the mandate's order. Each holds (OK), refuses
(REFUSE), needs the owner's approval (ASK) or says not now (WAIT, with `until`). Fail closed: a
kind this code does not know refuses ("unknown-constraint"), and a constraint in another currency
than the order refuses ("wrong-currency"), except approval-above, which the owner's approval
satisfies whatever the currency. Portable and sans-IO.
"""

from thingsdk.core import money
from thingsdk.core.ledger import DAY, over

OK, ASK, WAIT, REFUSE = "ok", "ask", "wait", "refuse"
_SEVERITY = (OK, ASK, WAIT, REFUSE)  # a proposal's outcome is its most severe check's


class Proposal:
    """An order under consideration: the vendor (the offer's signer kid), the offer body, the
    category of the need (for `items` rules by category) and whether the owner approved it."""

    def __init__(self, vendor, offer, category=None, approved=False):
        self.vendor = vendor
        self.offer = offer
        self.category = category
        self.approved = approved


class Check:
    """One constraint's verdict: `outcome`, a `reason` code, a sentence fragment `text`, and
    `until`: when a wait ends (None: not foreseeable), or until when an order may be cancelled."""

    def __init__(self, kind, outcome, reason, text, until=None):
        self.kind = kind
        self.outcome = outcome
        self.reason = reason
        self.text = text
        self.until = until

    def __repr__(self):
        return "<%s %s %s: %s>" % (self.kind, self.outcome, self.reason, self.text)


def _count(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def duration(seconds):
    """Seconds as a person says them: "3 days", "12 hours", "90 seconds"."""
    for unit, word in ((DAY, "day"), (3600, "hour"), (60, "minute")):
        if seconds and seconds % unit == 0:
            return _count(seconds // unit, word)
    return _count(seconds, "second")


def _span(params):
    """The period of a budget or recurrence in words."""
    if params["period"] == "month":
        return "this month"
    return "in the last " + duration(params["window"])


def _money(pair):
    return money.text(pair[0], pair[1])


def _wrong_currency(kind, money_pair, currency):
    return Check(kind, REFUSE, "wrong-currency",
                 "the order is in %s, the %s rule in %s" % (money_pair[1], kind, currency))


def _amount_range(kind, params, p, ledger, now, zones):
    total, cur = p.offer["total"], params["cur"]
    if total[1] != cur:
        return _wrong_currency(kind, total, cur)
    allowed = "%s..%s" % (money.text(params["min"], cur), money.text(params["max"], cur))
    if params["min"] <= total[0] <= params["max"]:
        return Check(kind, OK, OK, "the total is within %s" % allowed)
    return Check(kind, REFUSE, "amount-out-of-range",
                 "the total %s is outside %s" % (_money(total), allowed))


def _budget(kind, params, p, ledger, now, zones):
    total, cur = p.offer["total"], params["cur"]
    if total[1] != cur:
        return _wrong_currency(kind, total, cur)
    usage = ledger.usage(params, now)
    left = params["max"] - usage[1] - usage[2]
    name = "the %s budget %s" % (money.text(params["max"], cur), _span(params))
    if over(kind, params, usage, total[0], cur):
        return Check(kind, REFUSE, "over-budget",
                     "over %s (%s left)" % (name, money.text(max(0, left), cur)))
    return Check(kind, OK, OK, "within %s (%s left after this order)"
                 % (name, money.text(left - total[0], cur)))


def _recurrence(kind, params, p, ledger, now, zones):
    usage = ledger.usage(params, now)
    orders = usage[0]
    span = _span(params)
    if over(kind, params, usage, 0, None):
        return Check(kind, REFUSE, "over-recurrence",
                     "already %s %s, the most allowed" % (_count(orders, "order"), span))
    return Check(kind, OK, OK, "order %d of at most %d %s" % (orders + 1, params["max"], span))


def _vendors(kind, params, p, ledger, now, zones):
    if p.vendor in params["kids"]:
        return Check(kind, OK, OK, "an allowed vendor")
    return Check(kind, REFUSE, "vendor-not-allowed", "this vendor is not one the owner allowed")


def _rules(params, sku, category):
    """The rules of an items constraint that cover the sku (or, without one, the category)."""
    return [r for r in params["allow"] if (r["sku"] == sku if "sku" in r else
                                           r["cat"] == category)]


def _items(kind, params, p, ledger, now, zones):
    price, qty = p.offer["price"], p.offer["qty"]
    rules = _rules(params, p.offer["sku"], p.category)
    if not rules:
        return Check(kind, REFUSE, "item-not-allowed", "%s is not an allowed item" % p.offer["sku"])
    for rule in rules:
        limit = rule["max-price"]
        if limit[1] == price[1] and price[0] <= limit[0] and qty <= rule["max-qty"]:
            return Check(kind, OK, OK, "an allowed item")
    limit = rules[0]["max-price"]
    if limit[1] != price[1]:
        return _wrong_currency(kind, price, limit[1])
    if price[0] > limit[0]:
        return Check(kind, REFUSE, "item-price-too-high", "the unit price %s is above the "
                     "allowed %s" % (_money(price), _money(limit)))
    return Check(kind, REFUSE, "item-qty-too-high",
                 "%d items are more than the allowed %d" % (qty, rules[0]["max-qty"]))


def _approval_above(kind, params, p, ledger, now, zones):
    total, limit = p.offer["total"], money.text(params["amount"], params["cur"])
    if p.approved:
        return Check(kind, OK, OK, "approved by the owner")
    if total[1] == params["cur"] and total[0] <= params["amount"]:
        return Check(kind, OK, OK, "within your %s approval limit" % limit)
    return Check(kind, ASK, "above-approval-threshold", "above your %s approval limit" % limit)


def _cancel_window(kind, params, p, ledger, now, zones):
    seconds = params["seconds"]
    return Check(kind, OK, OK, "you can cancel it for %s" % duration(seconds), now + seconds)


def _quiet_hours(kind, params, p, ledger, now, zones):
    offset = params.get("tz")
    if offset is None:
        offset = zones(params["zone"], now) if zones else None
        if offset is None:
            return Check(kind, WAIT, "quiet-hours", "quiet all day: the time zone %s is unknown "
                         "here" % params["zone"])
    start, end = params["start"], params["end"]  # start == end: never quiet
    minute = (now // 60 + offset) % 1440
    quiet = start <= minute < end if start <= end else minute >= start or minute < end
    if not quiet:
        return Check(kind, OK, OK, "outside quiet hours")
    until = (now // 60 + (end - minute) % 1440) * 60
    return Check(kind, WAIT, "quiet-hours",
                 "quiet hours until %02d:%02d local time" % (end // 60, end % 60), until)


def _test_mode(kind, params, p, ledger, now, zones):
    if p.offer["test"]:
        return Check(kind, OK, OK, "a test order")
    return Check(kind, REFUSE, "not-test-offer", "the mandate allows test orders only")


RULES = {"amount-range": _amount_range, "budget": _budget, "recurrence": _recurrence,
         "vendors": _vendors, "items": _items, "approval-above": _approval_above,
         "cancel-window": _cancel_window, "quiet-hours": _quiet_hours, "test-mode": _test_mode}


def unknown(mandate):
    """The kinds of the mandate's constraints this code does not know (they fail closed)."""
    return [kind for kind, _ in mandate.constraints if kind not in RULES]


def evaluate(mandate, proposal, ledger, now, zones=None):
    """One Check per constraint of the mandate for the proposal. `ledger` holds the orders
    placed so far; `zones(name, now)` gives a zone's offset in minutes east of UTC, or None."""
    checks = []
    for kind, params in mandate.constraints:
        rule = RULES.get(kind)
        if rule is None:
            checks.append(Check(kind, REFUSE, "unknown-constraint",
                                "the mandate has a rule this device does not know (%s)" % kind))
        else:
            checks.append(rule(kind, params, proposal, ledger, now, zones))
    return checks


def deciding(checks):
    """The check that decides: the first of the most severe outcome; None when all hold."""
    worst = None
    for check in checks:
        if _SEVERITY.index(check.outcome) > _SEVERITY.index(worst.outcome if worst else OK):
            worst = check
    return worst


def outcome(checks):
    """The outcome of a proposal: its deciding check's, OK when every check holds."""
    worst = deciding(checks)
    return OK if worst is None else worst.outcome


def most(mandate, ledger, sku, category, price, ship, now):
    """(items, fragment): the most items of sku the mandate lets one order hold now, at unit
    `price` [amount, currency] plus `ship` (amount): per item, per order amount, budget left.
    The fragment names the tightest limit; (None, None) when nothing limits the quantity."""
    best = why = None
    cur = price[1]
    for kind, params in mandate.constraints:
        n = None
        if kind == "items":
            n = max([r["max-qty"] for r in _rules(params, sku, category)
                     if r["max-price"][1] == cur] or [None])
            text = "the mandate allows %d per order"
        elif kind in ("amount-range", "budget") and params["cur"] == cur and price[0] > 0:
            room, text = params["max"], " limit per order"
            if kind == "budget":
                usage = ledger.usage(params, now)
                room -= usage[1] + usage[2]
                text = " left " + _span(params)
            n = max(0, (room - ship) // price[0])
            text = "%d fit the " + money.text(max(0, room), cur) + text
        if n is not None and (best is None or n < best):
            best, why = n, text % n
    return best, why
