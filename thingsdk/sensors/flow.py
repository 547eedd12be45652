"""A pulse-output flow meter (a hall-effect turbine such as the YF-S201) on one GPIO pin."""

import threading

from gpiozero import DigitalInputDevice

from thingsdk.sensors import LEVEL


class FlowMeter:
    """What is left of a consumable that water flows through, e.g. a filter rated for `capacity` ml.

    Counts rising edges with gpiozero callbacks; `pulses_per_litre` is the meter's calibration.
    The level is `capacity` minus the millilitres counted since the last `reset` (call it when the
    filter is replaced); it goes below zero once more than `capacity` has flowed through.
    """

    kind = LEVEL

    def __init__(self, pin, pulses_per_litre, capacity, pull_up=False, pin_factory=None):
        if pulses_per_litre <= 0:
            raise ValueError("pulses_per_litre must be positive")
        self.pulses_per_litre = pulses_per_litre
        self.capacity = capacity
        self._pulses = 0
        self._lock = threading.Lock()
        self._device = DigitalInputDevice(pin, pull_up=pull_up, pin_factory=pin_factory)
        self._device.when_activated = self._count

    def _count(self):
        with self._lock:
            self._pulses += 1

    def consumed(self):
        """Millilitres counted since the last reset."""
        with self._lock:
            pulses = self._pulses
        return int(pulses * 1000 // self.pulses_per_litre)

    def reset(self):
        with self._lock:
            self._pulses = 0

    def read(self, now):
        return self.capacity - self.consumed()

    def close(self):
        self._device.close()
