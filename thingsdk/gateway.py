"""The serial gateway: a board without a network (firmware/lib/seriallink.py) on a serial port,
relayed to the broker by a computer such as a Raspberry Pi.

The gateway is not trusted with the messages: it passes opaque signed bytes, which it can neither
forge nor alter unnoticed (each receiver checks the signature against the key it pinned). It does
confine the board: it publishes only to the board's own uplink, presence and to-owner topics (any
other topic is refused with a NAK) and hands the board only its downlink and its from-owner
messages. Its broker connection speaks
in the board's name (see `thingsdk.mqtt.device_transport`): on a mutual-TLS broker it holds the board's
certificate.

- An uplink is ACKed to the board once the broker acknowledged it (PUBACK); until then the board
  re-sends it. A re-sent uplink the broker already has (same seq and bytes) is ACKed again without
  being published again (`duplicates`); after a gateway restart it is published again: duplicates
  are allowed, the vendor de-duplicates by message id.
- Downlinks go to the board, up to `window` at a time, re-sent every `retry` seconds until the
  board ACKs them. They are held in memory while the board is silent, and lost if the gateway
  stops first.
- Presence: `online` when the board is heard, `offline` when it says so or stays silent for
  `silence` seconds; the broker publishes `offline` (the transport's last will) if the gateway dies.
- The board's PINGs are answered with the broker connection's state, and so is every change of it.

Counters: `forwarded` (uplinks the broker acknowledged), `delivered` (downlinks the board ACKed),
`refused` (frames refused), `duplicates`, and `bad` (damaged frames dropped, by reason in `errors`).
"""

import binascii
import logging
import threading
import time
from collections import deque

import serial

from thingsdk import topics
from thingsdk.core import frames
from thingsdk.core.topics import OFFLINE, ONLINE

_REMEMBERED = 256  # acknowledged uplinks remembered, to answer a re-send without publishing it

log = logging.getLogger(__name__)


