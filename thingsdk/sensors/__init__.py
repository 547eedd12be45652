"""Sensor sources (CPython edge): what tells a consumable its level, or how much was used.

A source has `kind` and `read(now) -> int`, in the consumable's unit (the Sensor protocol):
- LEVEL sources return what is left now (a tank, a scale, a flow meter against a filter's life);
- USAGE sources return what was used since their last read (pages printed, doses dispensed).
`now` is unix seconds as an int; only simulated sources depend on it.
"""

from typing import Protocol

from thingsdk.core.agent import LEVEL, USAGE, feed

__all__ = ["LEVEL", "USAGE", "Sensor", "feed"]


class Sensor(Protocol):
    """What a Slot reads, once a step: `kind` is LEVEL or USAGE; `read(now)` returns what is
    left, or what was used since the last read, as an int in the consumable's unit."""

    kind: str

    def read(self, now: int) -> int: ...
