"""Refused traffic, counted per uplink topic and throttled with a token bucket per topic.

Every refusal on a topic (a message that did not open, or was not the topic's device's) takes a
token from the topic's bucket, which refills at `rate` tokens a second up to `burst`. While a
bucket has less than one token, `allows` is False and the vendor drops that topic's messages
before reading them. Messages that open are never charged, so a device that behaves is never
throttled; one whose uplink someone else can publish to shares its fate, which is why the broker
must let only the device publish there (docs/topics.md).

Memory and time are bounded: at most `max_topics` buckets are kept; when a new topic needs one,
the least recently charged is forgotten (a forgotten topic starts again with a full bucket).
"""

import time


class RefusalLimiter:
    """Token buckets for refused messages, one per topic (see the module's docstring)."""

    def __init__(self, rate=2.0, burst=50, max_topics=4096, clock=time.monotonic):
        if not (rate > 0 and burst >= 1 and max_topics >= 1):
            raise ValueError("rate must be > 0, burst and max_topics >= 1")
        self.rate = rate
        self.burst = burst
        self.max_topics = max_topics
        self.clock = clock
        self._buckets = {}  # topic -> [tokens, when last charged, refusals counted]; oldest first

    def _tokens(self, bucket, now):
        return min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)

    def allows(self, topic):
        """Whether a message on topic may be read now."""
        bucket = self._buckets.get(topic)
        return bucket is None or self._tokens(bucket, self.clock()) >= 1

    def charge(self, topic, count=1):
        """Count `count` refusals on topic and take as many tokens."""
        now = self.clock()
        bucket = self._buckets.pop(topic, None)
        if bucket is None:
            if len(self._buckets) >= self.max_topics:
                del self._buckets[next(iter(self._buckets))]
            bucket = [self.burst, now, 0]
        self._buckets[topic] = [max(0.0, self._tokens(bucket, now) - count), now, bucket[2] + count]

    def refusals(self, topic):
        """The refusals counted on topic while its bucket was kept."""
        bucket = self._buckets.get(topic)
        return bucket[2] if bucket else 0
