"""The firmware application: the whole device on a MicroPython board.

It runs the portable agent (thingsdk.core.agent: forecasting, mandate checks, decisions, signing,
the order lifecycle) with the board's parts: sensors on `machine` (drivers), state on flash
(flash.FlashState: written crash-safely before anything is sent) and a link to the vendor, either
WiFi and the firmware's MQTT client (mqtt) or a UART to a gateway (seriallink). Everything is one
asyncio loop, so sampling, the network and decisions interleave and nothing blocks.

Files on the board's flash (`thingsdk firmware build` writes them):
    identity/config.json  the device: key ids, broker, consumables and their sensors, `link`,
                          `interval` and `heartbeat` (seconds), `lifecycle` overrides, `clock`
                          ({speed, start}: ints or [num, den], see ticks.clock_from); the
                          broker may tune the MQTT client (TUNED: keepalive, retry, backoff
                          [first, most], limit, max_size)
    identity/device.seed, vendor.pub, owner.pub, mandate.cwt, ca.der, device.der, device-tls.der
    wifi.json             {"ssid": ..., "key": ...}: written on the board by its owner, not built
    state/                the device's state (flash.FlashState)
    rig.json              only on a test rig (hil/README.md), never on a board in service:
                          {"hold": true} keeps main.py from starting the device (the rig runs
                          it), {"adc": {"<pin>": raw reading}} replaces what those ADCs read,
                          {"cut_before": "order"} stops publishing once an order is sealed and
                          kept, so the rig can cut the power at that very point

Lines starting "thingsdk:" on the console say what the device does ("decided buy ...",
"sent ...", "refused ...") for a person or a test rig to read.
"""

import asyncio
import gc
import json
import os
import random
import sys

from flash import CheckpointError, read
from thingsdk.core import messages as m
from thingsdk.core.check import const
from ticks import ticks_diff, ticks_ms

# Bytes allocated between two collections of the heap while the device runs (gc.threshold).
# Collected only once the heap was full, an order's garbage lay among what it keeps, and a block
# of a few hundred bytes could then fail in a heap with room to spare. Every 8 KB takes most of
# the heap that saves for about half as much time again in an order's turns; the thresholds
# measured side by side are in firmware/README.md, and bench/firmware.py measures this one
# against collecting when full. Turns without an order allocate little.
COLLECT_EVERY = 8192

_OUTGOING = const(16)  # sealed messages waiting for the link; the lifecycle re-sends the rest


def set_clock(clock):
    """Set the board's clock from NTP (MicroPython's ntptime, on the ports with a network) and
    say how far off it was, or why it could not be set: the vendor's signed time then tells how
    far off it is (thingsdk.core.agent: "this device's clock is N s behind")."""
    try:
        import ntptime
    except ImportError:
        say("clock: this port has no ntptime; it stays as it is")
        return
    before = clock()
    try:
        ntptime.settime()
    except (OSError, OverflowError, IndexError) as exc:
        say("clock not set from NTP (%s): %r" % (ntptime.host, exc))
        return
    say("clock set from NTP (%s): it was off by %d s" % (ntptime.host, clock() - before))


def new_id():
    if hasattr(os, "urandom"):
        return os.urandom(m.ID_SIZE)
    return bytes(random.getrandbits(8) for _ in range(m.ID_SIZE))  # ports without urandom


def say(text):
    print("thingsdk: " + text)


def rig_hook(root):
    """rig.json, the test rig's hook, as data ({} on a board in service)."""
    data = read(root + "rig.json")
    return json.loads(data) if data else {}


class Wifi:
    """The WiFi station of wifi.json ({"ssid": ..., "key": ...}); the MQTT client watches
    isconnected() and awaits join() when it is down. Each change is said once."""

    def __init__(self, settings, timeout=30, on_join=None):
        import network

        self.ssid, self.key, self.timeout = settings["ssid"], settings["key"], timeout
        self.on_join = on_join
        self.wlan = network.WLAN(network.STA_IF)
        self.up, self.joins = False, 0

    def isconnected(self):
        up = self.wlan.isconnected()
        if up != self.up:
            self.up = up
            self.joins += up
            say("WiFi %s %s" % (self.ssid, "re-joined" if self.joins > 1 else "joined")
                if up else "WiFi %s lost" % self.ssid)
            if up and self.on_join:
                self.on_join()
        return up

    async def join(self):
        """Join (again); OSError if not joined within `timeout` seconds."""
        wlan = self.wlan
        wlan.active(True)
        if not wlan.isconnected():
            wlan.disconnect()  # a station still trying on its own refuses connect()
            wlan.connect(self.ssid, self.key)
        for _ in range(self.timeout * 10):
            if self.isconnected():
                return
            await asyncio.sleep(0.1)
        raise OSError("WiFi %s not joined within %d s" % (self.ssid, self.timeout))


