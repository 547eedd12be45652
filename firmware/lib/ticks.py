"""Time on the board, in ints only: millisecond ticks as MicroPython has them (with stand-ins where
the firmware's library is tested on CPython) and unix time. Differences of ticks must go through
ticks_diff: on a board they wrap around. A board's float has 24 bits: a unix timestamp as a float
moves in 128 s steps, so no timestamp here is ever a float."""

import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"
# time counts from 2000 on some ports and from 1970 on others; the protocol uses unix time.
EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0

if MICROPYTHON:
    ticks_ms, ticks_diff, sleep_ms = time.ticks_ms, time.ticks_diff, time.sleep_ms
else:
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(end, start):
        return end - start

    def sleep_ms(ms):
        time.sleep(ms / 1000)


def unix_ms():
    """Unix time in milliseconds."""
    return time.time_ns() // 1000000 + EPOCH * 1000


def ratio(value, name):
    """(numerator, denominator) of an int or an [int, int > 0] pair: never a float."""
    pair = value if type(value) is list else [value, 1]
    if len(pair) != 2 or type(pair[0]) is not int or type(pair[1]) is not int or pair[1] <= 0:
        raise ValueError("clock %s is %r: a whole number or [numerator, denominator] (build it "
                         "again with `thingsdk firmware build`)" % (name, value))
    return pair


def clock_from(table, now=unix_ms):
    """Unix seconds from `now()` (unix milliseconds); with a `clock` table {speed, start} (demos
    and tests, as on CPython) time runs `speed` times faster from the unix time `start` on:
    start + (now - start) * speed, exactly, in integers."""
    if not table:
        return lambda: now() // 1000
    (a, b), (c, d) = ratio(table.get("start"), "start"), ratio(table.get("speed"), "speed")
    return lambda: (1000 * a * d + (now() * b - 1000 * a) * c) // (1000 * b * d)
