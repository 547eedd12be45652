"""The vendor on MQTT: device uplinks in, answers out on each device's downlink.

Subscription. By default the server takes the uplinks with a plain subscription to
`thingsdk/v1/up/+`. Shared subscriptions (`$share/GROUP/thingsdk/v1/up/+`, opted in to with
`share=GROUP`) spread the uplinks over several workers; use them only on a broker that checks
SUBSCRIBE, as the set-up `thingsdk broker` writes does (with mosquitto's `acl_file` a device could
join the group and the vendor would lose that share: docs/topics.md), and know that the broker
hands a device's messages to whichever worker's turn it is, so they are not handled in order.

Workers. Several workers (`part=(index, count)`, what `vendor serve --workers N` runs) each
serve the devices of their part, those whose key id modulo `count` is `index` (`part_of`): a
worker subscribes to the uplink of each of its part's registered devices, many filters to a
SUBSCRIBE, and to those of devices registered since, at a look every REGISTRATIONS_EVERY seconds
(the store numbers devices as they are registered). So the broker delivers each uplink once, to
the one worker that handles that device's messages, one at a time, in the order it delivered
them, on any broker. An uplink of another part that still comes is acknowledged unread. Workers
share one database (the Store serialises their transactions).

The device is the last level of the uplink topic; the Service refuses a message not signed by it.
Uplinks wait in a FairQueue: one queue per topic, served in turn, so a client that floods its
uplink gets its turn like every other and no more, and a topic that already has PER_TOPIC
messages waiting loses the next (a device waits for answers and never has that many); what is
refused is then throttled per uplink by the Service's RefusalLimiter.
Each worker needs its own MQTT client id, the same each time it starts: the session is
persistent, so uplinks sent while the worker was away are delivered when it comes back.

Nothing is acknowledged before it is kept: the server takes uplinks with manual acknowledgement,
handles them in batches (one transaction and one commit per batch), publishes the answers after
the commit and acknowledges each uplink once the broker has its answers, in the order the uplinks
came. A worker killed at any point leaves the broker holding every uplink it had not finished;
they are delivered again when a worker with the same client id connects, and one already handled
is answered again with the answers recorded the first time. What is refused unread (a full
topic queue, a throttled uplink, a device over its rate) is acknowledged as it is refused: that
is the refusal, and a message left unacknowledged would hold up every acknowledgement after it.
"""

import collections
import logging
import queue
import threading
import time

from thingsdk import topics
from thingsdk.mqtt import packed

UPLINKS = topics.every(topics.UP)
PER_TOPIC = 256
BATCH = 64  # uplinks handled per transaction, at most
REGISTRATIONS_EVERY = 1.0  # seconds between a worker's looks for devices registered meanwhile
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
        return self.take(1, timeout)[0]

    def take(self, limit, timeout=None):
        """Up to `limit` (topic, payload), the topics taken in turn (a topic goes to the back of
        the line after each of its messages); waits only for the first, queue.Empty after
        timeout seconds."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._topics, timeout):
                raise queue.Empty
            out = []
            while self._topics and len(out) < limit:
                topic, waiting = self._topics.popitem(last=False)
                out.append((topic, waiting.popleft()))
                if waiting:
                    self._topics[topic] = waiting
            return out


class Pending:
    """One delivered uplink on its way to acknowledgement: `handled` once its effects and answers
    are committed, settled once the broker has also taken every answer (`acks`)."""

    __slots__ = ("delivery", "handled", "acks")

    def __init__(self, delivery):
        self.delivery = delivery
        self.handled = False
        self.acks = ()

    @property
    def settled(self):
        return self.handled and all(ack.done for ack in self.acks)


class AckLine:
    """Deliveries in the order they came, acknowledged with `ack(delivery)` in that order (as MQTT
    asks of a receiver) as soon as each one at the front of the line is settled."""

    def __init__(self, ack):
        self._ack = ack
        self._line = collections.deque()
        self._lock = threading.Lock()
        self.acknowledged = 0

    def arrived(self, delivery):
        pending = Pending(delivery)
        with self._lock:
            self._line.append(pending)
        return pending

    def __len__(self):
        return len(self._line)

    def release(self):
        """Acknowledge the settled deliveries at the front of the line; how many were."""
        released = []
        with self._lock:
            while self._line and self._line[0].settled:
                released.append(self._line.popleft().delivery)
        for delivery in released:
            self._ack(delivery)
        self.acknowledged += len(released)
        return len(released)


def part_of(kid, count):
    """The part (0 .. count-1) of the workers' partition that the device of key id `kid` is in."""
    return int.from_bytes(kid, "big") % count


def parse_part(text):
    """(index, count) from "I/N" (0 <= I < N); ValueError otherwise."""
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not int(index) < int(count):
        raise ValueError("a part is I/N with 0 <= I < N, not %r" % (text,))
    return int(index), int(count)


