"""The demo's text: one line per event (simulated time, who, what happened), each message with
its type and size on the wire; a progress line on a terminal; and the closing summary table.
"""

import shutil
import textwrap
from datetime import datetime, timezone

from thingsdk.core import messages as m
from thingsdk.core.money import text as money
from thingsdk.core.policy import duration

WHO = 8  # width of the "who" column
DECISIONS = {"buy": "decides to buy", "ask": "asks its owner first", "wait": "decides to wait",
             "refuse": "decides not to buy", "counter": "counters the offer"}


def when(ts):
    """Simulated time as a person reads it: "Tue 03 Mar 09:30" (UTC)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%a %d %b %H:%M")


def _tty(stream):
    return getattr(stream, "isatty", lambda: False)()


class Timeline:
    """Writes events to `out` (not with `quiet`) and a progress line to `err` when it is a
    terminal. Lines are wrapped to a terminal's width, and kept whole otherwise."""

    def __init__(self, out, err, quiet=False):
        self.out, self.err, self.quiet = out, err, quiet
        self.width = shutil.get_terminal_size().columns if _tty(out) else None
        self.progress_shown = False
        self.show_progress = _tty(err)

    def say(self, text=""):
        """A line of the introduction (not with `quiet`)."""
        if not self.quiet:
            self._write(text)

    def event(self, ts, who, text):
        """One event of the timeline (not with `quiet`)."""
        if self.quiet:
            return
        head = "%s  %-*s " % (when(ts), WHO, who)
        if self.width:
            text = textwrap.fill(text, self.width - 1, initial_indent=head,
                                 subsequent_indent=" " * len(head))
        else:
            text = head + text
        self._write(text)

    def summary(self, lines):
        """The closing lines, shown even with `quiet`."""
        for line in lines:
            self._write(line)

    def progress(self, text):
        """Replace the progress line (only on a terminal)."""
        if self.show_progress:
            width = shutil.get_terminal_size().columns
            self.err.write("\r\x1b[K" + text[:width - 1])
            self.err.flush()
            self.progress_shown = True

    def clear(self):
        """Remove the progress line."""
        if self.progress_shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self.progress_shown = False

    def _write(self, text):
        self.clear()
        self.out.write(text + "\n")
        self.out.flush()


# ---- what things say -------------------------------------------------------------------------

def name_of(slot):
    """A slot's name in words: "water-filter" -> "water filter"."""
    return slot.replace("-", " ")


