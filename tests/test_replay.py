"""Replay guard and sequence counter, checked against a plain reference model with hypothesis."""

import pytest
from hypothesis import example, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from thingsdk import codec
from thingsdk.core import restore
from thingsdk.core.replay import (
    ACCEPT, DUPLICATE, REJECT, MAX_SEQ, REASONS, ReplayGuard, SequenceCounter, StateError,
)

NOW = 1_700_000_000
KIDS = [bytes([n]) * 8 for n in range(3)]


def message_id(n):
    return n.to_bytes(16, "big")


def body(seq, n, variant):
    """Stand-in for the signed bytes: they differ whenever the header or payload does."""
    return b"%d|%d|%d" % (seq, n, variant)


class Model:
    """What the guard should answer, kept with sets and lists instead of bitmaps and stamps."""

    def __init__(self, window, max_senders, ids_per_sender):
        self.window, self.max_senders, self.ids_per_sender = window, max_senders, ids_per_sender
        self.senders = {}  # kid -> {"seen": set of seq, "ids": [(mid, data)], oldest first}
        self.order = []  # kids, least recently recorded first

    def cached(self, kid, mid):
        sender = self.senders.get(kid)
        return next((d for m, d in sender["ids"] if m == mid), None) if sender else None

    def verdict(self, kid, seq, mid, data):
        known = self.cached(kid, mid)
        if known is not None:
            return (DUPLICATE, None) if known == data else (REJECT, "id-conflict")
        seen = self.senders[kid]["seen"] if kid in self.senders else set()
        if seen and max(seen) - seq >= self.window:
            return REJECT, "too-old"
        return (REJECT, "replayed") if seq in seen else (ACCEPT, None)

    def record(self, kid, seq, mid, data):
        if kid in self.senders:
            self.order.remove(kid)
        else:
            if len(self.senders) == self.max_senders:
                del self.senders[self.order.pop(0)]
            self.senders[kid] = {"seen": set(), "ids": []}
        self.order.append(kid)
        sender = self.senders[kid]
        sender["seen"].add(seq)
        sender["ids"] = (sender["ids"] + [(mid, data)])[-self.ids_per_sender:]


class GuardMachine(RuleBasedStateMachine):
    """Deliveries, redeliveries, crashes between check and record, and state reloads."""

    options = dict(window=8, max_senders=3, ids_per_sender=4)

    def __init__(self):
        super().__init__()
        self.guard = ReplayGuard(**self.options)
        self.model = Model(self.options["window"], self.options["max_senders"],
                           self.options["ids_per_sender"])
        self.accepted = []  # (kid, seq, mid, data) in the order they were recorded
        self.expected_rejections = dict.fromkeys(REASONS, 0)

    def check(self, kid, seq, mid, data):
        verdict = self.guard.check(kid, seq, mid, NOW, NOW + 60, data, NOW)
        assert verdict == self.model.verdict(kid, seq, mid, data)
        if verdict[0] == REJECT:
            self.expected_rejections[verdict[1]] += 1
        return verdict

    @rule(k=st.sampled_from(KIDS), seq=st.integers(0, 40), n=st.integers(0, 12),
          variant=st.integers(0, 1), crash=st.booleans())
    def deliver(self, k, seq, n, variant, crash):
        mid, data = message_id(n), body(seq, n, variant)
        if self.check(k, seq, mid, data)[0] == ACCEPT and not crash:
            assert self.guard.record(k, seq, mid, data)
            self.model.record(k, seq, mid, data)
            self.accepted.append((k, seq, mid, data))

    @precondition(lambda self: self.accepted)
    @rule(pick=st.integers(0, 10**6))
    def redeliver(self, pick):
        kid, seq, mid, data = self.accepted[pick % len(self.accepted)]
        verdict = self.check(kid, seq, mid, data)  # which also compares with the model
        if self.model.cached(kid, mid) == data:
            assert verdict == (DUPLICATE, None)

    @rule()
    def reload(self):
        state = codec.loads(codec.dumps(self.guard.to_state()))
        self.guard = restore.replay_guard(state, **self.options)
        assert self.guard.to_state() == state

    @invariant()
    def rejections_are_counted(self):
        assert self.guard.rejections == self.expected_rejections

    @invariant()
    def memory_is_bounded(self):
        senders = self.guard.to_state()["senders"]
        assert len(senders) <= self.options["max_senders"]
        assert all(len(ids) <= self.options["ids_per_sender"] for *_, ids in senders)


class EnoughSendersMachine(GuardMachine):
    """With every sender tracked, no (sender, seq) is ever accepted twice."""

    @invariant()
    def no_seq_accepted_twice(self):
        pairs = [(kid, seq) for kid, seq, _, _ in self.accepted]
        assert len(pairs) == len(set(pairs))


class EvictingMachine(GuardMachine):
    """Fewer slots than senders and ids: eviction must match the model's oldest-first rule."""

    options = dict(window=4, max_senders=2, ids_per_sender=2)


TestEnoughSenders = EnoughSendersMachine.TestCase
TestEnoughSenders.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestEvicting = EvictingMachine.TestCase
TestEvicting.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


