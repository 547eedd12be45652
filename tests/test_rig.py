"""The rig against the virtual board (hil/virtual/board.mjs): the raw-REPL driver runs code,
reports the board's tracebacks, moves files exactly, survives soft and hard resets as a board
does, sees what the board prints on its own; `thingsdk firmware deploy` copies a build and then
only what changed; the pytest plugin names a failing test's board log in the terminal and in
JUnit XML.
"""

import hashlib
import json
import os
import select
import shlex
import shutil
import socket
import struct
import sys
import threading
import xml.etree.ElementTree as ET

import pytest

from thingsdk.cli import main
from thingsdk.rig.plugin import Rig, RigError, VirtualBoard
from thingsdk.rig.repl import Board, BoardError

pytest_plugins = ["pytester"]


def test_exec_returns_stdout_and_raises_the_boards_traceback(board):
    assert board.exec("for i in range(3):\n    print('line', i)") == "line 0\nline 1\nline 2\n"
    with pytest.raises(BoardError) as raised:
        board.exec("print('before')\nraise ValueError('boom')")
    assert str(raised.value) == "ValueError: boom"
    assert raised.value.traceback.startswith("Traceback (most recent call last):\n")
    out, err = board.exec_raw("print('before')\n1/0")
    assert out == "before\n" and err.endswith("ZeroDivisionError: divide by zero\n")
    assert board.exec("print(40 + 2)") == "42\n"  # the REPL is fine after an error


def test_code_that_overruns_its_timeout_is_interrupted(board):
    with pytest.raises(BoardError, match="code still running after 0.5 s"):
        board.exec("import time\ntime.sleep(2)", timeout=0.5)
    assert board.exec("print('back')") == "back\n"


def test_raw_paste_follows_the_boards_flow_control():
    """A board that offers raw-paste (the virtual one does not) gets the code in windows of the
    size it asked for, one more only after each \\x01 it sends."""
    server, received, overrun = socket.create_server(("127.0.0.1", 0)), [], []

    def fake_board():
        conn, _ = server.accept()
        with conn:
            while conn.recv(1) != b"\x01":  # Ctrl-A
                pass
            conn.sendall(b"\r\nraw REPL; CTRL-B to exit\r\n>")
            assert conn.recv(3) == b"\x05A\x01"
            conn.sendall(b"R\x01" + struct.pack("<H", 32))
            code = b""
            while (byte := conn.recv(1)) != b"\x04":
                code += byte
                if len(code) % 32 == 0:  # a window is full: nothing more may come until \x01
                    overrun.extend(select.select([conn], [], [], 0.1)[0])
                    conn.sendall(b"\x01")
            received.append(code)
            conn.sendall(b"\x04ran\r\n\x04\x04>")
            conn.recv(16)

    thread = threading.Thread(target=fake_board, daemon=True)
    thread.start()
    code = "print('ran')  # " + "x" * 100
    with server, Board("socket://127.0.0.1:%d" % server.getsockname()[1]) as board:
        assert board.exec(code) == "ran\n"
    thread.join(10)
    assert received == [code.encode()] and not overrun


def test_eval_round_trips_literals(board):
    board.exec("d = {'n': 7, 'list': [1, -2.5, None], 'b': b'\\x00\\xff', 's': 'caf\\u00e9'}")
    assert board.eval("d") == {"n": 7, "list": [1, -2.5, None], "b": b"\x00\xff", "s": "café"}
    assert board.eval("2 ** 70") == 2 ** 70


def test_put_and_get_move_a_binary_file_exactly(board, tmp_path):
    data = os.urandom(20 * 1024)
    (tmp_path / "blob.bin").write_bytes(data)
    board.put(tmp_path / "blob.bin", "/data/deep/blob.bin")  # parents are created
    assert board.get("/data/deep/blob.bin") == data
    assert board.ls("/data/deep") == {"blob.bin": len(data)}  # no temporary file left behind
    assert board.ls("/")["data"] is None
    board.put(b"replaced", "/data/deep/blob.bin")
    assert board.get("/data/deep/blob.bin") == b"replaced"
    board.mkdir("/data/empty")
    assert board.ls("/data") == {"deep": None, "empty": None}
    board.rm("/data/deep/blob.bin")
    assert board.ls("/data/deep") == {}
    board.rm("/data")
    assert "data" not in board.ls("/")


def test_soft_reset_keeps_files_and_clears_ram(board):
    board.put(b"kept", "/note.txt")
    board.exec("x = 41")
    board.soft_reset()
    assert board.get("/note.txt") == b"kept"
    with pytest.raises(BoardError, match="NameError"):
        board.exec("print(x)")
    assert board.exec("print('still in raw mode')") == "still in raw mode\n"


