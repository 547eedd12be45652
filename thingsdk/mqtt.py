"""The CPython MQTT transport, on paho-mqtt 2.x: one connection that keeps itself up.

It connects from a URL (mqtt:// or mqtts:// with mutual TLS), speaks MQTT 5 (or 3.1.1, chosen or
fallen back to when the broker refuses 5) with a persistent session, publishes and subscribes at
QoS 1, keeps a retained presence (`online`, and `offline` as its last will), reconnects with
exponential backoff and jitter, and subscribes again on every connection. It knows nothing of the
messages it carries.
"""

import logging
import random
import socket
import threading
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from thingsdk import topics
from thingsdk.core import backoff
from thingsdk.topics import OFFLINE, ONLINE

V5, V311 = "5", "3.1.1"
_PROTOCOLS = {V5: paho.MQTTv5, V311: paho.MQTTv311}
# CONNACK "Unsupported Protocol Version"; paho also reports a 3.1.1 broker's refusal (code 1) so.
_UNSUPPORTED_PROTOCOL = 0x84
QOS = 1

log = logging.getLogger(__name__)


def broker_address(url):
    """(host, port, tls) of an mqtt://host[:port] or mqtts://host[:port] URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("expected mqtt://host:port or mqtts://host:port, not %r" % (url,))
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


class Backoff(backoff.Backoff):
    """The core's backoff with jitter, with defaults for a device: 1 s doubling up to 2 min."""

    def __init__(self, base: float = 1.0, cap: float = 120.0,
                 rand: "Callable[[], float]" = random.random) -> None:
        super().__init__(base, cap, rand)


class Ack:
    """The broker's answer to one publish (PUBACK) or subscribe (SUBACK), once it came."""

    def __init__(self):
        self._event = threading.Event()
        self.reasons = None  # the reason codes (ints); 0x80 and above are refusals

    def wait(self, timeout=None):
        """True once answered (accepted or refused), False on timeout."""
        return self._event.wait(timeout)

    @property
    def done(self):
        return self._event.is_set()

    @property
    def refused(self):
        return self.done and any(code >= 0x80 for code in self.reasons)

    def _answer(self, reasons):
        self.reasons = reasons
        self._event.set()


