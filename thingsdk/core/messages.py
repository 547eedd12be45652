"""The message catalog: build, parse and validate every protocol message.

Mirrors spec/thingsdk.cddl. Validation is table-driven (thingsdk.core.schemas: the spec's rules
in one text and the validator that reads them), imported by the checks here only when a message
is checked, so that a board can leave it out of its heap while it decides. Portable: runs on
MicroPython.
"""

from thingsdk.core.check import MessageError, is_int

VERSION = 1
(STATUS, QUOTE_REQUEST, OFFER, ORDER, RECEIPT, SHIPMENT, DELIVERY, CANCEL, APPROVAL_REQUEST,
 APPROVAL, MANDATE, SUPPORT_REQUEST, SUPPORT_REPLY, PROMOTION, ERROR, RESYNC_NONCE, RESYNC,
 RESYNC_REPLY, ORDER_QUERY, NOTICE) = range(1, 21)
NAMES = ("status", "quote-request", "offer", "order", "receipt", "shipment", "delivery", "cancel",
         "approval-request", "approval", "mandate", "support-request", "support-reply",
         "promotion", "error", "resync-nonce", "resync", "resync-reply", "order-query",
         "notice")
TYPES = {name: code for code, name in enumerate(NAMES, 1)}

ID_SIZE = 16
KID_SIZE = 8
MAX_INT53 = 9007199254740991
# Types whose `re` is required.
ANSWERS = (OFFER, RECEIPT, APPROVAL, SUPPORT_REPLY, RESYNC_NONCE, RESYNC_REPLY)


class Message:
    """A checked message: header fields as attributes, `.body` the type-specific map."""

    def __init__(self, obj):
        self.v, self.type, self.id, self.kid = obj[1], obj[2], obj[3], obj[4]
        self.seq, self.ts, self.exp, self.to = obj[5], obj[6], obj[7], obj[8]
        self.re = obj.get(9)
        self.body = obj[10]

    def name(self):
        """The type's name, such as "order"."""
        return NAMES[self.type - 1]


def check(obj):
    """Raise MessageError unless obj (a decoded payload) is a valid message; return obj."""
    from thingsdk.core import schemas  # only while a message is checked: spares board heap

    if not isinstance(obj, dict):
        raise MessageError("bad-type", "message", "expected map")
    header = schemas.schema(b"header")
    for key in (1, 2):
        if key not in obj:
            raise MessageError("missing-field", schemas.label(key, header[7]))
    if obj[1] != VERSION or not is_int(obj[1]):
        raise MessageError("bad-version", "v", "expected %d" % VERSION)
    t = obj[2]
    if not is_int(t):
        raise MessageError("bad-type", "t", "expected int")
    if not 1 <= t <= len(NAMES):
        raise MessageError("unknown-type", "t", str(t))
    schemas.check_map(header, obj, "")
    if t in ANSWERS and 9 not in obj:
        raise MessageError("missing-field", "re", "required in a %s" % NAMES[t - 1])
    check_body(t, obj[10])
    return obj


def check_body(msg_type, body):
    """Raise MessageError unless msg_type is a known type code and body a valid body of it."""
    if not (is_int(msg_type) and 1 <= msg_type <= len(NAMES)):
        raise MessageError("unknown-type", "t", str(msg_type))
    from thingsdk.core import schemas  # only while a message is checked: spares board heap

    schemas.check(schemas.schema(NAMES[msg_type - 1] + "-body"), body, "b")


def parse(obj):
    """Check a decoded payload and return it as a Message."""
    return Message(check(obj))


def build(msg_type, body, sender_kid, recipient_kid, seq, ts, exp, msg_id, reply_to=None):
    """Build a message payload (a dict ready to encode), checking it; raise MessageError."""
    obj = {1: VERSION, 2: msg_type, 3: msg_id, 4: sender_kid, 5: seq, 6: ts, 7: exp,
           8: recipient_kid, 10: body}
    if reply_to is not None:
        obj[9] = reply_to
    return check(obj)


def order_body(offer, order_id, mandate_version, approval=None):
    """The body of an order that buys an offer (an offer body) as it stands, decided under
    mandate_version; approval is the owner's approval message (its bytes), if one was needed."""
    body = {"order": order_id, "offer": offer["offer"], "sku": offer["sku"], "qty": offer["qty"],
            "total": offer["total"], "mandate": mandate_version, "test": offer["test"]}
    if approval is not None:
        body["appr"] = approval
    return body


def check_claims(claims):
    """Check the structure of a decoded mandate claims set (not the policy); return it."""
    from thingsdk.core import schemas  # only while a message is checked: spares board heap

    schemas.check(schemas.schema(b"mandate-claims"), claims, "")
    return claims
