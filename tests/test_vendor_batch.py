"""Service.handle_batch: many messages in one transaction, each kept or not on its own, acted on
in order, with what is remembered between messages never standing in for the database; and the
server's side of it: batches taken in turn, acknowledged in order once kept and answered."""

import contextlib
import logging
import os
import queue

import pytest

from test_vendor import T, backend, postgres, world  # noqa: F401 (the fixtures)
from thingsdk.core import messages as m
from thingsdk.mqtt import Ack
from thingsdk.seller import service as service_module
from thingsdk.seller.serve import AckLine, FairQueue
from thingsdk.crypto import Ed25519Signer
from thingsdk.seller.service import Service, register

WF = {"slot": "s", "sku": "WF-300", "qty": 1}
LEVEL = {"slots": [{"slot": "s", "unit": "pcs", "level": 1, "cap": 4, "rate": 0}]}


def test_a_batch_answers_each_message_as_one_at_a_time_would(world):
    offer = world.quote(world.a, "WF-300")
    order = m.order_body(offer, os.urandom(16), 1)
    sealed = [(world.a.seal(m.ORDER, order, T), world.a.kid),
              (world.b.seal(m.QUOTE_REQUEST, WF, T), world.b.kid),
              (b"\xd2\x84\x40\xa0\x40\x40", world.b.kid),  # refused, unanswered
              (world.a.seal(m.CANCEL, {"order": order["order"], "by": "owner", "reason": "x"}, T),
               world.a.kid)]
    sealed.append(sealed[0])  # the same order again, after its cancel: the first receipt
    answers = world.service.handle_batch(sealed, T)
    receipt, offer_b, cancelled, again = (world.a.receive(answers[0], T),
                                          world.b.receive(answers[1], T),
                                          world.a.receive(answers[3], T), answers[4])
    assert answers[2] == []
    assert receipt[0].body["status"] == "accepted" and offer_b[0].type == m.OFFER
    assert cancelled[0].type == m.CANCEL  # the order before it in the batch was kept first
    assert again == answers[0]  # a duplicate: the answers sent the first time
    assert [o["status"] for o in world.service.store.orders(world.a.kid)] == ["cancelled"]


def test_a_message_whose_work_fails_is_rolled_back_alone(world, monkeypatch):
    service = world.service
    calls = []

    def failing_once(service, device, msg, now):
        calls.append(device.kid)
        if len(calls) == 1:
            service.store.save_levels(device.kid, LEVEL["slots"], now)
            raise RuntimeError("a bug")
        return Service._quote(service, device, msg, now)

    monkeypatch.setitem(service_module._HANDLERS, m.QUOTE_REQUEST, failing_once)
    first = world.a.seal(m.QUOTE_REQUEST, WF, T)
    batch = [(first, world.a.kid), (world.b.seal(m.QUOTE_REQUEST, WF, T), world.b.kid)]
    answers = service.handle_batch(batch, T)
    assert answers[0] == [] and len(world.b.receive(answers[1], T)) == 1
    assert service.store.levels(world.a.kid) == {}  # its writes undone
    # Nothing of it was kept, not even in memory: sent again it is handled as new.
    [offer] = world.a.receive(service.handle(first, world.a.kid, T), T)
    assert offer.type == m.OFFER


def test_an_order_is_said_accepted_once_committed_and_never_if_rolled_back(world, monkeypatch,
                                                                           caplog):
    caplog.set_level(logging.INFO, "thingsdk.seller")
    service, store = world.service, world.service.store
    add_order, real_transaction, calls, said_at_commit = store.add_order, store.transaction, [], []

    def failing_once(*args):
        calls.append(args)
        if len(calls) == 1:  # after the order was judged accepted
            raise RuntimeError("a bug")
        return add_order(*args)

    @contextlib.contextmanager
    def transaction():
        with real_transaction():
            yield store
        said_at_commit.append(_accepted(caplog))

    monkeypatch.setattr(store, "add_order", failing_once)
    monkeypatch.setattr(store, "transaction", transaction)
    first = m.order_body(world.quote(world.a, "WF-300"), os.urandom(16), 1)
    second = m.order_body(world.quote(world.a, "INK-XL-BK"), os.urandom(16), 1)
    answers = service.handle_batch([(world.a.seal(m.ORDER, first, T), world.a.kid),
                                    (world.a.seal(m.ORDER, second, T), world.a.kid)], T)
    [receipt] = world.a.receive(answers[1], T)
    assert answers[0] == [] and receipt.body["status"] == "accepted"
    assert said_at_commit[-1] == []  # nothing said while the work was not yet committed
    [line] = _accepted(caplog)  # then the order kept, and not the one rolled back
    assert line.startswith("accepted order %s " % receipt.body["ref"])


