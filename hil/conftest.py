"""The HIL suite's fixtures: the rig's mosquitto and world (tests/fixtures.py, tests/world.py), and
the device under test (hil/dut.py) on the `board` that thingsdk.rig's plugin gives (--board)."""

import os
import socket

import broker as rig_broker
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


def pytest_configure(config):
    """A real board reaches the rig's broker over the LAN: unless THINGSDK_BROKER_HOST says
    where, the broker listens on the address this computer reaches the network from."""
    if config.getoption("thingsdk_board", "virtual") != "virtual" and \
            not os.environ.get("THINGSDK_BROKER_HOST"):
        rig_broker.HOST = lan_address()


def lan_address():
    """The local address of the route out (a UDP socket is only pointed, nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: any routable address will do
        return s.getsockname()[0]


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
