"""The virtual board (hil/virtual/board.mjs): MicroPython's WebAssembly port behind a raw REPL on
TCP, driven with raw bytes through pyserial as a rig drives a real board, and its control channel."""

import ast
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import serial

from broker import HOST, wait_for

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = ROOT / "hil" / "virtual" / "board.mjs"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
TIMEOUT = 20.0


class Board:
    """One bridge process, its serial port (socket://) and its control channel."""

    def __init__(self, flash):
        self.flash = flash
        self.process = subprocess.Popen(["node", str(BRIDGE), "--port", "0", "--flash", str(flash)],
                                        stdout=subprocess.PIPE, cwd=ROOT)
        ports = json.loads(self.process.stdout.readline())
        self.serial = serial.serial_for_url("socket://%s:%d" % (HOST, ports["repl"]), timeout=0.05)
        self._control = socket.create_connection((HOST, ports["control"]), timeout=TIMEOUT).makefile("rw")
        self.seen = b""

    def close(self):
        self.serial.close()
        self._control.close()
        self.process.terminate()
        self.process.wait(timeout=TIMEOUT)
        self.process.stdout.close()

    def read_until(self, marker, timeout=TIMEOUT):
        """Everything up to and including marker; what follows stays for the next read."""
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            assert time.monotonic() < deadline, "no %r after %r" % (marker, self.seen[-400:])
            self.seen += self.serial.read(max(1, self.serial.in_waiting))
        end = self.seen.index(marker) + len(marker)
        data, self.seen = self.seen[:end], self.seen[end:]
        return data

    def raw(self):
        """Interrupt, then enter the raw REPL (FIELD-NOTES step 1)."""
        self.serial.write(b"\r\x03\r\x01")
        self.read_until(RAW_BANNER)

    def exec(self, code):
        """(stdout, traceback) of code run in the raw REPL."""
        self.serial.write(code.encode() + b"\x04")
        self.read_until(b"OK")
        out = self.read_until(b"\x04")[:-1]
        err = self.read_until(b"\x04")[:-1]
        self.read_until(b">")
        return out, err

    def run(self, code):
        out, err = self.exec(code)
        assert err == b"", err.decode()
        return out.decode()

    def value(self, expr):
        return ast.literal_eval(self.run("print(repr((%s)))" % expr))

    def control(self, **request):
        self._control.write(json.dumps(request) + "\n")
        self._control.flush()
        return json.loads(self._control.readline())


@pytest.fixture
def flash(tmp_path):
    folder = tmp_path / "flash"
    folder.mkdir()
    return folder


@pytest.fixture
def board(flash):
    b = Board(flash)
    yield b
    b.close()


def test_raw_repl_runs_code_and_reports_tracebacks(board):
    board.raw()
    assert board.run("print(1+1)") == "2\r\n"
    assert board.run("print('a')\nprint('b')") == "a\r\nb\r\n"  # line ends as a board's UART sends
    out, err = board.exec("print('before')\n1/0")
    assert out == b"before\r\n"
    assert err.startswith(b"Traceback (most recent call last):\r\n")
    assert err.endswith(b"ZeroDivisionError: divide by zero\r\n")
    board.serial.write(b"\r\x02")  # back to the friendly REPL
    board.read_until(b">>> ")


def test_raw_paste_is_declined_so_hosts_fall_back(board):
    board.raw()
    board.serial.write(b"\x05A\x01")
    assert board.read_until(b"R\x00") == b"R\x00"
    assert board.run("print(6*7)") == "42\r\n"


def test_soft_reset_keeps_files_loses_ram_and_skips_main_in_raw_mode(board, flash):
    (flash / "boot.py").write_text("print('boot ran')\n")
    (flash / "main.py").write_text("print('main ran')\n")
    board.raw()
    board.run("with open('kept.txt', 'w') as f:\n    f.write('yes')\nx = 1")
    assert (flash / "kept.txt").read_text() == "yes"  # written through to the flash folder
    board.serial.write(b"\x04")
    board.read_until(b"soft reboot\r\n")
    after = board.read_until(RAW_BANNER)
    assert b"boot ran" in after and b"main ran" not in after
    assert board.run("print(open('kept.txt').read())") == "yes\r\n"
    assert b"NameError" in board.exec("print(x)")[1]
    assert board.value("__import__('machine').reset_cause() == __import__('machine').SOFT_RESET")
    board.serial.write(b"\r\x02\x04")  # in the friendly REPL a soft reset runs main.py too
    board.read_until(b"soft reboot\r\n")
    assert b"main ran" in board.read_until(b">>> ")


