"""Sensor sources on `machine` pins and ADCs, with the contract of the CPython thingsdk.sensors.

A source has `kind` and `read(now) -> int` in the consumable's unit: a "level" source returns what
is left, a "usage" source what was used since its last read. Integer maths only. Constructors take
pin and ADC objects (machine.Pin, machine.ADC or anything with the same methods), so nothing here
imports `machine` unguarded and the module runs on CPython too.
"""

from ticks import sleep_ms

try:
    import machine
except ImportError:  # CPython, the WebAssembly port: nothing interrupts a bit loop
    machine = None

LEVEL = "level"
USAGE = "usage"
_disable_irq = getattr(machine, "disable_irq", lambda: None)
_enable_irq = getattr(machine, "enable_irq", lambda state: None)


def _scaled(num, den):
    """num / den rounded to the nearest int (halves up), for any signs."""
    if den < 0:
        num, den = -num, -den
    return (2 * num + den) // (2 * den)


class AdcLevel:
    """A level read from an ADC (`read_u16()`), linear between the raw readings `empty` and `full`
    (either may be the larger), clamped to 0..capacity; the mean of `samples` readings."""

    kind = LEVEL

    def __init__(self, adc, empty, full, capacity, samples=4):
        if empty == full or capacity <= 0 or samples < 1:
            raise ValueError("need empty != full, capacity > 0 and samples >= 1")
        self.adc = adc
        self.empty = empty
        self.full = full
        self.capacity = capacity
        self.samples = samples

    def read(self, now):
        raw = _scaled(sum(self.adc.read_u16() for _ in range(self.samples)), self.samples)
        level = _scaled((raw - self.empty) * self.capacity, self.full - self.empty)
        return min(max(level, 0), self.capacity)


class PulseUsage:
    """Units used, from a pulse-output meter (a flow turbine) on a pin: `per_unit` pulses make
    `units` units (450 pulses a litre in ml: per_unit=450, units=1000).

    The interrupt handler only advances a 30-bit counter (small ints: it never allocates) and
    `read` takes the difference from the last count, so no pulse is lost or counted twice and no
    interrupt has to be disabled. Each read returns whole units and carries the remainder.
    """

    kind = USAGE
    MASK = 0x3FFFFFFF

    def __init__(self, pin, per_unit, units=1, trigger=None):
        if per_unit <= 0 or units <= 0:
            raise ValueError("per_unit and units must be positive")
        self.per_unit = per_unit
        self.units = units
        self._pulses = self._seen = self._carry = 0
        pin.irq(handler=self._pulse, trigger=pin.IRQ_RISING if trigger is None else trigger)

    def _pulse(self, pin):
        self._pulses = (self._pulses + 1) & self.MASK

    def read(self, now):
        count = self._pulses
        pending = self._carry + ((count - self._seen) & self.MASK) * self.units
        self._seen = count
        used, self._carry = divmod(pending, self.per_unit)
        return used


_EXTRA = {128: 1, 32: 2, 64: 3}  # gain (A: 128 or 64, B: 32) -> clock pulses after the 24 bits


class HX711:
    """The HX711 24-bit ADC, bit-banged: `dout` low means a conversion is ready; each `sck` pulse
    shifts one bit out, most significant first; 1 to 3 more choose the next gain and channel.
    Interrupts are off during the bits: SCK high for over 60 us powers the chip down."""

    def __init__(self, dout, sck, gain=128, timeout_ms=1000):
        if gain not in _EXTRA:
            raise ValueError("gain must be 128, 64 (channel A) or 32 (channel B)")
        self.dout = dout
        self.sck = sck
        self.extra = _EXTRA[gain]
        self.timeout_ms = timeout_ms
        sck.value(0)

    def read_raw(self):
        """One conversion, -2**23 .. 2**23 - 1; OSError if none is ready within timeout_ms."""
        waited = 0
        while self.dout.value():
            if waited >= self.timeout_ms:
                raise OSError("HX711 data never went ready (check wiring and power)")
            sleep_ms(1)
            waited += 1
        sck, dout, value = self.sck, self.dout, 0
        state = _disable_irq()
        try:
            for _ in range(24):
                sck.value(1)
                value = (value << 1) | dout.value()
                sck.value(0)
            for _ in range(self.extra):
                sck.value(1)
                sck.value(0)
        finally:
            _enable_irq(state)
        return value - 0x1000000 if value & 0x800000 else value


class ScaleLevel:
    """Grams (or the scale's unit) left in a container on a load cell: the mean of `samples` raw
    readings minus `zero` (the raw reading of the empty scale), times scale_num / scale_den, minus
    the container's own `tare`; never below 0."""

    kind = LEVEL

    def __init__(self, hx711, tare, scale_num, scale_den, zero=0, samples=3):
        if not scale_num or not scale_den or samples < 1:
            raise ValueError("need non-zero scale_num and scale_den, and samples >= 1")
        self.hx711 = hx711
        self.tare = tare
        self.scale_num = scale_num
        self.scale_den = scale_den
        self.zero = zero
        self.samples = samples

    def read(self, now):
        total = sum(self.hx711.read_raw() for _ in range(self.samples)) - self.zero * self.samples
        grams = _scaled(total * self.scale_num, self.scale_den * self.samples)
        return max(grams - self.tare, 0)
