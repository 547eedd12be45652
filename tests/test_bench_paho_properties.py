"""bench/paho_properties.py's machinery on a few messages: a vendor's Transport takes real
uplinks from mosquitto and publishes answers, once with paho's Properties as paho has them and
once made light, each in a process of its own that says which it had (figures are not asserted:
speed is for the benchmark's printout)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import paho_properties  # noqa: E402


def test_both_ways_are_measured_on_a_real_broker():
    best, how = paho_properties.run(200, 1)
    assert how
    for light in (False, True):
        assert sorted(best[light]) == ["published_us", "taken_us"]
        assert all(value > 0 for value in best[light].values())
