"""The life of one need (a consumable slot running low, or a fault to report), as a sans-IO state
machine: `step(record, event, now, config, new_id) -> (record, effects)`. Portable: plain dicts,
ints and bytes; time and ids come in as arguments (`new_id()` returns 16 random bytes).

The record is a plain, CBOR-encodable dict (`to_state` / `from_state`). The machine never calls
the decision function, the ledger, the consumable or the network: it returns effects, plain
tuples `(kind, need_id, ...)` that the runtime carries out in the order given:

  ("persist", need, record)   write the record crash-safely (it always comes before any "send")
  ("send", need, msg)         msg = {"to", "id", "t", "b", "re", "exp"}: seal with that message id
                              and expiry, and publish; a message id already sealed is published
                              again as the same bytes, never sealed anew (the runtime keeps the
                              bytes, crash-safely, before publishing them)
  ("reserve", need, order_id, total)   ledger; the one effect that may fail: then skip the
                              rest of this need's effects in the list and feed `refused`
  ("commit", need, order_id) / ("release", need, order_id)                  ledger
  ("incoming", need, slot, order_id, qty) / ("received", need, slot, order_id, qty, late) /
  ("cancelled", need, slot, order_id)        the consumable's inventory position (`late`:
                              seconds the delivery came after the offer's promise, 0..30 days)
  ("decide", need, offers, approval)  run the decision over offers ([vendor kid, offer body]
                              pairs; `approval`: the owner's approval message as it came, or
                              None) and feed back `decided`
  ("timer", need, at)         call `tick` at or after `at`
  ("audit", need, entry)      append to the audit log; entries with "ignored" name a message or
                              event that did not fit (the Orders container counts them; its
                              own entries, for what matches no need, have need None)
  ("drop", need)              (Orders only) the closed record may be deleted from storage

Every effect is idempotent, so after a crash `resume(record, now, ...)` may repeat some: it
re-sends what the state still waits on, re-arms the timer and restates money and stock.

A need begins with `start`; then `step` takes the events ("message", msg) with msg = {"from",
"id", "t", "re", "b"} (an opened message, see `from_message`), ("decided", decision),
("tick",), ("cancel", reason) (the owner, on the device), ("refilled",) (the sensor saw a
refill; seen while the order is on its way, it is remembered and closes the need as soon as
the delivery news comes), ("refused", reason) (the ledger refused the reservation) and
("resend", msg_id) (the vendor refused the pending message msg_id as a replay, the device's
counters having been lost: it goes again as a new message).
A decision is a dict:
"action" (buy, ask, wait, refuse, counter), "offer" (the offer id, for buy, ask and counter),
"ask" (for counter: the counter-proposal, a quote-request body naming that offer), "mandate"
(version, for buy), "text" (the sentence for the owner, for ask), "until" (when a wait ends),
"hold_until" (end of the cancel window, counted from the decision), "reason";
`Decision.to_record()` of thingsdk.core.decide has this shape.

A counter decision (thingsdk.core.counter) sends the counter-proposal and goes back to quoting
with the offers held: the vendor's answer, an offer, is decided together with them, and without
an answer by `quote_wait` the offers held are decided on (a counter is never re-sent, so it never
holds up the order). Each counter-proposal counts as a round; a need makes one only while its
rounds are fewer than `counter` (0: offers are taken as they come).

`Orders` keeps the needs of one device, at most one open per slot, and routes events to them.
"""

from thingsdk.core import messages as m
from thingsdk.core.check import const, is_int
from thingsdk.core.consumable import DAY
from thingsdk.core.need import (  # noqa: F401 (VERSION and the limits: the lifecycle's own names)
    APPROVING, ASKS, BUY, CLOSED, DECIDING, DELIVERED, MAX_CLOSED, MAX_IDS, MAX_OFFERS,
    MAX_SHIPMENTS, MONEY, ORDERING, PLACED, QUOTING, RANK, SHIPPED, SKEW, STOCK, SUPPORT, VERSION,
    VISIT_SKU, WAITING, _FIELDS, LifecycleError, _arrival, _close, _copy, _is_id, _offer, _quote,
    _require)

