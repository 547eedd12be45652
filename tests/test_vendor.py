"""The vendor service's handler, with real keys, the real codec and a real SQLite file."""

import os
import queue
import threading
from pathlib import Path

import pytest

import thingsdk.seller
from thingsdk import codec, topics
from thingsdk.core import approval, envelope, mandate
from thingsdk.core import messages as m
from thingsdk.core.lifecycle_rare import visit_offer
from thingsdk.crypto import Ed25519Signer
from thingsdk.seller import catalog
from thingsdk.seller.limiter import RefusalLimiter
from thingsdk.seller.service import REMIND_DAYS, Service, register, revoke
from thingsdk.seller.store import WRITE_LOCK, PostgresStore, open_store

T = 1767225600  # 2026-01-01T00:00:00Z
HOUR, DAY = 3600, 86400
EXAMPLE = Path(thingsdk.seller.__file__).parent / "catalog.example.toml"
CATALOG = catalog.load(EXAMPLE)


def eur(amount):
    return [amount, "EUR"]


class Device:
    """A device's side: seals its messages, opens the vendor's with an envelope.Inbox."""

    def __init__(self, seed, vendor):
        self.signer = Ed25519Signer.from_seed(bytes([seed]) * 32)
        self.kid = self.signer.kid
        self.vendor = vendor
        self.seq = 0
        self.inbox = envelope.Inbox(self.kid, {vendor.kid: vendor.verifier()}, codec)

    def seal(self, msg_type, body, now, ttl=600, msg_id=None, seq=None):
        self.seq += 1
        return envelope.seal(msg_type, body, self.signer, self.vendor.kid,
                             self.seq if seq is None else seq, now, msg_id or os.urandom(16),
                             codec, ttl)

    def receive(self, answers, now):
        """The vendor's answers, checked as a device checks them: [Message]."""
        out = []
        for topic, data in answers:
            assert topic == topics.downlink(self.kid)
            opened = self.inbox.open(data, now)
            assert opened.status == envelope.ACCEPT, opened
            self.inbox.commit(opened)
            out.append(opened.message)
        return out


