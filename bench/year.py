"""Simulated years of three consumables: thingsdk's forecast-driven ordering against a fixed
"reorder at 20 % of capacity" threshold, side by side in one run, over many seeds.

    python bench/year.py [--seeds 20] [--first 1] [--days 365]

A fridge water filter (litres), a printer's ink (pages) and the beans of a coffee machine's
hopper (grams, bought in 250 g bags that are best within three weeks of delivery) are used every
day with seeded noise: weekdays and weekends differ, printing comes in jobs, and the household is
away for a week in summer and a few days at the year's end. Every seed's year is a hard one:

- use doubles for a month (guests), at a different time for each consumable;
- the sensor glitches: it is stuck at one value for four days, and three readings are spikes;
- once, a refill is not seen: the sensor is off for two days, nobody says "refilled", and the
  device learns of it only from the readings that follow;
- vendor A's deliveries slip by two to five more days for six weeks;
- vendor B sells 10 % cheaper and delivers three days slower.

Each morning deliveries go on the shelf and a reading comes in, then each policy may order. A
bag or cartridge goes into the slot as soon as it fits (at empty for a filter or a cartridge);
a bag left on the shelf past its shelf life is thrown away. Demand not met on a day is lost:
that day is a stockout day. The lead time each vendor quotes (for a week) and how late a parcel
really comes are drawn per day, so both policies ordering on the same day get the same.

- forecast: the device as thingsdk builds it: the Consumable's usage estimate, reorder point and
  quantity (shipping against stock held, holding an item costing its price a year; shelf life;
  the household's time away, which the owner tells it before leaving: the `away` setting),
  and `decide()` under the owner's signed mandate (a monthly budget, an order count, both
  vendors, the item, its price and quantity, quiet hours) over both vendors' offers. Its lead
  time is the slowest quote (vendor B's) and a day, as it decides once a day, so it asks early
  enough to hear both, and its lead spread the vendor's latest delivery; it takes the cheapest
  offer that comes while the stock lasts (with its safety stock against uneven use and late
  delivery), and only when ordered a day later it might come too late.
- threshold: the same slot and readings, ordering from vendor A up to capacity whenever its
  inventory position (level, spares, open orders) is at or below 20 % of capacity, no mandate.

Printed per consumable and in total, as the median over the seeds [the worst seed]: stockout
days, demand lost, average stock on hand (units and money), stock expired, orders, spend per
100 units used; the days each device ended counting other spares than the shelf held (a spare
it lost count of is ordered again and sits on the shelf); then the targets, met or NOT met.
bench/year_bound.py measures, on the same years, how little stock any order timing and size
could hold at the stockout target, and at the spend and expiry targets as well.
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
MAX_SEEDS = 1000
CURRENCY = "EUR"
HOLD = 100  # percent of an item's price a year that holding it costs (money, space, staleness)
OWNER = Ed25519Signer.from_seed(bytes(range(32)))
VENDOR_A = Ed25519Signer.from_seed(bytes(range(1, 33)))
VENDOR_B = Ed25519Signer.from_seed(bytes(range(2, 34)))
B_DISCOUNT, B_SLOWER = 10, 3  # vendor B: percent cheaper, days slower
QUANTITY_REFUSALS = ("amount-out-of-range", "item-qty-too-high", "over-budget")

# pack: units per item bought; lead: days vendor A quotes, drawn uniformly; late: (probability,
# most extra days); budget, orders and most: the mandate's monthly limits and items per order;
# noise: the sensor's standard deviation in units; shelf: days an item keeps after delivery.
Spec = namedtuple("Spec", "slot unit capacity pack sku title price ship lead late budget orders "
                          "most noise shelf use")


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
    Spec("water-filter", "l", 300, 300, "WF-300", "Fridge water filter", 2490, 390, (2, 5),
         (0.15, 4), 6000, 2, 3, 0, None, filter_use),
    Spec("ink", "page", 400, 400, "INK-XL", "Printer ink cartridge XL", 3490, 390, (1, 4),
         (0.1, 3), 8000, 2, 3, 0, None, ink_use),
    Spec("coffee", "g", 1000, 250, "BEANS-250", "Coffee beans 250 g", 420, 390, (3, 7),
         (0.2, 3), 9000, 5, 8, 5, 21, coffee_use),
)


class Threshold(Consumable):
    """The same slot, reordering at a fixed inventory position: 20 % of capacity."""

    def reorder_point(self):
        return self.capacity * THRESHOLD // 100


Household = namedtuple("Household", "away surge stuck spikes unseen slip")


def household(seed, spec):
    """The year's hard days for one consumable: away (no use), a month of double use, four days
    of a stuck sensor, three spike readings, the day from which a refill goes unseen, and the six
    weeks vendor A's deliveries slip."""
    rng = random.Random("%d/away" % seed)
    summer = rng.randint(180, 220)
    away = set(range(summer, summer + 7)) | set(range(355, 360))
    rng = random.Random("%d/%s/hard" % (seed, spec.slot))
    surge, stuck, unseen, slip = (rng.randint(20, 300), rng.randint(20, 330),
                                  rng.randint(60, 300), rng.randint(20, 300))
    spikes = set(rng.randint(10, 360) for _ in range(3))
    return Household(away, range(surge, surge + 30), range(stuck, stuck + 4), spikes, unseen,
                     range(slip, slip + 42))


