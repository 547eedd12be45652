# A whole order on MicroPython (tests/portable/order_flow.py: the agent, the flash store and a
# vendor of the core alone), one asyncio step a turn, printing the heap. Run by bench/firmware.py.
#
# This port (WebAssembly) collects garbage only between steps, when control is back with the host,
# and lazily; gc.collect() or gc.threshold() inside a step free nothing. So the live heap is the
# least gc.mem_alloc() over a few steps; what a step allocates, garbage included, is printed too,
# but the peak inside a step, where a board collects whenever it must, cannot be seen here.
import asyncio
import gc
import os
import sys

sys.path.append("/bench")
gc_base = gc.mem_alloc()
import order_flow  # noqa: E402
from thingsdk.core import lifecycle  # noqa: E402
# The validator messages load to check one, as a board's first message does at boot: counted as
# code. Not bound to a name here, so that the agent can drop it while it decides (agent.CHECKING).
__import__("thingsdk.core.schemas")


async def settled():
    """The live heap: the least gc.mem_alloc() over a few steps (this port collects lazily)."""
    least = gc.mem_alloc()
    for _ in range(4):
        await asyncio.sleep_ms(1)
        least = min(least, gc.mem_alloc())
    return least


async def main():
    code = await settled()  # the modules loaded, garbage collected
    os.mkdir("/flash")
    # the owner signs the mandate here (not board work); the rate estimate's window is full, as
    # in tests/mpy/order_heap.py
    flow = order_flow.Flow("/flash/state", history=32)
    live, bound, turns = 0, 0, 0
    while True:
        now_live = await settled()
        live = max(live, now_live)
        need = flow.need()
        if need is not None and need["state"] == lifecycle.CLOSED:
            break
        flow.turn()  # in one step: all it allocates, garbage included, is still counted
        bound = max(bound, gc.mem_alloc() - now_live)
        turns += 1
    print("interpreter_bytes %d" % gc_base)
    print("code_bytes %d" % (code - gc_base))
    print("flow_live_peak_bytes %d" % (live - code))
    print("step_allocated_bytes %d" % bound)
    print("turns %d" % turns)


asyncio.create_task(main())
