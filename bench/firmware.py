"""The firmware on a board's budget: code size, heap during a whole order, sign and verify.

    python bench/firmware.py

Prints, from one run:
- the bundle `thingsdk firmware build` makes for each board and link (MQTT over WiFi, or a
  UART to a gateway): its .mpy files and texts.bin (the sentences, read from flash when said),
  against the 60 KB target;
- on MicroPython's unix port built as the boards are (32-bit, single-precision floats, a fixed GC
  heap: tests/unix_port.py), with the firmware application and its MQTT link loaded as at boot
  (from ./lib, paths as long as a board's /lib: ON_BOARD), a whole order (tests/mpy/order_heap.py:
  quote, decision, order, receipt, shipment, delivery, refill, every message signed and verified on
  the board; the vendor and the owner run on the host, tests/host_world.py, and their messages come
  over pipes) by a device that has run for days (its rate estimate's window full, 32 readings, as
  at every order after the first few days; a device's first order, with few readings, needs less):
  the heap the code takes, the most the order keeps alive between turns, and the smallest
  `-X heapsize` that completes it, found by bisection (the largest for three lengths of the state
  folder's path, which move where the heap's holes fall), for the stock firmware (.mpy files from
  the file system; target 128 KB), for the same with the vendor and owner in the board's heap as
  well (as the portable tests run the order), for the same with its sentences left in the code, and
  for the frozen firmware (`firmware build --frozen`; target 64 KB), next to the estimates
  thingsdk/boards.py gives a build's report; and the stock firmware's four orders in a row, as a
  device orders for months: what each leaves alive (the closed needs kept, the replay guard's
  window) and the smallest heap for them all; beside both stock figures, the same with the heap
  collected only when full, as the firmware had it before `app.COLLECT_EVERY`, and the time the
  order took each way in a 160 KB heap;
- the same order on the MicroPython WebAssembly port (bench/mpy_order_flow.py), which collects
  garbage only between steps and has no heap limit: its live heap between steps;
- the names the order interned in the heap against where the pool of names next grows (by a
  block of several KB, bench/mpy_qstr_pool.py): a firmware just under it is a few names away
  from needing that much more heap;
- the heap each module of the stock build takes as it loads (thingsdk.firmware_build.load_order);
- the check of one message on the 32-bit port, with the schemas read from flash as the stock
  build has them and with them in the code (bench/mpy_check.py);
- the heap the spend ledger keeps for a year of weekly and of daily orders under a budget over
  a rolling 366 days, on the 32-bit port (bench/mpy_ledger.py);
- Ed25519 sign and verify, and the first Signer (which builds the base point's multiples where
  a comb table is not frozen), on the 32-bit port (stock and frozen, in a board's 128 KB heap)
  and on the WebAssembly port.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import host_world  # noqa: E402
import unix_port  # noqa: E402
from micropython_port import RUNNER  # noqa: E402
from thingsdk import boards  # noqa: E402
from thingsdk.boards import BOARDS, TARGET  # noqa: E402
from thingsdk.core.agent import SPARE_CLOSED  # noqa: E402
from thingsdk.core.ledger import MAX_ENTRIES, RECORD, SETTLE_AFTER  # noqa: E402
from thingsdk.firmware_build import (  # noqa: E402
    LINKS, code_bytes, compile_lib, find_mpy_cross, load_order)
from thingsdk.firmware_texts import DATA  # noqa: E402

STOCK_TARGET, FROZEN_TARGET = 128, 64  # KB of heap for a whole order
AGAIN = 4  # orders in a row: a device that orders again and again, as in the field
ORDER = ROOT / "tests" / "mpy" / "order_heap.py"
PORTABLE = ROOT / "tests" / "portable"
TEST_MODULES = ("order_flow", "order_vendor")  # the test's order, and its vendor and owner
# Folders of the order's state, named at three lengths. Near the smallest heap an order runs out
# of heap that is fragmented, and where the holes fall moves with a few bytes more or less in a
# path: measured, a heap 3 KB larger or smaller. Each is bisected and the largest is the figure.
LAYOUTS = ("s", "scratch-folder", "a-scratch-folder-whose-name-is-longer")
# The heap Ed25519 is timed in on the unix port: a board's. A signature's big integers are
# garbage collected when the heap is full, and in a 2 MB heap that cost up to 70 % more time per
# signature than in 128 KB (measured), which no board has.
CRYPTO_HEAP = "128k"
# The heap an order is timed in, with the heap collected every app.COLLECT_EVERY bytes and only
# when full: a Pico W's, where both complete (a collection's time grows with the heap).
ORDER_TIME_HEAP = "160k"
WHEN_FULL = "collect=-1"  # order_heap.py collects only when the heap is full, as app did before
# MicroPython interns the path of each module it loads (its __file__), and a board's are short:
# /lib/thingsdk/core/agent.mpy. A stock build's order runs from the build's own folder with its
# modules in ./lib, one character longer each, and not by the temporary folder's full path,
# which took about 550 B more heap for 32 modules (measured) and moved with where it was.
ON_BOARD = ("./lib", ".")


def figures(output):
    """{name: number} from the `name value` lines a MicroPython script printed, and `n_qstr`
    from a micropython.qstr_info() line."""
    found = {}
    if "n_qstr=" in output:
        found["n_qstr"] = int(output.split("n_qstr=")[1].split(",")[0])
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                found[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return found


def on_wasm(script, mounts):
    cmd = ["node", str(RUNNER)]
    for host, target in mounts:
        cmd += ["--mount", "%s:%s" % (host, target)]
    done = subprocess.run(cmd + [str(script)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    if done.returncode:
        raise SystemExit("%s failed:\n%s%s" % (script.name, done.stdout, done.stderr))
    return figures(done.stdout)


def on_unix(prog, script, args=(), path=(), heap="2m", run_with=unix_port.run):
    done = run_with(prog, script, args, heap=heap, path=path)
    if done.returncode:
        raise SystemExit("%s failed:\n%s%s" % (Path(script).name, done.stdout, done.stderr))
    return figures(done.stdout)


def from_build(build, run_with):
    """`run_with` (unix_port.run or host_world.run, with their arguments) run from the folder
    `build`, where each script it is given is first copied, to be run by its own name as a
    board runs main.py (its path is interned too): with ON_BOARD for a path, as on a board."""
    def run(prog, script, args=(), heap="2m", path=()):
        local = build / Path(script).name
        if not local.exists():
            shutil.copy(script, local)
        return run_with(prog, local.name, args, heap=heap, path=path, cwd=build)

    return run


def verdict(kb, target):
    if kb is None:
        return "did not complete even then"
    if kb <= target:
        return "target %d KB: met, %d KB to spare" % (target, target - kb)
    return "target %d KB: NOT met, %d KB over" % (target, kb - target)


def pool_growths(prog):
    """[(names interned, bytes)]: each growth of the port's pool of interned names, once that
    many names are interned (bench/mpy_qstr_pool.py)."""
    found = on_unix(prog, ROOT / "bench" / "mpy_qstr_pool.py")
    start = found.pop("n_qstr")
    return [(start + int(name.split("_")[-1]), int(size)) for name, size in found.items()]


def names_line(interned, growths):
    """What the names an order interned leave before the pool's next growth."""
    at, size = next((at, size) for at, size in growths if at >= interned)
    return ("    names interned         %7d     the pool grows at %d by %d B in one block: %d "
            "names to spare" % (interned, at, size, at - interned))


