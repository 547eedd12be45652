"""The firmware's own MQTT client (firmware/lib/mqtt.py) on CPython against a real mosquitto, with
the paho-based thingsdk.mqtt.Transport as the vendor on the other side."""

import asyncio
import importlib.util
import socket
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import load_pem_x509_certificate

from broker import HOST, VENDOR, free_port
from thingsdk import topics
from thingsdk.mqtt import Backoff, Transport

import configure  # the firmware's boot-time set-up, which makes the TLS context
import mqtt  # the firmware's own client: firmware/lib is on pytest's pythonpath

KID = bytes.fromhex("0123456789abcdef")
OTHER = bytes.fromhex("fedcba9876543210")
DEVICE = topics.kid_hex(KID)


async def until(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def der_identity(pki, common_name):
    """(cert, key, ca) as DER bytes, as the firmware stores them."""
    cert_file, key_file = pki.client(common_name)
    cert = load_pem_x509_certificate(Path(cert_file).read_bytes())
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
    ca = load_pem_x509_certificate(pki.ca_file.read_bytes())
    der = serialization.Encoding.DER
    return (cert.public_bytes(der),
            key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            ca.public_bytes(der))


def device(port, inbox=None, host=HOST, **kw):
    kw.setdefault("presence", topics.presence(KID))
    kw.setdefault("backoff", 0.2)
    kw.setdefault("backoff_cap", 1)
    on_message = (lambda topic, payload: inbox.append((topic, payload))) if inbox is not None else None
    return mqtt.Client(host, port, DEVICE, on_message=on_message, **kw)


def vendor(url, pki=None, **kw):
    inbox = []
    if pki:
        kw.update(ca_file=pki.ca_file, **dict(zip(("cert_file", "key_file"), pki.client(VENDOR))))
    transport = Transport(url, VENDOR, on_message=lambda t, p: inbox.append((t, p)),
                          backoff=Backoff(0.2, 1), **kw).start()
    assert transport.wait_connected(15)
    return transport, inbox


class Proxy:
    """A loopback TCP relay to the broker whose links the test can cut (closed under both ends, no
    MQTT DISCONNECT) or freeze (a dead link: nothing relayed, nothing closed)."""

    def __init__(self, port):
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self.target, self.frozen, self._links = port, False, []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection((HOST, self.target))
            except OSError:
                return
            self._links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source, sink):
        try:
            while data := source.recv(65536):
                while self.frozen:
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass

    def cut(self):
        links, self._links = self._links, []
        for sock in links:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the relay threads, unlike close() alone
            except OSError:
                pass
            sock.close()

    def close(self):
        self.frozen = False
        self._listener.close()
        self.cut()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_qos1_round_trip_both_ways_with_the_paho_transport(broker):
    async def scenario():
        transport, vendor_inbox = vendor(broker.url)
        transport.subscribe("thingsdk/v1/up/+").wait(10)
        inbox = []
        client = device(broker.port, inbox)
        await client.connect()
        await client.subscribe(topics.downlink(KID))
        payload = bytes(range(256)) * 4
        await client.publish(topics.uplink(KID), payload)
        await until(lambda: (topics.uplink(KID), payload) in vendor_inbox)
        await until(lambda: client.unacked == 0)
        assert client.sent == 2  # the message and the `online` presence
        assert transport.publish(topics.downlink(KID), b"order").wait(10)
        await until(lambda: inbox == [(topics.downlink(KID), b"order")])
        assert await client.publish(topics.uplink(KID), b"q0", qos=0) is True
        await until(lambda: (topics.uplink(KID), b"q0") in vendor_inbox)
        await client.close()
        transport.close()
    asyncio.run(scenario())


def test_mutual_tls_with_der_and_the_acl_confines_the_device(broker, pki):
    async def scenario():
        transport, vendor_inbox = vendor(broker.tls_url, pki)
        transport.subscribe("thingsdk/v1/up/+").wait(10)
        transport.subscribe("thingsdk/v1/presence/+").wait(10)
        inbox = []
        ssl = configure.tls_context(*der_identity(pki, DEVICE))
        client = device(broker.tls_port, inbox, ssl=ssl)
        await client.connect()
        await client.subscribe(topics.downlink(KID))
        with pytest.raises(mqtt.MQTTError, match="refused"):  # the broker checks SUBSCRIBE
            await client.subscribe(topics.downlink(OTHER))
        await client.publish(topics.uplink(OTHER), b"forged")
        await client.publish(topics.presence(OTHER), b"online", retain=True)
        await client.publish(topics.uplink(KID), b"mine")
        await until(lambda: (topics.uplink(KID), b"mine") in vendor_inbox)
        assert (topics.presence(KID), b"online") in vendor_inbox
        transport.publish(topics.downlink(OTHER), b"not yours").wait(10)
        transport.publish(topics.downlink(KID), b"yours").wait(10)
        await until(lambda: (topics.downlink(KID), b"yours") in inbox)
        await until(lambda: client.unacked == 0)
        assert inbox == [(topics.downlink(KID), b"yours")]
        assert [m for m in vendor_inbox if topics.parse(m[0])[1] == OTHER] == []
        await client.close()
        transport.close()
    asyncio.run(scenario())


