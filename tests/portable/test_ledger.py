# Ledger scenarios on the portable core: CPython and MicroPython alike.
from check import raises
from samples import TS

from thingsdk.core import restore
from thingsdk.core.ledger import (MAX_ENTRIES, SETTLE_AFTER, Ledger, LedgerError, month_start,
                                  settled_record)

DAY = 86400
NOW = TS + 10 * DAY  # 2026-01-11
MONTHLY = ["budget", {"cur": "EUR", "max": 5000, "period": "month"}]
WEEKLY_TWICE = ["recurrence", {"max": 2, "period": "rolling", "window": 7 * DAY}]
YEARLY = ["budget", {"cur": "EUR", "max": 10000, "period": "rolling", "window": 366 * DAY}]


def oid(n):
    return bytes([n]) * 16


def test_month_start_follows_the_utc_calendar():
    assert month_start(0) == 0
    assert month_start(TS + 10 * DAY + 5) == TS  # 2026-01-01
    assert month_start(TS - 1) == TS - 31 * DAY  # 2025-12-01
    assert month_start(951782400) == 949363200  # 2000-02-29 -> 2000-02-01 (leap century)
    assert month_start(951868800) == 951868800  # 2000-03-01
    assert month_start(4107542399) == 4105123200  # 2100-02-28 23:59:59 -> 2100-02-01
    assert month_start(253402300799) == 253399622400  # 9999-12-31 23:59:59 -> 9999-12-01


def test_reservations_count_like_spend_and_release_frees_them():
    ledger = Ledger([MONTHLY])
    assert ledger.reserve(oid(1), 3000, "EUR", NOW) == "reserved"
    assert ledger.reserve(oid(2), 2001, "EUR", NOW) == "over-budget"
    assert ledger.reserve(oid(2), 2000, "EUR", NOW) == "reserved"
    assert ledger.commit(oid(1)) and ledger.state_of(oid(1)) == "committed"
    assert ledger.usage(MONTHLY[1], NOW) == (2, 3000, 2000)
    assert ledger.reserve(oid(3), 1, "EUR", NOW) == "over-budget"
    assert ledger.release(oid(2)) and not ledger.release(oid(2))
    assert ledger.reserve(oid(3), 2000, "EUR", NOW) == "reserved"
    assert not ledger.commit(oid(9)) and ledger.state_of(oid(9)) is None


def test_the_same_order_id_is_idempotent_or_a_conflict():
    ledger = Ledger([MONTHLY])
    assert ledger.reserve(oid(1), 3000, "EUR", NOW) == "reserved"
    assert ledger.reserve(oid(1), 3000, "EUR", NOW + 60) == "duplicate"
    assert ledger.reserve(oid(1), 3001, "EUR", NOW) == "conflict"
    assert ledger.reserve(oid(1), 3000, "USD", NOW) == "conflict"
    assert ledger.usage(MONTHLY[1], NOW) == (1, 0, 3000)


def test_budgets_are_per_currency_and_refuse_others():
    ledger = Ledger([MONTHLY])
    assert ledger.reserve(oid(1), 100, "USD", NOW) == "wrong-currency"
    assert Ledger().reserve(oid(1), 100, "USD", NOW) == "reserved"


def test_a_new_month_starts_a_new_budget():
    ledger = Ledger([MONTHLY])
    assert ledger.reserve(oid(1), 5000, "EUR", TS + 31 * DAY - 1) == "reserved"
    assert ledger.reserve(oid(2), 1, "EUR", TS + 31 * DAY - 1) == "over-budget"
    assert ledger.reserve(oid(2), 5000, "EUR", TS + 31 * DAY) == "reserved"


def test_recurrence_counts_orders_in_a_rolling_window():
    ledger = Ledger([WEEKLY_TWICE])
    assert ledger.reserve(oid(1), 0, "EUR", NOW) == "reserved"
    assert ledger.reserve(oid(2), 0, "EUR", NOW + DAY) == "reserved"
    assert ledger.reserve(oid(3), 0, "EUR", NOW + 7 * DAY - 1) == "over-recurrence"
    assert ledger.reserve(oid(3), 0, "EUR", NOW + 7 * DAY) == "reserved"  # the first fell out


