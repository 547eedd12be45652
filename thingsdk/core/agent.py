"""The device's agent: it carries out the order lifecycle's effects (thingsdk.core.lifecycle) with
crash-safe storage and signed messages, and feeds the lifecycle what happens: sensor readings,
decisions, the vendor's and the owner's messages, the passing of time.

Portable, and the same on a Raspberry Pi (thingsdk.device.runtime adds threads and paho) and on a
board (the firmware adds asyncio, flash and its MQTT client). Everything outside comes in: the
signer and the pinned verifiers, a state store (thingsdk.device.state.StateFolder on CPython, the
firmware's flash store on a board: the same methods), the codec, `new_id()` (16 random bytes),
`publish(data, msg_type)` for sealed bytes meant for the vendor (returning False when they wait
for a connection instead of going out now), `to_owner(data, msg_type)` the same for the owner's
(None: they stay in the outbox for the owner to fetch), `zones(name, now)` for quiet hours and
`note(text)` for what an operator should see. Time is an argument of every call.

Crash safety, as lifecycle.py asks: a record is written before any message it sends; a message is
sealed once, its bytes kept in the outbox before they are published, and a message id already
sealed is published again as the same bytes; the inbox records a message only after the effects
it caused were carried out, so a crash in between lets a redelivery be processed again.
"""

import binascii
import sys

from thingsdk.core import envelope, lifecycle, money
from thingsdk.core import messages as m
from thingsdk.core.consumable import DAY, Consumable
from thingsdk.core.ledger import Ledger, period_start
from thingsdk.core.mandate_held import MandateError
from thingsdk.core.replay import EXPIRED, FROM_FUTURE, ReplayGuard

MAX_SLOTS = 16  # the protocol's bound on the slots of one status message
DEREGISTERED = "device-deregistered"  # the vendor's error once its operator revoked the device
# A sensor source has `kind` and `read(now) -> int` in the consumable's unit: LEVEL sources return
# what is left now, USAGE sources what was used since their last read.
LEVEL, USAGE = "level", "usage"
# The modules a need uses only while it decides (quantities, the mandate's checks, choosing an
# offer, a counter-proposal, an owner's answer), imported then; an agent that `spare`s its heap
# drops them again before the message decided on is signed. On a board MicroPython loads a
# module's code into the heap: these are about 10 KB that an order's other turns do without.
DECIDING = ("decide", "policy", "counter", "approval")
# The validator of messages (thingsdk.core.schemas, which thingsdk.core.messages imports to check
# one): an agent that `spare`s its heap drops it before the DECIDING modules load, as a decision
# checks no message (but an owner's approval, which loads it again), and the next message
# checked loads it again (about 6 KB on a board).
CHECKING = ("schemas",)
# The mandate's verification (the Mandate held is in `mandate_held`, about 1.4 KB less on a
# board): an agent that `spare`s its heap drops it once a mandate token is taken or refused.
MANDATE = ("mandate",)
# The modules an agent uses only as it starts, to read its state back and check it, with the
# mandate's verification, about 7.5 KB on a board; an agent that `spare`s its heap drops them once
# started.
STARTING = ("restore", "lifecycle_rare") + MANDATE
# The modules of rarer events (the lifecycle's: a wait running out, an approval, a cancel...; and
# rejoining the vendor after lost counters), imported when one comes; an agent that `spare`s its
# heap drops them again once the event is carried out, before any decision: one wait or approval
# would otherwise leave them loaded (about 5 KB) at every decision after it.
OCCASIONAL = ("lifecycle_rare", "resync")
# The closed needs an agent that `spare`s its heap keeps (lifecycle.Orders' keep_closed), where a
# Pi keeps MAX_CLOSED: each held 1.3-1.7 KB of a board's heap (measured on the 32-bit unix
# port), and with eight a device that has ordered for months needed about 10 KB more at every
# order than at its first. The two latest are kept, so that a late answer still meets its closed
# need, as the latest needs get most of them; and any that still rests its slot (closed without a
# delivery less than `wait` ago, lifecycle.resting), so that a slot is not asked for again at once
# because other slots' needs closed since.
# They are lean (lifecycle.Orders' `lean`): 640 B each after four orders, from 928 B when they
# let go of less (offers, decision, receipt and shipments only).
SPARE_CLOSED = 2
# The message ids an agent that `spare`s its heap remembers per sender, for telling a redelivery
# from a new message (the replay guard's own bound is 32): each took about 100 bytes of a board's
# heap, and an order brings about five from the vendor, so from its seventh order on a board held
# about 3 KB of them (measured after four orders: 1.1 KB less alive with eight kept). A
# redelivery older than these is still refused, by its sequence number, as a replay rather than
# taken for a duplicate, and nothing is acted on twice.
SPARE_IDS = 8


