"""The demo's story as it happens: what the wire, the things' audit logs and their refusal
counts tell after each step, put in time order for the timeline; the moves of the owner (a signed
approval, over the broker, for each approval request it hears there; a delivered consumable put
in) and of an attacker on the
broker (a copy of the first offer to a thing, with one bit flipped); and the counts the summary
tells.
"""

from thingsdk import codec, topics
from thingsdk.core import lifecycle
from thingsdk.core import messages as m
from thingsdk.core.money import text as money
from thingsdk.demo.timeline import decision_text, message_text, name_of, part_of, when

# Fulfilment news, which the vendor repeats to a thing that reports its status; and what the
# thing's audit log says when it ignores news it has.
NEWS = (m.SHIPMENT, m.DELIVERY)
KNOWN_NEWS = {(m.NAMES[t - 1], why) for t in NEWS for why in ("duplicate", "closed")}
REFUSALS = {"bad-signature": "the signature does not cover these bytes: they were changed "
                             "on the way",
            "unknown-key": "it is signed by a key the thing does not trust",
            "replayed": "it is a replay of a message already handled",
            "expired": "it has expired", "not-for-us": "it is addressed to another device"}


def tamper(data, total):
    """A copy of a sealed message with one bit of the amount `total` ([amount >= 24, currency],
    as it is in the payload) flipped: the highest bit of its first byte. Returns (copy, the
    amount it now says)."""
    encoded = codec.dumps(list(total))
    at = data.find(encoded)
    if at < 0 or total[0] < 24:
        raise ValueError("no amount of at least 24 to tamper with")
    first = data[at + 2]  # after the array's head and the integer's head
    copy = data[:at + 2] + bytes([first ^ 1 << first.bit_length() - 1]) + data[at + 3:]
    return copy, codec.loads(copy[at:at + len(encoded)])


