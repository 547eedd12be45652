"""An order whose shipment and delivery news are lost on the way (a broker restarted without
persistence, say) still completes: past the expected arrival the device asks the vendor how the
order stands, on a real mosquitto with the reference vendor, in accelerated time."""

from broker import wait_for

from thingsdk import codec, topics
from thingsdk.core import lifecycle
from thingsdk.core import messages as m
from world import TIMEOUT, Tap, assert_one_order_delivered


def types(datas):
    return [codec.loads(codec.loads(data).value[2])[2] for data in datas]


def test_a_lost_shipment_and_delivery_are_asked_for_and_the_order_completes(world):
    service = world.start_vendor().service
    fulfil, lost = service.advance, []

    def losing_the_news(now):  # every shipment and delivery is lost on the way
        lost.extend(data for _, data in fulfil(now))
        return []

    service.advance = losing_the_news
    service._reminders = lambda device, now: []  # nor does a status bring them again
    up = Tap(world.broker, topics.uplink(world.kid))
    try:
        world.device()
        assert wait_for(world.reached(lifecycle.CLOSED), TIMEOUT), world.need()
        assert_one_order_delivered(world)
        assert types(lost) == [m.SHIPMENT, m.DELIVERY]
        queries = [codec.loads(codec.loads(d).value[2]) for d in up.seen]
        queries = [q[10] for q in queries if q[2] == m.ORDER_QUERY]
        assert queries and all(q == {"order": world.need()["oid"]} for q in queries)
    finally:
        up.close()
