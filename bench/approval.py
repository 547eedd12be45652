"""The owner's approval round trip through the owner's page, on a real mosquitto and headless
Chromium: the device publishes an approval request → the page shows it (live, without a reload) →
Approve is clicked → the owner's signed approval arrives on the device's from-owner topic.

    python bench/approval.py [--rounds N]

Prints the median and 95th percentile of the whole round trip and of its two halves (request to
shown; click to approval received), in milliseconds.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from broker import Broker, Pki, wait_for  # noqa: E402
from test_owner_page import Scene  # noqa: E402


def p95(values):
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def main():
    parser = argparse.ArgumentParser(description="the owner's approval round trip")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    pki = Pki(folder / "pki")
    (folder / "broker").mkdir()
    broker = Broker(folder / "broker", pki)
    broker.start()
    scene = None
    try:
        (folder / "scene").mkdir()
        scene = Scene(folder / "scene", broker, pki)
        browser = scene.open_browser()
        shown, answered, total = [], [], []
        for _ in range(args.rounds):
            before = len(scene.received)
            start = time.perf_counter()
            scene.from_device("to-owner", scene.request())
            buttons = wait_for(lambda: browser.find_elements("css selector",
                                                             "button[value=approve]"), 10, 0.002)
            seen = time.perf_counter()
            buttons[0].click()
            assert wait_for(lambda: len(scene.received) > before, 10, 0.002), "no approval"
            end = time.perf_counter()
            # the page shows the answer before the next request comes
            wait_for(lambda: not browser.find_elements("css selector", "button[value=approve]"))
            shown.append((seen - start) * 1000)
            answered.append((end - seen) * 1000)
            total.append((end - start) * 1000)
        print("approval round trip over %d rounds (mosquitto, owner page, headless Chromium)"
              % args.rounds)
        for name, values in (("request -> shown", shown), ("click -> approval received", answered),
                             ("whole round trip", total)):
            print("  %-28s median %7.1f ms   p95 %7.1f ms" % (name, statistics.median(values),
                                                              p95(values)))
    finally:
        if scene:
            scene.close()
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
