"""The firmware library and the portable core type-check against each board's MicroPython stubs
(tests/typecheck.py): nothing they use is missing from the board or called unlike its API. The
check is proven live: a probe file's call to a name the board's `machine` lacks, and its import of
a CPython-only module, are reported, while its real `machine` and `time` calls pass.
"""

import os
from pathlib import Path

import pytest
import typecheck

from thingsdk import boards

BOARDS = sorted(typecheck.STUBS)
# The README's board example, a main.py with the program's own sensor, is checked as firmware.
BOARD_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "board_main.py"
PROBE = """import sys
import time

import machine
import tempfile

MICROPYTHON = sys.implementation.name == "micropython"
pin = machine.Pin(2, machine.Pin.OUT)
pin.value(1)
start = time.ticks_ms() if MICROPYTHON else int(time.monotonic() * 1000)
machine.no_such_thing()
time.sleep_ms(time.ticks_diff(time.ticks_ms(), start))
"""


def test_every_board_is_checked():
    assert sorted(boards.BOARDS) == BOARDS


@pytest.fixture(scope="module")
def problems():
    """Each board's problems, from one check of the firmware with the probe laid beside it."""
    why = typecheck.missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return typecheck.check(BOARDS, extra={"probe.py": PROBE, "main.py": BOARD_EXAMPLE.read_text()})


@pytest.mark.parametrize("board", BOARDS)
def test_firmware_type_checks_against_the_board_stubs(problems, board):
    found = [p for p in problems[board] if not p.startswith("probe.py:")]
    assert found == [], "%s:\n%s" % (board, "\n".join(found))


@pytest.mark.parametrize("board", BOARDS)
def test_check_reports_what_the_board_lacks(problems, board):
    assert [p for p in problems[board] if p.startswith("probe.py:")] == [
        'probe.py:5:8: Import "tempfile" could not be resolved (reportMissingImports)',
        ('probe.py:11:9: "no_such_thing" is not a known attribute of module "machine"'
         " (reportAttributeAccessIssue)"),
    ]
