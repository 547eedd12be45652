"""Sensor sources (CPython edge): what tells a consumable its level, or how much was used.

A source has `kind` and `read(now) -> int`, in the consumable's unit:
- LEVEL sources return what is left now (a tank, a scale, a flow meter against a filter's life);
- USAGE sources return what was used since their last read (pages printed, doses dispensed).
`now` is unix seconds as an int; only simulated sources depend on it.
"""

LEVEL = "level"
USAGE = "usage"


def feed(consumable, source, now):
    """Read `source` once and hand the value to `consumable`; return the rise in level when the
    reading reveals a refill, else 0. Counted use starts from a full slot."""
    value = source.read(now)
    if source.kind != USAGE:
        return consumable.read(now, value)
    if consumable.level(now) is None:
        consumable.refill(now)
    consumable.use(now, value)
    return 0
