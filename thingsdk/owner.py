"""The owner's side of the `thingsdk` command: write and read mandates, answer approval requests,
read a device's audit log.

Mandates are written with friendly options (`--budget 50.00EUR/month`), the same ones a TOML file
for `mandate sign` uses as keys. Money is parsed as text into integer minor units, with the
currency's decimals from `thingsdk.core.money`: never through a float.
"""

import os
import re
import tomllib
from pathlib import Path

from thingsdk import codec
from thingsdk.audit import AuditLog
from thingsdk.core import approval, cose, envelope, messages, money, replay, schemas
from thingsdk.core import mandate as md
from thingsdk.core.keys import key_id
from thingsdk.core.ledger import DAY, MAX_AMOUNT
from thingsdk.core.policy import duration
from thingsdk.crypto import Ed25519Verifier, load_public_key
from thingsdk.inspect import utc_text, is_file
from thingsdk.storage import CheckpointError, SequenceStore, atomic_write

MAX_QTY = 1000000  # the protocol's bound on a quantity: an item rule without a limit gets it
DEFAULT_VALID_DAYS = 365

# The constraint options of `mandate create`, also the keys of a `mandate sign` file:
# (name, repeatable, metavar, help).
CONSTRAINT_OPTIONS = (
    ("amount-range", False, "MIN-MAX", "each order's total within, e.g. 1.00-60.00EUR"),
    ("budget", True, "AMOUNT/PERIOD",
     "spend at most, e.g. 50.00EUR/month or 200.00EUR/rolling:90d; repeatable"),
    ("max-orders", True, "N/PERIOD", "at most N orders, e.g. 2/month or 4/rolling:30d; repeatable"),
    ("vendor", True, "KID", "an allowed vendor: its key id (16 hex digits) or public key; "
     "repeatable"),
    ("item", True, "SKU[:MAXPRICE][:MAXQTY]",
     "an allowed item, e.g. WF-300:30.00EUR:2; repeatable"),
    ("category", True, "CAT[:MAXPRICE][:MAXQTY]", "an allowed category, e.g. coffee:20.00EUR; "
     "repeatable"),
    ("approval-above", False, "AMOUNT", "ask the owner for orders above, e.g. 40.00EUR"),
    ("cancel-window", False, "DURATION", "the owner may cancel an order for, e.g. 24h"),
    ("quiet-hours", False, "HH:MM-HH:MM[@TZ]", "no orders then: 22:00-07:00 (UTC), "
     "22:00-07:00@+60 (minutes east of UTC) or 22:00-07:00@Europe/Berlin"),
    ("test-mode", False, None, "test orders only: nothing is charged or shipped"),
)
_FILE_KEYS = {"device-pub", "version", "valid-days"} | {o[0] for o in CONSTRAINT_OPTIONS}


# ---- reading friendly text ------------------------------------------------------------------

_MONEY = re.compile(r"([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]{3})")
_DURATION = re.compile(r"(?:[0-9]+[smhdw])+")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_OFFSET = re.compile(r"([+-])(?:([0-9]{1,2}):([0-9]{2})|([0-9]{1,3}))")


def parse_money(text):
    """"24.9EUR" -> (2490, "EUR"): minor units by the currency's decimals, read as text."""
    match = _MONEY.fullmatch(text.strip())
    if not match:
        raise ValueError("%r is not an amount such as 24.90EUR" % text)
    whole, fraction, currency = match.group(1), match.group(2) or "", match.group(3).upper()
    decimals = money.DECIMALS.get(currency, 2)
    if len(fraction) > decimals:
        raise ValueError("%r has more decimals than %s's %d" % (text, currency, decimals))
    amount = int(whole + fraction + "0" * (decimals - len(fraction)))
    if amount > MAX_AMOUNT:
        raise ValueError("%r is more than the protocol's largest amount" % text)
    return amount, currency


def parse_duration(text):
    """"24h", "90d", "1h30m" -> seconds."""
    if not _DURATION.fullmatch(text.strip()):
        raise ValueError("%r is not a duration such as 24h, 90d or 1h30m" % text)
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)([smhdw])", text))


def _period(text):
    """"month" or "rolling:90d" as a budget's or recurrence's period params."""
    if text == "month":
        return {"period": "month"}
    kind, _, window = text.partition(":")
    if kind != "rolling" or not window:
        raise ValueError("%r is not a period: month or rolling:<duration>, e.g. rolling:90d" % text)
    return {"period": "rolling", "window": parse_duration(window)}


