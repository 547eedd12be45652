"""Negotiating by logic: a device answers an offer with a counter-proposal, and judges every
variant it holds (the vendor's offer and each answer to a counter-proposal) on what owning the
items costs, never on wording. Portable and sans-IO.

Imported only when a device negotiates (the lifecycle's `counter` setting above 0), so the names
it holds stay off a board's ordinary order path.

Cost of ownership (`cost`), from the consumable's own cost model: the variant's total (price and
shipping), the cost of holding each item from delivery until it is used (`hold_cost` per item
and year, at the usage rate, the stock ahead of it used first), and items that would go stale
before use (`Consumable.fresh`) paid for but not used, less what a reward (credit toward the
next order) is worth. It is compared per item used: a variant with fewer items brings the next
order, and its shipping, sooner, so per item used puts every variant on the same horizon.

A reward is worth its amount when the next order comes, which is when the stock this variant
brings has fallen to the reorder point at the usage rate: discounted by what money costs for the
wait (`hold_cost` over the unit price, a year), and worth nothing when that is after the
mandate's validity or beyond the forecast horizon (HORIZON), or when the rate is unknown. Credit
the vendor already holds for the device is in an offer's total (`credit`), as it is paid.

Which variant (`decide`): each is judged as `decide` judges an offer (valid, within the mandate)
after checks against the offer it answers: an answer for another item or currency, or one that
is absurd (a dearer unit price, far more items, an arrival in the past) is refused, counted in
the device's ignored reasons and audited, as is one the mandate refuses. Of the rest, those that
arrive before the stock runs short come first, then the lowest cost per item used; the
decision's sentence says what it took, what it left and at what cost per item.

The counter-proposal (`propose`), while the need has rounds left, in its first round of quotes,
every counter-proposal so far answered and the latest answer the best variant: for it, more
items (twice as many, as many as stay fresh and the mandate allows) and the latest arrival that
is still in time, at the highest unit price at which that would cost less per item used than
the best variant does now, never above its price. The vendor answers with an offer, or not at
all: then the device decides on the offers it has (lifecycle).
"""

from thingsdk.core import decide as deciding
from thingsdk.core import policy
from thingsdk.core.consumable import DAY, MILLI_DAY
from thingsdk.core.decide import ASK, BUY, Decision, judge, sentence
from thingsdk.core.money import text as money_text

COUNTER = "counter"
YEAR = 365 * DAY
HORIZON = YEAR  # a reward for an order further off than this is worth nothing
MORE = 4  # an answer with more than this many times the items of the offer it answers is absurd
SEEN = 64  # answers already refused that a device remembers, so that each is counted once


class Counter(Decision):
    """A decision to send a counter-proposal: `ask`, a quote-request body naming the offer."""

    def __init__(self, text, now, proposal, ask):
        Decision.__init__(self, COUNTER, "counter-proposal", text, now, proposal)
        self.ask = ask

    def to_record(self):
        record = Decision.to_record(self)
        record["ask"] = self.ask
        return record