def test_connack_refusal_is_a_clear_error(broker):
    async def scenario():
        client = mqtt.Client(HOST, broker.port, "")  # no client id with a persistent session
        with pytest.raises(mqtt.MQTTError, match="identifier rejected"):
            await client.connect()
        assert not client.connected
    asyncio.run(scenario())


def test_messages_published_while_the_broker_is_down_arrive_after_it_restarts(persistent_broker):
    broker = persistent_broker

    async def scenario():
        transport, vendor_inbox = vendor(broker.url, version="3.1.1")
        transport.subscribe("thingsdk/v1/up/+").wait(10)
        client = device(broker.port, limit=20)
        await client.connect()
        await until(lambda: client.unacked == 0)
        broker.stop()
        sent = [b"reading %d" % i for i in range(12)]
        for payload in sent:
            await client.publish(topics.uplink(KID), payload)
        with pytest.raises(mqtt.QueueFull):
            for _ in range(20):
                await client.publish(topics.uplink(KID), b"overflow")
        sent += [b"overflow"] * (client.unacked - len(sent))
        broker.start()
        await until(lambda: client.unacked == 0, 30)
        # the broker has them all; the vendor gets them once its own reconnection is through
        await until(lambda: len([t for t, _ in vendor_inbox if t == topics.uplink(KID)]) >= len(sent))
        got = sorted(p for t, p in vendor_inbox if t == topics.uplink(KID))
        # QoS 1 allows a duplicate only when a PUBACK is lost; nothing was acknowledged before the
        # broker went down, so here each message arrives exactly once.
        assert got == sorted(sent)
        assert client.reconnects >= 1
        await client.close()
        transport.close()
    asyncio.run(scenario())


def test_qos1_is_retransmitted_with_dup_until_acknowledged_on_a_dead_link(broker):
    proxy = Proxy(broker.port)

    async def scenario():
        transport, vendor_inbox = vendor(broker.url)
        transport.subscribe("thingsdk/v1/up/+").wait(10)
        client = device(proxy.port, keepalive=2, ping_timeout=1, retry=0.5)
        await client.connect()
        await until(lambda: client.unacked == 0)
        proxy.frozen = True  # the link dies silently: no FIN, no RST
        await client.publish(topics.uplink(KID), b"stuck")
        await until(lambda: client._flight and client._flight[0][1][0] & 0x08)  # re-sent with DUP
        await until(lambda: client.reconnects >= 1)  # no PINGRESP: the link is treated as lost
        assert "PINGRESP" in str(client.last_error)
        proxy.frozen = False
        proxy.cut()
        await until(lambda: client.unacked == 0 and client.connected, 30)
        await until(lambda: (topics.uplink(KID), b"stuck") in vendor_inbox)
        await client.close()
        transport.close()
    with proxy:
        asyncio.run(scenario())


def test_the_last_will_fires_when_the_socket_is_cut(broker):
    proxy = Proxy(broker.port)

    async def scenario():
        transport, vendor_inbox = vendor(broker.url)
        transport.subscribe("thingsdk/v1/presence/+").wait(10)
        client = device(proxy.port, backoff=3, backoff_cap=3)
        await client.connect()
        await until(lambda: (topics.presence(KID), b"online") in vendor_inbox)
        proxy.cut()
        await until(lambda: vendor_inbox[-1] == (topics.presence(KID), b"offline"))
        await until(lambda: client.reconnects == 1 and client.connected)
        await until(lambda: vendor_inbox[-1] == (topics.presence(KID), b"online"))
        await client.close()  # a clean close says `offline` itself
        await until(lambda: vendor_inbox[-1] == (topics.presence(KID), b"offline"))
        transport.close()
    with proxy:
        asyncio.run(scenario())


def test_keepalive_pings_keep_an_idle_connection_alive(broker):
    async def scenario():
        client = device(broker.port, keepalive=2)
        await client.connect()
        await asyncio.sleep(5)  # past 1.5 x keepalive, when mosquitto drops a silent client
        assert client.connected and client.reconnects == 0 and client.last_error is None
        assert "Received PINGREQ from %s" % DEVICE in broker.log()
        await client.close()
    asyncio.run(scenario())


