"""Time on the board (firmware/lib/ticks.py) in integers: on a board a float has 24 bits, so a unix
timestamp as a float moves in 128 s steps. Run on CPython and on MicroPython; the 32-bit ports
(ESP32, RP2040) are where float arithmetic would show."""

import ticks
from check import raises

START = 1767225600  # 2026-01-01, as a provisioned [clock] start


def fed(values):
    """A unix-milliseconds source returning each of values in turn."""
    it = iter(values)
    return lambda: next(it)


def test_an_accelerated_clock_advances_by_exactly_speed_times_elapsed():
    seconds = list(range(0, 300)) + [86400, 86401, 30 * 86400]
    for speed in (1, 60, 600, 3600):
        # as `thingsdk firmware build` writes [clock] now, and as it wrote it before (floats: a
        # board must refuse those rather than run its time in 128 s steps)
        for table in ({"speed": speed, "start": START}, {"speed": float(speed), "start": 1.0 * START}):
            try:
                clock = ticks.clock_from(table, fed([(START + s) * 1000 for s in seconds]))
            except ValueError:
                assert type(table["speed"]) is float
                continue
            for s in seconds:
                got = clock()
                assert got == START + s * speed, (table, s, got - START, s * speed)


def test_fractions_of_a_second_and_of_a_speed():
    # 250 ms steps at speed 60 are 15 s each; a start half a second in, and speed 3/2
    clock = ticks.clock_from({"speed": 60, "start": START}, fed([START * 1000 + 250 * k
                                                                  for k in range(400)]))
    for k in range(400):
        assert clock() - START == 15 * k
    half = [2 * START + 1, 2]  # START + 0.5 s
    clock = ticks.clock_from({"speed": [3, 2], "start": half},
                             fed([START * 1000 + 500 + 2000 * k for k in range(100)]))
    for k in range(100):
        assert clock() - START == 3 * k


def test_without_a_clock_table_it_is_unix_seconds():
    clock = ticks.clock_from(None, fed([START * 1000 + k for k in range(0, 3000, 7)]))
    for k in range(0, 3000, 7):
        assert clock() == START + k // 1000
    now = ticks.unix_ms()
    assert isinstance(now, int) and now > START * 1000
    assert isinstance(ticks.clock_from({})(), int)


def test_a_float_or_a_broken_ratio_is_refused():
    for table in ({"speed": 60.0, "start": START}, {"speed": 60, "start": START + 0.5},
                  {"speed": [1, 0], "start": START}, {"speed": 60}, {"speed": [1, 2, 3],
                                                                      "start": START}):
        error = raises(ValueError, ticks.clock_from, table)
        assert "build it again" in str(error), error
