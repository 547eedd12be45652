"""Board profiles for `thingsdk firmware build`: what a build needs to know about each board."""

from collections import namedtuple

# name: the --board value; march: mpy-cross's architecture (it only shapes native code, which
# the core has none of); root: where the board's flash filesystem is mounted (MicroPython looks
# for modules in <root>lib); heap: roughly the bytes free to Python after a stock boot.
Board = namedtuple("Board", "name title march root heap")

BOARDS = {
    "esp32": Board("esp32", "ESP32 (generic, no PSRAM)", "xtensawin", "/", 110 * 1024),
    "pico_w": Board("pico_w", "Raspberry Pi Pico W (RP2040)", "armv6m", "/", 166 * 1024),
}

TARGET = 60 * 1024  # the bundle's size target: code and identity together


def board(name):
    """The profile called `name`; ValueError naming the known boards otherwise."""
    if name not in BOARDS:
        raise ValueError("unknown board %r (known: %s)" % (name, ", ".join(sorted(BOARDS))))
    return BOARDS[name]
