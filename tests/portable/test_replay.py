from thingsdk.core.replay import (
    ACCEPT, DUPLICATE, REJECT, NEW, SEEN, TOO_OLD, MAX_SEQ,
    SequenceWindow, ReplayGuard, SequenceCounter, StateError, SequenceExhausted, StoredSequence,
)
from thingsdk.core import cbor, restore
from check import raises

KID = b"\x01" * 8
NOW = 1700000000


def mid(n):
    return bytes([n % 256]) * 16


def deliver(guard, seq, n, body=b"", ts=NOW, exp=NOW + 60, now=NOW, kid=KID):
    """Check a message and, if accepted, record it; return the verdict."""
    data = b"%d|%d|" % (seq, n) + body
    verdict = guard.check(kid, seq, mid(n), ts, exp, data, now)
    if verdict[0] == ACCEPT:
        assert guard.record(kid, seq, mid(n), data)
    return verdict


def test_window_slides_and_remembers():
    w = SequenceWindow(8)
    assert w.status(0) == NEW
    w.mark(5)
    assert (w.highest, w.bitmap) == (5, 1)
    assert w.status(5) == SEEN and w.status(4) == NEW and w.status(6) == NEW
    w.mark(3)
    assert w.status(3) == SEEN and w.bitmap == 0b101
    w.mark(12)
    assert w.status(5) == SEEN  # offset 7: the last slot of the window
    assert w.status(4) == TOO_OLD and w.status(3) == TOO_OLD
    w.mark(100)
    assert w.bitmap == 1 and w.status(93) == NEW and w.status(92) == TOO_OLD
    w.mark(MAX_SEQ)  # a huge jump must not build a huge bitmap
    assert (w.highest, w.bitmap) == (MAX_SEQ, 1)
    assert "not new" in str(raises(StateError, w.mark, 100))
    raises(StateError, w.mark, MAX_SEQ + 1)


def test_window_validates_its_state():
    raises(StateError, SequenceWindow, 0)
    raises(StateError, SequenceWindow, 8, -1, 1)  # nothing seen yet, yet a bit set
    raises(StateError, SequenceWindow, 8, 10, 2)  # highest itself not marked
    raises(StateError, SequenceWindow, 8, 10, 1 << 8)  # bit beyond the window
    raises(StateError, SequenceWindow, 8, 2, 0b1001)  # bit for seq -1
    assert SequenceWindow(8, 10, 0b11).status(9) == SEEN


def test_accept_duplicate_and_replay():
    g = ReplayGuard()
    assert deliver(g, 1, 1) == (ACCEPT, None)
    assert deliver(g, 1, 1) == (DUPLICATE, None)  # QoS 1 redelivery of the same bytes
    assert deliver(g, 1, 2) == (REJECT, "replayed")  # same seq, another id
    assert deliver(g, 2, 1) == (REJECT, "id-conflict")  # same id, other bytes
    assert deliver(g, 2, 2) == (ACCEPT, None)
    assert g.rejections["replayed"] == 1 and g.rejections["id-conflict"] == 1
    assert g.record(KID, 1, mid(1), b"1|1|") is False  # recording a duplicate changes nothing
    raises(StateError, g.record, KID, 1, mid(9), b"other")


def test_duplicate_survives_the_window_but_replay_does_not():
    g = ReplayGuard(window=4)
    deliver(g, 1, 1)
    deliver(g, 10, 2)
    assert deliver(g, 1, 1) == (DUPLICATE, None)
    assert deliver(g, 1, 3) == (REJECT, "too-old")
    assert deliver(g, 7, 4) == (ACCEPT, None)
    assert deliver(g, 6, 5) == (REJECT, "too-old")


def test_check_alone_changes_nothing():
    g = ReplayGuard()
    assert g.check(KID, 5, mid(5), NOW, NOW + 60, b"x", NOW) == (ACCEPT, None)
    assert g.check(KID, 5, mid(5), NOW, NOW + 60, b"x", NOW) == (ACCEPT, None)
    assert g.to_state()["senders"] == []


def test_freshness_boundaries():
    g = ReplayGuard(skew=300, max_lifetime=600)
    assert deliver(g, 1, 1, ts=NOW + 300, exp=NOW + 900) == (ACCEPT, None)
    assert deliver(g, 2, 2, ts=NOW + 301, exp=NOW + 900) == (REJECT, "from-future")
    assert deliver(g, 3, 3, ts=NOW - 10, exp=NOW) == (REJECT, "expired")
    assert deliver(g, 4, 4, ts=NOW - 10, exp=NOW + 1) == (ACCEPT, None)
    assert deliver(g, 5, 5, ts=NOW, exp=NOW + 601) == (REJECT, "lifetime-too-long")
    assert deliver(g, 6, 6, ts=NOW, exp=NOW + 600) == (ACCEPT, None)
    assert deliver(g, 7, 7, ts=NOW, exp=NOW) == (REJECT, "malformed")
    counts = g.rejections
    assert (counts["from-future"], counts["expired"], counts["lifetime-too-long"]) == (1, 1, 1)
    assert counts["malformed"] == 1 and counts["replayed"] == 0