def test_hard_reset_cuts_power_even_in_a_busy_loop(board, flash):
    (flash / "main.py").write_text("print('main ran')\n")
    board.raw()
    board.run("import os\nos.mkdir('data')\nwith open('data/n', 'w') as f:\n    f.write('7')\nx = 1")
    board.serial.write(b"while True:\n    pass\x04")  # wedged: only a power cut helps
    board.read_until(b"OK")
    assert board.control(op="hard_reset") == {"ok": True}
    board.read_until(b"main ran\r\n")
    board.read_until(b">>> ")
    board.raw()
    assert board.run("print(open('data/n').read())") == "7\r\n"
    assert b"NameError" in board.exec("print(x)")[1]
    board.run("import os\nos.rename('data/n', 'data/m')\nos.remove('main.py')")
    assert sorted(p.name for p in flash.rglob("*")) == ["data", "m"]
    board.serial.write(b"import machine\nmachine.reset()\x04")  # the firmware's own hard reset
    board.read_until(b">>> ")
    board.raw()
    assert board.value("__import__('os').listdir('data')") == ["m"]


def test_adc_pins_and_outputs_follow_the_control_channel(board):
    board.raw()
    assert board.control(op="adc", pin=26, value=40000) == {"ok": True}
    assert board.value("__import__('machine').ADC(26).read_u16()") == 40000
    board.run("from machine import Pin, ADC\nbutton = Pin(4, Pin.IN, Pin.PULL_UP)\nled = Pin(2, Pin.OUT)")
    assert board.value("button.value()") == 1  # nothing drives it: the pull-up wins
    board.control(op="pin", pin=4, value=0)
    assert board.value("button.value(), ADC(Pin(26)).read_u16()") == (0, 40000)
    board.run("led.on()")
    state = board.control(op="state")
    assert state["ok"] and state["outputs"] == {"2": 1} and state["adc"] == {"26": 40000}
    assert board.control(op="warp") == {"ok": False, "error": "unknown op: warp"}
    assert board.control(op="adc", pin=26, value=70000)["ok"] is False  # out of 16 bits: refused
    assert board.value("ADC(26).read_u16()") == 40000


def test_pulses_and_edges_reach_irq_handlers(board):
    board.raw()
    board.run("from machine import Pin\nseen = [0, 0]\n"
              "def rising(p):\n    seen[0] += 1\n"
              "def falling(p):\n    seen[1] += p.value() == 0\n"
              "Pin(14, Pin.IN).irq(handler=rising, trigger=Pin.IRQ_RISING)\n"
              "Pin(15, Pin.IN).irq(handler=falling, trigger=Pin.IRQ_FALLING)")
    assert board.control(op="pulses", pin=14, count=25) == {"ok": True}
    board.control(op="pin", pin=15, value=1)
    board.control(op="pin", pin=15, value=0)
    assert board.value("seen") == [25, 1]


HX711_READ = """
from machine import Pin
dout, sck = Pin(5, Pin.IN), Pin(6, Pin.OUT, value=0)
def read():
    for _ in range(1000):
        if not dout.value():
            break
    v = 0
    for _ in range(24):
        sck.on()
        sck.off()
        v = v << 1 | dout.value()
    sck.on()  # 25th pulse: channel A, gain 128
    sck.off()
    return v - (1 << 24) if v & 0x800000 else v
"""


def test_hx711_shifts_out_the_weight_the_rig_set(board):
    board.raw()
    board.control(op="hx711", dout=5, sck=6, value=-123456)
    board.run(HX711_READ)
    assert board.value("read(), read()") == (-123456, -123456)
    board.control(op="hx711", dout=5, sck=6, value=8388607)
    assert board.value("read()") == 8388607


def test_clock_skew_moves_the_board_clock(board):
    board.raw()
    assert board.control(op="clock", offset=-7200) == {"ok": True}
    board.run("import time")
    assert abs(board.value("time.time()") - (time.time() - 7200)) < 120
    for calendar in ("time.localtime", "time.gmtime"):  # the calendar follows the clock
        assert board.value("abs(time.mktime(%s()) - time.time()) < 5" % calendar)
    board.run("import machine\nmachine.RTC().datetime((2031, 5, 6, 1, 7, 8, 9, 0))")
    assert board.value("__import__('time').localtime()[:4]") == (2031, 5, 6, 7)
    board.serial.write(b"\x04")  # the clock outlives a soft reset
    board.read_until(RAW_BANNER)
    assert board.value("__import__('time').localtime()[0]") == 2031


