"""pytest plugin (entry point `pytest11`): a MicroPython board for hardware-in-the-loop tests.

`--board URL` drives a real board (a serial port or any pyserial URL), `--board virtual` (the
default) a virtual board, `hil/virtual/board.mjs` from a source checkout: one fresh bridge per
test, with its own empty flash, so no test sees another's files, pins, clock or network.
`--board-power CMD` is a shell command that power-cycles a real board; `--board-log-dir DIR`
keeps one log per test of every byte to and from the board (the path is reported on failure).

Fixtures: `board` (a `Board` in the raw REPL) and `rig` (the world around the board: ADC, pulses,
HX711, clock, network). On a real board the stimuli raise `RigError` until wired: override the
`rig` fixture in a conftest.py with a `Rig` subclass that drives the real wiring.
"""

import json
import re
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

import thingsdk
from thingsdk.rig.repl import Board, BoardError

BRIDGE = Path(thingsdk.__file__).resolve().parent.parent / "hil" / "virtual" / "board.mjs"
LOG = pytest.StashKey[Path]()
START_TIMEOUT = 60


class RigError(Exception):
    """A stimulus the rig cannot give, or one the virtual board refused."""


class Rig:
    """The world around a real board. ADC readings go through the firmware's test hook (rig.json
    on the board: firmware/lib/app.py), read at each start of the device; the clock is the board's
    RTC. Pulses, an HX711 and the network need wiring on the bench: a subclass that drives it (a
    pulse generator, a network switch) overrides them."""

    def __init__(self, board):
        self.board = board

    def hook(self):
        """rig.json on the board, as data."""
        try:
            return json.loads(self.board.get("/rig.json"))
        except BoardError:
            return {}

    def set_hook(self, hook):
        self.board.put(json.dumps(hook).encode(), "/rig.json")

    def _not_wired(self, what):
        return RigError("%s is not available on a real board: wire the stimulus (see "
                        "hil/README.md)" % what)

    def set_adc(self, pin, value):
        """Make the ADC on `pin` read `value` (0..65535, as `read_u16()` gives)."""
        hook = self.hook()
        hook.setdefault("adc", {})[str(pin)] = value
        self.set_hook(hook)

    def pulses(self, pin, n):
        """Give `n` rising edges on `pin`."""
        raise self._not_wired("pulses")

    def hx711(self, dout, sck, value):
        """Make the HX711 on (`dout`, `sck`) read the signed 24-bit `value`."""
        raise self._not_wired("hx711")

    def skew_clock(self, seconds):
        """Move the board's clock by `seconds` from the true time."""
        t = time.gmtime(time.time() + seconds)
        self.board.exec("import machine\nmachine.RTC().datetime((%d, %d, %d, %d, %d, %d, %d, 0))"
                        % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min,
                           t.tm_sec))

    def network(self, up):
        """Bring the board's network up or cut it (open connections drop)."""
        raise self._not_wired("network")


class VirtualBoard:
    """A running `hil/virtual/board.mjs`: its REPL's URL and its control channel."""

    def __init__(self, node, flash, stderr):
        self.process = subprocess.Popen(
            [node, str(BRIDGE), "--port", "0", "--control", "0", "--flash", str(flash)],
            stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
        try:
            ready, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT)
            line = self.process.stdout.readline() if ready else b""
            if not line:
                raise RigError("the virtual board did not start (exit code %s)"
                               % self.process.poll())
            self.ports = json.loads(line)  # {"repl": port, "control": port}
            self.url = "socket://127.0.0.1:%d" % self.ports["repl"]
            self._control = socket.create_connection(("127.0.0.1", self.ports["control"]),
                                                     timeout=START_TIMEOUT)
            self._replies = self._control.makefile("rb")
        except BaseException:
            self.close()
            raise

    def op(self, **request):
        """Send one control request; returns the reply, RigError if the board refused it."""
        self._control.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(self._replies.readline() or b'{"ok":false,"error":"bridge gone"}')
        if not reply.get("ok"):
            raise RigError("virtual board: %s: %s" % (request.get("op"), reply.get("error")))
        return reply

    def hard_reset(self):
        """Cut the power and turn it back on."""
        self.op(op="hard_reset")

    def close(self):
        if getattr(self, "_control", None) is not None:
            self._replies.close()
            self._control.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


