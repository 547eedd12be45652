"""The firmware's MQTT 3.1.1 client on asyncio: it never blocks and keeps itself connected.

Runs unmodified on MicroPython and CPython (asyncio streams, which MicroPython runs on select.poll).
- Persistent session (clean_session off), a retained `online` presence on every connection and
  `offline` as the last will (QoS 1, retained).
- QoS 1 publishes wait in a bounded in-flight list until their PUBACK: re-sent with DUP after
  `retry` seconds, and first of all, in order, after a reconnect. QoS 0 is sent only when connected.
  A PUBLISH goes out as two writes, its header (with the topic) and the caller's payload object:
  the payload is never copied into a packet.
- Incoming packets are read into one input buffer through a memoryview; it grows only for a
  bigger packet within `max_size`. A packet over `max_size` is read through that buffer piece by
  piece and dropped (a QoS 1 PUBLISH is acknowledged, so the broker does not send it again):
  counted in `refused`, never held whole.
- Incoming PUBLISH (QoS 0/1) goes to `on_message(topic, payload)`, then is acknowledged (not when
  the handler ran out of heap: the link then drops and the broker sends it again): MQTT's
  at-least-once, so a message can come twice if the connection drops before its PUBACK left.
- PINGREQ every keepalive/2 seconds; no PINGRESP within `ping_timeout` seconds is a lost link.
- Lost connections come back with exponential backoff and jitter (`rand` injectable), and every
  filter is subscribed again. `clock()` (milliseconds, injectable) measures retries and pings.
- The broker's name is resolved once (getaddrinfo blocks the whole asyncio loop, sensors and agent
  included) and again only after the network was joined again or STREAK connections in a row
  failed. `wifi` (optional: `isconnected()`, `async join()`, see app.Wifi) is watched while
  connected and joined again before connecting when it is down.
- `note(text)` hears each change a person cares about: connected, lost and why, retrying in N s.
"""

import asyncio
import random
import struct

try:
    import socket
except ImportError:  # the WebAssembly port: its open_connection is the host's
    socket = None

from thingsdk.core.backoff import Backoff
from thingsdk.core.topics import OFFLINE, ONLINE
from ticks import ticks_diff, ticks_ms

PUBLISH, PUBACK, SUBACK, PINGRESP = 3, 4, 9, 13
STREAK = 4  # failed connections in a row after which the broker's name is resolved again
REFUSED = {1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
           4: "bad user name or password", 5: "not authorized"}


class MQTTError(Exception):
    """A refusal by the broker or a malformed or unexpected packet."""


class QueueFull(MQTTError):
    """`limit` QoS 1 messages are already waiting for their PUBACK."""


# The packet codec.

def encode_length(n):
    """MQTT's remaining length: 7 bits a byte, least significant first, at most 4 bytes."""
    if not 0 <= n < 1 << 28:
        raise MQTTError("remaining length out of range: %d" % n)
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 127
        out.append(byte | 128 if n else byte)
        if not n:
            return bytes(out)


def decode_length(data):
    """(remaining length, bytes it took) from the start of data."""
    n = 0
    for i in range(min(len(data), 4)):
        n |= (data[i] & 127) << 7 * i
        if not data[i] & 128:
            return n, i + 1
    raise MQTTError("bad remaining length")