def stock_build(folder, exclude=()):
    """The esp32 MQTT build's lib/ in `folder`, with the test's order and vendor beside it;
    returns the build's [(path, bytes)]."""
    code = compile_lib(folder, BOARDS["esp32"].march, LINKS["mqtt"] + tuple(exclude))
    for name in TEST_MODULES:
        subprocess.run([find_mpy_cross(), "-O3", "-s", name, "-o", str(folder / (name + ".mpy")),
                        str(PORTABLE / (name + ".py"))], check=True)
    return code


def heap_section(tmp, stock, frozen):
    build = tmp / "stock"
    code = stock_build(build)
    code_size = code_bytes(code)
    # The same build with its sentences left in the code (the reader module excluded), as the
    # stock firmware was before texts.bin: what moving them saves, measured in this run.
    in_code = code_bytes(stock_build(tmp / "in_code", exclude=["texts"]))
    folders = []
    for name in LAYOUTS:
        folders.append(tmp / name)
        folders[-1].mkdir()
    print("heap on MicroPython's unix port, 32-bit with float32 as ESP32 and RP2040 (esp32 MQTT "
          "build; a whole order by a device whose rate estimate's window is full, 32 readings; "
          "the test's vendor and owner on the host, tests/host_world.py, their messages carried "
          "over pipes as a board's come over the network):")
    found = {}
    growths = pool_growths(stock)
    here, there = unix_port.run, host_world.run
    on_board = from_build(build, there)
    runs = (("stock", stock, ON_BOARD, 64, 384, on_board),
            ("vendor here", stock, ON_BOARD, 64, 384, from_build(build, here)),
            ("in code", stock, ON_BOARD, 64, 384, from_build(tmp / "in_code", there)),
            ("frozen", frozen, (), 16, 192, there))
    for name, prog, p, lo, hi, run_with in runs:
        at = on_unix(prog, ORDER, [folders[0]], path=p, run_with=run_with)
        each = [unix_port.smallest_heap(prog, ORDER, [folder], path=p, lo=lo, hi=hi,
                                        run_with=run_with) for folder in folders]
        smallest = None if None in each else max(each)
        target = FROZEN_TARGET if name == "frozen" else STOCK_TARGET
        found[name] = smallest
        if name == "vendor here":
            print("  the same with the test's vendor and owner in the board's heap too (their "
                  "keys, replay guard, signing and answers; as the portable tests run it):")
            print("    code loaded              %7d B  (the vendor's module loads with the order)"
                  % at["code_bytes"])
        elif name == "stock":
            print("  stock firmware: %d B of .mpy files loaded from the file system, and %d B of "
                  "sentences in %s read from flash when said" % (code_size, dict(code)[DATA],
                                                                 DATA))
            print("    code loaded              %7d B  (%.2f x the .mpy bytes)"
                  % (at["code_bytes"], at["code_bytes"] / code_size))
        elif name == "in code":
            print("  the same with its sentences in the code (--exclude texts): %d B of .mpy "
                  "files" % in_code)
            print("    code loaded              %7d B  (%.2f x the .mpy bytes; %d B more than with "
                  "texts.bin)" % (at["code_bytes"], at["code_bytes"] / in_code,
                                  at["code_bytes"] - found["stock code"]))
        else:
            print("  frozen firmware (thingsdk firmware build --frozen; code and constants in "
                  "flash):")
            print("    code loaded              %7d B  (module objects only)" % at["code_bytes"])
        found[name + " code"] = at["code_bytes"]
        print("    order, live peak         %7d B  (between turns, after a collection)"
              % at["order_live_bytes"])
        print(names_line(at["n_qstr"], growths))
        print("    smallest heap, bisected  %7s KB  %s (%s)"
              % (smallest if smallest is not None else ">%d" % hi, verdict(smallest, target),
                 layouts(each, hi)))
        if name == "stock":
            print(when_full(prog, [[folder] for folder in folders], run_with))
    found["again"] = again(stock, on_board, folders[0])
    _, stock_estimate = boards.heap_needed(code_size)
    _, frozen_estimate = boards.heap_needed(0, frozen=True)
    stock_kb = max(found["stock"] or 10 ** 6, found["again"] or 10 ** 6)
    holds = stock_kb * 1024 <= stock_estimate and \
        (found["frozen"] or 10 ** 6) * 1024 <= frozen_estimate
    print("  a build's report estimates (thingsdk/boards.py): stock %d KB, frozen %d KB: %s"
          % (stock_estimate // 1024, frozen_estimate // 1024,
             "at or above what was measured" if holds else "BELOW what was measured: update them"))
    return build


