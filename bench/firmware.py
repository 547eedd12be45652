"""The firmware on a board's budget: code size, heap during a whole order, sign and verify.

    python bench/firmware.py

Prints, from one run:
- the .mpy bundle `thingsdk firmware build` makes for each board and link (MQTT over WiFi, or a
  UART to a gateway), against the 60 KB target;
- on the MicroPython WebAssembly port, with those very .mpy files: the heap the loaded code takes,
  and the heap of a whole order (bench/mpy_order_flow.py: quote, decision, order, receipt,
  shipment, delivery, refill, every message signed and verified on the board) against the 64 KB
  target: the live peak between steps, and what one step allocates, garbage included;
- sign and verify on the same port (bench/mpy_ed25519.py; targets: sign <= 15 ms, verify <= 25 ms).
"""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from micropython_port import RUNNER  # noqa: E402
from thingsdk.boards import BOARDS, TARGET  # noqa: E402
from thingsdk.firmware_build import LINKS, compile_lib  # noqa: E402

HEAP_TARGET = 64 * 1024


def figures(output):
    """{name: number} from the `name value` lines a MicroPython script printed."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                found[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return found


def on_micropython(script, mounts):
    cmd = ["node", str(RUNNER)]
    for host, target in mounts:
        cmd += ["--mount", "%s:%s" % (host, target)]
    done = subprocess.run(cmd + [str(script)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    if done.returncode:
        raise SystemExit("%s failed:\n%s%s" % (script.name, done.stdout, done.stderr))
    return figures(done.stdout)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        print("bundle (code only; the identity adds about 1 KB), target %d B:" % TARGET)
        for link, unused in sorted(LINKS.items()):
            for name, board in sorted(BOARDS.items()):
                built = compile_lib(Path(tmp) / link / name, board.march, unused)
                size = sum(n for _, n in built)
                print("  %-7s %-7s %6d B  %5.1f %% of target   (%d .mpy files)"
                      % (name, link, size, 100 * size / TARGET, len(built)))
        lib = Path(tmp) / "mqtt" / "esp32" / "lib"
        bench = Path(tmp) / "bench"
        bench.mkdir()
        (bench / "order_flow.py").write_text((ROOT / "tests/portable/order_flow.py").read_text())
        heap = on_micropython(ROOT / "bench" / "mpy_order_flow.py", [(lib, "/lib"),
                                                                     (bench, "/bench")])
    print("heap on MicroPython WebAssembly (esp32 .mpy files), target %d B for the order:"
          % HEAP_TARGET)
    print("  code loaded                 %6d B  (the .mpy files and the test's vendor, as source)"
          % heap["code_bytes"])
    print("  order, live peak            %6d B  %5.1f %% of target"
          % (heap["flow_live_peak_bytes"], 100 * heap["flow_live_peak_bytes"] / HEAP_TARGET))
    print("  order, most one step allocated, garbage included: %d B over %d steps (this port never"
          % (heap["step_allocated_bytes"], heap["turns"]))
    print("  collects inside a step, so the peak within one is not measured here; a board collects")
    print("  the short-lived big integers of Ed25519 as it goes)")
    crypto = on_micropython(ROOT / "bench" / "mpy_ed25519.py", [(ROOT / "thingsdk",
                                                                  "/lib/thingsdk")])
    print("Ed25519 on MicroPython WebAssembly:")
    print("  sign   %6.2f ms  (target 15 ms)" % crypto["sign_ms"])
    print("  verify %6.2f ms  (target 25 ms)" % crypto["verify_ms"])


if __name__ == "__main__":
    main()
