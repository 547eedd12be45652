"""The catalog the vendor's load tests and benchmarks sell from: two items with the stock asked
for, so that a burst of orders never runs out (tests/test_vendor_crash.py, bench/vendor.py,
bench/fleet.py)."""

SKUS = ("INK-XL-BK", "BEANS-1KG")

_TEXT = """
[vendor]
offer_hours = 24
visit_hours = 168

[skus.INK-XL-BK]
title = "Black ink cartridge XL"
category = "ink-black"
price = [3190, "EUR"]
shipping = [0, "EUR"]
lead_hours = 48
stock = %d

[skus.BEANS-1KG]
title = "Espresso beans, 1 kg"
category = "coffee-beans"
price = [1890, "EUR"]
shipping = [390, "EUR"]
lead_hours = 48
stock = %d

[support]
steps = ["We opened a case."]
"""


def catalog(stock):
    """The catalog's TOML text, each item with `stock` units in store."""
    return _TEXT % (stock, stock)
