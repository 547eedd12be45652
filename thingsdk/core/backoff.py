"""Exponential backoff with jitter, shared by the CPython transport and the firmware's client."""


class Backoff:
    """Attempt n (from 0) waits between half and all of min(cap, base * 2**n) seconds.

    The fixed half makes every client really back off; the random half spreads a fleet's
    reconnections after a broker restart. `rand() -> [0, 1)` comes in (injectable for tests).
    """

    def __init__(self, base, cap, rand):
        if not 0 < base <= cap:
            raise ValueError("need 0 < base <= cap")
        self.base, self.cap, self.rand = base, cap, rand

    def delay(self, attempt):
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 64))
        return ceiling / 2 * (1 + self.rand())
