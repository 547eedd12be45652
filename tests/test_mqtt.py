"""The MQTT transport and topic layout against a real mosquitto (tests/broker.py)."""

import logging
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from broker import VENDOR, VENDOR_2, Mqtt311Only, free_port, wait_for
from thingsdk import topics
from thingsdk.mqtt import (PACKET_TOO_LARGE, V5, V311, Backoff, ConnectionRefused,
                           MessageTooLarge, MqttError, QueueFull, TlsFileError, Transport,
                           TransportClosed)

DEVICE_A = bytes.fromhex("a1a2a3a4a5a6a7a8")
DEVICE_B = bytes.fromhex("b1b2b3b4b5b6b7b8")
NOT_AUTHORIZED = 0x87  # MQTT 5 reason code in a PUBACK
TIMEOUT = 10.0


class Received:
    """Collects what a transport receives, as (topic, payload) pairs."""

    def __init__(self):
        self.messages = []
        self._lock = threading.Lock()

    def __call__(self, topic, payload):
        with self._lock:
            self.messages.append((topic, payload))

    def wait(self, topic, payload):
        return wait_for(lambda: (topic, payload) in self.messages, TIMEOUT)

    def payloads(self, topic):
        with self._lock:
            return [p for t, p in self.messages if t == topic]


@pytest.fixture
def connect(pki):
    """connect(url, client_id, cn=None, **options) -> a started Transport, closed at teardown.

    cn picks the client certificate (mqtts:// only): a device's kid hex, VENDOR, or None for none.
    """
    made = []

    def make(url, client_id, cn=None, **options):
        options.setdefault("backoff", Backoff(base=0.05, cap=0.4))
        options.setdefault("on_message", Received())
        if url.startswith("mqtts:"):
            cert_file, key_file = pki.client(cn) if cn else (None, None)
            options.update(ca_file=str(pki.ca_file), cert_file=cert_file, key_file=key_file)
        transport = Transport(url, client_id, **options)
        made.append(transport)
        return transport.start()

    yield make
    for transport in made:
        transport.close(timeout=1)


def device(connect, url, kid, **options):
    """A connected device: its kid as client id and cert CN, presence on, its downlink subscribed."""
    name = topics.kid_hex(kid)
    transport = connect(url, name, cn=name, presence=topics.presence(kid), **options)
    assert transport.subscribe(topics.downlink(kid)).wait(TIMEOUT)
    return transport


def vendor(connect, url, **options):
    """A connected vendor worker, taking uplinks through the shared subscription."""
    transport = connect(url, VENDOR, cn=VENDOR, **options)
    ack = transport.subscribe(topics.vendor_uplinks())
    assert ack.wait(TIMEOUT) and not ack.refused
    return transport


def test_the_vendor_reads_every_device_and_nothing_else(broker, connect):
    server = connect(broker.tls_url, VENDOR, cn=VENDOR)
    for allowed in (topics.every(topics.UP), topics.presence(DEVICE_A), topics.uplink(DEVICE_B),
                    topics.vendor_uplinks()):
        ack = server.subscribe(allowed)
        assert ack.wait(TIMEOUT) and ack.reasons == [1], allowed
    for refused in ("#", "thingsdk/v1/up/#", "thingsdk/v1/+/+", topics.every(topics.DOWN),
                    topics.vendor_uplinks("elsewhere")):
        ack = server.subscribe(refused)
        assert ack.wait(TIMEOUT) and ack.reasons == [NOT_AUTHORIZED], refused


