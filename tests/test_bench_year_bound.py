"""The bound on stock at the stockout target (bench/year_bound.py): its rule orders as it says,
holds more stock and runs out less with a larger buffer, and the report says for every
consumable whether both targets are reachable."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
spec = importlib.util.spec_from_file_location("year_bound", ROOT / "bench" / "year_bound.py")
bound = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bound)
year = bound.year
SEEDS = (7, 8)


def test_a_larger_buffer_holds_more_stock_and_runs_out_less():
    ink = year.SPECS[1]
    low = bound.medians(ink, SEEDS, 120, (0, 1, 0))
    high = bound.medians(ink, SEEDS, 120, (0, 1, ink.capacity * 40 // 100))
    assert high[1] > low[1] and high[0] <= low[0]


def test_the_rule_orders_from_its_vendor_in_its_size_and_keeps_the_books():
    coffee = year.SPECS[2]
    figures = bound.run(coffee, 7, 120, (1, 3, 100))
    assert figures["orders"] > 0 and figures["spend"] == figures["orders"] * (
        3 * coffee.price * (100 - year.B_DISCOUNT) // 100 + coffee.ship)


def test_the_report_says_for_every_consumable_whether_both_targets_are_reachable():
    text = bound.report(SEEDS, 90)
    lines = text.splitlines()
    assert lines[0].startswith("Least stock on hand at the stockout target, 2 seeds (7..8)")
    assert len(lines) == 1 + len(year.SPECS)
    for line, consumable in zip(lines[1:], year.SPECS):
        assert line.startswith("  %s: threshold " % consumable.slot)
        assert line.endswith(("both reachable", "or fewer"))