# Which states may follow each state in one step (a state may also stay as it is; a new need
# starts quoting); checked at the end of every step, drawn in docs/architecture.md.
NEXT = const((
    ("quoting", ("deciding", "closed")),
    ("deciding", ("quoting", "waiting", "approving", "ordering", "closed")),
    ("waiting", ("quoting", "deciding", "closed")),
    ("approving", ("deciding", "quoting", "closed")),
    ("ordering", ("placed", "shipped", "delivered", "closed")),
    ("placed", ("shipped", "delivered", "closed")),
    ("shipped", ("delivered", "closed")),
    ("delivered", ("closed",)),
    ("closed", ()),
))

DEFAULTS = {
    "ttl": 6 * 3600,  # lifetime of a sealed message
    "quote_wait": 120,  # first wait for offers (or a support reply); doubles on each retry
    "quote_retries": 3,
    "order_wait": 60,  # first wait for a receipt; doubles on each re-send, up to order_wait_max
    "order_wait_max": 3600,
    "order_give_up": 7 * DAY,  # after the first send, an order without receipt is abandoned
    "approval_ttl": 12 * 3600,  # how long the owner has to answer
    "approval_timeout": "decline",  # or "requote": ask again with a fresh offer
    "wait": 3600,  # a wait decision without `until` waits this long
    "rounds": 4,  # fresh quote rounds (after a wait or an approval timeout) before giving up
    "counter": 0,  # a need may counter an offer while its rounds (of both kinds) are fewer
    "news_wait": 6 * 3600,  # after the expected arrival with no delivery, ask the vendor
    "late": 7 * DAY,  # after the expected arrival, a placed or shipped order is overdue
    "refill_wait": 30 * DAY,  # after delivery, the need closes without a refill seen
}

def make_config(overrides=None):
    """DEFAULTS with `overrides` applied, checked."""
    cfg = dict(DEFAULTS)
    for key, value in (overrides or {}).items():
        _require(key in DEFAULTS, "unknown lifecycle setting %r" % key)
        cfg[key] = value
    for key in DEFAULTS:
        if key != "approval_timeout":
            _require(is_int(cfg[key]) and cfg[key] >= 0, "%s must be an int >= 0" % key)
    _require(cfg["ttl"] > SKEW, "ttl must exceed %d s" % SKEW)
    _require(cfg["news_wait"] > 0, "news_wait must be at least 1 s")
    _require(cfg["approval_timeout"] in ("decline", "requote"),
             "approval_timeout is 'decline' or 'requote'")
    return cfg


def from_message(msg, data=None):
    """The event data of an opened messages.Message; `data`: the message as it came (an
    owner's approval is kept whole, for the order to carry to the vendor)."""
    return {"from": msg.kid, "id": msg.id, "t": msg.type, "re": msg.re, "b": msg.body,
            "data": data}


# ---- starting a need ---------------------------------------------------------------------------

def start(need_id, kind, slot, ask, vendor, owner, now, config, new_id):
    """A new need and its first effects: ask the vendor (a quote-request for BUY, `ask` its body;
    a support-request for SUPPORT). `vendor` and `owner` are key ids."""
    _require(_is_id(need_id) and kind in ASKS, "a need has a 16-byte id and a kind")
    _require(isinstance(vendor, bytes) and isinstance(owner, bytes), "vendor and owner are kids")
    ask = _copy(ask)
    m.check_body(ASKS[kind], ask)
    _require(kind == SUPPORT or ask["slot"] == slot, "the quote request is for another slot")
    record = {key: None for key in _FIELDS}
    record.update({"v": VERSION, "need": need_id, "kind": kind, "slot": slot, "at": now,
                   "vendor": vendor, "owner": owner, "ask": ask, "ids": [], "tries": 0,
                   "rounds": 0, "offers": [], "hold": 0, "shipments": []})
    s = _Step(record, now, config, new_id)
    _quote(s)
    return s.finish()


