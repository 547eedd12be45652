"""A usage counter: the host product counts events (a page printed, a dose dispensed)."""

import threading

from thingsdk.sensors import USAGE


class UsageCounter:
    """Events the host records; `read` returns how many since the last read and starts over."""

    kind = USAGE

    def __init__(self):
        self._count = 0
        self._lock = threading.Lock()

    def record(self, units=1):
        """Count `units` used (default one event). Safe to call from any thread."""
        if not isinstance(units, int) or isinstance(units, bool) or units < 0:
            raise ValueError("units must be a non-negative int")
        with self._lock:
            self._count += units

    def read(self, now):
        with self._lock:
            count, self._count = self._count, 0
        return count
