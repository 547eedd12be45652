"""The message catalog: build, parse and validate every protocol message.

Mirrors spec/thingsdk.cddl. Validation is table-driven: each body has a compact schema (constant
tuples below) interpreted by one small validator, `_check`. Portable: runs on MicroPython.
"""

import hashlib

from thingsdk.core.check import const, is_int

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
MAX_LIFETIME = 30 * 86400  # seconds from ts to exp


class MessageError(ValueError):
    """A message that does not match the protocol. `.code` is a short machine reason."""

    def __init__(self, code, field, detail=""):
        super().__init__("%s: %s%s" % (field, code, detail and " (" + detail + ")"))
        self.code = code
        self.field = field


# ---- schema language: one tuple per type, interpreted by _check -----------------------------
# ("i", lo, hi) int        ("b", lo, hi) bytes by length    ("s", lo, hi, chars, first) text
#   (chars and first: the ASCII characters allowed, anywhere and first, as bytes)
# ("y",) bool              ("e", values) one of the values  ("a", specs) fixed-length array
# ("l", spec, lo, hi) list ("d", key, value, lo, hi) map of any keys    ("|", specs) any of
# ("*",) anything          ("k", kinds) constraint [kind, params], unknown kinds allowed
# ("m", fields, optional, one, tag, variants, rules, names) a map:
#   fields: ((key, spec), ...); optional: keys that may be absent; one: keys of which exactly one
#   must be present; tag: a key whose value picks extra fields from variants ((value, fields),
#   ...); rules, checked across fields: ("<=", a, b, gap) m[a] + gap <= m[b] when both are
#   present, ("lifetime",) exp - ts within MAX_LIFETIME, ("total",) an offer's total is
#   price * qty + ship in one currency; names: ((key, name), ...) for keys that are numbers.
# Every table is a const() of constants only, so MicroPython's compiler builds it as one constant:
# frozen into firmware it stays in flash and costs no heap.

LOWER = const(b"abcdefghijklmnopqrstuvwxyz0123456789")
ID16 = const(("b", 16, 16))
KID = const(("b", 8, 8))
TIME = const(("i", 0, 253402300799))
DURATION = const(("i", 0, 31622400))
DAYS = const(("i", 0, 3660))
COUNT = const(("i", 1, 1000000))
AMOUNT = const(("i", 0, 1000000000000))
BOOL = const(("y",))
ANY = const(("*",))
TOKEN = const(("s", 1, 32, b"abcdefghijklmnopqrstuvwxyz0123456789._-",
               b"abcdefghijklmnopqrstuvwxyz0123456789"))
