# Times the check of one protocol message (an offer, as a device receives it) by
# thingsdk.core.messages on MicroPython (or CPython):
#     micropython bench/mpy_check.py     (with a build's lib/ on MICROPYPATH)
#     python bench/mpy_check.py
# Prints `check_ms` (the median over several batches). The stock firmware reads the message
# schemas from flash (thingsdk/firmware_texts.py); a build with texts excluded keeps them in the
# code: the two side by side give what leaving them on flash costs per message.
import time

from thingsdk.core import messages as m

try:
    _ticks, _diff = time.ticks_us, time.ticks_diff
except AttributeError:

    def _ticks():
        return int(time.perf_counter() * 1000000)

    def _diff(end, start):
        return end - start


def median_ms(fn, batches=7, per_batch=20):
    times = []
    for _ in range(batches):
        start = _ticks()
        for _ in range(per_batch):
            fn()
        times.append(_diff(_ticks(), start) / per_batch / 1000)
    return sorted(times)[len(times) // 2]


body = {"offer": bytes(16), "sku": "BEANS-1KG", "title": "Coffee beans, 1 kg", "qty": 2,
        "price": [1299, "EUR"], "ship": [499, "EUR"], "total": [3097, "EUR"], "lead": 86400,
        "arrive": 1767312000, "until": 1767229200, "test": False}
offer = m.build(m.OFFER, body, bytes(8), bytes(8), 5, 1767225600, 1767229200, bytes(16),
                bytes(16))
print("check_ms %.3f" % median_ms(lambda: m.check(offer)))
