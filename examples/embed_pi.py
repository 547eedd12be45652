"""thingsdk inside your own program on a Pi: your sensor, the rest from `thingsdk provision`'s
device.toml, whose consumable "coffee-beans" says `sensor = {type = "custom"}`.

Run: python embed_pi.py device.toml   (stops cleanly on SIGTERM or Ctrl-C)
"""

import signal
import sys
import threading

import thingsdk


class Hopper:
    """Grams of beans left, from your own scale's driver."""

    kind = thingsdk.LEVEL

    def __init__(self, grams: int) -> None:
        self.grams = grams

    def read(self, now: int) -> int:
        return self.grams  # read your hardware here


def main(config: str) -> None:
    device = thingsdk.load_device(config, sources={"coffee-beans": Hopper(420)})
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    device.run(stop)  # connects, steps every `interval` seconds, closes when stopped


if __name__ == "__main__":
    main(sys.argv[1])
