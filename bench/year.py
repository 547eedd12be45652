"""A simulated year of three consumables: thingsdk's forecast-driven ordering against a fixed
"reorder at 20 % of capacity" threshold, side by side in one run.

    python bench/year.py [--seed N] [--days 365]

A fridge water filter (litres), a printer's ink (pages) and a coffee machine's beans (grams) are
used every day with seeded noise: weekdays and weekends differ, printing comes in jobs, and the
household is away for a week in summer and a few days at the year's end. Each morning a reading
comes in (the load cell under the beans is noisy), then each policy may order one vendor's offer,
whose lead time is drawn per order, sometimes late. Deliveries go on the shelf; a spare goes into
the slot when it runs empty. Demand not met on a day is lost: that day is a stockout day.

- forecast: the device as thingsdk builds it: the Consumable's usage estimate and reorder point,
  and `decide()` under the owner's signed mandate (a monthly budget, an order count, the vendor,
  the item and its price, quiet hours).
- threshold: the same slot and readings, ordering whenever its inventory position (level, spares,
  open orders) is at or below 20 % of capacity, with no mandate.

Both policies face the very same daily use and readings, and their n-th orders get the same lead
time draw. Printed: stockout days, demand lost, average stock on hand, orders and spend per
consumable and in total, the ratios, and where the spend differs. Target: fewer stockout days
than the threshold at no more spend.

The forecast policy's reorder point takes the vendor's mean quoted lead time as `lead_time` and
the worst case beyond it (the longest quote plus the longest delay) as `lead_spread`. Lost demand
is never bought, so a policy that runs out spends less for less use: the report therefore also
shows the units bought and left at the end, and the spend per unit bought.
"""

import argparse
import hashlib
import random
import sys
from collections import namedtuple
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from thingsdk import codec  # noqa: E402
from thingsdk.core import mandate as md  # noqa: E402
from thingsdk.core.consumable import DAY, Consumable  # noqa: E402
from thingsdk.core.decide import BUY, decide  # noqa: E402
from thingsdk.core.ledger import Ledger  # noqa: E402
from thingsdk.core.money import text as money  # noqa: E402
from thingsdk.crypto import Ed25519Signer  # noqa: E402

START = 1767225600  # 2026-01-01T00:00:00Z, a Thursday
MORNING = 7 * 3600  # readings and decisions: 08:00 at UTC+1, after the quiet hours
MIDDAY = 15 * 3600  # when a spare replaces an emptied one during the day
THRESHOLD = 20  # percent of capacity
MAX_DAYS = 730  # the mandates are valid this long
CURRENCY = "EUR"
OWNER = Ed25519Signer.from_seed(bytes(range(32)))
VENDOR = Ed25519Signer.from_seed(bytes(range(1, 33)))

# lead: days quoted, drawn uniformly per order; late: (probability, most extra days); budget and
# orders: the mandate's monthly limits; noise: the sensor's standard deviation in units.
Spec = namedtuple("Spec", "slot unit capacity sku title price ship lead late budget orders noise "
                          "use")


def filter_use(rng, weekend):
    """Litres of filtered water: more at weekends."""
    return max(0, round(rng.gauss(9, 3) if weekend else rng.gauss(6, 2)))


def ink_use(rng, weekend):
    """Pages printed: some days one or two jobs, of a few pages to dozens."""
    jobs = sum(rng.random() < (0.15 if weekend else 0.45) for _ in range(2))
    return sum(min(120, int(rng.expovariate(1 / 18)) + 1) for _ in range(jobs))


def coffee_use(rng, weekend):
    """Grams of beans: a few cups a day, more at weekends, each 11..17 g."""
    cups = sum(rng.random() < 0.5 for _ in range(12 if weekend else 8))
    return sum(rng.randint(11, 17) for _ in range(cups))