# ---- one step ----------------------------------------------------------------------------------

class _Step:
    """One transition in the making: a copy of the record and the effects it leads to."""

    def __init__(self, record, now, config, new_id):
        _require(is_int(now) and now >= 0, "now must be an int >= 0")
        self.before = record
        self.rec = record.copy()  # a step replaces, never changes, what the record holds; one
        # block of its size, where dict(record) grew the copy block by block
        self.now, self.cfg, self.new_id = now, config, new_id
        self.sends = []
        self.audits = []

    def send(self, msg_type, body, to, reply_to=None):
        """Send a new message: a fresh message id, recorded before it goes out."""
        msg_id = self.new_id()
        _require(_is_id(msg_id), "new_id() must return 16 bytes")
        msg = {"to": to, "id": msg_id, "t": msg_type, "b": body, "re": reply_to,
               "exp": self.now + self.cfg["ttl"]}
        self.rec["out"] = msg
        self.rec["ids"] = (self.rec["ids"] + [[msg_id, msg_type]])[-MAX_IDS:]
        self.sends.append(("send", self.rec["need"], msg))

    def resend(self):
        """Send the pending message again: the same message (bytes) while it is fresh, else a
        new message with the same body."""
        out = self.rec["out"]
        if self.now + SKEW < out["exp"]:
            self.sends.append(("send", self.rec["need"], out))
        else:
            self.send(out["t"], out["b"], out["to"], out["re"])

    def wait(self, base, tries, cap=None):
        """Set the deadline: base doubled per try (up to cap), plus up to 25 % spread drawn
        from the need id, so that many devices do not retry in step."""
        delay = base << min(tries, 20)
        if cap is not None:
            delay = min(delay, cap)
        self.rec["due"] = self.now + delay + delay * self.rec["need"][0] // 1024

    def audit(self, entry):
        entry["at"] = self.now
        self.audits.append(("audit", self.rec["need"], entry))

    def ignore(self, reason, what):
        """Something that does not fit: counted and audited, the record left as it was."""
        self.rec = _copy(self.before)
        self.sends = []
        self.audit({"ignored": reason, "what": what, "state": self.rec["state"]})

    def finish(self, resume=False):
        """(record, effects): persist first when the record changed, then money and stock, the
        decision request, the sends, the timer and the audit entries."""
        rec, before, need = self.rec, self.before, self.rec["need"]
        _require(_may_follow(before["state"], rec["state"]),
                 "%s may not follow %s" % (rec["state"], before["state"]))
        effects = []
        if rec != before:
            effects.append(("persist", need, rec))
        for key, effect in (("money", _money_effect), ("stock", _stock_effect)):
            if rec[key] is not None and (resume or rec[key] != before[key]):
                effects.extend(effect(rec))
        if rec["state"] == DECIDING and (resume or before["state"] != DECIDING or
                                         rec["offers"] != before["offers"]):
            effects.append(("decide", need, rec["offers"], rec["appr"]))
        effects.extend(self.sends)
        if rec["due"] is not None and (resume or rec["due"] != before["due"]):
            effects.append(("timer", need, rec["due"]))
        if rec["state"] != before["state"]:
            entry = {"state": rec["state"], "from": before["state"]}
            if rec["state"] == CLOSED:
                entry["reason"] = rec["reason"]
            self.audit(entry)
        return rec, effects + self.audits


def _may_follow(before, after):
    """Whether NEXT lets `after` follow `before` (None: a need starting)."""
    if after == before or before is None and after == QUOTING:
        return True
    for state, following in NEXT:
        if state == before:
            return after in following
    return False


def _money_effect(rec):
    need, oid, money = rec["need"], rec["oid"], rec["money"]
    if money == "reserved":
        return [("reserve", need, oid, rec["order"]["total"])]
    return [("commit" if money == "committed" else "release", need, oid)]