def _accepted(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("accepted order")]


def test_a_message_whose_write_the_database_refuses_is_rolled_back_alone(world, monkeypatch):
    """On PostgreSQL writes are sent without waiting for their outcome: a refusal of a message's
    last write comes back later, and must still undo that message's work alone, not the next's."""
    store = world.service.store
    save_replies = store.save_replies
    calls = []

    def refused_once(device, msg_id, replies, now):
        save_replies(device, msg_id, replies, now)
        calls.append(device)
        if len(calls) == 1:  # a row that exists: the database refuses it
            store.db.execute("INSERT INTO meta VALUES ('seq', 0)")

    monkeypatch.setattr(store, "save_replies", refused_once)
    first_id = os.urandom(16)
    first = world.a.seal(m.QUOTE_REQUEST, WF, T, msg_id=first_id)
    batch = [(first, world.a.kid), (world.b.seal(m.QUOTE_REQUEST, WF, T), world.b.kid)]
    answers = world.service.handle_batch(batch, T)
    assert answers[0] == [] and len(world.b.receive(answers[1], T)) == 1
    assert store.replies(world.a.kid, first_id) == []  # its writes undone
    [offer] = world.a.receive(world.service.handle(first, world.a.kid, T), T)
    assert offer.type == m.OFFER


def test_a_worker_sees_what_another_recorded_since_its_last_message(world):
    one, other = world.service, world.new_service()
    first = world.a.seal(m.QUOTE_REQUEST, WF, T)
    second = world.a.seal(m.QUOTE_REQUEST, WF, T)
    one.handle(first, world.a.kid, T)  # `one` remembers the device's replay guard
    answered = other.handle(second, world.a.kid, T)
    # `one` must not take its guard from memory: the store's says `second` was handled.
    assert one.handle(second, world.a.kid, T) == answered
    assert len(one.store.replies(world.a.kid, world.a.inbox.open(answered[0][1], T).message.re)
               ) == 1


def test_a_mandate_one_worker_remembers_gives_way_to_what_the_store_holds_now(world):
    """A verified mandate is remembered per device, and used only while the device's row still
    holds it: one kept by another worker since, or a new owner's registration, wins."""
    one, other = world.service, world.new_service()
    loose = [["budget", {"cur": "EUR", "max": 100000, "period": "month"}]]
    tight = [["budget", {"cur": "EUR", "max": 1000, "period": "month"}]]
    world.send(world.b, m.MANDATE, {"cwt": world.mandate(world.b, 1, loose)})
    assert world.buy(world.b, "WF-300")[1].body["status"] == "accepted"  # `one` verified v1
    v2 = world.b.seal(m.MANDATE, {"cwt": world.mandate(world.b, 2, tight)}, T)
    assert other.handle(v2, world.b.kid, T) == []
    _, answer = world.buy(world.b, "BEANS-1KG", mandate_version=2)
    assert answer.body["reason"] == "over-budget"  # judged under v2, not the v1 in memory
    register(other.store, world.b.signer.public_key, Ed25519Signer.generate().public_key, T)
    _, answer = world.buy(world.b, "BEANS-1KG", mandate_version=2)
    assert answer.body["reason"] == "no-mandate"  # a new owner: the old owner's mandate is gone


