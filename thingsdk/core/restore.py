"""State read back: a consumable, its rate estimate, the spending ledger and the replay guard
rebuilt from what their `to_state` wrote, each part checked, a stored consumable carried on with
the settings the config now gives, and the mandate held verified again. A device runs this as it
starts, and a board only then: its application drops the module once started, so the heap does
not keep this code between orders. Each function raises its class's error (ConsumableError,
LedgerError, StateError) when the state is malformed. Portable.

This module is the other half of each class's state: it sets the attributes `to_state` reads,
and uses the checks of each class's module.
"""

from thingsdk.core import consumable as c
from thingsdk.core import ledger as lg
from thingsdk.core import mandate as md
from thingsdk.core import replay as rp


def estimator(state):
    """A RateEstimator from `RateEstimator.to_state` data."""
    need = c._require
    check = c._check_int
    need(isinstance(state, dict), "estimator state must be a dict")
    try:
        est = c.RateEstimator(state["window"], state["min_interval"], state["max_gap"],
                              state["noise"])
        segment = check(state["segment"], 0, c.MAX_INT, "segment")
        points = c._check_list(state["points"], "points", est.window)
        recent = c._check_list(state["recent"], "recent", c.RECENT)
        pending = state["pending"]
    except KeyError as exc:
        raise c.ConsumableError("estimator state lacks %s" % exc)
    last_t, last_segment = 0, 0
    for p in points:
        need(isinstance(p, list) and len(p) == 3, "a point must be [t, level, segment]")
        check(p[0], last_t, c.MAX_INT, "point time (in order)")
        check(p[1], -c.MAX_INT, c.MAX_INT, "point level")
        last_segment = check(p[2], last_segment, segment, "point segment (in order)")
        last_t = p[0]
    last_t = 0
    for r in recent + ([] if pending is None else [pending]):
        need(isinstance(r, list) and len(r) == 2, "a recent reading must be [t, level]")
        last_t = check(r[0], last_t, c.MAX_INT, "recent time (in order)")
        check(r[1], -c.MAX_INT, c.MAX_INT, "recent level")
    need(pending is None or recent, "a pending reading needs recent ones")
    est._segment = segment
    est._origin = points[0][0] if points else 0
    est._points = [(p[0] - est._origin, p[1], p[2]) for p in points]
    est._recent = [list(r) for r in recent]
    est._pending = None if pending is None else list(pending)
    last, before = state.get("last"), state.get("before")
    est._last = None if last is None else check(last, -c.MAX_INT, c.MAX_INT, "last level")
    if before is not None:
        need(isinstance(before, list) and len(before) == 2, "before must be [t, level]")
        est._before = [check(before[0], 0, c.MAX_INT, "before time"),
                       check(before[1], -c.MAX_INT, c.MAX_INT, "before level")]
    est._stale = True
    return est


def consumable(state):
    """A Consumable from `Consumable.to_state` data."""
    need = c._require
    check = c._check_int
    need(isinstance(state, dict), "consumable state must be a dict")
    need(state.get("v") == c.STATE_VERSION, "unsupported consumable state version")
    try:
        kept = c.Consumable(state["slot"], state["unit"], state["cap"], state["pack"],
                            state["sku"], state["lead"], state["lead_spread"], state["safety"],
                            state["order_qty"], estimator(state["estimator"]),
                            state.get("ship", 0), state.get("hold", 0), state.get("shelf"),
                            state.get("away"))
        kept.late = check(state.get("late", 0), 0, c.MAX_DAYS * c.DAY, "late")
        spares = state["spares"]
        orders = state["orders"]
    except KeyError as exc:
        raise c.ConsumableError("consumable state lacks %s" % exc)
    kept.spares = check(spares, 0, c.MAX_SPARES, "spares")
    arrived = state.get("arrived", [0, 0])
    need(isinstance(arrived, list) and len(arrived) == 2, "arrived must be [time, items]")
    kept._arrived = [check(arrived[0], 0, c.MAX_INT, "arrived time"),
                     check(arrived[1], 0, c.MAX_SPARES, "arrived items")]
    for entry in c._check_list(orders, "orders", c.MAX_ORDERS):
        need(isinstance(entry, list) and len(entry) == 2, "an order must be [id, items]")
        need(c._check_order_id(entry[0]) not in kept._orders, "duplicate order id")
        kept.add_order(entry[0], entry[1])
    return kept


