"""The CPython MQTT transport, on paho-mqtt 2.x: one connection that keeps itself up.

It connects from a URL (mqtt:// or mqtts:// with mutual TLS), speaks MQTT 5 (or 3.1.1, chosen or
fallen back to when the broker refuses 5) with a persistent session, publishes and subscribes at
QoS 1, keeps a retained presence (`online`, and `offline` as its last will), reconnects with
exponential backoff and jitter, and subscribes again on every connection. It knows nothing of the
messages it carries.

It says what a person running it needs to know, once, naming the broker's address: `connected to
host:port`, `disconnected from host:port (cause); retrying in N s`, `cannot connect to host:port
(cause); retrying in N s` (the same cause again is not repeated), and a refused connection as an
error with the broker's reason. Errors a caller can act on are MqttError's: ConnectionRefused
(raised by `wait_connected`, kept in `last_error`), QueueFull, TransportClosed, MessageTooLarge
(over the largest packet the broker's CONNACK announced), and TlsFileError
for a TLS file that is missing or not what it should be (named; raised when the Transport is
made). paho's own log goes to `thingsdk.mqtt.paho` at DEBUG.
"""

import logging
import random
import re
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from thingsdk import mqtt_properties, topics
from thingsdk.core import backoff
from thingsdk.topics import OFFLINE, ONLINE

V5, V311 = "5", "3.1.1"
_PROTOCOLS = {V5: paho.MQTTv5, V311: paho.MQTTv311}
# CONNACK "Unsupported Protocol Version"; paho also reports a 3.1.1 broker's refusal (code 1) so.
_UNSUPPORTED_PROTOCOL = 0x84
PACKET_TOO_LARGE = 0x95
QOS = 1
FILTERS_PER_SUBSCRIBE = 256  # the most filters `packed` puts in one SUBSCRIBE (about 8 KB)

log = logging.getLogger(__name__)
mqtt_properties.install()  # packets without MQTT 5 properties, as all of thingsdk's, made cheap
_paho_log = logging.getLogger(__name__ + ".paho")


class MqttError(Exception):
    """A transport failure a caller can act on."""


class ConnectionRefused(MqttError):
    """The broker answered the CONNECT with a refusal: `reason` (its words) and `code` (the
    MQTT 5 reason code; a 3.1.1 broker's return code is given as its MQTT 5 equivalent)."""

    def __init__(self, host, port, reason, code):
        super().__init__("the broker at %s:%d refused the connection: %s" % (host, port, reason))
        self.host, self.port, self.reason, self.code = host, port, reason, code


class QueueFull(MqttError, OverflowError):
    """Offline, with `queue_limit` messages already waiting for a connection."""


class TransportClosed(MqttError, RuntimeError):
    """The transport was closed: nothing more can be sent."""


class MessageTooLarge(MqttError, ValueError):
    """A publish bigger than the broker's largest packet (its CONNACK says it): sent, the
    broker would drop the connection, and the session would send it again on every one."""


class TlsFileError(MqttError, ValueError):
    """A TLS file (CA, client certificate or key) is missing or not what it should be."""


def tls_context(ca_file, cert_file=None, key_file=None):
    """An ssl.SSLContext for mutual TLS from PEM files, each checked first so that an error names
    the file and what is wrong with it (TlsFileError)."""
    for role, path, load in (("CA certificate", ca_file, _load_certificate),
                             ("client certificate", cert_file, _load_certificate),
                             ("client key", key_file, _load_key)):
        if path is None:
            if role != "CA certificate" and (cert_file or key_file):
                raise TlsFileError("a client certificate needs its key, and a key its certificate")
            continue
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise TlsFileError("%s %s: %s" % (role, path, exc.strerror or exc)) from None
        if not load(data):
            raise TlsFileError("%s %s: not a PEM %s" % (role, path, role.split()[-1]))
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise TlsFileError("client certificate %s and key %s: %s (is the key the certificate's?)"
                           % (cert_file, key_file, exc.reason or exc)) from None
    return context


def certificate_cn(cert_file):
    """The CN of the client certificate in the PEM file `cert_file` (None if it names none);
    raises OSError if it cannot be read and ValueError if it is not a PEM certificate."""
    with open(cert_file, "rb") as f:
        cert = _load_certificate(f.read())
    if cert is None:
        raise ValueError("client certificate %s: not a PEM certificate" % cert_file)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return names[0].value if names else None


def _load_certificate(data):
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        return None


