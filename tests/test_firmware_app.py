"""The firmware application (firmware/lib/app.py) run on CPython from the folder `thingsdk firmware
build` made: with a stand-in `machine` whose ADC the test lowers, it buys through a real mosquitto
(mutual TLS, the thingsdk ACL) from the reference vendor; every uplink verifies on the host with the
device's public key, and the board's flash state shows the vendor's replies were accepted.

The same application on MicroPython itself is tests/test_firmware_wasm.py.
"""

import asyncio
import json
import sys

import pytest
from world import ADC_PIN, SLOT, SPEED, TIMEOUT, Tank, Tap

from thingsdk import codec, topics
from thingsdk.core import envelope, lifecycle
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Verifier
from thingsdk.firmware_build import build


class Machine:
    """The parts of `machine` the app's ADC sensor uses, reading the Tank."""

    def __init__(self, tank):
        self.tank = tank

    def Pin(self, pin, *args):
        return pin

    def ADC(self, pin):
        assert pin == ADC_PIN["pico_w"]
        return self

    def read_u16(self):
        return self.tank.raw()


def board_records(folder):
    from flash import FlashState

    return FlashState(str(folder / "state")).records()


async def run_until_closed(device, folder):
    """Run the app until the board's first need is closed (or the time is up), then stop it."""
    task = asyncio.create_task(device.run())
    for _ in range(int(TIMEOUT / 0.05)):
        records = board_records(folder)
        if records and records[0]["state"] == lifecycle.CLOSED:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    await device.link.close()