class App:
    """The device on a board whose flash is mounted at `root`; `machine` is the board's machine
    module (a rig's may stand in), `clock()` unix seconds, `sources` the program's own sensors
    by slot (for config.json's sensors of type custom): objects with `kind` (LEVEL or USAGE, of
    thingsdk.core.agent) and `read(now) -> int`, in the consumable's unit."""

    def __init__(self, root="/", machine=None, clock=None, sources=None):
        if machine is None:
            import machine
        self.machine = machine
        import configure  # boot only: dropped once read, so a running device does not keep it

        try:  # the device's parts: config, clock, topics, state, agent, link (configure.app)
            configure.app(self, root, clock, sources)
        finally:
            del sys.modules["configure"]

    def _to_owner(self, data, msg_type):
        self._queue(data, msg_type, self.to_owner)

    def _joined(self):
        """The WiFi joined (again): a real clock is set by NTP then."""
        set_clock(self.clock)

    def _on_message(self, topic, payload):
        """Take a downlink or an owner's message in at once: the link acknowledges it only after this returns, so only
        once what it caused is kept on flash (a message acknowledged but still waiting in memory
        would be lost to a restart). Out of heap, it is left unacknowledged: the link drops and
        the broker sends it again."""
        if topic != self.downlink and topic != self.from_owner:
            return
        try:
            self.agent.receive(payload, self.clock())
        except MemoryError:
            self._out_of_memory("taking in a message")
            raise
        except CheckpointError as exc:
            self.fatal = exc  # the next turn stops the device
        except Exception as exc:  # a bug, not bad input (that is counted): do not loop on it
            self.errors += 1
            say("error taking in a message: %r" % exc)

    def _out_of_memory(self, where):
        """After a MemoryError the heap is fragmented and a step may have stopped halfway:
        restart the board (its state on flash is whole, and the order goes on from there)."""
        self.errors += 1
        say("out of memory %s: restarting; what is on flash carries on" % where)
        gc.collect()
        reset = getattr(self.machine, "reset", None)
        if reset is not None:
            reset()

    def _queue(self, data, msg_type, topic=None):
        if self.hook.get("cut_before") == m.NAMES[msg_type - 1]:
            self.frozen = True
            say("holding the %s for the rig: cut the power now" % m.NAMES[msg_type - 1])
        if len(self.outgoing) >= _OUTGOING:
            self.outgoing.pop(0)
        self.outgoing.append((topic or self.uplink, data))

    async def start(self):
        """Connect (in the background, joining the WiFi first) and carry on what the state holds."""
        self.link.start()
        await self.link.subscribe(self.downlink)
        await self.link.subscribe(self.from_owner)
        self.agent.start(self.clock(), self.mandate)
        say("started, device %s" % self.config["device_kid"])

    async def turn(self):
        """One step: the agent's step (messages are taken in as they arrive), what to send."""
        if self.fatal is not None:
            raise self.fatal  # sequence numbers cannot be trusted: stop rather than risk reuse
        try:
            self.agent.step(self.clock())
        except CheckpointError:
            raise
        except MemoryError:
            self._out_of_memory("in a step")
        except Exception as exc:  # one bad turn must not stop the device
            self.errors += 1
            say("error in a turn: %r" % exc)
        gc.collect()  # between turns, so long-lived data does not settle among the garbage
        while self.outgoing and not self.frozen:
            try:
                await self.link.publish(*self.outgoing[0])
            except Exception as exc:  # a full in-flight list: try on the next turn
                say("not sent yet: %r" % exc)
                break
            self.outgoing.pop(0)

    async def run(self, seconds=None):
        """start(), then a turn every `interval` seconds; for `seconds` if given, else forever."""
        await self.start()
        start = ticks_ms()
        try:
            while seconds is None or ticks_diff(ticks_ms(), start) < seconds * 1000:
                await self.turn()
                await asyncio.sleep(self.interval)
        finally:
            await self.link.close()
            say("stopped")


def boot(root="/", sources=None):
    """main.py's: run the device, unless a test rig holds it (rig.json). `sources`: the
    program's own sensors by slot, see App."""
    if rig_hook(root).get("hold"):
        say("held by the test rig: not started")
        return None
    return main(root, sources=sources)


def main(root="/", seconds=None, sources=None):
    """Run the device, for `seconds` or for ever: from boot(), or from a rig's REPL. On a port
    whose asyncio has no run() (the WebAssembly one: its loop is the host's), the device runs in
    the background and this returns at once."""
    app = App(root, sources=sources)
    gc.threshold(COLLECT_EVERY)  # its code loaded (main.py had it collected every 4 KB)
    if hasattr(asyncio, "run"):
        asyncio.run(app.run(seconds))
    else:
        asyncio.create_task(app.run(seconds))
    return app
