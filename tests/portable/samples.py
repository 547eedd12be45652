"""Realistic example bodies and mandate claims, shared by the portable and CPython tests."""

from check import unhex
from thingsdk.core import messages as m

DEVICE = unhex("3f1c9a0b5e7d2a61")
VENDOR = unhex("a04be1f2c3d49587")
OWNER = unhex("5c0ffee0ddba11ad")
TS = 1767225600  # 2026-01-01T00:00:00Z
EXP = TS + 3600


def _id(n):
    return bytes([n]) * 16


def _eur(amount):
    return [amount, "EUR"]


def example_bodies():
    """A realistic body for every message type, fresh on each call: {type code: body}."""
    summary = {"vendor": VENDOR, "offer": _id(3), "sku": "WF-300", "qty": 2, "test": False,
               "title": "Fridge water filter WF-300, 2-pack", "total": _eur(5398),
               "arrive": TS + 3 * 86400}
    return {
        m.STATUS: {"slots": [
            {"slot": "water-filter", "sku": "WF-300", "unit": "l", "level": 48, "cap": 300,
             "rate": 1650, "empty": {"est": 29, "lo": 22, "hi": 38}, "spare": 0},
            {"slot": "ice-maker", "unit": "cycle", "level": 900, "cap": 1000, "rate": 0}]},
        m.QUOTE_REQUEST: {"slot": "water-filter", "sku": "WF-300", "qty": 2,
                          "need": TS + 20 * 86400, "promo": _id(14), "test": False},
        m.OFFER: {"offer": _id(3), "sku": "WF-300", "title": "Fridge water filter WF-300, 2-pack",
                  "qty": 2, "price": _eur(2450), "ship": _eur(498), "total": _eur(5398),
                  "lead": 3 * 86400, "arrive": TS + 3 * 86400, "until": TS + 86400,
                  "test": False},
        m.ORDER: {"order": _id(4), "offer": _id(3), "sku": "WF-300", "qty": 2,
                  "total": _eur(5398), "mandate": 7, "test": False, "appr": _id(10)},
        m.RECEIPT: {"order": _id(4), "status": "accepted", "ref": "ACME-2026-000417",
                    "text": "Thank you, your filters ship tomorrow."},
        m.SHIPMENT: {"order": _id(4), "carrier": "DHL", "track": "JD014600003829",
                     "eta": TS + 2 * 86400, "qty": 2},
        m.DELIVERY: {"order": _id(4), "at": TS + 2 * 86400 + 5400, "qty": 2},
        m.CANCEL: {"order": _id(4), "by": "owner", "reason": "changed-mind",
                   "text": "We are moving house."},
        m.APPROVAL_REQUEST: {"req": _id(9), "order": summary, "until": TS + 12 * 3600,
                             "why": "The water filter runs out in about 29 days and this "
                                    "order is above your 40.00 EUR approval limit."},
        m.APPROVAL: {"req": _id(9), "decision": "approve"},
        m.MANDATE: {"cwt": unhex("d28443a10127a0") + bytes(70)},  # stand-in token bytes
        m.SUPPORT_REQUEST: {"case": _id(12), "fault": "e21-flow-sensor",
                            "diag": {"flow-ml-min": 0, "fw": "2.4.1", "valve-open": True,
                                     "temp-dc": -12},
                            "text": "No water flow for 3 days."},
        m.SUPPORT_REPLY: {"case": _id(12), "steps": ["Unplug the fridge for 60 seconds.",
                                                     "Reseat the water filter until it clicks."],
                          "visit": {"price": _eur(8900), "until": TS + 7 * 86400}},
        m.PROMOTION: {"promo": _id(14), "sku": "WF-300", "title": "Spring filter offer",
                      "price": _eur(1990), "until": TS + 14 * 86400, "max": 4},
        m.ERROR: {"code": "idempotency-conflict", "ref": _id(4),
                  "text": "Order id already used for a different order."},
    }


def example_claims():
    """Mandate claims using every constraint kind defined by protocol version 1."""
    return {
        1: "5c0ffee0ddba11ad", 2: "3f1c9a0b5e7d2a61", 4: TS + 365 * 86400, 5: TS, 6: TS,
        8: {1: {1: 1, -1: 6, -2: bytes(range(32))}},
        -65537: 7,
        -65538: [
            ["amount-range", {"cur": "EUR", "min": 100, "max": 6000}],
            ["budget", {"cur": "EUR", "max": 10000, "period": "month"}],
            ["budget", {"cur": "EUR", "max": 50000, "period": "rolling", "window": 180 * 86400}],
            ["recurrence", {"max": 2, "period": "month"}],
            ["vendors", {"kids": [VENDOR]}],
            ["items", {"allow": [{"sku": "WF-300", "max-price": _eur(2900), "max-qty": 2},
                                 {"cat": "water-filter", "max-price": _eur(3500), "max-qty": 1}]}],
            ["approval-above", {"cur": "EUR", "amount": 4000}],
            ["cancel-window", {"seconds": 86400}],
            ["quiet-hours", {"tz": 60, "start": 1320, "end": 420}],
            ["quiet-hours", {"zone": "Europe/Berlin", "start": 1320, "end": 420}],
            ["test-mode", {}],
        ],
    }


def build(code, body=None, reply_to=_id(99), **header):
    """Build an example message of a type, with header fields overridable by name."""
    h = {"sender_kid": DEVICE, "recipient_kid": VENDOR, "seq": 41, "ts": TS, "exp": EXP,
         "msg_id": _id(code)}
    h.update(header)
    return m.build(code, example_bodies()[code] if body is None else body, reply_to=reply_to, **h)