def carry_on(stored, configured):
    """The consumable a device keeps (`stored`, from its state) with the settings its config now
    gives (`configured`): a changed sku, pack, lead time, safety stock, order quantity, costs,
    shelf life, time away or reading interval takes effect; a changed unit or capacity, which the
    stored readings are measured in, is refused (ConsumableError says what to do)."""
    for name in ("unit", "capacity"):
        was, now = getattr(stored, name), getattr(configured, name)
        c._require(was == now, "slot %s: its %s was %s and the config now says %s: the state "
                               "kept is measured in the old one; set it back, or start this "
                               "slot afresh (move the state folder aside)"
                   % (stored.slot, name, was, now))
    for name in ("sku", "pack", "lead_time", "lead_spread", "safety", "order_qty", "ship_cost",
                 "hold_cost", "shelf_life", "away"):
        setattr(stored, name, getattr(configured, name))
    stored.estimator.min_interval = configured.estimator.min_interval
    return stored


def ledger(state, limits=()):
    """A Ledger from `Ledger.to_state` data, counting against `limits` (the mandate's)."""
    need = lg._require
    version = state.get("v") if isinstance(state, dict) else None
    need(version in (1, lg.STATE_VERSION), "unsupported ledger state")  # 1: none settled
    fields = ("v", "latest", "entries") + (("settled",) if version == lg.STATE_VERSION else ())
    need(len(state) == len(fields) and all(f in state for f in fields),
         "ledger state has other fields")
    kept = lg.Ledger(limits)
    latest = lg._int(state["latest"], 0, lg.MAX_TIME, "latest")
    entries, settled = state["entries"], state.get("settled", b"")
    need(isinstance(settled, bytes) and len(settled) % lg.RECORD == 0,
         "settled orders are bytes, %d a record" % lg.RECORD)
    need(isinstance(entries, list) and len(entries) + len(settled) // lg.RECORD
         <= lg.MAX_ENTRIES, "at most %d entries and settled orders" % lg.MAX_ENTRIES)
    for t, amount, letters in lg.settled_orders(settled):
        need(all(65 <= c <= 90 for c in letters), "a currency is 3 letters A-Z")
        lg._int(amount, 0, lg.MAX_AMOUNT, "amount")
        lg._int(t, 0, latest, "settled order time")
    kept._settled = settled
    for entry in entries:
        need(isinstance(entry, list) and len(entry) == 5,
             "an entry is [order id, time, amount, currency, state]")
        order_id, t, amount, currency, entry_state = entry
        lg._check_entry(order_id, amount, currency)
        lg._int(t, 0, latest, "entry time")
        need(entry_state in (lg.RESERVED, lg.COMMITTED), "an entry is reserved or committed")
        need(order_id not in kept._entries, "duplicate order id")
        kept._entries[order_id] = [t, amount, currency, entry_state]
    kept.latest = latest
    return kept


def replay_guard(obj, **options):
    """A ReplayGuard from `ReplayGuard.to_state` data; `options` are the constructor's settings.
    The window size is taken from the state; the oldest entries beyond the bounds are dropped."""
    need = rp._require
    need(isinstance(obj, dict), "replay state must be a map")
    keys = set(("v", "window", "senders", "rejections"))
    need(set(obj) == keys, "replay state has wrong keys")
    need(obj["v"] == rp.STATE_VERSION, "unsupported replay state version")
    options.setdefault("window", obj["window"])
    need(options["window"] == obj["window"], "replay state has another window size")
    guard = rp.ReplayGuard(**options)
    rejections = obj["rejections"]
    need(isinstance(rejections, dict), "rejections must be a map")
    for reason, count in rejections.items():
        need(reason in guard.rejections, "unknown rejection reason")
        need(rp._is_uint(count), "rejection count must be a non-negative int")
        guard.rejections[reason] = count
    senders = obj["senders"]
    need(isinstance(senders, list), "senders must be a list")
    for entry in senders:
        need(isinstance(entry, list) and len(entry) == 4, "sender must be a 4-item list")
        kid, highest, bitmap, ids = entry
        need(rp._is_id(kid) and bytes(kid) not in guard._senders, "bad or repeated sender kid")
        need(isinstance(ids, list), "message ids must be a list")
        guard._tick += 1
        window = rp.SequenceWindow(obj["window"], highest, bitmap)
        sender = guard._add_sender(bytes(kid), window)
        for item in ids:
            need(isinstance(item, list) and len(item) == 2, "id must be a 2-item list")
            mid, digest = item
            need(rp._is_id(mid) and bytes(mid) not in sender.ids, "bad or repeated message id")
            need(isinstance(digest, bytes) and len(digest) == 32, "digest must be 32 bytes")
            guard._tick += 1
            rp._add_id(sender, bytes(mid), digest, guard._tick, guard.ids_per_sender)
    return guard


def mandate(token, owner, codec, kid, now, note):
    """The mandate a device holds: its stored `token` verified again for the device `kid` with
    the `owner`'s key; None without one, or when it no longer verifies (`note` says why)."""
    if token is None:
        return None
    try:
        return md.accept(None, token, owner, codec, kid, now)
    except md.MandateError as exc:
        note("the mandate held is no longer valid: %s" % exc)
        return None
