# A whole order on a board's heap (tests/portable/order_flow.py: the portable agent, the flash
# store and a vendor of the core alone), with the firmware application and its MQTT link loaded
# as a board's boot loads them, by a device that has run for days (its rate estimate's window
# full). Run on the unix port with `-X heapsize=N`:
#     micropython -X heapsize=N order_heap.py SCRATCH_DIR
# (each run keeps its state in a new folder there)
# Prints `name value` lines: the heap the loaded code takes, the most the order keeps alive
# between turns (after a collection), the turns taken, the names interned in the heap's pools
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
from thingsdk.core import lifecycle  # noqa: E402
from thingsdk.core import messages as m  # noqa: E402

gc.threshold(-1)  # and as app.main goes back to collecting when the heap is full
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


world = HostWorld(sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else None
folder = "%s/order-%d" % (sys.argv[1], time.time_ns())
os.mkdir(folder)
# Its rate estimate's window full (32 readings), as at every order after the first few days: the
# rate is then fitted over the 496 pairs of them.
flow = order_flow.Flow(folder + "/state", world=world, history=32)
live = 0
for turn in range(1, 201):
    flow.turn()
    gc.collect()
    live = max(live, gc.mem_alloc() - base - code)
    need = flow.need()
    if need is not None and need["state"] == lifecycle.CLOSED:
        break
assert need["state"] == lifecycle.CLOSED and flow.vendor.got.count(m.ORDER) == 1
print("code_bytes %d" % code)
print("order_live_bytes %d" % live)
print("turns %d" % turn)
micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=.., ...": the bench reads n_qstr
print("order complete")