def away_spans(home):
    """The household's days away as Consumable's `away`: [start, end] spans of whole days, as
    the owner tells the device before leaving."""
    spans = []
    for day in sorted(home.away):
        if spans and spans[-1][1] == START + day * DAY:
            spans[-1][1] += DAY
        else:
            spans.append([START + day * DAY, START + (day + 1) * DAY])
    return spans


def demand(spec, seed, days, home):
    """(use per day, sensor noise per day) for one consumable: the same for both policies."""
    rng = random.Random("%d/%s/use" % (seed, spec.slot))
    use, noise = [], []
    for day in range(days):
        weekend = (day + 3) % 7 >= 5  # 2026-01-01 is a Thursday
        amount = spec.use(rng, weekend) * (2 if day in home.surge else 1)
        use.append(0 if day in home.away else amount)
        noise.append(round(rng.gauss(0, spec.noise)) if spec.noise else 0)
    return use, noise


def leads(spec, seed, days, home):
    """Per day and vendor: (days quoted, days it really takes) for an order placed that day. A
    vendor's quote holds for a week; how late a parcel comes is drawn per day."""
    rng = random.Random("%d/%s/lead" % (seed, spec.slot))
    draws, quotes = [], None
    for day in range(days):
        if day % 7 == 0:
            quotes = [rng.randint(*spec.lead) + vendor * B_SLOWER for vendor in (0, 1)]
        today = []
        for vendor in (0, 1):
            quote = quotes[vendor]
            late = rng.randint(1, spec.late[1]) if rng.random() < spec.late[0] else 0
            if vendor == 0 and day in home.slip:
                late += rng.randint(2, 5)
            today.append((quote, quote + late))
        draws.append(today)
    return draws