def _load_key(data):
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (TypeError, ValueError):  # TypeError: it has a password
        return None


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
    """The broker's answer to one publish (PUBACK) or subscribe (SUBACK), once it came.
    `queued` is True when it was made while offline (it goes out after the next connect)."""

    __slots__ = ("_unanswered", "queued", "reasons")

    def __init__(self, queued=False):
        # Held until the answer comes: a plain lock, not an Event (a Condition in Python), as
        # a busy vendor makes one for each of its answers.
        self._unanswered = threading.Lock()
        self._unanswered.acquire()
        self.queued = queued
        self.reasons = None  # the reason codes (ints); 0x80 and above are refusals

    def wait(self, timeout=None):
        """True once answered (accepted or refused), False on timeout."""
        if self.reasons is not None:
            return True
        if not self._unanswered.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            return False
        self._unanswered.release()  # for the next waiter
        return True

    @property
    def done(self):
        return self.reasons is not None

    @property
    def refused(self):
        return self.done and any(code >= 0x80 for code in self.reasons)

    def _answer(self, reasons):
        if self.reasons is None:
            self.reasons = reasons
            self._unanswered.release()


def packed(filters):
    """`filters` as tuples of at most FILTERS_PER_SUBSCRIBE, each for one SUBSCRIBE."""
    filters = list(filters)
    return [tuple(filters[i:i + FILTERS_PER_SUBSCRIBE])
            for i in range(0, len(filters), FILTERS_PER_SUBSCRIBE)]