def _stock_effect(rec):
    need, slot, oid, stock = rec["need"], rec["slot"], rec["oid"], rec["stock"]
    if stock == "incoming":
        return [("incoming", need, slot, oid, rec["order"]["qty"])]
    if stock == "received":
        offer = _offer(rec, rec["order"]["offer"])
        late = rec["delivered"][0] - offer["arrive"] if offer else 0
        return [("received", need, slot, oid, rec["delivered"][1], max(0, min(late, 30 * DAY)))]
    return [("cancelled", need, slot, oid)]


def step(record, event, now, config, new_id):
    """Apply one event to a need: (new record, effects). The record passed in is not changed."""
    s = _Step(record, now, config, new_id)
    kind = event[0]
    handler = _EVENTS.get(kind) or _rare().EVENTS.get(kind)
    _require(handler is not None, "unknown event %r" % (kind,))
    if s.rec["state"] == CLOSED and kind != "tick":
        s.ignore("closed", kind if kind != "message" else m.NAMES[event[1]["t"] - 1])
    else:
        handler(s, *event[1:])
    return s.finish()


def resume(record, now, config, new_id):
    """(record, effects) that carry on a need after a restart, from the record as last
    persisted: an order whose message expired gets a new message (persisted first)."""
    s = _Step(record, now, config, new_id)
    out = s.rec["out"]
    if out is not None and (s.rec["state"] == ORDERING or now + SKEW < out["exp"]):
        s.resend()
    return s.finish(resume=True)


# ---- transitions -------------------------------------------------------------------------------

def _accept(s, receipt):
    """The vendor took the order (said so, or shipped or delivered it)."""
    rec = s.rec
    rec.update({"state": PLACED, "receipt": receipt, "money": "committed", "out": None,
                "cancel_until": s.now + rec["hold"], "tries": 0})
    rec["due"] = _arrival(rec) + s.cfg["news_wait"]


# ---- events ------------------------------------------------------------------------------------

def _on_tick(s):
    rec, cfg = s.rec, s.cfg
    if rec["due"] is None or s.now < rec["due"]:
        return
    state = rec["state"]
    if state == QUOTING:
        if rec["offers"]:  # a counter-proposal without answer: decide on the offers held
            rec.update({"state": DECIDING, "due": None, "out": None})
        elif rec["tries"] < cfg["quote_retries"]:
            rec["tries"] += 1
            s.resend()
            s.wait(cfg["quote_wait"], rec["tries"])
        else:
            _close(s, "no-offers" if rec["kind"] == BUY else "no-reply")
    elif state == WAITING:
        _rare()._new_round(s, "too-many-rounds")
    elif state == APPROVING:
        if cfg["approval_timeout"] == "requote":
            _rare()._new_round(s, "approval-timeout")
        else:
            _close(s, "approval-timeout")
    elif state == ORDERING:
        if s.now >= rec["first"] + cfg["order_give_up"]:
            _rare()._cancel_order(s, "device", "no-receipt")
        else:
            rec["tries"] += 1
            s.resend()
            s.wait(cfg["order_wait"], rec["tries"], cfg["order_wait_max"])
    elif state in (PLACED, SHIPPED):
        _rare()._ask_news(s)
    elif state == DELIVERED:
        _close(s, "not-refilled")


def _on_decided(s, decision):
    rec = s.rec
    if rec["state"] != DECIDING:
        return s.ignore("unexpected-decision", "decided")
    action = _check_decision(rec, decision)
    rec["decision"] = {"action": action, "reason": decision.get("reason"),
                       "offer": decision.get("offer"), "at": s.now}
    if action == "buy":
        _order(s, decision)
    elif action == "ask":
        _rare()._ask(s, decision)
    elif action == "counter":  # the offers held stay, to be decided with the vendor's answer
        _require(rec["kind"] == BUY and rec["rounds"] < s.cfg["counter"],
                 "a counter-proposal past the rounds allowed")
        rec["rounds"] += 1
        rec["state"] = QUOTING
        s.send(m.QUOTE_REQUEST, decision["ask"], rec["vendor"])
        s.wait(s.cfg["quote_wait"], 0)
    elif action == "wait":
        until, qty = decision.get("until"), decision.get("qty")
        if rec["kind"] == BUY and is_int(qty) and 0 < qty < rec["ask"]["qty"]:
            ask = dict(rec["ask"])  # fewer, as the mandate allows: asked anew
            ask["qty"] = qty
            rec["ask"] = ask
        rec.update({"state": WAITING, "due": s.now + s.cfg["wait"] if until is None else until})
    else:
        _close(s, decision.get("reason") or "refused")


