# A whole order on a board's heap (tests/portable/order_flow.py: the portable agent, the flash
# store and a vendor of the core alone), with the firmware application and its MQTT link loaded
# as a board's boot loads them, by a device that has run for days (its rate estimate's window
# full). Run on the unix port with `-X heapsize=N`:
#     micropython -X heapsize=N order_heap.py SCRATCH_DIR [ORDERS] [collect=BYTES]
# (each run keeps its state in a new folder there; ORDERS, default 1: orders one after another,
# each once the last was delivered and its refill seen; collect: the gc.threshold while the order
# runs, default app.COLLECT_EVERY as a board has it, -1 to collect only when the heap is full)
# Prints `name value` lines: the heap the loaded code takes, the most the order keeps alive
# between turns (after a collection), the turns taken, the order's milliseconds, with ORDERS
# what was kept alive once each order closed, the names interned in the heap's pools
# (micropython.qstr_info); then `order complete`. Without enough
# heap it ends in MemoryError, as a board would.
import gc
import micropython
import os
import sys
import time

gc.collect()
base = gc.mem_alloc()
gc.threshold(4096)  # as firmware/main.py has the heap collected while the code loads
import app  # noqa: E402,F401 (loaded as at boot)
import mqtt  # noqa: E402,F401
import order_flow  # noqa: E402
from thingsdk.core import messages as m  # noqa: E402
# The validator messages load to check one, as a board's first message does at boot: counted as
# code. Not bound to a name here, so that the agent can drop it while it decides (agent.CHECKING).
__import__("thingsdk.core.schemas")

collect = [int(arg[8:]) for arg in sys.argv if arg.startswith("collect=")]
collect = collect[0] if collect else app.COLLECT_EVERY
gc.threshold(collect)  # and as app.main has the heap collected while the device runs
gc.collect()
code = gc.mem_alloc() - base


class HostWorld:
    """The world tests/host_world.py runs on the host, asked over two pipes (its docstring has
    the requests): the vendor's and owner's public keys and the mandate, then the vendor's
    answers."""

    def __init__(self, answers, requests):
        self._in, self._out = open("/dev/fd/" + answers, "rb"), open("/dev/fd/" + requests, "wb")
        self.vendor_key, self.owner_key, self.mandate = self._ask(b"w", 0)

    def _ask(self, op, now, data=b""):
        self._out.write(op + now.to_bytes(8, "big") + len(data).to_bytes(4, "big"))
        if data:
            self._out.write(data)
        return [self._in.read(int.from_bytes(self._in.read(4), "big"))
                for _ in range(self._in.read(1)[0])]

    def answer(self, data, now):
        return self._ask(b"a", now, data)

    def due(self, now):
        return self._ask(b"d", now)

    @property
    def got(self):
        return list(self._ask(b"g", 0)[0])


args = [arg for arg in sys.argv[2:] if not arg.startswith("collect=")]
orders = int(args.pop(0)) if len(args) % 2 else 1
world = HostWorld(*args) if args else None
folder = "%s/order-%d" % (sys.argv[1], time.time_ns())
os.mkdir(folder)
# Its rate estimate's window full (32 readings), as at every order after the first few days: the
# rate is then fitted over the 496 pairs of them.
flow = order_flow.Flow(folder + "/state", world=world, history=32)
live, after = 0, []  # the most kept alive between turns, what was kept after each order


def each(closed):
    global live
    gc.collect()
    live = max(live, gc.mem_alloc() - base - code)
    if closed > len(after):
        after.append(gc.mem_alloc() - base - code)


start = time.ticks_ms()
turn = flow.orders(orders, each)
spent = time.ticks_diff(time.ticks_ms(), start)
assert flow.vendor.got.count(m.ORDER) == orders
print("code_bytes %d" % code)
print("order_live_bytes %d" % live)
print("turns %d" % turn)
print("order_ms %d" % spent)
print("collect_every %d" % collect)
if orders > 1:  # what stays alive as the device orders again and again
    for i in range(orders):
        print("live_after_order_%d %d" % (i + 1, after[i]))
micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=.., ...": the bench reads n_qstr
print("order complete")