class Transport:
    """One MQTT client connection, kept up in paho's network thread.

    `on_message(topic: str, payload: bytes)` runs in that thread. Messages published while
    disconnected wait in a bounded in-memory queue and go out, in order, after the next connect;
    they are lost if the process stops: the crash-safe outbox is the order lifecycle's job.
    mqtts:// takes the CA file and the client certificate and key (mutual TLS). `version` turns
    to V311 if the broker refuses MQTT 5 and `fallback` is on. `session_expiry` (seconds) keeps
    the session (MQTT 5); 3.1.1 connects with clean_session off. Counters: `received`, `sent`
    (acknowledged publishes) and `reconnects`.
    """

    def __init__(self, url, client_id, *, on_message=None, presence=None, version=V5,
                 fallback=True, ca_file=None, cert_file=None, key_file=None,
                 session_expiry=7 * 24 * 3600, keepalive=60, backoff=None, queue_limit=1000):
        self.host, self.port, tls = broker_address(url)
        if version not in _PROTOCOLS:
            raise ValueError("version is %r or %r" % (V5, V311))
        self._tls = (ca_file, cert_file, key_file) if tls else None
        self.client_id = client_id
        self.on_message = on_message
        self.presence = presence
        self.version = version
        self.fallback = fallback
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.backoff = backoff or Backoff()
        self.queue_limit = queue_limit
        self.received = self.sent = self.reconnects = 0
        self._lock = threading.Lock()  # never held while calling paho
        self._up = threading.Event()
        self._filters = {}  # filter -> None, in order: subscribed again on every connection
        self._queue = deque()  # (send, args) waiting for a connection
        self._acks = {}  # mid -> Ack waiting for the broker
        self._early = {}  # mid -> reasons that came before publish() returned the mid
        self._attempt = 0
        self._connections = 0
        self._closed = False
        self._client = None

    def start(self):
        """Start connecting in the background; returns self."""
        self._start_client()
        return self

    @property
    def connected(self):
        return self._up.is_set()

    def wait_connected(self, timeout=None):
        return self._up.wait(timeout)

    def publish(self, topic, payload, retain=False):
        """Publish at QoS 1; the returned Ack completes on the broker's PUBACK."""
        return self._submit(self._send, topic, bytes(payload), retain)

    def subscribe(self, topic_filter):
        """Subscribe at QoS 1 now and after every reconnect; the Ack completes on the SUBACK."""
        with self._lock:
            self._filters[topic_filter] = None
        return self._submit(self._subscribe, topic_filter)

    def close(self, timeout=5.0):
        """Publish `offline` (if online, with presence), disconnect, stop the network thread."""
        if self.presence and self.connected:
            self.publish(self.presence, OFFLINE, retain=True).wait(timeout)
        with self._lock:
            self._closed = True
            client = self._client
        if client is None:
            return
        client.disconnect()
        client.loop_stop()
        self._up.clear()

    # Sending: now when connected, else after the next connect (lock held only for our state).

    def _submit(self, send, *args):
        ack = Ack()
        with self._lock:
            if self._closed:
                raise RuntimeError("transport closed")
            if not self._up.is_set():
                if len(self._queue) >= self.queue_limit:
                    raise OverflowError("offline queue full (%d)" % self.queue_limit)
                self._queue.append((send, args + (ack,)))
                return ack
            client = self._client
        send(client, *args, ack)
        return ack

    def _send(self, client, topic, payload, retain, ack):
        self._track(client.publish(topic, payload, qos=QOS, retain=retain).mid, ack)

    def _subscribe(self, client, topic_filter, ack):
        self._track(client.subscribe(topic_filter, qos=QOS)[1], ack)

    def _track(self, mid, ack):
        with self._lock:
            reasons = self._early.pop(mid, None)
            if reasons is None:
                self._acks[mid] = ack
                return
        ack._answer(reasons)

    def _answered(self, mid, reasons):
        with self._lock:
            ack = self._acks.pop(mid, None)
            if ack is None:
                self._early[mid] = reasons
                return
        ack._answer(reasons)

    # The paho client and its callbacks (all in paho's network thread).

    def _start_client(self):
        protocol = _PROTOCOLS[self.version]
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol,
                             clean_session=None if protocol == paho.MQTTv5 else False)
        client.enable_logger(logging.getLogger(__name__ + ".paho"))
        if self._tls:
            ca_file, cert_file, key_file = self._tls
            client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        if self.presence:
            client.will_set(self.presence, OFFLINE, qos=QOS, retain=True)
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        if protocol == paho.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry
            client.connect_async(self.host, self.port, self.keepalive, clean_start=False,
                                 properties=properties)
        else:
            client.connect_async(self.host, self.port, self.keepalive)
        with self._lock:
            self._client = client
        client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.warning("%s:%d refused the connection: %s", self.host, self.port, reason)
            if reason.value == _UNSUPPORTED_PROTOCOL and self.version == V5 and self.fallback:
                self.version = V311
                client.disconnect()  # ends this client's thread; _on_disconnect starts a 3.1.1 one
            return
        with self._lock:
            self._attempt = 0
            self.reconnects += self._connections > 0
            self._connections += 1
            filters = list(self._filters)
        for topic_filter in filters:
            self._subscribe(client, topic_filter, Ack())
        if self.presence:
            self._send(client, self.presence, ONLINE, True, Ack())
        while True:  # the queue, in order; online once it is empty
            with self._lock:
                if not self._queue:
                    self._up.set()
                    return
                send, args = self._queue.popleft()
            send(client, *args)

    def _on_connect_fail(self, client, userdata):
        self._retry_later(client)

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self._up.clear()
        if client.protocol != _PROTOCOLS[self.version]:
            self._start_client()
        elif not self._closed:
            log.info("disconnected from %s:%d: %s", self.host, self.port, reason)
            self._retry_later(client)

    def _retry_later(self, client):
        """Set paho's next reconnect wait (it has no jitter of its own) from our backoff."""
        with self._lock:
            delay = self.backoff.delay(self._attempt)
            self._attempt += 1
        client.reconnect_delay_set(delay, delay)

    def _on_message(self, client, userdata, message):
        self.received += 1
        if self.on_message is None:
            return
        try:
            self.on_message(message.topic, bytes(message.payload))
        except Exception:  # a failing handler must not stop the network thread
            log.exception("on_message failed for a message on %s", message.topic)

    def _on_publish(self, client, userdata, mid, reason, properties):
        self.sent += not reason.is_failure
        self._answered(mid, [reason.value])

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        self._answered(mid, [r.value for r in reasons])


def device_transport(url: str, kid: bytes, *, ca_file: str | None = None,
                     cert_file: str | None = None, key_file: str | None = None,
                     **options) -> "Transport":
    """A device's broker connection (not started), in its name: its key id (hex) as client id and
    its presence topic, `offline` as the last will. With mqtts://, pass the device's client
    certificate (CN = its key id) and key, and the CA: the broker's access rules then confine the
    connection to the device's own topics. A serial gateway connects for its board so too.
    `options` are Transport's (backoff, keepalive, queue_limit...)."""
    return Transport(url, topics.kid_hex(kid), presence=topics.presence(kid), ca_file=ca_file,
                     cert_file=cert_file, key_file=key_file, **options)


def _no_delay(client, userdata, sock):
    """Send each packet at once: with Nagle's algorithm a small publish waits for the previous
    one's ACK, about 40 ms a hop even on loopback."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a test's socket pair)
        pass