@pytest.mark.parametrize("hook", [True, False], ids=["power hook", "machine.reset"])
def test_hard_reset_keeps_files_and_loses_ram(board, hook):
    cuts, power = [], board.power
    board.power = (lambda: (cuts.append(1), power())) if hook else None
    board.put(b"kept", "/note.txt")
    board.put(b"print('main.py says hello')\n", "/main.py")
    board.exec("x = 41")
    board.hard_reset()
    assert cuts == ([1] if hook else [])
    board.expect(r"main.py says hello\r?\n", timeout=30)  # the board booted and ran main.py
    assert board.get("/note.txt") == b"kept"
    with pytest.raises(BoardError, match="NameError"):
        board.exec("print(x)")


def test_expect_sees_a_background_task(board):
    board.exec("import asyncio\n"
               "async def ticker():\n"
               "    for n in range(5):\n"
               "        await asyncio.sleep_ms(20)\n"
               "        print('tick', n)\n"
               "task = asyncio.create_task(ticker())")
    assert board.expect(r"tick (\d)", timeout=30).group(1) == "0"
    assert board.expect(r"tick (\d)\r?\n", timeout=30).group(1) == "1"  # consumed as it matched
    assert board.expect(r"tick 4", timeout=30)
    with pytest.raises(BoardError, match="timed out"):
        board.expect(r"tick 5", timeout=0.5)


def test_free_reports_flash_and_ram(board):
    before = board.free()
    assert 0 < before["flash_free"] <= before["flash_total"]
    assert before["ram_free"] > 0 and before["ram_alloc"] > 0
    board.exec("keep = bytearray(200000)")
    assert board.free()["ram_alloc"] >= before["ram_alloc"] + 200000


@pytest.fixture
def build(tmp_path, capsys):
    """A folder made by `thingsdk firmware build` for an ESP32."""
    for name in ("owner", "vendor", "fridge"):
        assert main(["keygen", "--out", str(tmp_path), "--name", name]) == 0
    assert main(["provision", "--out", str(tmp_path / "bundle"),
                 "--vendor-pub", str(tmp_path / "vendor.pub"),
                 "--owner-key", str(tmp_path / "owner.key"),
                 "--device-key", str(tmp_path / "fridge.key"),
                 "--broker", "mqtt://127.0.0.1:1883",
                 "--consumable", "slot=water-filter,sku=WF-300,unit=ml,capacity=300000,"
                                 "sensor=adc,pin=34,empty=2000,full=60000"]) == 0
    assert main(["firmware", "build", "--board", "esp32", "--identity",
                 str(tmp_path / "bundle"), "--out", str(tmp_path / "build"), "--force"]) == 0
    capsys.readouterr()
    return tmp_path / "build"


def deploy(url, folder):
    return main(["firmware", "deploy", "--port", url, "--dir", str(folder)])


def test_deploy_copies_a_build_then_only_what_changed(board, build, capsys):
    files = {"/" + p.relative_to(build).as_posix(): p.read_bytes()
             for p in build.rglob("*") if p.is_file()}
    assert "/lib/thingsdk/core/cbor.mpy" in files and "/identity/config.json" in files
    board.close()  # the board has one port: deploy takes it

    assert deploy(board.url, build) == 0
    out = capsys.readouterr().out
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("copied ")) \
        == sorted(files)
    assert "files        %d copied, 0 already on the board" % len(files) in out
    assert "flash        " in out and "ram          " in out

    (build / "identity" / "config.json").write_bytes(b'{"changed": true}\n')
    assert deploy(board.url, build) == 0
    out = capsys.readouterr().out
    assert "copied       /identity/config.json (18 B)" in out
    assert "files        1 copied, %d already on the board" % (len(files) - 1) in out
    assert deploy(board.url, build) == 0
    assert "files        0 copied, %d already" % len(files) in capsys.readouterr().out

    files["/identity/config.json"] = b'{"changed": true}\n'
    with Board(board.url) as check:
        for path, data in files.items():
            assert hashlib.sha256(check.get(path)).digest() == hashlib.sha256(data).digest()


def test_deploy_errors_are_one_line(board, build, tmp_path, capsys):
    assert deploy("socket://127.0.0.1:1", build) == 2
    err = capsys.readouterr().err
    assert err.startswith("thingsdk firmware: error: cannot open socket://127.0.0.1:1") \
        and err.count("\n") == 1
    assert deploy(board.url, tmp_path) == 2
    assert "is not a folder made by `thingsdk firmware build`" in capsys.readouterr().err

    board.put(b"in the way", "/identity")  # a file where the build needs a folder
    board.close()
    assert deploy(board.url, build) == 2
    err = capsys.readouterr().err
    assert err.startswith("thingsdk firmware: error: copying /identity/") and err.count("\n") == 1