def cost(consumable, offer, now, until):
    """(cost, items used, reward's worth) of owning an offer's items, in minor units of its
    currency; a reward counts only for a next order before `until` (see the module's text)."""
    why = consumable.why  # fresh() explains itself there; this asks only how many keep
    used = min(offer["qty"], consumable.fresh(offer["qty"], now))
    consumable.why = why
    rate = consumable.estimator.rate()
    holding = worth = 0
    cover = consumable.cover(max(0, offer["arrive"] - now)) if rate else None
    ahead = max(0, consumable.position(now) - (cover[0] if cover else 0))
    if rate and consumable.hold_cost:
        middle = ahead + used * consumable.pack // 2  # units used before the middle item
        holding = consumable.hold_cost * used * middle * MILLI_DAY // rate // YEAR
    reward = offer.get("reward")
    if reward and rate:
        left = ahead + used * consumable.pack - consumable.reorder_point()
        wait = max(0, offer["arrive"] - now + left * MILLI_DAY // rate)
        year = max(1, offer["price"][0]) * YEAR
        if now + wait < min(until, now + HORIZON):
            worth = reward[0] * max(0, year - consumable.hold_cost * wait) // year
    return offer["total"][0] + holding - worth, used, worth


def per_item(pair):
    """Minor units per item used, of a (cost, used) pair."""
    return pair[0] // max(1, pair[1])


def problem(first, offer, now):
    """Why an answer to a counter-proposal about `first` (the offer countered first) is refused,
    or None: another item or currency, or absurd."""
    if offer["sku"] != first["sku"]:
        return "other-item"
    if offer["total"][1] != first["total"][1]:
        return "other-currency"
    if offer["price"][0] > first["price"][0] or offer["qty"] > MORE * first["qty"] or \
            offer["arrive"] < now:
        return "absurd-answer"
    return None


def _refuse(agent, record, offer, reason, now):
    """Count and audit a refused answer, once per need and offer."""
    orders = agent.orders
    seen = getattr(orders, "negotiated", None)
    if seen is None:
        seen = orders.negotiated = []
    key = record["need"] + offer["offer"]
    if key in seen:
        return
    orders.negotiated = (seen + [key])[-SEEN:]
    orders.ignored[reason] = orders.ignored.get(reason, 0) + 1
    agent.state.audit.append({"at": now, "need": record["need"], "ignored": reason,
                              "what": "offer", "state": record["state"]})


def _label(offer, pair):
    currency = offer["price"][1]
    label = "%d at %s (%s per item used" % (offer["qty"], money_text(*offer["price"]),
                                            money_text(per_item(pair), currency))
    if "credit" in offer:
        label += ", %s of credit off" % money_text(*offer["credit"])
    reward = offer.get("reward")
    if reward:
        label += ", %s credit for the next order" % money_text(*reward)
        if pair[2] < reward[0]:
            label += " worth " + (money_text(pair[2], currency) if pair[2] else
                                  "nothing, as that order is too far off")
    stale = offer["qty"] - pair[1]
    return label + (", %d would go stale)" % stale if stale else ")")


def decide(agent, record, decision, now):
    """The decision over a need's offers when the device negotiates: `decision` is the one
    thingsdk.core.decide took over them; returned as it is unless the offer the vendor made
    first is one to buy (or ask the owner about), else the best variant's or a Counter."""
    slot = agent.slots[record["slot"]]
    consumable, mandate = slot.consumable, agent.mandate
    offers = record["offers"]
    forecast = consumable.forecast(now)
    base = deciding.decide(consumable, forecast, mandate, agent.ledger, offers[:1], now,
                           category=slot.category, zones=agent.zones)
    if base.action not in (BUY, ASK):
        return decision
    first = offers[0][1]
    kept, left = [], []
    test_mode = bool(mandate.of_kind("test-mode"))
    for i, pair in enumerate(offers):
        vendor, offer = pair
        why = problem(first, offer, now) if i else None
        proposal = policy.Proposal(vendor, offer, slot.category)
        checks = policy.evaluate(mandate, proposal, agent.ledger, now, agent.zones)
        if why is None and policy.outcome(checks) == policy.REFUSE:
            why = "over-mandate"
        if why is None and not deciding._valid(offer, consumable, slot.category, test_mode, now):
            why = "invalid-answer"
        if why is not None:
            if i:
                _refuse(agent, record, offer, why, now)
            left.append("%d at %s: %s" % (offer["qty"], money_text(*offer["price"]),
                                           why.replace("-", " ")))
            continue
        late = deciding._slack(consumable, now, offer, 0) is None
        pair = cost(consumable, offer, now, mandate.expires)
        kept.append(((late, per_item(pair)), proposal, checks, pair))
    kept.sort(key=lambda k: k[0])
    best = kept[0]
    offer = best[1].offer
    pick = _label(offer, best[3])
    if best[0][0]:
        pick += ", the soonest, as none arrives before it may run short"
    took = "took " + pick
    left = ["left " + _label(k[1].offer, k[3]) for k in kept[1:]] + ["left " + x for x in left]
    lead = [deciding._head(consumable, forecast, None)]
    reason = "lowest-cost" if len(offers) > 1 else "within-policy"
    chosen = judge(best[1], best[2], now, lead + [took] + left, None, mandate.version, reason)
    if chosen.text.endswith("..."):  # cut short: the variants name the items and prices, so
        worst = policy.deciding(best[2])  # the offer's own text goes, and its reason stays,
        tail = [worst.text] if worst else []  # before what was left if need be
        chosen.text = sentence(lead + [took] + left + tail)
        if chosen.text.endswith("..."):
            chosen.text = sentence(lead + [took] + tail + left)
    if chosen.action not in (BUY, ASK) or record["appr"] is not None or \
            record["rounds"] >= agent.orders.config[COUNTER] or \
            record["rounds"] != len(offers) - 1 or best[1].offer is not offers[-1][1]:
        return chosen  # no rounds left, a counter unanswered, or the last answer no better
    ask = propose(consumable, mandate, agent.ledger, record, offer, best[3], now, slot.category)
    if ask is None:
        return chosen
    text = sentence(lead + ["the best offer is " + pick, "asking for %d%s at up to %s each, "
                                                         "which would cost less per item used" % (
                                ask["qty"], " arriving later" if "need" in ask else "",
                                money_text(*ask["price"]))])
    return Counter(text, now, best[1], ask)


def propose(consumable, mandate, ledger, record, offer, owned, now, category):
    """The counter-proposal to `offer` (a quote-request body naming it), whose (cost, used) is
    `owned`, or None when none would cost less per item used."""
    qty = offer["qty"]
    more = min(2 * qty, consumable.fresh(2 * qty, now))
    most = policy.most(mandate, ledger, offer["sku"], category, offer["price"], offer["ship"][0],
                       now)[0]
    if most is not None:
        more = min(more, most)
    more = max(qty, more)
    slack = deciding._slack(consumable, now, offer, 0) or 0
    arrive = offer["arrive"] + slack if slack >= DAY else offer["arrive"]
    if more == qty and arrive == offer["arrive"]:
        return None
    # the unit price at which `more` items arriving then cost less per item used than `owned`
    trial = dict(offer, qty=more, arrive=arrive, total=[offer["ship"][0] - offer.get(
        "credit", (0,))[0], offer["total"][1]])  # the credit held comes off the answer too
    trial.pop("reward", None)  # the price asked is to pay off without one
    extra, used, _ = cost(consumable, trial, now, mandate.expires)  # all but the price
    price = min(offer["price"][0], (owned[0] * used // max(1, owned[1]) - extra - 1) // more)
    if price <= 0:
        return None
    ask = {"slot": record["slot"], "sku": offer["sku"], "qty": more, "offer": offer["offer"],
           "price": [price, offer["price"][1]]}
    if arrive > offer["arrive"]:
        ask["need"] = arrive
    if record["ask"].get("test"):
        ask["test"] = True
    return ask