def test_reconnect_and_resubscribe_after_a_broker_restart(broker):
    async def scenario():
        inbox = []
        client = device(broker.port, inbox)
        await client.connect()
        await client.subscribe(topics.downlink(KID))
        broker.restart()  # persistence off: the broker forgets the subscription
        transport, _ = vendor(broker.url)
        await until(lambda: client.reconnects >= 1 and client.connected)
        for _ in range(100):  # until the re-subscription is in place
            transport.publish(topics.downlink(KID), b"after restart").wait(10)
            await asyncio.sleep(0.2)
            if inbox:
                break
        assert inbox and set(inbox) == {(topics.downlink(KID), b"after restart")}
        await client.close()
        transport.close()
    asyncio.run(scenario())


def test_a_persistent_session_delivers_downlinks_queued_while_offline(persistent_broker):
    broker = persistent_broker

    async def scenario():
        client = device(broker.port)
        await client.connect()
        await client.subscribe(topics.downlink(KID))
        await client.close()
        transport, _ = vendor(broker.url)
        for i in range(3):
            assert transport.publish(topics.downlink(KID), b"queued %d" % i).wait(10)
        transport.close()
        broker.restart()
        inbox = []
        client = device(broker.port, inbox)
        await client.connect()  # no subscribe(): the session kept the subscription and messages
        await until(lambda: len(inbox) >= 3)
        assert inbox == [(topics.downlink(KID), b"queued %d" % i) for i in range(3)]
        await client.close()
    asyncio.run(scenario())