class Gateway:
    """Relays one board on `port` (pyserial: read, write, in_waiting) through `transport` (a
    thingsdk.mqtt.Transport, not started) until `stop()`."""

    def __init__(self, port, transport, kid, retry=2.0, silence=20.0, window=8, poll=0.01,
                 clock=time.monotonic):
        self.port, self.transport, self.kid = port, transport, kid
        self.retry, self.silence, self.window = retry, silence, window
        self.poll, self.clock = poll, clock
        self.uplink, self.presence = topics.uplink(kid), topics.presence(kid)
        self.downlink = topics.downlink(kid)
        # and between the board and its owner: one topic each way
        self.to_owner, self.from_owner = topics.to_owner(kid), topics.from_owner(kid)
        self.forwarded = self.delivered = self.refused = self.duplicates = 0
        self._decoder = frames.Decoder()
        self._pending = {}  # (seq, crc) of an uplink -> its Ack from the broker
        self._done = {}  # (seq, crc) of uplinks the broker acknowledged, oldest first
        self._down = deque()  # downlinks from the broker, waiting for the board
        self._flight = []  # [seq, wire bytes, last sent] of downlinks the board has not ACKed
        self._seq = 0
        self._heard = None  # when the board was last heard
        self._online = None  # the presence last published: True, False, or None
        self._broker = None
        self._stop = threading.Event()
        transport.on_message = self.on_downlink

    @property
    def bad(self):
        return self._decoder.bad

    @property
    def errors(self):
        return self._decoder.errors

    def run(self):
        """Relay until stopped, then close the broker connection (publishing `offline`)."""
        self.transport.subscribe(self.downlink)
        self.transport.subscribe(self.from_owner)
        self.transport.start()
        log.info("gateway for %s on %s", topics.kid_hex(self.kid), getattr(self.port, "name", "?"))
        try:
            while not self._stop.is_set():
                if not self.step():
                    self._stop.wait(self.poll)
        finally:
            self.transport.close()
            log.info("gateway stopped: %d forwarded, %d delivered, %d refused, %d duplicates, "
                     "%d bad frames", self.forwarded, self.delivered, self.refused,
                     self.duplicates, self.bad)

    def stop(self):
        """Ask run() to return (safe from a signal handler or another thread)."""
        self._stop.set()

    def step(self):
        """One round: read the line, answer the board, pass messages on. True if bytes came."""
        waiting = self.port.in_waiting
        data = self.port.read(waiting) if waiting else b""
        now = self.clock()
        for kind, seq, payload in self._decoder.feed(data):
            self._handle(kind, seq, payload, now)
        connected = self.transport.connected
        if connected != self._broker:
            self._broker = connected
            self._write(frames.STATUS, 0, b"\x01" if connected else b"\x00")
            if connected and not self._online:  # the transport said `online` as it connected
                self._publish_presence(False)
        self._collect_acks()
        self._send_downlinks(now)
        if self._online and now - self._heard > self.silence:
            self._publish_presence(False)
        return bool(data)

    def forward(self, topic, data, retain):
        """Publish one of the board's messages; returns the transport's Ack."""
        return self.transport.publish(topic, data, retain)

    def on_downlink(self, topic, data):
        """The transport's on_message (its network thread): a downlink to pass to the board."""
        if topic in (self.downlink, self.from_owner):
            self._down.append((topic, data))

    # The board's frames.

    def _handle(self, kind, seq, payload, now):
        self._heard = now
        if kind == frames.PRESENCE and payload in (ONLINE, OFFLINE):
            self._publish_presence(payload == ONLINE)
            return
        if not self._online:
            self._publish_presence(True)
        if kind == frames.PING:
            self._write(frames.STATUS, 0, b"\x01" if self.transport.connected else b"\x00")
        elif kind == frames.UP:
            self._uplink(seq, payload)
        elif kind == frames.SUB:
            if payload in (self.downlink.encode(), self.from_owner.encode()):
                self._write(frames.ACK, seq)
            else:
                self._refuse(seq, "only %s and %s" % (self.downlink, self.from_owner))
        elif kind in (frames.ACK, frames.NAK):
            for entry in self._flight:
                if entry[0] == seq:
                    self._flight.remove(entry)
                    self.delivered += kind == frames.ACK
                    break
        else:
            self._refuse(seq, "unexpected frame")

    def _uplink(self, seq, payload):
        try:
            topic, data, retain, qos = frames.parse_message(payload)
        except frames.FrameError:
            return self._refuse(seq, "malformed")
        if topic not in (self.uplink, self.presence, self.to_owner):
            return self._refuse(seq, "not the board's topic: %s" % topic)
        key = (seq, binascii.crc32(payload))
        if key in self._pending:
            return  # still waiting for the broker
        if key in self._done:
            self.duplicates += 1
            return self._write(frames.ACK, seq)
        try:
            ack = self.forward(topic, data, retain)
        except OverflowError:  # the transport's offline queue is full: the board re-sends later
            return
        if qos:
            self._pending[key] = ack

    def _collect_acks(self):
        for key, ack in list(self._pending.items()):
            if not ack.done:
                continue
            del self._pending[key]
            if ack.refused:
                self._refuse(key[0], "the broker refused it")
                continue
            self.forwarded += 1
            self._done[key] = None
            if len(self._done) > _REMEMBERED:
                del self._done[next(iter(self._done))]
            self._write(frames.ACK, key[0])

    def _refuse(self, seq, reason):
        self.refused += 1
        log.warning("refused a frame from the board: %s", reason)
        self._write(frames.NAK, seq, reason.encode()[:200])

    # Towards the board.

    def _send_downlinks(self, now):
        while self._down and len(self._flight) < self.window:
            topic, data = self._down.popleft()
            self._seq = self._seq % 0xFFFF + 1
            try:
                wire = frames.encode(frames.DOWN, self._seq, frames.message(topic, data))
            except frames.FrameError as exc:
                self.refused += 1
                log.warning("dropped a downlink for the board: %s", exc)
                continue
            self._flight.append([self._seq, wire, None])
        if not self._online:
            return
        for entry in self._flight:
            if entry[2] is None or now - entry[2] >= self.retry:
                entry[2] = now
                self._send(entry[1])

    def _publish_presence(self, online):
        self._online = online
        try:
            self.transport.publish(self.presence, ONLINE if online else OFFLINE, retain=True)
        except OverflowError:  # a long broker outage: the next change of presence says it
            log.warning("presence not published: the broker has been away too long")

    def _write(self, kind, seq, payload=b""):
        self._send(frames.encode(kind, seq, payload))

    def _send(self, wire):
        try:
            self.port.write(wire)
        except serial.SerialTimeoutException:  # nobody reads the line: the frame is lost
            pass