def test_the_clock_never_runs_backward():
    ledger = Ledger([WEEKLY_TWICE])
    ledger.reserve(oid(1), 0, "EUR", NOW)
    ledger.reserve(oid(2), 0, "EUR", NOW)
    assert ledger.reserve(oid(3), 0, "EUR", NOW - 30 * DAY) == "over-recurrence"
    assert ledger.usage(WEEKLY_TWICE[1], NOW - 30 * DAY)[0] == 2


def test_old_entries_are_pruned_to_the_longest_period():
    ledger = Ledger([MONTHLY, WEEKLY_TWICE])
    ledger.reserve(oid(1), 10, "EUR", TS - DAY)  # last month
    ledger.reserve(oid(2), 10, "EUR", TS + DAY)
    ledger.prune(NOW)
    assert ledger.state_of(oid(1)) is None and ledger.state_of(oid(2)) == "reserved"
    unlimited = Ledger()
    unlimited.reserve(oid(1), 10, "EUR", NOW)
    unlimited.reserve(oid(2), 10, "EUR", NOW + 1)
    assert [e[0] for e in unlimited.to_state()["entries"]] == [oid(2)]


def test_memory_is_bounded():
    ledger = Ledger([["recurrence", {"max": 1000, "period": "month"}]])
    for n in range(MAX_ENTRIES):
        assert ledger.reserve(n.to_bytes(2, "big"), 1, "EUR", NOW) == "reserved"
    assert ledger.reserve(b"one more", 1, "EUR", NOW) == "full"


def test_state_round_trips_and_malformed_state_is_refused():
    ledger = Ledger([MONTHLY])
    ledger.reserve(oid(2), 2000, "EUR", NOW + 5)
    ledger.reserve(oid(1), 1000, "EUR", NOW)
    ledger.commit(oid(2))
    state = ledger.to_state()
    assert state == {"v": 2, "latest": NOW + 5, "entries": [
        [oid(1), NOW + 5, 1000, "EUR", "reserved"], [oid(2), NOW + 5, 2000, "EUR", "committed"]],
        "settled": b""}
    again = restore.ledger(state, [MONTHLY])
    assert again.to_state() == state and again.reserve(oid(3), 2001, "EUR", NOW) == "over-budget"
    older = {"v": 1, "latest": state["latest"], "entries": state["entries"]}  # none settled
    assert restore.ledger(older, [MONTHLY]).to_state() == state
    good = [oid(1), NOW, 1000, "EUR", "reserved"]
    settled = settled_record(NOW, 1000, "EUR")
    for bad in ([], None, {"v": 2, "latest": 0, "entries": []},
                {"v": 3, "latest": 0, "entries": [], "settled": b""},
                {"v": 1, "latest": 0, "entries": [], "settled": b""},
                {"v": 2, "latest": NOW, "entries": [], "settled": settled[:12]},
                {"v": 2, "latest": NOW, "entries": [], "settled": [settled]},
                {"v": 2, "latest": NOW - 1, "entries": [], "settled": settled},
                {"v": 2, "latest": NOW, "entries": [], "settled": settled[:10] + b"eur"},
                {"v": 2, "latest": NOW, "entries": [], "settled": settled[:10] + b"\xff\xfeE"},
                {"v": 2, "latest": NOW, "entries": [],
                 "settled": settled[:5] + (10 ** 12 + 1).to_bytes(5, "big") + b"EUR"},
                {"v": 2, "latest": NOW, "entries": [], "settled": settled * (MAX_ENTRIES + 1)},
                {"v": 1, "latest": NOW, "entries": [], "extra": 1},
                {"v": 1, "latest": NOW, "entries": [good[:4]]},
                {"v": 1, "latest": NOW, "entries": [good, good]},
                {"v": 1, "latest": NOW - 1, "entries": [good]},
                {"v": 1, "latest": NOW, "entries": [[oid(1), NOW, -1, "EUR", "reserved"]]},
                {"v": 1, "latest": NOW, "entries": [[oid(1), NOW, 1, "eur", "reserved"]]},
                {"v": 1, "latest": NOW, "entries": [[oid(1), NOW, 1, "EUR", "spent"]]},
                {"v": 1, "latest": NOW, "entries": [["id", NOW, 1, "EUR", "reserved"]]},
                {"v": 1, "latest": True, "entries": []}):
        raises(LedgerError, restore.ledger, bad)


