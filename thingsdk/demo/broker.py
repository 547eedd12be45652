"""An MQTT broker inside the demo's process: amqtt on 127.0.0.1, on a port the system picks, in
its own thread and event loop.

amqtt speaks MQTT 3.1.1 only, and it drops an MQTT 5 CONNECT without the CONNACK that would let
a client fall back (it misreads the v5 properties before it checks the version), so the demo's
clients speak 3.1.1 to it.
"""

import asyncio
import threading

from thingsdk.demo import DemoError
from thingsdk.mqtt import V5, V311, Backoff, Transport

HOST = "127.0.0.1"
START_TIMEOUT = 10.0  # real seconds
SESSION_EXPIRY = 60  # seconds a broker keeps a demo client's session after it left (MQTT 5)


class Link:
    """How the demo's clients reach a broker: its URL, the MQTT version to speak first (MQTT 5
    falls back to 3.1.1 when the broker refuses it) and, for mqtts://, the CA file and a client
    certificate and key."""

    def __init__(self, url, version=V5, ca=None, cert=None, key=None):
        self.url, self.version, self.tls = url, version, (ca, cert, key)

    def transport(self, client_id, on_message=None, announce=None):
        """A Transport (not started) for one client of the demo; `announce(payload)` is told
        of each message it is about to publish."""
        ca, cert, key = self.tls
        options = dict(on_message=on_message, version=self.version, ca_file=ca, cert_file=cert,
                       key_file=key, backoff=Backoff(0.05, 1.0), session_expiry=SESSION_EXPIRY)
        if announce is None:
            return Transport(self.url, client_id, **options)
        return _Announcing(announce, self.url, client_id, **options)


class _Announcing(Transport):
    """A Transport that calls `announce(payload)` before it publishes a message."""

    def __init__(self, announce, *args, **options):
        super().__init__(*args, **options)
        self.announce = announce

    def publish(self, topic, payload, retain=False):
        self.announce(payload)
        return super().publish(topic, payload, retain)


class EmbeddedBroker:
    """A running amqtt broker; entering the context starts it and gives its Link."""

    def __init__(self):
        self._thread = None
        self._ready = threading.Event()
        self._error = None
        self._loop = self._stop = None

    def __enter__(self):
        try:
            import amqtt.broker  # noqa: F401 (fail here, with a clear message, if it is missing)
        except ImportError as exc:
            raise DemoError("the embedded broker needs the amqtt package (pip install "
                               "'thingsdk[demo]'), or pass --broker URL") from exc
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),),
                                        name="thingsdk-demo-broker")
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise DemoError("the embedded broker did not start in %d s" % START_TIMEOUT)
        if self._error is not None:
            self._thread.join()
            raise DemoError("the embedded broker did not start: %s" % self._error)
        return Link(self._url, V311)

    def __exit__(self, *exc_info):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    async def _serve(self):
        from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
        from amqtt.broker import Broker

        # An "external" listener: this module accepts the connections (on a port the system
        # picks, so there is no race for a free one) and hands each one to the broker.
        config = {"listeners": {"default": {"type": "external"}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                              {"allow_anonymous": True}}}

        async def connected(reader, writer):
            await broker.external_connected(StreamReaderAdapter(reader),
                                            StreamWriterAdapter(writer), "default")

        try:
            broker = Broker(config)
            await broker.start()
            server = await asyncio.start_server(connected, HOST, 0)
        except Exception as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._url = "mqtt://%s:%d" % (HOST, server.sockets[0].getsockname()[1])
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            await broker.shutdown()
            await server.wait_closed()