def _check_decision(rec, decision):
    _require(isinstance(decision, dict), "a decision is a dict")
    action = decision.get("action")
    _require(action in ("buy", "ask", "wait", "refuse", "counter"), "unknown decision action")
    if action in ("buy", "ask", "counter"):
        _require(_offer(rec, decision.get("offer")) is not None,
                 "the decision names an offer this need does not hold")
    if action == "counter":
        ask = decision.get("ask")
        m.check_body(m.QUOTE_REQUEST, ask)
        _require(ask.get("offer") == decision["offer"] and ask["slot"] == rec["slot"],
                 "a counter-proposal answers the offer it names, for this slot")
    if action == "buy":
        mandate = decision.get("mandate")
        _require(is_int(mandate) and mandate > 0, "a buy decision names its mandate version")
    for key in ("until", "hold_until"):
        _require(decision.get(key) is None or is_int(decision[key]), "%s is an int" % key)
    return action


def _order(s, decision):
    """Buy: one order id for this need, reserved and counted before the order goes out."""
    rec = s.rec
    offer = _offer(rec, decision["offer"])
    order_id = s.new_id()
    _require(_is_id(order_id), "new_id() must return 16 bytes")
    body = m.order_body(offer, order_id, decision["mandate"], rec["appr"])
    m.check_body(m.ORDER, body)
    hold_until = decision.get("hold_until")  # the cancel window runs as long after the receipt
    hold = 0 if hold_until is None else max(0, hold_until - s.now)
    rec.update({"state": ORDERING, "oid": order_id, "order": body, "first": s.now, "tries": 0,
                "money": "reserved", "hold": hold})
    if rec["kind"] == BUY:
        rec["stock"] = "incoming"
    s.send(m.ORDER, body, rec["vendor"])
    s.wait(s.cfg["order_wait"], 0)


def _on_refilled(s):
    rec = s.rec
    covered = rec["receipt"] is not None and rec["receipt"][0] == "duplicate"
    if rec["state"] == DELIVERED or (rec["state"] == PLACED and covered):
        _close(s, "refilled")
    elif rec["state"] in (PLACED, SHIPPED):  # the goods came before the vendor's news of them
        rec["refilled"] = s.now
        s.audit({"early": "refilled", "state": rec["state"]})
    else:
        s.ignore("not-delivered", "refilled")


def _on_message(s, msg):
    t = msg["t"]
    handler = _MESSAGES.get(t) or _rare().MESSAGES.get(t)
    if handler is None:
        return s.ignore("unexpected-type", m.NAMES[t - 1])
    rec = s.rec
    if t == m.CANCEL and msg["from"] == rec["owner"]:
        if msg["b"]["order"] != rec["oid"]:
            return s.ignore("unknown-order", "cancel")
        return _rare()._on_cancel(s, msg["b"]["reason"])
    if msg["from"] != (rec["owner"] if t == m.APPROVAL else rec["vendor"]):
        return s.ignore("wrong-sender", m.NAMES[t - 1])
    if t in _ANSWERS and not _answers(rec, msg, _ANSWERS[t]):
        return s.ignore("uncorrelated", m.NAMES[t - 1])
    if t in _ABOUT_ORDER and (rec["oid"] is None or msg["b"]["order"] != rec["oid"]):
        return s.ignore("unknown-order", m.NAMES[t - 1])
    handler(s, msg)