def string(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    if len(b) > 65535:
        raise MQTTError("string over 65535 bytes")
    return struct.pack("!H", len(b)) + b


def packet(first, body, more=0):
    """Fixed header and body; `more` bytes (a payload written after it) count in its length."""
    return bytearray((first,)) + encode_length(len(body) + more) + body


def connect_packet(client_id, keepalive, will=None, user=None, password=None):
    """CONNECT with clean_session off; will is (topic, payload, retain), sent at QoS 1."""
    flags, payload = 0, string(client_id)
    if will:
        flags |= 0x0C | (0x20 if will[2] else 0)
        payload += string(will[0]) + string(will[1])
    if user is not None:
        flags |= 0x80
        payload += string(user)
    if password is not None:
        flags |= 0x40
        payload += string(password)
    return packet(0x10, string("MQTT") + struct.pack("!BBH", 4, flags, keepalive) + payload)


def publish_head(topic, size, qos=0, retain=False, pid=0, dup=False):
    """A PUBLISH of a `size`-byte payload up to the payload: fixed header, topic, packet id."""
    body = string(topic) + (struct.pack("!H", pid) if qos else b"")
    return packet(0x30 | dup << 3 | qos << 1 | bool(retain), body, size)


def subscribe_packet(pid, topic_filter, qos=1):
    return packet(0x82, struct.pack("!H", pid) + string(topic_filter) + bytes((qos,)))


def parse_publish(first, body):
    """(topic, qos, pid, payload) of a PUBLISH (pid 0 at QoS 0)."""
    qos, n = first >> 1 & 3, (struct.unpack_from("!H", body)[0] if len(body) >= 2 else 1 << 16)
    end = 2 + n + (2 if qos else 0)
    if qos > 1 or end > len(body):
        raise MQTTError("bad PUBLISH")
    pid = struct.unpack_from("!H", body, end - 2)[0] if qos else 0
    return bytes(body[2:2 + n]).decode(), qos, pid, bytes(body[end:])


async def fill(reader, view):
    """Read exactly len(view) bytes into the memoryview (EOFError if the stream ends first)."""
    if not hasattr(reader, "readinto"):  # CPython's and the WebAssembly port's streams
        view[:] = await reader.readexactly(len(view))
        return
    while len(view):
        n = await reader.readinto(view)
        if not n:
            raise EOFError
        view = view[n:]


class Client:
    """One MQTT 3.1.1 connection, kept up by a background task (`connect()` or `start()`).

    `ssl` is an SSL context (see configure.tls_context) or None. Counters: `sent` (QoS 1
    acknowledged), `received`, `refused` (packets over `max_size`), `reconnects`; `last_error`
    is the latest failure (connect, link, handler or a refused packet).
    """

    def __init__(self, host, port, client_id, ssl=None, user=None, password=None, keepalive=60,
                 presence=None, on_message=None, limit=16, retry=10, ping_timeout=10, timeout=15,
                 max_size=2048, backoff=1, backoff_cap=120, rand=None, clock=None, wifi=None,
                 note=None):
        if keepalive <= 0:
            raise ValueError("keepalive must be positive: pings detect a dead link")
        self.host, self.port, self.client_id, self.ssl = host, port, client_id, ssl
        self.user, self.password, self.keepalive, self.presence = user, password, keepalive, presence
        self.on_message, self.limit, self.retry, self.ping_timeout = on_message, limit, retry, ping_timeout
        self.timeout, self.max_size, self.wifi, self.note = timeout, max_size, wifi, note or print
        self._backoff = Backoff(backoff, backoff_cap, rand or random.random)
        self.clock = clock or ticks_ms
        self.connected = False
        self.last_error = None
        self.sent = self.received = self.refused = self.reconnects = 0
        self._subs = []  # filters, subscribed again on every connection
        self._flight = []  # [pid, header, payload, last sent (ms) or None], oldest first
        self._waiters = {}  # SUBSCRIBE pid -> [Event, SUBACK code, filter]
        self._pid = self._attempt = 0
        self._writer = self._lost = self._task = self._ip = None
        self._tasks = ()
        self._said = []  # why it could not connect, each said since it was last connected
        self._lock = asyncio.Lock()
        self._mv = memoryview(bytearray(64))  # the input buffer, grown up to max_size

    @property
    def unacked(self):
        """How many QoS 1 messages wait for their PUBACK."""
        return len(self._flight)

    async def connect(self):
        """Connect once (raises OSError or MQTTError, e.g. a CONNACK refusal), then keep it up."""
        try:
            await self._open()
        except BaseException:
            self._drop()
            raise
        self.start()

    def start(self):
        """Keep a connection up in the background, connecting first if need be."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep())

    async def publish(self, topic, payload, retain=False, qos=1):
        """QoS 1: queue until PUBACK (sent now if connected) and return the packet id; QueueFull
        when `limit` wait. QoS 0: send if connected and return True, else drop it and return False.
        The payload (bytes) is kept and written as it is, not copied."""
        if qos == 0:
            if self.connected:
                await self._send(publish_head(topic, len(payload), 0, retain), payload)
            return self.connected
        if len(self._flight) >= self.limit:
            raise QueueFull("%d QoS 1 messages wait for their PUBACK" % self.limit)
        return await self._queue(topic, payload, retain)

    async def subscribe(self, topic_filter):
        """Subscribe at QoS 1, now and after every reconnect; when connected, wait for the SUBACK
        (MQTTError if the broker refuses it)."""
        if topic_filter not in self._subs:
            self._subs.append(topic_filter)
        if self.connected:
            waiter = await self._subscribe(topic_filter)
            await asyncio.wait_for(waiter[0].wait(), self.timeout)
            if waiter[1] == 0x80:
                raise MQTTError("subscription to %s refused" % topic_filter)

    async def close(self):
        """Publish `offline` (with presence; waits up to `timeout` for its PUBACK), DISCONNECT, stop."""
        if self._task:
            self._task.cancel()
            self._task = None
        if self.connected and self.presence:
            pid, start = await self._queue(self.presence, OFFLINE, True), self.clock()
            while self.connected and any(e[0] == pid for e in self._flight) and \
                    ticks_diff(self.clock(), start) < self.timeout * 1000:
                await asyncio.sleep(0.02)
        if self.connected:
            try:
                await self._send(b"\xe0\x00")
            except Exception:  # the link is going anyway
                pass
        self._drop()

    # The connection.

    def _address(self):
        """The broker's address: resolved once and kept (see the module's docstring)."""
        if self._ip is None:
            ip = self.host
            if socket:
                addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
                if isinstance(addr, tuple):  # the unix port's is a raw sockaddr: keep the name
                    ip = addr[0]
            self._ip = ip
        return self._ip

    async def _open(self):
        kw = {"ssl": self.ssl, "server_hostname": self.host} if self.ssl else {}
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self._address(), self.port, **kw), self.timeout)
        try:
            will = (self.presence, OFFLINE, True) if self.presence else None
            writer.write(connect_packet(self.client_id, self.keepalive, will, self.user, self.password))
            await writer.drain()
            first, n = await asyncio.wait_for(self._take(reader), self.timeout)
            if first != 0x20 or n != 2:
                raise MQTTError("expected CONNACK, got packet type %d" % (first >> 4))
            code = self._mv[1]
            if code:
                raise MQTTError("connection refused: %s (%d)" % (REFUSED.get(code, "?"), code))
        except BaseException:
            writer.close()
            raise
        self._writer, self._lost, self._attempt, self._said = writer, asyncio.Event(), 0, []
        self._ping_at, self._pinged = None, self.clock()
        async with self._lock:  # unacknowledged messages first, in order, nothing in between
            for entry in self._flight:
                self._mark(entry)
                writer.write(entry[1])
                writer.write(entry[2])
            self.connected = True
            await writer.drain()
        self.note("connected to %s:%d" % (self.host, self.port))
        self._tasks = (asyncio.create_task(self._guard(self._read(reader))),
                       asyncio.create_task(self._guard(self._tend())))
        for topic_filter in self._subs:
            await self._subscribe(topic_filter)
        if self.presence:
            await self._queue(self.presence, ONLINE, True)

    async def _keep(self):
        while True:
            if not self.connected:
                try:
                    if self.wifi and not self.wifi.isconnected():
                        self._ip = None  # the network joined again may resolve it elsewhere
                        await self.wifi.join()
                    await self._open()
                except Exception as exc:
                    self.last_error = exc
                    self._drop()
                    if self._attempt % STREAK == STREAK - 1:
                        self._ip = None
                    await self._pause("cannot connect to", exc)
                    continue
            await self._lost.wait()
            self._drop()
            self.reconnects += 1
            await self._pause("disconnected from", self.last_error)

    async def _pause(self, what, why):
        """Say what happened, once for each cause until connected again (a broker down for an
        hour is one line, not one a retry), then wait before the next attempt (core.backoff)."""
        self._attempt += 1
        delay = self._backoff.delay(self._attempt - 1)
        cause = "%s %s:%d (%r)" % (what, self.host, self.port, why)
        if cause not in self._said:
            self._said = self._said[-7:] + [cause]
            self.note("%s; retrying in %.1f s" % (cause, delay))
        await asyncio.sleep(delay)

    def _drop(self):
        self.connected = False
        for task in self._tasks:
            task.cancel()
        self._tasks = ()
        if self._writer:
            self._writer.close()
            self._writer = None

    async def _guard(self, coro):
        try:
            await coro
        except Exception as exc:
            self.last_error = exc
        finally:
            self._lost.set()

    async def _send(self, *parts):
        async with self._lock:
            if not self.connected:
                raise MQTTError("not connected")
            try:
                for part in parts:
                    self._writer.write(part)
                await asyncio.wait_for(self._writer.drain(), self.timeout)
            except Exception:
                self._lost.set()  # the keeper reconnects
                raise

    def _mark(self, entry):
        """Stamp an in-flight entry as sent now; DUP if it was sent before."""
        if entry[3] is not None:
            entry[1][0] |= 0x08
        entry[3] = self.clock()

    async def _queue(self, topic, payload, retain):
        pid = self._next_pid()
        entry = [pid, publish_head(topic, len(payload), 1, retain, pid), payload, None]
        self._flight.append(entry)
        if self.connected:
            self._mark(entry)
            try:
                await self._send(entry[1], payload)
            except Exception:  # stays in flight: re-sent after the reconnect
                pass
        return pid

    async def _subscribe(self, topic_filter):
        pid = self._next_pid()
        waiter = self._waiters[pid] = [asyncio.Event(), None, topic_filter]
        await self._send(subscribe_packet(pid, topic_filter))
        return waiter

    def _next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._pid not in self._waiters and all(e[0] != self._pid for e in self._flight):
                return self._pid

    async def _take(self, reader):
        """(first byte, remaining length) of the next packet; its body is read into the input
        buffer, grown if need be, unless it is over max_size."""
        mv = self._mv
        await fill(reader, mv[:2])
        i = 1
        while mv[i] & 128 and i < 4:
            i += 1
            await fill(reader, mv[i:i + 1])
        first, n = mv[0], decode_length(mv[1:i + 1])[0]
        if n <= self.max_size:
            if n > len(mv):
                self._mv = mv = memoryview(bytearray(n))
            await fill(reader, mv[:n])
        return first, n

    async def _refuse(self, reader, first, n):
        """Read a packet over max_size through the input buffer and drop it; acknowledge it if it
        is a QoS 1 PUBLISH, or the broker sends it again on every connection."""
        self.refused += 1
        self.last_error = MQTTError("refused a %d-byte packet (max_size %d)" % (n, self.max_size))
        mv, left, pid = self._mv, n, 0
        while left:
            size = min(left, len(mv))
            await fill(reader, mv[:size])
            if left == n and first & 0xF6 == 0x32:  # the start of a QoS 1 PUBLISH
                end = 4 + (mv[0] << 8 | mv[1])
                if end <= size:
                    pid = mv[end - 2] << 8 | mv[end - 1]
            left -= size
        if pid:
            await self._send(struct.pack("!BBH", 0x40, 2, pid))

    async def _read(self, reader):
        while True:
            first, n = await self._take(reader)
            kind, body = first >> 4, self._mv[:n]
            if n > self.max_size:
                await self._refuse(reader, first, n)
            elif kind == PUBLISH:
                topic, qos, pid, payload = parse_publish(first, body)
                self.received += 1
                try:
                    if self.on_message:
                        self.on_message(topic, payload)
                except MemoryError:
                    raise  # not taken in: unacknowledged, the link drops, the broker sends it again
                except Exception as exc:  # the handler's fault: the message is still acknowledged
                    self.last_error = exc
                if qos:
                    await self._send(struct.pack("!BBH", 0x40, 2, pid))
            elif kind in (PUBACK, SUBACK) and n >= 2:
                pid = body[0] << 8 | body[1]
                if kind == PUBACK:
                    self.sent += any(e[0] == pid for e in self._flight)
                    self._flight = [e for e in self._flight if e[0] != pid]
                elif pid in self._waiters:
                    waiter = self._waiters.pop(pid)
                    waiter[1] = body[2] if n > 2 else 0x80
                    if waiter[1] == 0x80:
                        self.last_error = MQTTError("subscription to %s refused" % waiter[2])
                        if waiter[2] in self._subs:
                            self._subs.remove(waiter[2])
                    waiter[0].set()
            elif kind == PINGRESP:
                self._ping_at = None
            else:
                raise MQTTError("unexpected packet type %d" % kind)

    async def _tend(self):
        """Ping, watch for the PINGRESP and the WiFi, re-send QoS 1 messages left without a PUBACK."""
        while True:
            await asyncio.sleep(min(1, self.keepalive / 4))
            if self.wifi and not self.wifi.isconnected():
                raise MQTTError("WiFi lost")
            now = self.clock()
            if self._ping_at is not None and ticks_diff(now, self._ping_at) > self.ping_timeout * 1000:
                raise MQTTError("no PINGRESP within %s s" % self.ping_timeout)
            if self._ping_at is None and ticks_diff(now, self._pinged) >= self.keepalive * 500:
                self._ping_at = self._pinged = now
                await self._send(b"\xc0\x00")
            for entry in list(self._flight):
                if entry[3] is not None and ticks_diff(now, entry[3]) >= self.retry * 1000:
                    self._mark(entry)
                    await self._send(entry[1], entry[2])
