"""A fridge's water filter that reorders itself: a YF-S201 flow meter on a Raspberry Pi counts the
water through a 300 l filter; the device learns the household's use, orders a new filter within
the owner's mandate before the old one is spent, and closes the need when the new one is fitted.

Wiring (Raspberry Pi, BCM numbering):

    YF-S201 red    -> 5 V (pin 2)       the hall sensor needs 4.5-18 V
    YF-S201 black  -> GND (pin 6)
    YF-S201 yellow -> 10 kOhm -> GPIO17 (pin 11), and GPIO17 -> 20 kOhm -> GND
                      (the pulse output swings to the 5 V supply: the divider brings it to
                      3.3 V, which is all a GPIO input may see)

The output is driven, so no pull-up (`pull_up=False`); a meter with an open-collector output
instead gets `pull_up=True` and no divider. 450 pulses per litre (F = 7.5 x Q l/min).

Run: python examples/water_filter.py [--broker URL] [--speed 3600]
Without GPIO (or with --simulate) the meter runs on gpiozero's mock pins, fed with the pulses a
household drawing 15 l a day would give, through a filter that has 40 l left.
"""

from gpiozero.pins.mock import MockFactory

from thingsdk.core.consumable import DAY, Consumable, RateEstimator
from thingsdk.core.lifecycle import CLOSED, DELIVERED
from thingsdk.device.runtime import Slot
from thingsdk.sensors.flow import FlowMeter
from world import Simulated, World, arguments

PIN, PULSES_PER_LITRE, LIFE = 17, 450, 300_000  # GPIO17, YF-S201, a 300 l filter in ml


class Household:
    """Draws `litres` a day through the meter: the pulses a YF-S201 gives, on the mock pin; the
    filter has had `used` litres through it already."""

    def __init__(self, pin, litres, used):
        self.pin, self.litres, self.used = pin, litres, used
        self.start = self.sent = None

    def __call__(self, now):
        self.start = now if self.start is None else self.start
        due = (self.used + (now - self.start) * self.litres // DAY) * PULSES_PER_LITRE
        for _ in range(due - (self.sent or 0)):
            self.pin.drive_high()
            self.pin.drive_low()
        self.sent = due


def main():
    args = arguments(__doc__)
    factory = MockFactory() if args.simulate else None
    meter = FlowMeter(PIN, PULSES_PER_LITRE, LIFE, pin_factory=factory)
    source = Simulated(meter, Household(factory.pin(PIN), 15, 260)) if args.simulate else meter
    water_filter = Consumable("water-filter", "ml", LIFE, sku="WF-300", lead_time=DAY,
                              lead_spread=DAY // 2, estimator=RateEstimator(min_interval=3600))
    world = World(args, {"item": "WF-300:30.00EUR:2", "budget": "60.00EUR/month"})
    try:
        world.device([Slot(water_filter, source)])
        world.follow(lambda needs: needs.get("water-filter", {}).get("state") == DELIVERED)
        print("The owner fits the new filter: the meter starts counting again.")
        meter.reset()
        world.follow(lambda needs: needs["water-filter"]["state"] == CLOSED)
    finally:
        world.close()


if __name__ == "__main__":
    main()
