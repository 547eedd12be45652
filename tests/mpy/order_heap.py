# A whole order on a board's heap (tests/portable/order_flow.py: the portable agent, the flash
# store and a vendor of the core alone), with the firmware application and its MQTT link loaded
# as a board's boot loads them. Run on the unix port with `-X heapsize=N`:
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
folder = "%s/order-%d" % (sys.argv[1], time.time_ns())
os.mkdir(folder)
flow = order_flow.Flow(folder + "/state")
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