def _quantity(n, unit):
    """(number, unit) as a person reads them: 54500 ml -> ("54.5", "l"), 420 page -> ("420",
    "pages"): a word unit takes an "s"."""
    if unit == "ml":
        litres, rest = divmod(n, 1000)
        return "%d%s" % (litres, ".%d" % (rest // 100) if rest >= 100 else ""), "l"
    return str(n), unit + ("s" if len(unit) > 2 and n != 1 else "")


def amount(n, unit):
    """Units of a consumable as a person reads them: "54.5 l", "420 pages"."""
    return "%s %s" % _quantity(n, unit)


def part_of(n, whole, unit):
    """A level and a capacity: "54.5 of 300 l"."""
    return "%s of %s" % (_quantity(n, unit)[0], amount(whole, unit))


def span(seconds):
    """A simulated stretch of time, roughly: "3 days 18 hours"."""
    if seconds < 3600:
        return duration(seconds)
    days, hours = divmod(seconds // 3600, 24)
    parts = [duration(days * 86400)] if days else []
    return " ".join(parts + [duration(hours * 3600)] if hours or not days else parts)


def _days_left(empty):
    if empty is None:
        return "no forecast yet"
    est, lo, hi = empty["est"], empty["lo"], empty["hi"]
    left = "about %s left" % duration(est * 86400) if est else "less than a day left"
    return left + ("" if lo == hi else " (%d–%d days)" % (lo, hi))


def _slot_text(s):
    return "%s at %s (%d%%), %s" % (name_of(s["slot"]), part_of(s["level"], s["cap"], s["unit"]),
                                   s["level"] * 100 // s["cap"], _days_left(s.get("empty")))


def _diag(diag):
    return ", ".join("%s=%s" % item for item in sorted(diag.items()))


def message_text(msg, size, thing, ref):
    """What a message on the wire says, told from its sender's side: `thing` is what the
    thing is called, `ref(order id)` the vendor's reference of an order (or a short id)."""
    b, t = msg.body, msg.type
    if t == m.STATUS:
        text = "reports " + "; ".join(_slot_text(s) for s in b["slots"])
    elif t == m.QUOTE_REQUEST:
        text = "asks the vendor for %d × %s" % (b["qty"], b.get("sku") or b.get("cat"))
        if "offer" in b:
            text = "counters the vendor's offer: %d × %s at up to %s each%s" % (
                b["qty"], b["sku"], money(*b["price"]),
                ", arriving by " + when(b["need"]) if "need" in b else "")
    elif t == m.OFFER:
        text = "offers the %s %d × %s for %s, delivery in %s, valid %s" % (
            thing, b["qty"], b["title"], money(*b["total"]), duration(b["lead"]),
            duration(b["until"] - msg.ts))
        if "credit" in b:
            text += ", %s of its credit taken off" % money(*b["credit"])
        if "reward" in b:
            text += ", and %s back as credit toward its next order" % money(*b["reward"])
    elif t == m.ORDER:
        text = "orders %d × %s for %s under mandate v%d%s" % (
            b["qty"], b["sku"], money(*b["total"]), b["mandate"],
            ", with the owner's approval" if "appr" in b else "")
    elif t == m.RECEIPT:
        text = {"accepted": "accepts the %s's order as %s",
                "duplicate": "answers that %s's order is covered by %s",
                "rejected": "rejects the %s's order (%s)"}[b["status"]] % (
            thing, b.get("ref") or b.get("reason"))
        text += ": " + b["text"] if "text" in b else ""
    elif t == m.SHIPMENT:
        text = "ships the %s's order %s with %s, arriving %s" % (thing, ref(b["order"]),
                                                                 b["carrier"], when(b["eta"]))
    elif t == m.DELIVERY:
        text = "delivers the %s's order %s (%s)" % (thing, ref(b["order"]),
                                                    amount(b["qty"], "item"))
    elif t == m.CANCEL:
        text = "cancels order %s (%s, decided by the %s)" % (ref(b["order"]), b["reason"], b["by"])
    elif t == m.MANDATE:
        text = "hands the vendor its owner-signed mandate"
    elif t == m.SUPPORT_REQUEST:
        text = "reports a fault, %s (%s)%s" % (b["fault"], _diag(b["diag"]),
                                              ": " + b["text"] if "text" in b else "")
    elif t == m.SUPPORT_REPLY:
        steps = " ".join("%d. %s" % (i, step) for i, step in enumerate(b["steps"], 1))
        text = "answers the %s's fault: %s" % (thing, steps)
        if "visit" in b:
            text += " It quotes a technician visit for %s." % money(*b["visit"]["price"])
    elif t == m.PROMOTION:
        text = "offers the %s %s at %s each" % (thing, b["sku"], money(*b["price"]))
    elif t == m.ERROR:
        text = "answers with an error, %s: %s" % (b["code"], b["text"])
    else:
        text = "sends a %s" % msg.name()
    return "%s  [%s, %d B]" % (text, msg.name(), size)


def decision_text(record):
    """A decision from the audit log: what the thing does, and its sentence."""
    head = DECISIONS.get(record["action"], record["action"])
    if record["action"] == "refuse":
        head += " (%s)" % record["reason"]
    return "%s: %s" % (head, record["text"])


# ---- the summary -------------------------------------------------------------------------------

def table(rows):
    """Rows of cells as aligned text: the first row is the heading; numbers align right."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [str(c).rjust(w) if isinstance(c, int) else str(c).ljust(w)
                 for c, w in zip(row, widths)]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines
