"""Consumables: level, usage rate, forecast to empty, reorder point and inventory position.

Portable and sans-IO: time comes in as an argument (`now`, unix seconds as an int), every quantity
is an int, and state goes out and comes back as plain dicts and lists (`to_state`, and
thingsdk.core.restore).
Rates are integer milli-units per day, as on the wire.
"""

from thingsdk.core.check import const, int_in, is_int

DAY = 86400
MILLI_DAY = 1000 * DAY  # a rate in milli-units per day times seconds, over this, is units
STATE_VERSION = 1
MAX_INT = 2**53 - 1  # levels, times and counts in state stay below this
_MAX_UNITS = const(1000000000)  # the protocol's bound on amounts and capacities
MAX_ITEMS = 1000000  # the protocol's bound on an order quantity
MAX_SPARES = 1000  # the protocol's bound on unopened spares
MAX_DAYS = 3660  # the protocol's bound on days to empty
MAX_RATE = 10**12  # the protocol's bound on a rate
MAX_WINDOW = 64
MAX_ORDERS = 32  # open orders a slot counts
_MAX_AWAY = const(16)  # spans of `away`
_MAX_ORDER_ID = const(64)
_MIN_PAIRS = const(3)  # fewer pairwise slopes than this and the rate is unknown
# Pairwise slopes a fit holds at once, and the ranges each pass over them sorts them into: a board's
# heap, fragmented by the code it loads, has room for many small blocks but not for a list of
# every pair (2 KB for the 496 pairs of a full 32-reading window).
_HELD = const(64)
_RANGES = const(16)
RECENT = 5  # raw readings the robust current level is the median of
_RECENT_USE = const(7 * 86400)  # seconds: the latest readings the week's rate is taken over
_STALE_FOR = const(7 * 86400)  # seconds a reading repeating the last before a refill is not taken
Z = 2  # standard deviations on each side of a forecast band, and in the safety stock
# the median of a chi-squared variable with 1 degree of freedom, times 10000
_MEDIAN_CHI2 = const(4549)


class ConsumableError(ValueError):
    """Malformed consumable state, or a setting or argument out of range."""


def _require(ok, message):
    if not ok:
        raise ConsumableError(message)


def _check_int(value, low, high, name):
    return int_in(value, low, high, name, ConsumableError)


def _check_token(value, name):
    """A protocol token: 1..32 of a-z 0-9 . _ -, starting with a letter or digit."""
    ok = isinstance(value, str) and 0 < len(value) <= 32
    if ok:
        for i, ch in enumerate(value):
            alnum = "a" <= ch <= "z" or "0" <= ch <= "9"
            ok = ok and (alnum or (i > 0 and ch in "._-"))
    _require(ok, "%s must be a token: a-z, 0-9, '.', '_', '-', 1..32 long" % name)
    return value


def _check_order_id(value):
    _require(isinstance(value, (bytes, str)) and 0 < len(value) <= _MAX_ORDER_ID,
             "order id must be bytes or str, 1..%d long" % _MAX_ORDER_ID)
    return value


def _check_list(value, name, limit):
    ok = isinstance(value, list) and len(value) <= limit
    _require(ok, "%s must be a list of at most %d" % (name, limit))
    return value


def _check_away(spans):
    """`away` as a list of [start, end] lists of unix seconds, each start before its end."""
    out = []
    for span in _check_list(list(spans or ()), "away", _MAX_AWAY):
        _require(isinstance(span, (list, tuple)) and len(span) == 2,
                 "away must hold [start, end] pairs of unix seconds")
        start = _check_int(span[0], 0, MAX_INT, "away start")
        _require(is_int(span[1]) and start < span[1] <= MAX_INT, "away: each end after its start")
        out.append([start, span[1]])
    out.sort()
    for i in range(1, len(out)):
        _require(out[i - 1][1] <= out[i][0], "away: spans must not overlap")
    return out