@pytest.fixture
def app_module(monkeypatch):
    """firmware/lib's app, imported as a board would (its modules are top-level there)."""
    for name in ("app", "flash", "drivers", "mqtt"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import app

    return app


def test_the_firmware_buys_a_filter_through_the_vendor(world, app_module):
    folder = world.build_board()
    world.start_vendor()
    up = Tap(world.broker, topics.uplink(world.kid))
    tank = Tank(world)

    async def scenario():
        device = app_module.App(str(folder) + "/", machine=Machine(tank))
        await run_until_closed(device, folder)
        return device

    device = asyncio.run(scenario())
    up.close()
    need = board_records(folder)[0]
    orders = world.orders()
    assert [o["id"] for o in orders] == [need["oid"]] and orders[0]["status"] == "delivered"
    assert need["state"] == lifecycle.CLOSED and need["reason"] == "refilled"
    assert need["slot"] == SLOT and need["delivered"][1] == orders[0]["qty"]
    assert device.agent.refusals == {} and device.errors == 0
    # What the board sent verifies with its public key alone, as the vendor's own check did.
    inbox = envelope.Inbox(world.vendor_key.kid,
                           {world.kid: Ed25519Verifier(world.device_key.public_key)}, codec)
    types = set()
    for data in up.seen:
        opened = inbox.open(data, int(world.clock()))
        assert opened.status in (envelope.ACCEPT, envelope.DUPLICATE), opened
        if opened.status == envelope.ACCEPT:
            inbox.commit(opened)
            types.add(opened.message.type)
    assert {m.MANDATE, m.QUOTE_REQUEST, m.ORDER, m.STATUS} <= types
    assert world.server.service.refusals == {}


def test_a_broken_config_is_refused_with_what_to_do(tmp_path, app_module):
    (tmp_path / "identity").mkdir()
    with pytest.raises(OSError, match="config.json is missing: copy a `thingsdk firmware build`"):
        app_module.App(str(tmp_path) + "/", machine=Machine(None))
    (tmp_path / "identity" / "config.json").write_text('{"device_kid": "00"}')
    with pytest.raises(ValueError, match="config.json has no link, broker, consumables: build"):
        app_module.App(str(tmp_path) + "/", machine=Machine(None))


TUNING = """[broker]
keepalive = 30
retry = 2.5
backoff = [0.2, 1.0]
limit = 3
max_size = 4096
"""


def tuned_board(world):
    """The world's board built again from a device.toml whose [broker] tunes the MQTT client."""
    world.build_board(tls=False)
    bundle = world.folder / "bundle"
    toml = bundle / "device.toml"
    toml.write_text(toml.read_text().replace("[broker]\n", TUNING))
    build("pico_w", bundle, world.folder / "tuned")
    return world.folder / "tuned"


def test_the_build_passes_the_broker_settings_and_an_exact_clock_to_the_board(world, app_module):
    folder = tuned_board(world)
    config = json.loads((folder / "identity" / "config.json").read_text())
    assert {k: config["broker"][k] for k in ("keepalive", "retry", "backoff", "limit", "max_size")} \
        == {"keepalive": 30, "retry": 2.5, "backoff": [0.2, 1.0], "limit": 3, "max_size": 4096}
    # no float reaches the board's clock: start to the millisecond, speed an int
    start = config["clock"]["start"]
    num, den = (start, 1) if type(start) is int else start
    assert type(num) is int and type(den) is int and 0 < den <= 1000
    assert abs(num / den - world.clock.start) <= 0.001 and config["clock"]["speed"] == SPEED

    async def scenario():
        device = app_module.App(str(folder) + "/", machine=Machine(None))
        assert abs(device.clock() - world.clock()) <= SPEED  # within one real second
        client = device.link
        assert (client.keepalive, client.retry, client.limit, client.max_size) == (30, 2.5, 3, 4096)
        assert (client._backoff.base, client._backoff.cap) == (0.2, 1.0)
        for i in range(3):  # not connected yet: in flight until the broker is there
            await client.publish(device.uplink, b"%d" % i)
        with pytest.raises(sys.modules[type(client).__module__].QueueFull):
            await client.publish(device.uplink, b"one too many")
        await client.connect()
        await until(lambda: client.unacked == 0)
        await client.close()
    asyncio.run(scenario())
    assert "as %s (p2, c0, k30)" % topics.kid_hex(world.kid) in world.broker.log()


async def until(condition, timeout=15.0):
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


@pytest.mark.parametrize("key, value, why", [
    ("keepalive", 0, "not a whole number from 1 to 65535"),
    ("keepalive", 30.5, "not a whole number from 1 to 65535"),
    ("keepalive", True, "not a whole number from 1 to 65535"),
    ("retry", "10", "not a number from 0.1 to 3600"),
    ("backoff", [5, 1], "not [first, most] from 0.1 to 86400"),
    ("backoff", 5, "not [first, most] from 0.1 to 86400"),
    ("backoff", [1, "x"], "not [first, most] from 0.1 to 86400"),
    ("limit", 0, "not a whole number from 1 to 256"),
    ("max_size", 10 ** 9, "not a whole number from 64 to 65536"),
])
def test_a_bad_broker_setting_is_refused_with_what_to_do(world, app_module, key, value, why):
    folder = world.build_board(tls=False)
    path = folder / "identity" / "config.json"
    config = json.loads(path.read_text())
    config["broker"][key] = value
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError) as error:
        app_module.App(str(folder) + "/", machine=Machine(None))
    assert str(error.value) == "%s/identity/config.json: broker %s is %r, %s: set it in " \
        "device.toml's [broker] and build again" % (folder, key, value, why)


def test_a_float_in_the_clock_is_refused_with_what_to_do(world, app_module):
    folder = world.build_board(tls=False)
    path = folder / "identity" / "config.json"
    config = json.loads(path.read_text())
    config["clock"]["speed"] = 2000.0  # as builds wrote it before: 128 s steps on a board
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"clock speed is 2000.0: a whole number or \[numerator, "
                                         r"denominator\] \(build it again with `thingsdk firmware"):
        app_module.App(str(folder) + "/", machine=Machine(None))


