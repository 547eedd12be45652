"""The consumable model on CPython: property tests (hypothesis) and simulations."""

import math
import random
from pathlib import Path

import cbor2
import pycddl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingsdk.core import restore
from thingsdk.core.consumable import DAY, Consumable, ConsumableError, RateEstimator
from thingsdk.sensors.simulated import SimulatedLevel

T0 = 1_700_000_000
HOUR = 3600
SLOT_STATUS = pycddl.Schema(
    "root = slot-status\n" + (Path(__file__).parent.parent / "spec" / "thingsdk.cddl").read_text()
)


def noisy_use(consumable, rate, hours, seed, noise=0.01, outliers=0.0, start=T0, level=None):
    """Feed hourly readings of use at `rate` units a day (each hour's use varying by +-30 %), with
    Gaussian noise of `noise` * rate and, at the given share of readings, wild outliers: none among
    the first five readings and at most two among any five in a row, since the current level is the
    median of the last five (before that, nothing tells a wild first reading from a true one).
    Returns the true level at the end."""
    rng = random.Random(seed)
    true = float(consumable.capacity if level is None else level)
    recent_wild = []
    for h in range(hours):
        true -= rate / 24 * rng.uniform(0.7, 1.3)
        reading = true + rng.gauss(0, rate * noise)
        wild = (h >= 5 and sum(recent_wild[-4:]) < 2 and recent_wild[-1] is False
                and rng.random() < outliers)
        if wild:
            reading += rng.choice([-1, 1]) * consumable.capacity * 0.3
        recent_wild.append(wild)
        consumable.read(start + h * HOUR, round(reading))
    return true


def rate_error(consumable, rate):
    return abs(consumable.estimator.rate() / (rate * 1000) - 1)


# ---------------------------------------------------------------- the rate

@settings(max_examples=60, deadline=None)
@given(rate=st.integers(100, 100_000), seed=st.integers(0, 2**32))
def test_rate_recovered_under_noise(rate, seed):
    c = Consumable("water", "ml", rate * 10)
    noisy_use(c, rate, 24 * 4, seed)
    assert rate_error(c, rate) < 0.10


@settings(max_examples=60, deadline=None)
@given(rate=st.integers(100, 100_000), seed=st.integers(0, 2**32))
def test_outliers_neither_swing_the_rate_nor_look_like_refills(rate, seed):
    c = Consumable("water", "ml", rate * 10, pack=rate)
    c.spares = 5
    noisy_use(c, rate, 24 * 4, seed, outliers=0.08)
    assert rate_error(c, rate) < 0.10
    assert c.spares == 5


def test_usage_counter_reports_give_the_rate_exactly():
    c = Consumable("ink", "page", 1000)
    c.refill(T0)
    rng = random.Random(3)
    for h in range(1, 24 * 6):  # 40 pages a day in bursts: most hours print nothing
        c.use(T0 + h * HOUR, rng.choice([0, 0, 0, 0, 0, 2, 3, 5]))
    used = 1000 - c.level(T0 + (24 * 6 - 1) * HOUR)
    assert abs(c.estimator.rate() / 1000 - used / 6) < used / 6 * 0.1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * DAY), st.integers(-50, 1200)), max_size=60))
def test_any_readings_give_a_sane_rate_and_forecast(steps):
    c = Consumable("beans", "g", 1000)
    t = T0
    for dt, level in steps:
        t += dt
        c.read(t, level)
        rate = c.estimator.rate()
        assert rate is None or rate >= 0
        f = c.forecast(t)
        if f.expected is not None:
            assert 0 <= f.low <= f.expected <= f.high
        if c.level(t) is not None:
            assert 0 <= c.level(t) <= 1000
            assert c.reorder(t) >= 0 and c.reorder_point() >= 0


