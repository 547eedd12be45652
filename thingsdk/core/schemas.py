"""The protocol's schemas and the validator that checks a value against them.

Mirrors spec/thingsdk.cddl: the rules of the spec that the checks need are written compactly in
one text, SCHEMAS, read into tuples for the value at hand and interpreted by one small
validator, `check`. thingsdk.core.messages checks every message with it and imports it only
when it checks one, so that a board can drop it while it decides (thingsdk.core.agent's
CHECKING), the one time it loads more code and checks no message. Portable: runs on MicroPython.
"""

import sys

from thingsdk.core.check import MessageError, is_int

MAX_LIFETIME = 30 * 86400  # seconds from a message's ts to its exp


# SCHEMAS names each rule of spec/thingsdk.cddl that the checks need, one rule a line (a line
# that goes on is indented): `name definition`. `schema(name)` reads a rule into the tuples that
# `check` interprets, only while a value of it is checked: on a board the text is the only copy
# in the heap (tables of tuples built at import took 4.6 KB more there), and names that appear
# only in it are never interned; the stock firmware leaves even the text on flash, read through
# a small window (thingsdk/firmware_texts.py), so the code only searches, indexes and slices it.
# Definitions:
#   i0..9   an int in 0..9 (-9 for a negative bound)     b16, b1..32   bytes of that length
#   s1..64  text of 1..64 UTF-8 bytes, s3..3/ABC/AB: only those ASCII characters (the second set:
#           the first character's)                          y  a bool        *  anything
#   =a|b|7  one of these values (numbers are ints)           (x y)  any of x, y
#   [x y]   an array of exactly x, y      [1*16 x]  1 to 16 x      {0*32 k v}  a map of k to v
#   {a: x ?b: y !c: z !d: z}  a map: fields a (required), b (optional), and exactly one of c, d;
#       `n@3:` a number key named n in errors; `t=(u{...} w{...})` the value of t (u or w)
#       brings the fields of its map; `a<=b`, `a<b` (both present: a <= b, a < b), `lifetime`
#       (exp - ts within MAX_LIFETIME) and `total-a-b` (an offer's total is price * qty + ship,
#       less a if present, all in one currency with b) are rules across fields
#   k(u{...} w{...})  a constraint [kind, params]: params of kind u, w, or any map of text keys
#       for a namespaced kind ("acme:eco")
#   name    another rule of SCHEMAS; each is named as in the spec (text and bool: its prelude's)
# Bytes, not text: on MicroPython each character taken out of a str can intern a new name.
SCHEMAS = b"""
id16 b16
kid b8
seq i0..9007199254740991
int53 i-9007199254740991..9007199254740991
timestamp i0..253402300799
duration i0..31622400
days i0..3660
count i1..1000000
amount i0..1000000000000
bool y
token s1..32/abcdefghijklmnopqrstuvwxyz0123456789._-/abcdefghijklmnopqrstuvwxyz0123456789
label s1..64
sentence s1..280
text s0..9007199254740991
currency s3..3/ABCDEFGHIJKLMNOPQRSTUVWXYZ
money [amount currency]
kid-hex s16..16/0123456789abcdef
mandate-version i1..4294967295
offer-digest b32
header {v@1: * t@2: * id@3: id16 kid@4: kid seq@5: seq ts@6: timestamp exp@7: timestamp
  to@8: kid ?re@9: id16 b@10: * ts<exp lifetime}
status-body {slots: [1*16 slot-status]}
slot-status {slot: token ?sku: label unit: token level: i0..1000000000 cap: i1..1000000000
  rate: i0..1000000000000 ?empty: days-to-empty ?spare: i0..1000 level<=cap}
days-to-empty {est: days lo: days hi: days lo<=est est<=hi}
quote-request-body {slot: token !sku: label !cat: token qty: count ?need: timestamp
  ?promo: id16 ?test: bool ?offer: id16 ?price: money}
offer-body {offer: id16 sku: label title: sentence qty: count price: money ship: money
  total: money lead: duration arrive: timestamp until: timestamp test: bool ?from: label
  ?credit: money ?reward: money total-credit-reward}
order-body {order: id16 offer: id16 sku: label qty: count total: money mandate: mandate-version
  test: bool ?appr: b1..1024}
receipt-body {order: id16 ?text: sentence
  status=(accepted{ref: label} duplicate{ref: label} rejected{reason: token})}
shipment-body {order: id16 carrier: label track: label eta: timestamp ?qty: count}
delivery-body {order: id16 at: timestamp qty: count}
cancel-body {order: id16 by: =owner|vendor|device reason: token ?text: sentence}
approval-request-body {req: id16 order: order-summary why: sentence until: timestamp}
order-summary {vendor: kid offer: id16 sku: label title: sentence qty: count total: money
  ?arrive: timestamp test: bool ?from: label digest: offer-digest}
approval-body {req: id16
  decision=(approve{vendor: kid offer: id16 total: money digest: offer-digest} decline{})}
mandate-body {cwt: b1..2048}
support-request-body {case: id16 fault: token diag: {0*32 text diag-value} ?text: sentence}
diag-value (int53 s0..128 bool)
support-reply-body {case: id16 steps: [1*16 sentence] ?visit: {price: money until: timestamp}}
promotion-body {promo: id16 sku: label ?title: sentence price: money until: timestamp
  ?max: count}
error-body {code: token text: sentence ?ref: id16}
resync-nonce-body {nonce: id16 floor: seq until: timestamp}
resync-body {nonce: id16}
resync-reply-body {from: seq epoch: count orders: [0*16 open-order]}
open-order {order: id16 sku: label qty: count status: =accepted|shipped ref: label
  eta: timestamp}
order-query-body {order: id16}
notice-body {kind: token text: sentence ?reason: token ?slot: token ?need: id16 ?order: id16}
mandate-claims {iss@1: kid-hex sub@2: kid-hex exp@4: timestamp nbf@5: timestamp iat@6: timestamp
  cnf@8: {1: ed25519-key} ver@-65537: mandate-version con@-65538: [0*32 constraint] nbf<exp iat<exp}
ed25519-key {1: =1 -1: =6 -2: b32}
constraint k(amount-range{cur: currency min: amount max: amount min<=max}
  budget{cur: currency max: amount period=(month{} rolling{window: i1..31622400})}
  recurrence{max: count period=(month{} rolling{window: i1..31622400})}
  vendors{kids: [1*16 kid]}
  items{allow: [1*32 item-rule]}
  approval-above{cur: currency amount: amount}
  cancel-window{seconds: duration}
  quiet-hours{!tz: i-720..840 !zone: label start: i0..1439 end: i0..1439}
  test-mode{})
item-rule {!sku: label !cat: token max-price: money max-qty: count}
"""
# The rules read so far, kept on CPython, where a vendor checks many messages a second; a board
# reads a rule each time it checks a value of it, so that its heap holds only the text.
_READ = None if sys.implementation.name == "micropython" else {}


