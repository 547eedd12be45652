# Times the check of one protocol message (an offer, as a device receives it) by
# thingsdk.core.messages on MicroPython, with a build's lib/ on MICROPYPATH:
#     micropython bench/mpy_check.py
# Prints `check_ms`, the mean over 200 checks of the same offer. The stock firmware reads the
# message schemas from flash (thingsdk/firmware_texts.py); a build with texts excluded keeps them
# in the code: bench/firmware.py runs both side by side, for what leaving them on flash costs.
import time

from thingsdk.core import messages as m

body = {"offer": bytes(16), "sku": "BEANS-1KG", "title": "Coffee beans, 1 kg", "qty": 2,
        "price": [1299, "EUR"], "ship": [499, "EUR"], "total": [3097, "EUR"], "lead": 86400,
        "arrive": 1767312000, "until": 1767229200, "test": False}
offer = m.build(m.OFFER, body, bytes(8), bytes(8), 5, 1767225600, 1767229200, bytes(16),
                bytes(16))
start = time.ticks_us()
for _ in range(200):
    m.check(offer)
print("check_ms %.3f" % (time.ticks_diff(time.ticks_us(), start) / 200000))
