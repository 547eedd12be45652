"""Fixtures shared by the tests and the hardware-in-the-loop suite (hil/): a real mosquitto on
loopback with a test PKI (tests/broker.py), and the scenarios' world (tests/world.py)."""

import pytest

from broker import Broker, Pki, find_mosquitto


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def _running_broker(folder, pki, persistence):
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed (Debian: apt-get install mosquitto)")
    folder.mkdir()
    broker = Broker(folder, pki, persistence=persistence)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker(tmp_path, pki):
    """mosquitto on free loopback ports (plain and mutual TLS), persistence off."""
    yield from _running_broker(tmp_path / "broker", pki, persistence=False)


@pytest.fixture
def persistent_broker(tmp_path, pki):
    """The same, with persistence on: sessions and queued messages survive broker.restart()."""
    yield from _running_broker(tmp_path / "broker", pki, persistence=True)


@pytest.fixture
def world(tmp_path, broker):
    """Keys, a mandate and the reference vendor on the broker, on one accelerated clock
    (tests/world.py); the vendor is started by the test."""
    from world import World

    w = World(tmp_path, broker)
    try:
        yield w
    finally:
        w.close()