@given(seqs=st.lists(st.integers(0, 200), min_size=1, max_size=60), probe=st.integers(0, 200))
def test_seq_below_the_window_is_refused(seqs, probe):
    guard = ReplayGuard(window=16)
    for n, seq in enumerate(seqs):
        if guard.check(KIDS[0], seq, message_id(n), NOW, NOW + 60, b"%d" % n, NOW)[0] == ACCEPT:
            guard.record(KIDS[0], seq, message_id(n), b"%d" % n)
    verdict = guard.check(KIDS[0], probe, message_id(999), NOW, NOW + 60, b"new", NOW)
    if max(seqs) - probe >= 16:
        assert verdict == (REJECT, "too-old")
    else:
        assert verdict[0] == (REJECT if probe in seqs else ACCEPT)


@example(ts=NOW - 10, lifetime=10, skew=0, max_lifetime=10)  # exp == now
@example(ts=NOW + 5, lifetime=10, skew=5, max_lifetime=10)  # at the edge of skew and lifetime
@given(ts=st.integers(NOW - 2000, NOW + 2000), lifetime=st.integers(-5, 2000),
       skew=st.integers(0, 600), max_lifetime=st.integers(1, 1500))
def test_freshness_rules(ts, lifetime, skew, max_lifetime):
    guard = ReplayGuard(skew=skew, max_lifetime=max_lifetime)
    exp = ts + lifetime
    verdict = guard.check(KIDS[0], 1, message_id(1), ts, exp, b"m", NOW)
    if exp <= ts:
        expected = (REJECT, "malformed")
    elif ts > NOW + skew:
        expected = (REJECT, "from-future")
    elif NOW >= exp:
        expected = (REJECT, "expired")
    elif lifetime > max_lifetime:
        expected = (REJECT, "lifetime-too-long")
    else:
        expected = (ACCEPT, None)
    assert verdict == expected
    assert sum(guard.rejections.values()) == (expected[0] == REJECT)


def test_duplicate_is_answered_even_when_stale():
    guard = ReplayGuard(window=4)
    guard.record(KIDS[0], 1, message_id(1), b"first")
    guard.record(KIDS[0], 100, message_id(2), b"later")
    verdict = guard.check(KIDS[0], 1, message_id(1), NOW, NOW + 60, b"first", NOW + 3600)
    assert verdict == (DUPLICATE, None)
    assert guard.rejections == dict.fromkeys(REASONS, 0)


def test_flood_of_senders_and_ids_stays_bounded():
    guard = ReplayGuard(max_senders=16, ids_per_sender=8)
    for n in range(2000):
        kid = (n % 100).to_bytes(8, "big")
        guard.record(kid, n, message_id(n), b"%d" % n)
    for n in range(500):
        guard.record(KIDS[0], 10_000 + n, message_id(10_000 + n), b"%d" % n)
    senders = guard.to_state()["senders"]
    assert len(senders) == 16 and all(len(ids) <= 8 for *_, ids in senders)
    assert senders[-1][0] == KIDS[0] and len(senders[-1][3]) == 8


def test_state_survives_cbor_and_bignum_windows():
    guard = ReplayGuard(window=200)
    for seq in (0, 150, 199, 3):
        guard.record(KIDS[1], seq, message_id(seq), b"%d" % seq)
    state = codec.loads(codec.dumps(guard.to_state()))
    assert state["senders"][0][2] > 2**64  # the bitmap needs a bignum
    again = restore.replay_guard(state)
    verdict = again.check(KIDS[1], 150, message_id(7), NOW, NOW + 60, b"x", NOW)
    assert verdict == (REJECT, "replayed")
    assert again.check(KIDS[1], 2, message_id(7), NOW, NOW + 60, b"x", NOW) == (ACCEPT, None)


def test_state_beyond_new_bounds_keeps_the_newest():
    guard = ReplayGuard(max_senders=4, ids_per_sender=4)
    for n in range(4):
        for seq in range(4):
            guard.record(KIDS[0][:7] + bytes([n]), seq, message_id(seq), b"%d" % seq)
    smaller = restore.replay_guard(guard.to_state(), max_senders=2, ids_per_sender=1)
    senders = smaller.to_state()["senders"]
    assert [s[0][-1] for s in senders] == [2, 3]
    assert [[entry[0] for entry in ids] for *_, ids in senders] == [[message_id(3)]] * 2


@pytest.mark.parametrize("state", [
    [], {"v": 1}, {"v": 1, "window": 64, "senders": [], "rejections": {}, "extra": 0},
    {"v": 1, "window": 64, "senders": [[b"k", MAX_SEQ + 1, 1, []]], "rejections": {}},
    {"v": 1, "window": 64, "senders": [[b"k", 3, 1, [[b"", b"\0" * 32]]]], "rejections": {}},
    {"v": 1, "window": 64, "senders": [[b"k", 3, 1, [[b"m", b"\0" * 32], [b"m", b"\0" * 32]]]],
     "rejections": {}},
    {"v": 1, "window": 64, "senders": [], "rejections": {"expired": True}},
])
def test_malformed_state_raises_state_error(state):
    with pytest.raises(StateError):
        restore.replay_guard(state)


@given(steps=st.lists(st.sampled_from(["take", "restart"]), max_size=200),
       block=st.integers(1, 10))
def test_counter_never_reissues_across_restarts(steps, block):
    persisted = 0
    counter = SequenceCounter(persisted, block)
    issued, writes = [], 0
    for step in steps:
        if step == "restart":
            counter = SequenceCounter(persisted, block)
            continue
        seq, checkpoint = counter.take()
        if checkpoint is not None:
            persisted = checkpoint
        assert seq < persisted  # used only once reserved on "flash"
        issued.append(seq)
        writes += checkpoint is not None
    assert issued == sorted(set(issued))
    assert writes <= len(issued) // block + steps.count("restart") + 1  # not one write per seq
