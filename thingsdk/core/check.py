"""Checks of plain values that several core modules make (MicroPython: bool is not an int there,
and on CPython it is, so both say what they mean), and the error a message's check raises."""


class MessageError(ValueError):
    """A message that does not match the protocol (thingsdk.core.messages and its schemas).
    `.code` is a short machine reason, `.field` names the value."""

    def __init__(self, code, field, detail=""):
        super().__init__("%s: %s%s" % (field, code, detail and " (" + detail + ")"))
        self.code = code
        self.field = field


def is_int(value):
    """Whether value is an int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def int_in(value, low, high, name, error):
    """value if it is an int in low..high; else raise error naming it."""
    if not (is_int(value) and low <= value <= high):
        raise error("%s must be an int in %d..%d" % (name, low, high))
    return value


def const(value):
    """MicroPython's compile-time constant marker, for CPython: `X = const((...))` makes a tuple
    of constants that MicroPython's compiler substitutes where X is named, so tables built from
    such tuples stay in flash when frozen; `_X = const(5)`, a module's own number, leaves no
    name behind at all (no global, no interned name in a board's heap). MicroPython never calls
    this: its compiler handles const() itself."""
    return value