SPECS = (
    Spec("water-filter", "l", 300, "WF-300", "Fridge water filter", 2490, 390, (2, 5), (0.15, 4),
         6000, 2, 0, filter_use),
    Spec("ink", "page", 400, "INK-XL", "Printer ink cartridge XL", 3490, 390, (1, 4), (0.1, 3),
         8000, 2, 0, ink_use),
    Spec("coffee", "g", 1000, "BEANS-1K", "Coffee beans 1 kg", 1490, 390, (3, 7), (0.2, 3),
         9000, 5, 5, coffee_use),
)


class Threshold(Consumable):
    """The same slot, reordering at a fixed inventory position: 20 % of capacity."""

    def reorder_point(self):
        return self.capacity * THRESHOLD // 100


def household(seed):
    """The days the household is away (no use at all): a week in summer, days at the year's end."""
    rng = random.Random("%d/away" % seed)
    summer = rng.randint(180, 220)
    return set(range(summer, summer + 7)) | set(range(355, 360))


def demand(spec, seed, days, away):
    """(use per day, sensor noise per day) for one consumable: the same for both policies."""
    rng = random.Random("%d/%s/use" % (seed, spec.slot))
    use, noise = [], []
    for day in range(days):
        weekend = (day + 3) % 7 >= 5  # 2026-01-01 is a Thursday
        amount = spec.use(rng, weekend)
        use.append(0 if day in away else amount)
        noise.append(round(rng.gauss(0, spec.noise)) if spec.noise else 0)
    return use, noise