class Transport:
    """One MQTT client connection, kept up in paho's network thread.

    `on_message(topic: str, payload: bytes)` runs in that thread. Messages published while
    disconnected wait in a bounded in-memory queue and go out, in order, after the next connect;
    they are lost if the process stops: the crash-safe outbox is the order lifecycle's job.
    mqtts:// takes the CA file and the client certificate and key (mutual TLS). `version` turns
    to V311 if the broker refuses MQTT 5 and `fallback` is on. `session_expiry` (seconds) keeps
    the session (MQTT 5); 3.1.1 connects with clean_session off. Counters: `received`, `sent`
    (acknowledged publishes) and `reconnects`; `last_error` is the latest failure (an OSError or
    a ConnectionRefused), None once connected.

    With `manual_ack` (set before `start`), a message is not acknowledged when `on_message`
    returns: `on_message(topic, payload, delivery)` gets a third argument to hand to `ack` once
    what the message caused is kept. Until then the broker holds the message for the session and
    delivers it again after a reconnect, to this client id or its next process.

    Use it as a context manager (`with Transport(...) as t:` starts it and closes it), or call
    start() and close().
    """

    def __init__(self, url, client_id, *, on_message=None, presence=None, version=V5,
                 fallback=True, ca_file=None, cert_file=None, key_file=None,
                 session_expiry=7 * 24 * 3600, keepalive=60, backoff=None, queue_limit=1000,
                 manual_ack=False):
        self.host, self.port, tls = broker_address(url)
        if version not in _PROTOCOLS:
            raise ValueError("version is %r or %r" % (V5, V311))
        self._tls = tls_context(ca_file, cert_file, key_file) if tls else None
        self.client_id = client_id
        self.on_message = on_message
        self.presence = presence
        self.version = version
        self.fallback = fallback
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.backoff = backoff or Backoff()
        self.queue_limit = queue_limit
        self.manual_ack = manual_ack
        self.received = self.sent = self.reconnects = 0
        self.last_error = None
        self.max_packet = None  # the broker's largest packet, once its CONNACK said it (MQTT 5)
        self._lock = threading.Lock()  # never held while calling paho
        self._up = threading.Event()
        self._changed = threading.Condition()  # notified on every connect and refusal
        self._refused = None  # the ConnectionRefused of the latest attempt, until a connect
        self._said = []  # the troubles said since the last connection (at most 8), so none is
        # said again on every retry: a broker that hangs up at once gives two causes in turn
        self._was_up = False  # whether the connection that ends was up (lost, not failed)
        self._filters = {}  # filter -> None, in order: subscribed again on every connection
        self._queued_filters = set()  # filters whose SUBSCRIBE waits in the queue
        self._queue = deque()  # (send, args) waiting for a connection
        self._queued_messages = 0  # the publishes among them (what queue_limit bounds)
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.close()

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def connected(self):
        return self._up.is_set()

    def wait_connected(self, timeout=None):
        """True once connected, False after `timeout` seconds; raises ConnectionRefused if the
        broker refused the connection (the transport keeps trying: fix the cause and wait
        again, or close it)."""
        with self._changed:
            self._changed.wait_for(lambda: self._up.is_set() or self._refused, timeout)
            if self._up.is_set():
                return True
            if self._refused:
                raise self._refused
            return False

    def publish(self, topic, payload, retain=False):
        """Publish at QoS 1; the returned Ack completes on the broker's PUBACK. MessageTooLarge
        if it is over the broker's largest packet; one queued while offline that turns out to be
        is answered PACKET_TOO_LARGE instead of sent."""
        payload = bytes(payload)
        too_large = self._too_large(topic, payload)
        if too_large:
            raise MessageTooLarge(too_large)
        return self._submit(self._send, topic, payload, retain)

    def _too_large(self, topic, payload):
        """Why the PUBLISH would be over the broker's limit, or None."""
        limit = self.max_packet
        # fixed header (<= 5), topic length (2) and topic, packet id (2), properties (1)
        size = 10 + len(topic.encode()) + len(payload)
        if limit and size > limit:
            return ("a %d-byte message on %s is over the %d-byte packets the broker at %s takes"
                    % (len(payload), topic, limit, self.address))
        return None

    def subscribe(self, topic_filter):
        """Subscribe at QoS 1 now and after every reconnect; the Ack completes on the SUBACK.
        A tuple of filters goes in one SUBSCRIBE, and its SUBACK gives a reason for each. A
        SUBSCRIBE made offline waits for the connection however many publishes wait: what
        `queue_limit` bounds is messages, not the subscriptions the caller keeps."""
        with self._lock:
            self._filters[topic_filter] = None
        return self._submit(self._subscribe, topic_filter)

    def unsubscribe(self, topic_filter):
        """Stop taking what `topic_filter` matches, now or as soon as connected: from a session
        the broker kept, too (one subscribed by an earlier process under this client id). The
        Ack completes on the UNSUBACK."""
        with self._lock:
            for kept in list(self._filters):
                if kept == topic_filter:
                    del self._filters[kept]
                elif isinstance(kept, tuple) and topic_filter in kept:  # out of its SUBSCRIBE
                    del self._filters[kept]
                    rest = tuple(f for f in kept if f != topic_filter)
                    if rest:
                        self._filters[rest] = None
        return self._submit(self._unsubscribe, topic_filter)

    def ack(self, delivery):
        """Acknowledge a message given to on_message with manual_ack (the `delivery` it came
        with). A message that came on a connection since lost is delivered again and needs no ack,
        but one that came on this client's current session is acknowledged there."""
        client, mid, qos = delivery
        if qos and client is self._client:
            client.ack(mid, qos)

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
                raise TransportClosed("the connection to %s is closed" % self.address)
            if not self._up.is_set():
                if send == self._send:
                    if self._queued_messages >= self.queue_limit:
                        raise QueueFull("offline from %s with %d messages waiting: no room for "
                                        "more" % (self.address, self.queue_limit))
                    self._queued_messages += 1
                ack.queued = True
                self._queue.append((send, args + (ack,)))
                if send == self._subscribe:  # it goes out with the queue, not again before it
                    self._queued_filters.add(args[0])
                return ack
            client = self._client
        send(client, *args, ack)
        return ack

    def _send(self, client, topic, payload, retain, ack):
        too_large = self._too_large(topic, payload)
        if too_large:  # queued before the broker said its limit
            log.error("not sent: %s", too_large)
            ack._answer([PACKET_TOO_LARGE])
            return
        self._track(client.publish(topic, payload, qos=QOS, retain=retain).mid, ack)

    def _subscribe(self, client, topic_filter, ack):
        filters = topic_filter if isinstance(topic_filter, tuple) else (topic_filter,)
        self._track(client.subscribe([(one, QOS) for one in filters])[1], ack)

    def _unsubscribe(self, client, topic_filter, ack):
        self._track(client.unsubscribe(topic_filter)[1], ack)

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
        client = _Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol,
                         clean_session=None if protocol == paho.MQTTv5 else False,
                         manual_ack=self.manual_ack)
        if self._tls:
            client.tls_set_context(self._tls)
        if self.presence:
            client.will_set(self.presence, OFFLINE, qos=QOS, retain=True)
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_subscribe  # the same: (mid, reasons)
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
            if reason.value == _UNSUPPORTED_PROTOCOL and self.version == V5 and self.fallback:
                log.info("%s does not speak MQTT 5: connecting with 3.1.1", self.address)
                self.version = V311
                client.disconnect()  # ends this client's thread; _on_disconnect starts a 3.1.1 one
                return
            refused = ConnectionRefused(self.host, self.port, str(reason), reason.value)
            with self._changed:
                self._refused = self.last_error = refused
                self._changed.notify_all()
            return  # paho closes the connection: _on_disconnect says it and retries
        self.max_packet = getattr(properties, "MaximumPacketSize", None)
        with self._lock:
            self._attempt = 0
            self.reconnects += self._connections > 0
            self._connections += 1
            filters = [f for f in self._filters if f not in self._queued_filters]
            self._queued_filters.clear()
        log.info("connected to %s%s", self.address, " (MQTT 3.1.1)" if self.version == V311 else "")
        self._said = []
        # Filters subscribed as tuples, a few at a time (a worker's new devices), go out packed.
        singles = [f for f in filters if not isinstance(f, tuple)]
        filters = singles + packed(one for f in filters if isinstance(f, tuple) for one in f)
        for topic_filter in filters:
            self._subscribe(client, topic_filter, Ack())
        if self.presence:
            self._send(client, self.presence, ONLINE, True, Ack())
        while True:  # the queue, in order; online once it is empty
            with self._lock:
                if not self._queue:
                    with self._changed:
                        self._up.set()
                        self._refused = self.last_error = None
                        self._was_up = True
                        self._changed.notify_all()
                    return
                send, args = self._queue.popleft()
                self._queued_messages -= send == self._send
            send(client, *args)

    def _on_connect_fail(self, client, userdata):
        error = client.connect_error
        self.last_error = error
        delay = self._retry_later(client)
        self._say(log.warning, "cannot connect to %s (%s)" % (self.address, _cause(error)), delay)

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self._up.clear()
        if client.protocol != _PROTOCOLS[self.version]:
            self._start_client()
            return
        if self._closed:
            return
        delay = self._retry_later(client)
        refused, was_up, self._was_up = self._refused, self._was_up, False
        if refused is not None:
            self._say(log.error, str(refused), delay)
        else:
            cause = str(reason)
            if reason.value == 0x80 and not flags.is_disconnect_packet_from_server:
                cause = client.socket_error or "connection lost"
            client.socket_error = None
            if was_up:
                self._said = []
                self._say(log.warning, "disconnected from %s (%s)" % (self.address, cause), delay)
            else:  # before the CONNACK: e.g. the broker refused the certificate
                self._say(log.warning, "cannot connect to %s (%s)" % (self.address, cause), delay)

    def _say(self, level, trouble, delay):
        """Say `trouble` and when the next attempt is, unless it was said since the last
        connection (then only at DEBUG)."""
        if trouble in self._said:
            level = log.debug
        else:
            self._said = (self._said + [trouble])[-8:]
        level("%s; retrying in %s s", trouble, _seconds(delay))

    def _retry_later(self, client):
        """Set paho's next reconnect wait (it has no jitter of its own) from our backoff."""
        with self._lock:
            delay = self.backoff.delay(self._attempt)
            self._attempt += 1
        client.reconnect_delay_set(delay, delay)
        return delay

    def _on_message(self, client, userdata, message):
        self.received += 1
        if self.on_message is None:
            return
        try:
            if self.manual_ack:
                self.on_message(message.topic, bytes(message.payload),
                                (client, message.mid, message.qos))
            else:
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


