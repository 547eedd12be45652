# Where MicroPython's pool of interned names grows, and what each growth costs, on the port
# measured (`micropython -X heapsize=2m bench/mpy_qstr_pool.py`). The names modules, .mpy files
# and running code intern live in pools in the heap; once the last pool is full, the next name
# makes a pool twice as large, in one block. Prints micropython.qstr_info()'s line (n_qstr: the
# names interned at the start), then `grew_after_N BYTES` for each growth seen while interning
# new names one by one: the growth came with the N+1st new name, and took BYTES of heap.
import gc
import micropython

micropython.qstr_info()
gc.collect()
before = gc.mem_alloc()
for i in range(3000):
    getattr(gc, "pool_probe_%d" % i, None)  # a name looked up is interned
    gc.collect()
    now = gc.mem_alloc()
    if now - before > 512:
        print("grew_after_%d %d" % (i, now - before))
    before = now
