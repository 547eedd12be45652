"""The owner's approval round trip with the project's own processes, on a real mosquitto and
headless Chromium: a `device run` asks its owner (its filter is nearly spent and the mandate wants
approval above 20.00 EUR) → `owner serve` shows the request (live, without a reload) → Approve is
clicked → the device orders with that approval → `vendor serve` verifies it and accepts the order
→ the page shows the vendor's receipt.

    python bench/approval.py [--rounds N]

Each round is a fresh set-up (keys, `broker init`, provision, register) with its own processes,
as tests/readme_walk.py writes it; one browser serves every round. Times are wall-clock: the
request's from the device's log line (milliseconds), the rest as this process sees them. Prints
the median and 95th percentile, in milliseconds, of: request → shown in the page; click → order
accepted (in the vendor's store); click → receipt shown in the page; the whole round trip,
request → order accepted.
"""

import argparse
import datetime
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from broker import wait_for  # noqa: E402
from readme_walk import Walk  # noqa: E402
from test_owner_page import chrome, click, main_text  # noqa: E402

ASKED = re.compile(r"^(\S+ \S+) INFO sent approval-request [0-9a-f]+ to the owner", re.M)


def p95(values):
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def asked_at(log):
    """The wall-clock time of the device's log line saying it sent its approval request."""
    found = ASKED.search(log)
    if not found:
        return None
    return datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def one_round(folder, browser):
    """(request -> shown, click -> accepted, click -> receipt shown, request -> accepted), s."""
    walk = Walk(folder)
    try:
        walk.mosquitto()
        walk.vendor()
        url = walk.page()
        walk.device()
        browser.get(url)
        assert wait_for(lambda: browser.find_elements("css selector", "button[value=approve]"),
                        60, 0.002), walk.said()
        shown = time.time()
        click(browser, "button[value=approve]")
        clicked = time.time()
        assert wait_for(lambda: [o["status"] for o in walk.orders()] == ["accepted"], 30,
                        0.002), walk.said()
        accepted = time.time()
        assert wait_for(lambda: "The vendor accepted (ref " in main_text(browser), 30, 0.002)
        receipt = time.time()
        asked = wait_for(lambda: asked_at(walk.said("device")), 10)
        return shown - asked, accepted - clicked, receipt - clicked, accepted - asked
    finally:
        walk.stop()


def main():
    parser = argparse.ArgumentParser(description="the owner's approval round trip")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    browser = chrome(folder / "chromium")
    rounds = []
    try:
        for n in range(args.rounds):
            (folder / str(n)).mkdir()
            rounds.append(one_round(folder / str(n), browser))
    finally:
        browser.quit()
        shutil.rmtree(folder, ignore_errors=True)
    print("approval round trip over %d rounds (device run, owner serve in headless Chromium, "
          "vendor serve, mosquitto)" % args.rounds)
    names = ("request -> shown in the page", "click -> order accepted",
             "click -> receipt in the page", "request -> order accepted")
    for name, values in zip(names, zip(*rounds)):
        ms = [v * 1000 for v in values]
        print("  %-30s median %7.1f ms   p95 %7.1f ms" % (name, statistics.median(ms), p95(ms)))


if __name__ == "__main__":
    main()
