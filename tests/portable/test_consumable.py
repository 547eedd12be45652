# Consumable scenarios that run on CPython (pytest) and on MicroPython alike.
from check import raises
from thingsdk.core import restore
from thingsdk.core.consumable import DAY, Consumable, ConsumableError

T0 = 1700000000
HOUR = 3600


class Noise:
    """Deterministic pseudo-random ints (a linear congruential generator), alike on every port."""

    def __init__(self, seed):
        self.state = seed

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) % 2147483648
        return (self.state >> 8) % n

    def between(self, low, high):
        return low + self.below(high - low + 1)


def use_hourly(c, ml_per_day, hours, seed, start=T0, level=None, outlier_every=0):
    """Hourly readings of use that varies by +-30 % an hour, read with +-1 % noise."""
    noise = Noise(seed)
    true = c.capacity if level is None else level
    for h in range(hours):
        true -= ml_per_day * noise.between(70, 130) // 2400
        reading = true + noise.between(-ml_per_day // 100, ml_per_day // 100)
        if outlier_every and h % outlier_every == outlier_every - 1:
            reading += c.capacity // 3 if noise.below(2) else -c.capacity // 3
        c.read(start + h * HOUR, reading)
    return true


def near(value, target, share):
    return abs(value - target) <= target * share


def test_rate_is_recovered_under_noise():
    c = Consumable("water", "ml", 20000)
    use_hourly(c, 2000, 24 * 4, seed=1)
    assert near(c.estimator.rate(), 2000000, 0.08)


def test_outliers_do_not_swing_the_rate_or_pass_for_refills():
    c = Consumable("water", "ml", 20000, pack=5000)
    c.spares = 2
    use_hourly(c, 2000, 24 * 4, seed=2, outlier_every=9)
    assert near(c.estimator.rate(), 2000000, 0.08)
    assert c.spares == 2


def test_refills_keep_the_rate_and_use_spares():
    c = Consumable("water", "ml", 10000, pack=10000)
    c.spares = 2
    t = T0
    for cycle in range(2):
        use_hourly(c, 2000, 24 * 4, seed=cycle, start=t)
        t += 24 * 4 * HOUR
        c.read(t, 10000)
        c.read(t + 60, 9999)
        assert c.estimator.rate() is not None and c.estimator.rate() >= 0
        t += HOUR
    assert c.spares == 0
    assert near(c.estimator.rate(), 2000000, 0.08)


def test_a_refill_seen_a_day_late_counts_every_bag_that_went_in():
    c = Consumable("beans", "g", 1000, pack=250)
    c.spares = 3
    for day in range(4):
        c.read(T0 + day * DAY, 300 - 60 * day)  # 60 g a day down to 120 g
    c.read(T0 + 4 * DAY, 870)  # three bags went in: held back, it may be a spike
    assert c.spares == 3
    c.read(T0 + 5 * DAY, 810)  # confirmed; the rise counts from the first high reading
    assert c.spares == 0


def test_spares_a_slot_read_empty_for_half_a_day_does_not_have():
    c = Consumable("ink", "page", 400, pack=400)
    c.refill(T0)
    c.spares = 1  # went into another printer, or in unseen
    for hour in range(0, 48, 6):
        c.read(T0 + hour * HOUR, 400 - 8 * hour)
    c.read(T0 + 50 * HOUR, 2)  # a quarter of the noise (8 pages) or less: empty
    assert c.spares == 1
    c.read(T0 + 62 * HOUR, 0)
    assert c.spares == 0 and c.reorder(T0 + 62 * HOUR) > 0
    c.spares = 1
    c.read(T0 + 63 * HOUR, 0)  # an hour apart is not enough to be sure
    assert c.spares == 1


def test_a_gap_that_hides_a_refill_is_not_a_slope():
    c = Consumable("water", "ml", 10000)
    for h in range(48):
        c.read(T0 + h * HOUR, 10000 - 1000 * h // 24)
    start = T0 + (48 + 5 * 24) * HOUR  # five silent days: refilled and used meanwhile
    for h in range(48):
        c.read(start + h * HOUR, 7000 - 1000 * h // 24)
    assert near(c.estimator.rate(), 1000000, 0.03)


def test_usage_counter_reports():
    c = Consumable("ink", "page", 1000)
    raises(ConsumableError, c.use, T0, 5)  # no starting level yet
    c.refill(T0)
    for day in range(1, 11):
        c.use(T0 + day * DAY, 25)
    assert c.estimator.rate() == 25000
    assert c.level(T0 + 10 * DAY) == 750
    assert c.forecast(T0 + 10 * DAY).expected == 30 * DAY


def test_exact_data_gives_exact_figures():
    c = Consumable("water", "ml", 10000, lead_time=2 * DAY, lead_spread=DAY, safety=100)
    for h in range(0, 49, 4):
        c.read(T0 + h * HOUR, 9000 - 50 * h)  # 1200 ml a day, no noise
    now = T0 + 48 * HOUR
    assert c.estimator.rate() == 1200000
    assert c.estimator.use_over(DAY) == (1200000, 0)
    f = c.forecast(now)
    assert (f.low, f.expected, f.high) == (5 * DAY + 12 * HOUR,) * 3
    # 2 days of use over the lead time, and Z = 2 times the use over a delivery late by half
    # the spread (no noise)
    assert c.reorder_point() == 2400 + 1200
    assert c.status(now) == {"slot": "water", "unit": "ml", "level": 6600, "cap": 10000,
                             "rate": 1200000, "spare": 0, "empty": {"est": 5, "lo": 5, "hi": 5}}
    assert c.level(now + DAY) == 5400  # carried forward at the rate


def test_unknown_until_enough_readings():
    c = Consumable("water", "ml", 10000)
    assert c.level(T0) is None and c.reorder(T0) == 0 and not c.forecast(T0).known
    raises(ConsumableError, c.status, T0)
    c.read(T0, 9000)
    c.read(T0 + 4 * HOUR, 8800)
    assert c.estimator.rate() is None
    assert "empty" not in c.status(T0 + 4 * HOUR)
    assert c.reorder_point() == 1000  # the configured minimum while the rate is unknown
    c.read(T0 + 8 * HOUR, 8600)
    assert c.estimator.rate() == 1200000


def test_an_open_order_covers_the_need():
    c = Consumable("filter", "l", 1000, safety=0)
    for h in range(0, 24 * 6, 3):
        c.read(T0 + h * HOUR, 1000 - 20 * h // 24)
    now = T0 + 47 * DAY
    assert c.reorder(now) == 1
    c.add_order(b"order-1", 1)
    assert c.reorder(now) == 0 and c.incoming() == 1000
    c.add_order(b"order-1", 1)
    raises(ConsumableError, c.add_order, b"order-1", 2)
    assert c.cancel(b"order-1") and c.reorder(now) == 1
    c.add_order(b"order-2", 1)
    assert c.receive(b"order-2") and not c.receive(b"order-2")
    assert c.spares == 1 and c.reorder(now) == 0
    c.read(now, 1000)
    c.read(now + 60, 1000)
    assert c.spares == 0 and c.reorder(now + 60) == 0


def test_order_quantity_in_whole_items():
    c = Consumable("water", "ml", 20000, pack=5000, safety=2000)
    c.read(T0, 1000)
    assert c.reorder(T0) == 4
    c.order_qty = 6
    assert c.reorder(T0) == 6
    beans = Consumable("beans", "g", 250, pack=1000, safety=50)
    beans.read(T0, 40)
    assert beans.reorder(T0) == 1


def test_quantity_balances_shipping_against_stock_held():
    c = Consumable("beans", "g", 2000, pack=250, safety=100, lead_time=2 * DAY, lead_spread=0)
    for h in range(0, 49, 4):
        c.read(T0 + h * HOUR, 540 - 5 * h)  # 120 g a day: reorder point 240 + 100 g
    now = T0 + 48 * HOUR
    assert c.reorder_point() == 340 and c.position(now) == 300
    assert c.reorder(now) == 7 and c.why is None  # up to capacity without costs
    c.ship_cost, c.hold_cost = 400, 36500  # sqrt(2 x 175 bags a year x 400 / 36500) = 1 bag
    assert c.reorder(now) == 1 and c.why == "1 balance shipping against stock held"
    c.hold_cost = 730  # cheap to hold: 13 bags would balance, but they would sit on the shelf
    # 1900 g fill the slot when an order comes with 100 g left (8 bags), and one more bag waits
    # on the shelf only until a bag's worth is used
    assert c.reorder(now) == 9 and c.why == "9, as more would sit on the shelf when it comes"
    c.pack = 2000  # an item the size of the slot: none waits
    assert c.reorder(now) == 1
    c.pack, c.capacity = 250, 10000
    assert c.reorder(now) == 13 and c.why == "13 balance shipping against stock held"


def test_a_perishable_is_never_bought_to_go_stale():
    c = Consumable("beans", "g", 10000, pack=250, safety=100, lead_time=2 * DAY, lead_spread=0,
                   ship_cost=400, hold_cost=730, shelf_life=5 * DAY)
    for h in range(0, 49, 4):
        c.read(T0 + h * HOUR, 540 - 5 * h)
    now = T0 + 48 * HOUR
    # a bag goes in as soon as it fits, and the last of an order must go in within 5 days (600 g)
    # of delivery; it comes with 100 g left: 600 + 10000 - 100 g may be ahead of it, 42 bags
    assert c.reorder(now) == 13 and c.fresh(50, now) == 42
    assert c.why == "42, as more would go stale before use"
    c.capacity, c.shelf_life = 1000, 2 * DAY  # 240 + 1000 - 100 g: 4 bags
    assert c.fresh(13, now) == 4 and c.reorder(now) == 4  # filling the slot keeps them fresh too
    c.pack = c.capacity = 1000
    c.shelf_life = DAY  # not even one item keeps: one all the same, to avoid running out
    assert c.fresh(2, now) == 1 and c.reorder(now) == 1
    raises(ConsumableError, Consumable, "beans", "g", 1000, shelf_life=60)
    raises(ConsumableError, Consumable, "beans", "g", 1000, ship_cost=-1)


def test_time_away_uses_nothing_so_a_perishable_is_not_bought_to_go_stale_over_it():
    c = Consumable("beans", "g", 10000, pack=250, safety=100, lead_time=2 * DAY, lead_spread=0,
                   ship_cost=400, hold_cost=730, shelf_life=5 * DAY)
    for h in range(0, 49, 4):
        c.read(T0 + h * HOUR, 540 - 5 * h)  # 120 g a day
    now = T0 + 48 * HOUR
    comes = now + 2 * DAY
    assert c.fresh(50, now) == 42  # 600 g used in the 5 days after delivery
    c.away = [[comes + DAY, comes + 3 * DAY]]  # two of those days away: 360 g, 41 bags
    assert c.fresh(50, now) == 41 and c.why == "41, as more would go stale before use"
    c.away = [[now, now + DAY]]  # a day away before it comes: 120 g more left then
    assert c.fresh(50, now) == 41
    c.away = [[now - 9 * DAY, now - DAY], [comes + 9 * DAY, comes + 19 * DAY]]  # outside both
    assert c.fresh(50, now) == 42
    c.away = [[now, comes + 6 * DAY]]  # away for all of it: the slot's room, less the 240 g
    assert c.fresh(50, now) == 38  # still there when it comes: 38 bags
    again = restore.consumable(c.to_state())
    assert again.away == c.away and again.fresh(50, now) == 38
    configured = Consumable("beans", "g", 10000, pack=250, away=[(comes, comes + DAY)])
    assert restore.carry_on(again, configured).away == [[comes, comes + DAY]]  # the config's, now
    for away in ([[now, now]], [[now, now + DAY], [now + HOUR, now + 2 * DAY]], [[now]],
                 [["now", now + DAY]], [[-1, now]], [[now, now + DAY]] * 17, "a holiday"):
        raises(ConsumableError, Consumable, "beans", "g", 1000, away=away)


def test_a_change_of_use_is_planned_for_at_once():
    c = Consumable("water", "ml", 100000, lead_time=2 * DAY, lead_spread=0)
    for day in range(21):
        c.read(T0 + day * DAY, 90000 - 1000 * day)  # 1000 ml a day for 20 days
    assert c.estimator.rates() == (1000000, 1000000)  # the window's and the last week's
    assert c.reorder_point() == 2000  # 2 days of use over the lead time
    for day in range(1, 8):
        c.read(T0 + (20 + day) * DAY, 70000 - 2000 * day)  # guests: twice as much for a week
    assert c.estimator.rate() < 1200000 and c.estimator.rates()[1] == 2000000
    # running out is planned for at the recent rate (4000 ml), with a safety stock now that use
    # has varied (the day-to-day variance is a median: a week of change moves it, a day would not)
    assert 4000 < c.reorder_point() < 5000


def test_late_deliveries_raise_the_reorder_point_until_on_time_ones_wear_it_down():
    c = Consumable("water", "ml", 10000, lead_time=2 * DAY, lead_spread=4 * DAY, safety=100)
    for h in range(0, 49, 4):
        c.read(T0 + h * HOUR, 9000 - 50 * h)  # 1200 ml a day
    assert c.late == 2 * DAY  # none seen: half the spread
    assert c.reorder_point() == 2400 + 4800  # Z = 2 times the use over 2 days late
    c.add_order(b"late", 1)
    assert c.receive(b"late", late=6 * DAY)  # the root mean square: sqrt((3 x 4 + 36) / 4)
    assert c.late == 299298 and c.reorder_point() == 2400 + 8314  # days, to the second
    for n in range(4):
        c.add_order(b"on time", 1)
        c.receive(b"on time")
    assert c.late == 168353 and c.reorder_point() == 2400 + 4677  # each a quarter off its square
    c.add_order(b"bad", 1)
    c.add_order(b"bad", 1)
    raises(ConsumableError, c.receive, b"bad", 1, -1)
    assert restore.consumable(c.to_state()).late == c.late


def test_state_round_trip():
    c = Consumable("beans", "g", 1000, pack=250, sku="house-blend")
    use_hourly(c, 100, 60, seed=4)
    c.add_order(b"order-1", 2)
    c.read(T0 + 60 * HOUR, 1000)  # held back: may be a refill
    state = c.to_state()
    restored = restore.consumable(state)
    assert restored.to_state() == state
    for x in (c, restored):
        x.read(T0 + 61 * HOUR, 995)
    assert restored.to_state() == c.to_state()
    assert restored.status(T0 + 62 * HOUR) == c.status(T0 + 62 * HOUR)


def test_kept_readings_hold_their_times_as_small_integers_and_state_as_unix_times():
    # A unix time is a big integer on a 32-bit board (32 bytes of heap): a full window keeps
    # each reading's time as seconds since the first kept, restored from state as well.
    c = Consumable("beans", "g", 1000)
    use_hourly(c, 100, 24 * 12, seed=6)  # twelve days: the window full and slid on
    state = c.to_state()
    restored = restore.consumable(state)
    for x in (c, restored):
        points = x.estimator._points
        assert len(points) == 32 and all(0 <= p[0] < 2**30 for p in points)
    times = [p[0] for p in state["estimator"]["points"]]
    assert times[0] > T0 + 5 * DAY and times == sorted(times) and times[-1] < T0 + 12 * DAY
    assert restored.to_state() == state


def test_malformed_state_is_rejected():
    c = Consumable("ink", "page", 1000)
    c.read(T0, 900)
    good = c.to_state()
    assert restore.consumable(good).to_state() == good
    for key, value in [("v", 9), ("cap", -1), ("unit", "Pages"), ("spares", "2"),
                       ("orders", [[b"a", 1], [b"a", 1]]), ("orders", [[b"a", 0]])]:
        state = dict(good)
        state[key] = value
        raises(ConsumableError, restore.consumable, state)
    for key, value in [("points", [[T0, 900, 0], [T0 - 5, 900, 0]]), ("recent", [[T0]]),
                       ("window", 1000), ("segment", -1)]:
        state = dict(good)
        state["estimator"] = dict(good["estimator"])
        state["estimator"][key] = value
        raises(ConsumableError, restore.consumable, state)
    state = dict(good)
    del state["safety"]
    raises(ConsumableError, restore.consumable, state)
    raises(ConsumableError, restore.consumable, [1])


def test_changed_settings_take_effect_on_what_was_learnt():
    from thingsdk.core.consumable import configured

    kept = configured("coffee", "g", 1000, sku="BEANS-1KG", order_qty=1, min_interval=3600)
    for hour in range(6):
        kept.read(hour * 3600, 1000 - 50 * hour)
    points = kept.estimator.to_state()["points"]
    stored = restore.consumable(kept.to_state())
    now = configured("coffee", "g", 1000, sku="BEANS-2KG", order_qty=3, min_interval=600,
                     lead_time=2 * 86400, safety=250)
    carried = restore.carry_on(stored, now)
    assert (carried.sku, carried.order_qty, carried.lead_time, carried.safety) == (
        "BEANS-2KG", 3, 2 * 86400, 250)
    assert carried.estimator.min_interval == 600
    assert carried.estimator.to_state()["points"] == points  # what was learnt stays
    other_unit = configured("coffee", "kg", 1000, sku="BEANS-1KG")
    stored = restore.consumable(kept.to_state())
    exc = raises(ConsumableError, restore.carry_on, stored, other_unit)
    assert "slot coffee: its unit was g and the config now says kg" in str(exc)
    bigger = configured("coffee", "g", 2000, sku="BEANS-1KG")
    stored = restore.consumable(kept.to_state())
    exc = raises(ConsumableError, restore.carry_on, stored, bigger)
    assert "its capacity was 1000 and the config now says 2000" in str(exc)