def drop(names):
    """Take the modules `names` of thingsdk.core out of sys.modules and the package: their code
    leaves the heap once nothing holds it any more, and the next import loads it again.

    On MicroPython each module's globals are emptied as well. Its collector takes any word on the
    C stack that looks like an address for a reference, and a stale one left by the dropped code
    (one of its functions, say) kept the whole module alive through its globals: measured on the
    32-bit unix port, the deciding code (9.4 KB) was still in the heap while the order it decided
    went out in 8 of 12 layouts of a board's state folders, in none with the globals emptied. So
    nothing may keep a module of these sets, or a function or class of one, past the drop (the
    modules that import them at their top are in the same sets); CPython, which frees what is no
    longer referenced, keeps them whole for code that still holds them."""
    package = sys.modules["thingsdk.core"]
    for name in names:
        module = sys.modules.pop("thingsdk.core." + name, None)
        if module is None:
            continue
        if hasattr(package, name):
            delattr(package, name)
        if sys.implementation.name == "micropython":
            module.__dict__.clear()


def feed(consumable, source, now):
    """Read `source` once and hand the value to `consumable`; return the rise in level when the
    reading reveals a refill, else 0. Counted use starts from a full slot."""
    value = source.read(now)
    if source.kind != USAGE:
        return consumable.read(now, value)
    if consumable.level(now) is None:
        consumable.refill(now)
    consumable.use(now, value)
    return 0


def _short(msg_id):
    """A message id as people read it in a log: its first 4 bytes in hex."""
    return binascii.hexlify(msg_id[:4]).decode()


class Slot:
    """A consumable slot: its Consumable (the state store's copy replaces it once there is one),
    its sensor `source` (kind and read(now): thingsdk.sensors.Sensor) and what to ask vendors
    for: the consumable's `sku`, or else `category`."""

    def __init__(self, consumable: "Consumable", source, category: "str | None" = None) -> None:
        if consumable.sku is None and category is None:
            raise ValueError("slot %s needs a sku or a category" % consumable.slot)
        self.consumable = consumable
        self.source = source
        self.category = category

    @property
    def name(self):
        return self.consumable.slot

    def ask(self, qty):
        """The quote-request body for qty items."""
        item = {"sku": self.consumable.sku} if self.consumable.sku else {"cat": self.category}
        item.update(slot=self.name, qty=qty)
        return item