def test_background_tasks_run_while_the_repl_waits(board):
    board.raw()
    board.run("import asyncio\n"
              "async def tick():\n    for n in range(1, 4):\n        await asyncio.sleep_ms(50)\n"
              "        print('tick', n)\n"
              "asyncio.create_task(tick())")
    assert board.read_until(b"tick 3\r\n").endswith(b"tick 1\r\ntick 2\r\ntick 3\r\n")


TCP_SCRIPT = """
import asyncio
log = []
async def go(port):
    try:
        await asyncio.open_connection('127.0.0.1', %d)
    except OSError as exc:
        log.append('refused')
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    writer.write(b'ping')
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(5), 0.05)
    except asyncio.TimeoutError:
        log.append('timeout')
    log.append(await reader.read(5))
    try:
        await reader.readexactly(100)
    except EOFError:
        log.append('eof')
    log.append(await reader.read(5))
    writer.close()
    await writer.wait_closed()
"""


def test_asyncio_streams_run_on_host_sockets(board):
    with socket.create_server((HOST, 0)) as server, socket.create_server((HOST, 0)) as closed:
        closed_port = closed.getsockname()[1]
        closed.close()  # nothing listens there: refused
        board.raw()
        board.run(TCP_SCRIPT % closed_port)
        board.run("asyncio.create_task(go(%d))" % server.getsockname()[1])
        server.settimeout(TIMEOUT)
        conn, _ = server.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            assert conn.recv(4) == b"ping"
            assert wait_for(lambda: board.value("log") == ["refused", "timeout"], TIMEOUT)
            conn.sendall(b"hello world")  # arrives after a read was cancelled: nothing is lost
        assert wait_for(lambda: len(board.value("log")) == 5, TIMEOUT)
        assert board.value("log") == ["refused", "timeout", b"hello", "eof", b""]


def firmware_on(flash):
    lib = flash / "lib"
    shutil.copytree(ROOT / "thingsdk" / "core", lib / "thingsdk" / "core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "thingsdk" / "__init__.py", lib / "thingsdk")
    for module in (ROOT / "firmware" / "lib").glob("*.py"):
        shutil.copy(module, lib)


def test_firmware_mqtt_client_publishes_through_the_fake_network(flash, broker):
    firmware_on(flash)
    inbox = []
    subscriber = paho.Client(paho.CallbackAPIVersion.VERSION2)
    subscriber.on_message = lambda client, userdata, msg: inbox.append((msg.topic, msg.payload))
    subscriber.connect(HOST, broker.port)
    subscriber.subscribe("vboard/#", qos=1)
    subscriber.loop_start()
    board = Board(flash)
    try:
        board.raw()
        board.run("import asyncio, mqtt, network\n"
                  "wlan = network.WLAN(network.STA_IF)\nwlan.active(True)\nwlan.connect('ssid', 'key')\n"
                  "client = mqtt.Client('%s', %d, 'vboard-1', presence='vboard/presence', backoff=0.2,"
                  " backoff_cap=1)\n"
                  "async def go():\n    await client.connect()\n"
                  "    await client.publish('vboard/hello', b'from the board')\n"
                  "asyncio.create_task(go())" % (HOST, broker.port))
        assert wait_for(lambda: ("vboard/hello", b"from the board") in inbox, TIMEOUT)
        assert wait_for(lambda: board.value("client.sent") == 2, TIMEOUT)  # presence + hello acked
        assert board.value("wlan.isconnected()")

        assert board.control(op="net", up=False) == {"ok": True}  # the link drops: the will fires
        assert wait_for(lambda: ("vboard/presence", b"offline") in inbox, TIMEOUT)
        assert wait_for(lambda: board.value("wlan.isconnected(), client.connected") == (False, False),
                        TIMEOUT)
        assert wait_for(lambda: "EHOSTUNREACH" in board.value("repr(client.last_error)"), TIMEOUT)
        board.control(op="net", up=True)
        assert wait_for(lambda: board.value("client.connected, client.reconnects") == (True, 1), TIMEOUT)
        assert wait_for(lambda: inbox.count(("vboard/presence", b"online")) == 2, TIMEOUT)
    finally:
        board.close()
        subscriber.loop_stop()
        subscriber.disconnect()
