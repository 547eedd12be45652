"""How little stock any policy could hold at bench/year.py's targets: a bound, measured.

    python bench/year_bound.py [--seeds 20] [--first 1] [--days 365]

The same years as bench/year.py (use, readings, vendor draws), ordered by a rule that knows more
than a device can: the true stock on hand (no sensor, no glitch) and the mean use of the next 14
days. Each morning it orders `items` from one vendor when the stock, less that use until the
vendor's quoted arrival a day later, would fall below a buffer: either only with no order on its
way, or counting what is on its way as stock (so that several orders may be on their way at
once). Buffers from 0 to 40 % of capacity are tried, with each vendor, order size and way.

Printed per consumable: the threshold's median stockout days, stock on hand and spend per 100
units used; then the least median stock on hand any of these runs held while its median
stockout days stayed within 10 % of the threshold's (the stockout target), and the least while
its median spend per 100 units used was no more than the threshold's as well, with nothing
expired (the spend and expiry targets), each with how that run ordered. When the first is above
the threshold's stock, the two stock targets cannot both be met by ordering earlier or later,
or more or less, from these vendors; when only the second is, they can, but not without
spending more than the threshold or letting stock expire: only knowing use better than its next
two weeks' mean could.
"""

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import year  # noqa: E402

BUFFERS = (0, 5, 10, 15, 20, 25, 30, 40)  # percent of capacity
AHEAD = 14  # days of future use whose mean the rule knows


def run(spec, seed, days, rule):
    """figures() of one year of one consumable: `rule` (vendor, items, buffer, on its way: True
    to count orders on their way as stock) or None for the threshold."""
    home = year.household(seed, spec)
    use, noise = year.demand(spec, seed, days, home)
    draws = year.leads(spec, seed, days, home)
    slot = year.Slot(spec, seed, False, home, draws)
    if rule is not None:
        vendor, items, buffer, on_its_way = rule

        def order(day, now):
            if slot.parcels and not on_its_way:
                return
            stock = slot.level + len(slot.shelf) * spec.pack
            stock += sum(parcel[2] for parcel in slot.parcels) * spec.pack
            ahead = use[day:day + AHEAD]
            if stock - sum(ahead) * (draws[day][vendor][0] + 1) / len(ahead) < buffer:
                slot.place(day, vendor, slot.offer(vendor, items, day, now))

        slot.order = order
    for day in range(days):
        slot.live(day, use[day], noise[day])
    return year.figures(slot.outcome, spec)


def medians(spec, seeds, days, rule):
    """(stockout days, stock on hand, spend per 100 units used): medians over the seeds; and the
    units expired over them all."""
    runs = [run(spec, seed, days, rule) for seed in seeds]
    return tuple(year.median([f[key] for f in runs]) for key in ("stockout", "stock", "per100")
                 ) + (sum(f["expired"] for f in runs),)


def rules(spec):
    sizes = [1] if spec.pack == spec.capacity else range(1, spec.capacity // spec.pack + 2)
    return [(vendor, items, spec.capacity * share // 100, on_its_way) for vendor in (0, 1)
            for items in sizes for share in BUFFERS for on_its_way in (False, True)]


def _medians(args):
    return medians(*args)


def bound(spec, seeds, days, workers=None):
    """(threshold's medians, the least-stock run at the stockout target, the least-stock run at
    the stockout and spend targets): each run (medians, rule), or None when no run met them.
    The rules run in `workers` processes (default: one per core)."""
    threshold = medians(spec, seeds, days, None)
    tried = rules(spec)
    with ProcessPoolExecutor(workers or os.cpu_count()) as pool:
        found = list(pool.map(_medians, [(spec, seeds, days, rule) for rule in tried]))
    runs = sorted(((f, rule) for f, rule in zip(found, tried) if 10 * f[0] <= threshold[0]),
                  key=lambda run: (run[0][1], run[0][2]))
    spending = [run for run in runs if run[0][2] <= threshold[2] and not run[0][3]]
    return threshold, (runs or [None])[0], (spending or [None])[0]


def _how(best, spec):
    (stockouts, stock, per100, _), (vendor, items, buffer, on_its_way) = best
    return "%d %s (%d stockout days, %s per 100 used; vendor %s, %d per order, buffer %d%s)" % (
        stock, spec.unit, stockouts, year.money(per100, year.CURRENCY), "AB"[vendor], items,
        buffer, ", several on their way" if on_its_way else "")


def report(seeds, days, workers=None):
    lines = ["Least stock on hand at the targets, %d seeds (%d..%d), %d days: a rule that knows "
             "the true stock and the next %d days' mean use." % (
                 len(seeds), seeds[0], seeds[-1], days, AHEAD)]
    for spec in year.SPECS:
        (t_out, t_stock, t_per100, _), low, cheap = bound(spec, seeds, days, workers)
        head = "  %s: threshold %d stockout days, %d %s on hand, %s per 100 used; " % (
            spec.slot, t_out, t_stock, spec.unit, year.money(t_per100, year.CURRENCY))
        if low is None:
            lines.append(head + "no run met %d stockout days or fewer" % (t_out // 10))
            continue
        text = head + "at the stockout target at least %s" % _how(low, spec)
        text += "; at the spend and expiry targets too, at least %s" % _how(cheap, spec) \
            if cheap else "; no run met the spend and expiry targets too"
        if cheap is not None and cheap[0][1] <= t_stock:
            verdict = "all three reachable"
        elif low[0][1] <= t_stock:
            verdict = "the stock targets reachable, but NOT with the spend and expiry targets"
        else:
            verdict = "NOT both stock targets reachable"
        lines.append(text + ": " + verdict)
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
