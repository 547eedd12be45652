# Times the pure-Python Ed25519 and SHA-512 of thingsdk.core on MicroPython (or CPython):
#   node tests/mpy/run.mjs --mount thingsdk:/lib/thingsdk bench/mpy_ed25519.py
#   python bench/mpy_ed25519.py
# Prints the median milliseconds per operation over several batches and the one-time cost of the
# base-point table: its build time (none where it is frozen into the firmware), its size and
# spacing, and (on MicroPython) the heap it left allocated; on the WebAssembly port, which defers
# garbage collection until the script returns, that counts every allocation, garbage included.
import gc
import sys
import time

from thingsdk.core import ed25519
from thingsdk.core.sha512 import sha512

try:
    _ticks, _diff = time.ticks_us, time.ticks_diff
except AttributeError:

    def _ticks():
        return int(time.perf_counter() * 1000000)

    def _diff(end, start):
        return end - start


def median_ms(fn, batches=9, per_batch=20):
    """Median over batches of the milliseconds per call (the WebAssembly clock ticks in ms)."""
    times = []
    for _ in range(batches):
        start = _ticks()
        for _ in range(per_batch):
            fn()
        times.append(_diff(_ticks(), start) / per_batch / 1000)
    times.sort()
    return times[len(times) // 2]


def main():
    seed = bytes(range(32))
    message = bytes(i * 7 & 255 for i in range(200))

    gc.collect()
    before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    start = _ticks()
    signer = ed25519.Signer(seed)  # builds the base-point table on first use
    first_ms = _diff(_ticks(), start) / 1000
    gc.collect()
    after = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0

    verifier = ed25519.Verifier(signer.public_key)
    signature = signer.sign(message)
    assert verifier.verify(signature, message)

    print("implementation", sys.implementation.name)
    print("first_signer_ms %.1f" % first_ms)
    table, spacing = ed25519._base_table()
    print("table_bytes %d" % len(table))
    print("table_spacing %d" % spacing)
    if after:
        print("first_signer_alloc_bytes %d" % (after - before))
    print("sha512_200B_ms %.2f" % median_ms(lambda: sha512(message)))
    print("sign_ms %.2f" % median_ms(lambda: signer.sign(message)))
    print("verify_ms %.2f" % median_ms(lambda: verifier.verify(signature, message)))
    public = signer.public_key
    print("verify_fn_ms %.2f" % median_ms(lambda: ed25519.verify(public, message, signature)))


main()
