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
               "arrive": TS + 3 * 86400, "digest": bytes(range(32))}
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
                  "total": _eur(5398), "mandate": 7, "test": False,
                  "appr": unhex("d28443a10127a0") + bytes(200)},  # stand-in approval bytes
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
        m.APPROVAL: {"req": _id(9), "decision": "approve", "vendor": VENDOR, "offer": _id(3),
                     "total": _eur(5398), "digest": bytes(range(32))},
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
        m.RESYNC_NONCE: {"nonce": _id(16), "floor": 4117, "until": TS + 600},
        m.RESYNC: {"nonce": _id(16)},
        m.RESYNC_REPLY: {"from": 4117 + 65536, "epoch": 1, "orders": [
            {"order": _id(4), "sku": "WF-300", "qty": 2, "status": "shipped",
             "ref": "ACME-2026-000417", "eta": TS + 2 * 86400}]},
        m.ORDER_QUERY: {"order": _id(4)},
        m.NOTICE: {"kind": "refused", "reason": "over-budget", "slot": "water-filter",
                   "need": _id(20), "text": "Not buying the water filter: it would pass your "
                                             "50.00 EUR budget this month."},
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


# RFC 8032 section 7.1, TEST 1..3: (secret key, public key, message, signature).
RFC8032 = (
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
)