class World:
    """A vendor Service on a fresh database (a SQLite file in folder, or `where`: see
    open_store), an owner, and devices A (with a mandate) and B."""

    def __init__(self, folder, where=None):
        self.where = where or folder / "vendor.db"
        self.vendor = Ed25519Signer.from_seed(b"\x01" * 32)
        self.owner = Ed25519Signer.from_seed(b"\x02" * 32)
        self.service = self.new_service()
        self.a, self.b = Device(3, self.vendor), Device(4, self.vendor)
        for device in (self.a, self.b):
            register(self.service.store, device.signer.public_key, self.owner.public_key, T)

    def new_service(self):
        return Service(open_store(self.where), CATALOG, self.vendor)

    def mandate(self, device, version, constraints, now=T):
        claims = mandate.make_claims(self.owner.kid, device.signer.public_key, version, now,
                                     now + 365 * DAY, constraints)
        return mandate.issue(claims, self.owner, codec)

    def send(self, device, msg_type, body, now=T, **options):
        """Seal and handle one message: (the sealed bytes, the answers as Messages)."""
        data = device.seal(msg_type, body, now, **options)
        return data, device.receive(self.service.handle(data, device.kid, now), now)

    def quote(self, device, sku, qty=1, now=T, **extra):
        _, answers = self.send(device, m.QUOTE_REQUEST, dict(slot="s", sku=sku, qty=qty, **extra),
                               now)
        assert [a.type for a in answers] == [m.OFFER]
        return answers[0].body

    def order(self, device, offer, now=T, order_id=None, mandate_version=1, **extra):
        body = dict(m.order_body(offer, order_id or os.urandom(16), mandate_version), **extra)
        data, answers = self.send(device, m.ORDER, body, now)
        assert len(answers) == 1
        return body, data, answers[0]

    def approval(self, device, offer, now=T, signer=None, to=None, ttl=HOUR, **terms):
        """The owner's approval of `offer` (a body the device holds) for `device`, sealed as the
        owner sends it; `terms` override what it names."""
        body = {"req": os.urandom(16), "decision": "approve", "vendor": self.vendor.kid,
                "offer": offer["offer"], "total": offer["total"],
                "digest": approval.offer_digest(offer)}
        body.update(terms)
        return envelope.seal(m.APPROVAL, body, signer or self.owner, to or device.kid, 1, now,
                             os.urandom(16), codec, ttl, reply_to=os.urandom(16))

    def buy(self, device, sku, qty=1, now=T, **extra):
        body, _, answer = self.order(device, self.quote(device, sku, qty, now), now, **extra)
        return body, answer


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (tests/postgres.py)."""
    from postgres import Postgres

    server = Postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """Where a World keeps its store: each test that takes a world runs on both backends."""
    if request.param == "sqlite":
        return tmp_path / "vendor.db"
    return request.getfixturevalue("postgres").database()


@pytest.fixture
def world(tmp_path, backend):
    w = World(tmp_path, backend)
    constraints = [["vendors", {"kids": [w.vendor.kid]}],
                   ["budget", {"cur": "EUR", "max": 15000, "period": "month"}],
                   ["approval-above", {"cur": "EUR", "amount": 8000}],
                   ["cancel-window", {"seconds": DAY}]]
    _, answers = w.send(w.a, m.MANDATE, {"cwt": w.mandate(w.a, 1, constraints)})
    assert answers == []
    return w


def test_quote_gets_a_signed_offer_and_an_order_an_accepted_receipt(world):
    _, answers = world.send(world.a, m.QUOTE_REQUEST, {"slot": "water-filter", "cat":
                                                       "water-filter", "qty": 2})
    offer = answers[0]
    assert offer.type == m.OFFER and offer.kid == world.vendor.kid and offer.to == world.a.kid
    assert offer.body["sku"] == "WF-300" and offer.body["price"] == eur(2450)
    assert offer.body["ship"] == eur(498) and offer.body["total"] == eur(2 * 2450 + 498)
    assert offer.body["lead"] == 72 * HOUR and offer.body["arrive"] == T + 72 * HOUR
    assert offer.body["until"] == T + 24 * HOUR and offer.body["test"] is False
    assert offer.body["from"] == CATALOG.name == "Acme Home Supplies"  # signed with the offer

    body, _, receipt = world.order(world.a, offer.body)
    assert receipt.type == m.RECEIPT and receipt.body["status"] == "accepted"
    assert receipt.body["order"] == body["order"] and receipt.body["ref"].startswith("ORD-")
    [row] = world.service.store.orders(world.a.kid)
    assert (row["status"], row["total"], row["test"]) == ("accepted", 5398, 0)


def test_a_resent_order_gets_the_first_receipt_again(world):
    body, data, receipt = world.order(world.a, world.quote(world.a, "WF-300"))
    first = world.service.handle(data, world.a.kid, T + 5)
    again = world.service.handle(data, world.a.kid, T + 10)  # a QoS 1 redelivery: same bytes
    assert again == first and len(again) == 1

    resealed = world.a.seal(m.ORDER, body, T + 20)  # the same order in a new message
    [answer] = world.a.receive(world.service.handle(resealed, world.a.kid, T + 20), T + 20)
    assert answer.body == receipt.body and answer.re != receipt.re
    assert len(world.service.store.orders(world.a.kid)) == 1


def test_the_same_order_id_with_other_content_is_a_conflict(world):
    offer = world.quote(world.a, "WF-300", qty=2)
    body, _, _ = world.order(world.a, offer)
    _, _, answer = world.order(world.a, offer, order_id=body["order"], mandate_version=2)
    assert answer.type == m.ERROR and answer.body["code"] == "idempotency-conflict"
    assert answer.body["ref"] == body["order"]
    assert [r["status"] for r in world.service.store.orders(world.a.kid)] == ["accepted"]


def test_the_vendor_rechecks_the_budget_with_its_own_ledger(world):
    _, first = world.buy(world.a, "BEANS-1KG", qty=2)  # 41.70 EUR of the 150.00 EUR budget
    assert first.body["status"] == "accepted"
    # A device that forgot its spending (or lies), with the owner's approval of the order, too.
    ink = world.quote(world.a, "INK-XL-BK", qty=4)  # 127.60 EUR
    _, _, second = world.order(world.a, ink, appr=world.approval(world.a, ink))
    assert second.body["status"] == "rejected" and second.body["reason"] == "over-budget"
    assert "150.00 EUR budget" in second.body["text"]
    _, third = world.buy(world.a, "INK-XL-BK", qty=3)  # 95.70 EUR: within the budget
    assert third.body["status"] == "rejected"
    assert third.body["reason"] == "above-approval-threshold"


def test_an_order_above_the_threshold_needs_the_owner_s_own_approval_of_that_offer(world):
    offer = world.quote(world.a, "INK-XL-BK", qty=3)  # 95.70 EUR: above the 80.00 EUR threshold
    other = world.quote(world.a, "INK-XL-BK", qty=3)
    forged = {  # what a compromised device might carry instead -> why the vendor refuses it
        bytes(16): "it does not verify with the owner's key (bad-tag)",  # an id, say
        world.approval(world.a, offer, signer=world.b.signer): "owner's key (unknown-key)",
        world.approval(world.a, offer, to=world.b.kid): "owner's key (not-for-us)",
        world.approval(world.a, other): "it approves another offer",
        world.approval(world.a, offer, total=eur(100)): "it approves another offer",
        world.approval(world.a, offer, vendor=world.b.kid): "it approves another offer",
        world.approval(world.a, offer, now=T - 2 * HOUR): "it is not valid at this time",
        world.approval(world.a, offer, now=T + HOUR): "it is not valid at this time",
        envelope.seal(m.APPROVAL, {"req": os.urandom(16), "decision": "decline"}, world.owner,
                      world.a.kid, 1, T, os.urandom(16), codec, reply_to=os.urandom(16)):
            "it is not an approval",
    }
    for appr, why in forged.items():
        _, _, receipt = world.order(world.a, offer, appr=appr)
        assert receipt.body["reason"] == "approval-invalid", why
        assert receipt.body["text"].startswith("The owner's approval does not count: "), why
        assert why in receipt.body["text"], receipt.body["text"]
    _, _, receipt = world.order(world.a, offer, appr=world.approval(world.a, offer))
    assert receipt.body["status"] == "accepted"


def test_an_offer_made_to_another_device_cannot_be_ordered(world):
    offer_to_b = world.quote(world.b, "WF-300")
    _, _, answer = world.order(world.a, offer_to_b)
    assert answer.body["status"] == "rejected" and answer.body["reason"] == "unknown-offer"


def test_an_order_must_match_its_offer_and_be_in_time(world):
    offer = world.quote(world.a, "WF-300", qty=2)
    _, _, answer = world.order(world.a, dict(offer, qty=1, total=eur(2948)))
    assert answer.body["reason"] == "offer-mismatch"
    late = T + 24 * HOUR
    _, _, answer = world.order(world.a, offer, now=late)
    assert answer.body["reason"] == "offer-expired"


def test_orders_need_a_mandate_the_vendor_holds(world):
    _, answer = world.buy(world.b, "WF-300")  # B's owner never sent one
    assert answer.body["reason"] == "no-mandate"
    _, answer = world.buy(world.a, "WF-300", mandate_version=2)  # a version we never received
    assert answer.body["reason"] == "unknown-mandate"


def test_a_revoked_device_is_refused(world):
    offer = world.quote(world.a, "WF-300")
    assert revoke(world.service.store, world.a.kid)
    _, _, answer = world.order(world.a, offer)
    assert answer.body["status"] == "rejected"
    assert answer.body["reason"] == "device-deregistered"
    _, [error] = world.send(world.a, m.QUOTE_REQUEST, {"slot": "s", "sku": "WF-300", "qty": 1})
    assert error.type == m.ERROR and error.body["code"] == "device-deregistered"
    levels = world.service.store.levels(world.a.kid)
    slots = [{"slot": "s", "sku": "WF-300", "unit": "l", "level": 48, "cap": 300, "rate": 1650}]
    _, [error] = world.send(world.a, m.STATUS, {"slots": slots})
    assert error.body["code"] == "device-deregistered"  # a heartbeat hears it too
    assert world.service.store.levels(world.a.kid) == levels  # and its levels are not kept

def test_tampered_replayed_expired_and_misrouted_messages_are_refused_and_counted(world):
    service, a = world.service, world.a
    request = {"slot": "s", "sku": "WF-300", "qty": 1}
    good = a.seal(m.QUOTE_REQUEST, request, T, seq=100)
    assert len(service.handle(good, a.kid, T)) == 1
    tampered = bytearray(a.seal(m.QUOTE_REQUEST, request, T))
    tampered[-1] ^= 1
    replayed = a.seal(m.QUOTE_REQUEST, request, T, seq=100, msg_id=b"\x07" * 16)  # a used seq
    expired = a.seal(m.QUOTE_REQUEST, request, T, ttl=60)
    by_b = world.b.seal(m.QUOTE_REQUEST, request, T)  # B's message on A's uplink
    stranger = Device(9, world.vendor)
    unknown = stranger.seal(m.QUOTE_REQUEST, request, T)
    assert service.handle(bytes(tampered), a.kid, T) == []
    [nonce] = a.receive(service.handle(replayed, a.kid, T), T)  # refused, and told why
    assert nonce.type == m.RESYNC_NONCE and nonce.re == b"\x07" * 16
    assert nonce.body["floor"] == 100
    assert service.handle(expired, a.kid, T + 60) == []
    assert service.handle(by_b, a.kid, T) == []
    assert service.handle(unknown, a.kid, T) == []
    assert service.handle(unknown, stranger.kid, T) == []
    assert service.refusals == {"bad-signature": 1, "replayed": 1, "expired": 1,
                                "topic-mismatch": 1, "unknown-key": 1, "unknown-device": 1}
    # The replay state is in the database: a restarted vendor refuses the replay too.
    restarted = world.new_service()
    [again] = a.receive(restarted.handle(replayed, a.kid, T), T)
    assert again.body == nonce.body  # the nonce pending is repeated, not replaced
    assert restarted.refusals == {"replayed": 1}


def test_a_newer_mandate_replaces_the_held_one_and_an_older_is_refused(world):
    tight = [["budget", {"cur": "EUR", "max": 1000, "period": "month"}]]
    loose = [["budget", {"cur": "EUR", "max": 100000, "period": "month"}]]
    v1, v2 = world.mandate(world.b, 1, tight), world.mandate(world.b, 2, loose)
    assert world.send(world.b, m.MANDATE, {"cwt": v1})[1] == []
    _, answer = world.buy(world.b, "WF-300")
    assert answer.body["reason"] == "over-budget"
    assert world.send(world.b, m.MANDATE, {"cwt": v2})[1] == []
    _, [error] = world.send(world.b, m.MANDATE, {"cwt": v1})
    assert error.type == m.ERROR and error.body["code"] == "stale-version"
    assert world.service.store.device(world.b.kid).mandate_version == 2
    _, answer = world.buy(world.b, "WF-300", mandate_version=2)
    assert answer.body["status"] == "accepted"


def test_a_mandate_signed_by_someone_else_is_refused(world):
    forger = Ed25519Signer.from_seed(b"\x07" * 32)
    claims = mandate.make_claims(forger.kid, world.b.signer.public_key, 1, T, T + DAY)
    _, [error] = world.send(world.b, m.MANDATE, {"cwt": mandate.issue(claims, forger, codec)})
    assert error.body["code"] == "wrong-owner"
    assert world.service.store.device(world.b.kid).mandate is None


def test_a_test_order_is_recorded_as_a_test_and_never_shipped(world):
    offer = world.quote(world.a, "WF-300", test=True)
    assert offer["test"] is True
    _, _, receipt = world.order(world.a, offer)
    assert receipt.body["status"] == "accepted" and "neither charged" in receipt.body["text"]
    [row] = world.service.store.orders(world.a.kid)
    assert row["test"] == 1
    assert world.service.advance(T + 30 * DAY) == []


def test_a_support_request_is_answered_from_the_catalog_with_a_visit_to_order(world):
    case = os.urandom(16)
    _, [reply] = world.send(world.a, m.SUPPORT_REQUEST, {
        "case": case, "fault": "e21-flow-sensor", "diag": {"flow-ml-min": 0}})
    assert reply.type == m.SUPPORT_REPLY and reply.re is not None
    assert reply.body["steps"] == CATALOG.faults["e21-flow-sensor"][0]
    assert reply.body["visit"] == {"price": eur(8900), "until": T + 168 * HOUR}
    # The device orders the visit as the lifecycle does: offer = case id, sku service-visit.
    visit = {"offer": case, "sku": "service-visit", "qty": 1, "total": eur(8900), "test": False}
    # 89.00 EUR is above the owner's approval threshold: approved as the device decided it
    approved = world.approval(world.a, visit_offer(case, reply.body["visit"]))
    _, _, receipt = world.order(world.a, visit, appr=approved)
    assert receipt.body["status"] == "accepted"
    _, [generic] = world.send(world.a, m.SUPPORT_REQUEST, {
        "case": os.urandom(16), "fault": "e99-unheard-of", "diag": {}})
    assert generic.body["steps"] == CATALOG.default_steps and "visit" not in generic.body


def test_fulfilment_ships_then_delivers(world):
    body, receipt = world.buy(world.a, "WF-300")
    assert world.service.advance(T + 36 * HOUR - 1) == []
    [shipment] = world.a.receive(world.service.advance(T + 36 * HOUR), T + 36 * HOUR)
    assert shipment.type == m.SHIPMENT and shipment.body["order"] == body["order"]
    assert shipment.body["eta"] == T + 72 * HOUR
    assert shipment.body["track"] == receipt.body["ref"]
    assert world.service.advance(T + 40 * HOUR) == []
    [delivery] = world.a.receive(world.service.advance(T + 80 * HOUR), T + 80 * HOUR)
    assert delivery.type == m.DELIVERY
    assert delivery.body == {"order": body["order"], "at": T + 72 * HOUR, "qty": 1}


def test_accepted_orders_hold_stock_until_they_ship_or_are_cancelled(world):
    """What accepted orders hold is counted per sku as they move on; a quote for more than the
    rest is out of stock. A database of schema version 1 has the count made when it is opened."""
    store, stock = world.service.store, CATALOG.skus["WF-300"].stock

    def rest_refused(qty):
        _, [answer] = world.send(world.b, m.QUOTE_REQUEST, {"slot": "s", "sku": "WF-300",
                                                            "qty": qty})
        return answer.type == m.ERROR and answer.body["code"] == "out-of-stock"

    world.order(world.a, world.quote(world.a, "WF-300", test=True))  # a test order holds none
    assert store.held("WF-300") == 0
    body, _ = world.buy(world.a, "WF-300", qty=2)
    assert store.held("WF-300") == 2 and rest_refused(stock - 1) and not rest_refused(stock - 2)
    with store.transaction():  # as a vendor of schema version 1 left it: no count kept
        store.db.execute("DELETE FROM held")
        store.db.execute("UPDATE meta SET value = 1 WHERE key = 'schema'")
    assert world.new_service().store.held("WF-300") == 2
    cancel = {"order": body["order"], "by": "owner", "reason": "changed-mind"}
    world.send(world.a, m.CANCEL, cancel, T + HOUR)
    assert store.held("WF-300") == 0
    world.buy(world.a, "WF-300", qty=3, now=T + HOUR)
    assert store.held("WF-300") == 3
    world.service.advance(T + 40 * HOUR)  # shipped: no longer held
    assert store.held("WF-300") == 0 and not rest_refused(stock)


def test_devices_are_numbered_as_registered_and_an_older_database_is_numbered(backend):
    """devices_after gives the devices in the order they were registered, a renewal keeping its
    number: what workers follow to subscribe to new devices. A database of schema version 2 (no
    numbers on PostgreSQL) has its devices numbered when it is opened."""
    signers = [Ed25519Signer.from_seed(bytes([i]) * 32) for i in range(40, 44)]
    owner = Ed25519Signer.from_seed(b"\x07" * 32)
    store = open_store(backend)
    for signer in signers[:3]:
        register(store, signer.public_key, owner.public_key, T)
    found = store.devices_after(0)
    assert [kid for _, kid in found] == [s.kid for s in signers[:3]]
    assert [n for n, _ in found] == sorted(n for n, _ in found) and found[0][0] > 0
    register(store, signers[0].public_key, owner.public_key, T + 1)  # renewed: same number
    assert store.devices_after(0) == found and store.devices_after(found[-1][0]) == []
    assert store.devices_after(0, limit=2) == found[:2]
    with store.transaction():  # as a vendor of schema version 2 left it
        if not isinstance(backend, Path):
            store.db.execute("ALTER TABLE devices DROP COLUMN n")
        store.db.execute("UPDATE meta SET value = 2 WHERE key = 'schema'")
    store.close()
    store = open_store(backend)  # numbered in no particular order: a worker reads them all
    assert sorted(kid for _, kid in store.devices_after(0)) == sorted(s.kid for s in signers[:3])
    register(store, signers[3].public_key, owner.public_key, T)
    last = store.devices_after(0)[-2][0]
    assert [kid for _, kid in store.devices_after(last)] == [signers[3].kid]
    assert store._one("SELECT value FROM meta WHERE key = 'schema'")[0] == 3
    store.close()


def test_a_second_order_for_an_item_on_its_way_is_a_duplicate(world):
    _, first = world.buy(world.a, "WF-300")
    _, second = world.buy(world.a, "WF-300")
    assert second.body["status"] == "duplicate" and second.body["ref"] == first.body["ref"]


def test_a_cancel_in_time_releases_the_spend_and_one_too_late_is_refused(world):
    body, _ = world.buy(world.a, "INK-XL-BK", qty=2)  # 63.80 EUR
    cancel = {"order": body["order"], "by": "owner", "reason": "changed-mind"}
    _, [confirmed] = world.send(world.a, m.CANCEL, cancel, T + HOUR)
    assert confirmed.type == m.CANCEL and confirmed.body["order"] == body["order"]
    # The 63.80 EUR are released: 63.80 + 60.60 EUR fit in the 150.00 EUR budget again.
    _, again = world.buy(world.a, "INK-XL-BK", qty=2, now=T + HOUR)
    _, beans = world.buy(world.a, "BEANS-1KG", qty=3, now=T + HOUR)  # 60.60 EUR
    assert again.body["status"] == beans.body["status"] == "accepted"
    world.service.advance(T + 2 * DAY)  # shipped after 24 h, past the 1-day cancel window
    late = {"order": again.body["order"], "by": "device", "reason": "not-needed"}
    _, [refused] = world.send(world.a, m.CANCEL, late, T + 2 * DAY)
    assert refused.type == m.ERROR and refused.body["code"] == "not-cancellable"
    statuses = [r["status"] for r in world.service.store.orders(world.a.kid)]
    assert statuses == ["cancelled", "shipped", "shipped"]


def test_promotions_are_pushed_and_taken_up(world):
    [promotion] = world.a.receive(world.service.promote(world.a.kid, "spring-filters", T), T)
    assert promotion.type == m.PROMOTION and promotion.body["price"] == eur(1990)
    offer = world.quote(world.a, "WF-300", qty=2, promo=promotion.body["promo"])
    assert offer["price"] == eur(1990) and offer["total"] == eur(2 * 1990 + 498)
    offer = world.quote(world.a, "WF-300", qty=5, promo=promotion.body["promo"])  # above max
    assert offer["price"] == eur(2450)


def test_status_levels_are_recorded_without_an_answer(world):
    slots = [{"slot": "water-filter", "sku": "WF-300", "unit": "l", "level": 48, "cap": 300,
              "rate": 1650}]
    assert world.send(world.a, m.STATUS, {"slots": slots}, T + 5)[1] == []
    assert world.service.store.levels(world.a.kid) == {"water-filter": (48, 300, "l", T + 5)}


def at_once(workers, sealed, kid):
    """Each worker (a Service with its own connection) handles its message in its own thread,
    all released together: their answers."""
    answers = [None] * len(workers)
    start = threading.Barrier(len(workers))

    def work(i):
        start.wait()
        answers[i] = workers[i].handle(sealed[i], kid, T)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_two_workers_on_one_database_place_an_order_once(world):
    workers = [world.service, world.new_service()]
    for resealed in (False, True):
        offer = world.quote(world.a, "BEANS-1KG" if resealed else "WF-300")
        body = m.order_body(offer, os.urandom(16), 1)
        sealed = [world.a.seal(m.ORDER, body, T) for _ in workers]
        if not resealed:
            sealed = [sealed[0]] * len(workers)
        answers = at_once(workers, sealed, world.a.kid)
        rows = [r for r in world.service.store.orders(world.a.kid) if r["id"] == body["order"]]
        assert [r["status"] for r in rows] == ["accepted"]
        receipts = [world.a.receive(a, T)[0].body if resealed else a for a in answers]
        assert receipts[0] == receipts[1]


def test_a_broken_catalog_is_refused_with_the_place_named(tmp_path):
    text = EXAMPLE.read_text().replace('price = [3190, "EUR"]', 'price = [31.90, "EUR"]')
    with pytest.raises(catalog.CatalogError, match=r"skus\.INK-XL-BK\.price: expected \[amount"):
        catalog.parse(text, "shop.toml")
    text = EXAMPLE.read_text().replace('category = "coffee-beans"', 'category = "Coffee Beans"')
    with pytest.raises(catalog.CatalogError, match=r"skus\.BEANS-1KG\.category: bad-value"):
        catalog.parse(text, "shop.toml")
    with pytest.raises(catalog.CatalogError, match="shop.toml: not valid TOML"):
        catalog.parse("[skus", "shop.toml")
    text = EXAMPLE.read_text().replace('name = "Acme Home Supplies"', 'name = "%s"' % ("x" * 65))
    with pytest.raises(catalog.CatalogError, match=r"shop.toml: vendor\.name: 1 to 64 bytes"):
        catalog.parse(text, "shop.toml")


def test_a_status_brings_fulfilment_news_again(world):
    """Shipments and deliveries answer nothing, so a device that lost one hears it again on its
    next status; a delivery is repeated for REMIND_DAYS only."""
    slots = [{"slot": "water-filter", "sku": "WF-300", "unit": "l", "level": 48, "cap": 300,
              "rate": 1650}]
    body, _ = world.buy(world.a, "WF-300")
    assert world.send(world.a, m.STATUS, {"slots": slots}, T + HOUR)[1] == []
    [lost] = world.service.advance(T + 36 * HOUR)  # the device never gets it
    [shipment] = world.send(world.a, m.STATUS, {"slots": slots}, T + 37 * HOUR)[1]
    assert shipment.type == m.SHIPMENT and shipment.body["order"] == body["order"]
    assert codec.loads(codec.loads(lost[1]).value[2])[10] == shipment.body
    world.service.advance(T + 72 * HOUR)
    [delivery] = world.send(world.a, m.STATUS, {"slots": slots}, T + 73 * HOUR)[1]
    assert delivery.body == {"order": body["order"], "at": T + 72 * HOUR, "qty": 1}
    later = T + 72 * HOUR + REMIND_DAYS * DAY
    assert world.send(world.a, m.STATUS, {"slots": slots}, later, ttl=600)[1] == []


def test_messages_are_parsed_and_verified_without_the_write_lock(world):
    """Another worker holds the database's write lock: refusals still come at once (a handler
    that wanted the lock would wait for it), and the payload of an order is decoded and its
    signature verified before the lock is taken."""
    service = world.service
    holder = open_store(world.where)
    if isinstance(holder, PostgresStore):
        service.store.db.execute("SET lock_timeout = '200ms'")
        holder.db.execute("BEGIN")
        holder.db.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
    else:
        service.store.db.execute("PRAGMA busy_timeout = 200")
        holder.db.execute("BEGIN IMMEDIATE")
    try:
        request = {"slot": "s", "sku": "WF-300", "qty": 1}
        tampered = bytearray(world.a.seal(m.QUOTE_REQUEST, request, T))
        tampered[-1] ^= 1
        crafted = b"\xd2\x84\x40\xa1\x00\x61\xff\x40\x40"  # invalid UTF-8 in the unprotected header
        for data in (bytes(tampered), crafted, b"\x00" * 1000):
            assert service.handle(data, world.a.kid, T) == []
        assert service.refusals == {"bad-signature": 1, "bad-header": 1, "bad-tag": 1}
        with pytest.raises(Exception, match="lock"):  # a valid message does need the lock
            service.handle(world.a.seal(m.QUOTE_REQUEST, request, T), world.a.kid, T)
    finally:
        holder.db.execute("ROLLBACK")

    offer = world.quote(world.a, "WF-300")
    calls = []
    real_transaction, real_loads = service.store.transaction, service.codec.loads

    class Spy:
        dumps = staticmethod(codec.dumps)

        @staticmethod
        def loads(data, max_depth=16):
            calls.append(("loads", len(data)))
            return real_loads(data, max_depth)

    def transaction():
        calls.append(("lock",))
        return real_transaction()

    service.codec, service.store.transaction = Spy, transaction
    body, _, receipt = world.order(world.a, offer)
    assert receipt.body["status"] == "accepted"
    assert calls[-1] == ("lock",) and any(c[0] == "loads" for c in calls[:-1])


def test_a_mandate_token_is_verified_before_the_write_lock(world, monkeypatch):
    """The owner's signature on a mandate message's token is checked with the message's own,
    lock not held: the transaction only compares its version with the one held and keeps it."""
    service, calls = world.service, []
    real_verify, real_transaction = mandate.verify, service.store.transaction

    def verify(*args):
        calls.append("verify")
        return real_verify(*args)

    def transaction():
        calls.append("lock")
        return real_transaction()

    monkeypatch.setattr(mandate, "verify", verify)
    service.store.transaction = transaction
    v2 = world.mandate(world.a, 2, [["budget", {"cur": "EUR", "max": 20000, "period": "month"}]])
    assert world.send(world.a, m.MANDATE, {"cwt": v2})[1] == []
    assert calls == ["verify", "lock"]
    assert service.store.device(world.a.kid).mandate_version == 2
    calls.clear()
    _, [error] = world.send(world.a, m.MANDATE, {"cwt": world.mandate(world.a, 1, [])})
    assert error.body["code"] == "stale-version" and calls == ["verify", "lock"]


def test_a_mandate_verified_before_its_device_changed_owner_is_verified_again(world):
    """Another worker registers device B under a new owner between the check of B's mandate
    message and its work: the token, verified with the old owner's key, is verified again with
    the new one under the lock, and refused."""
    service = world.service
    new_owner = Ed25519Signer.from_seed(b"\x08" * 32)
    real_check = service._check

    def check_then_new_owner(data, kid, now):
        found = real_check(data, kid, now)
        register(service.store, world.b.signer.public_key, new_owner.public_key, T)
        return found

    service._check = check_then_new_owner
    _, [error] = world.send(world.b, m.MANDATE, {"cwt": world.mandate(world.b, 1, [])})
    assert error.body["code"] == "wrong-owner"
    assert service.store.device(world.b.kid).mandate is None


def test_an_uplink_that_keeps_sending_refused_messages_is_throttled(world):
    clock = [0.0]
    service = world.service
    service.limiter = RefusalLimiter(rate=1.0, burst=3, clock=lambda: clock[0])
    garbage = b"\xd2\x84\x40\xa0\x40\x40"
    for _ in range(3):
        assert service.handle(garbage, world.b.kid, T) == []
    assert service.refusals == {"unprotected-alg": 3} and service.limiter.refusals(world.b.kid) == 3
    good = world.b.seal(m.QUOTE_REQUEST, {"slot": "s", "sku": "WF-300", "qty": 1}, T)
    assert service.handle(good, world.b.kid, T) == []  # dropped unread while the bucket is empty
    assert service.handle(garbage, world.b.kid, T) == []
    assert service.refusals == {"unprotected-alg": 3, "rate-limited": 2}
    # Another uplink is not affected, and valid messages take no tokens.
    for _ in range(5):
        world.quote(world.a, "WF-300")
    clock[0] = 1.0  # one token back
    assert len(service.handle(good, world.b.kid, T)) == 1
    assert service.limiter.refusals(world.b.kid) == 3


def test_a_changed_copy_cannot_spoil_the_genuine_redelivery(world):
    """Someone adds {99: "x"} to the unprotected header of a genuine order and publishes it first:
    it is refused, and the device's own message is accepted, then answered again as a duplicate."""
    offer = world.quote(world.a, "WF-300")
    data = world.a.seal(m.ORDER, m.order_body(offer, os.urandom(16), 1), T)
    assert data[16:17] == b"\xa0"
    changed = data[:16] + b"\xa1\x18\x63\x61x" + data[17:]
    assert world.service.handle(changed, world.a.kid, T) == []
    assert world.service.refusals == {"bad-header": 1}
    first = world.service.handle(data, world.a.kid, T)
    [receipt] = world.a.receive(first, T)
    assert receipt.body["status"] == "accepted"
    assert world.service.handle(data, world.a.kid, T + 1) == first


