"""Whether to buy now, from whom, and why: `decide` is a pure function of a consumable, its
forecast, the owner's mandate, the spend ledger and the offers at hand, and returns a Decision
with a sentence a person can read. Portable and sans-IO.

Offer choice: among valid offers (not expired, for this item, test only under a test mandate)
that the mandate does not refuse, the lowest total that arrives in time: while the stock at hand
still holds what the consumable must `cover` until then (its use, and a safety stock against
uneven use and late delivery); when none arrives in time, the soonest to arrive, and the sentence
says so. An offer that would still arrive in time if ordered a day later waits
("in-time-later"): stock bought early only sits on the shelf.
Before the reorder point an offer is taken only as a promotion: when its saving against the
usual price beats the cost of holding the items for the time they come early, within policy,
and never for a perishable (one with a shelf life).
The quantity asked for (`quantity`) is the consumable's, made to last the period when the
mandate allows only a few more orders in it (but never so many that some go stale), and capped
to what the mandate allows; a buy's sentence says why it holds that many. An offer the
mandate refuses for its quantity, when fewer items would fit, waits to ask again for that many
("fewer-fit"): only what cannot be helped is refused.
"""

from thingsdk.core import messages, policy
from thingsdk.core.consumable import DAY, MILLI_DAY, _ceil_div
from thingsdk.core.keys import kid_hex
from thingsdk.core.ledger import month_start
from thingsdk.core.money import text as money_text

BUY, WAIT, ASK, REFUSE = "buy", "wait", "ask", "refuse"
ACTIONS = {policy.OK: BUY, policy.ASK: ASK, policy.WAIT: WAIT, policy.REFUSE: REFUSE}
MAX_SENTENCE = 280  # bytes, the protocol's bound on a sentence
QUANTITY = ("amount-out-of-range", "over-budget", "item-qty-too-high")  # fewer items may fit


class Decision:
    """What to do (`action`: buy, wait, ask, refuse), why (`reason` code, `text` sentence), and
    with which offer: `offer` body (None without one), `vendor`, `quantity` (the offer's, or the
    items needed when there is no offer yet), `total`, `test`. `until`: when a wait ends;
    `hold_until`: until when the owner may cancel (cancel-window); `approval`: the id of the
    owner's approval message, once there is one."""

    def __init__(self, action, reason, text, now, proposal=None, checks=(), quantity=0,
                 until=None, mandate_version=None):
        self.action, self.reason, self.text, self.at = action, reason, text, now
        self.proposal = proposal
        self.offer = proposal.offer if proposal else None
        self.vendor = proposal.vendor if proposal else None
        self.quantity = self.offer["qty"] if proposal else quantity
        self.total = self.offer["total"] if proposal else None
        self.test = self.offer["test"] if proposal else False
        self.checks = list(checks)
        self.until = until
        holds = [c.until for c in self.checks if c.kind == "cancel-window"]
        self.hold_until = max(holds) if holds and action in (BUY, ASK) else None
        self.mandate_version = mandate_version
        self.approval = None

    def __repr__(self):
        return "<%s %s: %s>" % (self.action, self.reason, self.text)

    def to_record(self):
        """The decision as plain data for the audit log."""
        return {"at": self.at, "action": self.action, "reason": self.reason, "text": self.text,
                "vendor": self.vendor, "offer": self.offer["offer"] if self.offer else None,
                "qty": self.quantity, "total": self.total, "test": self.test,
                "until": self.until, "hold_until": self.hold_until,
                "mandate": self.mandate_version, "approval": self.approval,
                "checks": [[c.kind, c.outcome, c.reason] for c in self.checks]}

    def order(self, order_id, approval=None):
        """The order body that carries out a buy: the offer's sku, qty, total and test, and the
        owner's approval message as it came (`approval`), when one was needed."""
        if self.action != BUY:
            raise ValueError("only a buy decision places an order")
        return messages.order_body(self.offer, order_id, self.mandate_version, approval)


def sentence(parts):
    """Fragments joined into one sentence of at most MAX_SENTENCE bytes."""
    text = "; ".join([p for p in parts if p])
    text = text[:1].upper() + text[1:] + "."
    while len(text.encode()) > MAX_SENTENCE:
        text = text[:-4] + "..."
    return text


def say(action, reason, lead, fragment, now, proposal=None, **details):
    """A Decision whose sentence is the `lead` fragments and one more."""
    return Decision(action, reason, sentence(lead + [fragment]), now, proposal, **details)


