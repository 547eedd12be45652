"""What passes on the broker, as the demo sees it: one more client, subscribed to every thing's
uplink, downlink and topics to and from its owner, that checks each message's signature against the keys the demo knows; and
what is still on its way: the messages the things and the vendor published that it has not seen
yet, the messages it saw that their recipient has not received yet, and the requests the vendor
has not answered yet.
"""

import os
import queue
import threading
import time
from collections import Counter

from thingsdk import codec, topics
from thingsdk.core import cose
from thingsdk.core import messages as m
from thingsdk.demo import DemoError

FILTERS = tuple(topics.every(kind) for kind in (topics.UP, topics.DOWN, topics.TO_OWNER,
                                                topics.FROM_OWNER))
FROM_THINGS = (topics.UP, topics.TO_OWNER)
ANSWERED = (m.QUOTE_REQUEST, m.ORDER, m.CANCEL, m.SUPPORT_REQUEST)  # the vendor answers these
TIMEOUT = 10.0  # real seconds for the broker to answer


class Seen:
    """One message on the wire: from a thing (`up`) or to it, between it and its owner (`owner`)
    or its vendor, the thing's kid, the bytes, and the checked message (None when its signature
    does not verify)."""

    def __init__(self, up, kid, data, message, owner=False):
        self.up, self.kid, self.data, self.message = up, kid, data, message
        self.owner = owner


class Wire:
    """The watching client, on `link`. It checks signatures with the keys it is told to trust."""

    def __init__(self, link):
        self.link = link
        self.keys = {}
        self._queue = queue.Queue()
        self._lock = threading.Lock()
        self._coming = Counter()  # messages published on watched transports, not seen yet
        self._receivers = []  # [transport, receives(topic), messages seen for it]
        self._waiting = set()  # ids of requests the vendor has not answered yet
        self.transport = link.transport("thingsdk-demo-wire-" + os.urandom(4).hex(),
                                        lambda topic, data: self._queue.put((topic, data)))

    def trust(self, verifier):
        self.keys[verifier.kid] = verifier

    def thing_transport(self, client_id):
        """A thing's Transport (its client id is its key id in hex): settle() waits to see what
        it publishes, and until it has received what the watcher saw on its downlink."""
        kid = bytes.fromhex(client_id)
        inbound = (topics.downlink(kid), topics.from_owner(kid))
        return self._watched(client_id, lambda topic: topic in inbound)

    def owner_transport(self, client_id):
        """The owner's Transport: settle() waits to see what it publishes, and until it has
        received every message to the owner the watcher saw."""
        return self._watched(client_id, lambda topic: topics.parse(topic)[0] == topics.TO_OWNER)

    def vendor_transport(self, client_id):
        """The vendor's Transport: settle() waits to see what it publishes, and until it has
        received every uplink the watcher saw."""
        return self._watched(client_id, lambda topic: topics.parse(topic)[0] == topics.UP)

    def _watched(self, client_id, receives):
        transport = self.link.transport(client_id, announce=self._announce)
        self._receivers.append([transport, receives, 0])
        return transport

    def _announce(self, data):
        with self._lock:
            self._coming[bytes(data)] += 1

    def start(self):
        """Connect and subscribe; DemoError when the broker does not let it."""
        acks = [self.transport.subscribe(f) for f in FILTERS]
        self.transport.start()
        if not all(ack.wait(TIMEOUT) for ack in acks):
            raise DemoError("no answer from the broker at %s in %d s" % (self.link.url, TIMEOUT))
        if any(ack.refused for ack in acks):
            raise DemoError("the broker at %s refused to let the demo watch %s"
                            % (self.link.url, " and ".join(FILTERS)))

    def close(self):
        self.transport.close()

    def publish(self, topic, data):
        """Publish as anyone on the broker can (the demo's attacker)."""
        self.transport.publish(topic, data).wait(TIMEOUT)

    def drain(self):
        """The messages seen since the last call, in the order they came."""
        seen = []
        while True:
            try:
                topic, data = self._queue.get_nowait()
            except queue.Empty:
                return seen
            kind, kid = topics.parse(topic)
            for receiver in self._receivers:
                receiver[2] += receiver[1](topic)
            with self._lock:
                if self._coming[data] > 0:
                    self._coming[data] -= 1
            message = self._check(data)
            if message is not None and kind == topics.UP and message.type in ANSWERED:
                self._waiting.add(message.id)
            elif message is not None and kind == topics.DOWN:
                self._waiting.discard(message.re)
            seen.append(Seen(kind in FROM_THINGS, kid, data, message,
                             kind in (topics.TO_OWNER, topics.FROM_OWNER)))

    def settle(self, timeout):
        """drain() until every message published by the things and the vendor has been seen,
        every message seen has been received by its recipient, and the vendor has answered every
        request seen; or until `timeout` real seconds have passed (a thing asks again for what
        stays unanswered)."""
        seen, deadline = self.drain(), time.monotonic() + timeout
        while self._on_the_way() and time.monotonic() < deadline:
            time.sleep(0.001)
            seen += self.drain()
        with self._lock:
            self._coming.clear()
        self._waiting.clear()
        return seen

    def _on_the_way(self):
        with self._lock:
            coming = +self._coming
        return self._waiting or coming or any(
            transport.received < seen for transport, _, seen in self._receivers)

    def _check(self, data):
        try:
            verified = cose.verify_sign1(data, self.keys, codec)
            return m.parse(codec.loads(verified.payload, max_depth=8))
        except ValueError:  # CoseError, CBORError, MessageError
            return None