def test_the_limiter_keeps_a_bounded_number_of_topics():
    clock = [0.0]
    limiter = RefusalLimiter(rate=0.5, burst=2, max_topics=3, clock=lambda: clock[0])
    for topic in (b"a", b"a", b"b", b"c"):
        limiter.charge(topic)
    assert not limiter.allows(b"a") and limiter.allows(b"b") and limiter.refusals(b"a") == 2
    clock[0] = 2.0
    assert limiter.allows(b"a")
    limiter.charge(b"d")  # forgets the least recently charged: a
    assert limiter.refusals(b"a") == 0 and limiter.refusals(b"d") == 1
    assert [limiter.refusals(t) for t in (b"b", b"c")] == [1, 1]
    with pytest.raises(ValueError):
        RefusalLimiter(rate=0)


def test_uplinks_are_served_in_turn_and_a_flooded_topic_is_capped():
    from thingsdk.seller.serve import FairQueue

    q = FairQueue(per_topic=3)
    for i in range(5):
        q.put("up/flood", b"f%d" % i)
    q.put("up/a", b"a0")
    q.put("up/a", b"a1")
    assert q.dropped == 2
    got = [q.get(0) for _ in range(5)]
    assert got == [("up/flood", b"f0"), ("up/a", b"a0"), ("up/flood", b"f1"), ("up/a", b"a1"),
                   ("up/flood", b"f2")]
    with pytest.raises(queue.Empty):
        q.get(0.01)
    waiter = threading.Timer(0.05, q.put, ("up/b", b"b0"))
    waiter.start()
    assert q.get(5) == ("up/b", b"b0")