def _split(text, name, example):
    head, sep, tail = text.partition("/")
    if not sep:
        raise ValueError("%s %r lacks a period, e.g. %s" % (name, text, example))
    return head, _period(tail)


def _budget(text):
    amount, period = _split(text, "budget", "50.00EUR/month")
    value, currency = parse_money(amount)
    return dict(period, cur=currency, max=value)


def _recurrence(text):
    count, period = _split(text, "max-orders", "2/month")
    if not count.isdigit() or not 1 <= int(count) <= MAX_QTY:
        raise ValueError("max-orders %r: the count must be a whole number 1..%d" % (text, MAX_QTY))
    return dict(period, max=int(count))


def _amount_range(text):
    low, sep, high = text.partition("-")
    if not sep:
        raise ValueError("amount-range %r is not MIN-MAX, e.g. 1.00-60.00EUR" % text)
    top, currency = parse_money(high)
    bottom, low_currency = parse_money(low if _MONEY.fullmatch(low.strip()) else low + currency)
    if low_currency != currency or bottom > top:
        raise ValueError("amount-range %r: MIN must not exceed MAX, in one currency" % text)
    return {"cur": currency, "min": bottom, "max": top}


def parse_kid(text):
    """A key id from 16 hex digits, or from the public key (PEM file or 64 hex digits)."""
    text = text.strip()
    if len(text) == 16:
        return bytes.fromhex(text)
    return key_id(read_public_key(text))


def read_public_key(arg: str) -> bytes:
    """A raw Ed25519 public key from a PEM file or 64 hex digits."""
    return load_public_key(Path(arg).read_text() if is_file(arg) else arg)


def _item(text, key, currency):
    """An `items` rule from "NAME[:MAXPRICE][:MAXQTY]"; an omitted price or quantity is not
    limited (the largest the protocol allows, in the mandate's currency)."""
    parts = text.split(":")
    rule = {"max-qty": MAX_QTY}
    if len(parts) > 1 and parts[-1].isdigit():
        rule["max-qty"] = int(parts.pop())
    if len(parts) > 1 and _MONEY.fullmatch(parts[-1].strip()):
        rule["max-price"] = list(parse_money(parts.pop()))
    elif currency is None:
        raise ValueError("%s %r: give a max price (e.g. %s:20.00EUR) or a budget, amount range "
                         "or approval limit, so the currency is known" % (key, text, parts[0]))
    else:
        rule["max-price"] = [MAX_AMOUNT, currency]
    rule["sku" if key == "item" else "cat"] = ":".join(parts)
    return rule


def _clock(text):
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError("%r is not a time of day such as 22:00" % text)
    return int(match.group(1)) * 60 + int(match.group(2))


def _quiet_hours(text):
    span, _, zone = text.partition("@")
    start, sep, end = span.partition("-")
    if not sep:
        raise ValueError("quiet-hours %r is not HH:MM-HH:MM[@TZ]" % text)
    params = {"start": _clock(start), "end": _clock(end)}
    offset = _OFFSET.fullmatch(zone.strip())
    if not zone:
        params["tz"] = 0
    elif offset:
        sign, hours, minutes, total = offset.groups()
        minutes = int(total) if total else int(hours) * 60 + int(minutes)
        params["tz"] = -minutes if sign == "-" else minutes
    else:
        params["zone"] = zone.strip()
    return params


def _listed(options, name):
    value = options.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def constraints(options):
    """The [kind, params] constraints from option values ({option name: text or list of text,
    test-mode a bool}), in a fixed order."""
    result = []
    if options.get("amount-range"):
        result.append(["amount-range", _amount_range(options["amount-range"])])
    result += [["budget", _budget(text)] for text in _listed(options, "budget")]
    result += [["recurrence", _recurrence(text)] for text in _listed(options, "max-orders")]
    kids = []
    for text in _listed(options, "vendor"):
        kid = parse_kid(text)
        if kid not in kids:
            kids.append(kid)
    if kids:
        result.append(["vendors", {"kids": kids}])
    if options.get("approval-above"):
        amount, currency = parse_money(options["approval-above"])
        result.append(["approval-above", {"cur": currency, "amount": amount}])
    currencies = [params["cur"] for _, params in result if "cur" in params]
    currency = currencies[0] if currencies else None
    rules = [_item(text, "item", currency) for text in _listed(options, "item")]
    rules += [_item(text, "category", currency) for text in _listed(options, "category")]
    if rules:
        result.append(["items", {"allow": rules}])
    if options.get("cancel-window"):
        result.append(["cancel-window", {"seconds": parse_duration(options["cancel-window"])}])
    if options.get("quiet-hours"):
        result.append(["quiet-hours", _quiet_hours(options["quiet-hours"])])
    if options.get("test-mode"):
        result.append(["test-mode", {}])
    return result