def test_a_message_the_board_has_no_heap_for_comes_again_and_the_order_completes(world,
                                                                                  app_module):
    """A MemoryError while taking in a downlink: the board says so and asks `machine.reset()`
    (here a stand-in that only records the call), the message is left unacknowledged, the link
    drops, and the broker sends it again on the persistent session: nothing is lost."""
    folder = world.build_board()
    world.start_vendor()
    tank = Tank(world)
    resets = []
    machine = Machine(tank)
    machine.reset = lambda: resets.append(True)

    async def scenario():
        device = app_module.App(str(folder) + "/", machine=machine)
        receive, calls = device.agent.receive, []

        def short_of_heap(data, now):
            calls.append(data)
            if len(calls) == 2:  # the second downlink: the vendor's receipt
                raise MemoryError("memory allocation failed, allocating 768 bytes")
            return receive(data, now)

        device.agent.receive = short_of_heap
        await run_until_closed(device, folder)
        return device, calls

    device, calls = asyncio.run(scenario())
    need = board_records(folder)[0]
    assert need["state"] == lifecycle.CLOSED and need["reason"] == "refilled"
    assert resets == [True] and device.errors == 1
    assert calls[2] == calls[1]  # the very message, sent again by the broker
    assert device.link.reconnects >= 1
    assert [o["status"] for o in world.orders()] == ["delivered"]
    assert device.agent.refusals == {}


class Beans:
    """A board program's own sensor (README: examples/board_main.py)."""

    kind = "level"

    def read(self, now):
        return 420


def test_a_custom_sensor_comes_from_the_program_and_is_named_when_missing(world, app_module):
    folder = world.build_board()
    path = folder / "identity" / "config.json"
    config = json.loads(path.read_text())
    config["consumables"][0]["sensor"] = {"type": "custom"}
    path.write_text(json.dumps(config))
    slot = config["consumables"][0]["slot"]
    with pytest.raises(ValueError, match="consumable %s: its sensor is custom: pass it, "
                                         r"app.boot\(sources=\{slot: source\}\)" % slot):
        app_module.App(str(folder) + "/", machine=Machine(None))
    source = Beans()
    device = app_module.App(str(folder) + "/", machine=Machine(None), sources={slot: source})
    assert device.agent.slots[slot].source is source


class Ntp:
    """MicroPython's ntptime as the board has it, setting the board's clock `offset` right."""

    host = "pool.ntp.org"

    def __init__(self, clock, error=None):
        self.clock, self.error = clock, error

    def settime(self):
        if self.error:
            raise self.error
        self.clock.offset = 0


class BoardClock:
    def __init__(self, offset):
        self.offset = offset

    def __call__(self):
        return 1767225600 + self.offset


class Wlan:
    def __init__(self):
        self.up = False

    def isconnected(self):
        return self.up


@pytest.mark.parametrize("error, said", [
    (None, "thingsdk: clock set from NTP (pool.ntp.org): it was off by 3600 s"),
    (OSError(110), "thingsdk: clock not set from NTP (pool.ntp.org): OSError(110)"),
])
def test_the_board_sets_its_clock_from_ntp_each_time_its_wifi_is_joined(app_module, monkeypatch,
                                                                        capsys, error, said):
    clock = BoardClock(-3600)  # an hour behind, as a board that lost its time
    monkeypatch.setitem(sys.modules, "ntptime", Ntp(clock, error))
    wlan = Wlan()
    monkeypatch.setitem(sys.modules, "network", type("network", (), {
        "STA_IF": 0, "WLAN": staticmethod(lambda interface: wlan)}))
    wifi = app_module.Wifi({"ssid": "home", "key": "k"},
                           on_join=lambda: app_module.set_clock(clock))
    assert not wifi.isconnected() and capsys.readouterr().out == ""
    wlan.up = True
    assert wifi.isconnected()
    assert capsys.readouterr().out.splitlines() == ["thingsdk: WiFi home joined", said]
    assert wifi.isconnected() and capsys.readouterr().out == ""  # said once a join
    assert clock.offset == (0 if error is None else -3600)


def test_a_port_without_ntp_says_its_clock_stays(app_module, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ntptime", None)  # import ntptime: ImportError
    app_module.set_clock(BoardClock(0))
    assert capsys.readouterr().out == "thingsdk: clock: this port has no ntptime; it stays as it is\n"