class _Client(paho.Client):
    """paho's client, keeping why the latest attempt to connect failed and why its socket
    failed (paho's on_connect_fail and on_disconnect are not told), and sending its own log to
    `thingsdk.mqtt.paho` at DEBUG."""

    connect_error = socket_error = None
    _SOCKET_ERRORS = ("failed to receive on socket: ", "timeout on socket: ")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_log = self._log

    def _easy_log(self, level, fmt, *args):
        # paho formats a debug line for every packet (its properties spelled out) before
        # on_log sees it: about 4 % of a busy vendor's time when nobody reads them.
        if level != paho.MQTT_LOG_DEBUG or _paho_log.isEnabledFor(logging.DEBUG):
            super()._easy_log(level, fmt, *args)

    def _log(self, client, userdata, level, text):
        _paho_log.debug(text)
        for prefix in self._SOCKET_ERRORS:
            if text.startswith(prefix):
                self.socket_error = re.sub(r" \(_ssl\.c:\d+\)$", "", text[len(prefix):])

    def reconnect(self):
        try:
            return super().reconnect()
        except OSError as exc:
            self.connect_error = exc
            raise


def _cause(error):
    """An OSError in a few words: its reason, without errno noise."""
    if isinstance(error, ssl.SSLError):
        return "TLS: %s" % (error.reason or error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _seconds(delay):
    return "%.2g" % delay if delay < 10 else "%d" % round(delay)


def _no_delay(client, userdata, sock):
    """Send each packet at once: with Nagle's algorithm a small publish waits for the previous
    one's ACK, about 40 ms a hop even on loopback."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a test's socket pair)
        pass