def build_claims(options, owner_kid, now):
    """A checked claims set from options: "device-pub" (PEM file or hex), "version", "valid-days"
    (from now; 365 if absent) and the constraint options."""
    if not options.get("device-pub"):
        raise ValueError("the device's public key is needed (device-pub)")
    version, days = options.get("version"), options.get("valid-days")
    days = DEFAULT_VALID_DAYS if days is None else days
    for name, value in (("version", version), ("valid-days", days)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError("%s must be a whole number of at least 1" % name)
    return md.make_claims(owner_kid, read_public_key(options["device-pub"]), version, now,
                          now + days * DAY, constraints(options))


def read_mandate_file(path):
    """The options written in a TOML file: the keys are the `mandate create` option names."""
    with open(path, "rb") as f:
        try:
            options = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError("%s is not TOML: %s" % (path, exc))
    unknown = sorted(set(options) - _FILE_KEYS)
    if unknown:
        raise ValueError("%s: unknown keys %s" % (path, ", ".join(unknown)))
    for name, repeatable, metavar, _ in CONSTRAINT_OPTIONS:
        value = options.get(name)
        texts = value if repeatable and isinstance(value, list) else [value]
        if value is not None and metavar is None and not isinstance(value, bool):
            raise ValueError("%s: %s must be true or false" % (path, name))
        if value is not None and metavar and not all(isinstance(t, str) for t in texts):
            raise ValueError("%s: %s must be text%s" % (path, name,
                                                        " or a list of text" if repeatable else ""))
    return options


def write_mandate(claims, owner_signer, out):
    """Sign the claims with the owner's key and write the token to `out`; return it."""
    token = md.issue(claims, owner_signer, codec)
    atomic_write(out, token, mode=0o644)
    return token


# ---- describing a mandate -------------------------------------------------------------------

def _per(params):
    if params["period"] == "month":
        return "per calendar month (UTC)"
    return "in any %s" % duration(params["window"])


def _rule_text(rule):
    name = rule["sku"] if "sku" in rule else "anything of category " + rule["cat"]
    price = rule["max-price"]
    limit = "any price" if price[0] == MAX_AMOUNT else "at most %s each" % money.text(*price)
    qty = "" if rule["max-qty"] == MAX_QTY else ", up to %d per order" % rule["max-qty"]
    return "%s (%s%s)" % (name, limit, qty)


def _zone_text(params):
    if "zone" in params:
        return params["zone"]
    tz = params["tz"]
    return "UTC" if tz == 0 else "UTC%s%02d:%02d" % ("-" if tz < 0 else "+", abs(tz) // 60,
                                                      abs(tz) % 60)


def describe(kind, params):
    """One constraint as a sentence a person reads."""
    if kind == "amount-range":
        return "Each order totals between %s and %s." % (money.text(params["min"], params["cur"]),
                                                         money.text(params["max"], params["cur"]))
    if kind == "budget":
        return "Orders total at most %s %s." % (money.text(params["max"], params["cur"]),
                                                _per(params))
    if kind == "recurrence":
        return "At most %d order%s %s." % (params["max"], "" if params["max"] == 1 else "s",
                                           _per(params))
    if kind == "vendors":
        return "Only from the vendor%s %s." % ("" if len(params["kids"]) == 1 else "s",
                                               ", ".join(k.hex() for k in params["kids"]))
    if kind == "items":
        return "Only these items: %s." % "; ".join(_rule_text(r) for r in params["allow"])
    if kind == "approval-above":
        return "Orders above %s need your approval." % money.text(params["amount"], params["cur"])
    if kind == "cancel-window":
        return "You may cancel an order for %s after the vendor accepts it." % duration(
            params["seconds"])
    if kind == "quiet-hours":
        return "No orders or approval requests from %02d:%02d to %02d:%02d (%s)." % (
            params["start"] // 60, params["start"] % 60, params["end"] // 60, params["end"] % 60,
            _zone_text(params))
    if kind == "test-mode":
        return "Test orders only: nothing is charged or shipped."
    return "A rule this tool does not know (%s %r): a device that does not know it orders " \
           "nothing." % (kind, params)


class _Unchecked:
    """A verifier that accepts any Ed25519 signature: for reading a signed message's content
    when the signer's key is not at hand (reports then say the signature was not checked)."""

    alg = cose.ALG_EDDSA

    def verify(self, signature, data):
        return True


def _unchecked(kid):
    return _Unchecked()


def _roughly(seconds):
    """Seconds in their largest whole unit, rounded down: "364 days", "5 hours"."""
    for unit in (DAY, 3600, 60):
        if seconds >= unit:
            return duration(seconds - seconds % unit)
    return duration(seconds)


def _validity(m, now):
    status = m.status(now)
    if status == "expired":
        return "EXPIRED %s ago" % _roughly(now - m.expires)
    if status:
        return "NOT YET VALID: starts in %s" % _roughly(m.not_before - now)
    return "valid now, %s left" % _roughly(m.expires - now)


def _signature(token, owner_public, device_kid, now):
    """(the signature line, whether it checked out)."""
    if owner_public is None:
        return "not checked: pass --owner-pub with the owner's public key", True
    try:
        md.verify(token, Ed25519Verifier(owner_public), codec, device_kid, now)
    except md.MandateError as exc:
        if exc.code == "wrong-owner":
            return "INVALID (wrong-owner): not signed by the key given (%s)" % key_id(
                owner_public).hex(), False
        if exc.code not in ("expired", "not-yet-valid"):
            return "INVALID (%s)" % exc, False
    return "valid: signed by the owner %s for device %s" % (key_id(owner_public).hex(),
                                                            device_kid.hex()), True


def read_mandate(token):
    """(Mandate, the key id of the device it is bound to) from a token, its structure checked
    but not its signature (mandate_report checks that against a given owner key)."""
    claims = codec.loads(cose.verify_sign1(token, _unchecked, codec).payload)
    return md.Mandate(messages.check_claims(claims), token), md.bound_kid(claims)


def mandate_report(token, now, owner_public=None, device_kid=None):
    """A human-readable report on a mandate token, and whether it checked out and is valid now.
    Without `owner_public` the signature is not checked; `device_kid` defaults to the key the
    mandate names."""
    m, bound = read_mandate(token)
    device_kid = bound if device_kid is None else device_kid
    signature, ok = _signature(token, owner_public, device_kid, now)
    lines = ["mandate      version %d, %d bytes" % (m.version, len(token)),
             "owner        %s" % m.owner,
             "device       %s" % m.device,
             "valid        %s until %s: %s" % (utc_text(m.not_before), utc_text(m.expires),
                                               _validity(m, now)),
             "issued       %s" % utc_text(m.issued_at),
             "signature    " + signature,
             "rules        %d" % len(m.constraints) + ("" if m.constraints else
                                                       " (no limits: the device decides alone)")]
    lines += ["  %d. %s" % (i, describe(kind, params))
              for i, (kind, params) in enumerate(m.constraints, 1)]
    return "\n".join(lines), ok and m.status(now) is None


# ---- answering approval requests ------------------------------------------------------------

def next_seq(owner_key_path):
    """The owner key's next sequence number, checkpointed in a file next to the key
    (`<stem>.seq`), so numbers never repeat across runs."""
    try:
        return SequenceStore(Path(owner_key_path).with_suffix(".seq"), block=1).take()
    except CheckpointError as exc:
        raise ValueError(str(exc))


_REFUSALS = {"unknown-key": "it is not signed by the device key given",
             "not-for-us": "it is addressed to another key than this owner's"}


def open_request(data, owner_signer, now, device_public=None):
    """The approval-request message in data, addressed to the owner, fresh and not lapsed; its
    signature checked when the device's public key is given. Raise ValueError otherwise."""
    keys = _unchecked if device_public is None else {
        key_id(device_public): Ed25519Verifier(device_public)}
    guard = replay.ReplayGuard(max_lifetime=schemas.MAX_LIFETIME)
    opened = envelope.Inbox(owner_signer.kid, keys, codec, guard).open(data, now)
    if opened.status == envelope.REJECT:
        why = _REFUSALS.get(opened.reason, opened.detail)
        raise ValueError("cannot answer this message (%s): %s" % (opened.reason, why))
    return answerable(opened.message, now)


def answerable(msg, now):
    """msg, if it is an approval request still open at `now`; raise ValueError otherwise."""
    if msg.type != messages.APPROVAL_REQUEST:
        raise ValueError("not an approval request but a message of type %s" % msg.name())
    if now >= msg.body["until"]:
        raise ValueError("the request lapsed at %s; no answer counts as a decline"
                         % utc_text(msg.body["until"]))
    return msg


def request_report(msg, checked):
    """What an approval request asks, for the owner to read."""
    order = msg.body["order"]
    total = money.text(*order["total"])
    lines = ["approval request %s from device %s (signature %s)" % (
                 msg.body["req"].hex(), msg.kid.hex(),
                 "valid" if checked else "not checked: pass --device-pub"),
             "  order      %d x %s (%s) for %s from %s%s" % (
                 order["qty"], order["title"], order["sku"], total, _vendor(order),
                 ", a TEST order" if order["test"] else ""),
             "  why        " + msg.body["why"],
             "  answer by  " + utc_text(msg.body["until"])]
    if "arrive" in order:
        lines.insert(2, "  arrives    " + utc_text(order["arrive"]))
    return "\n".join(lines)


def _vendor(order):
    """The vendor of an order summary as the owner reads it: the name it signed into its offer
    (as the device passed it on) with its key id, or the key id alone."""
    kid = order["vendor"].hex()
    return "%s (vendor %s)" % (order["from"], kid) if "from" in order else "vendor " + kid


def answer(msg, decision, owner_signer, seq, now, msg_id):
    """The owner's signed approval message (decision "approve" or "decline") answering the
    request `msg`, addressed to its device; it lives until the request lapses, a day at most.
    An approval names the vendor, the offer (id and digest) and the total it approves: the
    device carries it in its order and the vendor verifies it with the owner's key."""
    ttl = min(msg.body["until"] - now, DAY)
    body = {"req": msg.body["req"], "decision": decision}
    if decision == "approve":  # what it approves, for the vendor to check as well
        body.update(approval.terms(msg.body["order"]))
    return envelope.seal(messages.APPROVAL, body, owner_signer, msg.kid, seq, now, msg_id, codec,
                         ttl, reply_to=msg.id)


def mandate_message(token, owner_signer, device_kid, seq, now, msg_id):
    """A new mandate for the device, sealed by its owner: the device takes it (the newer version
    replaces the one it holds) and passes it on to the vendor. It lives a day."""
    return envelope.seal(messages.MANDATE, {"cwt": token}, owner_signer, device_kid, seq, now,
                         msg_id, codec, DAY)


def new_id():
    """A fresh random message id."""
    return os.urandom(messages.ID_SIZE)


# ---- the audit log --------------------------------------------------------------------------

TIMES = ("at", "until", "hold_until", "due")  # audit record keys that hold unix times


def _shown(value, key=None):
    """A record's value as people read it: ids (bytes) as their first 4 bytes in hex, as the
    device's console names messages; times as UTC; lists item by item."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:4]).hex()
    if key in TIMES and isinstance(value, int) and not isinstance(value, bool):
        return utc_text(value)
    if isinstance(value, (list, tuple)):
        return "[%s]" % ", ".join(_shown(v) for v in value)
    if isinstance(value, float):
        return "%.4g" % value
    return str(value)


def _field(record, key):
    value = record.get(key)
    return "-" if value is None else _shown(value, key)


def _record_line(record):
    """One audit record on one line: time, action, reason, sentence; other records as key=value."""
    when = utc_text(record["at"]) if isinstance(record.get("at"), int) else "-"
    if "action" in record:
        return "%-20s  %-6s  %-24s  %s" % (when, _field(record, "action"),
                                            _field(record, "reason"), _field(record, "text"))
    rest = " ".join("%s=%s" % (k, _field(record, k)) for k in record if k != "at")
    return "%-20s  %s" % (when, rest)


def log_report(path, last=None):
    """The audit log at path, one record per line (the last `last` only), with a closing note
    when its tail is torn or damaged records were skipped; and whether none was."""
    if not os.path.exists(path):
        raise ValueError("%s: no such file" % path)
    log = AuditLog(path)
    records, state, damaged = log.read()
    shown = records if last is None else records[max(0, len(records) - last):]
    lines = [_record_line(r) for r in shown]
    if state == "torn":
        lines.append("(the last record is torn, as a power cut leaves it: %d intact records "
                     "before it)" % len(records))
    if damaged:
        lines.append("WARNING: %s: %d damaged record%s failed %s check and %s skipped; the %d "
                     "others are shown" % (path, damaged, "s" if damaged > 1 else "",
                                           "their" if damaged > 1 else "its",
                                           "were" if damaged > 1 else "was", len(records)))
    return "\n".join(lines or ["(no records)"]), not damaged