LABEL = const(("s", 1, 64))
SENTENCE = const(("s", 1, 280))
TEXT = const(("s", 0, 9007199254740991))
CURRENCY = const(("s", 3, 3, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
MONEY = const(("a", (AMOUNT, CURRENCY)))
KID_HEX = const(("s", 16, 16, b"0123456789abcdef"))
WINDOW = const(("i", 1, 31622400))
VERSION32 = const(("i", 1, 4294967295))
NO_RULES = const(())

PERIODS = const((("month", ()), ("rolling", (("window", WINDOW),))))
ITEM_RULE = const(("m", (("sku", LABEL), ("cat", TOKEN), ("max-price", MONEY), ("max-qty", COUNT)),
                   (), ("sku", "cat"), None, None, NO_RULES, None))
CONSTRAINTS = const((
    ("amount-range", ("m", (("cur", CURRENCY), ("min", AMOUNT), ("max", AMOUNT)), (), (), None,
                      None, (("<=", "min", "max", 0),), None)),
    ("budget", ("m", (("cur", CURRENCY), ("max", AMOUNT)), (), (), "period", PERIODS, NO_RULES,
                None)),
    ("recurrence", ("m", (("max", COUNT),), (), (), "period", PERIODS, NO_RULES, None)),
    ("vendors", ("m", (("kids", ("l", KID, 1, 16)),), (), (), None, None, NO_RULES, None)),
    ("items", ("m", (("allow", ("l", ITEM_RULE, 1, 32)),), (), (), None, None, NO_RULES, None)),
    ("approval-above", ("m", (("cur", CURRENCY), ("amount", AMOUNT)), (), (), None, None,
                        NO_RULES, None)),
    ("cancel-window", ("m", (("seconds", DURATION),), (), (), None, None, NO_RULES, None)),
    ("quiet-hours", ("m", (("tz", ("i", -720, 840)), ("zone", LABEL), ("start", ("i", 0, 1439)),
                           ("end", ("i", 0, 1439))), (), ("tz", "zone"), None, None, NO_RULES,
                     None)),
    ("test-mode", ("m", (), (), (), None, None, NO_RULES, None)),
))

SLOT = const(("m", (("slot", TOKEN), ("sku", LABEL), ("unit", TOKEN), ("level", ("i", 0, 1000000000)),
                    ("cap", ("i", 1, 1000000000)), ("rate", ("i", 0, 1000000000000)),
                    ("empty", ("m", (("est", DAYS), ("lo", DAYS), ("hi", DAYS)), (), (), None,
                               None, (("<=", "lo", "est", 0), ("<=", "est", "hi", 0)), None)),
                    ("spare", ("i", 0, 1000))),
              ("sku", "empty", "spare"), (), None, None, (("<=", "level", "cap", 0),), None))
ORDER_SUMMARY = const(("m", (("vendor", KID), ("offer", ID16), ("sku", LABEL), ("title", SENTENCE),
                             ("qty", COUNT), ("total", MONEY), ("arrive", TIME), ("test", BOOL),
                             ("from", LABEL), ("digest", ("b", 32, 32))),
                       ("arrive", "from"), (), None, None, NO_RULES, None))
DIAG_VALUE = const(("|", (("i", -9007199254740991, 9007199254740991), ("s", 0, 128), BOOL)))

BODIES = const((
    ("m", (("slots", ("l", SLOT, 1, 16)),), (), (), None, None, NO_RULES, None),
    ("m", (("slot", TOKEN), ("sku", LABEL), ("cat", TOKEN), ("qty", COUNT), ("need", TIME),
           ("promo", ID16), ("test", BOOL), ("offer", ID16), ("price", MONEY)),
     ("need", "promo", "test", "offer", "price"), ("sku", "cat"), None, None, NO_RULES, None),
    ("m", (("offer", ID16), ("sku", LABEL), ("title", SENTENCE), ("qty", COUNT), ("price", MONEY),
           ("ship", MONEY), ("total", MONEY), ("lead", DURATION), ("arrive", TIME),
           ("until", TIME), ("test", BOOL), ("from", LABEL)),
     ("from",), (), None, None, (("total",),), None),
    ("m", (("order", ID16), ("offer", ID16), ("sku", LABEL), ("qty", COUNT), ("total", MONEY),
           ("mandate", VERSION32), ("test", BOOL), ("appr", ("b", 1, 1024))),
     ("appr",), (), None, None, NO_RULES, None),
    ("m", (("order", ID16), ("text", SENTENCE)), ("text",), (), "status",
     (("accepted", (("ref", LABEL),)), ("duplicate", (("ref", LABEL),)),
      ("rejected", (("reason", TOKEN),))), NO_RULES, None),
    ("m", (("order", ID16), ("carrier", LABEL), ("track", LABEL), ("eta", TIME), ("qty", COUNT)),
     ("qty",), (), None, None, NO_RULES, None),
    ("m", (("order", ID16), ("at", TIME), ("qty", COUNT)), (), (), None, None, NO_RULES, None),
    ("m", (("order", ID16), ("by", ("e", ("owner", "vendor", "device"))), ("reason", TOKEN),
           ("text", SENTENCE)),
     ("text",), (), None, None, NO_RULES, None),
    ("m", (("req", ID16), ("order", ORDER_SUMMARY), ("why", SENTENCE), ("until", TIME)), (), (),
     None, None, NO_RULES, None),
    ("m", (("req", ID16),), (), (), "decision",
     (("approve", (("vendor", KID), ("offer", ID16), ("total", MONEY), ("digest", ("b", 32, 32)))),
      ("decline", ())), NO_RULES, None),
    ("m", (("cwt", ("b", 1, 2048)),), (), (), None, None, NO_RULES, None),
    ("m", (("case", ID16), ("fault", TOKEN), ("diag", ("d", TEXT, DIAG_VALUE, 0, 32)),
           ("text", SENTENCE)),
     ("text",), (), None, None, NO_RULES, None),
    ("m", (("case", ID16), ("steps", ("l", SENTENCE, 1, 16)),
           ("visit", ("m", (("price", MONEY), ("until", TIME)), (), (), None, None, NO_RULES,
                      None))),
     ("visit",), (), None, None, NO_RULES, None),
    ("m", (("promo", ID16), ("sku", LABEL), ("title", SENTENCE), ("price", MONEY),
           ("until", TIME), ("max", COUNT)),
     ("title", "max"), (), None, None, NO_RULES, None),
    ("m", (("code", TOKEN), ("text", SENTENCE), ("ref", ID16)), ("ref",), (), None, None,
     NO_RULES, None),
    ("m", (("nonce", ID16), ("floor", ("i", 0, 9007199254740991)), ("until", TIME)), (), (), None,
     None, NO_RULES, None),
    ("m", (("nonce", ID16),), (), (), None, None, NO_RULES, None),
    ("m", (("from", ("i", 0, 9007199254740991)), ("epoch", COUNT),
           ("orders", ("l", ("m", (("order", ID16), ("sku", LABEL), ("qty", COUNT),
                                   ("status", ("e", ("accepted", "shipped"))), ("ref", LABEL),
                                   ("eta", TIME)), (), (), None, None, NO_RULES, None), 0, 16))),
     (), (), None, None, NO_RULES, None),
    ("m", (("order", ID16),), (), (), None, None, NO_RULES, None),
    ("m", (("kind", TOKEN), ("text", SENTENCE), ("reason", TOKEN), ("slot", TOKEN),
           ("need", ID16), ("order", ID16)),
     ("reason", "slot", "need", "order"), (), None, None, NO_RULES, None),
))
# Types whose `re` is required.
ANSWERS = (OFFER, RECEIPT, APPROVAL, SUPPORT_REPLY, RESYNC_NONCE, RESYNC_REPLY)

# v and t are checked first, for their own error codes; the body by BODIES[t - 1].
HEADER_NAMES = const(((1, "v"), (2, "t"), (3, "id"), (4, "kid"), (5, "seq"), (6, "ts"),
                      (7, "exp"), (8, "to"), (9, "re"), (10, "b")))
HEADER = const(("m", ((1, ANY), (2, ANY), (3, ID16), (4, KID), (5, ("i", 0, 9007199254740991)),
                      (6, TIME), (7, TIME), (8, KID), (9, ID16), (10, ANY)),
                (9,), (), None, None, (("<=", 6, 7, 1), ("lifetime",)), HEADER_NAMES))
CLAIM_NAMES = const(((1, "iss"), (2, "sub"), (4, "exp"), (5, "nbf"), (6, "iat"), (8, "cnf"),
                     (-65537, "ver"), (-65538, "con")))
COSE_KEY = const(("m", ((1, ("e", (1,))), (-1, ("e", (6,))), (-2, ("b", 32, 32))), (), (), None,
                  None, NO_RULES, None))
CLAIMS = const(("m", ((1, KID_HEX), (2, KID_HEX), (4, TIME), (5, TIME), (6, TIME),
                      (8, ("m", ((1, COSE_KEY),), (), (), None, None, NO_RULES, None)),
                      (-65537, VERSION32), (-65538, ("l", ("k", CONSTRAINTS), 0, 32))),
                (), (), None, None, (("<=", 5, 4, 1), ("<=", 6, 4, 1)), CLAIM_NAMES))


def lookup(pairs, key):
    """The value paired with key in a table of (key, value) pairs, or None. Keys match by value
    and type, so True is not 1."""
    for k, v in pairs:
        if k == key and type(k) is type(key):
            return v
    return None


def _label(key, names):
    name = lookup(names, key) if names else None
    return name if name is not None else _show(key)


def _show(v):
    """v for an error message, never unbounded: a number past 64 bits is not spelled out."""
    if is_int(v) and not -2**63 <= v < 2**64:
        return "(a number past 64 bits)"
    return "%s" % (v,)


def _outside(raw, chars):
    """Whether the UTF-8 bytes raw hold a byte not in chars (bytes: the allowed characters are
    ASCII). Bytes, not characters: on MicroPython each character of a str taken out of it can
    intern a new name, and growing the name pool asks the heap for a block of over 1 KB."""
    for byte in raw:
        if byte not in chars:
            return True
    return False


def _one_of(v, values):
    for x in values:
        if v == x and type(v) is type(x):
            return True
    return False


def _size(v, lo, hi, path):
    if not lo <= len(v) <= hi:
        raise MessageError("bad-size", path, "length %d not in %d..%d" % (len(v), lo, hi))


def _check(spec, v, path):
    """Raise MessageError unless v matches spec; path names v in the message."""
    kind = spec[0]
    if kind == "i":
        if type(v) is not int and not is_int(v):  # a plain int needs no call to tell
            raise MessageError("bad-type", path, "expected int")
        if not spec[1] <= v <= spec[2]:
            raise MessageError("out-of-range", path,
                               "%s not in %d..%d" % (_show(v), spec[1], spec[2]))
    elif kind == "b":
        if not isinstance(v, bytes):
            raise MessageError("bad-type", path, "expected bytes")
        _size(v, spec[1], spec[2], path)
    elif kind == "s":
        if not isinstance(v, str):
            raise MessageError("bad-type", path, "expected text")
        raw = v.encode()
        _size(raw, spec[1], spec[2], path)
        if len(spec) > 3 and raw and (raw[0] not in spec[-1] or _outside(raw, spec[3])):
            raise MessageError("bad-value", path, "bad character")
    elif kind == "y":
        if not isinstance(v, bool):
            raise MessageError("bad-type", path, "expected bool")
    elif kind == "e":
        if not _one_of(v, spec[1]):
            raise MessageError("bad-value", path, "expected one of %r" % (spec[1],))
    elif kind in "alk":
        if not isinstance(v, (list, tuple)):
            raise MessageError("bad-type", path, "expected array")
        if kind == "a":
            _size(v, len(spec[1]), len(spec[1]), path)
            for i, item_spec in enumerate(spec[1]):
                _check(item_spec, v[i], "%s[%d]" % (path, i))
        elif kind == "l":
            _size(v, spec[2], spec[3], path)
            for i, item in enumerate(v):
                _check(spec[1], item, "%s[%d]" % (path, i))
        else:
            _size(v, 2, 2, path)
            _check(TEXT, v[0], path + "[0]")
            params = lookup(spec[1], v[0])
            if params is None:  # an extension kind, "namespace:name"
                parts = v[0].split(":")
                if len(parts) != 2:
                    raise MessageError("bad-value", path + "[0]", "unknown kind, not namespaced")
                for part in parts:
                    _check(TOKEN, part, path + "[0]")
                params = ("d", TEXT, ANY, 0, 9007199254740991)
            _check(params, v[1], "%s[%s]" % (path, v[0]))
    elif kind in "dm":
        if not isinstance(v, dict):
            raise MessageError("bad-type", path, "expected map")
        if kind == "d":
            _size(v, spec[3], spec[4], path)
            for key, item in v.items():
                _check(spec[1], key, path + ".<key>")
                _check(spec[2], item, "%s.%s" % (path, key))
        else:
            _check_map(spec, v, path and path + ".")
    elif kind == "|":
        errors = []
        for alternative in spec[1]:
            try:
                return _check(alternative, v, path)
            except MessageError as exc:
                errors.append(exc)
        raise ([e for e in errors if e.code != "bad-type"] or errors)[0]


def _check_map(spec, m, prefix):
    _, fields, optional, one, tag, variants, rules, names = spec
    extra = ()
    if tag is not None:
        if tag not in m:
            raise MessageError("missing-field", prefix + _label(tag, names))
        extra = lookup(variants, m[tag]) if isinstance(m[tag], str) else None
        if extra is None:
            raise MessageError("bad-value", prefix + _label(tag, names),
                               "expected one of %r" % (tuple(v for v, _ in variants),))
    checks = []  # (spec, value, key) of every entry, found before any value is checked
    for key, item in m.items():
        if key != tag:
            field = lookup(fields, key)
            if field is None:
                field = lookup(extra, key)
                if field is None:
                    raise MessageError("unknown-field", prefix + _label(key, names))
            checks.append((field, item, key))
    for required in (fields, extra):
        for key, _ in required:
            if key not in m and key not in optional and key not in one:
                raise MessageError("missing-field", prefix + _label(key, names))
    if one and len([k for k in one if k in m]) != 1:
        raise MessageError("missing-field" if all(k not in m for k in one) else "exclusive",
                           prefix + "/".join(one), "exactly one is required")
    for field, item, key in checks:
        if type(key) is str:  # a text key names itself, whatever the table's names
            _check(field, item, prefix + key)
        elif field[0] in "ibsye*":  # a plain value, whose check looks at nothing inside,
            # needs its path named only in an error: then it is checked again with it
            try:
                _check(field, item, "")
            except MessageError:
                _check(field, item, prefix + _label(key, names))
        else:
            _check(field, item, prefix + _label(key, names))
    for rule in rules:
        _rule(rule, m, prefix, names)


def _rule(rule, m, prefix, names):
    if rule[0] == "<=":
        _, a, b, gap = rule
        if a in m and b in m and m[a] + gap > m[b]:
            raise MessageError("out-of-range", prefix + _label(a, names),
                               "not %s %s" % ("<" if gap else "<=", _label(b, names)))
    elif rule[0] == "lifetime":
        if m[7] - m[6] > MAX_LIFETIME:
            raise MessageError("out-of-range", "exp", "more than %d s after ts" % MAX_LIFETIME)
    else:  # "total"
        price, ship, total = m["price"], m["ship"], m["total"]
        if not price[1] == ship[1] == total[1]:
            raise MessageError("bad-value", prefix + "total", "currencies differ")
        if price[0] * m["qty"] + ship[0] != total[0]:
            raise MessageError("bad-value", prefix + "total", "is not price * qty + ship")


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
    if not isinstance(obj, dict):
        raise MessageError("bad-type", "message", "expected map")
    for key in (1, 2):
        if key not in obj:
            raise MessageError("missing-field", _label(key, HEADER_NAMES))
    if obj[1] != VERSION or not is_int(obj[1]):
        raise MessageError("bad-version", "v", "expected %d" % VERSION)
    t = obj[2]
    if not is_int(t):
        raise MessageError("bad-type", "t", "expected int")
    if not 1 <= t <= len(NAMES):
        raise MessageError("unknown-type", "t", str(t))
    _check_map(HEADER, obj, "")
    if t in ANSWERS and 9 not in obj:
        raise MessageError("missing-field", "re", "required in a %s" % NAMES[t - 1])
    check_body(t, obj[10])
    return obj


def check_body(msg_type, body):
    """Raise MessageError unless msg_type is a known type code and body a valid body of it."""
    if not (is_int(msg_type) and 1 <= msg_type <= len(NAMES)):
        raise MessageError("unknown-type", "t", str(msg_type))
    _check(BODIES[msg_type - 1], body, "b")


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


def approval_request_body(req_id, vendor, offer, why, until):
    """The body asking the owner to approve buying an offer (an offer body) from vendor."""
    summary = {"vendor": vendor, "offer": offer["offer"], "sku": offer["sku"],
               "title": offer["title"], "qty": offer["qty"], "total": offer["total"],
               "arrive": offer["arrive"], "test": offer["test"], "digest": offer_digest(offer)}
    if "from" in offer:
        summary["from"] = offer["from"]
    return {"req": req_id, "order": summary, "why": why, "until": until}


def offer_digest(offer):
    """SHA-256 of an offer body's deterministic CBOR: what an owner's approval names, so that the
    vendor can tell it approves this very offer."""
    from thingsdk.core.cbor import dumps

    return hashlib.sha256(dumps(offer)).digest()


def approval_terms(summary):
    """What an owner's approval of an approval request's order summary names (with `req` and
    `decision`: "approve", its body)."""
    return {"vendor": summary["vendor"], "offer": summary["offer"], "total": summary["total"],
            "digest": summary["digest"]}


def check_claims(claims):
    """Check the structure of a decoded mandate claims set (not the policy); return it."""
    _check(CLAIMS, claims, "")
    return claims
