"""The ledger under arbitrary interleavings (hypothesis, stateful): whatever the order of
reservations, commits, releases, prunes, restarts and clock steps (orders settling as they age),
the reserved plus committed spend in any budget period never exceeds the budget, nor the orders
the recurrence cap."""

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from thingsdk import codec
from thingsdk.core import restore
from thingsdk.core.ledger import MAX_TIME, Ledger, LedgerError, month_start

DAY = 86400
T0 = 1767225600  # 2026-01-01


@given(st.integers(0, MAX_TIME))
def test_month_start_agrees_with_datetime(t):
    d = datetime.fromtimestamp(t, UTC)
    assert month_start(t) == int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


windows = st.one_of(st.sampled_from([DAY, 7 * DAY, 366 * DAY]), st.integers(1, 40 * DAY))
limits_strategy = st.lists(st.one_of(
    st.builds(lambda cur, cap: ["budget", {"cur": cur, "max": cap, "period": "month"}],
              st.sampled_from(["EUR", "USD"]), st.integers(0, 10000)),
    st.builds(lambda cap, w: ["budget", {"cur": "EUR", "max": cap, "period": "rolling",
                                         "window": w}],
              st.integers(0, 10000), windows),
    st.builds(lambda cap: ["recurrence", {"max": cap, "period": "month"}], st.integers(1, 6)),
    st.builds(lambda cap, w: ["recurrence", {"max": cap, "period": "rolling", "window": w}],
              st.integers(1, 6), windows),
), max_size=4)


class LedgerMachine(RuleBasedStateMachine):
    """Many needs reserving, committing and releasing at once, with a clock that may step back."""

    @initialize(limits=limits_strategy)
    def start(self, limits):
        self.limits = limits
        self.ledger = Ledger(limits)
        self.now = T0
        self.clock = 0  # the ledger's: never backward
        self.placed = {}  # order id -> [time, amount, currency] while it counts
        self.pruned = []  # entries the ledger dropped, whose ids came back: they still count

    @rule(step=st.one_of(st.sampled_from([-1, 1, DAY - 1, DAY, 7 * DAY - 1, 7 * DAY, 36 * DAY]),
                         st.integers(-3 * DAY, 20 * DAY)))
    def tick(self, step):
        self.now = max(0, self.now + step)

    @rule(n=st.integers(0, 11), amount=st.sampled_from([0, 1, 999, 2500, 4000]),
          currency=st.sampled_from(["EUR", "EUR", "USD"]))
    def reserve(self, n, amount, currency):
        order_id = bytes([n]) * 16
        before = self.ledger.state_of(order_id)
        result = self.ledger.reserve(order_id, amount, currency, self.now)
        self.clock = max(self.clock, self.now)
        if before is not None:
            known = self.placed[order_id]
            same = known[1:] == [amount, currency]
            assert result == ("duplicate" if same else "conflict")
        elif result == "reserved":
            if order_id in self.placed:
                self.pruned.append(self.placed[order_id])
            self.placed[order_id] = [self.clock, amount, currency]
        else:
            assert result in ("over-budget", "over-recurrence", "wrong-currency", "full")

    @rule(n=st.integers(0, 11))
    def commit(self, n):
        order_id = bytes([n]) * 16
        known = self.ledger.state_of(order_id) is not None
        assert self.ledger.commit(order_id) == known
        assert not known or self.ledger.state_of(order_id) == "committed"

    @rule(n=st.integers(0, 11))
    def release(self, n):
        order_id = bytes([n]) * 16
        known = self.ledger.state_of(order_id) is not None
        assert self.ledger.release(order_id) == known
        assert self.ledger.state_of(order_id) is None
        if known:
            del self.placed[order_id]

    @rule()
    def prune(self):
        self.ledger.prune(self.now)
        self.clock = max(self.clock, self.now)

    @rule()
    def restart(self):
        state = codec.loads(codec.dumps(self.ledger.to_state()))
        self.ledger = restore.ledger(state, self.limits)
        assert self.ledger.to_state() == state

    @invariant()
    def caps_hold_in_every_period(self):
        assert_caps(self.limits, list(self.placed.values()) + self.pruned)


def assert_caps(limits, entries):
    """No budget or recurrence period holds more than its cap of the [time, amount, currency]
    entries (a rolling window's worst position ends at an entry)."""
    for kind, params in limits:
        for t, _, _ in entries:
            if params["period"] == "month":
                same = [e for e in entries if month_start(e[0]) == month_start(t)]
            else:
                same = [e for e in entries if t - params["window"] < e[0] <= t]
            if kind == "recurrence":
                assert len(same) <= params["max"]
            else:
                assert sum(e[1] for e in same if e[2] == params["cur"]) <= params["max"]
                assert not [e for e in same if e[2] != params["cur"]]


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


state_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**40) | st.binary(max_size=17) |
    st.sampled_from(["v", "latest", "entries", "EUR", "reserved", "committed"]),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(inner.filter(
        lambda k: not isinstance(k, (list, dict))), inner, max_size=4), max_leaves=30)


# Settled orders as bytes: well formed or not (a time or an amount out of range, a currency
# that is not three capitals, a length that is not a whole number of records).
settled_junk = st.one_of(st.binary(max_size=40), st.lists(st.tuples(
    st.integers(0, 2**40 - 1), st.integers(0, 2**40 - 1),
    st.sampled_from([b"EUR", b"USD", b"eur", b"\xff\xfeE"])), max_size=3).map(
        lambda orders: b"".join(t.to_bytes(5, "big") + amount.to_bytes(5, "big") + letters
                                for t, amount, letters in orders)))


def _state(version, latest, entries, settled):
    state = {"v": version, "latest": latest, "entries": entries}
    if version == 2:
        state["settled"] = settled
    return state


@given(st.one_of(state_junk, st.builds(_state, st.sampled_from([1, 2]), st.integers(-1, 2**40),
                                       st.lists(st.lists(state_junk, max_size=6), max_size=3),
                                       st.one_of(settled_junk, state_junk))))
def test_malformed_state_is_refused_with_a_ledger_error(state):
    try:
        ledger = restore.ledger(state)
    except LedgerError:
        return
    assert ledger.to_state() == dict(state, v=2, settled=state.get("settled", b""))


@given(st.sampled_from([DAY, 7 * DAY]), st.sampled_from(["budget", "recurrence"]),
       st.lists(st.tuples(st.sampled_from([0, 1, DAY - 1, DAY, 7 * DAY - 1, 7 * DAY, 8 * DAY]),
                          st.sampled_from([1000, 2500, 4000])), max_size=12))
def test_rolling_windows_hold_at_their_edges(window, kind, steps):
    params = {"period": "rolling", "window": window, "max": 2}
    if kind == "budget":
        params.update(cur="EUR", max=5000)
    ledger, now, placed = Ledger([[kind, params]]), T0, []
    for n, (step, amount) in enumerate(steps):
        now += step
        if ledger.reserve(bytes([n]) * 16, amount, "EUR", now) == "reserved":
            placed.append([now, amount, "EUR"])
    assert_caps([[kind, params]], placed)