def test_rig_drives_the_virtual_world(board, rig):
    rig.set_adc(26, 40000)
    assert board.eval("__import__('machine').ADC(26).read_u16()") == 40000
    board.exec("import machine\n"
               "seen = []\n"
               "machine.Pin(14, machine.Pin.IN).irq(lambda p: seen.append(1), "
               "trigger=machine.Pin.IRQ_RISING)")
    rig.pulses(14, 25)
    assert board.eval("len(seen)") == 25
    before = board.eval("__import__('time').time()")
    rig.skew_clock(-7200)
    assert -7200 - 5 <= board.eval("__import__('time').time()") - before <= -7200 + 60


def test_rig_weighs_and_cuts_the_network(board, rig):
    rig.hx711(dout=5, sck=6, value=-123456)
    board.exec("import machine\n"
               "dout, sck = machine.Pin(5, machine.Pin.IN), machine.Pin(6, machine.Pin.OUT)\n"
               "raw = 0\n"
               "for _ in range(24):\n"
               "    sck.on()\n"
               "    raw = raw << 1 | dout.value()\n"
               "    sck.off()\n"
               "sck.on()\n"
               "sck.off()  # the 25th pulse: channel A, gain 128")
    assert board.eval("raw - (1 << 24 if raw & 0x800000 else 0)") == -123456
    board.exec("import network\nwlan = network.WLAN(network.STA_IF)\nwlan.active(True)\n"
               "wlan.connect('bench', 'secret')")
    assert board.eval("wlan.isconnected()") is True
    rig.network(False)
    assert board.eval("wlan.isconnected()") is False
    rig.network(True)
    assert board.eval("wlan.isconnected()") is True


def test_a_real_boards_rig_says_what_to_wire():
    rig = Rig(board=None)
    for stimulus, args in (("pulses", (14, 3)), ("hx711", (5, 6, 1)), ("network", (False,))):
        with pytest.raises(RigError, match="^%s is not available on a real board: wire the "
                                           "stimulus \\(see hil/README.md\\)$" % stimulus):
            getattr(rig, stimulus)(*args)


def test_a_failing_board_test_names_its_log(pytester, tmp_path):
    pytester.makepyfile(test_on_board="""
        def test_passes(board):
            assert board.exec("print(6 * 7)") == "42\\n"

        def test_fails(board):
            assert board.eval("6 * 7") == 43
    """)
    logs, junit = tmp_path / "logs", tmp_path / "junit.xml"
    result = pytester.runpytest("--board-log-dir", str(logs), "--junitxml", str(junit))
    result.assert_outcomes(passed=1, failed=1)
    failing = logs / "test_on_board.py_test_fails.log"
    assert "print(repr(6 * 7))" in failing.read_text()  # what was sent, as sent
    result.stdout.fnmatch_lines(["*- board log -*", str(failing)])
    cases = {case.get("name"): case for case in ET.parse(junit).iter("testcase")}
    properties = {case: [(p.get("name"), p.get("value")) for p in cases[case].iter("property")]
                  for case in cases}
    assert properties == {"test_passes": [], "test_fails": [("board_log", str(failing))]}


def test_a_board_on_a_url_with_a_power_command(pytester, tmp_path):
    """`--board URL` (here a virtual board's socket, as a networked board's) and `--board-power
    CMD`: the fixture connects to that board, hard resets run the command, and the rig asks for
    wiring."""
    with open(tmp_path / "bridge.log", "w") as stderr:
        virtual = VirtualBoard(shutil.which("node"), tmp_path / "flash", stderr)
    try:
        cut = ("import socket; s = socket.create_connection(('127.0.0.1', %d)); "
               "s.sendall(b'%s\\n'); s.recv(100)"
               % (virtual.ports["control"], json.dumps({"op": "hard_reset"})))
        pytester.makepyfile(test_real="""
            import pytest
            from thingsdk.rig.plugin import RigError
            from thingsdk.rig.repl import BoardError

            def test_power_command(board, rig):
                board.exec("x = 1")
                board.hard_reset()
                with pytest.raises(BoardError, match="NameError"):
                    board.exec("print(x)")
                with pytest.raises(RigError, match="not available on a real board"):
                    rig.pulses(14, 1)
                # The firmware's test hook stands in for the ADC; the RTC is the clock.
                rig.set_adc(26, 1)
                rig.set_adc(27, 2)
                assert rig.hook() == {"adc": {"26": 1, "27": 2}}
                import time
                rig.skew_clock(7200)
                assert abs(board.eval("__import__('time').time()") - time.time() - 7200) < 30
        """)
        result = pytester.runpytest("--board", virtual.url, "--board-power",
                                    "%s -c %s" % (shlex.quote(sys.executable), shlex.quote(cut)))
        result.assert_outcomes(passed=1)
    finally:
        virtual.close()