class Agent:
    """One device: its key (`signer`), the vendor's and the owner's verifiers (pinned keys), a
    state store, its Slots, `config`: lifecycle settings (overrides of lifecycle.DEFAULTS) and the
    `heartbeat` period of its status messages. `now` is the clock at start, for the mandate held.
    `spare`: drop the STARTING modules once started and the DECIDING ones once a decision is
    taken (a board, whose heap holds its code), rather than keep them loaded.
    """

    def __init__(self, signer, vendor, owner, state, slots, codec, new_id, now, publish=None,
                 config=None, heartbeat=DAY, zones=None, note=None, to_owner=None, spare=False):
        self.signer, self.kid = signer, signer.kid
        self.vendor, self.owner = vendor, owner
        self.state = state
        self.slots = {}
        for slot in slots:
            self.slots[slot.name] = slot
        self.codec, self.new_id, self.zones = codec, new_id, zones
        self.publish, self.to_owner = publish, to_owner
        self.heartbeat, self.spare = heartbeat, spare
        self.note = note or (lambda text: None)
        self.duplicates = 0
        self.clock_behind = None  # seconds, once a signed message from the future showed it
        self.deregistered = False  # said "the vendor refused this device" since the last start
        self.facts = state.load("device", {})
        from thingsdk.core import restore  # as it starts only: a board drops it once started

        stored = state.load("consumables", {})
        for name, slot in self.slots.items():
            if name in stored:  # what was learnt, with the settings the config gives now
                kept = restore.consumable(stored[name])
                slot.consumable = restore.carry_on(kept, slot.consumable)
        self.mandate = restore.mandate(state.mandate(), owner, codec, self.kid, now, self.note)
        limits = self.mandate.limits() if self.mandate else ()
        ledger = state.load("ledger")
        self.ledger = restore.ledger(ledger, limits) if ledger else Ledger(limits)
        guard = state.load("inbox")
        ids = {"ids_per_sender": SPARE_IDS} if spare else {}
        guard = restore.replay_guard(guard, **ids) if guard else ReplayGuard(**ids)
        keys = {vendor.kid: vendor, owner.kid: owner}
        self.inbox = envelope.Inbox(self.kid, keys, codec, guard)
        self.orders = lifecycle.Orders(new_id, config, state.records(),
                                       SPARE_CLOSED if spare else lifecycle.MAX_CLOSED, spare)
        if spare:
            drop(STARTING)

    @property
    def refusals(self):
        """Messages refused since start, by reason (they change nothing)."""
        return dict(self.inbox.rejections)

    def start(self, now, mandate=None):
        """Carry on every need kept in the state store, and tell the vendor the mandate held (the
        vendor checks orders against it). `mandate`: a token to offer (from the owner's file);
        the one held stays unless this one verifies with a higher version."""
        self._run(self.orders.resume(now), now)
        told = mandate is not None and self.take_mandate(mandate, now)
        if self.mandate is not None and not told:
            self._send_new(m.MANDATE, {"cwt": self.mandate.token}, now)

    def step(self, now):
        """One turn after the downlinks and the owner's messages were received: the owner's
        files (for owners without a broker), sensors, deadlines, new needs, the heartbeat."""
        for path, data in self.state.owner_drops():
            if data is not None:
                self.receive(data, now)
            self.state.done_with(path)
        self._read_sensors(now)
        self._run(self.orders.tick(now), now)
        self._open_needs(now)
        self._send_status(now)
        self.state.prune_sealed(now)

    def report_fault(self, code, diagnostics, now, text=None):
        """Ask the vendor for support with a fault (a token) and diagnostics (name -> int, text
        or bool); returns the need's id. One open case per fault code."""
        slot = "fault:" + code
        self._run(self.orders.support(slot, code, diagnostics, self.vendor.kid, self.owner.kid,
                                      now, text), now)
        need = self.orders.open_for(slot)["need"]
        self._tell("fault", "Fault %s reported to the vendor%s" % (
            code, ": " + text if text else "."), now, need, reason=code)
        return need

    def take_mandate(self, token, now):
        """Hold a new mandate token if it verifies and replaces the one held; True if it did."""
        from thingsdk.core.mandate import accept  # only as one comes: spares board heap

        try:
            new = accept(self.mandate, token, self.owner, self.codec, self.kid, now)
        except MandateError as exc:
            self.state.audit.append({"at": now, "mandate": "refused", "reason": exc.code})
            self.note("mandate refused: %s" % exc)
            return False
        finally:
            if self.spare:
                drop(MANDATE)
        if new is self.mandate:
            return False
        self.state.save_mandate(token)
        self.mandate = new
        self.ledger.count_against(new.limits())
        self.state.audit.append({"at": now, "mandate": new.version})
        self._send_new(m.MANDATE, {"cwt": token}, now)
        return True

    # Messages in.

    def receive(self, data, now):
        """Open a message from the vendor or the owner and act on it (refusals are counted)."""
        opened = self.inbox.open(data, now)
        if opened.status == envelope.REJECT:
            self._refused(opened, now)
            return
        self.clock_behind = None
        if opened.status == envelope.DUPLICATE:
            self.duplicates += 1
            return
        msg = opened.message
        if msg.type == m.MANDATE:
            self.take_mandate(msg.body["cwt"], now)
        elif msg.type in (m.RESYNC_NONCE, m.RESYNC_REPLY):
            from thingsdk.core import resync  # only once counters were lost: spares board heap

            resync.receive(self, msg, now)
            if self.spare:
                drop(OCCASIONAL)
        else:
            code = msg.body["code"] if msg.type == m.ERROR else None
            said = code == DEREGISTERED and self.deregistered  # every heartbeat hears it again
            self.deregistered = code == DEREGISTERED  # until the vendor answers otherwise
            if code is not None and not said:
                self.note("the vendor refused %s: %s%s" % (
                    "this device" if code == DEREGISTERED else "a message", code,
                    ": " + msg.body["text"] if msg.body.get("text") else ""))
            if self.deregistered:
                self._tell("revoked", "The vendor has revoked this device: it refuses its "
                                      "orders.", now)
            elif msg.kid == self.vendor.kid:
                self._tell(None, "revoked", now)  # taken again: a later revocation is news
            self._run(self.orders.message(lifecycle.from_message(msg, opened.data), now), now)
        self.inbox.commit(opened)
        self.state.save("inbox", self.inbox.guard.to_state())

    def _refused(self, opened, now):
        """Say why a message was refused. One from the future, signed by the vendor or the owner,
        proves this clock behind theirs: said once, with by how much, until one is taken again
        (`clock_behind`: the most seconds it was shown behind, None once a message is taken)."""
        msg = opened.message
        if opened.reason == FROM_FUTURE and msg is not None:
            behind = msg.ts - now
            if self.clock_behind is None:
                self.note("this device's clock is %d s behind the time %s signed: set it (NTP); "
                          "their messages are refused until then" % (
                              behind, "the vendor" if msg.kid == self.vendor.kid else "the owner"))
                self.clock_behind = behind
            self.clock_behind = max(self.clock_behind, behind)  # each proves at least so much
        elif opened.reason == EXPIRED and msg is not None:
            self.note("refused expired: it expired %d s ago by this clock (late, or this clock "
                      "is ahead)" % (now - msg.exp))
        else:
            self.note("refused %s: %s" % (opened.reason, opened.detail))

    # Sensors and needs.

    def _read_sensors(self, now):
        for name, slot in self.slots.items():
            try:
                rise = feed(slot.consumable, slot.source, now)
            except (OSError, ValueError) as exc:  # a sensor that fails, a clock set back
                self.note("slot %s: no reading: %s" % (name, exc))
                continue
            if rise > 0:
                self._run(self.orders.refilled(name, now), now)
        self._save_consumables()

    def _open_needs(self, now):
        due = [(name, slot) for name, slot in self.slots.items()
               if self.orders.open_for(name) is None and not self._resting(name, now)
               and slot.consumable.reorder(now)]
        asks = self._quantities(due, now) if due else ()
        if asks and self.spare:
            drop(DECIDING)
        for name, ask in asks:
            self._run(self.orders.need(name, ask, self.vendor.kid, self.owner.kid, now), now)

    def _quantities(self, due, now):
        """[(slot name, quote-request body)] for the due slots that may order now, each for the
        quantity the mandate allows."""
        if self.spare:
            drop(CHECKING)
        from thingsdk.core.decide import mandate_problem, quantity

        if mandate_problem(self.mandate, now, []) is not None:
            return []
        asks = []
        for name, slot in due:
            qty = quantity(slot.consumable, self.mandate, self.ledger, now, slot.category)[0]
            if qty:
                asks.append((name, slot.ask(qty)))
        return asks

    def _resting(self, slot, now):
        """Whether a need of the slot rests it (lifecycle.resting): the next one waits."""
        config = self.orders.config
        for r in self.orders.needs.values():
            if r["slot"] == slot and lifecycle.resting(r, now, config):
                return True
        return False

    def _send_status(self, now):
        last = self.facts.get("status")
        if last is not None and now < last + self.heartbeat:
            return
        slots = [s.consumable.status(now) for s in self.slots.values()
                 if s.consumable.level(now) is not None]
        if slots:
            self.facts["status"] = now
            self.state.save("device", self.facts)
            self._send_new(m.STATUS, {"slots": slots[:MAX_SLOTS]}, now)

    # Effects.

    def _run(self, effects, now):
        """Carry out effects in order; a refused reservation skips the rest of its need's
        effects and is fed back, and decisions are taken once the list is done."""
        refused, decisions = {}, []
        for effect in effects:
            kind, need = effect[0], effect[1]
            if need in refused:
                continue
            if kind == "reserve":
                _, _, order_id, (amount, currency) = effect
                outcome = self.ledger.reserve(order_id, amount, currency, now)
                if outcome not in ("reserved", "duplicate"):
                    refused[need] = outcome
                    continue
                self.state.save("ledger", self.ledger.to_state())
            elif kind == "decide":
                decisions.append(effect)
            else:
                self._carry_out(effect, now)
        for need, reason in refused.items():
            self._run(self.orders.refused(need, reason, now), now)
        if self.spare:
            drop(OCCASIONAL)
        for _, need, offers, appr in decisions:
            self._decide(need, offers, appr, now)

    def _carry_out(self, effect, now):
        """One effect other than reserve and decide (their fields: lifecycle's docstring)."""
        kind, need, args = effect[0], effect[1], effect[2:]
        if kind == "persist":
            (record,) = args  # plain data already (a step's own copy, never changed after it):
            self.state.save_record(record)  # written as it is, with no second copy in the heap
        elif kind == "send":
            (msg,) = args
            self._send(msg, now)
        elif kind in ("commit", "release"):
            (order_id,) = args
            getattr(self.ledger, kind)(order_id)
            self.state.save("ledger", self.ledger.to_state())
        elif kind in ("incoming", "received", "cancelled"):
            slot, order_id = args[0], args[1]
            consumable = self.slots[slot].consumable
            if kind == "incoming":
                (qty,) = args[2:]
                consumable.add_order(order_id, qty)
            elif kind == "received":
                qty, late = args[2:]
                consumable.receive(order_id, qty, late)
            else:
                consumable.cancel(order_id)
            self._save_consumables()
        elif kind == "audit":
            entry = dict(args[0])
            entry["need"] = need
            self.state.audit.append(entry)
            if entry.get("state") == lifecycle.PLACED:  # accepted: news for the owner
                rec = self.orders.needs[need]
                order, slot = rec["order"], rec["slot"]
                self._tell(None, "refused" + slot, now)  # a refusal is news again
                self._tell("bought", "Bought %d x %s for %s." % (
                    order["qty"], order["sku"], money.text(*order["total"])), now, need,
                    slot=slot, order=rec["oid"])
                for kind, params in self.ledger.limits:  # and a budget 80 % spent, once a period
                    spent = sum(self.ledger.usage(params, now)[1:])
                    if kind == "budget" and spent * 5 >= params["max"] * 4:
                        self._tell("budget-low", "%s of your %s budget is spent." % (
                            money.text(spent, params["cur"]),
                            money.text(params["max"], params["cur"])), now,
                            key="budget" + str(period_start(params, now)))
        elif kind == "drop":
            self.state.drop_record(need)
        elif kind != "timer":  # no timers to arm: every step ticks the lifecycle
            raise ValueError("unknown effect %r" % kind)

    def _send(self, msg, now):
        """Seal under the message's id (once: the outbox keeps the bytes), then publish."""
        data = self.state.sealed(msg["id"], msg["exp"])
        if data is None:
            data = envelope.seal(msg["t"], msg["b"], self.signer, msg["to"],
                                 self.state.sequence.take(), now, msg["id"], self.codec,
                                 msg["exp"] - now, msg["re"])
            self.state.keep_sealed(msg["id"], msg["exp"], data)
        owner = msg["to"] != self.vendor.kid
        publish = self.to_owner if owner else self.publish
        name = "%s %s%s" % (m.NAMES[msg["t"] - 1], _short(msg["id"]),
                            " to the owner" if owner else "")
        if publish is None:
            if owner:  # the outbox file is the owner's to fetch
                self.note("kept %s %s for the owner" % (m.NAMES[msg["t"] - 1], _short(msg["id"])))
            return
        sent = publish(data, msg["t"]) is not False  # False: kept until connected
        self.note("%s %s (%d B)%s" % ("sent" if sent else "queued", name, len(data),
                                      "" if sent else " until the broker is reached"))

    def _send_new(self, msg_type, body, now):
        """A message outside any need (status, mandate), through the outbox all the same."""
        self._send({"to": self.vendor.kid, "id": self.new_id(), "t": msg_type, "b": body,
                    "re": None, "exp": now + self.orders.config["ttl"]}, now)

    def _save_consumables(self):
        states = {}
        for name, slot in self.slots.items():
            states[name] = slot.consumable.to_state()
        self.state.save("consumables", states)

    # Deciding.

    def _decide(self, need, offers, appr, now):
        """Decide over a need's offers (an owner's approval counted in), log why, go on."""
        record = self.orders.needs.get(need)
        if record is None or record["state"] != lifecycle.DECIDING:
            return
        result, offer = self._judge(need, record, offers, appr, now)
        if self.spare:
            drop(DECIDING)
        slot = record["slot"]
        left = None if offer is None or slot not in self.slots else \
            self.slots[slot].consumable.forecast(now).expected
        if left is not None and now + left < offer["arrive"]:  # once per need
            self._tell("stockout", "%s will run out in about %d hours, before the order can "
                                   "arrive." % (slot, left // 3600 + 1), now, need, slot=slot)
        entry = result.copy()
        entry.update(need=need, slot=slot)
        self.state.audit.append(entry)
        entry = None  # not kept while the order goes out (a board's heap is short)
        self._run(self.orders.decided(need, result, now), now)

    def _judge(self, need, record, offers, appr, now):
        """(the decision as a record, the offer it takes or None), said to the operator, and
        to the owner when it refuses. Only plain data comes back, so nothing the DECIDING
        modules made is still held once this returns."""
        if self.spare:
            drop(CHECKING)
        from thingsdk.core.decide import ASK, REFUSE, decide

        if record["kind"] == lifecycle.SUPPORT:
            decision = self._visit(offers[0], now)
        else:
            slot = self.slots[record["slot"]]
            consumable = slot.consumable
            decision = decide(consumable, consumable.forecast(now), self.mandate, self.ledger,
                              offers, now, category=slot.category, zones=self.zones)
            if self.orders.config["counter"]:
                from thingsdk.core import counter  # only when negotiating: spares board heap

                decision = counter.decide(self, record, decision, now)
        if appr is not None and decision.action == ASK:
            from thingsdk.core import approval  # only with an owner's answer: spares board heap

            # the owner's approval, kept whole in the record (the order carries it to the
            # vendor): verified again here, so it counts after a restart too
            answer = self.inbox.check(appr).message
            decision = approval.resolve(decision, record["areq"], answer, self.mandate,
                                        self.ledger, now, zones=self.zones)
        result = decision.to_record()
        self.note("decided %s for %s: %s" % (result["action"], record["slot"], result["reason"]))
        slot = record["slot"]
        if decision.action == REFUSE:  # news for the owner: once per slot and reason
            self._tell("refused", decision.text, now, need, "refused" + slot + decision.reason,
                       reason=decision.reason, slot=slot)
        return result, decision.offer

    # News for the owner (docs/protocol.md, notice): each said once. Few names, as boards
    # intern every one: kinds and keys are built from words the code has already.

    def _tell(self, kind, text, now, need=None, key=None, **ids):
        """Send the owner a notice, unless the one of this `key` (default: kind and need) was
        said already; the keys said are kept in the device's facts, the latest 32. kind None
        forgets the keys starting with `text` instead: that news may be said again."""
        said = self.facts.get("told", [])
        if kind is None:
            kept = [k for k in said if not k.startswith(text)]
            if len(kept) != len(said):
                self.facts["told"] = kept
                self.state.save("device", self.facts)
            return
        key = key or kind + (_short(need) if need else "")
        if key in said:
            return
        self.facts["told"] = (said + [key])[-32:]
        self.state.save("device", self.facts)
        while len(text.encode()) > 280:  # the protocol's longest sentence
            text = text[:-1]
        ids["kind"], ids["text"] = kind, text
        if need is not None:
            ids["need"] = need
        self._send({"to": self.owner.kid, "id": self.new_id(), "t": m.NOTICE, "b": ids,
                    "re": None, "exp": now + self.orders.config["ttl"]}, now)

    def _visit(self, quoted, now):
        """The decision on a technician visit a support reply quoted."""
        from thingsdk.core import policy
        from thingsdk.core.decide import judge, mandate_problem

        lead = ["a technician visit was quoted for the fault"]
        problem = mandate_problem(self.mandate, now, lead)
        if problem:
            return problem
        proposal = policy.Proposal(quoted[0], quoted[1])
        checks = policy.evaluate(self.mandate, proposal, self.ledger, now, self.zones)
        return judge(proposal, checks, now, lead, None, self.mandate.version)