def schema(name):
    """The rule `name` of SCHEMAS (text or bytes, such as "order-body") as the tuples `check`
    interprets: ("i", lo, hi), ("b", lo, hi), ("s", lo, hi[, chars[, first]]), ("y",), ("*",),
    ("e", values), ("|", specs), ("a", specs), ("l", spec, lo, hi), ("d", key, value, lo, hi),
    ("k", ((kind, map), ...)) and ("m", fields, optional, one, tag, variants, rules, names):
    fields ((key, spec), ...), variants ((value, fields), ...), names ((number key, name), ...)
    or None. ValueError for a name it does not hold."""
    if isinstance(name, str):
        name = name.encode()
    if _READ is not None and name in _READ:
        return _READ[name]
    at = SCHEMAS.find(b"\n" + name + b" ")
    if at < 0:
        raise ValueError("no schema %r" % name)
    spec = _read(SCHEMAS, at + len(name) + 2)[0]
    if _READ is not None:
        _READ[name] = spec
    return spec


def _token(text, at):
    """The token of schema text at `at` (a bracket, or a run of bytes up to a space or bracket)
    and where the text after it begins."""
    while text[at] in b" \n":
        at += 1
    end = at + 1
    if text[at] not in b"[]{}()":
        while text[end] not in b" \n[]{}()":
            end += 1
    return text[at:end], end