def again(prog, run_with, folder):
    """The stock firmware's orders one after another (AGAIN of them, each once the last was
    delivered and its refill seen): what each leaves alive, and the smallest heap for them all
    (one layout), whose peak is in the last, made with agent.SPARE_CLOSED closed needs kept."""
    at = on_unix(prog, ORDER, [folder, AGAIN], path=ON_BOARD, run_with=run_with)
    kb = unix_port.smallest_heap(prog, ORDER, [folder, AGAIN], path=ON_BOARD, lo=64, hi=384,
                                 run_with=run_with)
    kept = [at["live_after_order_%d" % (i + 1)] for i in range(AGAIN)]
    print("  stock firmware, %d orders in a row (a board keeps its %d latest closed needs, "
          "agent.SPARE_CLOSED; from the third order on it has that many):" % (AGAIN, SPARE_CLOSED))
    print("    kept alive after each    %s B" % ", ".join("%d" % n for n in kept))
    print("    live peak, all orders    %7d B  (between turns, after a collection)"
          % at["order_live_bytes"])
    print("    smallest heap, bisected  %7s KB  %s (one layout)"
          % (kb if kb is not None else ">384", verdict(kb, STOCK_TARGET)))
    print(when_full(prog, [[folder, AGAIN]], run_with))
    return kb


