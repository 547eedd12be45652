"""A tank's contents from the distance between a sensor at the top and the liquid's surface."""

import math

from gpiozero import DistanceSensor

from thingsdk.sensors import LEVEL


class VerticalCylinder:
    """An upright round tank; sizes in mm, volumes in ml."""

    def __init__(self, diameter, height):
        self.radius = diameter / 2
        self.height = height

    def volume(self, fill):
        """Millilitres held when filled to `fill` mm (clamped to the tank)."""
        return round(math.pi * self.radius**2 * _clamp(fill, self.height) / 1000)


class Box:
    """A rectangular tank; sizes in mm, volumes in ml."""

    def __init__(self, width, depth, height):
        self.width = width
        self.depth = depth
        self.height = height

    def volume(self, fill):
        """Millilitres held when filled to `fill` mm (clamped to the tank)."""
        return round(self.width * self.depth * _clamp(fill, self.height) / 1000)


class HorizontalCylinder:
    """A round tank lying on its side; sizes in mm, volumes in ml."""

    def __init__(self, diameter, length):
        self.radius = diameter / 2
        self.length = length
        self.height = diameter

    def volume(self, fill):
        """Millilitres held when filled to `fill` mm (clamped): circular segment times length."""
        r = self.radius
        h = _clamp(fill, self.height)
        segment = r * r * math.acos((r - h) / r) - (r - h) * math.sqrt(max(0.0, 2 * r * h - h * h))
        return round(segment * self.length / 1000)


def _clamp(fill, height):
    return min(max(fill, 0), height)


class TankLevel:
    """The volume in a tank, from `distance()`: mm from the sensor down to the surface.

    `offset` is the distance in mm from the sensor to the brim (the level at `shape.height`).
    """

    kind = LEVEL

    def __init__(self, shape, distance, offset=0):
        self.shape = shape
        self.distance = distance
        self.offset = offset

    def capacity(self):
        return self.shape.volume(self.shape.height)

    def read(self, now):
        return self.shape.volume(self.shape.height - (self.distance() - self.offset))


class UltrasonicDistance:
    """mm to the surface from an HC-SR04 through gpiozero's DistanceSensor (a median of 9 pings)."""

    def __init__(self, echo, trigger, max_distance=2.0, pin_factory=None):
        self.sensor = DistanceSensor(
            echo, trigger, max_distance=max_distance, pin_factory=pin_factory
        )

    def __call__(self):
        return round(self.sensor.distance * 1000)

    def close(self):
        self.sensor.close()
