"""A vending machine that asks for help: when its controller reports a fault, the device files a
support request with the fault code and diagnostics, shows the vendor's reply (steps to try) and,
when the vendor quotes a technician visit, decides on it like an order, within the owner's
mandate: here it books the visit, which the mandate allows up to 100 EUR.

Wiring: none for thingsdk. The machine's controller knows its faults (an MDB coin mechanism
reports a jam, a temperature probe a warm cabinet); the host program calls
`device.report_fault(code, diagnostics)` with a fault token and up to 32 name -> int, text or
bool diagnostics. This script plays the controller, which reports a coin jam.

Run: python examples/vending_machine.py [--broker URL] [--speed 3600]
"""

from thingsdk.core.lifecycle import CLOSED, PLACED
from world import World, arguments

FAULT = "coin-jam"


def main():
    args = arguments(__doc__, hardware=False)
    world = World(args, {"item": "service-visit:100.00EUR:1", "budget": "150.00EUR/month"})
    try:
        device = world.device([])
        print("The coin mechanism reports a jam.")
        device.report_fault(FAULT, {"coins-accepted": 41, "coins-rejected": 9,
                                    "validator": "MDB-CG7", "door-open": False},
                            text="Coins jam in the validator after a few sales.")
        world.follow(lambda needs: needs["fault:" + FAULT]["state"] in (PLACED, CLOSED))
    finally:
        world.close()


if __name__ == "__main__":
    main()
