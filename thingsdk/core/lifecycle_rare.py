"""The order lifecycle's rarer events (thingsdk.core.lifecycle): the owner's or the vendor's
cancel, an approval, a support reply, an error, a refused reservation, a replayed message, a
wait or an approval running out, an order without news; and the check of a record read back
from storage. thingsdk.core.lifecycle imports this module only when one of them comes, so that a
board's heap holds only the code of the events every order has. Portable.
"""

from thingsdk.core import messages as m
from thingsdk.core.check import is_int
from thingsdk.core.need import (
    APPROVING, ASKS, BUY, CLOSED, DECIDING, DELIVERED, MAX_IDS, MAX_OFFERS, MAX_SHIPMENTS, MONEY,
    ORDERING, PLACED, QUOTING, RANK, SHIPPED, STOCK, VERSION, VISIT_SKU, _FIELDS, _arrival,
    _close, _copy, _is_id, _offer, _quote, _require)


def _new_round(s, why):
    s.rec["rounds"] += 1
    if s.rec["rounds"] > s.cfg["rounds"]:
        _close(s, why)
    else:
        _quote(s)


def _cancel_order(s, by, reason):
    """Close an order that is (maybe) placed and tell the vendor."""
    _close(s, reason, release=True)
    s.send(m.CANCEL, {"order": s.rec["oid"], "by": by, "reason": reason}, s.rec["vendor"])


def _ask_news(s):
    """No delivery news past the expected arrival: ask the vendor how the order stands (its
    shipment or delivery may have been lost on the way), again after twice the wait each time,
    until the order is `late`: then it is overdue."""
    rec, cfg = s.rec, s.cfg
    overdue = _arrival(rec) + cfg["late"]
    if s.now >= overdue:
        return _close(s, "overdue")
    s.send(m.ORDER_QUERY, {"order": rec["oid"]}, rec["vendor"])
    s.wait(cfg["news_wait"], rec["tries"])
    rec["tries"] += 1
    rec["due"] = min(rec["due"], overdue)


def _ask(s, decision):
    """Ask the owner to approve the chosen offer; no answer by `until` is a decline."""
    rec = s.rec
    offer = _offer(rec, decision["offer"])
    until = min(s.now + s.cfg["approval_ttl"], offer["until"])
    from thingsdk.core.approval import request_body  # loaded with the owner's answer anyway

    body = request_body(s.new_id(), rec["vendor"], offer, decision.get("text"), until)
    m.check_body(m.APPROVAL_REQUEST, body)
    rec.update({"state": APPROVING, "areq": body, "due": until, "appr": None})
    s.send(m.APPROVAL_REQUEST, body, rec["owner"])


def _on_cancel(s, reason="changed-mind"):
    """The owner cancels: before an order at once; an order until the cancel window closes."""
    rec = s.rec
    state = rec["state"]
    if RANK[state] == 0:
        _close(s, reason)
    elif state == ORDERING or (state in (PLACED, SHIPPED) and s.now < rec["cancel_until"]):
        _cancel_order(s, "owner", reason)
    else:
        s.ignore("cancel-window-closed", "cancel")


def _on_resend(s, msg_id):
    """The vendor refused the message msg_id as replayed or too old (the device lost its counters
    or was restored from an old copy, and has moved them above what the vendor saw): if it is
    this need's pending message, it goes again as a new one (new id, new sequence number; an
    order keeps its order id, so the vendor still takes it once)."""
    out = s.rec["out"]
    if out is None or out["id"] != msg_id:
        return
    s.send(out["t"], out["b"], out["to"], out["re"])


def _on_refused(s, reason):
    if s.rec["state"] != ORDERING or s.rec["money"] != "reserved":
        return s.ignore("unexpected-refusal", reason)
    _close(s, reason)


def _on_support_reply(s, msg):
    """Steps are passed on through the audit log; a quoted visit is decided like an offer."""
    rec, body = s.rec, msg["b"]
    if rec["state"] != QUOTING or body["case"] != rec["ask"]["case"]:
        return s.ignore("late-reply", "support-reply")
    s.audit({"steps": body["steps"]})
    visit = body.get("visit")
    if visit is None:
        return _close(s, "answered")
    rec["offers"] = [[msg["from"], visit_offer(body["case"], visit)]]
    rec.update({"state": DECIDING, "due": None, "out": None})