def _value(token):
    """A key or a value of schema text: an int, or text."""
    try:
        return int(token)
    except ValueError:
        return token.decode()


def _read(text, at):
    """The schema written at `at` in text, and where the text after it begins."""
    token, at = _token(text, at)
    if token in (b"[", b"{", b"("):
        first, after = _token(text, at)
        if token != b"(" and b"*" in first:  # [lo*hi item] or {lo*hi key value}
            lo, hi = first.split(b"*")
            items, at = _read_until(text, after)
            if token == b"[":
                return ("l", items[0], int(lo), int(hi)), at
            return ("d", items[0], items[1], int(lo), int(hi)), at
        if token == b"{":
            return _read_map(text, at)
        items, at = _read_until(text, at)
        return ("a" if token == b"[" else "|", items), at
    if token in (b"y", b"*"):
        return (token.decode(),), at
    if token == b"k":
        kinds, at = _read_pairs(text, at)
        return ("k", kinds), at
    if token[0] == 61:  # "=": one of the values
        return ("e", tuple(_value(v) for v in token[1:].split(b"|"))), at
    if token[0] in b"ibs" and token[1] in b"-0123456789":
        parts = token[1:].split(b"/")
        bounds = parts[0].split(b"..")
        return (token[:1].decode(), int(bounds[0]), int(bounds[-1])) + tuple(parts[1:]), at
    return schema(token), at


def _read_until(text, at):
    """The schemas written from `at` up to a closing bracket, and where the text after it begins."""
    items = []
    while True:
        token, after = _token(text, at)
        if token in (b"]", b"}", b")"):
            return tuple(items), after
        item, at = _read(text, at)
        items.append(item)


def _read_pairs(text, at):
    """((name, map schema), ...) written as `(name{...} name{...})` from `at`, and where the text
    after it begins."""
    pairs = []
    at = _token(text, at)[1]  # "("
    while True:
        token, at = _token(text, at)
        if token == b")":
            return tuple(pairs), at
        spec, at = _read_map(text, _token(text, at)[1])  # after "{"
        pairs.append((token.decode(), spec))


def _read_map(text, at):
    """The map schema whose fields begin at `at` (after its "{"), and where the text after it
    begins."""
    fields, optional, one, rules, names = [], [], [], [], []
    tag = variants = None
    while True:
        token, at = _token(text, at)
        if token == b"}":
            break
        if token[-1] == 58:  # "key:" a field, "?key:" an optional one, "!key:" one of several
            name = token[:-1].lstrip(b"?!")
            if b"@" in name:
                name, number = name.split(b"@")
                key = int(number)
                names.append((key, name.decode()))
            else:
                key = _value(name)
            spec, at = _read(text, at)
            fields.append((key, spec))
            if token[0] == 63:  # "?"
                optional.append(key)
            elif token[0] == 33:  # "!"
                one.append(key)
        elif token[-1] == 61:  # "tag=(value{...} ...)"
            tag = token[:-1].decode()
            pairs, at = _read_pairs(text, at)
            variants = tuple((value, spec[1]) for value, spec in pairs)
        elif b"<" in token:  # "a<=b" or "a<b"
            a, b = token.split(b"<=") if b"<=" in token else token.split(b"<")
            rules.append(("<=", _key(a, names), _key(b, names), 0 if b"<=" in token else 1))
        else:  # "lifetime" or "total-credit-reward"
            rules.append(tuple(token.decode().split("-")))
    return ("m", tuple(fields), tuple(optional), tuple(one), tag, variants, tuple(rules),
            tuple(names) or None), at


def _key(name, names):
    """The key that a rule's `name` stands for: a number key named so, else the name."""
    name = name.decode()
    for key, known in names:
        if known == name:
            return key
    return name


def lookup(pairs, key):
    """The value paired with key in a table of (key, value) pairs, or None. Keys match by value
    and type, so True is not 1."""
    for k, v in pairs:
        if k == key and type(k) is type(key):
            return v
    return None


def label(key, names):
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