def mandate_for(spec, device):
    """The owner's signed mandate for the device holding this consumable, verified."""
    constraints = [
        ["budget", {"cur": CURRENCY, "max": spec.budget, "period": "month"}],
        ["recurrence", {"max": spec.orders, "period": "month"}],
        ["vendors", {"kids": [VENDOR_A.kid, VENDOR_B.kid]}],
        ["items", {"allow": [{"sku": spec.sku, "max-price": [spec.price * 6 // 5, CURRENCY],
                              "max-qty": spec.most}]}],
        ["quiet-hours", {"tz": 60, "start": 22 * 60, "end": 7 * 60}],
    ]
    claims = md.make_claims(OWNER.kid, device.public_key, 1, START - DAY,
                            START + (MAX_DAYS + 1) * DAY, constraints)
    return md.verify(md.issue(claims, OWNER, codec), OWNER.verifier(), codec, device.kid, START)


class Outcome:
    """One policy's year for one consumable: per day what was asked, served and on hand at the
    day's end (units); units thrown away stale; what is left at the end, on hand or on the way;
    the orders placed (day, items, total in minor units, days to arrive, vendor 0 or 1); why
    wanted orders were not placed, and how often an offer could wait a day."""

    def __init__(self):
        self.demand, self.served, self.on_hand = [], [], []
        self.expired = 0
        self.left = 0
        self.orders = []
        self.held_back = {}
        self.waits = 0
        self.quantity_refused = 0
        self.miscounted = 0  # days that ended with the device counting other spares than shelved

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
    """A consumable slot in the world (level, shelf of delivery days, parcels on the way) and the
    device's view of it (`consumable`), run under one policy."""

    def __init__(self, spec, seed, forecast, home, draws):
        self.spec, self.forecast, self.home, self.draws = spec, forecast, home, draws
        if forecast:  # lead: vendor B's slowest quote and a day, so that deciding once a day
            # it asks while both offers may still come in time
            settings = dict(lead_time=(spec.lead[1] + B_SLOWER + 1) * DAY,
                            lead_spread=spec.late[1] * DAY,  # the latest a parcel may come
                            ship_cost=spec.ship, hold_cost=spec.price * HOLD // 100,
                            shelf_life=spec.shelf and spec.shelf * DAY, away=away_spans(home))
            self.consumable = Consumable(spec.slot, spec.unit, spec.capacity, spec.pack,
                                         spec.sku, **settings)
            device = Ed25519Signer.from_seed(hashlib.sha256(spec.slot.encode()).digest())
            self.mandate = mandate_for(spec, device)
            self.ledger = Ledger(self.mandate.limits())
        else:
            self.consumable = Threshold(spec.slot, spec.unit, spec.capacity, spec.pack, spec.sku)
        self.level, self.shelf, self.parcels = spec.capacity, [], []
        self.offers, self.last_reading, self.unseen = 0, spec.capacity, -1
        self.outcome = Outcome()
        self.consumable.refill(START)

    def offer(self, vendor, items, day, now):
        """Vendor 0 (A) or 1 (B)'s offer for `items` placed today."""
        spec = self.spec
        price = spec.price * (100 - B_DISCOUNT) // 100 if vendor else spec.price
        quote = self.draws[day][vendor][0]
        self.offers += 1
        return {"offer": self.offers.to_bytes(16, "big"), "sku": spec.sku, "title": spec.title,
                "qty": items, "price": [price, CURRENCY], "ship": [spec.ship, CURRENCY],
                "total": [price * items + spec.ship, CURRENCY], "lead": quote * DAY,
                "arrive": now + quote * DAY, "until": now + DAY, "test": False}

    def place(self, day, vendor, offer):
        order_id = len(self.outcome.orders).to_bytes(16, "big")
        self.consumable.add_order(order_id, offer["qty"])
        days = self.draws[day][vendor][1]
        self.parcels.append((day + days, order_id, offer["qty"], days - self.draws[day][vendor][0]))
        self.outcome.orders.append((day, offer["qty"], offer["total"][0], days, vendor))
        return order_id

    def order(self, day, now):
        """Each policy's morning decision."""
        c, out = self.consumable, self.outcome
        if not self.forecast:
            items = c.reorder(now)
            if items:
                self.place(day, 0, self.offer(0, items, day, now))
            return
        usual = [self.spec.price, CURRENCY]
        asked = decide(c, c.forecast(now), self.mandate, self.ledger, [], now, usual_price=usual)
        if asked.reason != "reorder-point-reached":
            if asked.action == "refuse":
                out.held_back[asked.reason] = out.held_back.get(asked.reason, 0) + 1
            return
        offers = [(VENDOR_A.kid, self.offer(0, asked.quantity, day, now)),
                  (VENDOR_B.kid, self.offer(1, asked.quantity, day, now))]
        decision = decide(c, c.forecast(now), self.mandate, self.ledger, offers, now,
                          usual_price=usual)
        if decision.action != BUY:
            if decision.reason == "in-time-later":
                out.waits += 1
                return
            out.held_back[decision.reason] = out.held_back.get(decision.reason, 0) + 1
            if decision.reason in QUANTITY_REFUSALS and decision.quantity > 1:
                out.quantity_refused += 1
            return
        vendor = 0 if decision.vendor == VENDOR_A.kid else 1
        order_id = self.place(day, vendor, decision.offer)
        if self.ledger.reserve(order_id, decision.total[0], CURRENCY, now) != "reserved":
            raise RuntimeError("the ledger refused an order decide() allowed")
        self.ledger.commit(order_id)

    def install(self, day, t):
        """The oldest bag or cartridge from the shelf goes into the slot."""
        self.shelf.pop(0)
        self.level += self.spec.pack
        if day >= self.home.unseen and self.unseen < 0:  # unseen: the sensor is off for two
            self.unseen = day + 2  # days and nobody presses "refilled"
        else:
            self.consumable.refill(t, self.level)  # the owner presses "refilled"

    def reading(self, day, noise):
        spec = self.spec
        if day in self.home.stuck or day <= self.unseen:
            return self.last_reading
        if day in self.home.spikes:
            return spec.capacity if day % 2 else 0
        self.last_reading = max(0, min(spec.capacity, self.level + noise))
        return self.last_reading

    def live(self, day, use, noise):
        """One day: deliveries, a reading, the policy's decision, then the day's use."""
        spec, c, now = self.spec, self.consumable, START + day * DAY + MORNING
        out = self.outcome
        for parcel in [p for p in self.parcels if p[0] <= day]:
            self.parcels.remove(parcel)
            self.shelf += [day] * parcel[2]
            c.receive(parcel[1], late=parcel[3] * DAY)
        if spec.shelf:
            stale = [d for d in self.shelf if d + spec.shelf <= day]
            out.expired += len(stale) * spec.pack
            self.shelf = self.shelf[len(stale):]
            if stale:
                c.spares = max(0, c.spares - len(stale))  # thrown away, as the owner says
        while self.shelf and self.level <= spec.capacity - spec.pack:
            self.install(day, now)
        c.read(now, self.reading(day, noise))
        self.order(day, now)
        served = min(use, self.level)
        self.level -= served
        while served < use and self.shelf:
            self.install(day, START + day * DAY + MIDDAY)
            more = min(use - served, self.level)
            self.level -= more
            served += more
        out.demand.append(use)
        out.served.append(served)
        out.on_hand.append(self.level + len(self.shelf) * spec.pack)
        out.left = out.on_hand[-1] + sum(p[2] for p in self.parcels) * spec.pack
        if c.spares != len(self.shelf):
            out.miscounted += 1


def simulate(seed=1, days=365):
    """{slot: {"forecast": Outcome, "threshold": Outcome}} for a run of `days` days."""
    results = {}
    for spec in SPECS:
        home = household(seed, spec)
        use, noise = demand(spec, seed, days, home)
        draws = leads(spec, seed, days, home)
        slots = {"forecast": Slot(spec, seed, True, home, draws),
                 "threshold": Slot(spec, seed, False, home, draws)}
        for day in range(days):
            for slot in slots.values():
                slot.live(day, use[day], noise[day])
        results[spec.slot] = {name: slot.outcome for name, slot in slots.items()}
    return results


POLICIES = (("forecast", "thingsdk forecast"), ("threshold", "20 % threshold"))
# name, heading, whether a higher figure is worse (for "worst")
COLUMNS = (("stockout", "stockout days"), ("lost", "demand lost"), ("stock", "on hand"),
           ("value", "on hand EUR"), ("expired", "expired"), ("orders", "orders"),
           ("per100", "EUR per 100 used"))


def figures(out, spec):
    """One policy's year for one consumable as numbers: the COLUMNS, money in minor units."""
    stock = sum(out.on_hand) // len(out.on_hand)
    used = sum(out.served)
    return {"stockout": out.stockout_days, "lost": sum(out.demand) - used, "stock": stock,
            "value": stock * spec.price // spec.pack, "expired": out.expired,
            "orders": len(out.orders), "per100": out.spend * 100 // used if used else 0,
            "spend": out.spend, "used": used, "refused": out.quantity_refused}


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]  # the upper median: never flatters with a half


