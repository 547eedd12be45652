"""A load cell on an HX711 24-bit ADC, bit-banged over two GPIO pins with gpiozero."""

import time

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from thingsdk.sensors import LEVEL

EXTRA_PULSES = {128: 1, 32: 2, 64: 3}  # gain (A: 128 or 64, B: 32) -> pulses after the 24 bits


class HX711:
    """The HX711 protocol: DOUT low means a conversion is ready; each SCK pulse shifts one bit out,
    most significant first; 1 to 3 more pulses choose the channel and gain of the next conversion.

    The bit loop writes and reads the gpiozero pin objects directly, skipping the device layer's
    locking: SCK must stay high under 60 us or the chip powers down. On a Pi, the lgpio or pigpio
    pin factory is fast enough; the test suite drives it through gpiozero's mock pins.
    """

    def __init__(self, data_pin, clock_pin, gain=128, timeout=1.0, pin_factory=None):
        if gain not in EXTRA_PULSES:
            raise ValueError("gain must be 128, 64 (channel A) or 32 (channel B)")
        self.timeout = timeout
        self._extra = EXTRA_PULSES[gain]
        self._data = DigitalInputDevice(data_pin, pin_factory=pin_factory)
        self._clock = DigitalOutputDevice(clock_pin, pin_factory=pin_factory)

    def ready(self):
        return not self._data.pin.state

    def read_raw(self):
        """One conversion as a signed int (two's complement, -2**23 .. 2**23 - 1).

        Raises TimeoutError when no conversion is ready within `timeout` seconds.
        """
        deadline = time.monotonic() + self.timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError("HX711 data never went ready (check wiring and power)")
            time.sleep(0.001)
        sck, dout = self._clock.pin, self._data.pin
        value = 0
        for _ in range(24):
            sck.state = True
            value = (value << 1) | bool(dout.state)
            sck.state = False
        for _ in range(self._extra):
            sck.state = True
            sck.state = False
        return value - (1 << 24) if value & 0x800000 else value

    def close(self):
        self._data.close()
        self._clock.close()


class LoadCell:
    """The weight on a scale, in the consumable's unit (usually g), from an HX711.

    weight = (mean of `samples` raw readings - `offset`) / `counts_per_unit`. `offset` is the raw
    reading with the empty container on (see `tare`); `counts_per_unit` comes from `calibrate`.
    """

    kind = LEVEL

    def __init__(self, adc, counts_per_unit, offset=0, samples=5):
        if not counts_per_unit or samples < 1:
            raise ValueError("counts_per_unit must be non-zero and samples at least 1")
        self.adc = adc
        self.counts_per_unit = counts_per_unit
        self.offset = offset
        self.samples = samples

    def raw(self):
        """The mean of `samples` raw readings, rounded."""
        return round(sum(self.adc.read_raw() for _ in range(self.samples)) / self.samples)

    def tare(self):
        """Take what is on the scale now as zero; return the new offset."""
        self.offset = self.raw()
        return self.offset

    def calibrate(self, known):
        """With a known weight (in units) on the tared scale, set and return counts_per_unit."""
        counts = self.raw() - self.offset
        if not known or not counts:
            raise ValueError("calibration needs a known non-zero weight that the scale registers")
        self.counts_per_unit = counts / known
        return self.counts_per_unit

    def read(self, now):
        return round((self.raw() - self.offset) / self.counts_per_unit)
