"""The vendor on MQTT: device uplinks in, answers out on each device's downlink.

Subscription. By default the server takes the uplinks with a plain subscription to
`thingsdk/v1/up/+`. Shared subscriptions (`$share/GROUP/thingsdk/v1/up/+`, opted in to with
`share=GROUP`) spread the uplinks over several workers, but mosquitto 2.0's `acl_file` does not
check SUBSCRIBE: a device can join the group and the broker then hands it its turn of the uplinks,
which it drops as denied reads, so the vendor loses that share (docs/topics.md). Use `share` only
on a broker that checks subscriptions. Workers may share one database file either way (the Store
serialises their work): with a plain subscription each of them sees every message, and all but
the first find it already handled and re-send its recorded answers.

The device is the last level of the uplink topic; the Service refuses a message not signed by it.
Uplinks wait in a FairQueue: one queue per topic, served in turn, so a client that floods its
uplink gets its turn like every other and no more, and a topic that already has PER_TOPIC
messages waiting loses the next (a device waits for answers and never has that many); what is
refused is then throttled per uplink by the Service's RefusalLimiter.
Each worker needs its own MQTT client id: the session is persistent, so uplinks sent while the
worker was away are delivered when it comes back.
"""

import collections
import logging
import queue
import threading
import time

from thingsdk import topics

UPLINKS = topics.every(topics.UP)
PER_TOPIC = 256
log = logging.getLogger(__name__)


class FairQueue:
    """Messages waiting for the handler, one queue per topic, the topics served in turn: `put`
    from the transport's thread, `get` from the server's. `dropped` counts messages refused
    because their topic had `per_topic` waiting."""

    def __init__(self, per_topic=PER_TOPIC):
        self.per_topic = per_topic
        self.dropped = 0
        self._topics = collections.OrderedDict()  # topic -> deque of payloads, in turn order
        self._ready = threading.Condition()

    def put(self, topic, payload):
        """Queue payload; False if its topic's queue is full."""
        with self._ready:
            waiting = self._topics.get(topic)
            if waiting is None:
                waiting = self._topics[topic] = collections.deque()
            if len(waiting) >= self.per_topic:
                self.dropped += 1
                return False
            waiting.append(payload)
            self._ready.notify()
            return True

    def get(self, timeout=None):
        """(topic, payload) of the topic whose turn it is; queue.Empty after timeout seconds."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._topics, timeout):
                raise queue.Empty
            topic, waiting = self._topics.popitem(last=False)
            payload = waiting.popleft()
            if waiting:
                self._topics[topic] = waiting  # to the back of the line
            return topic, payload


def uplink_filter(share=None):
    """The subscription: plain, or shared by the workers of group `share`."""
    return topics.vendor_uplinks(share) if share else UPLINKS


class Server:
    """Runs a Service on a Transport (not yet started) until `stop()`; fulfilment is advanced
    every `interval` seconds. `ready` is set once the broker confirmed the subscription."""

    def __init__(self, service, transport, share=None, interval=1.0, clock=time.time):
        self.service = service
        self.transport = transport
        self.filter = uplink_filter(share)
        self.interval = interval
        self.clock = clock
        self.uplinks = FairQueue()
        self._stop = threading.Event()
        self.ready = threading.Event()
        transport.on_message = self.uplinks.put

    def stop(self):
        """Ask run() to return (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self):
        """Serve until stopped, then close the connection."""
        subscribed = self.transport.subscribe(self.filter)
        self.transport.start()
        next_advance = 0
        try:
            while not self._stop.is_set():
                if not self.ready.is_set() and subscribed.done:
                    self.ready.set()
                    log.log(logging.ERROR if subscribed.refused else logging.INFO,
                            "vendor %s %s %s:%d on %s", self.service.kid.hex(),
                            "REFUSED by" if subscribed.refused else "serving",
                            self.transport.host, self.transport.port, self.filter)
                try:
                    topic, payload = self.uplinks.get(timeout=min(0.2, self.interval))
                except queue.Empty:
                    pass
                else:
                    self._publish(self._answer(topic, payload))
                now = int(self.clock())
                if now >= next_advance:
                    next_advance = now + self.interval
                    self._publish(self._guarded(self.service.advance, now))
        finally:
            self.transport.close()
            log.info("vendor stopped; refused messages by reason: %s; dropped from full queues: "
                     "%d", self.service.refusals, self.uplinks.dropped)

    def _answer(self, topic, payload):
        try:
            kind, kid = topics.parse(topic)
        except ValueError:
            kind = None
        if kind != topics.UP:
            log.warning("ignored a message on %s", topic)
            return []
        return self._guarded(self.service.handle, payload, kid, int(self.clock()))

    @staticmethod
    def _guarded(work, *args):
        try:
            return work(*args)
        except Exception:  # a failure (its transaction rolled back) must not stop the server
            log.exception("vendor work failed")
            return []

    def _publish(self, answers):
        for topic, data in answers:
            self.transport.publish(topic, data)
