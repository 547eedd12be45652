"""The firmware benchmark runs end to end: sizes of the built bundles, a whole order on MicroPython
with its heap, and sign/verify times (figures are not asserted: they are for the printout)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_firmware_benchmark_prints_every_figure():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "firmware.py")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert len(re.findall(r"^  (esp32|pico_w) +(mqtt|serial) +\d+ B", out, re.M)) == 4
    live = int(re.search(r"order, live peak +(\d+) B", out).group(1))
    code = int(re.search(r"code loaded +(\d+) B", out).group(1))
    assert 0 < live and 0 < code
    assert re.search(r"over (\d+) steps", out) and "over 0 steps" not in out
    assert re.search(r"sign +\d+\.\d+ ms", out) and re.search(r"verify +\d+\.\d+ ms", out)