def uplink_filter(share=None):
    """The subscription: plain, or shared by the workers of group `share`."""
    return topics.vendor_uplinks(share) if share else UPLINKS


class Server:
    """Runs a Service on a Transport (not yet started) until `stop()`; fulfilment is advanced
    every `interval` seconds. `ready` is set once the broker confirmed the subscription.

    Acknowledgement: the Server turns the transport's `manual_ack` on. Uplinks are handled in
    batches of up to `batch` (one transaction, one commit each: Service.handle_batch); a batch's
    answers are published after its commit, and each uplink is acknowledged to the broker once
    the broker has taken its answers, in the order the uplinks came. A vendor killed at any point
    has acknowledged only what it kept; the broker delivers the rest again to the same client id
    (persistent session), and a redelivery that was already handled gets its recorded answers. A
    batch whose transaction fails is tried again (after `retry` seconds, doubling up to a
    minute), never acknowledged unhandled.

    With `part=(index, count)` the server subscribes to the uplink of each registered device of
    its part (`part_of`), many to a SUBSCRIBE (`mqtt.packed`), and to those of the devices
    registered since every REGISTRATIONS_EVERY seconds (Store.devices_after); `ready` is set once
    the broker confirmed those it found at the start. An uplink of another part that still comes
    (a session kept from when the worker had another part) is acknowledged unread, counted in
    `others`. A shared subscription and a part do not go together: the broker would hand this
    worker other parts' uplinks that no worker then handles."""

    def __init__(self, service, transport, share=None, interval=1.0, clock=time.time,
                 batch=BATCH, retry=0.5, part=None):
        if share and part:
            raise ValueError("a worker takes its part of the uplinks from a plain subscription, "
                             "not a shared one")
        self.service = service
        self.transport = transport
        self.filter = uplink_filter(share)
        self.part = part
        self.others = 0
        self._registered = 0  # the number of the latest device looked at (devices_after)
        self._devices = 0  # devices whose uplinks this worker subscribed to
        self._unconfirmed = []  # SUBSCRIBEs for devices registered since the start, unanswered
        self.interval = interval
        self.clock = clock
        self.batch = batch
        self.retry = retry
        self.uplinks = FairQueue()
        self.acks = AckLine(transport.ack)
        self._stop = threading.Event()
        self._report = threading.Event()
        self.ready = threading.Event()
        transport.manual_ack = True
        transport.on_message = self._arrived

    def stop(self):
        """Ask run() to return (safe from a signal handler or another thread)."""
        self._stop.set()

    def report(self):
        """Ask run() to log its counters (safe from a signal handler or another thread)."""
        self._report.set()

    def counters(self):
        """The server's counters, in words, for the log."""
        return ("refused messages by reason: %s; dropped from full queues: %d; other workers' "
                "uplinks passed over: %d; %s" % (self.service.refusals, self.uplinks.dropped,
                                                 self.others, self.service.store.lock_time))

    def _part_text(self):
        return " (devices of part %d of %d)" % self.part if self.part else ""

    def _subscribe(self):
        """Subscribe to the uplinks this server takes: the filter, or its part's devices' (see
        _follow_registrations). (the Acks to wait for, the SUBSCRIBEs' among them)"""
        if not self.part:
            subscribed = [self.transport.subscribe(self.filter)]
            return subscribed, subscribed
        # A worker's session may hold the plain filter, subscribed by a version that took every
        # uplink: without it, the broker delivers this worker its part's uplinks only. Its
        # UNSUBACK is waited for too, so that a worker with no device yet is ready once connected.
        unsubscribed = self.transport.unsubscribe(UPLINKS)
        subscribed = self._follow_registrations()
        return [unsubscribed] + subscribed, subscribed

    def _follow_registrations(self):
        """Subscribe to the uplinks of the devices of this worker's part registered since the
        last look; the SUBSCRIBEs' Acks. A device registered while the worker runs is served
        from its first uplink after that look: the broker keeps nothing published on a topic
        nobody has subscribed to, and a device asks again for what went unanswered."""
        index, count = self.part
        acks = []
        while True:
            found = self.service.store.devices_after(self._registered)
            if not found:
                return acks
            mine = [topics.uplink(kid) for _, kid in found if part_of(kid, count) == index]
            acks += [self.transport.subscribe(filters) for filters in packed(mine)]
            self._devices += len(mine)
            self._registered = found[-1][0]  # once subscribed: a failure reads them again

    def _new_registrations(self):
        """Look for devices registered meanwhile (a failure is logged and tried at the next
        look) and say how many of this worker's part were found."""
        before = self._devices
        try:
            self._unconfirmed += self._follow_registrations()
        except Exception:
            log.exception("vendor could not read the newly registered devices; trying again in "
                          "%.0f s", REGISTRATIONS_EVERY)
        if self._devices > before:
            log.info("vendor takes the uplinks of %d newly registered devices%s, %d in all",
                     self._devices - before, self._part_text(), self._devices)
        refused = [ack for ack in self._unconfirmed if ack.refused]
        self._unconfirmed = [ack for ack in self._unconfirmed if not ack.done]
        if refused:
            log.error("vendor REFUSED by %s:%d: the uplinks of newly registered devices%s (%d "
                      "SUBSCRIBEs)", self.transport.host, self.transport.port, self._part_text(),
                      len(refused))

    def _arrived(self, topic, payload, delivery=None):
        pending = self.acks.arrived(delivery)
        if self.part and not self._mine(topic):
            self.others += 1
            pending.handled = True  # another worker's: acknowledged unread, in its turn
            return
        if not self.uplinks.put(topic, (payload, pending)):
            pending.handled = True  # refused unread (counted in `dropped`): nothing to keep

    def _mine(self, topic):
        index, count = self.part
        try:
            kid = topics.parse(topic)[1]
        except ValueError:
            return index == 0
        return part_of(kid, count) == index

    def run(self):
        """Serve until stopped, then close the connection."""
        waits, subscribed = self._subscribe()
        self.transport.start()
        next_advance = 0
        next_look = time.monotonic() + REGISTRATIONS_EVERY
        try:
            while not self._stop.is_set():
                if self._report.is_set():
                    self._report.clear()
                    log.info("vendor counters%s: %s", self._part_text(), self.counters())
                if not self.ready.is_set() and all(ack.done for ack in waits):
                    self.ready.set()
                    refused = any(ack.refused for ack in subscribed)
                    log.log(logging.ERROR if refused else logging.INFO,
                            "vendor %s %s %s:%d on %s%s", self.service.kid.hex(),
                            "REFUSED by" if refused else "serving", self.transport.host,
                            self.transport.port, self._serving_text(), self._part_text())
                if self.part and time.monotonic() >= next_look:
                    next_look = time.monotonic() + REGISTRATIONS_EVERY
                    self._new_registrations()
                self.acks.release()
                # Poll briefly while acknowledgements wait on the broker's PUBACKs for answers.
                wait = 0.005 if len(self.acks) else min(0.2, self.interval)
                try:
                    batch = self.uplinks.take(self.batch, timeout=wait)
                except queue.Empty:
                    pass
                else:
                    self._serve(batch)
                now = int(self.clock())
                if now >= next_advance:
                    next_advance = now + self.interval
                    self._publish(self._guarded(self.service.advance, now))
            self.acks.release()
        finally:
            self.transport.close()
            log.info("vendor stopped%s; %s", self._part_text(), self.counters())

    def _serving_text(self):
        if not self.part:
            return self.filter
        return "the uplinks of its %d registered devices" % self._devices

    def _serve(self, batch):
        """Handle a batch (trying again while its transaction fails), publish the answers after
        the commit, and mark each uplink handled."""
        messages = [(topic, payload) for topic, (payload, _) in batch]
        delay = self.retry
        while True:
            try:
                answers = self._answer_batch(messages)
                break
            except Exception:
                log.exception("vendor work failed on a batch of %d uplinks; trying it again in "
                              "%.1f s", len(messages), delay)
                if self._stop.wait(delay):
                    return  # unacknowledged: the broker delivers the batch again
                delay = min(60.0, delay * 2)
        for (_, (_, pending)), out in zip(batch, answers):
            pending.acks = self._publish(out) or ()
            pending.handled = True

    def _answer_batch(self, messages):
        """The answers to each (topic, payload), in order, from one transaction."""
        work, answers = [], [[] for _ in messages]
        for i, (topic, payload) in enumerate(messages):
            try:
                kind, kid = topics.parse(topic)
            except ValueError:
                kind = None
            if kind != topics.UP:
                log.warning("ignored a message on %s", topic)
                continue
            work.append((i, payload, kid))
        if work:
            done = self.service.handle_batch([(payload, kid) for _, payload, kid in work],
                                             int(self.clock()))
            for (i, _, _), out in zip(work, done):
                answers[i] = out
        return answers

    @staticmethod
    def _guarded(work, *args):
        try:
            return work(*args)
        except Exception:  # a failure (its transaction rolled back) must not stop the server
            log.exception("vendor work failed")
            return []

    def _publish(self, answers):
        """Publish (topic, bytes) answers; the transport's Acks."""
        acks = []
        for topic, data in answers:
            try:
                acks.append(self.transport.publish(topic, data))
            except OverflowError:  # kept all the same: a device asking again gets it
                log.warning("an answer on %s waits in the database, not on the broker: the "
                            "transport's offline queue is full", topic)
        return acks