def test_topic_layout_and_acl():
    assert topics.uplink(DEVICE_A) == "thingsdk/v1/up/a1a2a3a4a5a6a7a8"
    assert topics.downlink(DEVICE_A) == "thingsdk/v1/down/a1a2a3a4a5a6a7a8"
    assert topics.presence(DEVICE_A) == "thingsdk/v1/presence/a1a2a3a4a5a6a7a8"
    assert topics.to_owner(DEVICE_A) == "thingsdk/v1/to-owner/a1a2a3a4a5a6a7a8"
    assert topics.from_owner(DEVICE_A) == "thingsdk/v1/from-owner/a1a2a3a4a5a6a7a8"
    assert topics.vendor_uplinks("workers") == "$share/workers/thingsdk/v1/up/+"
    for build, kind in ((topics.uplink, topics.UP), (topics.downlink, topics.DOWN),
                        (topics.presence, topics.PRESENCE), (topics.to_owner, topics.TO_OWNER),
                        (topics.from_owner, topics.FROM_OWNER)):
        assert topics.parse(build(DEVICE_B)) == (kind, DEVICE_B)
    for bad in ("thingsdk/v1/up/A1A2A3A4A5A6A7A8", "thingsdk/v1/up/a1a2", "thingsdk/v2/up/" + "a1" * 8,
                "thingsdk/v1/sideways/" + "a1" * 8, "thingsdk/v1/up/" + "a1" * 8 + "/x"):
        with pytest.raises(ValueError):
            topics.parse(bad)
    with pytest.raises(ValueError):
        topics.uplink(b"short")
    assert topics.device_access(DEVICE_A) == [
        (topics.WRITE, topics.uplink(DEVICE_A)), (topics.WRITE, topics.presence(DEVICE_A)),
        (topics.READ, topics.downlink(DEVICE_A)), (topics.WRITE, topics.to_owner(DEVICE_A)),
        (topics.READ, topics.from_owner(DEVICE_A))]
    assert (topics.READ, "$share/workers/thingsdk/v1/up/+") in topics.vendor_access("workers")
    assert set(topics.owner_access([DEVICE_B])) == {
        (topics.READ, topics.uplink(DEVICE_B)), (topics.READ, topics.downlink(DEVICE_B)),
        (topics.READ, topics.presence(DEVICE_B)), (topics.READ, topics.to_owner(DEVICE_B)),
        (topics.WRITE, topics.from_owner(DEVICE_B))}
    assert topics.shared_filter("$share/g/thingsdk/v1/up/+") == "thingsdk/v1/up/+"


