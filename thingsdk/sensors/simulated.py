"""A simulated level source for demos and tests: deterministic for a seed and a series of reads."""

import random

from thingsdk.core.consumable import DAY
from thingsdk.sensors import LEVEL


class SimulatedLevel:
    """A consumable used at about `daily_use` units a day, read through a noisy sensor.

    Between reads, use is `daily_use` times the elapsed days times a factor drawn uniformly from
    1 +- `variability`; each reading adds Gaussian noise of standard deviation `noise`. When the
    true level falls below `refill_below` it is refilled to `capacity` (None: never). The same
    seed and the same read times give the same readings.
    """

    kind = LEVEL

    def __init__(self, capacity, daily_use, start, noise=0.0, variability=0.3, refill_below=None,
                 seed=0):
        self.capacity = capacity
        self.daily_use = daily_use
        self.noise = noise
        self.variability = variability
        self.refill_below = refill_below
        self.true_level = float(capacity)
        self.refills = 0
        self._time = start
        self._rng = random.Random(seed)

    def advance(self, now):
        """Run the simulation forward to `now` without taking a reading; return the true level."""
        elapsed = now - self._time
        if elapsed < 0:
            raise ValueError("time went backwards")
        factor = self._rng.uniform(1 - self.variability, 1 + self.variability)
        self.true_level = max(0.0, self.true_level - self.daily_use * elapsed / DAY * factor)
        self._time = now
        if self.refill_below is not None and self.true_level < self.refill_below:
            self.true_level = float(self.capacity)
            self.refills += 1
        return self.true_level

    def read(self, now):
        return round(self.advance(now) + self._rng.gauss(0, self.noise))
