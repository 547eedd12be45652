"""Stand-ins for `machine` objects that the tests drive: an ADC, a Pin, an HX711 chip's two pins."""


class ADC:
    """`read_u16()` returns the values the test set, in turn (the last one repeats)."""

    def __init__(self, *values):
        self.values = list(values)
        self.reads = 0

    def read_u16(self):
        self.reads += 1
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


class Pin:
    """A pin whose level the test sets (`level`) and whose interrupt the test fires."""

    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __init__(self, level=0):
        self.level = level
        self.handler = self.trigger = None

    def value(self, level=None):
        if level is None:
            return self.level
        self.level = 1 if level else 0

    def irq(self, handler=None, trigger=None):
        self.handler, self.trigger = handler, trigger

    def fire(self, times=1):
        for _ in range(times):
            self.handler(self)


class _Line:
    def __init__(self, read=None, write=None):
        self._read, self._write = read, write

    def value(self, level=None):
        if level is None:
            return self._read()
        self._write(1 if level else 0)


class HX711Chip:
    """An HX711 as its DOUT and SCK pins see it: while `ready`, DOUT is low; each rising SCK edge
    shifts out the next bit of `value` (24-bit two's complement, MSB first). Reading DOUT after the
    24 bits and the gain pulses ends the conversion: `pulses` gets how many edges it took."""

    def __init__(self, value=0):
        self.value = value
        self.ready = True
        self.pulses = []
        self.sck_level = 0
        self._edges = None  # rising edges in the conversion being read, None between conversions
        self.dout = _Line(read=self._dout)
        self.sck = _Line(write=self._clock)

    def _dout(self):
        if self._edges is not None and self._edges > 24 and not self.sck_level:
            self.pulses.append(self._edges)
            self._edges = None
        if self._edges is None:
            return 0 if self.ready else 1
        if 1 <= self._edges <= 24:
            return (self.value >> (24 - self._edges)) & 1
        return 1

    def _clock(self, level):
        if level and not self.sck_level:
            if self._edges is None:
                if not self.ready:
                    raise AssertionError("clocked while no conversion was ready")
                self._edges = 0
            self._edges += 1
        self.sck_level = level
