"""The fleet benchmark's machinery on a small fleet, for 1 and 2 workers: every device of the burst
and of the steady phase gets its receipt, driven from a load-generator process (figures are not
asserted: speed is for the benchmark's printout)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import fleet  # noqa: E402


def test_a_small_fleet_orders_through_mosquitto_and_the_vendor_workers():
    r = fleet.run(20, 300, workers=(1, 2), generators=1, steady_devices=10)
    raw, how = r["raw"]
    assert raw > 0 and how
    assert [(name, n) for name, n, _, _ in r["setups"]] == [("sqlite", 1), ("sqlite", 2)]
    for _, _, burst, steady in r["setups"]:
        assert burst["accepted"] == burst["devices"] == 20 and burst["refused"] == 0
        assert steady["accepted"] == steady["devices"] == 10 and steady["refused"] == 0
        # Per order: mandate, quote request and order up; offer and receipt down.
        assert burst["messages_per_order"] == steady["messages_per_order"] == 5
        assert burst["up_per_order"] == steady["up_per_order"] == 3
        assert burst["p50_ms"] <= burst["p99_ms"] and burst["orders_per_s"] > 0
        assert burst["passed_over"] == 0  # each worker is given its own devices' uplinks only
    sign, verify = r["crypto"]
    assert 0 < sign < 0.01 and 0 < verify < 0.01
    # Five messages signed and checked, and the owner's mandate checked by the vendor.
    signs, verifies, seconds, most = fleet.crypto_bound(r["setups"][0][2], r["crypto"], 2)
    assert (signs, verifies) == (5, 6)
    assert seconds == 5 * sign + 6 * verify and most == 2 / seconds