# ---- a device that lost its counters ------------------------------------------------------------

def test_a_device_that_lost_its_counters_rejoins_once_per_nonce_and_learns_its_open_orders(world):
    a, service = world.a, world.service
    body, _ = world.buy(a, "WF-300")  # an open order the device will forget
    highest = a.seq
    a.seq = 0  # the state folder is wiped
    stale, [nonce] = world.send(a, m.QUOTE_REQUEST, {"slot": "s", "sku": "WF-300", "qty": 1})
    assert nonce.type == m.RESYNC_NONCE and nonce.body["floor"] == highest
    assert nonce.body["until"] == T + 600 and service.refusals == {"replayed": 1}
    # The device rejoins above the floor, quoting the nonce: once.
    a.seq = highest + 1000
    resync, [reply] = world.send(a, m.RESYNC, {"nonce": nonce.body["nonce"]}, T + 5)
    assert reply.type == m.RESYNC_REPLY and reply.body["from"] == highest + 1001
    assert reply.body["epoch"] == 1
    [order] = reply.body["orders"]
    assert (order["order"], order["sku"], order["status"]) == (body["order"], "WF-300", "accepted")
    assert order["ref"].startswith("ORD-") and order["eta"] == T + 72 * HOUR
    # Its messages count again; the old run's are refused.
    assert [a.type for a in world.send(a, m.QUOTE_REQUEST, {"slot": "s", "sku": "WF-300",
                                                            "qty": 1}, T + 6)[1]] == [m.OFFER]
    assert a.receive(service.handle(stale, a.kid, T + 6), T + 6)[0].type == m.RESYNC_NONCE
    # A second resync on the spent nonce, though signed by the device, is refused and counted.
    _, [refused] = world.send(a, m.RESYNC, {"nonce": nonce.body["nonce"]}, T + 7)
    assert refused.type == m.ERROR and refused.body["code"] == "stale-nonce"
    assert service.refusals["stale-nonce"] == 1
    # The first resync again: a duplicate delivery gets the same reply, not a second epoch.
    [(_, again)] = service.handle(resync, a.kid, T + 8)
    assert a.inbox.open(again, T + 8).status == envelope.DUPLICATE  # the very bytes sent before
    assert service.store.db.execute("SELECT epoch FROM resyncs").fetchall() == [(1,)]


