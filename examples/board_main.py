# A board's main.py with your own sensor, in place of the firmware's (firmware/main.py). The
# board's device.toml gives its consumable "coffee-beans" `sensor = {type = "custom"}`.
import gc

import machine

gc.threshold(4096)  # collect often while the code loads, as firmware/main.py does (less heap)
import app  # noqa: E402
from thingsdk.core.agent import LEVEL  # noqa: E402


class Hopper:
    """Grams of beans left: a scale's analog output on ADC pin 34, 0 to 1000 g."""

    kind = LEVEL

    def __init__(self):
        self.adc = machine.ADC(machine.Pin(34))

    def read(self, now):
        return self.adc.read_u16() * 1000 // 65535


app.boot(sources={"coffee-beans": Hopper()})