def layouts(each, hi):
    """The smallest heaps bisected for each layout, as printed: "135, 137, 135 KB for the 3
    layouts" (">hi" for one that did not complete within `hi` KB)."""
    return "%s KB for the %d layouts" % (", ".join("%s" % (kb or ">%d" % hi) for kb in each),
                                         len(each))


def when_full(prog, runs, run_with):
    """A line of the stock firmware's smallest heap for `runs` (order_heap.py's arguments, one
    list for each layout bisected; run by `run_with`, from_build's) with the heap collected only
    when full, and the time the order took so and collected every app.COLLECT_EVERY bytes, as the
    firmware has it."""
    each = [unix_port.smallest_heap(prog, ORDER, args + [WHEN_FULL], path=ON_BOARD, lo=64,
                                    hi=384, run_with=run_with) for args in runs]
    every = on_unix(prog, ORDER, runs[0], path=ON_BOARD, heap=ORDER_TIME_HEAP,
                    run_with=run_with)
    full = on_unix(prog, ORDER, runs[0] + [WHEN_FULL], path=ON_BOARD, heap=ORDER_TIME_HEAP,
                   run_with=run_with)
    kb = max(each) if None not in each else ">384"
    which = layouts(each, 384) if len(each) > 1 else "one layout"
    return ("    collected only when full %7s KB  (%s; above, collected every %d B); the order "
            "took %d ms so, %d ms collected every %d B: %.1f x (in a %s heap)"
            % (kb, which, every["collect_every"], full["order_ms"], every["order_ms"],
               every["collect_every"], every["order_ms"] / max(1, full["order_ms"]),
               ORDER_TIME_HEAP))


BY_MODULE = """import gc
gc.threshold(4096)  # as firmware/main.py has the heap collected while the code loads
gc.collect()
last = gc.mem_alloc()
for name in %r:
    __import__(name)
    gc.collect()
    now = gc.mem_alloc()
    print("%%s %%d" %% (name, now - last))
    last = now
"""


def by_module(prog, build, tmp):
    """The heap each module of the stock build takes as app and its MQTT link load, and the
    validator of messages that the first message checked loads (schemas), each imported after
    the modules it imports (so its figure is its own, with what it imports from
    MicroPython itself, such as asyncio), largest first. A module whose names fill the pool of
    names is charged for the next pool (a block of several KB)."""
    script = tmp / "by_module.py"  # copied to the build and run there, as the order is
    script.write_text(BY_MODULE % (load_order(("app", "mqtt", "schemas")),))
    found = on_unix(prog, script, path=ON_BOARD, run_with=from_build(build, unix_port.run))
    ranked = sorted(found.items(), key=lambda kv: -kv[1])
    print("  stock code by module, each loaded after what it imports (B; %d B in all; a module "
          "that fills the pool of names is charged for the next):" % sum(found.values()))
    for i in range(0, len(ranked), 4):
        print("    " + "  ".join("%-12s %6d" % (name.rsplit(".", 1)[-1], size)
                               for name, size in ranked[i:i + 4]))