def _answers(rec, msg, asked):
    """Whether msg answers (`re`) one of our messages of a type in `asked`."""
    return msg["re"] is not None and any([msg["re"], t] in rec["ids"] for t in asked)


def _on_offer(s, msg):
    rec, offer = s.rec, msg["b"]
    if rec["kind"] != BUY or rec["state"] not in (QUOTING, DECIDING):
        return s.ignore("late-offer", "offer")
    if _offer(rec, offer["offer"]) is not None:
        return s.ignore("duplicate", "offer")
    if len(rec["offers"]) >= MAX_OFFERS:
        return s.ignore("too-many-offers", "offer")
    rec["offers"] = rec["offers"] + [[msg["from"], _copy(offer)]]
    rec.update({"state": DECIDING, "due": None, "out": None})


def _on_receipt(s, msg):
    """accepted or duplicate (the vendor already covers it): placed; rejected: closed. A receipt
    after a shipment or delivery only fills in what they implied; another one is a conflict."""
    rec, body = s.rec, msg["b"]
    status = body["status"]
    receipt = [status, body["reason"] if status == "rejected" else body["ref"]]
    if rec["state"] == ORDERING:
        if status == "rejected":
            _close(s, body["reason"])
        else:
            _accept(s, receipt)
    elif rec["receipt"] == receipt:
        s.ignore("duplicate", "receipt")
    elif rec["receipt"] is None and status != "rejected":
        rec["receipt"] = receipt
    else:
        s.ignore("receipt-conflict", "receipt")


def _on_shipment(s, msg):
    rec, body = s.rec, msg["b"]
    if RANK[rec["state"]] > RANK[SHIPPED]:
        return s.ignore("late-shipment", "shipment")
    shipment = [body["carrier"], body["track"], body["eta"]]
    if shipment in rec["shipments"]:
        return s.ignore("duplicate", "shipment")
    if len(rec["shipments"]) >= MAX_SHIPMENTS:
        return s.ignore("too-many-shipments", "shipment")
    if rec["state"] == ORDERING:
        _accept(s, None)
    rec["shipments"] = rec["shipments"] + [shipment]
    rec.update({"state": SHIPPED, "out": None, "tries": 0})
    rec["due"] = _arrival(rec) + s.cfg["news_wait"]


def _on_delivery(s, msg):
    rec, body = s.rec, msg["b"]
    if rec["state"] == DELIVERED:
        return s.ignore("duplicate", "delivery")
    if rec["state"] == ORDERING:
        _accept(s, None)
    rec.update({"state": DELIVERED, "delivered": [body["at"], body["qty"]], "out": None,
                "due": s.now + s.cfg["refill_wait"]})
    if rec["kind"] == BUY:
        rec["stock"] = "received"
        if rec["refilled"] is not None:  # the refill was seen already
            _close(s, "refilled")


# The events and messages every order has; the others are thingsdk.core.lifecycle_rare's.
_EVENTS = {"message": _on_message, "decided": _on_decided, "tick": _on_tick,
           "refilled": _on_refilled}
_MESSAGES = {m.OFFER: _on_offer, m.RECEIPT: _on_receipt, m.SHIPMENT: _on_shipment,
             m.DELIVERY: _on_delivery}
_ANSWERS = {m.OFFER: (m.QUOTE_REQUEST,), m.RECEIPT: (m.ORDER, m.ORDER_QUERY),
            m.APPROVAL: (m.APPROVAL_REQUEST,), m.SUPPORT_REPLY: (m.SUPPORT_REQUEST,)}
_ABOUT_ORDER = (m.RECEIPT, m.SHIPMENT, m.DELIVERY, m.CANCEL)


# ---- state -------------------------------------------------------------------------------------

def to_state(record):
    """The record as plain data (a copy)."""
    return _copy(record)


def from_state(state):
    """A record from `to_state` data; raise LifecycleError if it is malformed (the check is
    thingsdk.core.lifecycle_rare's: a board reads its records back only as it starts)."""
    return _rare().from_state(state)