def check(spec, v, path):
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
                check(item_spec, v[i], "%s[%d]" % (path, i))
        elif kind == "l":
            _size(v, spec[2], spec[3], path)
            for i, item in enumerate(v):
                check(spec[1], item, "%s[%d]" % (path, i))
        else:
            _size(v, 2, 2, path)
            check(schema(b"text"), v[0], path + "[0]")
            params = lookup(spec[1], v[0])
            if params is None:  # an extension kind, "namespace:name"
                parts = v[0].split(":")
                if len(parts) != 2:
                    raise MessageError("bad-value", path + "[0]", "unknown kind, not namespaced")
                for part in parts:
                    check(schema(b"token"), part, path + "[0]")
                params = _read(b"{0*9007199254740991 text *}", 0)[0]
            check(params, v[1], "%s[%s]" % (path, v[0]))
    elif kind in "dm":
        if not isinstance(v, dict):
            raise MessageError("bad-type", path, "expected map")
        if kind == "d":
            _size(v, spec[3], spec[4], path)
            for key, item in v.items():
                check(spec[1], key, path + ".<key>")
                check(spec[2], item, "%s.%s" % (path, key))
        else:
            check_map(spec, v, path and path + ".")
    elif kind == "|":
        errors = []
        for alternative in spec[1]:
            try:
                return check(alternative, v, path)
            except MessageError as exc:
                errors.append(exc)
        raise ([e for e in errors if e.code != "bad-type"] or errors)[0]


def check_map(spec, m, prefix):
    _, fields, optional, one, tag, variants, rules, names = spec
    extra = ()
    if tag is not None:
        if tag not in m:
            raise MessageError("missing-field", prefix + label(tag, names))
        extra = lookup(variants, m[tag]) if isinstance(m[tag], str) else None
        if extra is None:
            raise MessageError("bad-value", prefix + label(tag, names),
                               "expected one of %r" % (tuple(v for v, _ in variants),))
    checks = []  # (spec, value, key) of every entry, found before any value is checked
    for key, item in m.items():
        if key != tag:
            field = lookup(fields, key)
            if field is None:
                field = lookup(extra, key)
                if field is None:
                    raise MessageError("unknown-field", prefix + label(key, names))
            checks.append((field, item, key))
    for required in (fields, extra):
        for key, _ in required:
            if key not in m and key not in optional and key not in one:
                raise MessageError("missing-field", prefix + label(key, names))
    if one and len([k for k in one if k in m]) != 1:
        raise MessageError("missing-field" if all(k not in m for k in one) else "exclusive",
                           prefix + "/".join(one), "exactly one is required")
    for field, item, key in checks:
        if type(key) is str:  # a text key names itself, whatever the table's names
            check(field, item, prefix + key)
        elif field[0] in "ibsye*":  # a plain value, whose check looks at nothing inside,
            # needs its path named only in an error: then it is checked again with it
            try:
                check(field, item, "")
            except MessageError:
                check(field, item, prefix + label(key, names))
        else:
            check(field, item, prefix + label(key, names))
    for rule in rules:
        _rule(rule, m, prefix, names)


def _rule(rule, m, prefix, names):
    if rule[0] == "<=":
        _, a, b, gap = rule
        if a in m and b in m and m[a] + gap > m[b]:
            raise MessageError("out-of-range", prefix + label(a, names),
                               "not %s %s" % ("<" if gap else "<=", label(b, names)))
    elif rule[0] == "lifetime":
        if m[7] - m[6] > MAX_LIFETIME:
            raise MessageError("out-of-range", "exp", "more than %d s after ts" % MAX_LIFETIME)
    else:  # "total", the money fields taken off it and the others in its currency
        price, ship, total = m["price"], m["ship"], m["total"]
        less = m.get(rule[1], (0, total[1]))
        if not price[1] == ship[1] == total[1] == less[1] or \
                any(m[k][1] != total[1] for k in rule[2:] if k in m):
            raise MessageError("bad-value", prefix + "total", "currencies differ")
        if price[0] * m["qty"] + ship[0] - less[0] != total[0]:
            raise MessageError("bad-value", prefix + "total", "is not price * qty + ship - " +
                               rule[1])