def mandate_for(spec, device):
    """The owner's signed mandate for the device holding this consumable, verified."""
    constraints = [
        ["budget", {"cur": CURRENCY, "max": spec.budget, "period": "month"}],
        ["recurrence", {"max": spec.orders, "period": "month"}],
        ["vendors", {"kids": [VENDOR.kid]}],
        ["items", {"allow": [{"sku": spec.sku, "max-price": [spec.price * 6 // 5, CURRENCY],
                              "max-qty": 3}]}],
        ["quiet-hours", {"tz": 60, "start": 22 * 60, "end": 7 * 60}],
    ]
    claims = md.make_claims(OWNER.kid, device.public_key, 1, START - DAY,
                            START + (MAX_DAYS + 1) * DAY, constraints)
    return md.verify(md.issue(claims, OWNER, codec), OWNER.verifier(), codec, device.kid, START)


class Outcome:
    """One policy's year for one consumable: per day what was asked, served and on hand at the
    day's end (units); what is left at the end, on hand or on the way; the orders placed (day,
    items, total in minor units, days to arrive); and why wanted orders were not placed."""

    def __init__(self):
        self.demand, self.served, self.on_hand = [], [], []
        self.left = 0  # units on hand and on the way at the end
        self.orders = []
        self.held_back = {}

    @property
    def spend(self):
        return sum(order[2] for order in self.orders)

    @property
    def stockout_days(self):
        return sum(1 for asked, got in zip(self.demand, self.served) if got < asked)

    def bought(self, pack):
        """Units ordered."""
        return sum(order[1] for order in self.orders) * pack


class Slot:
    """A consumable slot in the world (level, shelf, parcels on the way) and the device's view of
    it (`consumable`), run under one policy."""

    def __init__(self, spec, seed, forecast):
        self.spec, self.forecast = spec, forecast
        lead = (spec.lead[0] + spec.lead[1]) * DAY // 2  # the mean quote, then the worst case
        settings = dict(sku=spec.sku, lead_time=lead,
                        lead_spread=(spec.lead[1] + spec.late[1]) * DAY - lead)
        kind = Consumable if forecast else Threshold
        self.consumable = kind(spec.slot, spec.unit, spec.capacity, **settings)
        self.level, self.shelf, self.parcels = spec.capacity, 0, []
        self.leads = random.Random("%d/%s/lead" % (seed, spec.slot))  # alike for both policies
        self.offers = 0
        self.outcome = Outcome()
        if forecast:
            device = Ed25519Signer.from_seed(hashlib.sha256(spec.slot.encode()).digest())
            self.mandate = mandate_for(spec, device)
            self.ledger = Ledger(self.mandate.limits())
        self.consumable.refill(START)

    def offer(self, items, now):
        """The vendor's offer for `items`, and how many days it really takes to arrive."""
        spec = self.spec
        lead = self.leads.randint(*spec.lead)
        late = self.leads.randint(1, spec.late[1]) if self.leads.random() < spec.late[0] else 0
        self.offers += 1
        total = spec.price * items + spec.ship
        offer = {"offer": self.offers.to_bytes(16, "big"), "sku": spec.sku, "title": spec.title,
                 "qty": items, "price": [spec.price, CURRENCY], "ship": [spec.ship, CURRENCY],
                 "total": [total, CURRENCY], "lead": lead * DAY, "arrive": now + lead * DAY,
                 "until": now + DAY, "test": False}
        return offer, lead + late

    def place(self, day, offer, days):
        order_id = len(self.outcome.orders).to_bytes(16, "big")
        self.consumable.add_order(order_id, offer["qty"])
        self.parcels.append((day + days, order_id, offer["qty"]))
        self.outcome.orders.append((day, offer["qty"], offer["total"][0], days))
        return order_id

    def hold_back(self, reason):
        self.outcome.held_back[reason] = self.outcome.held_back.get(reason, 0) + 1

    def order(self, day, now):
        """Each policy's morning decision."""
        c = self.consumable
        if not self.forecast:
            items = c.reorder(now)
            if items:
                self.place(day, *self.offer(items, now))
            return
        asked = decide(c, c.forecast(now), self.mandate, self.ledger, [], now)
        if asked.reason != "reorder-point-reached":
            return
        offer, days = self.offer(asked.quantity, now)
        decision = decide(c, c.forecast(now), self.mandate, self.ledger,
                          [(VENDOR.kid, offer)], now)
        if decision.action != BUY:
            self.hold_back(decision.reason)
            return
        order_id = self.place(day, offer, days)
        if self.ledger.reserve(order_id, decision.total[0], CURRENCY, now) != "reserved":
            raise RuntimeError("the ledger refused an order decide() allowed")
        self.ledger.commit(order_id)

    def install(self, t):
        """A spare from the shelf goes into the empty slot."""
        self.shelf -= 1
        self.level = self.spec.capacity
        self.consumable.refill(t)

    def live(self, day, use, noise):
        """One day: deliveries, a reading, the policy's decision, then the day's use."""
        spec, c, now = self.spec, self.consumable, START + day * DAY + MORNING
        for parcel in [p for p in self.parcels if p[0] <= day]:
            self.parcels.remove(parcel)
            self.shelf += parcel[2]
            c.receive(parcel[1])
        if self.level == 0 and self.shelf:
            self.install(now)
        c.read(now, max(0, min(spec.capacity, self.level + noise)))
        self.order(day, now)
        served = min(use, self.level)
        self.level -= served
        if served < use and self.shelf:
            self.install(START + day * DAY + MIDDAY)
            more = min(use - served, self.level)
            self.level -= more
            served += more
        out = self.outcome
        out.demand.append(use)
        out.served.append(served)
        out.on_hand.append(self.level + self.shelf * c.pack)
        out.left = out.on_hand[-1] + sum(p[2] for p in self.parcels) * c.pack


def simulate(seed=1, days=365):
    """{slot: {"forecast": Outcome, "threshold": Outcome}} for a run of `days` days."""
    away = household(seed)
    results = {}
    for spec in SPECS:
        use, noise = demand(spec, seed, days, away)
        slots = {"forecast": Slot(spec, seed, True), "threshold": Slot(spec, seed, False)}
        for day in range(days):
            for slot in slots.values():
                slot.live(day, use[day], noise[day])
        results[spec.slot] = {name: slot.outcome for name, slot in slots.items()}
    return results


def _ratio(a, b):
    return "%.2f" % (a / b) if b else ("1.00" if a == 0 else "inf")


POLICIES = (("forecast", "thingsdk forecast"), ("threshold", "20 % threshold"))
_ROW = "  %-19s %8s %10s %16s %6s %10s %10s %12s"


def report(results, seed, days):
    """The table, the ratios and where a difference in spend comes from, as text; and whether
    the target is met."""
    lines = ["A simulated year: seed %d, %d days from 2026-01-01; the same use, readings and lead "
             "times for both policies." % (seed, days), "",
             _ROW % ("", "stockout", "demand", "average", "orders", "units", "left at", "spend"),
             _ROW % ("", "days", "lost", "on hand", "", "bought", "the end", "")]
    totals = {name: [0, 0, 0] for name, _ in POLICIES}
    per_unit, spend_gaps = [], []
    for spec in SPECS:
        lines.append("%s (%s, capacity %d)" % (spec.slot, spec.unit, spec.capacity))
        for name, label in POLICIES:
            out = results[spec.slot][name]
            average = sum(out.on_hand) // len(out.on_hand)
            lines.append(_ROW % (
                label, out.stockout_days, sum(out.demand) - sum(out.served),
                "%d (%d%%)" % (average, 100 * average // spec.capacity), len(out.orders),
                out.bought(spec.capacity), out.left, money(out.spend, CURRENCY)))
            for i, value in enumerate((out.stockout_days, len(out.orders), out.spend)):
                totals[name][i] += value
        f, t = results[spec.slot]["forecast"], results[spec.slot]["threshold"]
        bought = [out.bought(spec.capacity) for out in (f, t)]
        per_unit.append("%s %s" % (spec.slot, _ratio(f.spend * bought[1], t.spend * bought[0])))
        if f.spend != t.spend:
            spend_gaps.append("%s %s%s: %d %s more used, %d %s more left" % (
                spec.slot, "+" if f.spend > t.spend else "-",
                money(abs(f.spend - t.spend), CURRENCY), sum(f.served) - sum(t.served),
                spec.unit, f.left - t.left, spec.unit))
    lines.append("total")
    for name, label in POLICIES:
        stockouts, orders, spend = totals[name]
        lines.append(_ROW % (label, stockouts, "", "", orders, "", "", money(spend, CURRENCY)))
    f, t = totals["forecast"], totals["threshold"]
    held = {}
    for spec in SPECS:
        for reason, count in results[spec.slot]["forecast"].held_back.items():
            held[reason] = held.get(reason, 0) + count
    lines += ["", "forecast / threshold: stockout days %s, orders %s, spend %s" % (
                  _ratio(f[0], t[0]), _ratio(f[1], t[1]), _ratio(f[2], t[2])),
              "spend per unit bought, forecast / threshold: " + ", ".join(per_unit),
              "where the forecast's spend differs: " + ("; ".join(spend_gaps) or "nowhere"),
              "orders the mandate held back (forecast): " + (
                  ", ".join("%s %d" % kv for kv in sorted(held.items())) or "none")]
    fewer, cheaper = f[0] < t[0], f[2] <= t[2]
    met = fewer and cheaper
    lines.append("target: fewer stockout days (%d vs %d) %s; no more spend (%s vs %s) %s: %s" % (
        f[0], t[0], "yes" if fewer else "no", money(f[2], CURRENCY), money(t[2], CURRENCY),
        "yes" if cheaper else "no", "met" if met else "NOT met"))
    return "\n".join(lines), met


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=365, help="1..%d (default: 365)" % MAX_DAYS)
    args = parser.parse_args()
    if not 1 <= args.days <= MAX_DAYS:
        parser.error("--days must be 1..%d" % MAX_DAYS)
    text, _ = report(simulate(args.seed, args.days), args.seed, args.days)
    print(text)


if __name__ == "__main__":
    main()
