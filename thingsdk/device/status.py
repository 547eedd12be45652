"""What a device's state folder says, read without the device running (`thingsdk status`):
consumables, needs in flight, the mandate held and the audit log's counters. Nothing is written.
"""

from pathlib import Path

from thingsdk import codec
from thingsdk.core import lifecycle, money, restore
from thingsdk.core.mandate import bound_kid
from thingsdk.device.state import FROM_OWNER, NEEDS, OUTBOX, StateFolder
from thingsdk.inspect import utc_text
from thingsdk.owner import mandate_report


def open_state(path):
    """The StateFolder at path; ValueError unless a device has run there (nothing is created)."""
    path = Path(path)
    if not all((path / name).is_dir() for name in (NEEDS, OUTBOX, FROM_OWNER)):
        raise ValueError("%s is not a device's state folder (no needs/, outbox/, from-owner/): "
                         "has the device run yet?" % path)
    return StateFolder(path)


def device_kid(state):
    """The device's key id, as the mandate it holds names it (None without a mandate); the
    device checked the token's signature before it kept it."""
    token = state.mandate()
    if token is None:
        return None
    claims = codec.loads(codec.loads(token).value[2])  # COSE_Sign1: [protected, {}, payload, sig]
    return bound_kid(claims)


def per_day(rate, unit):
    """A rate in milli-units per day as text: 4800000 -> "4800 ml/day", 1650 -> "1.65 l/day"."""
    whole, milli = divmod(rate, 1000)
    return "%d%s %s/day" % (whole, ("." + "%03d" % milli).rstrip("0") if milli else "", unit)


def _consumable_line(c, now):
    level = c.level(now)
    if level is None:
        return "  %-16s no reading yet (capacity %d %s)" % (c.slot, c.capacity, c.unit)
    rate = c.estimator.rate()
    empty = c.forecast(now).days()
    parts = ["%d/%d %s" % (level, c.capacity, c.unit),
             "learning the rate" if rate is None else per_day(rate, c.unit),
             _empty(empty) if empty else "no forecast yet"]
    if c.spares:
        parts.append("%d spare" % c.spares)
    if c.open_orders():
        parts.append("%d on order" % sum(c.open_orders().values()))
    return "  %-16s %s" % (c.slot, ", ".join(parts))


def _empty(days):
    """The days-to-empty band as text."""
    if days["lo"] == days["hi"]:
        return "empty in about %d day%s" % (days["est"], "" if days["est"] == 1 else "s")
    return "empty in %d to %d days (about %d)" % (days["lo"], days["hi"], days["est"])


def _need_line(rec, now):
    parts = ["%s %s" % (rec["need"].hex(), rec["state"]), "slot " + rec["slot"],
             "vendor " + rec["vendor"].hex()]
    if rec["oid"] is not None:
        parts += ["order " + rec["oid"].hex(), money.text(*rec["order"]["total"])]
    parts.append("since " + utc_text(rec["at"]))
    until = rec["cancel_until"]
    if rec["state"] in (lifecycle.PLACED, lifecycle.SHIPPED) and until is not None and now < until:
        parts.append("owner may cancel until " + utc_text(until))
    elif rec["state"] == lifecycle.ORDERING:
        parts.append("owner may cancel")
    return "  " + ", ".join(parts)


def counters(state):
    """{name: {key: count}} from the audit log: decisions by action, needs closed by reason,
    events ignored by reason, mandates refused by reason."""
    result = {"decisions": {}, "closed": {}, "ignored": {}, "mandates refused": {}}
    for record in state.audit.records():
        if "action" in record:
            name, key = "decisions", record["action"]
        elif record.get("state") == lifecycle.CLOSED:
            name, key = "closed", record.get("reason")
        elif "ignored" in record:
            name, key = "ignored", record["ignored"]
        elif record.get("mandate") == "refused":
            name, key = "mandates refused", record.get("reason")
        else:
            continue
        result[name][key] = result[name].get(key, 0) + 1
    return result


def report(path, now, kid=None, owner_public=None):
    """The state folder at path as text, at unix time `now`. `kid` (the device's key id) and
    `owner_public` (to check the mandate's signature) come from the device's config if known."""
    state = open_state(path)
    kid = kid or device_kid(state)
    lines = ["device       %s" % (kid.hex() if kid else "unknown (no mandate held)"),
             "state        %s, at %s" % (state.path, utc_text(now)), "consumables"]
    stored = state.load("consumables", {})
    lines += [_consumable_line(restore.consumable(stored[name]), now) for name in sorted(stored)]
    if not stored:
        lines.append("  (none read yet)")
    records = sorted(state.records(), key=lambda r: (r["at"], r["need"]))
    open_needs = [r for r in records if r["state"] != lifecycle.CLOSED]
    lines.append("in flight")
    lines += [_need_line(r, now) for r in open_needs] or ["  (nothing)"]
    closed = [r for r in records if r["state"] == lifecycle.CLOSED]
    if closed:
        lines.append("recently closed")
        lines += ["  %s %s, slot %s: %s at %s" % (r["need"].hex(), r["kind"], r["slot"],
                                                   r["reason"], utc_text(r["closed"]))
                  for r in closed]
    token = state.mandate()
    if token is None:
        lines.append("mandate      none held: the device orders nothing")
    else:
        lines.append(mandate_report(token, now, owner_public, kid)[0])
    lines.append("counters (audit log)")
    for name, counts in counters(state).items():
        lines.append("  %-17s %s" % (name, ", ".join(
            "%s %d" % (k, n) for k, n in sorted(counts.items(), key=str)) or "none"))
    return "\n".join(lines)
