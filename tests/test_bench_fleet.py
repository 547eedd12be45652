"""The fleet benchmark's machinery on a small fleet: every device gets its receipt (figures are not
asserted: speed is for the benchmark's printout)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import fleet  # noqa: E402


def test_a_small_fleet_orders_through_mosquitto_and_the_vendor_process():
    r = fleet.run(20, 300, timeout=60)
    assert r["receipts"] == 20 and r["refused"] == 0 and r["other"] == []
    assert r["p50_ms"] <= r["p99_ms"] and r["raw_msgs_per_s"] > 0 and r["orders_per_s"] > 0