class Story:
    """What happens, as it happens: each step's events in time order, the owner's and the
    attacker's moves, and the counts the summary tells."""

    def __init__(self, things, owner, wire, timeline, clock):
        self.things, self.owner, self.wire, self.timeline, self.clock = (
            things, owner, wire, timeline, clock)
        self.by_kid = {t.kid: t for t in things}
        self.refs = {}  # order id -> the vendor's reference
        self.audited = {t.kid: 0 for t in things}  # audit records shown so far
        self.refused = {t.kid: {} for t in things}  # refusals shown so far, by reason
        self.faulted = set()  # things that reported their fault
        self.injected = {}  # tampered bytes -> the thing they were sent to
        self.shown = set()  # the messages shown (bytes; fulfilment news: thing, type and body)
        self.repeats = 0  # messages not shown because the same was shown before
        self.traffic = {t.kid: [0, 0, 0, 0] for t in things}  # sent, received, their bytes
        self.refills = {t.kid: 0 for t in things}
        self.steps = {}  # the vendor's support steps, by thing
        self.approvals, self.budget_refusals, self.tampered, self.answered = [], [], [], []
        self.events = []

    def add(self, ts, who, text, last=False):
        """An event at `ts`; of a step's events at one time, those `last` (a need closing, which
        what went over the wire in that step brought about) come after the others."""
        self.events.append((ts, last, len(self.events), who, text))

    # One step.

    def step(self, seen):
        """Show what the wire saw while the vendor answered (`seen`), step every thing, and
        show what followed: what the things did, then what went over the wire."""
        for item in seen:
            self._wire(item)
        self._owner()
        for thing in self.things:
            self._fault(thing)
            thing.device.step()
        for thing in self.things:
            self._audit(thing)
            self._refusals(thing)
        for item in self.wire.drain():
            self._wire(item)
        for ts, _, _, who, text in sorted(self.events):
            self.timeline.event(ts, who, text)
        self.events = []

    def _fault(self, thing):
        fault = thing.spec.fault
        if fault and thing.kid not in self.faulted and \
                self.clock.now >= self.clock.start + fault.after:
            self.faulted.add(thing.kid)
            thing.device.report_fault(fault.code, fault.diag, fault.text)

    def _count(self, thing, sent, size):
        counts = self.traffic[thing.kid]
        counts[0 if sent else 1] += 1
        counts[2 if sent else 3] += size

    # The wire.

    def _wire(self, item):
        thing, msg = self.by_kid.get(item.kid), item.message
        if thing is None or item.data in self.injected:
            return  # not a thing of this demo, or the attacker's copy (told when it was sent)
        self._count(thing, item.up, len(item.data))
        if item.owner and msg is not None:
            if msg.type == m.NOTICE:
                self.add(msg.ts, thing.spec.name, "tells its owner: %s  [notice, %d B]" % (
                    msg.body["text"], len(item.data)))
            return  # the owner's moves tell the rest
        if msg is None:
            self.add(self.clock.now, "wire", "a message to or from the %s that does not verify "
                     "[%d B]" % (thing.spec.title, len(item.data)))
            return
        key = codec.dumps([thing.kid, msg.type, msg.body]) if msg.type in NEWS else item.data
        if key in self.shown:
            self.repeats += 1
            return
        self.shown.add(key)
        if msg.type == m.RECEIPT and "ref" in msg.body:
            self.refs[msg.body["order"]] = msg.body["ref"]
        text = message_text(msg, len(item.data), thing.spec.title,
                            lambda oid: self.refs.get(oid, oid.hex()[:8]))
        self.add(msg.ts, thing.spec.name if item.up else "vendor", text)
        if msg.type == m.OFFER and thing.spec.tamper and thing not in self.injected.values():
            self._attack(thing, item.data, msg)

    def _attack(self, thing, data, offer):
        copy, total = tamper(data, offer.body["total"])
        self.injected[copy] = thing
        self._count(thing, False, len(copy))
        self.add(offer.ts, "attacker", "publishes a copy of that offer to the %s with one bit "
                 "flipped, so that its total says %s instead of %s  [offer, %d B]"
                 % (thing.spec.title, money(*total), money(*offer.body["total"]), len(copy)))
        self.wire.publish(topics.downlink(thing.kid), copy)

    def _refusals(self, thing):
        now, shown = thing.device.refusals, self.refused[thing.kid]
        for reason, count in sorted(now.items()):
            for _ in range(count - shown.get(reason, 0)):
                self.add(self.clock.now, thing.spec.name, "refuses a message (%s): %s; nothing "
                         "changed" % (reason, REFUSALS.get(reason, "see docs/protocol.md")))
                sent = sum(1 for t in self.injected.values() if t is thing)
                if sent > sum(1 for t, _ in self.tampered if t is thing):
                    self.tampered.append((thing, "an offer with one bit flipped, refused (%s)"
                                          % reason))
        self.refused[thing.kid] = now

    # The audit log: decisions and the needs' states.

    def _audit(self, thing):
        records = thing.device.state.audit.records()
        for record in records[self.audited[thing.kid]:]:
            self._record(thing, record)
        self.audited[thing.kid] = len(records)

    def _record(self, thing, record):
        name, at, state = thing.spec.name, record.get("at", self.clock.now), record.get("state")
        if "action" in record:
            self.add(at, name, decision_text(record))
            if record["action"] == "refuse" and record["reason"] == "over-budget":
                budget = thing.device.mandate.of_kind("budget")[0]
                self.budget_refusals.append((thing, "%d × %s for %s, over its %s budget" % (
                    record["qty"], thing.spec.sku, money(*record["total"]),
                    money(budget["max"], budget["cur"]))))
        elif "steps" in record:
            self.steps[thing.kid] = record["steps"]
        elif "ignored" in record:
            if (record["what"], record["ignored"]) not in KNOWN_NEWS:
                self.add(at, name, "ignores a %s (%s)" % (record["what"], record["ignored"]))
        elif record.get("mandate") == "refused":
            self.add(at, name, "refuses a mandate (%s)" % record["reason"])
        elif state == lifecycle.DELIVERED and _kind(thing, record) == lifecycle.BUY:
            thing.sensor.refill()
            self.add(at, "owner", thing.spec.refill)
        elif state == lifecycle.CLOSED:
            self._closed(thing, record, at)

    def _owner(self):
        """The owner's moves: it approves each approval request it heard on the broker, and
        answers on the thing's from-owner topic."""
        while not self.owner.heard.empty():
            heard = self.owner.heard.get()
            thing, msg = self.by_kid.get(heard.device), heard.message
            if thing is None:
                continue
            if msg is None:
                self.add(self.clock.now, "owner", "refuses a message from the %s (%s)" % (
                    thing.spec.title, heard.refused))
            elif msg.type == m.APPROVAL_REQUEST:
                self._approve(thing, msg, len(heard.data))

    def _approve(self, thing, msg, size):
        order = msg.body["order"]
        what = "%d × %s for %s" % (order["qty"], order["title"], money(*order["total"]))
        self.add(msg.ts, thing.spec.name, "sends its owner an approval request: %s, answer by %s,"
                 " on %s  [approval-request, %d B]" % (what, when(msg.body["until"]),
                                                      topics.to_owner(thing.kid), size))
        approval = self.owner.approve(msg, self.clock.now)
        self.add(self.clock.now, "owner", "reads it on the broker and approves, signed with the "
                 "owner's key, on %s  [approval, %d B]" % (topics.from_owner(thing.kid),
                                                          len(approval)))
        self.approvals.append((thing, what + ", approved by the owner"))

    def _closed(self, thing, record, at):
        reason, name, spec = record["reason"], thing.spec.name, thing.spec
        if reason == "refilled":
            self.refills[thing.kid] += 1
            level = thing.consumable.level(self.clock.now)
            self.add(at, name, "sees the refill (%s at %s): that order is done" % (
                name_of(spec.slot), part_of(level, spec.capacity, spec.unit)), last=True)
        elif reason == "answered":
            self.answered.append((thing, "%s, %d steps" % (
                spec.fault.code, len(self.steps.get(thing.kid, ())))))
            self.add(at, name, "closes its support case: answered", last=True)
        elif reason != "over-budget":  # the decision said why
            self.add(at, name, "gives up on this need (%s)" % reason, last=True)

    # The end.

    def missing(self):
        """What the story still waits for (nothing once it played out)."""
        missing = ["%s refill" % t.spec.name for t in self.things if not self.refills[t.kid]]
        if not self.approvals:
            missing.append("approval")
        if not self.budget_refusals:
            missing.append("budget refusal")
        if len(self.tampered) < sum(1 for t in self.things if t.spec.tamper):
            missing.append("tampered offer refused")
        if len(self.answered) < sum(1 for t in self.things if t.spec.fault):
            missing.append("support answer")
        return missing


def _kind(thing, record):
    """The kind of need an audit record is about (BUY or SUPPORT), if the thing still has it."""
    return thing.device.orders.needs.get(record["need"], {}).get("kind")