def test_a_replayed_resync_or_an_expired_nonce_is_refused_and_counted(world):
    a, service = world.a, world.service
    world.buy(a, "WF-300")
    a.seq = 0
    _, [nonce] = world.send(a, m.STATUS, {"slots": [
        {"slot": "s", "unit": "l", "level": 1, "cap": 2, "rate": 0}]})
    a.seq = 1000
    late, [refused] = world.send(a, m.RESYNC, {"nonce": nonce.body["nonce"]}, T + 600)
    assert refused.body["code"] == "stale-nonce" and service.refusals["stale-nonce"] == 1
    a.seq = 0
    _, [fresh] = world.send(a, m.STATUS, {"slots": [
        {"slot": "s", "unit": "l", "level": 1, "cap": 2, "rate": 0}]}, T + 601)
    assert fresh.body["nonce"] != nonce.body["nonce"]
    a.seq = 2000
    resync, [reply] = world.send(a, m.RESYNC, {"nonce": fresh.body["nonce"]}, T + 602)
    assert reply.type == m.RESYNC_REPLY
    for _ in range(40):  # the device goes on; the vendor forgets the resync's message id
        world.send(a, m.CANCEL, {"order": bytes(16), "by": "device", "reason": "not-needed"},
                   T + 603)
    before = dict(service.refusals)
    assert service.handle(resync, a.kid, T + 604) == []  # no answer: no nonce for a replay
    assert service.refusals == dict(before, replayed=before["replayed"] + 1)
    assert service.handle(late, a.kid, T + 604) == []  # the refused one, replayed: too old now
    assert service.refusals["too-old"] == before["too-old"] + 1
    assert service.store.db.execute("SELECT epoch FROM resyncs").fetchall() == [(1,)]


