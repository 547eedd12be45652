"""Per-device rate limits at the vendor: a device flooding signed messages is refused
`rate-limited` (answered a bounded number of times), and the others are served all the while."""

import logging
import os
import time

from broker import wait_for
from test_vendor import T, backend, postgres, world  # noqa: F401 (the fixtures)
from test_vendor_mqtt import TIMEOUT, order_for, running  # noqa: F401 (the fixture)
from thingsdk.core import messages as m
from thingsdk.seller.limiter import DeviceLimiter

LEVEL = {"slots": [{"slot": "ink", "unit": "pcs", "level": 1, "cap": 4, "rate": 0}]}


def test_a_device_over_its_rate_is_refused_and_told_once_in_a_while(world, caplog):
    clock = [0.0]
    service = world.service
    service.rates = DeviceLimiter(rate=1.0, burst=5, answer_every=10.0, clock=lambda: clock[0])
    caplog.set_level(logging.INFO, "thingsdk.seller")
    answered = []
    for _ in range(5):  # the burst: taken, and a status has no answer
        assert world.send(world.b, m.STATUS, LEVEL)[1] == []
    for _ in range(40):
        answered += world.send(world.b, m.STATUS, LEVEL)[1]
    assert [(a.type, a.body["code"]) for a in answered] == [(m.ERROR, "rate-limited")]
    assert service.refusals == {"rate-limited": 40}
    assert service.rates.refusals(world.b.kid) == 40
    said = [r for r in caplog.records if "rate-limited" in r.getMessage()]
    assert len(said) == 1 and world.b.kid.hex() in said[0].getMessage()
    # Another device is served as ever.
    _, receipt = world.buy(world.a, "WF-300")
    assert receipt.body["status"] == "accepted"
    assert any("accepted order %s" % receipt.body["ref"] in r.getMessage()
               for r in caplog.records)

    # An order over the rate is answered with its id and not kept: sent again later, it is taken.
    offer = world.quote(world.a, "INK-XL-BK")
    service.rates = DeviceLimiter(rate=1.0, burst=1, answer_every=10.0, clock=lambda: clock[0])
    world.send(world.a, m.STATUS, LEVEL)
    body = m.order_body(offer, os.urandom(16), 1)
    data = world.a.seal(m.ORDER, body, T)
    [refused] = world.a.receive(service.handle(data, world.a.kid, T), T)
    assert refused.type == m.ERROR and refused.body == {
        "code": "rate-limited", "ref": body["order"],
        "text": "Too many messages from this device; send again in a while."}
    assert [o["sku"] for o in service.store.orders(world.a.kid)] == ["WF-300"]
    assert service.handle(data, world.a.kid, T) == []  # not answered again so soon
    clock[0] = 1.0  # a token back
    [receipt] = world.a.receive(service.handle(data, world.a.kid, T), T)
    assert receipt.type == m.RECEIPT and receipt.body["status"] == "accepted"


def test_a_device_flooding_its_uplink_does_not_starve_another(running):
    world, server, phone_of = running
    flooder, other = phone_of(world.b), phone_of(world.a)
    flood = [flooder.device.seal(m.STATUS, LEVEL, T) for _ in range(3000)]
    started = time.monotonic()
    uplink = "thingsdk/v1/up/" + flooder.device.kid.hex()
    acks = [flooder.transport.publish(uplink, data) for data in flood]
    offer = other.ask(m.QUOTE_REQUEST, {"slot": "ink", "sku": "INK-XL-BK", "qty": 1})
    receipt = other.ask(m.ORDER, order_for(offer.body))
    assert receipt.type == m.RECEIPT and receipt.body["status"] == "accepted"
    assert all(ack.wait(TIMEOUT) for ack in acks)
    service = server.service
    # Every message is acknowledged: the flood taken, refused for its rate, or dropped unread.
    assert wait_for(lambda: server.acks.acknowledged == len(flood) + 2 and not server.acks,
                    TIMEOUT), (server.acks.acknowledged, len(server.acks))
    elapsed = time.monotonic() - started
    refused = service.refusals.get("rate-limited", 0)
    assert set(service.refusals) == {"rate-limited"}
    taken = len(flood) - refused - server.uplinks.dropped
    rates = service.rates
    assert rates.burst <= taken <= rates.burst + rates.rate * elapsed, (taken, elapsed)
    # The flooder's answers are bounded: a rate-limited error now and then.
    codes = [flooder.device.inbox.open(data, T).message.body["code"] for data in flooder.received]
    assert 1 <= len(codes) <= 3 and set(codes) == {"rate-limited"}
