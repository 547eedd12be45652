"""The chaos benchmark's machinery, shortened: the vendor, the broker and devices killed with
SIGKILL a few times, and afterwards one order per need, each charged once, nothing stuck."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import chaos  # noqa: E402


def test_a_short_chaos_run_keeps_every_order_once():
    lines = []
    # Seed 1 kills the vendor, the broker and a device within the four cycles.
    assert chaos.run(n_devices=3, cycles=4, seed=1, quiet=8.0, out=lines.append), lines
    killed = lines[1]
    assert "vendor" in killed and "broker" in killed and "device" in killed, lines
    assert all(line.endswith("met") for line in lines[3:]), lines
