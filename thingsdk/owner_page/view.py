"""The owner's page as HTML, built from a Feed's snapshot: per device its presence, each
consumable's level history and forecast (inline SVG), pending approval requests with Approve and
Decline forms, spend against the mandate's budgets, what was said (with sentences) and what did not
verify. Plain string building; every text from a message is escaped."""

import json
from dataclasses import dataclass
from html import escape

from thingsdk.core import messages, money
from thingsdk.core.ledger import DAY, period_start
from thingsdk.inspect import utc_text
from thingsdk.owner import describe, mandate_report
from thingsdk.owner_page.feed import DEREGISTERED, Device


def _short(value):
    return bytes(value[:4]).hex()


def sentence(m: "messages.Message") -> str:
    """What a verified message says, in a sentence."""
    b = m.body
    if m.type == messages.STATUS:
        return "Status: " + "; ".join("%s %d/%d %s" % (s["slot"], s["level"], s["cap"], s["unit"])
                                      for s in b["slots"])
    if m.type == messages.OFFER:
        return "%s offers %d x %s for %s, arriving %s." % (
            b.get("from", "The vendor"), b["qty"], b["title"], money.text(*b["total"]),
            utc_text(b["arrive"]))
    if m.type == messages.ORDER:
        return "Ordered %d x %s for %s (order %s)%s." % (
            b["qty"], b["sku"], money.text(*b["total"]), _short(b["order"]),
            ", with your approval" if "appr" in b else "")
    if m.type == messages.RECEIPT:
        said = {"accepted": "accepted (ref %s)" % b.get("ref"),
                "duplicate": "already had it (ref %s)" % b.get("ref"),
                "rejected": "rejected it (%s)" % b.get("reason")}[b["status"]]
        return "The vendor %s: order %s.%s" % (said, _short(b["order"]),
                                               " " + b["text"] if "text" in b else "")
    if m.type == messages.SHIPMENT:
        return "Order %s shipped by %s, tracking %s, expected %s." % (
            _short(b["order"]), b["carrier"], b["track"], utc_text(b["eta"]))
    if m.type == messages.DELIVERY:
        return "Order %s delivered at %s." % (_short(b["order"]), utc_text(b["at"]))
    if m.type == messages.CANCEL:
        return "Order %s cancelled by the %s (%s)." % (_short(b["order"]), b["by"], b["reason"])
    if m.type == messages.APPROVAL_REQUEST:
        o = b["order"]
        return "Asks to buy %d x %s for %s from %s: %s" % (
            o["qty"], o["title"], money.text(*o["total"]), o.get("from", o["vendor"].hex()),
            b["why"])
    if m.type == messages.SUPPORT_REQUEST:
        return "Fault %s%s" % (b["fault"], ": " + b["text"] if "text" in b else ".")
    if m.type == messages.ERROR:
        if b["code"] == DEREGISTERED:
            return "The vendor revoked this device (%s): %s" % (b["code"], b["text"])
        return "The vendor refused something (%s): %s" % (b["code"], b["text"])
    if m.type == messages.NOTICE:  # the device's own sentence, its kind first
        return "%s: %s" % (b["kind"].capitalize().replace("-", " "), b["text"])
    return "A %s message." % m.name()


# ---- the consumables' plot ------------------------------------------------------------------

W, H, PAD = 320, 120, 4


def slots(device: Device):
    """slot name -> (points [(ts, level)], latest slot status, ts of that status)."""
    found = {}
    for e in device.statuses:
        for s in e.message.body["slots"]:
            points, _, _ = found.get(s["slot"], ([], None, None))
            points.append((e.message.ts, s["level"]))
            found[s["slot"]] = (points, s, e.message.ts)
    return found


def forecast(status, ts):
    """(runs out around, (earliest, latest) or None) as unix times; None if not using any."""
    if "empty" in status:
        e = status["empty"]
        return ts + e["est"] * DAY, (ts + e["lo"] * DAY, ts + e["hi"] * DAY)
    if status["rate"]:
        return ts + status["level"] * 1000 * DAY // status["rate"], None
    return None, None