def test_sequence_numbers_go_on_across_workers_and_a_rolled_back_one_is_not_issued_again(world):
    """A transaction counts the vendor's sequence numbers in memory and keeps the count once, at
    its commit: another worker goes on after it, a savepoint rolled back loses its number, and a
    transaction rolled back keeps nothing. Order rows are counted on from the highest the same
    way, and the next transaction starts from the highest row kept."""
    store, other = world.service.store, world.new_service().store
    with store.transaction():
        first = [store.next_seq() for _ in range(3)]
        with pytest.raises(RuntimeError), store.savepoint():
            lost = store.next_seq()
            raise RuntimeError("a bug")
        after = store.next_seq()
        rows = [store.next_order_row() for _ in range(2)]
    with other.transaction():
        theirs = other.next_seq()
        assert other.next_order_row() == rows[0]  # nothing was kept under those rows
    with pytest.raises(RuntimeError), store.transaction():
        undone = store.next_seq()
        raise RuntimeError("a bug")
    assert first == [first[0], first[0] + 1, first[0] + 2]
    assert (lost, after, theirs) == (first[0] + 3, first[0] + 4, first[0] + 5)
    assert undone == store.next_seq() == first[0] + 6 and other.next_seq() == first[0] + 7
    assert rows[1] == rows[0] + 1
    world.buy(world.a, "WF-300")
    with other.transaction():
        assert other.next_order_row() == rows[0] + 1  # after the row the order was kept under


class _Recording:
    """The vendor's signer, noting for each signature whether a transaction was open (`inside`
    holds an entry while one is)."""

    def __init__(self, signer, inside):
        self.kid, self.alg, self._signer, self._inside = signer.kid, signer.alg, signer, inside
        self.signed = []

    def sign(self, data):
        self.signed.append(bool(self._inside))
        return self._signer.sign(data)


def test_answers_are_signed_after_the_commit_and_again_to_the_same_bytes(world, monkeypatch):
    """An answer is kept unsigned (numbered, checked and encoded) and signed once its
    transaction is committed, the write lock released; a redelivery signs the answer kept to
    the very bytes sent the first time. An answer kept signed, as a vendor kept them before it
    signed after the commit, goes again as it is, not signed twice."""
    service, store = world.service, world.service.store
    inside, transaction = [], store.transaction

    @contextlib.contextmanager
    def tracked():
        with transaction() as kept:
            inside.append(True)
            try:
                yield kept
            finally:
                inside.pop()

    monkeypatch.setattr(store, "transaction", tracked)
    service.signer = _Recording(service.signer, inside)
    msg_id = os.urandom(16)
    first = world.a.seal(m.QUOTE_REQUEST, WF, T, msg_id=msg_id)
    answers = service.handle(first, world.a.kid, T)
    assert service.handle(first, world.a.kid, T) == answers
    assert service.signer.signed == [False, False]  # signed twice, both after the commit
    [offer] = world.a.receive(answers, T)
    assert offer.type == m.OFFER and offer.re == msg_id
    with transaction():
        store.save_replies(world.a.kid, msg_id, [answers[0][1]], T)  # kept signed
    assert service.handle(first, world.a.kid, T) == answers
    assert len(service.signer.signed) == 2


def test_uplinks_are_acknowledged_in_the_order_they_came_once_kept_and_answered():
    acknowledged = []
    line = AckLine(acknowledged.append)
    first, second, third = (line.arrived(delivery) for delivery in ("1st", "2nd", "3rd"))
    third.handled = True
    assert line.release() == 0 and acknowledged == []  # the first is not handled yet
    answer = Ack()
    first.acks, first.handled = [answer], True
    assert line.release() == 0  # handled, but the broker has not taken its answer
    answer._answer([0])
    assert line.release() == 1 and acknowledged == ["1st"]
    second.handled = True
    assert line.release() == 2 and acknowledged == ["1st", "2nd", "3rd"] and len(line) == 0


def test_a_batch_is_taken_from_the_uplinks_in_turn():
    uplinks = FairQueue()
    for topic, payload in (("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1), ("c", 2)):
        uplinks.put(topic, payload)
    assert uplinks.take(4) == [("a", 1), ("b", 1), ("c", 1), ("a", 2)]
    assert uplinks.take(4) == [("c", 2), ("a", 3)]
    with pytest.raises(queue.Empty):
        uplinks.take(4, timeout=0.01)
