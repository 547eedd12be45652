"""The HIL suite's fixtures: the rig's mosquitto and world (tests/fixtures.py, tests/world.py), and
the device under test (hil/dut.py) on the `board` that thingsdk.rig's plugin gives (--board)."""

import pytest
from dut import Dut
from fixtures import broker, persistent_broker, pki  # noqa: F401 (fixtures)
from world import World


def pytest_addoption(parser):
    group = parser.getgroup("thingsdk-hil", "thingsdk's hardware-in-the-loop scenarios (hil/)")
    group.addoption("--board-kind", default="pico_w", choices=("esp32", "pico_w"),
                    help="the board's profile, for its build and wiring (default pico_w; the "
                         "virtual board plays either)")
    group.addoption("--board-slice", type=float, default=1.0, metavar="SECONDS",
                    help="how long the device runs between the rig's looks (default 1.0; a real "
                         "board signs 20-100 times slower than the virtual one: give it more)")
    group.addoption("--board-wifi", metavar="SSID:KEY",
                    help="the WiFi a real board joins to reach the rig's broker")


@pytest.fixture
def make_world(tmp_path):
    """World(broker, rules=...): keys, a mandate with those rules and the reference vendor."""
    worlds = []

    def make(mosquitto, rules=()):
        folder = tmp_path / ("world%d" % len(worlds))
        folder.mkdir()
        worlds.append(World(folder, mosquitto, rules=rules))
        return worlds[-1]

    yield make
    for w in worlds:
        w.close()


@pytest.fixture
def make_dut(board, rig, request):
    """Dut(world): the world's device on the board under test, deployed and held at boot."""
    opts = request.config.option
    wifi = None
    if opts.board_wifi:
        ssid, _, key = opts.board_wifi.partition(":")
        wifi = {"ssid": ssid, "key": key}
    duts = []

    def make(world, hook=None):
        dut = Dut(board, rig, world, opts.board_kind, opts.board_slice, wifi)
        duts.append(dut)
        dut.deploy(hook)
        return dut

    yield make
    for dut in duts:
        dut.close()