def test_a_big_payload_is_written_as_it_is_after_a_small_header(broker, monkeypatch):
    writes = []
    write = asyncio.StreamWriter.write

    def spy(self, data):
        writes.append(data)
        write(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", spy)

    async def scenario():
        transport, vendor_inbox = vendor(broker.url)
        transport.subscribe("thingsdk/v1/up/+").wait(10)
        client = device(broker.port)
        await client.connect()
        await until(lambda: client.unacked == 0)
        payload = bytes(range(256)) * 64  # 16 KiB
        del writes[:]
        await client.publish(topics.uplink(KID), payload)
        await until(lambda: (topics.uplink(KID), payload) in vendor_inbox)
        # two writes: the fixed header, topic and packet id, then the caller's payload object itself
        assert len(writes) == 2 and writes[1] is payload
        topic = topics.uplink(KID).encode()
        assert bytes(writes[0]) == b"\x32" + mqtt.encode_length(2 + len(topic) + 2 + len(payload)) \
            + len(topic).to_bytes(2, "big") + topic + b"\x00\x02"
        await client.close()
        transport.close()
    asyncio.run(scenario())


def test_a_packet_over_max_size_is_refused_without_being_held(persistent_broker, monkeypatch):
    broker = persistent_broker
    asked = []  # what the client asked the stream for (CPython's readexactly allocates that much)
    readexactly = asyncio.StreamReader.readexactly

    async def spy(self, n):
        asked.append(n)
        return await readexactly(self, n)

    monkeypatch.setattr(asyncio.StreamReader, "readexactly", spy)
    proxy = Proxy(broker.port)

    async def scenario():
        transport, _ = vendor(broker.url)
        inbox = []
        client = device(proxy.port, inbox, max_size=1024)
        await client.connect()
        await client.subscribe(topics.downlink(KID))
        # (the broker itself refuses packets over the protocol's largest message, 16 KiB)
        for payload in (b"x" * 900, b"y" * 16000, b"after"):
            assert transport.publish(topics.downlink(KID), payload).wait(10)
        await until(lambda: len(inbox) == 2)
        assert inbox == [(topics.downlink(KID), b"x" * 900), (topics.downlink(KID), b"after")]
        assert client.refused == 1 and "refused a 160" in str(client.last_error)
        assert len(client._mv) <= 1024 and max(asked) <= len(client._mv)  # grown within max_size
        assert client.connected and client.reconnects == 0  # refused, not a reason to drop the link
        proxy.cut()  # the refused message was acknowledged: the session does not send it again
        await until(lambda: client.reconnects == 1 and client.connected)
        assert transport.publish(topics.downlink(KID), b"later").wait(10)
        await until(lambda: len(inbox) == 3)
        assert inbox[2] == (topics.downlink(KID), b"later") and client.refused == 1
        await client.close()
        transport.close()
    with proxy:
        asyncio.run(scenario())


@pytest.fixture
def lookups(monkeypatch):
    """The broker names the firmware's client looked up (socket.getaddrinfo, which blocks)."""
    names = []
    getaddrinfo = socket.getaddrinfo

    def spy(host, *args, **kw):
        if host == "localhost":
            names.append(host)
        return getaddrinfo(host, *args, **kw)

    monkeypatch.setattr(mqtt.socket, "getaddrinfo", spy)
    return names


def test_the_broker_name_is_resolved_once_while_the_network_stays(broker, lookups):
    proxy = Proxy(broker.port)

    async def scenario():
        notes = []
        client = device(proxy.port, host="localhost", note=notes.append)
        await client.connect()
        for cut in range(1, 4):
            proxy.cut()
            await until(lambda: client.reconnects == cut and client.connected)
        assert lookups == ["localhost"]
        assert notes.count("connected to localhost:%d" % proxy.port) == 4
        assert len([n for n in notes if n.startswith("disconnected from localhost:%d (" % proxy.port)
                    and "; retrying in " in n]) == 3
        await client.close()
    with proxy:
        asyncio.run(scenario())


def test_the_broker_name_is_resolved_again_after_a_streak_of_failures(lookups):
    async def scenario():
        notes = []
        port = free_port()  # nothing listens: every connection is refused
        client = device(port, host="localhost", note=notes.append, backoff=0.2, backoff_cap=0.2)
        client.start()
        failed = lambda: [n for n in notes if n.startswith("cannot connect to localhost:%d" % port)]
        await until(lambda: client._attempt >= 9)
        # attempts 0, 4 and 8 resolved it (mqtt.STREAK = 4 failures in a row)
        assert client._attempt <= 12 and lookups == ["localhost"] * 3, (notes, lookups)
        # each refusal is the same: said once, not once a retry
        assert len(failed()) == 1 and len(notes) == 1, notes
        assert "retrying in 0.1 s" in failed()[0] or "retrying in 0.2 s" in failed()[0]
        assert not client.connected and isinstance(client.last_error, OSError)
        await client.close()
    asyncio.run(scenario())


@pytest.fixture
def network(monkeypatch):
    """The virtual board's fake `network` (hil/virtual/lib/network.py) on a stand-in for the rig:
    a joined station is connected while net["up"]; the test drops it with wlan.disconnect()."""
    net = {"up": True}
    monkeypatch.setitem(sys.modules, "_vboard_js", types.SimpleNamespace(net_up=lambda: net["up"]))
    path = Path(__file__).resolve().parent.parent / "hil" / "virtual" / "lib" / "network.py"
    spec = importlib.util.spec_from_file_location("network", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "network", module)
    return net


def test_wifi_is_joined_again_when_it_drops_and_the_link_comes_back(broker, network, lookups,
                                                                    capsys):
    import app

    proxy = Proxy(broker.port)

    async def scenario():
        transport, vendor_inbox = vendor(broker.url)
        transport.subscribe("thingsdk/v1/up/+").wait(10)
        notes = []
        wifi = app.Wifi({"ssid": "site", "key": "secret"}, timeout=1)
        client = device(proxy.port, host="localhost", wifi=wifi, note=notes.append, keepalive=4)
        client.start()  # joins the WiFi first
        await until(lambda: client.connected)
        assert wifi.joins == 1 and lookups == ["localhost"]
        # The access point goes away: the station is dropped and the TCP link dies silently.
        network["up"], proxy.frozen = False, True
        wifi.wlan.disconnect()
        await until(lambda: not client.connected)
        assert "WiFi lost" in str(client.last_error)
        await client.publish(topics.uplink(KID), b"during the outage")  # kept in flight
        await until(lambda: any("not joined within 1 s" in n for n in notes))  # tried, and again
        network["up"], proxy.frozen = True, False  # the station joins by itself, or when asked
        proxy.cut()
        await until(lambda: client.connected and client.unacked == 0, 30)
        await until(lambda: (topics.uplink(KID), b"during the outage") in vendor_inbox)
        assert wifi.joins == 2 and client.reconnects == 1
        assert lookups == ["localhost"] * 2  # once per join of the network
        # Dropped with the network up and no station trying on its own: the client joins it.
        wifi.wlan.disconnect()
        await until(lambda: client.reconnects == 2 and client.connected)
        assert wifi.joins == 3 and wifi.wlan.isconnected() and lookups == ["localhost"] * 3
        await client.close()
        transport.close()
        return notes
    with proxy:
        notes = asyncio.run(scenario())
    out = capsys.readouterr().out.splitlines()
    assert out == ["thingsdk: WiFi site joined"] + ["thingsdk: WiFi site lost",
                                                     "thingsdk: WiFi site re-joined"] * 2
    assert notes.count("connected to localhost:%d" % proxy.port) == 3
    lost = [n for n in notes if n.startswith("disconnected from")]
    assert len(lost) == 2 and all("WiFi lost" in n and "; retrying in" in n for n in lost)