def visit_offer(case, visit):
    """The offer a support reply's quoted `visit` ({price, until}) makes for the case: decided,
    approved and ordered like any offer (the vendor rebuilds it to check an approval of it)."""
    price = visit["price"]
    return {"offer": case, "sku": VISIT_SKU, "title": "Service visit", "qty": 1, "price": price,
            "ship": [0, price[1]], "total": price, "lead": 0, "arrive": visit["until"],
            "until": visit["until"], "test": False}


def _on_approval(s, msg):
    rec = s.rec
    if rec["state"] != APPROVING or msg["b"]["req"] != rec["areq"]["req"]:
        return s.ignore("late-approval", "approval")
    if msg["b"]["decision"] != "approve":
        return _close(s, "declined")
    _require(isinstance(msg.get("data"), bytes), "an approval is kept as it came")
    rec.update({"state": DECIDING, "appr": msg["data"], "due": None, "out": None})


def _on_vendor_cancel(s, msg):
    if s.rec["state"] == DELIVERED:
        return s.ignore("after-delivery", "cancel")
    _close(s, msg["b"]["reason"], release=True)


def _on_error(s, msg):
    body = msg["b"]
    s.audit({"error": body["code"], "text": body["text"]})


def from_state(state):
    """A record from `to_state` data; raise LifecycleError if it is malformed."""
    _require(isinstance(state, dict), "a need record is a dict")
    _require(state.get("v") == VERSION, "unsupported need record version")
    if "refilled" not in state:  # written before early refills were remembered
        state = dict(state)
        state["refilled"] = None
    _require(sorted(state) == sorted(_FIELDS), "a need record has exactly the fields %s"
             % ", ".join(sorted(_FIELDS)))
    rec = _copy(state)
    _require(_is_id(rec["need"]) and rec["kind"] in ASKS, "need id (16 bytes) and kind")
    _require(rec["state"] in RANK, "unknown state %r" % (rec["state"],))
    _require(rec["money"] in MONEY and rec["stock"] in STOCK, "money or stock state unknown")
    for key in ("vendor", "owner"):
        _require(isinstance(rec[key], bytes), "%s is a key id" % key)
    for key in ("at", "tries", "rounds", "hold"):
        _require(is_int(rec[key]) and rec[key] >= 0, "%s is an int >= 0" % key)
    for key in ("due", "first", "cancel_until", "closed", "refilled"):
        _require(rec[key] is None or is_int(rec[key]), "%s is an int or None" % key)
    _check_list(rec["ids"], MAX_IDS, 2, lambda x: _is_id(x[0]) and is_int(x[1]), "ids")
    _check_list(rec["offers"], MAX_OFFERS, 2, lambda x: isinstance(x[0], bytes), "offers")
    _check_list(rec["shipments"], MAX_SHIPMENTS, 3, lambda x: is_int(x[2]), "shipments")
    for offer in rec["offers"]:
        m.check_body(m.OFFER, offer[1])
    m.check_body(ASKS[rec["kind"]], rec["ask"])
    out = rec["out"]
    _require(out is None or (isinstance(out, dict) and sorted(out) ==
                             ["b", "exp", "id", "re", "t", "to"] and [out["id"], out["t"]]
                             in rec["ids"]), "out is a message this need sent")
    if out is not None:
        m.check_body(out["t"], out["b"])
    has_order = rec["oid"] is not None
    _require(has_order == (rec["money"] is not None), "money is held exactly for an order")
    _require(has_order or RANK[rec["state"]] in (0, RANK[CLOSED]), "an order state needs an order")
    if has_order:
        _require(_is_id(rec["oid"]) and isinstance(rec["order"], dict)
                 and rec["order"].get("order") == rec["oid"], "the order body names the order id")
        m.check_body(m.ORDER, rec["order"])
        _require(_offer(rec, rec["order"]["offer"]) is not None, "the order's offer is kept")
    _require((rec["state"] == CLOSED) == (rec["reason"] is not None), "a reason when closed")
    _require(rec["state"] != CLOSED or rec["money"] != "reserved", "closed with money reserved")
    _require(rec["state"] != DELIVERED or rec["delivered"] is not None, "delivered without data")
    return rec


def _check_list(value, limit, size, item_ok, name):
    _require(isinstance(value, list) and len(value) <= limit, "%s: a list of at most %d"
             % (name, limit))
    for item in value:
        _require(isinstance(item, list) and len(item) == size and item_ok(item),
                 "%s: malformed entry" % name)


EVENTS = {"cancel": _on_cancel, "refused": _on_refused, "resend": _on_resend}
MESSAGES = {m.CANCEL: _on_vendor_cancel, m.APPROVAL: _on_approval,
            m.SUPPORT_REPLY: _on_support_reply, m.ERROR: _on_error}