def plot(name, points, status, ts):
    """An inline SVG of the level over time, with the forecast dashed to empty and its band."""
    out, band = forecast(status, ts)
    start = points[0][0]
    end = max([ts + DAY] + [t for t in (out, band and band[1]) if t])
    cap = status["cap"]

    def x(t):
        return PAD + (W - 2 * PAD) * (t - start) / max(1, end - start)

    def y(level):
        return PAD + (H - 2 * PAD) * (1 - level / cap)

    parts = ['<svg viewBox="0 0 %d %d" role="img" aria-labelledby="t-%s" class="plot">'
             % (W, H, escape(name)),
             '<title id="t-%s">%s: level over time%s</title>' % (
                 escape(name), escape(name), ", forecast to empty" if out else ""),
             '<rect x="0" y="0" width="%d" height="%d" class="frame"/>' % (W, H)]
    if band:
        parts.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" class="band"/>'
                     % (x(band[0]), PAD, max(1.0, x(band[1]) - x(band[0])), H - 2 * PAD))
    parts.append('<polyline class="level" points="%s"/>' % " ".join(
        "%.1f,%.1f" % (x(t), y(v)) for t, v in points))
    if out:
        parts.append('<line class="forecast" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>'
                     % (x(ts), y(status["level"]), x(out), y(0)))
    parts.append("</svg>")
    return "".join(parts)


def _consumables(device):
    found = slots(device)
    if not found:
        return "<p>No status from this device yet.</p>"
    html = []
    for name, (points, status, ts) in sorted(found.items()):
        out, band = forecast(status, ts)
        words = "%d of %d %s left, using %s %s a day" % (
            status["level"], status["cap"], status["unit"], _milli(status["rate"]), status["unit"])
        if out:
            words += "; runs out around %s" % utc_text(out)[:10]
            if band:
                words += " (between %s and %s)" % (utc_text(band[0])[:10], utc_text(band[1])[:10])
        html.append("<figure><figcaption><strong>%s</strong>: %s.</figcaption>%s</figure>"
                    % (escape(name), escape(words), plot(name, points, status, ts)))
    return "".join(html)