def _rare():
    """thingsdk.core.lifecycle_rare, imported when one of its events comes: a board's heap keeps
    only the code of the events every order has."""
    from thingsdk.core import lifecycle_rare

    return lifecycle_rare


def resting(record, now, config):
    """Whether `record` rests its slot at `now`: it closed without a delivery less than the
    setting `wait` ago, so the slot's next need waits (a vendor that made no acceptable offer is
    not asked again at once)."""
    return record["state"] == CLOSED and record["delivered"] is None and \
        now < record["closed"] + config["wait"]


# ---- the device's needs ------------------------------------------------------------------------

class Orders:
    """The needs of one device: at most one open need per slot; messages routed to the need they
    answer (`re`) or concern (the order id); what fits nowhere counted in `ignored`. The latest
    `keep_closed` closed needs are kept (at most MAX_CLOSED), so that a late message meets its
    need, closed; so is any that still rests its slot (`resting`; the agent opens no need for a
    slot that rests, so that is one a slot at most), so that the slot waits after a need closed
    without a delivery however many other needs closed since. Those are all a closed need is kept
    for: in a `lean` Orders (a board's, short of heap) one lets go of the rest (`_leaned`; about
    1 KB of a board's heap) as it closes, or once `resume` has carried it on when read back from
    flash; the record persisted as it closed still holds it."""

    def __init__(self, new_id, config=None, records=(), keep_closed=MAX_CLOSED, lean=False):
        _require(is_int(keep_closed) and 1 <= keep_closed <= MAX_CLOSED,
                 "keep_closed is 1..%d" % MAX_CLOSED)
        self.new_id = new_id
        self.keep_closed = keep_closed
        self.lean = lean
        self.config = make_config(config)
        self.needs = {}
        self.ignored = {}
        for state in records:
            rec = from_state(state)
            self.needs[rec["need"]] = rec

    def records(self):
        """The records, oldest first (dicts keep no order on MicroPython)."""
        return sorted(self.needs.values(), key=lambda r: (r["at"], r["need"]))

    def open_for(self, slot):
        """The open need of a slot, or None."""
        for rec in self.needs.values():
            if rec["slot"] == slot and rec["state"] != CLOSED:
                return rec
        return None

    def need(self, slot, ask, vendor, owner, now):
        """Open a need to buy for a slot: ask the vendor for offers (`ask`, a quote-request
        body). Refused ("order-in-flight", counted) while the slot has an open need."""
        return self._open(BUY, slot, ask, vendor, owner, now)

    def support(self, slot, fault, diag, vendor, owner, now, text=None):
        """Open a support case for a fault: a support-request with diagnostics."""
        ask = {"fault": fault, "diag": diag}
        if text is not None:
            ask["text"] = text
        return self._open(SUPPORT, slot, ask, vendor, owner, now)

    def _open(self, kind, slot, ask, vendor, owner, now):
        if self.open_for(slot) is not None:
            self._count("order-in-flight")
            return [("audit", None, {"ignored": "order-in-flight", "what": slot, "at": now})]
        if kind == SUPPORT:
            ask = dict(ask, case=self.new_id())
        rec, effects = start(self.new_id(), kind, slot, ask, vendor, owner, now, self.config,
                             self.new_id)
        self.needs[rec["need"]] = rec
        return effects

    def message(self, msg, now):
        """An opened message (`from_message`) for the need it answers or concerns."""
        rec = self._match(msg)
        if rec is None:
            self._count("unknown")
            name = m.NAMES[msg["t"] - 1] if 0 < msg["t"] <= len(m.NAMES) else str(msg["t"])
            return [("audit", None, {"ignored": "unknown", "what": name, "at": now})]
        return self._apply(rec, ("message", msg), now)

    def decided(self, need_id, decision, now):
        """The decision the runtime took for a "decide" effect."""
        return self._apply(self._get(need_id), ("decided", decision), now)

    def cancel(self, need_id, now, reason="changed-mind"):
        """The owner cancels a need (on the device)."""
        return self._apply(self._get(need_id), ("cancel", reason), now)

    def refused(self, need_id, reason, now):
        """The ledger refused the reservation of a need's order."""
        return self._apply(self._get(need_id), ("refused", reason), now)

    def refilled(self, slot, now):
        """The sensor saw the slot refilled."""
        rec = self.open_for(slot)
        if rec is None:
            return []
        return self._apply(rec, ("refilled",), now)

    def resend(self, msg_id, now):
        """The vendor refused msg_id as a replay: the open need whose pending message it is sends
        it again as a new message (nothing if no open need waits on it)."""
        for rec in self.records():
            if rec["state"] != CLOSED and rec["out"] is not None and rec["out"]["id"] == msg_id:
                return self._apply(rec, ("resend", msg_id), now)
        return []

    def tick(self, now):
        """Run the needs whose deadline has come."""
        effects = []
        for rec in self.records():
            if rec["due"] is not None and rec["due"] <= now:
                effects += self._apply(rec, ("tick",), now)
        return effects

    def resume(self, now):
        """After a restart: what every kept need needs to carry on; then closed needs past
        `keep_closed` are let go, as after any event: records written by a device that kept
        more (a board before its firmware kept fewer) are not held until its first event."""
        effects = []
        for rec in self.records():
            new, more = resume(rec, now, self.config, self.new_id)
            self.needs[new["need"]] = self._leaned(new)  # read back whole from flash
            effects += more
        return effects + self._prune(now)

    def to_state(self):
        """Every record as plain data, oldest first."""
        return [to_state(rec) for rec in self.records()]

    def _get(self, need_id):
        rec = self.needs.get(need_id)
        _require(rec is not None, "no such need")
        return rec

    def _match(self, msg):
        t, body, re = msg["t"], msg["b"], msg["re"]
        for rec in self.records():
            if t in _ABOUT_ORDER:
                hit = rec["oid"] is not None and body.get("order") == rec["oid"]
            else:  # whether msg answers one of this need's messages (inline: a board interns
                # each name), or an error names its order or case
                hit = re is not None and any(entry[0] == re for entry in rec["ids"])
                if not hit and t == m.ERROR:
                    ref = body.get("ref")
                    hit = ref is not None and ref in (rec["oid"], rec["ask"].get("case"))
            if hit:
                return rec
        return None

    def _apply(self, rec, event, now):
        new, effects = step(rec, event, now, self.config, self.new_id)
        if rec["state"] != CLOSED:
            new = self._leaned(new)
        self.needs[new["need"]] = new
        for effect in effects:
            if effect[0] == "audit" and "ignored" in effect[2]:
                self._count(effect[2]["ignored"])
        return effects + self._prune(now)

    def _leaned(self, rec):
        """`rec`, or in a lean Orders a lean copy of it once closed: what matching a late message
        (ids, oid, the ask's case), resting its slot (delivered, closed) and the steps of a
        closed need read, the rest None (its effects persist the record whole; a closed need is
        never changed again, so the lean one is never written)."""
        if self.lean and rec["state"] == CLOSED:
            case = rec["ask"].get("case")  # what an error may name
            return dict(rec, offers=None, decision=None, receipt=None, shipments=None, order=None,
                        vendor=None, owner=None, first=None, cancel_until=None, areq=None,
                        appr=None, ask={} if case is None else {"case": case})
        return rec

    def _prune(self, now):
        closed = [r for r in self.records() if r["state"] == CLOSED]
        closed.sort(key=lambda r: (r["closed"], r["need"]))
        dropped = []
        for rec in closed[:max(0, len(closed) - self.keep_closed)]:
            if not resting(rec, now, self.config):  # else kept until its slot's rest ends
                del self.needs[rec["need"]]
                dropped.append(("drop", rec["need"]))
        return dropped

    def _count(self, reason):
        self.ignored[reason] = self.ignored.get(reason, 0) + 1

