"""Millisecond ticks as MicroPython has them, and their stand-ins where the firmware's library is
tested on CPython. Differences of ticks must go through ticks_diff: on a board they wrap around."""

import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    ticks_ms, ticks_diff, sleep_ms = time.ticks_ms, time.ticks_diff, time.sleep_ms
else:
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(end, start):
        return end - start

    def sleep_ms(ms):
        time.sleep(ms / 1000)
