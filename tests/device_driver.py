"""`thingsdk device run` for the fault tests: the consumable's level is kept by a simulated owner
(OwnerKeptLevel), and the process kills itself with SIGKILL at chosen points of an order's life.

    python tests/device_driver.py CONFIG KILLS

KILLS is a JSON file {"targets": [...], "done": [...]}: the process dies right after it persists
a need in the first target state not yet done ("quoting", "placed"...), or, for a target such as
"ordering:published", right after the broker acknowledged a message published while a need is in
that state. It records the kill in "done" first, so the restarted process goes on to the next.
"""

import json
import os
import signal
import sys

from thingsdk.core import lifecycle
from thingsdk.sensors import LEVEL
from thingsdk.storage import atomic_write, read_bytes

START_LEVEL, PER_HOUR = 700, 100


class OwnerKeptLevel:
    """A slot used at `per_hour` units an hour from `start_level` on (at the device's first
    start), which its owner refills to capacity as soon as an order of the device was delivered.
    What the owner did is kept in a file, so a restarted device reads the same level."""

    kind = LEVEL

    def __init__(self, device, slot, start_level=START_LEVEL, per_hour=PER_HOUR):
        self.device, self.slot, self.per_hour = device, slot, per_hour
        self.path = device.state.path / "owner-level.json"
        kept = read_bytes(self.path)
        self.kept = json.loads(kept) if kept else {
            "since": device.facts["born"], "level": start_level, "refilled": []}

    def read(self, now):
        for rec in self.device.orders.needs.values():
            if (rec["slot"] == self.slot and rec["state"] == lifecycle.DELIVERED
                    and rec["need"].hex() not in self.kept["refilled"]):
                capacity = self.device.slots[self.slot].consumable.capacity
                self.kept = {"since": now, "level": capacity,
                             "refilled": self.kept["refilled"] + [rec["need"].hex()]}
                atomic_write(self.path, json.dumps(self.kept).encode())
        used = self.per_hour * (now - self.kept["since"]) // 3600
        return max(0, self.kept["level"] - used)


def install_kills(device, kills_path):
    """Make the device kill itself at the next target of the kills file."""
    kills = json.loads(read_bytes(kills_path))
    pending = [t for t in kills["targets"] if t not in kills["done"]]
    if not pending:
        return
    target = pending[0]
    state, _, moment = target.partition(":")

    def die():
        kills["done"].append(target)
        atomic_write(kills_path, json.dumps(kills).encode())
        os.kill(os.getpid(), signal.SIGKILL)

    if moment == "published":
        publish = device.transport.publish

        def publish_then_die(topic, payload, retain=False):
            ack = publish(topic, payload, retain)
            if any(r["state"] == state for r in device.orders.needs.values()):
                ack.wait(10)
                die()
            return ack
        device.transport.publish = publish_then_die
    else:
        save_record = device.state.save_record

        def save_then_die(record):
            save_record(record)
            if record["state"] == state:
                die()
        device.state.save_record = save_then_die


def main(config_path, kills_path):
    from thingsdk import cli
    from thingsdk.device import config

    load = config.load

    def load_for_test(path):
        device = load(path)
        for name, slot in device.slots.items():
            slot.source = OwnerKeptLevel(device, name)
        install_kills(device, kills_path)
        return device

    config.load = load_for_test
    return cli.main(["device", "run", "--config", config_path])


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
