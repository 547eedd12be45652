# The heap a board's spend ledger takes per order it counts, on MicroPython, with a build's lib/
# on MICROPYPATH:
#     micropython bench/mpy_ledger.py
# A mandate whose budget runs over a rolling 366 days keeps every order of that time in the
# ledger (thingsdk.core.ledger): 52 weekly orders are reserved and committed as the agent does,
# each id and currency decoded from CBOR as they come in messages. Prints `ledger_entry_bytes`,
# the heap kept per order after a collection.
import gc

from thingsdk.core import cbor
from thingsdk.core.ledger import DAY, Ledger

ORDERS = 52
START = 1767225600
ledger = Ledger([["budget", {"cur": "EUR", "max": 10 ** 9, "period": "rolling",
                             "window": 366 * DAY}]])
gc.collect()
before = gc.mem_alloc()
for i in range(ORDERS):
    order_id, total = cbor.loads(cbor.dumps([START.to_bytes(8, "big") + i.to_bytes(8, "big"),
                                             [2490, "EUR"]]))
    ledger.reserve(order_id, total[0], total[1], START + i * 7 * DAY)
    ledger.commit(order_id)
    order_id = total = None
gc.collect()
assert ledger.usage(ledger.limits[0][1], START + ORDERS * 7 * DAY)[0] == ORDERS
print("ledger_entry_bytes %d" % ((gc.mem_alloc() - before) // ORDERS))
