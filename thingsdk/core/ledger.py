"""Spend and order counts per period, with reservations: the history budgets and recurrence need.

One entry per order id (the idempotency key): reserved when the device decides to order, committed
when the vendor accepts, dropped when released (rejected, cancelled, expired). Reserved and
committed entries count alike, so orders in flight together can never overrun a cap.

Periods (docs/protocol.md): "month" is the UTC calendar month, "rolling" the last `window` seconds
(an entry made at t counts while now - window < t). The ledger's clock never runs backward: a
`now` earlier than the latest seen is taken as the latest, so a clock stepping back cannot reopen
room that was spent. Bounded memory: entries older than the longest period of the current limits
(at most 366 days) count against nothing and are pruned on every reservation; at most MAX_ENTRIES
are kept, and a reservation beyond that is refused ("full"), so fail closed. A new mandate with
a longer period sees only what the previous limits kept.

Settled orders: a committed entry older than SETTLE_AFTER is kept without its order id, as 13
bytes (time, amount, currency) in one bytes object, which is all a budget or order count over a
long rolling period needs of it: a year of daily orders then keeps 8.4 KB of a board's heap, not
43 KB (bench/firmware.py, on a 32-bit MicroPython), and takes far less to store. Such an
order can no longer be released: a cancel confirmed that late leaves its spend counted (fail
closed), and its id is no longer known to `state_of` or as a duplicate. Portable and sans-IO.
"""

from thingsdk.core.check import const, int_in

DAY = 86400
MAX_ENTRIES = 366  # an order a day over the longest window
MAX_TIME = 253402300799
MAX_AMOUNT = 10 ** 12
_MAX_ID = const(64)
SETTLE_AFTER = 35 * DAY  # a committed order older than this is settled: counted, id let go
STATE_VERSION = 2  # 1: without settled orders
RECORD = const(13)  # bytes of a settled order: time (5), amount (5), currency (3 letters)
RESERVED, COMMITTED = "reserved", "committed"
LIMIT_KINDS = ("budget", "recurrence")


def over(kind, params, usage, amount, currency):
    """Why one more order of amount would break a budget or recurrence given its usage
    (Ledger.usage), or None."""
    orders, committed, reserved = usage
    if kind == "recurrence":
        return "over-recurrence" if orders >= params["max"] else None
    if currency != params["cur"]:
        return "wrong-currency"
    return "over-budget" if committed + reserved + amount > params["max"] else None


class LedgerError(ValueError):
    """Malformed ledger state or argument."""


def _require(ok, message):
    if not ok:
        raise LedgerError(message)


def _int(value, low, high, name):
    return int_in(value, low, high, name, LedgerError)


def _check_entry(order_id, amount, currency):
    _require(isinstance(order_id, bytes) and 0 < len(order_id) <= _MAX_ID,
             "an order id is 1..%d bytes" % _MAX_ID)
    _int(amount, 0, MAX_AMOUNT, "amount")
    _require(isinstance(currency, str) and len(currency) == 3
             and all("A" <= c <= "Z" for c in currency), "a currency is 3 letters A-Z")


def settled_record(t, amount, currency):
    """A settled order's 13 bytes: time and amount big-endian, the currency's letters."""
    return t.to_bytes(5, "big") + amount.to_bytes(5, "big") + currency.encode()


def settled_orders(records):
    """(time, amount, the currency's letters as bytes) of each settled order in `records`, in
    their order."""
    for i in range(0, len(records), RECORD):
        amount = int.from_bytes(records[i + 5:i + 10], "big")
        yield _time(records, i), amount, records[i + 10:i + 13]


def _time(records, i):
    return int.from_bytes(records[i:i + 5], "big")


