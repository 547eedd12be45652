"""A fake `machine` for the virtual board: what the pins and the ADC read, the edges IRQ handlers
see and the HX711's data all come from the rig's control channel. Constants have ESP32's values."""

import sys
import time

import _vboard_js as _js

PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
_freq = [240000000]
_irq = {"on": True, "waiting": []}


def _call(handler, arg):
    try:
        handler(arg)
    except Exception as exc:
        print("Uncaught exception in IRQ callback handler")
        sys.print_exception(exc)


class Pin:
    IN, OUT, OPEN_DRAIN = 1, 3, 7
    PULL_UP, PULL_DOWN = 2, 1
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id, self._mode, self._pull, self._out = id, Pin.IN, None, 0
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is not None:
            self._out = 1 if v else 0
            _js.pin_out(self.id, self._out)
            return None
        if self._mode == Pin.OUT:
            return self._out
        level = _js.pin_in(self.id)
        if level is None:  # nothing drives it: the pull decides
            return 1 if self._pull == Pin.PULL_UP else 0
        return level

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3):
        """handler(pin) on each edge in trigger (IRQ_RISING | IRQ_FALLING); None removes it."""
        if handler is None:
            _js.irq(self.id, None, 0)
            return None
        pin = self

        def fire():
            if _irq["on"]:
                _call(handler, pin)
            else:
                _irq["waiting"].append((handler, pin))

        _js.irq(self.id, fire, trigger)
        return None

    def __repr__(self):
        return "Pin(%s)" % (self.id,)


class ADC:
    def __init__(self, pin, *args, **kwargs):
        self.id = pin.id if isinstance(pin, Pin) else pin

    def read_u16(self):
        return _js.adc(self.id)


class RTC:
    def datetime(self, dt=None):
        """(year, month, day, weekday, hours, minutes, seconds, subseconds); setting it skews the
        board's clock as the rig's clock op does."""
        if dt is None:
            t = time.localtime()
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        year, month, day, weekday, hours, minutes, seconds = dt[:7]
        target = time.mktime((year, month, day, hours, minutes, seconds, weekday, 0))
        _js.set_clock(_js.clock() + target - time.time())
        return None


def reset():
    """A hard reset: nothing after it runs."""
    _js.reset(True)
    raise SystemExit


def soft_reset():
    _js.reset(False)
    raise SystemExit


def reset_cause():
    return SOFT_RESET if _js.boot_kind() == "soft" else PWRON_RESET


def unique_id():
    return b"vboard\x00\x01"


def freq(hz=None):
    if hz is None:
        return _freq[0]
    _freq[0] = hz
    return None


def idle():
    pass


def disable_irq():
    state, _irq["on"] = _irq["on"], False
    return state


def enable_irq(state=True):
    _irq["on"] = state
    while _irq["on"] and _irq["waiting"]:
        _call(*_irq["waiting"].pop(0))
