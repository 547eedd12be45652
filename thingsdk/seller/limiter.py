"""Token buckets per key (an uplink topic, a device), for the vendor's two limits.

A bucket refills at `rate` tokens a second up to `burst`. Memory and time are bounded: at most
`max_keys` buckets are kept; when a new key needs one, the least recently used is forgotten (a
forgotten key starts again with a full bucket).

- RefusalLimiter, per uplink topic, for refused traffic: every refusal on a topic (a message that
  did not open, or was not the topic's device's) takes a token. While a bucket has less than one
  token, `allows` is False and the vendor drops that topic's messages before reading them.
  Messages that open are never charged, so a device that behaves is never throttled; one whose
  uplink someone else can publish to shares its fate, which is why the broker must let only the
  device publish there (docs/topics.md).
- DeviceLimiter, per device, for the signed messages it sends: each takes a token, and one that
  finds the bucket empty is refused (`rate-limited`). Refusals are answered at most once per
  `answer_every` seconds a device, so the answers to a flood are bounded too.
"""

import time


class TokenBuckets:
    """Buckets per key; each bucket is [tokens, when last used, refusals counted, answered at]."""

    def __init__(self, rate, burst, max_keys=4096, clock=time.monotonic):
        if not (rate > 0 and burst >= 1 and max_keys >= 1):
            raise ValueError("rate must be > 0, burst and max_keys >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets = {}  # key -> bucket, least recently used first

    def _tokens(self, bucket, now):
        return min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)

    def _bucket(self, key, now):
        """key's bucket refilled to now, moved to the back of the line (made if missing)."""
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                del self._buckets[next(iter(self._buckets))]
            bucket = [self.burst, now, 0, None]
        else:
            bucket[0] = self._tokens(bucket, now)
            bucket[1] = now
        self._buckets[key] = bucket
        return bucket

    def allows(self, key):
        """Whether key's bucket has a token now (takes none)."""
        bucket = self._buckets.get(key)
        return bucket is None or self._tokens(bucket, self.clock()) >= 1

    def refusals(self, key):
        """The refusals counted for key while its bucket was kept."""
        bucket = self._buckets.get(key)
        return bucket[2] if bucket else 0


class RefusalLimiter(TokenBuckets):
    """Token buckets for refused messages, one per uplink topic (see the module's docstring)."""

    def __init__(self, rate=2.0, burst=50, max_topics=4096, clock=time.monotonic):
        super().__init__(rate, burst, max_topics, clock)

    def charge(self, topic, count=1):
        """Count `count` refusals on topic and take as many tokens."""
        bucket = self._bucket(topic, self.clock())
        bucket[0] = max(0.0, bucket[0] - count)
        bucket[2] += count


class DeviceLimiter(TokenBuckets):
    """Token buckets for signed messages, one per device (see the module's docstring). The
    defaults let a device send 60 messages at once and 5 a second after that: far above what
    one sends (a status a day, a few quotes and orders per need)."""

    def __init__(self, rate=5.0, burst=60, max_devices=65536, answer_every=10.0,
                 clock=time.monotonic):
        super().__init__(rate, burst, max_devices, clock)
        self.answer_every = answer_every

    def take(self, device):
        """Take a token for a message from device: False (and the refusal counted) if none."""
        bucket = self._bucket(device, self.clock())
        if bucket[0] >= 1:
            bucket[0] -= 1
            return True
        bucket[2] += 1
        return False

    def answer_due(self, device):
        """Whether a refusal of device's is to be answered: once per answer_every seconds."""
        now = self.clock()
        bucket = self._bucket(device, now)
        if bucket[3] is not None and now - bucket[3] < self.answer_every:
            return False
        bucket[3] = now
        return True
