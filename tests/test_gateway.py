"""The serial gateway (thingsdk/gateway.py) and the board's link (firmware/lib/seriallink.py) on a
real serial line (a pty pair, pyserial on the gateway's end) and a real mosquitto, with the
reference vendor answering signed messages."""

import asyncio
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from collections import Counter

import pytest
import serial

from test_vendor import T, World
from thingsdk import codec, gateway, topics
from thingsdk.core import envelope
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Signer
from thingsdk.mqtt import Backoff, Transport, device_transport
from thingsdk.seller.serve import Server

import seriallink  # the board's side: firmware/lib is on pytest's pythonpath

TIMEOUT = 15.0
KID = bytes.fromhex("0123456789abcdef")
OTHER = bytes.fromhex("fedcba9876543210")


async def until(condition, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


class PtyUart:
    """machine.UART's polling API (any, read, write) on the board's end of a pty. `damage` > 0
    flips a bit in that many of the next long frames (messages, not pings) written: line noise."""

    def __init__(self, fd):
        self.fd = fd
        self.damage = 0
        os.set_blocking(fd, False)

    def any(self):
        return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]

    def read(self, n):
        try:
            return os.read(self.fd, n)
        except BlockingIOError:
            return None

    def write(self, data):
        if self.damage and len(data) > 64:
            self.damage -= 1
            data = bytearray(data)
            data[len(data) // 2] ^= 0x10
        try:
            return os.write(self.fd, data)
        except BlockingIOError:  # nobody drains the line: the bytes are lost
            return 0


class MutablePort:
    """A pyserial port whose writes the test can swallow (`mute`): the gateway's answers lost."""

    def __init__(self, port):
        self.port = port
        self.mute = False

    @property
    def in_waiting(self):
        return self.port.in_waiting

    def read(self, n):
        return self.port.read(n)

    def write(self, data):
        return len(data) if self.mute else self.port.write(data)


class Rig:
    """A serial line, a watcher on the broker (paho), and gateways started on the line."""

    def __init__(self, broker, kid):
        self.broker, self.kid = broker, kid
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # the line carries bytes, not text
        self.uart = PtyUart(self.master)
        self.seen = []
        self.watcher = Transport(broker.url, "watcher", backoff=Backoff(0.05, 0.4),
                                 on_message=lambda t, p: self.seen.append((t, p))).start()
        for kind in (topics.UP, topics.PRESENCE):
            assert self.watcher.subscribe(topics.every(kind)).wait(TIMEOUT)
        self._running = []

    def link(self, **kw):
        options = dict(retry=1, keepalive=0.3, timeout=5, poll_ms=5)
        options.update(kw)
        return seriallink.Link(self.uart, **options)

    def start_gateway(self, cls=gateway.Gateway, port=None, **kw):
        port = port or serial.Serial(os.ttyname(self.slave), timeout=0, write_timeout=1)
        transport = device_transport(self.broker.url, self.kid, backoff=Backoff(0.05, 0.4))
        relay = cls(port, transport, self.kid, retry=1, silence=10, **kw)
        thread = threading.Thread(target=relay.run)
        thread.start()
        self._running.append((relay, thread, port))
        return relay

    def stop_gateway(self, relay):
        for entry in self._running:
            if entry[0] is relay:
                self._running.remove(entry)
                relay.stop()
                entry[1].join(TIMEOUT)
                (entry[2].port if isinstance(entry[2], MutablePort) else entry[2]).close()

    def payloads(self, topic):
        return [p for t, p in self.seen if t == topic]

    def close(self):
        for relay, _, _ in list(self._running):
            self.stop_gateway(relay)
        self.watcher.close(timeout=1)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def vendor(broker, tmp_path):
    """The reference vendor serving on the broker, devices A and B registered, A with a mandate;
    its clock (`vendor.now[0]`) stands at T until a test moves it."""
    world = World(tmp_path)
    token = world.mandate(world.a, 1, [["vendors", {"kids": [world.vendor.kid]}]])
    world.send(world.a, m.MANDATE, {"cwt": token})
    world.now = [T]
    transport = Transport(broker.url, "vendor-1", backoff=Backoff(0.05, 0.4))
    server = Server(world.new_service(), transport, clock=lambda: world.now[0], interval=0.2)
    thread = threading.Thread(target=server.run)
    thread.start()
    assert server.ready.wait(TIMEOUT)
    world.server = server
    yield world
    server.stop()
    thread.join(TIMEOUT)


@pytest.fixture
def rigs(broker):
    """Rig(kid) on the broker, closed after the test."""
    made = []
    yield lambda kid: made.append(Rig(broker, kid)) or made[-1]
    for rig in made:
        rig.close()


def test_orders_cross_the_gateway_byte_identical_and_answers_come_back(rigs, vendor):
    device, replies = vendor.a, []
    rig = rigs(device.kid)
    relay = rig.start_gateway()

    async def scenario():
        link = rig.link(on_message=lambda topic, data: replies.append((topic, data)))
        link.start()
        await until(lambda: link.connected)
        await link.subscribe(topics.downlink(device.kid))
        with pytest.raises(seriallink.LinkError, match="refused"):
            await link.subscribe(topics.downlink(OTHER))
        request = device.seal(m.QUOTE_REQUEST, {"slot": "ink", "sku": "INK-XL-BK", "qty": 1}, T)
        await link.publish(topics.uplink(device.kid), request)
        await until(lambda: replies)
        offer = device.inbox.open(replies[0][1], T)
        assert replies[0][0] == topics.downlink(device.kid)
        assert offer.status == envelope.ACCEPT and offer.message.type == m.OFFER
        device.inbox.commit(offer)
        order = device.seal(m.ORDER, m.order_body(offer.message.body, os.urandom(16), 1), T)
        await link.publish(topics.uplink(device.kid), order)
        await until(lambda: len(replies) == 2)
        receipt = device.inbox.open(replies[1][1], T)
        assert receipt.message.type == m.RECEIPT and receipt.message.body["status"] == "accepted"
        await until(lambda: link.unacked == 0)
        assert rig.payloads(topics.uplink(device.kid)) == [request, order]  # byte-identical
        assert (link.sent, link.received, link.refused) == (2, 2, 0)
        await link.close()
        await until(lambda: rig.payloads(topics.presence(device.kid))[-1:] == [b"offline"])

    asyncio.run(scenario())
    assert b"online" in rig.payloads(topics.presence(device.kid))
    assert (relay.forwarded, relay.delivered, relay.refused, relay.bad) == (2, 2, 1, 0)
    assert [o["status"] for o in vendor.server.service.store.orders(device.kid)] == ["accepted"]


def test_the_board_cannot_make_the_gateway_publish_on_another_devices_topics(rigs):
    rig = rigs(KID)
    relay = rig.start_gateway()

    async def scenario():
        link = rig.link()
        link.start()
        await until(lambda: link.connected)
        await link.publish(topics.uplink(OTHER), b"as another device")
        await link.publish(topics.presence(OTHER), b"online", retain=True)
        await link.publish("anything/else", b"x")
        await link.publish(topics.uplink(rig.kid), b"mine")
        await until(lambda: link.unacked == 0)
        assert (link.sent, link.refused) == (1, 3)
        assert "not the board's topic" in str(link.last_error)
        await until(lambda: b"mine" in rig.payloads(topics.uplink(rig.kid)))
        await link.close()

    asyncio.run(scenario())
    assert relay.refused == 3 and relay.forwarded == 1
    assert [t for t, _ in rig.seen if OTHER.hex() in t or t == "anything/else"] == []


def test_line_noise_is_dropped_and_counted_and_the_uplink_is_sent_again(rigs):
    rig = rigs(KID)
    relay = rig.start_gateway()
    sent = [b"reading %d;" % i * 30 for i in range(3)]

    async def scenario():
        link = rig.link()
        link.start()
        await until(lambda: link.connected)
        rig.uart.damage = 3
        os.write(rig.uart.fd, b"\x00\x13\x37 noise \xff\x00")  # noise towards the gateway
        os.write(rig.slave, b"\x00\x42\x42 noise\x00")  # and towards the board
        for data in sent:
            await link.publish(topics.uplink(rig.kid), data)
        await until(lambda: link.unacked == 0)
        await link.close()
        assert link.bad == 1 and link.sent == len(sent)

    asyncio.run(scenario())
    assert relay.bad >= 4 and relay.errors.get("bad-crc") and relay.forwarded == len(sent)
    got = rig.payloads(topics.uplink(rig.kid))
    assert sorted(set(got)) == sorted(sent)


def test_uplinks_queued_while_the_gateway_is_down_arrive_after_it_restarts(rigs):
    rig = rigs(KID)
    first = rig.start_gateway(port=MutablePort(serial.Serial(os.ttyname(rig.slave), timeout=0,
                                                             write_timeout=1)))
    before = [b"before %d" % i for i in range(4)]
    during = [b"during %d" % i for i in range(6)]

    async def scenario():
        link = rig.link(limit=16)
        link.start()
        await until(lambda: link.connected)
        first.port.mute = True  # it publishes, but its ACKs never reach the board
        for data in before:
            await link.publish(topics.uplink(rig.kid), data)
        await until(lambda: first.forwarded == len(before))
        rig.stop_gateway(first)  # it dies before any ACK got through
        for data in during:
            await link.publish(topics.uplink(rig.kid), data)
        assert link.unacked == len(before) + len(during)
        second = rig.start_gateway()
        await until(lambda: link.unacked == 0)
        await link.close()
        return second

    second = asyncio.run(scenario())
    got = Counter(rig.payloads(topics.uplink(rig.kid)))
    # each message arrives as sent; those the first gateway had published arrive again (the
    # restarted gateway cannot know), the others once
    assert got == Counter(before * 2 + during)
    assert sum(got.values()) - len(got) == len(before)
    assert second.forwarded == len(before) + len(during)


class Malicious(gateway.Gateway):
    """A gateway that tampers: `up` and `down` say how (None: it relays honestly)."""

    up = down = None

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.own = Ed25519Signer.generate()
        self.uplinks, self.downlinks = [], []

    def forward(self, topic, data, retain):
        if topic == self.uplink:
            self.uplinks.append(data)
            data = self._tamper(self.up, data, self.uplinks, self.vendor_kid)
        return super().forward(topic, data, retain)

    def on_downlink(self, topic, data):
        self.downlinks.append(data)
        super().on_downlink(topic, self._tamper(self.down, data, self.downlinks, self.kid))

    def _tamper(self, how, data, history, to):
        if how == "flip":
            altered = bytearray(data)
            altered[-1] ^= 1
            return bytes(altered)
        if how == "sign":  # the same message, signed with the gateway's own key
            message = m.parse(codec.loads(codec.loads(data).value[2]))
            return envelope.seal(message.type, message.body, self.own, to, message.seq, message.ts,
                                 message.id, codec, message.exp - message.ts, message.re)
        if how == "replay":  # the first message again (and this one held back)
            return history[0]
        if how == "release":  # the message held back, late
            return history[-2]
        return data


def test_a_gateway_can_neither_forge_nor_alter_nor_replay_what_it_carries(rigs, vendor):
    device, service = vendor.a, vendor.server.service
    rig = rigs(device.kid)
    relay = rig.start_gateway(cls=Malicious)
    relay.vendor_kid = vendor.vendor.kid
    replies = []

    def opened_replies(now):
        return [device.inbox.open(data, now) for _, data in replies]

    async def exchange(link, msg_type, body, now=T):
        seen = len(replies)
        await link.publish(topics.uplink(device.kid), device.seal(msg_type, body, now))
        await until(lambda: link.unacked == 0)
        return seen

    async def scenario():
        link = rig.link(on_message=lambda topic, data: replies.append((topic, data)))
        link.start()
        await until(lambda: link.connected)
        quote = {"slot": "ink", "sku": "INK-XL-BK", "qty": 1}
        await exchange(link, m.QUOTE_REQUEST, quote)  # honest: the first offer
        await until(lambda: len(replies) == 1)
        [offer] = opened_replies(T)
        assert offer.status == envelope.ACCEPT
        device.inbox.commit(offer)
        order = m.order_body(offer.message.body, os.urandom(16), 1)

        # Uplinks: the vendor refuses every altered, re-signed or stale order; no order is taken.
        expected = {}
        for how, reason in (("flip", "bad-signature"), ("sign", "unknown-key")):
            relay.up = how
            await exchange(link, m.ORDER, order)
            expected[reason] = 1
            await until(lambda: service.refusals == expected)
        relay.up = "replay"  # an answered message again: its first answer again, nothing more
        await exchange(link, m.ORDER, order)
        await until(lambda: len(replies) == 2)
        assert replies[1][1] == replies[0][1]
        assert device.inbox.open(replies[1][1], T).status == envelope.DUPLICATE
        vendor.now[0] = T + 3600
        relay.up = "release"  # the order it held back, an hour late
        await exchange(link, m.QUOTE_REQUEST, quote, T + 3600)
        expected["expired"] = 1
        await until(lambda: service.refusals == expected)
        assert service.store.orders(device.kid) == []

        # Downlinks: the board's Inbox, with the vendor's key pinned, refuses the tampered ones.
        relay.up = None
        for how, status, reason in (("flip", envelope.REJECT, "bad-signature"),
                                    ("sign", envelope.REJECT, "unknown-key"),
                                    ("replay", envelope.DUPLICATE, None)):
            relay.down = how
            seen = await exchange(link, m.QUOTE_REQUEST, quote, T + 3600)
            await until(lambda: len(replies) > seen)
            got = device.inbox.open(replies[seen][1], T + 3600)
            assert (got.status, got.reason) == (status, reason)
        assert device.inbox.rejections == {"bad-signature": 1, "unknown-key": 1}
        await link.close()

    asyncio.run(scenario())
    assert service.store.orders(device.kid) == []
    assert relay.forwarded == 8 and relay.refused == 0


BOARD_ON_MICROPYTHON = '''
import asyncio
import time

import seriallink
from thingsdk.core import frames

UP, DOWN = "thingsdk/v1/up/0123456789abcdef", "thingsdk/v1/down/0123456789abcdef"
OTHER = "thingsdk/v1/up/fedcba9876543210"


class Uart:
    """One end of an in-memory line, with machine.UART's polling API."""

    def __init__(self, rx, tx):
        self.rx, self.tx = rx, tx

    def any(self):
        return len(self.rx)

    def read(self, n):
        data = bytes(self.rx[:n])
        self.rx[:] = self.rx[n:]
        return data

    def write(self, data):
        self.tx.extend(data)
        return len(data)


to_gateway, to_board = bytearray(), bytearray()
board, line = Uart(to_board, to_gateway), Uart(to_gateway, to_board)
uplinks, downlinks = [], []


async def gateway():
    """The gateway's answers, in short: it ignores the first uplink once (its ACK lost)."""
    decoder, ignored = frames.Decoder(), False
    while True:
        for kind, seq, payload in decoder.feed(line.read(line.any())):
            if kind == frames.PING:
                line.write(frames.encode(frames.STATUS, 0, b"\\x01"))
            elif kind == frames.SUB:
                answer = frames.ACK if payload == DOWN.encode() else frames.NAK
                line.write(frames.encode(answer, seq))
            elif kind == frames.UP:
                topic, data, _, _ = frames.parse_message(payload)
                if topic != UP:
                    line.write(frames.encode(frames.NAK, seq, b"not the board's topic"))
                elif ignored:
                    uplinks.append(data)
                    line.write(frames.encode(frames.ACK, seq))
                else:
                    ignored = True
        await asyncio.sleep_ms(5)


async def until(condition):
    start = time.ticks_ms()
    while not condition():
        if time.ticks_diff(time.ticks_ms(), start) > 10000:
            raise AssertionError("timed out")
        await asyncio.sleep_ms(5)


async def app(relay):
    try:
        link = seriallink.Link(board, on_message=lambda t, d: downlinks.append((t, d)), retry=0.2,
                               keepalive=0.1, timeout=2, poll_ms=5)
        link.start()
        await until(lambda: link.connected)
        await link.subscribe(DOWN)
        try:
            await link.subscribe(OTHER)
            refused = False
        except seriallink.LinkError:
            refused = True
        for i in range(3):
            await link.publish(UP, ("m%d" % i).encode())
        await link.publish(OTHER, b"x")
        to_board.extend(b"\\x00\\x99 noise\\x00")  # line noise, then a downlink
        to_board.extend(frames.encode(frames.DOWN, 1, frames.message(DOWN, b"offer")))
        await until(lambda: link.unacked == 0 and downlinks)
        await link.close()
        print("RESULT", link.sent, link.refused, link.received, link.bad, refused,
              ",".join(sorted(u.decode() for u in uplinks)), downlinks[0][1].decode())
    finally:
        relay.cancel()


asyncio.create_task(app(asyncio.create_task(gateway())))
'''


def test_the_board_link_runs_on_micropython(tmp_path):
    import micropython_port as mp

    script = tmp_path / "board.py"
    script.write_text(BOARD_ON_MICROPYTHON)
    proc = mp.run(script, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # 3 sent (the first one again: the gateway ignored it once), 1 refused, 1 received, 1 damaged
    assert "RESULT 3 1 1 1 True m0,m1,m2 offer" in proc.stdout, proc.stdout + proc.stderr


def test_the_gateway_command_over_mutual_tls_in_the_boards_name(rigs, broker, pki):
    rig = rigs(KID)
    cert, key = pki.client(topics.kid_hex(KID))
    command = subprocess.Popen(
        [sys.executable, "-m", "thingsdk.cli", "gateway", "--port", os.ttyname(rig.slave),
         "--broker", broker.tls_url, "--kid", KID.hex(),
         "--ca", str(pki.ca_file), "--cert", cert, "--key", key],
        stderr=subprocess.PIPE, text=True)
    try:
        async def scenario():
            link = rig.link()
            link.start()
            await until(lambda: link.connected)
            await link.publish(topics.uplink(KID), b"through the command")
            await link.publish(topics.uplink(OTHER), b"refused by the gateway")
            await until(lambda: link.unacked == 0)
            assert (link.sent, link.refused) == (1, 1)

        asyncio.run(scenario())
        assert rig.payloads(topics.uplink(KID)) == [b"through the command"]
        command.send_signal(signal.SIGTERM)
        assert command.wait(TIMEOUT) == 0
        assert "1 forwarded" in command.stderr.read()
        assert rig.payloads(topics.presence(KID))[-2:] == [b"online", b"offline"]
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
        command.stderr.close()
