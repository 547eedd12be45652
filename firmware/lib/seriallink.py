"""A board without a network reaches the broker through a gateway on its UART (thingsdk.gateway).

`Link` offers the application what the firmware's MQTT client (mqtt.Client) offers: `start()`,
`publish`, `subscribe`, `close`, `connected`, `unacked` and `on_message(topic, payload)`, over the
frames of thingsdk.core.frames, with the same at-least-once contract:
- QoS 1 messages wait in a bounded in-flight list until the gateway ACKs them, which it does once
  the broker acknowledged them (PUBACK). They are re-sent every `retry` seconds, and all of them,
  oldest first, when the gateway answers again after a silence. A refusal (NAK: a topic that is
  not the board's own) drops the message and counts it in `refused`.
- Downlinks go to `on_message`, then are ACKed (not when the handler ran out of heap): one can
  come twice if its ACK was lost.
- A PING every `keepalive` seconds; the gateway answers with its broker connection's state.
  `linked` is true while the gateway answered within `timeout` seconds, `connected` while,
  besides, its broker connection is up.
The UART is polled (`any()`, `read(n)`, `write(b)` of machine.UART) every `poll_ms`: that works on
every port, and on CPython too. The gateway publishes the board's presence: `online` once it hears
the board, `offline` when `close()` says so or the board falls silent.
"""

import asyncio

from thingsdk.core import frames
from thingsdk.core.topics import OFFLINE, ONLINE
from ticks import ticks_diff, ticks_ms



class LinkError(Exception):
    """A refusal by the gateway, or no answer from it in time."""


class QueueFull(LinkError):
    """`limit` QoS 1 messages are already waiting for their ACK."""


