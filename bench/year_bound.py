"""How little stock any policy could hold at bench/year.py's stockout target: a bound, measured.

    python bench/year_bound.py [--seeds 20] [--first 1] [--days 365]

The same years as bench/year.py (use, readings, vendor draws), ordered by a rule that knows more
than a device can: the true stock on hand (no sensor, no glitch) and the mean use of the next 14
days. Each morning, with no order on its way, it orders `items` from one vendor when the stock,
less that use until the vendor's quoted arrival a day later, would fall below a buffer. Buffers
from 0 to 40 % of capacity are tried, with each vendor and order size. Printed per consumable:
the threshold's median stockout days and stock on hand, then the least median stock on hand
any of these runs held while its median stockout days stayed within 10 % of the threshold's
(the target), and how that run ordered. When that least stock is above the threshold's, the
two targets for that consumable cannot both be met by ordering earlier or later, or more or
less, from these vendors: only knowing use better than its next two weeks' mean could.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import year  # noqa: E402

BUFFERS = (0, 5, 10, 15, 20, 25, 30, 40)  # percent of capacity
AHEAD = 14  # days of future use whose mean the rule knows


def run(spec, seed, days, rule):
    """figures() of one year of one consumable: `rule` (vendor, items, buffer) or None for the
    threshold."""
    home = year.household(seed, spec)
    use, noise = year.demand(spec, seed, days, home)
    draws = year.leads(spec, seed, days, home)
    slot = year.Slot(spec, seed, False, home, draws)
    if rule is not None:
        vendor, items, buffer = rule

        def order(day, now):
            if slot.parcels:
                return
            stock = slot.level + len(slot.shelf) * spec.pack
            ahead = use[day:day + AHEAD]
            if stock - sum(ahead) * (draws[day][vendor][0] + 1) / len(ahead) < buffer:
                slot.place(day, vendor, slot.offer(vendor, items, day, now))

        slot.order = order
    for day in range(days):
        slot.live(day, use[day], noise[day])
    return year.figures(slot.outcome, spec)


def medians(spec, seeds, days, rule):
    runs = [run(spec, seed, days, rule) for seed in seeds]
    return year.median([f["stockout"] for f in runs]), year.median([f["stock"] for f in runs])


def bound(spec, seeds, days):
    """((threshold stockouts, stock), (stockouts, stock, rule) of the least stock at the target,
    or None when no run met it)."""
    threshold = medians(spec, seeds, days, None)
    best = None
    sizes = [1] if spec.pack == spec.capacity else range(1, spec.capacity // spec.pack + 2)
    for vendor in (0, 1):
        for items in sizes:
            for share in BUFFERS:
                rule = (vendor, items, spec.capacity * share // 100)
                stockouts, stock = medians(spec, seeds, days, rule)
                if 10 * stockouts <= threshold[0] and (best is None or stock < best[1]):
                    best = (stockouts, stock, rule)
    return threshold, best


def report(seeds, days):
    lines = ["Least stock on hand at the stockout target, %d seeds (%d..%d), %d days: a rule that "
             "knows the true stock and the next %d days' mean use." % (
                 len(seeds), seeds[0], seeds[-1], days, AHEAD)]
    for spec in year.SPECS:
        (t_out, t_stock), best = bound(spec, seeds, days)
        head = "  %s: threshold %d stockout days, %d %s on hand; " % (spec.slot, t_out, t_stock,
                                                                      spec.unit)
        if best is None:
            lines.append(head + "no run met %d stockout days or fewer" % (t_out // 10))
            continue
        stockouts, stock, (vendor, items, buffer) = best
        lines.append(head + "at most %d stockout days: %d %s on hand at least (vendor %s, %d "
                     "per order, buffer %d): %s" % (
                         t_out // 10, stock, spec.unit, "AB"[vendor], items, buffer,
                         "both reachable" if stock <= t_stock else "NOT both reachable"))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    if not 1 <= args.days <= year.MAX_DAYS or not 1 <= args.seeds <= year.MAX_SEEDS:
        parser.error("--days must be 1..%d and --seeds 1..%d" % (year.MAX_DAYS, year.MAX_SEEDS))
    print(report(range(args.first, args.first + args.seeds), args.days))


if __name__ == "__main__":
    main()
