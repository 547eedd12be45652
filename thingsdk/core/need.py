"""A need's record as the order lifecycle (thingsdk.core.lifecycle) keeps it: its states, kinds
and limits, and the steps that the lifecycle's everyday events share with its rarer ones
(thingsdk.core.lifecycle_rare, which a board loads only when one comes). Portable.
"""

from thingsdk.core import messages as m

VERSION = 1
QUOTING, DECIDING, WAITING, APPROVING = "quoting", "deciding", "waiting", "approving"
ORDERING, PLACED, SHIPPED, DELIVERED = "ordering", "placed", "shipped", "delivered"
CLOSED = "closed"
# A need only moves up this rank; the states of rank 0 may loop among themselves.
RANK = {QUOTING: 0, DECIDING: 0, WAITING: 0, APPROVING: 0, ORDERING: 1, PLACED: 2, SHIPPED: 3,
        DELIVERED: 4, CLOSED: 5}
BUY, SUPPORT = "buy", "support"  # kinds of need
ASKS = {BUY: m.QUOTE_REQUEST, SUPPORT: m.SUPPORT_REQUEST}
MONEY = (None, "reserved", "committed", "released")
STOCK = (None, "incoming", "received", "cancelled")
MAX_IDS = 16  # message ids kept per need to match answers (`re`)
MAX_OFFERS = 8
MAX_SHIPMENTS = 4
MAX_CLOSED = 8  # closed records an Orders container keeps (late messages meet "closed")
SKEW = 300  # a message is re-sent as the same bytes only while it has this long left to live
VISIT_SKU = "service-visit"
_FIELDS = ("v", "need", "kind", "slot", "state", "at", "vendor", "owner", "ask", "out", "ids",
           "tries", "rounds", "due", "offers", "decision", "areq", "appr", "oid", "order",
           "first", "money", "stock", "receipt", "hold", "cancel_until", "shipments",
           "delivered", "reason", "closed", "refilled")


class LifecycleError(ValueError):
    """A malformed record, decision, configuration or argument."""


def _require(ok, message):
    if not ok:
        raise LifecycleError(message)


def _is_id(v):
    return isinstance(v, bytes) and len(v) == m.ID_SIZE


def _copy(v):
    """A deep copy of plain data; tuples become lists, as CBOR would give them back."""
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_copy(x) for x in v]
    return v

def _quote(s):
    """A round of asking the vendor: a fresh quote (or support) request."""
    rec = s.rec
    rec.update({"state": QUOTING, "tries": 0, "offers": [], "appr": None})
    s.send(ASKS[rec["kind"]], rec["ask"], rec["vendor"])
    s.wait(s.cfg["quote_wait"], 0)


def _close(s, reason, release=False):
    """Close the need: a reservation is released (a commitment too, with `release`), stock still
    on its way no longer counts."""
    rec = s.rec
    rec.update({"state": CLOSED, "reason": reason, "closed": s.now, "due": None, "out": None})
    if rec["money"] == "reserved" or (release and rec["money"] == "committed"):
        rec["money"] = "released"
    if rec["stock"] == "incoming":
        rec["stock"] = "cancelled"


def _arrival(rec):
    offer = _offer(rec, rec["order"]["offer"])
    etas = [x[2] for x in rec["shipments"]]
    return max([offer["arrive"]] + etas)


def _offer(rec, offer_id):
    for entry in rec["offers"]:
        if entry[1]["offer"] == offer_id:
            return entry[1]
    return None
