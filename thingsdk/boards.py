"""Board profiles for `thingsdk firmware build`: what a build needs to know about each board."""

from collections import namedtuple

# name: the --board value; march: mpy-cross's architecture (it only shapes native code, which
# the core has none of); root: where the board's flash filesystem is mounted (MicroPython looks
# for modules in <root>lib; the device's state goes to <root>state); heap: roughly the bytes free
# to Python after a stock boot; adc_pins: the pins an ADC sensor may use while WiFi is on;
# uart: (id, tx pin, rx pin) of the serial link to a gateway (firmware/README.md has the wiring);
# port, make_board: the MicroPython port folder and BOARD of its firmware build; port_manifest:
# the manifest that firmware build freezes by default (the port's modules, asyncio among them),
# which a --frozen build's manifest includes before the SDK.
Board = namedtuple("Board", "name title march root heap adc_pins uart port make_board "
                            "port_manifest")

BOARDS = {
    # ADC2 is taken by the WiFi driver on an ESP32: only ADC1's pins 32-39 read while it runs.
    # UART1's default pins are the flash chip's, so the link uses UART2 on GPIO17/16.
    "esp32": Board("esp32", "ESP32 (generic, no PSRAM)", "xtensawin", "/", 110 * 1024,
                   tuple(range(32, 40)), (2, 17, 16), "esp32", "ESP32_GENERIC",
                   "$(PORT_DIR)/boards/manifest.py"),
    # GP26-28 are ADC0-2; GP29 measures VSYS on a Pico W. UART0 on GP0/GP1.
    "pico_w": Board("pico_w", "Raspberry Pi Pico W (RP2040)", "armv6m", "/", 166 * 1024,
                    (26, 27, 28), (0, 0, 1), "rp2", "RPI_PICO_W", "$(BOARD_DIR)/manifest.py"),
}

TARGET = 60 * 1024  # the bundle's size target: code and identity together

# Heap, as bench/firmware.py measures it on MicroPython's unix port built as these boards are
# (32-bit, single-precision floats), with an MQTT build: the .mpy files a board loads at boot
# take about LOAD_FACTOR times their size in heap while a need decides (1.12 times at boot, and
# the deciding code loaded then: 106 + 9.6 KB for 94 KB of files); a whole order then needs about
# ORDER_HEAP more: the smallest heap that completed four in a row when it was set (142 KB; the
# bench now finds 130-131), less that code, and a margin, since near that smallest heap success
# is not steady (a heap a few KB larger can fail where a smaller one completed, and longer state
# paths need more). The estimate errs high: a safe bound, not a figure. Frozen into the firmware
# image, code and constants stay in flash and a whole order completes in about FROZEN_HEAP.
LOAD_FACTOR = 1.25
ORDER_HEAP = 40 * 1024
FROZEN_HEAP = 60 * 1024


def heap_needed(code_bytes, frozen=False):
    """(heap the loaded code takes, heap a whole order needs in all), in bytes, estimated."""
    if frozen:
        return 0, FROZEN_HEAP
    loaded = int(code_bytes * LOAD_FACTOR)
    return loaded, loaded + ORDER_HEAP


def board(name):
    """The profile called `name`; ValueError naming the known boards otherwise."""
    if name not in BOARDS:
        raise ValueError("unknown board %r (known: %s)" % (name, ", ".join(sorted(BOARDS))))
    return BOARDS[name]
