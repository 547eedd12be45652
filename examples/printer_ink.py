"""A printer that reorders its ink cartridge from the pages it prints: no sensor, the host (the
printer's firmware or its print server) reports each finished job's page count to a
UsageCounter; the device learns the pages per day and orders an XL cartridge (1000 pages) within
the owner's mandate before the cartridge in use runs out.

Wiring: none. Hook the counter into whatever knows the pages: a CUPS backend or the printer's
job-done callback calls `counter.record(pages)` (thread-safe). With --hardware this script reads
the page counts from standard input, one job per line, e.g. from CUPS's page_log:
`tail -F /var/log/cups/page_log | awk '{print $NF}' | python examples/printer_ink.py --hardware ...`

Run: python examples/printer_ink.py [--broker URL] [--speed 3600]
Simulated (the default), an office prints about 80 pages a day; the cartridge in the printer, good
for 1000 pages, has 220 left (printers report that: the host tells the consumable with `refill`).
"""

import sys
import threading

from thingsdk.core.consumable import DAY, Consumable, RateEstimator
from thingsdk.core.lifecycle import DELIVERED
from thingsdk.device.runtime import Slot
from thingsdk.sensors.counter import UsageCounter
from world import Simulated, World, arguments

CARTRIDGE = 1000  # pages


class Office:
    """Prints `per_day` pages a day, reported to the counter."""

    def __init__(self, counter, per_day):
        self.counter, self.per_day = counter, per_day
        self.start, self.reported = None, 0

    def __call__(self, now):
        self.start = now if self.start is None else self.start
        due = (now - self.start) * self.per_day // DAY
        self.counter.record(due - self.reported)
        self.reported = due


def pages_from(lines, counter):
    """A real host: one finished job's page count per line."""
    for line in lines:
        if line.strip().isdigit():
            counter.record(int(line))


def main():
    args = arguments(__doc__)
    counter = UsageCounter()
    if args.simulate:
        source = Simulated(counter, Office(counter, 80))
    else:
        source = counter
        threading.Thread(target=pages_from, args=(sys.stdin, counter), daemon=True).start()
    ink = Consumable("ink-black", "page", CARTRIDGE, sku="INK-XL-BK", lead_time=DAY,
                     lead_spread=DAY // 2, estimator=RateEstimator(min_interval=3600))
    world = World(args, {"item": "INK-XL-BK:35.00EUR:1", "max-orders": "2/month"})
    ink.refill(world.start, 220)  # what the printer says is left in the cartridge
    try:
        world.device([Slot(ink, source)])
        world.follow(lambda needs: needs.get("ink-black", {}).get("state") == DELIVERED)
    finally:
        world.close()


if __name__ == "__main__":
    main()
