"""A coffee machine that reorders its beans: the bean hopper stands on a load cell read by an
HX711 24-bit ADC on a Raspberry Pi; the device learns how fast the beans go and orders a 1 kg bag
within the owner's mandate in time for it to arrive before the hopper runs dry.

Wiring (Raspberry Pi, BCM numbering):

    HX711 VCC -> 3.3 V (pin 1)    powering it from 3.3 V keeps DOUT at 3.3 V logic
    HX711 GND -> GND (pin 9)
    HX711 DT  -> GPIO5 (pin 29)   DOUT is push-pull: no pull-up
    HX711 SCK -> GPIO6 (pin 31)
    load cell  red -> E+, black -> E-, white -> A-, green -> A+ (channel A, gain 128)

Calibrate once with the empty hopper on the cell: `LoadCell.tare()`, then with a known weight
`LoadCell.calibrate(grams)`, and keep `offset` and `counts_per_unit` (below: a 5 kg cell).

Run: python examples/coffee_beans.py [--broker URL] [--speed 3600]
Without GPIO (or with --simulate) the HX711 is simulated: its raw counts come from a hopper with
300 g of beans that a household drinking about eight espressos a day empties.
"""

from thingsdk.core.consumable import DAY, Consumable, RateEstimator
from thingsdk.core.lifecycle import CLOSED, DELIVERED
from thingsdk.device.runtime import Slot
from thingsdk.sensors.hx711 import HX711, LoadCell
from thingsdk.sensors.simulated import SimulatedLevel
from world import World, arguments

DT, SCK = 5, 6
OFFSET, COUNTS_PER_GRAM = 84_210, 420  # from tare() and calibrate()
HOPPER = 1000  # grams


class SimulatedHX711:
    """The raw counts an HX711 gives with `beans` (a SimulatedLevel in grams) on the cell."""

    def __init__(self, beans, clock):
        self.beans, self.clock = beans, clock

    def read_raw(self):
        return OFFSET + round(self.beans.read(int(self.clock())) * COUNTS_PER_GRAM)


def main():
    args = arguments(__doc__)
    world = World(args, {"item": "BEANS-1KG:25.00EUR:2", "budget": "50.00EUR/month"})
    try:
        if args.simulate:
            beans = SimulatedLevel(HOPPER, daily_use=150, start=world.start, noise=1.0)
            beans.true_level = 300.0
            adc = SimulatedHX711(beans, world.clock)
        else:
            adc = HX711(DT, SCK)
        scale = LoadCell(adc, COUNTS_PER_GRAM, OFFSET)
        hopper = Consumable("coffee-beans", "g", HOPPER, sku="BEANS-1KG", lead_time=DAY,
                            lead_spread=DAY // 2,
                            estimator=RateEstimator(min_interval=3600, noise=20))
        world.device([Slot(hopper, scale)])
        world.follow(lambda needs: needs.get("coffee-beans", {}).get("state") == DELIVERED)
        print("The owner pours the new bag into the hopper.")
        if args.simulate:
            beans.true_level = float(HOPPER)
        world.follow(lambda needs: needs["coffee-beans"]["state"] == CLOSED)
    finally:
        world.close()


if __name__ == "__main__":
    main()
