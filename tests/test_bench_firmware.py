"""The firmware benchmark runs end to end: sizes of the built bundles, a whole order on the 32-bit
unix port (stock and frozen, with the smallest heap bisected) and on the WebAssembly port, and
sign/verify times (figures are not asserted against targets: they are for the printout)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_firmware_benchmark_prints_every_figure(unix32):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "firmware.py")],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert len(re.findall(r"^  (esp32|pico_w) +(mqtt|serial) +\d+ B", out, re.M)) == 4
    smallest = re.findall(r"smallest heap, bisected +(\d+) KB +target (128|64) KB", out)
    assert [target for _, target in smallest] == ["128", "128", "128", "64", "128"]
    assert all(0 < int(kb) for kb, _ in smallest)
    # Orders in a row, as a device makes them for months: what each left alive, and the last
    # needing at least the heap of a first order.
    kept = re.search(r"kept alive after each +([\d, ]+) B", out)
    assert kept and len(kept.group(1).split(", ")) == 4
    assert int(smallest[4][0]) >= int(smallest[0][0]) - 4
    # A build's report never promises less heap than an order was measured to need.
    assert re.search(r"estimates \(thingsdk/boards.py\): stock \d+ KB, frozen \d+ KB: at or above "
                     r"what was measured", out)
    # Beside the first order and the orders in a row: the same collected only when the heap is
    # full, against every app.COLLECT_EVERY bytes as the firmware has it, and how long each took.
    full = re.findall(r"collected only when full +(\d+) KB +\((.*?); above, collected every (\d+) "
                      r"B\); the order took (\d+) ms so, (\d+) ms", out)
    assert [which.split(" KB for the ")[-1] for _, which, _, _, _ in full] == [
        "3 layouts", "one layout"]
    assert all(int(every) > 0 and int(a) > 0 and int(b) > 0 for _, _, every, a, b in full)
    # The sentences on flash (texts.bin) leave the stock firmware's code smaller in the heap.
    saved = re.search(r"code loaded +\d+ B +\([\d.]+ x the .mpy bytes; (-?\d+) B more than with "
                      r"texts.bin\)", out)
    assert saved and int(saved.group(1)) > 0
    assert len(re.findall(r"order, live peak +[1-9]\d* B", out)) == 5
    pools = re.findall(r"names interned +(\d+) +the pool grows at (\d+) by (\d+) B", out)
    assert len(pools) == 4 and all(int(n) <= int(at) and int(size) > 0 for n, at, size in pools)
    assert re.search(r"over (\d+) steps", out) and "over 0 steps" not in out
    rows = re.findall(r"^  (unix port 32-bit, stock|unix port 32-bit, frozen|WebAssembly) +"
                      r"(\d+\.\d+) +(\d+\.\d+) +(\d+\.\d+) +(\d+) B, spacing (\d+)$", out, re.M)
    assert [r[0] for r in rows] == ["unix port 32-bit, stock", "unix port 32-bit, frozen",
                                    "WebAssembly"]
    assert [r[5] for r in rows] == ["64", "4", "64"]  # the frozen firmware reads its comb in flash
    # The heap by module: every module app and its MQTT link load, adding up to about the code
    # the whole order's script measured loaded (which also loads the test's order).
    total = re.search(r"stock code by module, each loaded after what it imports \(B; (\d+) B in "
                      r"all", out)
    table = out[out.index("\n", total.end()):].split("\nheap on")[0]
    modules = dict(re.findall(r"([a-z_0-9]+) +(\d+)(?=  |$)", table, re.M))
    assert {"lifecycle", "messages", "consumable", "mqtt", "app", "ed25519"} <= set(modules)
    assert sum(map(int, modules.values())) == int(total.group(1))
    assert min(map(int, modules.values())) > 256  # each one its code, not an empty namespace
    stock_code = int(re.search(r"code loaded +(\d+) B", out).group(1))
    assert 0.8 * stock_code <= int(total.group(1)) <= stock_code
    # The spend ledger's heap for a year of weekly and of daily orders: with all but the last
    # SETTLE_AFTER's orders settled, 13 bytes each, under 32 bytes an order even for daily ones
    # (about 120 each when every order was kept whole).
    kept = re.search(r"the spend ledger on the 32-bit port, stock, under a budget over a rolling "
                     r"366 days: a year of weekly orders keeps (\d+) B of heap, of daily ones "
                     r"\(its most, 366\) (\d+) B", out)
    assert kept and 0 < int(kept.group(1)) < int(kept.group(2)) < 32 * 366