def _cell(key, med, worst):
    if key in ("value", "per100"):
        return "%s [%s]" % (money(med, CURRENCY)[:-4], money(worst, CURRENCY)[:-4])
    return "%d [%d]" % (med, worst)


def report(runs, days):
    """The table and the targets as text for {seed: simulate(seed, days)}, and {target: met}."""
    seeds = sorted(runs)
    lines = ["Simulated years: %d seeds (%d..%d), %d days from 2026-01-01; the same use, readings "
             "and vendor draws for both policies. Median over the seeds [worst seed]." % (
                 len(seeds), seeds[0], seeds[-1], days), ""]
    head = "  %-18s" + " %16s" * len(COLUMNS)
    lines.append(head % (("",) + tuple(title for _, title in COLUMNS)))
    table, met = {}, {}
    total = {name: {} for name, _ in POLICIES}
    for spec in SPECS:
        lines.append("%s (%s, capacity %d, packs of %d%s)" % (
            spec.slot, spec.unit, spec.capacity, spec.pack,
            ", best within %d days" % spec.shelf if spec.shelf else ""))
        for name, label in POLICIES:
            per_seed = {seed: figures(runs[seed][spec.slot][name], spec) for seed in seeds}
            table[spec.slot, name] = per_seed
            cells = []
            for key, _ in COLUMNS:
                values = [f[key] for f in per_seed.values()]
                cells.append(_cell(key, median(values), max(values)))
            lines.append(head % ((label,) + tuple(cells)))
            for seed, f in per_seed.items():
                mine = total[name].setdefault(seed, {"stockout": 0, "spend": 0, "orders": 0,
                                                     "value": 0, "refused": 0})
                for key in mine:
                    mine[key] += f[key]
    lines.append("total")
    for name, label in POLICIES:
        t = total[name].values()
        lines.append("  %-18s stockout days %s, orders %s, on hand %s EUR, spend %s EUR" % (
            label, _cell("n", median([x["stockout"] for x in t]), max(x["stockout"] for x in t)),
            _cell("n", median([x["orders"] for x in t]), max(x["orders"] for x in t)),
            _cell("value", median([x["value"] for x in t]), max(x["value"] for x in t)),
            _cell("value", median([x["spend"] for x in t]), max(x["spend"] for x in t))))
    held = {}
    waits = 0
    for seed in seeds:
        for spec in SPECS:
            out = runs[seed][spec.slot]["forecast"]
            waits += out.waits
            for reason, count in out.held_back.items():
                held[reason] = held.get(reason, 0) + count
    lines += ["", "forecast, all seeds: offers left for a day as still in time: %d; orders the "
              "mandate held back: %s" % (waits, ", ".join(
                  "%s %d" % kv for kv in sorted(held.items())) or "none"),
              "days the device ended counting other spares than the shelf held, all seeds "
              "(forecast / threshold): " + ", ".join(
                  "%s %d / %d" % (spec.slot, *(sum(runs[seed][spec.slot][name].miscounted
                                                   for seed in seeds) for name, _ in POLICIES))
                  for spec in SPECS), "", "targets:"]
    for spec in SPECS:
        f, t = table[spec.slot, "forecast"], table[spec.slot, "threshold"]
        fs, ts = median([x["stockout"] for x in f.values()]), median(
            [x["stockout"] for x in t.values()])
        worst = max(seeds, key=lambda s: (f[s]["stockout"] - t[s]["stockout"] // 10, -s))
        met[spec.slot, "stockouts"] = 10 * fs <= ts
        lines.append("  %s: stockout days %d <= 10 %% of %d (worst seed %d: %d vs %d): %s" % (
            spec.slot, fs, ts, worst, f[worst]["stockout"], t[worst]["stockout"],
            _met(met[spec.slot, "stockouts"])))
        fo, to = median([x["stock"] for x in f.values()]), median([x["stock"] for x in t.values()])
        worst = max(seeds, key=lambda s: (f[s]["stock"] - t[s]["stock"], -s))
        met[spec.slot, "stock"] = fo <= to
        lines.append("  %s: average on hand %d <= %d %s (worst seed %d: %d vs %d): %s" % (
            spec.slot, fo, to, spec.unit, worst, f[worst]["stock"], t[worst]["stock"],
            _met(met[spec.slot, "stock"])))
        fp, tp = median([x["per100"] for x in f.values()]), median(
            [x["per100"] for x in t.values()])
        met[spec.slot, "spend"] = fp <= tp
        lines.append("  %s: spend per 100 %s used %s <= %s: %s" % (
            spec.slot, spec.unit, money(fp, CURRENCY), money(tp, CURRENCY),
            _met(met[spec.slot, "spend"])))
        if spec.shelf:
            expired = sum(x["expired"] for x in f.values())
            met[spec.slot, "expired"] = expired == 0
            lines.append("  %s: %d %s expired over all seeds (threshold: %d): %s" % (
                spec.slot, expired, spec.unit, sum(x["expired"] for x in t.values()),
                _met(met[spec.slot, "expired"])))
    fs = sum(x["spend"] for x in total["forecast"].values())
    ts = sum(x["spend"] for x in total["threshold"].values())
    fu = sum(table[spec.slot, "forecast"][s]["used"] * spec.price // spec.pack
             for spec in SPECS for s in seeds)
    tu = sum(table[spec.slot, "threshold"][s]["used"] * spec.price // spec.pack
             for spec in SPECS for s in seeds)
    met["total", "spend"] = fs * tu <= ts * fu
    lines.append("  total: spend per EUR of list price used %.3f <= %.3f: %s" % (
        fs / fu, ts / tu, _met(met["total", "spend"])))
    refused = sum(x["refused"] for x in total["forecast"].values())
    met["total", "refused"] = refused == 0
    lines.append("  total: orders refused for quantity by the device's own mandate: %d: %s" % (
        refused, _met(met["total", "refused"])))
    count = sum(met.values())
    lines.append("%d of %d targets met: %s" % (count, len(met),
                                               "met" if count == len(met) else "NOT met"))
    return "\n".join(lines), met


def _met(ok):
    return "met" if ok else "NOT met"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="1..%d (default: 20)" % MAX_SEEDS)
    parser.add_argument("--first", type=int, default=1, help="the first seed (default: 1)")
    parser.add_argument("--days", type=int, default=365, help="1..%d (default: 365)" % MAX_DAYS)
    args = parser.parse_args()
    if not 1 <= args.days <= MAX_DAYS:
        parser.error("--days must be 1..%d" % MAX_DAYS)
    if not 1 <= args.seeds <= MAX_SEEDS or not 0 <= args.first <= 10 ** 9:
        parser.error("--seeds must be 1..%d and --first 0..10**9" % MAX_SEEDS)
    seeds = range(args.first, args.first + args.seeds)
    text, _ = report({seed: simulate(seed, args.days) for seed in seeds}, args.days)
    print(text)


if __name__ == "__main__":
    main()