def test_malformed_headers_are_counted_not_raised():
    g = ReplayGuard()
    bad = [
        (b"", 1, mid(1)), (KID, -1, mid(1)), (KID, MAX_SEQ + 1, mid(1)),
        (KID, 1, "text"), (KID, True, mid(1)), (b"k" * 65, 1, mid(1)),
    ]
    for kid, seq, message_id in bad:
        assert g.check(kid, seq, message_id, NOW, NOW + 60, b"x", NOW) == (REJECT, "malformed")
    assert g.rejections["malformed"] == len(bad)
    raises(StateError, g.check, KID, 1, mid(1), NOW, NOW + 60, b"x", None)


def test_senders_are_independent_and_bounded():
    g = ReplayGuard(max_senders=2, ids_per_sender=2)
    for n in range(3):
        assert deliver(g, 1, n, kid=bytes([n]) * 8) == (ACCEPT, None)
    kids = [entry[0] for entry in g.to_state()["senders"]]
    assert kids == [b"\x01" * 8, b"\x02" * 8]  # the oldest sender was forgotten
    for n in range(3, 6):
        deliver(g, n, n)
    ids = g.to_state()["senders"][-1][3]
    assert [entry[0] for entry in ids] == [mid(4), mid(5)]


def test_state_round_trip():
    g = ReplayGuard(window=16)
    for seq in (3, 9, 5):
        deliver(g, seq, seq)
    deliver(g, 9, 1)
    state = g.to_state()
    h = restore.replay_guard(cbor.loads(cbor.dumps(state)))
    assert h.to_state() == state and h.window == 16
    assert deliver(h, 5, 5) == (DUPLICATE, None)
    assert deliver(h, 4, 40) == (ACCEPT, None)
    assert deliver(h, 9, 41) == (REJECT, "replayed")
    assert h.rejections["replayed"] == 2


def test_malformed_state_is_refused():
    good = ReplayGuard().to_state()
    cases = [
        None, {}, dict(good, v=2), dict(good, window=0), dict(good, senders={}),
        dict(good, senders=[[KID, 5, 1]]), dict(good, senders=[[KID, 5, 2, []]]),
        dict(good, senders=[[KID, 5, 1, [[mid(1), b"short"]]]]),
        dict(good, senders=[[KID, 5, 1, []], [KID, 6, 1, []]]),
        dict(good, rejections={"bogus": 1}), dict(good, rejections={"expired": -1}),
    ]
    for state in cases:
        raises(StateError, restore.replay_guard, state)
    raises(StateError, restore.replay_guard, good, window=32)


def test_counter_reserves_blocks_and_skips_ahead():
    c = SequenceCounter(0, block=4)
    taken = [c.take() for _ in range(6)]
    assert taken == [(0, 4), (1, None), (2, None), (3, None), (4, 8), (5, None)]
    restarted = SequenceCounter(8, block=4)  # after a reboot: 6 and 7 are skipped
    assert restarted.take() == (8, 12)


def test_counter_stops_at_the_limit():
    c = SequenceCounter(MAX_SEQ - 1, block=64)
    assert c.take() == (MAX_SEQ - 1, MAX_SEQ + 1)
    assert c.take() == (MAX_SEQ, None)
    raises(SequenceExhausted, c.take)
    raises(SequenceExhausted, SequenceCounter(MAX_SEQ + 1).take)
    raises(StateError, SequenceCounter, MAX_SEQ + 2)
    raises(StateError, SequenceCounter, -1)
    raises(StateError, SequenceCounter, 0, 0)


class _Kept(StoredSequence):
    """A StoredSequence over a list of the checkpoints written; `fail` makes the next save fail."""

    def __init__(self, start=0, block=4):
        self.saved, self.fail = [start], False
        super().__init__(block)

    def load(self):
        return self.saved[-1]

    def save(self, checkpoint):
        if self.fail:
            self.fail = False
            raise OSError("flash full")
        self.saved.append(checkpoint)


def test_a_sequence_skips_past_what_a_receiver_saw_and_never_goes_back():
    seq = _Kept()
    assert [seq.take() for _ in range(3)] == [0, 1, 2]
    assert seq.skip_past(1000)
    assert seq.saved[-1] == 1001  # stored before any number above it is issued
    assert seq.take() == 1001 and seq.saved[-1] == 1005
    assert not seq.skip_past(500)  # an older floor changes nothing
    assert not seq.skip_past(1001, gap=100)  # nor one this sender is above already
    assert seq.take() == 1002
    seq.fail = True
    raises(OSError, seq.skip_past, 5000)
    assert seq.take() == 1005  # what is stored counts: numbers past the old block only
    assert seq.skip_past(1006, gap=100) and seq.take() == 1107  # past the floor and the gap
    raises(StateError, seq.skip_past, MAX_SEQ)
    raises(StateError, seq.skip_past, MAX_SEQ - 10, gap=10)


def test_a_guard_tells_the_highest_seen():
    guard = ReplayGuard()
    assert guard.highest(KID) == -1
    deliver(guard, 7, 1)
    deliver(guard, 3, 2)
    assert guard.highest(KID) == 7
