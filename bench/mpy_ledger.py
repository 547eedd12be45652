# The heap a board's spend ledger takes for a year of orders, on MicroPython, with a build's lib/
# on MICROPYPATH:
#     micropython bench/mpy_ledger.py EVERY ORDERS
# A mandate whose budget runs over a rolling 366 days counts every order of that time in the
# ledger (thingsdk.core.ledger): ORDERS orders, EVERY days apart, are reserved and committed as
# the agent does, each id and currency decoded from CBOR as they come in messages. Prints
# `ledger_bytes`, the heap the ledger's orders keep after a collection.
import gc
import sys

from thingsdk.core import cbor
from thingsdk.core.ledger import DAY, Ledger

EVERY, ORDERS = int(sys.argv[1]), int(sys.argv[2])
START = 1767225600
ledger = Ledger([["budget", {"cur": "EUR", "max": 10 ** 9, "period": "rolling",
                             "window": 366 * DAY}]])
gc.collect()
before = gc.mem_alloc()
for i in range(ORDERS):
    order_id, total = cbor.loads(cbor.dumps([START.to_bytes(8, "big") + i.to_bytes(8, "big"),
                                             [2490, "EUR"]]))
    assert ledger.reserve(order_id, total[0], total[1], START + i * EVERY * DAY) == "reserved"
    ledger.commit(order_id)
    order_id = total = None
assert ledger.usage(ledger.limits[0][1], START + (ORDERS - 1) * EVERY * DAY)[0] == ORDERS
gc.collect()
print("ledger_bytes %d" % (gc.mem_alloc() - before))