def test_backoff_grows_with_jitter_up_to_the_cap():
    low, high = Backoff(1, 30, rand=lambda: 0.0), Backoff(1, 30, rand=lambda: 0.999999)
    assert [low.delay(n) for n in range(7)] == [0.5, 1, 2, 4, 8, 15, 15]
    assert [round(high.delay(n), 3) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert low.delay(10_000) == 15  # no overflow for a client that retried for months
    draws = iter([0.25, 0.75, 0.5])
    jittered = Backoff(2, 60, rand=lambda: next(draws))
    assert [jittered.delay(n) for n in range(3)] == [1.25, 3.5, 6.0]
    with pytest.raises(ValueError):
        Backoff(5, 1)


def test_qos1_round_trip_through_the_broker(broker, connect):
    server = vendor(connect, broker.url)
    thing = device(connect, broker.url, DEVICE_A)
    ack = thing.publish(topics.uplink(DEVICE_A), b"\xd2\x84status")
    assert ack.wait(TIMEOUT) and ack.reasons == [0]
    assert server.on_message.wait(topics.uplink(DEVICE_A), b"\xd2\x84status")
    assert server.publish(topics.downlink(DEVICE_A), b"offer").wait(TIMEOUT)
    assert thing.on_message.wait(topics.downlink(DEVICE_A), b"offer")
    assert thing.sent >= 2 and server.received >= 1 and thing.reconnects == 0  # + "online"


def test_mutual_tls_works_and_a_client_without_certificate_is_refused(broker, connect, loud):
    server = vendor(connect, broker.tls_url)
    thing = device(connect, broker.tls_url, DEVICE_A)
    assert thing.publish(topics.uplink(DEVICE_A), b"over tls").wait(TIMEOUT)
    assert server.on_message.wait(topics.uplink(DEVICE_A), b"over tls")

    anonymous = connect(broker.tls_url, "nobody", cn=None)
    assert wait_for(lambda: "peer did not return a certificate" in broker.log(), TIMEOUT)
    assert not anonymous.connected
    assert wait_for(lambda: said(loud, "cannot connect to %s (" % broker.tls_url[8:]), TIMEOUT)
    assert "certificate required" in said(loud, "cannot connect to")[0]


def test_a_device_is_confined_to_its_own_topics(broker, connect):
    server = vendor(connect, broker.tls_url)
    a = device(connect, broker.tls_url, DEVICE_A)
    b = device(connect, broker.tls_url, DEVICE_B)

    # A poses as B on B's uplink, and as the vendor on B's downlink: the broker drops both.
    forged = a.publish(topics.uplink(DEVICE_B), b"forged order")
    assert forged.wait(TIMEOUT) and forged.reasons == [NOT_AUTHORIZED]
    assert a.publish(topics.downlink(DEVICE_B), b"forged offer").wait(TIMEOUT)
    # The dynamic-security plugin refuses a SUBSCRIBE to anything but its own downlink.
    for topic_filter in (topics.downlink(DEVICE_B), "thingsdk/v1/down/+", "#",
                         topics.uplink(DEVICE_A)):
        refused = a.subscribe(topic_filter)
        assert refused.wait(TIMEOUT) and refused.reasons == [NOT_AUTHORIZED]
    assert server.publish(topics.downlink(DEVICE_B), b"offer for b").wait(TIMEOUT)
    assert b.on_message.wait(topics.downlink(DEVICE_B), b"offer for b")

    # Its own topics work; mosquitto relays in order, so anything refused above would be here now.
    assert a.publish(topics.uplink(DEVICE_A), b"own order").wait(TIMEOUT)
    assert server.on_message.wait(topics.uplink(DEVICE_A), b"own order")
    assert server.publish(topics.downlink(DEVICE_A), b"offer for a").wait(TIMEOUT)
    assert a.on_message.wait(topics.downlink(DEVICE_A), b"offer for a")
    assert server.on_message.payloads(topics.uplink(DEVICE_B)) == []
    assert b.on_message.payloads(topics.downlink(DEVICE_B)) == [b"offer for b"]
    # (three copies: overlapping subscriptions each get one)
    assert {t for t, _ in a.on_message.messages} == {topics.downlink(DEVICE_A)}
    assert "Denied PUBLISH from %s" % topics.kid_hex(DEVICE_A) in broker.log()


def test_a_device_cannot_join_the_vendors_share_group(broker, connect):
    server = vendor(connect, broker.tls_url)
    intruder = device(connect, broker.tls_url, DEVICE_A)
    for group in ("vendor", "intruders"):
        joined = intruder.subscribe(topics.vendor_uplinks(group))
        assert joined.wait(TIMEOUT) and joined.reasons == [NOT_AUTHORIZED]
    b = device(connect, broker.tls_url, DEVICE_B)
    sent = [b"order %d" % i for i in range(4)]
    for payload in sent:
        assert b.publish(topics.uplink(DEVICE_B), payload).wait(TIMEOUT)
    assert wait_for(lambda: server.on_message.payloads(topics.uplink(DEVICE_B)) == sent, TIMEOUT)
    assert intruder.on_message.messages == []


def test_a_device_cannot_take_another_devices_client_id(broker, connect):
    server = vendor(connect, broker.tls_url)
    a = device(connect, broker.tls_url, DEVICE_A)
    # B's certificate is valid, but the broker makes its CN the client id: B connects as itself.
    intruder = connect(broker.tls_url, topics.kid_hex(DEVICE_A), cn=topics.kid_hex(DEVICE_B))
    assert intruder.wait_connected(TIMEOUT)
    assert "as %s (" % topics.kid_hex(DEVICE_B) in broker.log()
    refused = intruder.subscribe(topics.downlink(DEVICE_A))
    assert refused.wait(TIMEOUT) and refused.reasons == [NOT_AUTHORIZED]
    # A is still connected, in the same session, and alone on its downlink.
    assert server.publish(topics.downlink(DEVICE_A), b"offer for a").wait(TIMEOUT)
    assert a.on_message.wait(topics.downlink(DEVICE_A), b"offer for a")
    assert a.connected and a.reconnects == 0 and "taken over" not in broker.log()
    assert intruder.on_message.messages == []


def test_a_certificate_the_rules_do_not_name_can_do_nothing(broker, connect):
    stranger = connect(broker.tls_url, "stranger", cn="stranger")
    assert stranger.wait_connected(TIMEOUT)
    for topic_filter in ("#", topics.every(topics.UP)):
        refused = stranger.subscribe(topic_filter)
        assert refused.wait(TIMEOUT) and refused.reasons == [NOT_AUTHORIZED]
    denied = stranger.publish(topics.uplink(DEVICE_A), b"forged")
    assert denied.wait(TIMEOUT) and denied.reasons == [NOT_AUTHORIZED]


DEVICE_PROCESS = """
import sys, time
from thingsdk import topics
from thingsdk.mqtt import Transport
url, ca, cert, key, kid = sys.argv[1:]
kid = bytes.fromhex(kid)
t = Transport(url, kid.hex(), presence=topics.presence(kid), ca_file=ca, cert_file=cert, key_file=key)
t.start()
assert t.wait_connected(10)
print("connected", flush=True)
time.sleep(60)
"""


def test_a_device_that_dies_is_announced_offline_by_its_last_will(broker, connect, pki):
    watcher = vendor(connect, broker.tls_url)
    assert watcher.subscribe("thingsdk/v1/presence/+").wait(TIMEOUT)
    presence = topics.presence(DEVICE_A)
    cert_file, key_file = pki.client(topics.kid_hex(DEVICE_A))
    process = subprocess.Popen([sys.executable, "-c", DEVICE_PROCESS, broker.tls_url,
                                str(pki.ca_file), cert_file, key_file, DEVICE_A.hex()],
                               stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline() == b"connected\n"
        assert watcher.on_message.wait(presence, topics.ONLINE)
        process.send_signal(signal.SIGKILL)  # no DISCONNECT: the socket just closes
        process.wait(TIMEOUT)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
    assert watcher.on_message.wait(presence, topics.OFFLINE)
    late = connect(broker.tls_url, VENDOR_2, cn=VENDOR_2)  # the state is retained
    late.subscribe(presence)
    assert late.on_message.wait(presence, topics.OFFLINE)


def test_a_subscription_made_before_connecting_is_sent_once(broker, connect, loud):
    retained = topics.presence(DEVICE_B)
    setter = connect(broker.url, "setter")
    assert setter.publish(retained, topics.ONLINE, retain=True).wait(TIMEOUT)
    watcher = Transport(broker.url, "watcher", on_message=Received())
    subscribed = watcher.subscribe(retained)
    with watcher:
        assert subscribed.wait(TIMEOUT) and subscribed.reasons == [1]
        assert watcher.on_message.wait(retained, topics.ONLINE)
        assert setter.publish(topics.uplink(DEVICE_B), b"after").wait(TIMEOUT)  # a marker
        assert not wait_for(lambda: len(watcher.on_message.messages) > 1, 0.5)
    sent = [r.getMessage() for r in loud.records if r.name == "thingsdk.mqtt.paho"
            and r.getMessage().startswith("Sending SUBSCRIBE") and retained in r.getMessage()]
    assert len(sent) == 1, sent


def test_many_filters_go_in_one_subscribe_kept_across_a_restart_until_unsubscribed(
        broker, connect, loud):
    """A tuple of filters is one SUBSCRIBE with a reason each, sent again after a reconnect; an
    unsubscribed filter is not. Subscriptions made offline wait whatever `queue_limit` is."""
    server = connect(broker.tls_url, VENDOR, cn=VENDOR)
    some = (topics.uplink(DEVICE_A), topics.uplink(DEVICE_B), topics.every(topics.DOWN))
    ack = server.subscribe(some)
    assert ack.wait(TIMEOUT) and ack.reasons == [1, 1, NOT_AUTHORIZED]
    sent = [r.getMessage() for r in loud.records if r.getMessage().startswith("Sending SUBSCRIBE")
            and topics.uplink(DEVICE_A) in r.getMessage()]
    assert len(sent) == 1 and topics.uplink(DEVICE_B) in sent[0], sent
    assert server.subscribe((topics.presence(DEVICE_A),)).wait(TIMEOUT)
    a = device(connect, broker.tls_url, DEVICE_A)
    b = device(connect, broker.tls_url, DEVICE_B)

    broker.stop()  # persistence off: the restarted broker forgets every session
    assert wait_for(lambda: not server.connected, TIMEOUT)
    gone = server.unsubscribe(topics.uplink(DEVICE_B))  # goes out with the next connection
    offline = Transport(broker.url, "offline", queue_limit=1)
    assert not offline.subscribe(topics.uplink(DEVICE_A)).done
    assert not offline.subscribe((topics.uplink(DEVICE_B),)).done
    offline.publish(topics.uplink(DEVICE_A), b"the one message it may queue")
    with pytest.raises(QueueFull):
        offline.publish(topics.uplink(DEVICE_A), b"one too many")
    broker.start()

    assert gone.wait(TIMEOUT) and not gone.refused
    assert a.wait_connected(TIMEOUT) and b.wait_connected(TIMEOUT)
    assert server.wait_connected(TIMEOUT)
    for restarted in (False, True):  # and not subscribed again at the next reconnect either
        if restarted:
            broker.stop()
            assert wait_for(lambda: not server.connected, TIMEOUT)
            broker.start()
            assert server.wait_connected(TIMEOUT) and a.wait_connected(TIMEOUT)
            assert b.wait_connected(TIMEOUT)
        assert b.publish(topics.uplink(DEVICE_B), b"unsubscribed").wait(TIMEOUT)

        def heard():  # sent again until it comes: the server's SUBSCRIBE may not be in yet
            assert a.publish(topics.uplink(DEVICE_A), b"again %d" % restarted).wait(TIMEOUT)
            return wait_for(lambda: (topics.uplink(DEVICE_A), b"again %d" % restarted)
                            in server.on_message.messages, 0.5)

        assert wait_for(heard, TIMEOUT)
    assert server.reconnects == 2
    assert {t for t, _ in server.on_message.messages} == {topics.uplink(DEVICE_A),
                                                          topics.presence(DEVICE_A)}
    # Subscribed again, the two tuples' filters are packed into one SUBSCRIBE.
    again = [r.getMessage() for r in loud.records if r.getMessage().startswith(
        "Sending SUBSCRIBE") and topics.uplink(DEVICE_A) in r.getMessage()][1:]
    assert len(again) == 2 and all(topics.presence(DEVICE_A) in line for line in again), again


def test_a_clean_close_says_offline_too(broker, connect):
    watcher = connect(broker.url, "watcher")
    watcher.subscribe(topics.presence(DEVICE_A))
    thing = device(connect, broker.url, DEVICE_A)
    assert watcher.on_message.wait(topics.presence(DEVICE_A), topics.ONLINE)
    thing.close()
    assert watcher.on_message.wait(topics.presence(DEVICE_A), topics.OFFLINE)


class RecordingBackoff(Backoff):
    def __init__(self):
        super().__init__(base=0.05, cap=0.4)
        self.delays = []

    def delay(self, attempt):
        self.delays.append(super().delay(attempt))
        return self.delays[-1]


def test_broker_restart_reconnects_resubscribes_and_sends_what_was_queued(broker, connect):
    backoff = RecordingBackoff()
    thing = device(connect, broker.url, DEVICE_A, backoff=backoff)
    # Test only (the plain listener has no ACL): the device also hears its own uplink, so what it
    # queued proves both the flush and the resubscription of the same connection.
    assert thing.subscribe(topics.uplink(DEVICE_A)).wait(TIMEOUT)
    server = connect(broker.url, "vendor-1")
    assert server.wait_connected(TIMEOUT)

    broker.stop()  # persistence off: the restarted broker forgets every session
    assert wait_for(lambda: not thing.connected and not server.connected, TIMEOUT)
    queued = thing.publish(topics.uplink(DEVICE_A), b"sent while down")
    assert not queued.done
    assert wait_for(lambda: len(backoff.delays) >= 2, TIMEOUT)  # refused attempts back off
    broker.start()

    assert queued.wait(TIMEOUT)
    assert thing.on_message.wait(topics.uplink(DEVICE_A), b"sent while down")
    assert server.wait_connected(TIMEOUT)
    assert server.publish(topics.downlink(DEVICE_A), b"after restart").wait(TIMEOUT)
    assert thing.on_message.wait(topics.downlink(DEVICE_A), b"after restart")
    assert thing.reconnects == 1 and server.reconnects == 1
    assert all(0.025 <= d <= 0.4 for d in backoff.delays)


@pytest.mark.parametrize("version", [V5, V311])
def test_the_session_keeps_messages_for_an_offline_device(persistent_broker, connect, version):
    broker = persistent_broker
    device(connect, broker.tls_url, DEVICE_A, version=version).close()
    server = connect(broker.tls_url, VENDOR, cn=VENDOR)
    assert server.publish(topics.downlink(DEVICE_A), b"while you were away").wait(TIMEOUT)
    server.close()
    broker.restart()  # the session and its queued message are in the persistence file

    name = topics.kid_hex(DEVICE_A)
    thing = connect(broker.tls_url, name, cn=name, version=version)  # subscribes to nothing
    assert thing.on_message.wait(topics.downlink(DEVICE_A), b"while you were away")


def test_mqtt_311_works_and_is_chosen_when_the_broker_refuses_5(broker, connect):
    server = vendor(connect, broker.tls_url, version=V311)
    assert server.version == V311

    proxy = Mqtt311Only(broker.port)
    try:
        thing = device(connect, proxy.url, DEVICE_A)
        assert proxy.refused == 1 and thing.version == V311
        assert thing.publish(topics.uplink(DEVICE_A), b"via 3.1.1").wait(TIMEOUT)
        assert server.on_message.wait(topics.uplink(DEVICE_A), b"via 3.1.1")
        thing.close()
    finally:
        proxy.close()
    with pytest.raises(ValueError):
        Transport(broker.url, "x", version="4")
    with pytest.raises(ValueError):
        Transport("http://127.0.0.1:1883", "x")


# Saying what happens, and errors a caller can act on.

def said(caplog, text):
    """The transport's log lines that contain text."""
    return [r.getMessage() for r in caplog.records
            if r.name == "thingsdk.mqtt" and text in r.getMessage()]


@pytest.fixture
def loud(caplog):
    caplog.set_level(logging.DEBUG, logger="thingsdk.mqtt")
    return caplog


def test_a_broker_that_is_down_is_said_once_with_its_address_and_the_next_try(loud):
    address = "127.0.0.1:%d" % free_port()
    with Transport("mqtt://" + address, "nobody", backoff=Backoff(0.05, 0.1)) as t:
        assert not t.wait_connected(0.6)
        published = t.publish(topics.uplink(DEVICE_A), b"while down")
        assert published.queued and not published.done
        assert isinstance(t.last_error, ConnectionRefusedError)
    warned = [r for r in loud.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, warned  # tried several times, said once
    assert re.fullmatch(r"cannot connect to %s \(Connection refused\); retrying in 0\.\d+ s"
                        % re.escape(address), warned[0].getMessage())
    assert len(said(loud, "cannot connect to")) >= 3  # the repeats are there, at DEBUG
    assert not [r for r in loud.records if r.name == "thingsdk.mqtt.paho" and r.levelno > 10]


def test_a_broker_that_hangs_up_at_once_is_said_once_for_each_cause(loud):
    """Such a broker's connections end as "connection lost" or "Connection reset by peer", in
    turn: each is said once, not on every retry."""
    stop = threading.Event()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.1)
        address = "127.0.0.1:%d" % server.getsockname()[1]

        def hang_up():
            while not stop.is_set():
                try:
                    server.accept()[0].close()
                except OSError:
                    pass

        thread = threading.Thread(target=hang_up)
        thread.start()
        try:
            with Transport("mqtt://" + address, "nobody", backoff=Backoff(0.05, 0.1)):
                assert wait_for(lambda: len(said(loud, "cannot connect to")) >= 10, TIMEOUT)
        finally:
            stop.set()
            thread.join()
    warned = [r.getMessage().split(";")[0] for r in loud.records if r.levelno == logging.WARNING]
    assert warned and len(warned) == len(set(warned)) <= 2, warned
    assert all(w.startswith("cannot connect to %s (" % address) for w in warned)


def test_connected_lost_and_connected_again_are_said_once_each(broker, connect, loud):
    thing = connect(broker.url, "thing", backoff=Backoff(0.05, 0.1))
    assert thing.wait_connected(TIMEOUT)
    assert said(loud, "connected to") == ["connected to " + broker.url[7:]]
    broker.stop()
    assert wait_for(lambda: said(loud, "disconnected from"), TIMEOUT)
    assert wait_for(lambda: len(said(loud, "cannot connect")) >= 2, TIMEOUT)
    broker.start()
    assert thing.wait_connected(TIMEOUT)
    (lost,) = said(loud, "disconnected from")
    assert re.fullmatch(r"disconnected from %s \(connection lost\); retrying in 0\.\d+ s"
                        % re.escape(broker.url[7:]), lost)
    warnings = [r.getMessage() for r in loud.records if r.levelno == logging.WARNING]
    assert warnings == [lost, "cannot connect to %s (Connection refused); retrying in %s"
                        % (broker.url[7:], warnings[1].rsplit(" in ", 1)[1])]
    assert said(loud, "connected to " + broker.url[7:]) == ["connected to " + broker.url[7:]] * 2
    assert thing.last_error is None and thing.reconnects == 1


@pytest.mark.parametrize("version", [V5, V311])  # (3.1.1's code 5 is given as MQTT 5's 0x87)
def test_a_refused_connection_is_an_error_with_the_brokers_reason(broker, loud, version):
    reason, code = "Not authorized", NOT_AUTHORIZED
    t = Transport(broker.refusing_url, "nobody", version=version, backoff=Backoff(0.05, 0.1))
    with t:
        with pytest.raises(ConnectionRefused) as refused:
            t.wait_connected(TIMEOUT)
        assert wait_for(lambda: len(said(loud, "refused the connection")) >= 3, TIMEOUT)
    address = broker.refusing_url[7:]
    assert str(refused.value) == "the broker at %s refused the connection: %s" % (address, reason)
    assert (refused.value.reason, refused.value.code) == (reason, code)
    assert str(t.last_error) == str(refused.value) and not t.connected
    errors = [r.getMessage() for r in loud.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(str(refused.value) + "; retrying in ")
    assert not said(loud, "disconnected from")  # it never was connected


def test_the_transport_is_a_context_manager_and_its_errors_can_be_told_apart(broker):
    with Transport(broker.url, "ctx", backoff=Backoff(0.05, 0.1)) as t:
        assert t.wait_connected(TIMEOUT)
        assert not t.publish(topics.uplink(DEVICE_A), b"now").queued
    assert not t.connected
    with pytest.raises(TransportClosed, match="closed"):
        t.publish(topics.uplink(DEVICE_A), b"after close")
    offline = Transport("mqtt://127.0.0.1:%d" % free_port(), "full", queue_limit=1)
    offline.publish(topics.uplink(DEVICE_A), b"one")
    with pytest.raises(QueueFull, match="1 messages waiting"):
        offline.publish(topics.uplink(DEVICE_A), b"two")
    assert issubclass(QueueFull, MqttError) and issubclass(ConnectionRefused, MqttError)


def test_a_message_over_the_brokers_limit_queued_offline_is_refused_not_sent(broker, loud):
    t = Transport(broker.url, "big", backoff=Backoff(0.05, 0.1))
    big = t.publish(topics.uplink(DEVICE_A), b"x" * 20000)  # the limit is not known yet
    small = t.publish(topics.uplink(DEVICE_A), b"small")
    with t:
        assert small.wait(TIMEOUT) and not small.refused
        assert big.done and big.refused and big.reasons == [PACKET_TOO_LARGE]
        assert t.max_packet == 17408 and t.connected and t.reconnects == 0
        with pytest.raises(MessageTooLarge):
            t.publish(topics.uplink(DEVICE_A), b"x" * 20000)
    assert said(loud, "not sent: a 20000-byte message on %s is over the 17408-byte packets"
                % topics.uplink(DEVICE_A))


def test_a_missing_or_bad_tls_file_is_named(pki, tmp_path):
    cert, key = pki.client(topics.kid_hex(DEVICE_A))
    _, other_key = pki.client(topics.kid_hex(DEVICE_B))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM at all")
    url, ca = "mqtts://127.0.0.1:8883", str(pki.ca_file)
    for files, message in [
            ((ca, cert, str(tmp_path / "gone.key")), "client key %s: No such file or directory"
             % (tmp_path / "gone.key")),
            ((ca, cert, str(garbage)), "client key %s: not a PEM key" % garbage),
            ((ca, str(garbage), key), "client certificate %s: not a PEM certificate" % garbage),
            ((str(garbage), cert, key), "CA certificate %s: not a PEM certificate" % garbage),
            ((ca, cert, None), "a client certificate needs its key"),
            ((ca, cert, other_key), "client certificate %s and key %s: KEY_VALUES_MISMATCH"
             % (cert, other_key))]:
        with pytest.raises(TlsFileError) as error:
            Transport(url, "x", ca_file=files[0], cert_file=files[1], key_file=files[2])
        assert str(error.value).startswith(message), str(error.value)
        assert isinstance(error.value, ValueError)  # the command line prints it in one line


def test_an_owner_enrolled_on_the_tests_broker_reaches_only_its_own_devices(broker, pki, connect):
    owner = bytes(range(40, 48))
    cert, key = pki.owner(owner, [DEVICE_A])
    got = Received()
    t = Transport(broker.tls_url, owner.hex(), ca_file=str(pki.ca_file), cert_file=cert,
                  key_file=key, on_message=got, backoff=Backoff(0.05, 0.4)).start()
    try:
        for topic_filter, reason in ((topics.to_owner(DEVICE_A), 1),
                                     (topics.to_owner(DEVICE_B), NOT_AUTHORIZED)):
            ack = t.subscribe(topic_filter)
            assert ack.wait(TIMEOUT) and ack.reasons == [reason]
        a = connect(broker.tls_url, topics.kid_hex(DEVICE_A), topics.kid_hex(DEVICE_A))
        assert a.publish(topics.to_owner(DEVICE_A), b"asks").wait(TIMEOUT)
        assert got.wait(topics.to_owner(DEVICE_A), b"asks")
        assert t.publish(topics.from_owner(DEVICE_A), b"answers").wait(TIMEOUT)
        denied = t.publish(topics.from_owner(DEVICE_B), b"answers")
        assert denied.wait(TIMEOUT) and denied.reasons == [NOT_AUTHORIZED]
    finally:
        t.close(timeout=1)