def month_start(t):
    """The first second of the UTC calendar month that unix time t is in."""
    days = t // DAY
    doe = (days + 719468) % 146097  # day of the 400-year era, counted from a 1 March
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)  # day of the year, from 1 March
    day_of_month = doy - (153 * ((5 * doy + 2) // 153) + 2) // 5
    return (days - day_of_month) * DAY


def period_start(params, now):
    """The first second of the period of a budget or recurrence constraint that now is in."""
    if params["period"] == "month":
        return month_start(now)
    return now - params["window"] + 1


class Ledger:
    """Orders counted against the budget and recurrence `limits` ([kind, params] pairs, as in a
    mandate: `Mandate.limits()`)."""

    def __init__(self, limits=()):
        self.latest = 0
        self._entries = {}  # order id -> [time, amount, currency, state]
        self._settled = b""  # settled orders, settled_record() each
        self.count_against(limits)

    def count_against(self, limits):
        """Count the entries against `limits` from now on (a new mandate's)."""
        for limit in limits:
            _require(limit[0] in LIMIT_KINDS, "a limit is a budget or recurrence constraint")
        self.limits = [[kind, params] for kind, params in limits]

    def _clock(self, now):
        self.latest = max(self.latest, _int(now, 0, MAX_TIME, "now"))
        return self.latest

    def reserve(self, order_id, amount, currency, now):
        """Reserve an order's total; return "reserved", "duplicate" (the id already holds this
        amount: nothing changes) or why not: "conflict" (the id holds another amount),
        "over-budget", "over-recurrence", "wrong-currency" (a budget in another one), "full"."""
        _check_entry(order_id, amount, currency)
        now = self._clock(now)
        known = self._entries.get(order_id)
        if known is not None:
            return "duplicate" if known[1] == amount and known[2] == currency else "conflict"
        self.prune(now)
        for kind, params in self.limits:
            reason = self.refusal(kind, params, amount, currency, now)
            if reason:
                return reason
        if len(self._entries) + len(self._settled) // RECORD >= MAX_ENTRIES:
            return "full"
        self._entries[order_id] = [now, amount, currency, RESERVED]
        return "reserved"

    def commit(self, order_id):
        """The vendor accepted the order: its reservation is spend now. False if unknown."""
        entry = self._entries.get(order_id)
        if entry is not None:
            entry[3] = COMMITTED
        return entry is not None

    def release(self, order_id):
        """The order was rejected, cancelled or expired: it counts no more. False if unknown."""
        return self._entries.pop(order_id, None) is not None

    def state_of(self, order_id):
        """RESERVED, COMMITTED, or None for an order the ledger does not hold."""
        entry = self._entries.get(order_id)
        return None if entry is None else entry[3]

    def usage(self, params, now):
        """(orders, committed, reserved) in the period of a budget or recurrence that now is in;
        the amounts add up the entries in the params' currency (`cur`) only."""
        start = period_start(params, max(now, self.latest))
        currency = params.get("cur")
        orders = committed = reserved = 0
        for t, amount, entry_currency, state in self._entries.values():
            if t >= start:
                orders += 1
                if entry_currency == currency:
                    if state == COMMITTED:
                        committed += amount
                    else:
                        reserved += amount
        letters = currency and currency.encode()
        for t, amount, settled_letters in settled_orders(self._settled):
            if t >= start:
                orders += 1
                if settled_letters == letters:
                    committed += amount
        return orders, committed, reserved

    def refusal(self, kind, params, amount, currency, now):
        """Why one more order of amount would break this budget or recurrence now, or None."""
        return over(kind, params, self.usage(params, now), amount, currency)

    def prune(self, now):
        """Drop the entries that count against no limit any more, and settle the committed ones
        older than SETTLE_AFTER."""
        now = self._clock(now)
        horizon = now
        for _, params in self.limits:
            horizon = min(horizon, period_start(params, now))
        for order_id in [k for k, entry in self._entries.items() if entry[0] < horizon]:
            del self._entries[order_id]
        records = self._settled
        if any(_time(records, i) < horizon for i in range(0, len(records), RECORD)):
            kept = bytearray()  # grown in place: no record is held as an object of its own
            for i in range(0, len(records), RECORD):
                if _time(records, i) >= horizon:
                    kept.extend(records[i:i + RECORD])
            records = bytes(kept)
        settling = [(entry[0], k) for k, entry in self._entries.items()
                    if entry[3] == COMMITTED and entry[0] <= now - SETTLE_AFTER]
        settling.sort()
        for _, order_id in settling:
            records += settled_record(*self._entries.pop(order_id)[:3])
        self._settled = records

    def to_state(self):
        """The entries as plain data (CBOR-able), oldest first, and the settled orders' bytes;
        the limits come from the mandate."""
        entries = [[order_id] + entry for order_id, entry in self._entries.items()]
        entries.sort(key=lambda e: (e[1], e[0]))
        return {"v": STATE_VERSION, "latest": self.latest, "entries": entries,
                "settled": self._settled}