def _milli(rate):
    return "%d.%03d" % (rate // 1000, rate % 1000) if rate % 1000 else str(rate // 1000)


# ---- spend ----------------------------------------------------------------------------------

def spend(device: Device, params, now):
    """Minor units of the budget's currency ordered and accepted by the vendor in the period."""
    accepted = {e.message.body["order"] for e in device.verified(messages.RECEIPT)
                if e.message.body["status"] == "accepted"}
    start = period_start(params, now)
    return sum(e.message.body["total"][0] for e in device.verified(messages.ORDER)
               if e.message.body["order"] in accepted and e.message.ts >= start
               and e.message.body["total"][1] == params["cur"])


def _budget(device, mandate, owner_public, now):
    if mandate is None:
        return "<p>No mandate given (<code>--mandate</code>).</p>"
    items = []
    for kind, params in mandate.constraints:
        line = escape(describe(kind, params))
        if kind == "budget":
            used = spend(device, params, now)
            line += ' <meter min="0" max="%d" value="%d"></meter> Spent %s of %s.' % (
                params["max"], min(used, params["max"]), money.text(used, params["cur"]),
                money.text(params["max"], params["cur"]))
        items.append("<li>%s</li>" % line)
    report, ok = mandate_report(mandate.token, now, owner_public)
    return '<ul>%s</ul><details><summary>The mandate%s</summary><pre>%s</pre></details>' % (
        "".join(items), "" if ok else ": NOT VALID NOW OR NOT YOURS", escape(report))


# ---- the page -------------------------------------------------------------------------------

def _pending(device, now, csrf):
    requests = device.pending(now)
    if not requests:
        return "<p>Nothing waits for your answer.</p>"
    html = []
    for m in requests:
        req = m.body["req"].hex()
        html.append(
            '<article class="request"><p>%s</p><p>Answer by %s.</p>'
            '<form method="post" action="answer">'
            '<input type="hidden" name="kid" value="%s"><input type="hidden" name="req" value="%s">'
            '<input type="hidden" name="csrf" value="%s">'
            '<button type="submit" name="decision" value="approve">Approve</button> '
            '<button type="submit" name="decision" value="decline">Decline</button></form>'
            '</article>' % (escape(sentence(m)), utc_text(m.body["until"]), device.kid.hex(),
                            req, escape(csrf)))
    return "".join(html)


def _history(device):
    rows = []
    for e in reversed(device.entries):
        if e.verified:
            what, text = e.message.name(), sentence(e.message)
        else:
            what, text = "unverified", "A message on %s that did not verify (%s): not shown." % (
                e.kind, e.reason)
        rows.append('<li class="%s"><time>%s</time> <b>%s</b> %s</li>' % (
            "ok" if e.verified else "bad", utc_text(e.at), escape(what), escape(text)))
    return "<ol class=\"history\">%s</ol>" % "".join(rows[:50]) if rows else "<p>Nothing yet.</p>"


@dataclass
class Context:
    """What every rendering needs besides the feed's snapshot: the forms' CSRF token, the
    mandates the owner gave (device kid -> Mandate) and the owner's public key (to check them)."""
    csrf: str
    mandates: dict
    owner_public: bytes


def device_section(device: Device, ctx: Context, now):
    kid = device.kid.hex()
    state = "revoked by the vendor" if device.revoked else device.presence
    rejected = sum(device.rejected.values())
    faults = device.verified(messages.SUPPORT_REQUEST)
    return (
        '<section class="device" aria-labelledby="d-{kid}" id="device-{kid}">'
        '<h2 id="d-{kid}">Device {kid} <span class="state {cls}">{state}</span></h2>'
        '<h3>Waiting for your answer</h3><div class="pending">{pending}</div>'
        '<h3>Consumables</h3>{consumables}'
        '<h3>Spend and rules</h3>{budget}'
        '<h3>Faults</h3>{faults}'
        '<h3>What was said</h3>{history}'
        '<p class="rejected">Unverified or malformed messages: <span class="count">{rejected}'
        '</span>{why}</p></section>').format(
            kid=kid, cls=escape(state.split()[0]), state=escape(state),
            pending=_pending(device, now, ctx.csrf), consumables=_consumables(device),
            budget=_budget(device, ctx.mandates.get(device.kid), ctx.owner_public, now),
            faults="<ul>%s</ul>" % "".join("<li>%s</li>" % escape(sentence(e.message))
                                           for e in faults) if faults else "<p>None.</p>",
            history=_history(device), rejected=rejected,
            why=" (%s)" % escape(", ".join("%s: %d" % kv for kv in sorted(device.rejected.items())))
            if rejected else "")


def body(snapshot, ctx: Context, now):
    """The live part of the page: the broker's state and each device."""
    devices, connected, foreign = snapshot
    head = '<p class="broker" id="broker" role="status">Broker: %s.%s</p>' % (
        "connected" if connected else "not connected, retrying",
        " %d messages on topics of no device of yours." % foreign if foreign else "")
    return head + "".join(device_section(d, ctx, now) for d in devices.values())


STYLE = """
*{box-sizing:border-box}body{font:16px/1.45 system-ui,sans-serif;margin:0;color:#111;background:#fafafa}
header,main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}h1{font-size:1.5rem}
.device{background:#fff;border:1px solid #ccc;border-radius:.5rem;padding:.5rem 1rem;margin:1rem 0}
h2{font-size:1.2rem;overflow-wrap:anywhere}h3{font-size:1rem;margin-bottom:.25rem}
.state{font-size:.9rem;padding:.1rem .4rem;border-radius:.3rem;background:#eee}
.online{background:#cfc}.offline,.revoked{background:#fcc}
figure{margin:.5rem 0}.plot{width:100%;max-width:40rem;height:auto}
.frame{fill:#f4f4f4;stroke:#999}.band{fill:#fd9;opacity:.6}
.level{fill:none;stroke:#06c;stroke-width:2}.forecast{stroke:#c60;stroke-width:2;stroke-dasharray:6 4}
.request{border-left:4px solid #c60;padding-left:.5rem}
button{font:inherit;padding:.5rem 1rem;margin:.25rem .25rem .25rem 0;border-radius:.3rem;border:1px solid #444}
button[value=approve]{background:#063;color:#fff}
.history{padding-left:1.2rem}.history li{margin:.2rem 0;overflow-wrap:anywhere}.bad{color:#a00}
code{overflow-wrap:anywhere}
"""

# Each update replaces only the parts (by id) that changed, so the focus stays on a button no
# update touched.
SCRIPT = """
(function(){if(!window.EventSource)return;var es=new EventSource(%s);
es.onmessage=function(e){var t=document.createElement('template');t.innerHTML=e.data;
var main=document.getElementById('live');
Array.prototype.slice.call(t.content.children).forEach(function(n){
var old=n.id&&document.getElementById(n.id);
if(!old)main.appendChild(n);else if(old.outerHTML!==n.outerHTML)old.replaceWith(n);});};})();
"""


def page(snapshot, ctx: Context, now, events_url):
    """The whole page: landmarks, the live part, and the script that keeps it current."""
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>Your devices</title><style>%s</style></head><body>'
            '<header><h1>Your devices</h1></header>'
            '<main id="live">%s</main>'
            '<footer><p>Answers are signed here with your key and sent to the device.</p></footer>'
            '<script>%s</script></body></html>'
            % (STYLE, body(snapshot, ctx, now),
               SCRIPT % json.dumps(events_url)))