class VirtualRig(Rig):
    """The stimuli, given through the virtual board's control channel."""

    def __init__(self, board, virtual):
        super().__init__(board)
        self.virtual = virtual

    def set_adc(self, pin, value):
        self.virtual.op(op="adc", pin=pin, value=value)

    def pulses(self, pin, n):
        self.virtual.op(op="pulses", pin=pin, count=n)

    def hx711(self, dout, sck, value):
        self.virtual.op(op="hx711", dout=dout, sck=sck, value=value)

    def skew_clock(self, seconds):
        self.virtual.op(op="clock", offset=seconds)

    def network(self, up):
        self.virtual.op(op="net", up=bool(up))


def pytest_addoption(parser):
    group = parser.getgroup("thingsdk-board", "a MicroPython board under test (thingsdk.rig)")
    group.addoption("--board", dest="thingsdk_board", default="virtual", metavar="URL|virtual",
                    help="the board: a serial port or pyserial URL, or `virtual` (default) for "
                         "hil/virtual/board.mjs under Node.js")
    group.addoption("--board-power", dest="thingsdk_board_power", metavar="CMD",
                    help="a shell command that power-cycles the real board (e.g. a relay)")
    group.addoption("--board-log-dir", dest="thingsdk_board_log_dir", metavar="DIR",
                    help="where each test's board log goes (default: under pytest's temp dir)")


@pytest.fixture(scope="session")
def _thingsdk_node():
    """Node.js, or the session's board tests skip with the reason."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("virtual board: Node.js (`node`) is not installed")
    if not BRIDGE.is_file():
        pytest.skip("virtual board: %s is missing (it comes with a source checkout of thingsdk)"
                    % BRIDGE)
    return node


@pytest.fixture
def _thingsdk_board_log(request, tmp_path_factory):
    """This test's board log file; its path is reported if the test fails."""
    folder = request.config.getoption("thingsdk_board_log_dir")
    folder = Path(folder) if folder else tmp_path_factory.getbasetemp() / "board-logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^\w.-]+", "_", request.node.nodeid).strip("_")[-150:] + ".log")
    request.node.stash[LOG] = path
    with open(path, "w", encoding="utf-8") as log:
        yield log


@pytest.fixture
def _thingsdk_virtual(request, _thingsdk_board_log, tmp_path_factory):
    """A fresh virtual board with an empty flash (None when testing a real board)."""
    if request.config.getoption("thingsdk_board") != "virtual":
        yield None
        return
    node = request.getfixturevalue("_thingsdk_node")
    virtual = VirtualBoard(node, tmp_path_factory.mktemp("flash"), _thingsdk_board_log)
    try:
        yield virtual
    finally:
        virtual.close()


@pytest.fixture
def board(request, _thingsdk_virtual, _thingsdk_board_log):
    """The board under test, connected and in its raw REPL."""
    url, power = request.config.getoption("thingsdk_board"), None
    command = request.config.getoption("thingsdk_board_power")
    if _thingsdk_virtual is not None:
        url, power = _thingsdk_virtual.url, _thingsdk_virtual.hard_reset
    elif command:
        def power():
            subprocess.run(command, shell=True, check=True)
    with Board(url, log=_thingsdk_board_log, power=power) as connected:
        connected.enter_raw()
        yield connected


@pytest.fixture
def rig(board, _thingsdk_virtual):
    """The world around the board under test (see `Rig`)."""
    return Rig(board) if _thingsdk_virtual is None else VirtualRig(board, _thingsdk_virtual)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used a board names its log: a report section (terminal) and a
    `board_log` property (JUnit XML)."""
    report = yield
    path = item.stash.get(LOG, None)
    if path is not None and report.failed:
        entry = ("board_log", str(path))
        for properties in (item.user_properties, report.user_properties):
            if entry not in properties:
                properties.append(entry)
        report.sections.append(("board log", str(path)))
    return report