def _ceil_div(a, b):
    return -(-a // b)


def _upper_median(values):
    """The middle of the sorted values, the upper of the two middles for an even count."""
    return sorted(values)[len(values) // 2]


def _isqrt(n):
    """Floor of the square root of a non-negative int (Newton's method, ints only)."""
    if n <= 0:
        return 0
    x, y = n, (n + 1) // 2
    while y < x:
        x, y = y, (y + n // y) // 2
    return x


def _weighted_median(values, weights, below, total):
    """The smallest of `values` at which `below` and the weights (> 0) of the values up to it
    reach half of `total`, by a three-way quickselect that reorders both lists in place."""
    lo, hi = 0, len(values)  # the answer is in values[lo:hi]; `below`: the weight left of lo
    while True:
        pivot = values[(lo + hi) // 2]
        less, i, more = lo, lo, hi  # [lo, less) < pivot, [less, i) == pivot, [more, hi) > pivot
        w_less = w_same = 0
        while i < more:
            value = values[i]
            if value < pivot:
                values[i], values[less] = values[less], value
                weights[i], weights[less] = weights[less], weights[i]
                w_less += weights[less]
                less += 1
                i += 1
            elif value > pivot:
                more -= 1
                values[i], values[more] = values[more], value
                weights[i], weights[more] = weights[more], weights[i]
            else:
                w_same += weights[i]
                i += 1
        if 2 * (below + w_less) >= total:
            hi = less
        elif 2 * (below + w_less + w_same) >= total:
            return pivot
        else:
            below += w_less + w_same
            lo = more


def _pair_slopes(line, since):
    """(slope in milli-units a day, weight in seconds) of each pair of points of the stitched
    line (time read, time stitched, use so far) whose first was read at `since` or later and
    whose stitched times differ."""
    for i in range(len(line)):
        read, t1, used1 = line[i]
        if read >= since:
            for j in range(i + 1, len(line)):
                dt = line[j][1] - t1
                if dt > 0:
                    yield (line[j][2] - used1) * MILLI_DAY // dt, dt


def _median_of(pairs):
    """The weighted median of the (value, weight > 0) pairs that each call of `pairs()` yields
    anew: the smallest value at which the weights of the values up to it reach half of all; None
    for fewer than _MIN_PAIRS pairs.

    Exact, and holding at most _HELD pairs: while more than that are in the range of values
    the median is in, a pass sorts them into _RANGES equal ranges by value, weighing each, and
    the range it is in (narrowed to its least and greatest value) is the next; its pairs are
    then taken and the median selected among them."""
    n = total = 0
    lo = hi = None  # the median's range of values, both ends included
    for value, weight in pairs():
        n, total = n + 1, total + weight
        lo = value if lo is None or value < lo else lo
        hi = value if hi is None or value > hi else hi
    if n < _MIN_PAIRS:
        return None
    below, count = 0, n  # the weight of the slopes under lo; the pairs in [lo, hi]
    while count > _HELD and lo < hi:
        width = (hi - lo) // _RANGES + 1
        weights, counts = [0] * _RANGES, [0] * _RANGES
        least, most = [None] * _RANGES, [None] * _RANGES
        for value, weight in pairs():
            if lo <= value <= hi:
                k = (value - lo) // width
                weights[k] += weight
                counts[k] += 1
                least[k] = value if least[k] is None or value < least[k] else least[k]
                most[k] = value if most[k] is None or value > most[k] else most[k]
        k = 0
        while 2 * (below + weights[k]) < total:
            below += weights[k]
            k += 1
        lo, hi, count = least[k], most[k], counts[k]
    if lo == hi:
        return lo
    values, weights = [], []
    for value, weight in pairs():
        if lo <= value <= hi:
            values.append(value)
            weights.append(weight)
    return _weighted_median(values, weights, below, total)


class RateEstimator:
    """Usage rate in milli-units per day, robust to noise, outliers, gaps and refills.

    The estimate is a weighted Theil–Sen slope (Sievers–Scholz): the weighted median of the slopes
    between every pair of kept readings, each pair weighted by the time between its readings, the
    segments between refills stitched end to end (`_fit_points`). Why: a median of pairwise slopes
    ignores a minority of wild readings (one outlier touches only the pairs it is in, and those with
    distant partners barely move), needs no noise model or tuning, and weighting by time keeps many
    short, noisy or idle pairs from outvoting the long ones that carry the real trend, so bursty use
    (a coffee machine at breakfast) is not biased towards zero. It needs only ints and a sort, so it
    runs the same on MicroPython.

    Uncertainty comes from the use between consecutive kept readings: its deviation from the rate,
    squared and scaled to one day, has a median that (divided by that of a chi-squared variable)
    estimates the day-to-day variance of use, robust to outliers. Use over a horizon then varies by
    that variance times the horizon in days (random-walk use), plus the rate's own error over the
    horizon (the variance over the span of data seen, times the horizon squared).

    Readings come in as levels (`add_level`) or as usage since the last report (`add_usage`, exact
    counts that lower the level). A rise above `noise` over the median of the last few readings,
    confirmed by the next reading, is a refill (a single high reading is an outlier); a silence
    longer than `max_gap` may hide a refill and use that cancel out. Either one starts a new
    segment: neither the rise nor the time across it counts, but the readings before it stay in the
    window, so what was learned about the rate is kept. `rates` has the same slope over the
    last week of readings alone. Readings closer than `min_interval` to the last kept one are not
    kept (the rate needs spread in time, not density); at most `window` readings are kept.
    """

    def __init__(self, window: int = 32, min_interval: int = 3 * 3600, max_gap: int = 2 * DAY,
                 noise: int = 0) -> None:
        self.window = _check_int(window, 2, MAX_WINDOW, "window")
        self.min_interval = _check_int(min_interval, 0, MAX_INT, "min_interval")
        self.max_gap = _check_int(max_gap, 1, MAX_INT, "max_gap")
        self.noise = _check_int(noise, 0, MAX_INT, "noise")
        # Kept readings (t - _origin, level, segment), oldest first. Their times count from the
        # first reading kept, so they stay small integers on a 32-bit board, where a unix time is
        # a big one: 32 bytes of heap less a reading (a full window, measured: 0.8 KB a slot).
        self._points = []
        self._origin = 0
        self._segment = 0
        self._recent = []  # the last raw readings [t, level] of the current segment, oldest first
        self._pending = None  # a reading [t, level] that may be a refill, held for confirmation
        self._fit = None  # (rate, variance, span, recent rate) from _fit_points, while not stale
        self._last = None  # the level the sensor read last
        self._before = None  # [time, level last read] of a refill the host told of, see add_level
        self._stale = False

    def add_level(self, t, level):
        """Take a level reading; return the rise when it confirms a refill, else 0.

        A reading above the recent median by more than `noise` is held back until the next one: if
        that is high too, the refill is real and the held reading starts the new segment; if not,
        the held one was an outlier and is dropped. After a refill the host told of (`refill`), a
        reading that repeats the last one before it is not taken, for up to _STALE_FOR: the sensor
        has not caught up (offline, or stuck at its last value), and taken, its low level would
        have the spares written off and the stock counted again when the sensor comes back.
        """
        self._check_time(t)
        _check_int(level, -MAX_INT, MAX_INT, "level")
        if self._before is not None:
            if level == self._before[1] and t - self._before[0] <= _STALE_FOR:
                return 0
            self._before = None
        self._last = level
        rise = 0
        if len(self._recent) > 1:
            base = _upper_median([r[1] for r in self._recent])
            rise = level - base
            if rise <= self.noise:
                rise = 0
            elif self._pending is None:
                self._pending = [t, level]
                return 0
            else:  # measured at the first high reading, before use eats into it
                rise = max(rise, self._pending[1] - base)
        held, self._pending = self._pending, None
        if self._recent and (rise or t - self._recent[-1][0] > self.max_gap):
            self._new_segment()
        if rise:
            self._recent = [held]
            self._keep(held[0], held[1])
        self._recent = (self._recent + [[t, level]])[-RECENT:]
        self._keep(t, level)
        return rise

    def add_usage(self, t, used):
        """Take a usage report: `used` units since the last reading or report, counted exactly."""
        self._check_time(t)
        _check_int(used, 0, MAX_INT, "used")
        _require(self._recent, "usage needs a starting level: a reading or refill first")
        level = self._recent[-1][1] - used
        self._pending = None
        self._recent = [[t, level]]
        self._keep(t, level)

    def refill(self, t, level):
        """Note a refill to `level` that the host knows of; return the rise over the last level."""
        self._check_time(t)
        _check_int(level, -MAX_INT, MAX_INT, "level")
        rise = level - self.level_at(t) if self._recent else level
        if self._last is not None and self._last < level:
            self._before = [t, self._last]  # see add_level
        self._new_segment()
        self._pending = None
        self._recent = [[t, level]]
        self._keep(t, level)
        return rise

    def rate(self):
        """The rate in milli-units per day (never negative), or None while data is too thin."""
        fit = self._model()
        return None if fit is None else fit[0]

    def rates(self):
        """(lower, higher) of `rate` and the rate over the last week of readings alone, or None
        while the rate is unknown: the week's follows a change of use (guests, a new habit)
        within days where `rate` takes weeks, and is noisier."""
        fit = self._model()
        if fit is None:
            return None
        recent = fit[0] if fit[3] is None else fit[3]
        return min(fit[0], recent), max(fit[0], recent)

    def use_over(self, seconds):
        """(expected, standard deviation) of the milli-units used in `seconds`; None if unknown."""
        fit = self._model()
        if fit is None:
            return None
        rate, variance, span = fit[:3]
        spread = variance * seconds * (span + seconds) // (DAY * span)
        return rate * seconds // DAY, _isqrt(spread)

    def level_at(self, now):
        """The robust level: the median of the last readings, each carried to `now` at the rate."""
        if not self._recent:
            return None
        rate = self.rate() or 0
        levels = [level - _ceil_div(rate * (now - t), MILLI_DAY) for t, level in self._recent]
        return _upper_median(levels)

    def latest(self):
        """The latest reading [t, level] taken or held for confirmation, or None."""
        return self._pending or (self._recent[-1] if self._recent else None)

    def _check_time(self, t):
        _check_int(t, 0, MAX_INT, "time")
        last = self.latest()
        _require(last is None or t >= last[0], "readings must come in time order")

    def _new_segment(self):
        self._segment += 1
        self._recent = []

    def _keep(self, t, level):
        if not self._points:
            self._origin = t
        t -= self._origin
        last = self._points[-1] if self._points else None
        if last is not None and last[2] == self._segment and t - last[0] < self.min_interval:
            return
        self._points.append((t, level, self._segment))
        if len(self._points) > self.window:
            self._points.pop(0)
        self._stale = True

    def _model(self):
        if self._stale:
            self._fit = self._fit_points()
            self._stale = False
        return self._fit

    def _segments(self):
        """The kept points split into runs of one segment each."""
        runs, start, points = [], 0, self._points
        for i in range(1, len(points) + 1):
            if i == len(points) or points[i][2] != points[start][2]:
                runs.append(points[start:i])
                start = i
        return runs

    def _fit_points(self):
        """(rate, variance of a day's use in milli-units squared, seconds of data, the rate over
        the last week of readings alone or None) or None.

        Each rate is the weighted Theil-Sen slope of a line of use against time made of the
        segments stitched end to end (the time and the level's rise from one segment to the next
        left out), so pairs span refills: with short segments alone, use in bursts (print jobs)
        would look slower than it is, as most short pairs see none."""
        line, t, used, last = [], 0, 0, None  # [time read, time stitched, use so far]
        for point in self._points:
            if last is not None and last[2] == point[2]:
                t, used = t + point[0] - last[0], used + last[1] - point[1]
            line.append((point[0], t, used))
            last = point
        if not line:
            return None
        slopes = [_median_of(lambda: _pair_slopes(line, since))
                  for since in (0, line[-1][0] - _RECENT_USE)]
        slopes = [None if slope is None else max(0, slope) for slope in slopes]
        rate = slopes[0]
        if rate is None:
            return None
        span = 0
        for run in self._segments():
            span += run[-1][0] - run[0][0]
        deviations = []  # squared deviation of use from the rate between neighbours, per day
        for run in self._segments():
            for i in range(1, len(run)):
                dt = run[i][0] - run[i - 1][0]
                if dt > 0:
                    deviation = (run[i - 1][1] - run[i][1]) * 1000 - rate * dt // DAY
                    deviations.append(deviation * deviation * DAY // dt)
        variance = _upper_median(deviations) * 10000 // _MEDIAN_CHI2
        return rate, variance, span, slopes[1]

    def to_state(self):
        """The estimator as plain data."""
        return {
            "window": self.window,
            "min_interval": self.min_interval,
            "max_gap": self.max_gap,
            "noise": self.noise,
            "segment": self._segment,
            "points": [[p[0] + self._origin, p[1], p[2]] for p in self._points],
            "recent": [list(r) for r in self._recent],
            "pending": None if self._pending is None else list(self._pending),
            "last": self._last,
            "before": None if self._before is None else list(self._before),
        }

class Forecast:
    """Seconds until `level` units run out: `low` <= `expected` <= `high`.

    `known` is False while the level or the rate is unknown (all three None). With `known` True,
    None means never at the rate seen (no use). The band is `expected` plus or minus Z standard
    deviations of the time the level lasts (the deviation of use over `expected`, over the rate).
    """

    def __init__(self, level, estimator):
        rate = None if level is None else estimator.rate()
        self.known = rate is not None
        self.low = self.expected = self.high = None
        if rate:
            expected = level * MILLI_DAY // rate
            margin = Z * estimator.use_over(expected)[1] * DAY // rate
            self.low = max(0, expected - margin)
            self.expected = expected
            self.high = expected + margin

    def days(self):
        """The protocol's days-to-empty map {est, lo, hi}: whole days, capped; None if unknown."""
        if not self.known:
            return None
        return {"est": _days(self.expected), "lo": _days(self.low), "hi": _days(self.high)}


def _days(seconds):
    return MAX_DAYS if seconds is None else min(MAX_DAYS, seconds // DAY)


class Consumable:
    """One consumable slot: what is in it, what is coming, and when and how much to reorder.

    Amounts are in the slot's `unit`; orders, deliveries and `spares` count items of `pack` units
    (a cartridge of 1000 pages, a 1000 g bag of beans). The inventory position is the level plus
    unopened spares plus open orders, so an order already placed covers its need and no second one
    is triggered. A delivered order becomes spares; a refill the sensor sees uses them up.

    `lead_time` and `lead_spread` are the expected order-to-delivery time and how much later it
    may be, in seconds. `late`: how late deliveries come, in seconds: half the spread until one
    is seen, then the root mean square of the delays seen, each new one weighing a quarter. `safety` is the least safety stock in units (default: none once the usage rate
    is known, the safety margin of `cover` being the forecast's own; while it is unknown the
    reorder point is a tenth of the capacity); `order_qty` is the least number of items per order.
    `ship_cost` (per order) and `hold_cost` (per item and year) are minor units of one currency:
    with both, an order holds the items that balance the two, but fills the slot no more than
    full when it comes; else it fills up to capacity. `shelf_life`: seconds an item keeps after
    delivery until it goes into the slot (None: it keeps); no order holds one that would sit
    longer. `away`: [start, end] spans of unix seconds in which the owner said the slot will not
    be used (a trip): `fresh` counts no use in them, so a perishable is not bought to go stale
    over a holiday.
    """

    def __init__(self, slot: str, unit: str, capacity: int, pack: "int | None" = None,
                 sku: "str | None" = None, lead_time: int = 3 * DAY, lead_spread: int = 2 * DAY,
                 safety: "int | None" = None, order_qty: "int | None" = None,
                 estimator: "RateEstimator | None" = None, ship_cost: int = 0,
                 hold_cost: int = 0, shelf_life: "int | None" = None,
                 away: "list | None" = None) -> None:
        self.slot = _check_token(slot, "slot")
        self.unit = _check_token(unit, "unit")
        self.capacity = _check_int(capacity, 1, _MAX_UNITS, "capacity")
        self.pack = capacity if pack is None else _check_int(pack, 1, _MAX_UNITS, "pack")
        _require(sku is None or isinstance(sku, str) and 0 < len(sku) <= 64, "sku: 1..64 chars")
        self.sku = sku
        self.lead_time = _check_int(lead_time, 0, MAX_INT, "lead_time")
        self.lead_spread = _check_int(lead_spread, 0, MAX_INT, "lead_spread")
        self.safety = _check_int(safety or 0, 0, _MAX_UNITS, "safety")
        _require(order_qty is None or is_int(order_qty) and 0 < order_qty <= MAX_ITEMS,
                 "order_qty must be None or an int in 1..%d" % MAX_ITEMS)
        self.order_qty = order_qty
        self.ship_cost = _check_int(ship_cost, 0, _MAX_UNITS, "ship_cost")
        self.hold_cost = _check_int(hold_cost, 0, _MAX_UNITS, "hold_cost")
        _require(shelf_life is None or is_int(shelf_life) and DAY <= shelf_life <= MAX_DAYS * DAY,
                 "shelf_life must be None or an int in %d..%d seconds" % (DAY, MAX_DAYS * DAY))
        self.shelf_life = shelf_life
        self.away = _check_away(away)
        self.late = lead_spread // 2  # seconds: how late deliveries come, see `receive`
        self.why = None  # how reorder() chose its quantity, a sentence fragment
        if estimator is None:
            estimator = RateEstimator(noise=max(1, capacity // 50))
        self.estimator = estimator
        self.spares = 0
        self._arrived = [0, 0]  # the last delivery: [time of the last reading before it, items]
        self._orders = {}  # order id -> items

    # -- readings
    def read(self, now, level):
        """A level reading from the sensor; a refill it reveals uses up spares. Returns the rise.

        A slot read empty (within a quarter of the noise) twice, half a day apart or more, while
        spares are counted has none: they went in unseen (a sensor offline at the refill) or
        elsewhere, and counting them would stop reordering; but not while a higher reading waits
        to be confirmed as a refill (the two empty readings are then not the latest)."""
        est = self.estimator
        rise = est.add_level(now, level)
        self._use_spares(rise, est._recent[0][0] if rise else now)
        last = est._recent[-2:]
        if self.spares and est._pending is None and len(last) > 1 and \
                last[1][0] - last[0][0] >= DAY // 2 and \
                max(last[0][1], last[1][1]) <= est.noise // 4:
            self.spares = 0
        return rise

    def use(self, now, used):
        """A usage report: `used` units since the last report (pages printed, doses dispensed)."""
        self.estimator.add_usage(now, used)

    def refill(self, now, level=None):
        """The host knows the slot was refilled, to `level` (default: full). Returns the rise."""
        rise = self.estimator.refill(now, self.capacity if level is None else level)
        self._use_spares(rise, now)
        return rise

    def _use_spares(self, rise, start):
        """A refill of `rise` units, first read at `start`, used up spares: but not those of a
        delivery that came after it began (a refill the sensor saw late, as it came back online,
        was made with a spare the device had already written off as gone)."""
        if rise > 0:
            kept = self._arrived[1] if start <= self._arrived[0] else 0
            used = max(1, (rise + self.pack // 2) // self.pack)
            self.spares = max(min(kept, self.spares), self.spares - used)

    # -- orders
    def add_order(self, order_id, items):
        """Count a placed (or shipped) order as incoming; placing it again is a no-op."""
        _check_order_id(order_id)
        _check_int(items, 1, MAX_ITEMS, "items")
        known = self._orders.get(order_id)
        _require(known is None or known == items, "order already open with another quantity")
        _require(known is not None or len(self._orders) < MAX_ORDERS, "too many open orders")
        self._orders[order_id] = items

    def receive(self, order_id, items=None, late=0):
        """The order was delivered (`items` of it, default all), `late` seconds after the promised
        time: it becomes spares. Returns False, changing nothing, if the order is not open (say, a
        repeated delivery)."""
        if order_id not in self._orders:
            return False
        late = _check_int(late, 0, MAX_DAYS * DAY, "late")
        self.late = _isqrt((3 * self.late * self.late + late * late) // 4)
        ordered = self._orders.pop(order_id)
        delivered = ordered if items is None else _check_int(items, 0, MAX_ITEMS, "items")
        self.spares = min(MAX_SPARES, self.spares + delivered)
        last = self.estimator.latest()
        self._arrived = [last[0] if last else 0, delivered]  # after the reading at [0]
        return True

    def cancel(self, order_id):
        """The order was cancelled: it no longer counts. False if it was not open."""
        return self._orders.pop(order_id, None) is not None

    def open_orders(self):
        """{order id: items} of the orders placed and not yet delivered or cancelled."""
        return dict(self._orders)

    def incoming(self):
        """Units on open orders."""
        return sum(self._orders.values()) * self.pack

    # -- decisions
    def level(self, now):
        """The level now, 0..capacity, carried forward from the last readings; None before any."""
        level = self.estimator.level_at(now)
        return None if level is None else max(0, min(self.capacity, level))

    def position(self, now):
        """Inventory position in units: level + unopened spares + open orders (None: no level)."""
        level = self.level(now)
        return None if level is None else level + self.spares * self.pack + self.incoming()

    def forecast(self, now):
        """When the slot runs empty, from now."""
        return Forecast(self.level(now), self.estimator)

    def cover(self, seconds):
        """(expected use, safety stock): the units the stock must hold to last `seconds` from
        now (an order due to arrive then is in time while it has both); None while the rate is
        unknown. Running out is planned for at the higher of `rates`, so a change of use is met
        at once. The safety stock is Z standard deviations of what the stock must cover: the use
        (day to day, and the rate's own error, which shrinks as data accrues) and the use while a
        delivery comes `late`; never below `safety`."""
        use = self.estimator.use_over(seconds)
        if use is None:
            return None
        rate, deviation = self.estimator.rates()[1], use[1]
        expected, late = rate * seconds // DAY, rate * self.late // DAY
        margin = Z * _isqrt(deviation * deviation + late * late)
        return _ceil_div(expected, 1000), max(self.safety, _ceil_div(margin, 1000))

    def reorder_point(self):
        """Units: what must be in stock to last the lead time (`cover`). While the rate is
        unknown, `safety` or a tenth of the capacity, the more."""
        cover = self.cover(self.lead_time)
        return max(self.safety, self.capacity // 10) if cover is None else cover[0] + cover[1]

    def reorder(self, now):
        """Items to order now: 0 unless the inventory position is at or below the reorder point.

        Without costs: up to capacity, and enough to get above the reorder point (so the next
        check does not order again). With both costs: the economic order quantity, sqrt(2 x use x
        ship_cost / hold_cost), or enough to get above the reorder point if more, but no more
        than fill the slot when the order comes with the safety stock left (whole items, at
        least one), and one item more where an item is smaller than the slot (the economic
        quantity asked for more, and that item waits on the shelf only until an item's worth is
        used): more would only sit on the shelf, and a decision waits for an order on its way.
        Always at least `order_qty`, and never more than `fresh` allows. `why` says what chose
        the quantity, or is None.
        """
        self.why = None
        position = self.position(now)
        point = self.reorder_point()
        if position is None or position > point:
            return 0
        pack, rate = self.pack, self.estimator.rate() or 0
        least = _ceil_div(point + 1 - position, pack)
        items = max(_ceil_div(self.capacity - position, pack), least)
        if self.ship_cost and self.hold_cost:
            items = _isqrt(2 * rate * 365 * self.ship_cost // (1000 * pack * self.hold_cost))
            items = max(items, least)
            self.why = "%d balance shipping against stock held" % items
            cover = self.cover(self.lead_time)  # what is left when the order comes
            full = _ceil_div(self.capacity - (cover[1] if cover else point), pack)
            full += 1 if pack < self.capacity else 0
            if full < items:
                items = max(1, full)
                self.why = "%d, as more would sit on the shelf when it comes" % items
        return self.fresh(max(items, self.order_qty or 1), now)

    def fresh(self, items, now):
        """`items` ordered now, or fewer if some would go stale (`why` then says so): an item
        goes into the slot when it fits (the stock ahead of it down to capacity less a pack), and
        the last of an order must go in within `shelf_life` of its delivery at the pessimistic use
        (the lower rate of `rates`, less Z deviations), the order coming after `lead_time` with the
        safety stock left. No use is counted while the owner is `away`: such time before the
        delivery leaves more stock when it comes (at the higher rate), and within `shelf_life`
        after it uses none. At least one, at most MAX_ITEMS."""
        rates = self.estimator.rates()
        if self.shelf_life and rates and rates[0]:
            use = self.estimator.use_over(self.shelf_life)
            comes = now + self.lead_time
            idle = self._away(comes, comes + self.shelf_life)
            kept = rates[1] * self._away(now, comes) // DAY  # milli-units not used before it comes
            low = (rates[0] * (self.shelf_life - idle) // DAY - Z * use[1] - kept) // 1000
            left = self.cover(self.lead_time)[1]
            most = max(1, (low + self.capacity - left) // self.pack)
            if most < items:
                items = most
                self.why = "%d, as more would go stale before use" % items
        return min(items, MAX_ITEMS)

    def _away(self, start, end):
        """Seconds of `away` within start..end."""
        total = 0
        for begin, until in self.away:
            total += max(0, min(until, end) - max(begin, start))
        return total

    def status(self, now):
        """The protocol's slot-status map: ints and strings only."""
        level = self.level(now)
        _require(level is not None, "no level reading yet")
        status = {"slot": self.slot, "unit": self.unit, "level": level, "cap": self.capacity,
                  "rate": min(MAX_RATE, self.estimator.rate() or 0), "spare": self.spares}
        if self.sku is not None:
            status["sku"] = self.sku
        empty = self.forecast(now).days()
        if empty is not None:
            status["empty"] = empty
        return status

    # -- state
    def to_state(self):
        """The whole consumable as plain data (ints, strings, bytes, lists, dicts, None)."""
        return {
            "v": STATE_VERSION,
            "slot": self.slot,
            "unit": self.unit,
            "cap": self.capacity,
            "pack": self.pack,
            "sku": self.sku,
            "lead": self.lead_time,
            "lead_spread": self.lead_spread,
            "safety": self.safety,
            "order_qty": self.order_qty,
            "ship": self.ship_cost,
            "hold": self.hold_cost,
            "shelf": self.shelf_life,
            "away": [list(span) for span in self.away],
            "late": self.late,
            "spares": self.spares,
            "arrived": list(self._arrived),
            "orders": [[order_id, items] for order_id, items in self._orders.items()],
            "estimator": self.estimator.to_state(),
        }

# The optional settings of a consumable in a device's config (Consumable's own, and min_interval).
SETTINGS = ("pack", "lead_time", "lead_spread", "safety", "order_qty", "ship_cost", "hold_cost",
            "shelf_life", "away", "min_interval")


def configured(slot, unit, capacity, sku=None, min_interval=3 * 3600, **settings):
    """A Consumable as a device's config describes it (device.toml on a Pi, config.json on a
    board): its rate estimate keeps readings `min_interval` seconds apart and takes a fiftieth of
    the capacity as sensor noise; `settings` are Consumable's."""
    estimator = RateEstimator(min_interval=min_interval, noise=max(1, capacity // 50))
    return Consumable(slot, unit, capacity, sku=sku, estimator=estimator, **settings)