def _days(seconds):
    days = (seconds + DAY // 2) // DAY
    return "~" + policy.duration(days * DAY) if days else "less than a day"


def _name(names, key, default):
    return (names or {}).get(key) or default


def _head(consumable, forecast, names):
    name = _name(names, consumable.slot, consumable.slot.replace("-", " "))
    if not forecast.known:
        return "%s has no usage estimate yet" % name
    if forecast.expected is None:
        return "%s is not being used" % name
    return "%s has %s left" % (name, _days(forecast.expected))


def _offer_text(proposal, now, names):
    offer = proposal.offer
    signed = offer.get("from")  # the name the vendor signed into its offer, else its key id
    vendor = _name(names, proposal.vendor, signed or "vendor " + kid_hex(proposal.vendor))
    days = max(1, (offer["arrive"] - now + DAY - 1) // DAY)
    return "%s delivers in %s for %s" % (vendor, policy.duration(days * DAY),
                                         money_text(offer["total"][0], offer["total"][1]))


def judge(proposal, checks, now, lead, names=None, mandate_version=None, reason="within-policy",
          why=None):
    """The Decision for one proposal whose checks are known; `lead` are the fragments that open
    the sentence, `why` the one that follows the offer (why that many items), and `reason` the
    one given when every check holds."""
    worst = policy.deciding(checks)
    parts = lead + [_offer_text(proposal, now, names), why]
    if worst is None:
        parts += [c.text for c in checks if c.kind == "budget"] or ["within your policy"]
        return Decision(BUY, reason, sentence(parts), now, proposal, checks,
                        mandate_version=mandate_version)
    return Decision(ACTIONS[worst.outcome], worst.reason, sentence(parts + [worst.text]), now,
                    proposal, checks, until=worst.until, mandate_version=mandate_version)


def mandate_problem(mandate, now, lead):
    """A Decision when no order may be placed under this mandate now, else None."""
    if mandate is None:
        return say(REFUSE, "no-mandate", lead, "the owner has not given a mandate to buy", now)
    status = mandate.status(now)
    if status == "expired":
        return say(REFUSE, "mandate-expired", lead, "the owner's mandate has expired", now)
    if status:
        return say(WAIT, "mandate-not-yet-valid", lead, "the owner's mandate is not valid yet",
                   now, until=mandate.not_before)
    kinds = policy.unknown(mandate)
    if kinds:
        why = "the mandate has a rule this device does not know (%s)" % ", ".join(kinds)
        return say(REFUSE, "unknown-constraint", lead, why, now, mandate_version=mandate.version)
    return None


def _valid(offer, consumable, category, test_mode, now):
    """An offer worth judging: not expired, for this slot's item, and a test offer only under a
    test mandate (a test order replenishes nothing)."""
    item = category is not None or consumable.sku is None or offer["sku"] == consumable.sku
    return now < offer["until"] and item and (test_mode or not offer["test"])


def _cost(judged):
    return judged[0].offer["total"][0], judged[0].offer["arrive"]


def _arrival(judged):
    return judged[0].offer["arrive"], judged[0].offer["total"][0]


def quantity(consumable, mandate, ledger, now, category=None, usual_price=None):
    """(items, why): what to ask vendors for now, 0 when above the reorder point. The
    consumable's reorder quantity, capped to the most the mandate lets one order hold at the
    usual unit price [amount, currency] or, without one, at the highest its items rule allows;
    `why` explains a chosen or capped quantity, or is None."""
    need, why, price = consumable.reorder(now), consumable.why, usual_price
    if need and mandate is not None:
        rate = consumable.estimator.rate() or 0
        for params in mandate.of_kind("recurrence"):  # the orders left must last the period
            left = max(1, params["max"] - ledger.usage(params, now)[0])
            end = month_start(month_start(now) + 32 * DAY) if params["period"] == "month" else \
                now + params["window"]
            items = _ceil_div(rate * (end - now) // (left * DAY), 1000 * consumable.pack)
            if items > need:
                need, why = items, "%d, to last with %s left %s" % (
                    items, policy._count(left, "order"), policy._span(params))
                need = consumable.fresh(need, now)
                why = consumable.why if need < items else why
        for params in mandate.of_kind("items"):
            rules = policy._rules(params, consumable.sku, category)
            price = price or (rules[0]["max-price"] if rules else None)
        if price is not None:
            most, limit = policy.most(mandate, ledger, consumable.sku, category, price,
                                      consumable.ship_cost, now)
            if most is not None and most < need:
                why = "%d of the %d needed, as %s" % (max(1, most), need, limit)
                need = max(1, most)
    return need, why


def decide(consumable, forecast, mandate, ledger, offers, now, category=None, names=None,
           usual_price=None, holding_cost=0, zones=None):
    """The Decision for one consumable now.

    `forecast`: when its stock runs out (consumable.forecast(now)); `mandate`: the Mandate held,
    or None; `ledger`: the Ledger of orders placed; `offers`: (vendor kid, offer body) pairs, the
    vendor being the offer's signer; `category`: the need's category when the device asked by
    one; `names`: how a person calls a vendor kid or a slot; `usual_price`: the usual unit price
    [amount, currency], needed to take a promotion early; `holding_cost`: minor units of that
    currency per item per day; `zones(name, now)`: a time zone's offset in minutes, or None.
    Offers in several currencies are compared by amount: a mandate with a budget or an amount
    range refuses the other currencies anyway.
    """
    lead = [_head(consumable, forecast, names)]
    if consumable.open_orders():
        return say(WAIT, "order-in-flight", lead,
                   "an order is already on its way, so not ordering again", now)
    if consumable.level(now) is None:
        return say(WAIT, "no-reading", lead, "no level reading yet", now)
    need, why = quantity(consumable, mandate, ledger, now, category, usual_price)
    problem = mandate_problem(mandate, now, lead)
    if not need:
        early = None if problem else _promotion(consumable, mandate, ledger, offers, now, category,
                                                names, usual_price, holding_cost, zones, lead)
        return early or say(WAIT, "enough-stock", lead,
                            "above its reorder point, so nothing to buy", now)
    if problem:
        return problem
    if not offers:
        ask = "at its reorder point, asking vendors for %d" % need
        return say(WAIT, "reorder-point-reached", lead + [ask], why or "", now, quantity=need)
    test_mode = bool(mandate.of_kind("test-mode"))
    proposals = [policy.Proposal(vendor, offer, category) for vendor, offer in offers
                 if _valid(offer, consumable, category, test_mode, now)]
    if not proposals:
        why = "none of the %d offers is valid (expired, a test offer or another item)"
        return say(REFUSE, "no-valid-offer", lead, why % len(offers), now, quantity=need)
    judged = [(p, policy.evaluate(mandate, p, ledger, now, zones)) for p in proposals]
    acceptable = [j for j in judged if policy.outcome(j[1]) != policy.REFUSE]
    if not acceptable:
        choice = min(judged, key=_cost)
        offer = choice[0].offer
        if policy.deciding(choice[1]).reason in QUANTITY and offer["qty"] > 1:
            most, limit = policy.most(mandate, ledger, offer["sku"], category, offer["price"],
                                      offer["ship"][0], now)
            if most and most < offer["qty"]:
                why = "asking for %d instead, as %s" % (most, limit)
                return say(WAIT, "fewer-fit", lead + [_offer_text(choice[0], now, names)], why,
                           now, quantity=most, until=now, mandate_version=mandate.version)
        return judge(choice[0], choice[1], now, lead, names, mandate.version)
    in_time = [j for j in acceptable if _slack(consumable, now, j[0].offer, 0) is not None]
    if in_time:
        choice = min(in_time, key=_cost)
        slack = _slack(consumable, now, choice[0].offer, DAY)
        if slack is not None and policy.outcome(choice[1]) == policy.OK:
            why = "in time if ordered tomorrow too, so not yet"
            return say(WAIT, "in-time-later", lead + [_offer_text(choice[0], now, names)], why,
                       now, quantity=need, until=now + slack, mandate_version=mandate.version)
        lead = lead + ["ordered tomorrow, it might come too late"]
    else:
        choice = min(acceptable, key=_arrival)
        lead = lead + ["no offer arrives before it may run out, so the soonest"]
    why = why if choice[0].offer["qty"] == need else None  # the quantity's reason, when it holds
    return judge(choice[0], choice[1], now, lead, names, mandate.version, why=why)


def _slack(consumable, now, offer, wait):
    """Seconds more an order of the offer, placed `wait` seconds from now, may wait and still
    arrive in time: while the stock at hand holds what the consumable must `cover` until it
    comes (a linear estimate beyond `wait`); None when it would not be in time. Without a
    usage rate yet, an offer is in time now and not worth a wait."""
    needed = consumable.cover(offer["arrive"] - now + wait)
    if needed is None:
        return None if wait else 0
    stock = consumable.position(now) - needed[0] - needed[1]
    return None if stock < 0 else stock * MILLI_DAY // max(1, consumable.estimator.rate())


def _promotion(consumable, mandate, ledger, offers, now, category, names, usual, holding_cost,
               zones, lead):
    """A buy decision for the best promotion worth taking before the reorder point, or None."""
    rate = consumable.estimator.rate()
    if not offers or usual is None or not rate or consumable.shelf_life:
        return None
    early = (consumable.position(now) - consumable.reorder_point()) * MILLI_DAY // rate
    test_mode = bool(mandate.of_kind("test-mode"))
    best = None
    for vendor, offer in offers:
        if not _valid(offer, consumable, category, test_mode, now) or offer["price"][1] != usual[1]:
            continue
        proposal = policy.Proposal(vendor, offer, category)
        checks = policy.evaluate(mandate, proposal, ledger, now, zones)
        saving = (usual[0] - offer["price"][0]) * offer["qty"]
        holding = holding_cost * offer["qty"] * early // DAY
        if policy.deciding(checks) is None and saving > holding and (best is None or
                                                             saving - holding > best[0]):
            best = (saving - holding, proposal, checks, saving, holding)
    if best is None:
        return None
    _, proposal, checks, saving, holding = best
    why = "a promotion saves %s against the usual price, more than the %s it costs to hold " \
          "the items %s early" % (money_text(saving, usual[1]), money_text(holding, usual[1]),
                                  _days(early))
    return judge(proposal, checks, now, lead + [why], names, mandate.version, "promotion")