def test_a_revoked_device_gets_no_resync_nonce(world):
    a = world.a
    world.buy(a, "WF-300")
    assert revoke(world.service.store, a.kid)
    a.seq = 0
    stale = a.seal(m.QUOTE_REQUEST, {"slot": "s", "sku": "WF-300", "qty": 1}, T)
    assert world.service.handle(stale, a.kid, T) == []
    assert world.service.refusals == {"replayed": 1}


def test_an_order_query_gets_the_orders_latest_news_signed_anew(world):
    a = world.a
    body, receipt = world.buy(a, "WF-300")
    order = body["order"]

    def query(now, order_id=order):
        _, answers = world.send(a, m.ORDER_QUERY, {"order": order_id}, now)
        assert len(answers) == 1
        return answers[0]

    again = query(T + HOUR)
    assert (again.type, again.body) == (m.RECEIPT, receipt.body)  # not shipped yet
    world.service.advance(T + 36 * HOUR)  # shipped: the news is lost on the way
    shipment = query(T + 37 * HOUR)
    assert shipment.type == m.SHIPMENT and shipment.body["order"] == order
    assert shipment.body["eta"] == T + 72 * HOUR and shipment.body["track"] == receipt.body["ref"]
    world.service.advance(T + 72 * HOUR)
    delivery = query(T + 73 * HOUR)
    assert (delivery.type, delivery.body) == (m.DELIVERY, {"order": order, "at": T + 72 * HOUR,
                                                           "qty": 1})
    unknown = query(T + 74 * HOUR, bytes(16))
    assert unknown.type == m.ERROR and unknown.body["code"] == "unknown-order"
    _, cancelled = world.buy(a, "WF-300", now=T + 75 * HOUR)
    world.send(a, m.CANCEL, {"order": cancelled.body["order"], "by": "owner",
                             "reason": "changed-mind"}, T + 75 * HOUR)
    told = query(T + 76 * HOUR, cancelled.body["order"])
    assert told.type == m.CANCEL and told.body["order"] == cancelled.body["order"]


def test_a_device_whose_clock_runs_ahead_is_told_by_how_much(world):
    data = world.a.seal(m.STATUS, {"slots": [{"slot": "s", "sku": "WF-300", "unit": "l",
                                              "level": 1, "cap": 2, "rate": 0}]},
                        T + HOUR, ttl=2 * HOUR)  # its clock says an hour later than the vendor's
    [answer] = world.a.receive(world.service.handle(data, world.a.kid, T), T + HOUR)
    assert world.service.refusals == {"from-future": 1}
    assert (answer.type, answer.body["code"], answer.re) == (m.ERROR, "from-future",
                                                             codec.loads(codec.loads(data).value[2])[3])
    assert "stamped 3600 s after our clock: set your clock" in answer.body["text"]
    assert answer.ts == T  # the vendor's own time, signed
