"""The firmware application (firmware/lib/app.py) run on CPython from the folder `thingsdk firmware
build` made: with a stand-in `machine` whose ADC the test lowers, it buys through a real mosquitto
(mutual TLS, the thingsdk ACL) from the reference vendor; every uplink verifies on the host with the
device's public key, and the board's flash state shows the vendor's replies were accepted.

The same application on MicroPython itself is tests/test_firmware_wasm.py.
"""

import asyncio
import sys

import pytest
from world import ADC_PIN, SLOT, TIMEOUT, Tank, Tap

from thingsdk import codec, topics
from thingsdk.core import envelope, lifecycle
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Verifier


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
        task = asyncio.create_task(device.run())
        for _ in range(int(TIMEOUT / 0.05)):
            records = board_records(folder)
            if records and records[0]["state"] == lifecycle.CLOSED:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await device.link.close()
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
