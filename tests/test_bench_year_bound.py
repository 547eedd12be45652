"""The bound on stock at the targets (bench/year_bound.py): its rule orders as it says, with one
order on its way or several, holds more stock and runs out less with a larger buffer, and the
report says for every consumable which targets are reachable together."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import year_bound as bound  # noqa: E402  (by its name: its worker processes import it so)

year = bound.year
SEEDS = (7, 8)


def test_a_larger_buffer_holds_more_stock_and_runs_out_less():
    ink = year.SPECS[1]
    low = bound.medians(ink, SEEDS, 120, (0, 1, 0, False))
    high = bound.medians(ink, SEEDS, 120, (0, 1, ink.capacity * 40 // 100, False))
    assert high[1] > low[1] and high[0] <= low[0]


def test_the_rule_orders_from_its_vendor_in_its_size_and_keeps_the_books():
    coffee = year.SPECS[2]
    figures = bound.run(coffee, 7, 120, (1, 3, 100, False))
    assert figures["orders"] > 0 and figures["spend"] == figures["orders"] * (
        3 * coffee.price * (100 - year.B_DISCOUNT) // 100 + coffee.ship)


def _most_on_their_way(coffee, rule):
    """The most orders on their way at once in a year under `rule`."""
    slot = {}
    place = year.Slot.place

    def placing(self, day, vendor, offer):
        slot["it"] = self
        return place(self, day, vendor, offer)

    year.Slot.place = placing
    try:
        bound.run(coffee, 7, 365, rule)
    finally:
        year.Slot.place = place
    orders = slot["it"].outcome.orders  # (day, items, total, days to arrive, vendor)
    return max(sum(1 for d, _, _, days, _ in orders if d <= day < d + days)
               for day in range(365))


def test_the_rule_has_several_orders_on_their_way_only_when_it_counts_them_as_stock():
    coffee = year.SPECS[2]
    assert _most_on_their_way(coffee, (1, 1, 250, False)) == 1
    assert _most_on_their_way(coffee, (1, 1, 250, True)) > 1


def test_the_report_says_for_every_consumable_which_targets_are_reachable():
    text = bound.report(SEEDS, 90, workers=2)
    lines = text.splitlines()
    assert lines[0].startswith("Least stock on hand at the targets, 2 seeds (7..8)")
    assert len(lines) == 1 + len(year.SPECS)
    for line, consumable in zip(lines[1:], year.SPECS):
        assert line.startswith("  %s: threshold " % consumable.slot)
        assert line.endswith(("all three reachable", "NOT both stock targets reachable",
                              "NOT with the spend and expiry targets", "or fewer"))
