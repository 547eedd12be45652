"""A whole order on a board's heap, on MicroPython's unix port built as the boards are (32-bit,
single-precision floats; tests/unix_port.py), with the firmware application and its MQTT link
loaded as at boot (tests/mpy/order_heap.py runs tests/portable/order_flow.py):

- frozen: the port built with the manifest `thingsdk firmware build --frozen` writes completes
  an order in a 64 KB heap;
- stock: the .mpy files `thingsdk firmware build` compiles, loaded from the file system,
  complete an order in the heap the build's report says they need.
"""

import subprocess

import pytest

from micropython_port import ROOT
from thingsdk import boards
from thingsdk.firmware_build import LINKS, code_bytes, compile_lib, find_mpy_cross

ORDER = ROOT / "tests" / "mpy" / "order_heap.py"
PORTABLE = ROOT / "tests" / "portable"


@pytest.fixture(scope="module")
def firmware_port():
    import unix_port

    # The test's order and vendor are frozen too: they stand for the world, not the board.
    return unix_port.for_tests(unix_port.firmware, extra=[(PORTABLE, "order_flow.py"),
                                                          (PORTABLE, "order_vendor.py")],
                               log=True)


def order(prog, heap, tmp_path, path=()):
    import unix_port

    return unix_port.run(prog, ORDER, [tmp_path], heap=heap, path=path, timeout=300)


def figures(out):
    return {k: int(v) for k, v in (line.split() for line in out.splitlines() if " " in line
                                   and line.split()[-1].isdigit())}


def test_a_frozen_firmware_completes_an_order_in_64_kb(firmware_port, tmp_path):
    done = order(firmware_port, "64k", tmp_path)
    assert done.returncode == 0 and "order complete" in done.stdout, done.stdout + done.stderr
    # Each turn keeps the order's state on flash and its messages signed and checked.
    assert figures(done.stdout)["turns"] > 10


def test_a_frozen_firmware_cannot_complete_one_in_a_quarter_of_that(firmware_port, tmp_path):
    """The heap limit is real: far too little ends in MemoryError, as on a board."""
    done = order(firmware_port, "16k", tmp_path)
    assert done.returncode != 0 and "MemoryError" in done.stdout + done.stderr


def test_stock_mpy_files_complete_an_order_in_the_heap_the_build_reports(unix32, tmp_path):
    lib = tmp_path / "build"
    code = code_bytes(compile_lib(lib, "xtensawin", LINKS["mqtt"]))
    for name in ("order_flow", "order_vendor"):
        subprocess.run([find_mpy_cross(), "-O3", "-o", str(lib / (name + ".mpy")),
                        str(PORTABLE / (name + ".py"))], check=True)
    _, needed = boards.heap_needed(code)
    scratch = tmp_path / "state"
    scratch.mkdir()
    done = order(unix32, "%dk" % (needed // 1024), scratch, path=[lib / "lib", lib])
    assert done.returncode == 0 and "order complete" in done.stdout, done.stdout + done.stderr
    # The code alone took more than its .mpy bytes: what the report's estimate is made of.
    assert figures(done.stdout)["code_bytes"] > code
    # With the vendor and the owner on the host (tests/host_world.py), as a board hears them over
    # the network, the same order completes, keeping less alive: the vendor's code and keys are
    # no longer here.
    import host_world

    alone = host_world.run(unix32, ORDER, [scratch], heap="%dk" % (needed // 1024),
                           path=[lib / "lib", lib], timeout=300)
    assert alone.returncode == 0 and "order complete" in alone.stdout, alone.stdout
    assert figures(alone.stdout)["code_bytes"] > code
    assert figures(alone.stdout)["order_live_bytes"] < figures(done.stdout)["order_live_bytes"]


def test_the_host_world_is_refused_what_it_does_not_answer():
    """A request the host's world does not know is an error there, not a silent empty answer."""
    import io

    import host_world
    from order_vendor import World
    from thingsdk.core import ed25519

    world = World(ed25519.Signer(host_world.DEVICE_SEED).public_key)
    answers = io.BytesIO()
    host_world.serve(world, io.BytesIO(b"w" + bytes(12)), answers)
    keys = answers.getvalue()
    assert keys[0] == 3 and int.from_bytes(keys[1:5], "big") == 32
    with pytest.raises(ValueError, match="does not answer"):
        host_world.serve(world, io.BytesIO(b"x" + bytes(12)), io.BytesIO())