def wasm_order(build, tmp):
    bench = tmp / "bench"
    bench.mkdir()
    for name in TEST_MODULES:
        (bench / (name + ".py")).write_text((PORTABLE / (name + ".py")).read_text())
    heap = on_wasm(ROOT / "bench" / "mpy_order_flow.py", [(build / "lib", "/lib"),
                                                          (bench, "/bench")])
    print("heap on MicroPython WebAssembly (the same .mpy files; no heap limit, garbage collected "
          "only between steps):")
    print("  code loaded              %7d B  (and the test's vendor, as source)"
          % heap["code_bytes"])
    print("  order, live peak         %7d B  (between steps)" % heap["flow_live_peak_bytes"])
    print("  order, most one step allocated, garbage included: %d B over %d steps"
          % (heap["step_allocated_bytes"], heap["turns"]))


def checking(stock, tmp):
    """An offer's check on the 32-bit port: the stock build, which reads the message schemas from
    flash, and the same with them in the code (heap_section's two builds)."""
    script = ROOT / "bench" / "mpy_check.py"
    times = [on_unix(stock, script, path=[tmp / name / "lib", tmp / name])["check_ms"]
             for name in ("stock", "in_code")]
    print("checking a message (an offer) on the 32-bit port, stock: %.2f ms with the schemas "
          "read from flash (texts.bin), %.2f ms with them in the code (%.2f x)"
          % (times[0], times[1], times[0] / times[1]))


def ledger(stock, tmp):
    """The heap the spend ledger keeps for a year of weekly and of daily orders under a budget
    over a rolling 366 days, on the 32-bit port (bench/mpy_ledger.py, the stock build's
    modules)."""
    kept = [on_unix(stock, ROOT / "bench" / "mpy_ledger.py", [every, orders],
                    path=[tmp / "stock" / "lib", tmp / "stock"])["ledger_bytes"]
            for every, orders in ((7, 53), (1, MAX_ENTRIES))]
    print("the spend ledger on the 32-bit port, stock, under a budget over a rolling 366 days: "
          "a year of weekly orders keeps %d B of heap, of daily ones (its most, %d) %d B (orders "
          "committed more than %d days ago kept as %d bytes each)"
          % (kept[0], MAX_ENTRIES, kept[1], SETTLE_AFTER // 86400, RECORD))


def crypto(stock, frozen):
    script = ROOT / "bench" / "mpy_ed25519.py"
    runs = [("unix port 32-bit, stock", on_unix(stock, script, path=[ROOT], heap=CRYPTO_HEAP)),
            ("unix port 32-bit, frozen", on_unix(frozen, script, heap=CRYPTO_HEAP)),
            ("WebAssembly", on_wasm(script, [(ROOT / "thingsdk", "/lib/thingsdk")]))]
    print("Ed25519 (pure Python, thingsdk.core), ms:")
    print("  %-26s %8s %8s %14s %8s" % ("", "sign", "verify", "first Signer", "comb"))
    for name, f in runs:
        print("  %-26s %8.2f %8.2f %14.1f  %5d B, spacing %d"
              % (name, f["sign_ms"], f["verify_ms"], f["first_signer_ms"], f["table_bytes"],
                 f["table_spacing"]))
    print("  (targets on the WebAssembly port: sign 15 ms, verify 25 ms; a 240 MHz ESP32 is "
          "roughly 45-70 times slower than this machine's 32-bit port)")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("bundle (code only; the identity adds about 1 KB), target %d B:" % TARGET)
        for link, unused in sorted(LINKS.items()):
            for name, board in sorted(BOARDS.items()):
                built = compile_lib(tmp / link / name, board.march, unused)
                size = sum(n for _, n in built)
                print("  %-7s %-7s %6d B  %5.1f %% of target   (%d .mpy files, -O3, %d B of "
                      "them loaded; and texts.bin)" % (name, link, size, 100 * size / TARGET,
                                                       len(built) - 1, code_bytes(built)))
        stock = unix_port.stock()
        frozen = unix_port.firmware(extra=[(PORTABLE, name + ".py") for name in TEST_MODULES])
        build = heap_section(tmp, stock, frozen)
        checking(stock, tmp)
        ledger(stock, tmp)
        by_module(stock, build, tmp)
        wasm_order(build, tmp)
    crypto(stock, frozen)


if __name__ == "__main__":
    main()