class Link:
    """The serial link to the gateway, kept by a background task (`start()`).

    Counters: `sent` (QoS 1 acknowledged), `received`, `refused`; `bad` is the frames dropped as
    damaged; `last_error` is the latest failure (a handler's, the UART's, or a refusal).
    """

    def __init__(self, uart, on_message=None, limit=16, retry=5, keepalive=5, timeout=15,
                 poll_ms=10, clock=None):
        self.uart, self.on_message, self.limit, self.retry = uart, on_message, limit, retry
        self.keepalive, self.timeout, self.poll_ms = keepalive, timeout, poll_ms
        self.clock = clock or ticks_ms
        self.linked = self.broker = False
        self.sent = self.received = self.refused = 0
        self.last_error = None
        self._decoder = frames.Decoder()
        self._flight = []  # [seq, wire bytes, last sent (ms) or None], oldest first
        self._waiters = {}  # SUB seq -> [answered, accepted, reason]
        self._subs = []
        self._seq = 0
        self._heard = 0  # when the gateway was last heard (read only while linked)
        self._pinged = None
        self._task = None

    @property
    def connected(self):
        return self.linked and self.broker

    @property
    def unacked(self):
        """How many QoS 1 messages wait for their ACK."""
        return len(self._flight)

    @property
    def bad(self):
        return self._decoder.bad

    def start(self):
        """Keep the link in the background."""
        if self._task is None:
            self._write(frames.encode(frames.PRESENCE, 0, ONLINE))
            self._task = asyncio.create_task(self._keep())

    async def publish(self, topic, payload, retain=False, qos=1):
        """QoS 1: queue until ACKed (sent now if linked) and return its seq; QueueFull when
        `limit` wait. QoS 0: send if connected and return True, else drop it and return False."""
        body = frames.message(topic, payload, retain, qos)
        if qos == 0:
            if self.connected:
                self._write(frames.encode(frames.UP, 0, body))
            return self.connected
        if len(self._flight) >= self.limit:
            raise QueueFull("%d QoS 1 messages wait for their ACK" % self.limit)
        seq = self._next_seq()
        entry = [seq, frames.encode(frames.UP, seq, body), None]
        self._flight.append(entry)
        if self.linked:
            self._transmit(entry)
        return seq

    async def subscribe(self, topic_filter):
        """Ask for a filter, now and whenever the gateway comes back; when linked, wait up to
        `timeout` for the answer (LinkError if the gateway refuses it or does not answer)."""
        if topic_filter not in self._subs:
            self._subs.append(topic_filter)
        if not self.linked:
            return
        seq = self._next_seq()
        waiter = self._waiters[seq] = [False, False, ""]
        wire = frames.encode(frames.SUB, seq, topic_filter.encode())
        start = self.clock()
        try:
            while not waiter[0]:
                if ticks_diff(self.clock(), start) >= self.timeout * 1000:
                    raise LinkError("no answer to the subscription to %s" % topic_filter)
                self._write(wire)
                sent = self.clock()
                while not waiter[0] and ticks_diff(self.clock(), sent) < self.retry * 1000:
                    await asyncio.sleep(self.poll_ms / 1000)
        finally:
            self._waiters.pop(seq, None)
        if not waiter[1]:
            self._subs.remove(topic_filter)
            raise LinkError("subscription to %s refused: %s" % (topic_filter, waiter[2]))

    async def close(self):
        """Say `offline` to the gateway and stop."""
        if self._task:
            self._task.cancel()
            self._task = None
        self._write(frames.encode(frames.PRESENCE, 0, OFFLINE))
        self.linked = False

    # The link.

    async def _keep(self):
        while True:
            try:
                self._poll()
            except Exception as exc:  # a UART error or a failing handler must not stop the link
                self.last_error = exc
            await asyncio.sleep(self.poll_ms / 1000)

    def _poll(self):
        waiting = self.uart.any()
        if waiting:
            for kind, seq, payload in self._decoder.feed(self.uart.read(waiting) or b""):
                self._handle(kind, seq, payload)
        now = self.clock()
        if self.linked and ticks_diff(now, self._heard) > self.timeout * 1000:
            self.linked = self.broker = False
        if self._pinged is None or ticks_diff(now, self._pinged) >= self.keepalive * 1000:
            self._pinged = now
            self._write(frames.encode(frames.PING, 0))
        if self.linked:
            for entry in self._flight:
                if entry[2] is None or ticks_diff(now, entry[2]) >= self.retry * 1000:
                    self._transmit(entry)

    def _handle(self, kind, seq, payload):
        self._heard = self.clock()
        if not self.linked:
            self.linked = True
            for entry in self._flight:  # everything unacknowledged, oldest first
                self._transmit(entry)
            for topic_filter in self._subs:
                self._write(frames.encode(frames.SUB, self._next_seq(), topic_filter.encode()))
        if kind == frames.STATUS:
            self.broker = payload == b"\x01"
        elif kind == frames.DOWN:
            self._deliver(seq, payload)
        elif kind in (frames.ACK, frames.NAK):
            self._answered(kind == frames.ACK, seq, payload)

    def _deliver(self, seq, payload):
        try:
            topic, data, _, _ = frames.parse_message(payload)
        except ValueError:
            self._write(frames.encode(frames.NAK, seq, b"malformed"))
            return
        self.received += 1
        try:
            if self.on_message:
                self.on_message(topic, data)
        except MemoryError as exc:  # not taken in: no ACK, so the frame comes again
            self.last_error = exc
            return
        except Exception as exc:  # the handler's fault: the message is still acknowledged
            self.last_error = exc
        self._write(frames.encode(frames.ACK, seq))

    def _answered(self, accepted, seq, reason):
        waiter = self._waiters.get(seq)
        if waiter:
            waiter[0], waiter[1], waiter[2] = True, accepted, str(reason, "utf-8")
            return
        for entry in self._flight:
            if entry[0] == seq:
                self._flight.remove(entry)
                if accepted:
                    self.sent += 1
                else:
                    self.refused += 1
                    self.last_error = LinkError("gateway refused a message: %s"
                                                % str(reason, "utf-8"))
                return

    def _transmit(self, entry):
        entry[2] = self.clock()
        self._write(entry[1])

    def _write(self, data):
        self.uart.write(data)

    def _next_seq(self):
        while True:
            self._seq = self._seq % 0xFFFF + 1
            if self._seq not in self._waiters and all(e[0] != self._seq for e in self._flight):
                return self._seq