def test_refills_restart_the_segment_and_keep_the_rate():
    c = Consumable("water", "ml", 10_000, pack=10_000)
    c.spares = 3
    rng = random.Random(1)
    level, t = 10_000, T0
    for _ in range(3):  # use 2 l a day for four days, then refill
        for _ in range(24 * 4):
            level -= 2000 // 24
            c.read(t, level + rng.randint(-20, 20))
            t += HOUR
        rate_before = c.estimator.rate()
        level = 10_000
        c.read(t, level)
        c.read(t + 60, level - 2)  # confirms the refill
        t += HOUR
        assert c.estimator.rate() >= 0
        assert abs(c.estimator.rate() - rate_before) < rate_before * 0.05  # still known, unchanged
    assert c.spares == 0  # each refill used one spare
    assert abs(c.estimator.rate() - 2_000_000) < 100_000


def test_a_gap_hiding_a_refill_does_not_distort_the_rate():
    c = Consumable("water", "ml", 10_000)
    for h in range(48):  # 1000 ml a day
        c.read(T0 + h * HOUR, 10_000 - 1000 * h // 24)
    # Silent for five days, refilled and used in between: the level is only 1000 ml lower.
    start = T0 + (48 + 5 * 24) * HOUR
    for h in range(48):
        c.read(start + h * HOUR, 7000 - 1000 * h // 24)
    assert abs(c.estimator.rate() - 1_000_000) < 30_000
    naive = RateEstimator(max_gap=10 * DAY, noise=200)
    for h in range(48):
        naive.add_level(T0 + h * HOUR, 10_000 - 1000 * h // 24)
    for h in range(48):
        naive.add_level(start + h * HOUR, 7000 - 1000 * h // 24)
    assert naive.rate() < 900_000  # without the gap rule the slope across it drags the rate down


def test_use_in_bursts_is_read_at_its_mean_across_refills():
    """Print jobs: most days none, some days dozens of pages, a cartridge every few weeks. Pairs
    of readings within one cartridge alone see mostly idle days and put the rate ~15 % low."""
    ratios = []
    for seed in range(10):
        rng = random.Random(seed)
        c = Consumable("ink", "page", 400)
        level = 400
        c.refill(T0)
        for day in range(1, 200):
            jobs = sum(rng.random() < (0.15 if day % 7 >= 5 else 0.45) for _ in range(2))
            used = sum(min(120, int(rng.expovariate(1 / 18)) + 1) for _ in range(jobs))
            if used > level:  # the cartridge runs out: a new one
                level = 400
                c.refill(T0 + day * DAY - HOUR)
            level -= used
            c.read(T0 + day * DAY, level)
            if day > 60 and day % 10 == 0:
                ratios.append(c.estimator.rate() / 13_800)  # the mean use, pages a day
    assert 0.92 <= sorted(ratios)[len(ratios) // 2] <= 1.08


def _sorted_weighted_median(pairs):
    """The weighted median as a sort of every pair finds it: the first slope, in order, at which
    the weights up to it reach half of all."""
    pairs, total, cumulative = sorted(pairs), sum(w for _, w in pairs), 0
    for value, weight in pairs:
        cumulative += weight
        if 2 * cumulative >= total:
            return value


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 2100), kinds=st.integers(1, 2000),
       weights=st.sampled_from([1, 3600, 10**6]))
def test_the_rate_fit_finds_the_median_a_sort_of_every_pair_finds(seed, size, kinds, weights):
    """The fit holds a few pairwise slopes at a time (a board's heap has no room for the 496
    pairs of a full window, let alone MAX_WINDOW's 2016): it finds exactly the weighted median a
    sort of all of them finds, with few or many distinct slopes, outliers and equal weights."""
    from thingsdk.core.consumable import _median_of

    rng = random.Random(seed)
    pairs = [(rng.randrange(kinds) * rng.choice([1, 1, 1, -7, 10**9]), rng.randint(1, weights))
             for _ in range(size)]
    expected = _sorted_weighted_median(pairs) if len(pairs) >= 3 else None
    assert _median_of(lambda: iter(pairs)) == expected


def test_the_rate_fit_takes_the_lower_slope_where_half_the_weight_ends_exactly():
    from thingsdk.core.consumable import _median_of

    pairs = [(0, 5)] * 100 + [(1000, 5)] * 100
    assert _median_of(lambda: iter(pairs)) == _sorted_weighted_median(pairs) == 0
    pairs = [(v, 2) for v in range(-300, 300)]  # half the weight ends at -1, amid a range
    assert _median_of(lambda: iter(pairs)) == _sorted_weighted_median(pairs) == -1


def test_the_rate_fit_reads_the_pairwise_slopes_of_its_readings():
    from thingsdk.core.consumable import _pair_slopes

    line = [(T0, 0, 0), (T0 + HOUR, HOUR, 50), (T0 + 2 * HOUR, HOUR, 80)]  # the last: a stitch
    assert list(_pair_slopes(line, 0)) == [(50 * 24000, HOUR), (80 * 24000, HOUR)]
    assert list(_pair_slopes(line, T0 + 1)) == []  # only pairs whose first was read since then


def test_rate_is_unknown_until_there_is_enough_data():
    c = Consumable("water", "ml", 10_000)
    assert c.level(T0) is None and c.position(T0) is None and c.reorder(T0) == 0
    assert not c.forecast(T0).known
    with pytest.raises(ConsumableError):
        c.status(T0)
    c.read(T0, 9000)
    c.read(T0 + 4 * HOUR, 8800)
    assert c.estimator.rate() is None and not c.forecast(T0).known
    assert "empty" not in c.status(T0 + 5 * HOUR)
    c.read(T0 + 8 * HOUR, 8600)
    assert c.estimator.rate() == 1_200_000 and c.forecast(T0 + 8 * HOUR).known


def test_no_use_means_never_empty():
    c = Consumable("water", "ml", 10_000)
    for h in range(0, 48, 4):
        c.read(T0 + h * HOUR, 5000)
    f = c.forecast(T0 + 48 * HOUR)
    assert f.known and f.expected is None
    assert f.days() == {"est": 3660, "lo": 3660, "hi": 3660}


# ---------------------------------------------------------------- the forecast

def test_forecast_band_contains_the_truth_most_of_the_time():
    hits, runs = 0, 100
    for seed in range(runs):
        sim = SimulatedLevel(30_000, 2000, T0, noise=30, variability=0.5, seed=seed)
        c = Consumable("water", "ml", 30_000)
        t = T0
        for _ in range(24 * 4):
            c.read(t, sim.read(t))
            t += HOUR
        f = c.forecast(t - HOUR)
        empty = t - HOUR
        while sim.true_level > 0:
            empty += HOUR
            sim.advance(empty)
        hits += f.low <= empty - (t - HOUR) <= f.high
    assert hits >= 0.85 * runs


# ---------------------------------------------------------------- reorder and inventory position

def filter_slot(**kwargs):
    """A fridge's water filter: its life in litres of water, one filter per item."""
    c = Consumable("filter", "l", 1000, lead_time=3 * DAY, lead_spread=2 * DAY, **kwargs)
    for h in range(0, 24 * 6, 3):  # 20 l a day
        c.read(T0 + h * HOUR, 1000 - 20 * h // 24)
    return c


def test_reorder_point_is_lead_time_use_plus_safety_stock():
    c = filter_slot(safety=0)
    rate = c.estimator.rate()
    assert c.estimator.rates() == (rate, rate)  # steady use: the last week's rate is the same
    expected, deviation = c.estimator.use_over(3 * DAY)
    assert abs(rate - 20_000) < 200 and abs(expected - 60_000) < 600
    late = rate * DAY // DAY  # use over a delivery late by half the spread, milli-units
    margin = 2 * math.isqrt(deviation * deviation + late * late)
    point = c.reorder_point()
    assert point == -(-expected // 1000) + -(-margin // 1000)
    assert 100 <= point <= 110  # 60 l over the lead time, 40 l for lateness and noise
    assert filter_slot(safety=300).reorder_point() == -(-expected // 1000) + 300


def test_an_open_order_prevents_a_second_order_for_the_same_need():
    c = filter_slot(safety=0)
    now = T0 + 47 * DAY  # carried forward at 20 l a day, about 60 l are left
    assert c.position(now) <= c.reorder_point()
    assert c.reorder(now) == 1
    c.add_order(b"order-1", 1)
    assert c.position(now) == c.level(now) + 1000
    assert c.reorder(now) == 0
    c.add_order(b"order-1", 1)  # placing the same order again changes nothing
    assert c.open_orders() == {b"order-1": 1} and c.reorder(now) == 0
    with pytest.raises(ConsumableError):
        c.add_order(b"order-1", 2)
    assert c.cancel(b"order-1") and not c.cancel(b"order-1")
    assert c.reorder(now) == 1  # cancelled: the need is back


def test_a_delivered_order_is_a_spare_until_the_refill_uses_it():
    c = filter_slot(safety=0)
    now = T0 + 47 * DAY
    c.add_order(b"order-1", 1)
    assert c.receive(b"order-1") and not c.receive(b"order-1")
    assert c.spares == 1 and c.incoming() == 0
    assert c.reorder(now) == 0  # the spare on the shelf covers the need
    c.read(now, 1000)  # the owner fits the new filter
    assert c.spares == 1  # one high reading could be a glitch
    c.read(now + HOUR, 1000)
    assert c.spares == 0 and c.position(now + HOUR) == 1000
    assert c.status(now + HOUR)["spare"] == 0


def test_a_sensor_repeating_its_reading_from_before_a_refill_is_not_taken():
    """The owner fits a filter and says so; the sensor, offline, repeats its last reading (nearly
    empty). Taken, that would write the spare off as gone and then count the refill again when
    the sensor comes back; it is not taken for up to a week, and the spare stays counted. A
    week on, the same reading is taken: the refill was said in error."""
    c = filter_slot(safety=0)
    now = T0 + 49 * DAY
    c.read(now, 2)
    c.add_order(b"order-1", 2)
    c.receive(b"order-1")
    c.refill(now + HOUR, 1000)
    assert c.spares == 1
    c.read(now + DAY, 2)
    c.read(now + 2 * DAY, 2)
    assert c.spares == 1 and c.level(now + 2 * DAY) > 900
    restored = restore.consumable(c.to_state())
    assert restored.to_state() == c.to_state()
    restored.read(now + 3 * DAY, 2)  # still not taken after a restart
    assert restored.level(now + 3 * DAY) > 900
    c.read(now + 3 * DAY, 940)  # back online: no refill in it
    assert c.spares == 1 and c.level(now + 3 * DAY) == 940
    late = filter_slot(safety=0)
    late.read(now, 2)
    late.refill(now + HOUR, 1000)
    late.read(now + 8 * DAY, 2)
    assert late.level(now + 8 * DAY) == 2


def test_a_refill_waiting_to_be_confirmed_is_not_an_empty_slot():
    """Two filters come while the slot has read empty twice, and one goes in at once: the high
    reading is held until the next confirms it, and meanwhile the empty readings are not the
    latest, so the spares are not written off as gone; the refill then uses one of them."""
    c = filter_slot(safety=0)
    now = T0 + 49 * DAY
    c.read(now, 2)
    c.read(now + DAY, 2)
    c.add_order(b"order-1", 2)
    c.receive(b"order-1")
    c.read(now + DAY + HOUR, 1000)  # one goes in: a possible glitch, held
    assert c.spares == 2
    c.read(now + DAY + 2 * HOUR, 999)  # confirmed
    assert c.spares == 1


def test_a_refill_seen_late_does_not_use_the_spare_delivered_meanwhile():
    """The owner fits the spare while the sensor is offline and still says nearly empty: the
    device writes the spare off as gone and orders another. When the sensor comes back, the
    refill it shows was made with the spare written off, not with the one just delivered,
    which stays counted (it is on the shelf): counted as used, the device would order a third.
    A refill that starts after a delivery uses it up, as before."""
    c = filter_slot(safety=0)
    now = T0 + 49 * DAY
    c.add_order(b"order-1", 1)
    c.receive(b"order-1")
    c.read(now, 2)  # fitted meanwhile, but the offline sensor repeats its last reading
    c.read(now + DAY, 2)
    assert c.spares == 0  # read empty twice a day apart: the spare is taken to be gone
    c.add_order(b"order-2", 1)
    c.read(now + 2 * DAY, 960)  # back online: the refill, held as a possible glitch
    c.receive(b"order-2")  # the second filter comes the same morning
    assert c.spares == 1
    c.read(now + 2 * DAY + HOUR, 958)  # the refill is confirmed: it began before the delivery
    assert c.spares == 1 and c.position(now + 2 * DAY + HOUR) > 1900
    restored = restore.consumable(c.to_state())
    assert restored.spares == 1 and restored.to_state() == c.to_state()
    for day in range(3, 51):  # 20 l a day until it is empty
        c.read(now + day * DAY, max(1, 958 - 20 * (day - 2)))
    c.read(now + 51 * DAY, 1000)  # the delivered filter goes in: this refill uses it
    c.read(now + 51 * DAY + HOUR, 999)
    assert c.spares == 0


def test_order_quantity_rounds_to_items_and_clears_the_reorder_point():
    c = Consumable("beans", "g", 250, pack=1000, safety=50)  # a hopper, filled from 1 kg bags
    c.read(T0, 40)
    assert c.reorder(T0) == 1
    big = Consumable("water", "ml", 20_000, pack=5000, safety=2000, order_qty=3)
    big.read(T0, 1000)
    assert big.reorder(T0) == 4  # up to capacity: 19 l in 5 l bottles
    big.read(T0 + 60, 12_000)
    big.read(T0 + 120, 12_000)  # a confirmed refill to 12 l
    assert big.position(T0 + 120) > big.reorder_point() and big.reorder(T0 + 120) == 0
    fast = Consumable("water", "ml", 1000, pack=500, safety=5000)  # safety above capacity
    fast.read(T0, 500)
    items = fast.reorder(T0)
    assert fast.position(T0) + items * 500 > fast.reorder_point()


def test_order_ids_and_counts_are_checked():
    c = Consumable("ink", "page", 1000)
    for bad_id, items in [(b"", 1), (b"x" * 65, 1), (7, 1), (b"ok", 0), (b"ok", True)]:
        with pytest.raises(ConsumableError):
            c.add_order(bad_id, items)
    for i in range(32):
        c.add_order(b"%d" % i, 1)
    with pytest.raises(ConsumableError):
        c.add_order(b"one-too-many", 1)


# ---------------------------------------------------------------- status on the wire

def test_status_is_a_valid_slot_status():
    c = filter_slot()
    c.sku = "filter-xp3"
    c.spares = 2
    status = c.status(T0 + 6 * DAY)
    SLOT_STATUS.validate_cbor(cbor2.dumps(status))
    assert status["slot"] == "filter" and status["unit"] == "l" and status["cap"] == 1000
    assert status["level"] == 880 and status["spare"] == 2 and status["sku"] == "filter-xp3"
    assert abs(status["rate"] - 20_000) < 200
    assert status["empty"]["lo"] <= status["empty"]["est"] == 44 <= status["empty"]["hi"]
    early = Consumable("ink", "page", 1000)
    early.read(T0, 1200)  # above capacity: reported as full
    SLOT_STATUS.validate_cbor(cbor2.dumps(early.status(T0)))
    assert early.status(T0) == {"slot": "ink", "unit": "page", "level": 1000, "cap": 1000,
                                "rate": 0, "spare": 0}


def test_settings_are_checked():
    for kwargs in [dict(slot="Water"), dict(slot=""), dict(unit="m l"), dict(capacity=0),
                   dict(capacity=1.5), dict(pack=0), dict(order_qty=0), dict(safety=-1),
                   dict(sku=""), dict(lead_time=-1)]:
        args = dict(slot="water", unit="ml", capacity=1000) | kwargs
        with pytest.raises(ConsumableError):
            Consumable(**args)
    with pytest.raises(ConsumableError):
        RateEstimator(window=1)
    c = Consumable("water", "ml", 1000)
    c.read(T0, 900)
    with pytest.raises(ConsumableError):
        c.read(T0 - 1, 900)  # time must not go backwards
    with pytest.raises(ConsumableError):
        c.use(T0, -1)
    with pytest.raises(ConsumableError):
        Consumable("ink", "page", 10).use(T0, 1)  # no starting level yet


# ---------------------------------------------------------------- state

ops = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(0, DAY), st.integers(-10, 1100)),
        st.tuples(st.just("use"), st.integers(0, DAY), st.integers(0, 50)),
        st.tuples(st.just("refill"), st.integers(0, DAY), st.integers(0, 1000)),
        st.tuples(st.just("order"), st.integers(0, 20), st.integers(1, 3)),
        st.tuples(st.just("receive"), st.integers(0, 20), st.integers(0, 3)),
        st.tuples(st.just("cancel"), st.integers(0, 20), st.integers(0, 0)),
    ),
    max_size=80,
)


def apply(c, steps, t=T0):
    for op, a, b in steps:
        if op == "read":
            t += a
            c.read(t, b)
        elif op == "use" and c.level(t) is not None:
            t += a
            c.use(t, b)
        elif op == "refill":
            t += a
            c.refill(t, b)
        elif op == "order" and c.open_orders().get(b"o%d" % a, b) == b:
            c.add_order(b"o%d" % a, b)
        elif op == "receive":
            c.receive(b"o%d" % a, b)
        elif op == "cancel":
            c.cancel(b"o%d" % a)
    return t


@settings(max_examples=80, deadline=None)
@given(ops, ops)
def test_state_round_trip_survives_a_reboot(before, after):
    c = Consumable("beans", "g", 1000, pack=250, sku="house-blend", order_qty=2)
    t = apply(c, before)
    state = c.to_state()
    restored = restore.consumable(cbor2.loads(cbor2.dumps(state)))
    assert restored.to_state() == state
    t_restored = apply(restored, after, t)
    assert apply(c, after, t) == t_restored
    assert restored.to_state() == c.to_state()
    assert restored.reorder(t_restored + DAY) == c.reorder(t_restored + DAY)
    assert vars(restored.forecast(t_restored)) == vars(c.forecast(t_restored))


def a_state():
    c = filter_slot()
    c.add_order(b"order-1", 1)
    c.read(T0 + 6 * DAY, 1000)  # held: may be a refill
    return c.to_state()


def set_in(state, path, value):
    target = state
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return state


DELETE = object()


@pytest.mark.parametrize("path, value", [
    (("v",), 2),
    (("slot",), "Filter"),
    (("cap",), "1000"),
    (("spares",), -1),
    (("spares",), 1001),
    (("orders",), [[b"order-1", 1], [b"order-1", 1]]),
    (("orders",), [[b"order-1"]]),
    (("orders",), [[b"", 1]]),
    (("orders",), "none"),
    (("lead",), DELETE),
    (("estimator",), []),
    (("estimator", "window"), 0),
    (("estimator", "points"), [[T0, 5, 0]] * 65),
    (("estimator", "points", 1), [T0 - 1, 990, 0]),
    (("estimator", "points", 0), [T0, 1000]),
    (("estimator", "points", 0), [T0, 1000, 99]),
    (("estimator", "points", 0, 1), 2.5),
    (("estimator", "recent"), [[T0 + 2, 1], [T0 + 1, 1]]),
    (("estimator", "recent"), []),  # a pending reading without recent ones
    (("estimator", "pending"), [0, 5]),
    (("estimator", "segment"), -1),
    (("estimator", "noise"), DELETE),
])
def test_malformed_state_is_rejected(path, value):
    state = a_state()
    assert restore.consumable(state).to_state() == state
    with pytest.raises(ConsumableError):
        restore.consumable(set_in(state, path, value))


def test_not_a_state_at_all_is_rejected():
    for state in [None, [], {}, {"v": 1}]:
        with pytest.raises(ConsumableError):
            restore.consumable(state)