def test_bad_arguments_are_refused():
    ledger = Ledger()
    raises(LedgerError, ledger.reserve, oid(1), 1.5, "EUR", NOW)
    raises(LedgerError, ledger.reserve, oid(1), 1, "EUR", -1)
    raises(LedgerError, ledger.reserve, "order", 1, "EUR", NOW)
    raises(LedgerError, Ledger, [["vendors", {"kids": []}]])


def test_committed_orders_settle_without_their_ids_and_still_count():
    """A year's budget keeps a year of orders: those committed more than SETTLE_AFTER ago are
    kept as 13 bytes each, without their id, and count as before until their period ends."""
    ledger = Ledger([YEARLY])
    assert ledger.reserve(oid(1), 3000, "EUR", NOW) == "reserved" and ledger.commit(oid(1))
    assert ledger.reserve(oid(2), 2000, "EUR", NOW + DAY) == "reserved"  # never committed
    later = NOW + SETTLE_AFTER + DAY
    assert ledger.reserve(oid(3), 1000, "EUR", later) == "reserved"  # pruned and settled
    state = ledger.to_state()
    assert state["settled"] == settled_record(NOW, 3000, "EUR")
    assert [e[0] for e in state["entries"]] == [oid(2), oid(3)]
    assert ledger.state_of(oid(1)) is None and not ledger.release(oid(1))
    assert ledger.usage(YEARLY[1], later) == (3, 3000, 3000)
    assert ledger.reserve(oid(4), 4001, "EUR", later) == "over-budget"
    again = restore.ledger(state, [YEARLY])
    assert again.to_state() == state and again.usage(YEARLY[1], later) == (3, 3000, 3000)
    assert ledger.reserve(oid(4), 4000, "EUR", later) == "reserved"
    assert ledger.commit(oid(3)) and ledger.commit(oid(4))
    ledger.prune(later + SETTLE_AFTER)  # settled oldest first, then by id
    assert ledger.to_state()["settled"] == settled_record(NOW, 3000, "EUR") + settled_record(
        later, 1000, "EUR") + settled_record(later, 4000, "EUR")
    assert [e[0] for e in ledger.to_state()["entries"]] == [oid(2)]  # reserved: kept whole
    assert ledger.usage(YEARLY[1], later + SETTLE_AFTER) == (4, 8000, 2000)
    year_on = NOW + 366 * DAY  # the first order's period is over: it counts no more
    ledger.prune(year_on)
    assert ledger.usage(YEARLY[1], year_on) == (3, 5000, 2000)
    assert len(ledger.to_state()["settled"]) == 2 * 13


def test_settled_orders_count_against_the_memory_bound():
    ledger = Ledger([["recurrence", {"max": 1000, "period": "rolling", "window": 366 * DAY}]])
    for n in range(MAX_ENTRIES):
        assert ledger.reserve(n.to_bytes(2, "big"), 1, "EUR", NOW + n * 3600) == "reserved"
        ledger.commit(n.to_bytes(2, "big"))
    later = NOW + SETTLE_AFTER + 30 * DAY
    assert ledger.reserve(b"one more", 1, "EUR", later) == "full"
    assert len(ledger.to_state()["settled"]) == 13 * MAX_ENTRIES
