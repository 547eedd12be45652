"""The order lifecycle under random event sequences: messages duplicated, reordered and dropped,
restarts from persisted state after any step, crashes in the middle of carrying out effects."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from thingsdk import codec
from thingsdk.core import approval
from thingsdk.core import lifecycle as lc
from thingsdk.core import messages as m

TS = 1767225600
VENDOR, OWNER = b"V" * 8, b"O" * 8
SLOTS = ("water-filter", "coffee")
CONFIG = {"ttl": 3600, "quote_wait": 300, "quote_retries": 2, "order_wait": 300,
          "order_wait_max": 3600, "order_give_up": 6 * 3600, "approval_ttl": 7200, "rounds": 2,
          "late": 86400, "refill_wait": 86400, "counter": 2}
OPS = ("need", "deliver", "deliver", "deliver", "deliver", "duplicate", "drop", "vendor", "vendor",
       "vendor", "decide", "decide", "ship", "ship", "tick", "tick", "cancel", "refill",
       "restart", "crash", "full")


class Ids:
    """Distinct 16-byte ids that look random (the lifecycle spreads retries by them)."""

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return hashlib.sha256(str(self.n).encode()).digest()[:16]


class World:
    """A device runtime carrying out effects over a lossy network, a vendor and an owner."""

    def __init__(self):
        self.ids = Ids()
        self.now = TS
        self.orders = lc.Orders(self.ids, CONFIG)
        self.stored = {}  # need id -> the record as last persisted (through CBOR)
        self.outbox = {}  # message id -> what was sealed under it
        self.ledger = {}  # order id -> "reserved" or "committed"
        self.to_device = []  # messages in flight to the device
        self.to_vendor = []  # messages in flight from the device (to the vendor or the owner)
        self.order_ids = {}  # need id -> order ids sent for it
        self.vendor_orders = {}  # order id -> (order body, receipt body)
        self.ranks = {}  # need id -> the highest rank seen
        self.crash_at = None
        self.full = False  # whether the ledger refuses the next new reservation

    # -- the runtime
    def run(self, effects):
        refused = []
        for i, effect in enumerate(effects):
            if self.crash_at is not None and i >= self.crash_at:
                self.crash_at = None
                return self.restart()
            if effect[1] in refused:
                continue
            if effect[0] == "reserve" and self.full and effect[2] not in self.ledger:
                self.full = False
                refused.append(effect[1])
                continue
            self.carry_out(effect)
        for need in refused:
            self.run(self.orders.refused(need, "full", self.now))

    def carry_out(self, effect):
        kind, need = effect[0], effect[1]
        if kind == "persist":
            record = codec.loads(codec.dumps(effect[2]))
            assert lc.from_state(record) == record
            assert self.rank(need, record)
            old = self.stored.get(need)
            assert old is None or old["oid"] in (None, record["oid"]), "a second order id"
            self.stored[need] = record
        elif kind == "send":
            self.send(need, effect[2])
        elif kind == "reserve":
            self.ledger.setdefault(effect[2], "reserved")
        elif kind == "commit":
            if effect[2] in self.ledger:
                self.ledger[effect[2]] = "committed"
        elif kind == "release":
            self.ledger.pop(effect[2], None)
        elif kind == "drop":
            self.stored.pop(need)

    def send(self, need, msg):
        record = self.stored[need]
        assert [msg["id"], msg["t"]] in record["ids"], "sent before it was persisted"
        sealed = codec.dumps([msg["to"], msg["t"], msg["b"], msg["re"], msg["exp"]])
        assert self.outbox.setdefault(msg["id"], sealed) == sealed, "one message id, two messages"
        if msg["t"] == m.ORDER:
            self.order_ids.setdefault(need, set()).add(msg["b"]["order"])
        self.to_vendor.append(msg)

    def rank(self, need, record):
        rank = lc.RANK[record["state"]]
        ok = rank >= self.ranks.get(need, 0)
        self.ranks[need] = max(rank, self.ranks.get(need, 0))
        return ok

    def restart(self):
        self.orders = lc.Orders(self.ids, CONFIG, list(self.stored.values()))
        self.run(self.orders.resume(self.now))

    # -- the vendor and the owner
    def answer(self, msg, pick):
        t, body = msg["t"], msg["b"]
        if t == m.QUOTE_REQUEST:
            offer = {"offer": self.ids(), "sku": "WF-300", "title": "Filter", "qty": 2,
                     "price": [1000, "EUR"], "ship": [0, "EUR"], "total": [2000, "EUR"],
                     "lead": 86400, "arrive": self.now + 86400, "until": self.now + 7200,
                     "test": False}
            self.reply(m.OFFER, offer, msg["id"])
        elif t == m.ORDER:
            known = self.vendor_orders.get(body["order"])
            if known is None:
                status = ("accepted", "accepted", "duplicate", "rejected")[pick % 4]
                detail = {"reason": "out-of-stock"} if status == "rejected" else {"ref": "R"}
                receipt = dict(detail, order=body["order"], status=status)
                known = self.vendor_orders[body["order"]] = (body, receipt)
            assert known[0] == body, "idempotency conflict"
            self.reply(m.RECEIPT, known[1], msg["id"])
        elif t == m.APPROVAL_REQUEST:
            answer = {"req": body["req"], "decision": ("approve", "decline")[pick % 2]}
            if answer["decision"] == "approve":
                answer.update(approval.terms(body["order"]))
            self.reply(m.APPROVAL, answer, msg["id"], OWNER)

    def reply(self, t, body, re=None, sender=VENDOR):
        self.to_device.append({"from": sender, "id": self.ids(), "t": t, "re": re, "b": body,
                               "data": b"\xd2sealed %d" % len(self.to_device)})

    def vendor_event(self, pick):
        placed = sorted(o for o, (_, r) in self.vendor_orders.items() if r["status"] != "rejected")
        if placed:
            order = placed[pick % len(placed)]
            t, body = [(m.SHIPMENT, {"order": order, "carrier": "DHL", "track": "T",
                                     "eta": self.now + 3600}),
                       (m.DELIVERY, {"order": order, "at": self.now, "qty": 2}),
                       (m.CANCEL, {"order": order, "by": "vendor", "reason": "out-of-stock"})
                       ][pick % 5 // 2]  # cancels are rarer
            self.reply(t, body)

    # -- one random step
    def act(self, op, pick):
        needs = sorted(n for n, r in self.orders.needs.items() if r["state"] != lc.CLOSED)
        if op == "need":
            slot = SLOTS[pick % 2]
            self.run(self.orders.need(slot, {"slot": slot, "sku": "WF-300", "qty": 2}, VENDOR,
                                      OWNER, self.now))
        elif op in ("deliver", "duplicate", "drop") and self.to_device:
            i = pick % len(self.to_device)
            if op == "duplicate":
                self.to_device.append(self.to_device[i])
            else:
                msg = self.to_device.pop(i)
                if op == "deliver":
                    self.run(self.orders.message(msg, self.now))
        elif op == "vendor" and self.to_vendor:
            self.answer(self.to_vendor.pop(pick % len(self.to_vendor)), pick // 7)
        elif op == "ship":
            self.vendor_event(pick)
        elif op == "decide" and needs:
            self.decide(self.orders.needs[needs[pick % len(needs)]], pick // 7)
        elif op == "tick":
            self.now += pick % 1800
            self.run(self.orders.tick(self.now))
        elif op == "cancel" and needs and pick % 8 == 0:
            self.run(self.orders.cancel(needs[pick % len(needs)], self.now))
        elif op == "refill":
            self.run(self.orders.refilled(SLOTS[pick % 2], self.now))
        elif op == "restart":
            self.restart()
        elif op == "crash":
            self.crash_at = pick % 4
        elif op == "full" and pick % 16 == 0:
            self.full = True

    def decide(self, record, pick):
        if not record["offers"]:
            return
        action = ("buy", "buy", "buy", "ask", "wait", "refuse", "counter")[pick % 7]
        if record["appr"] is not None or action == "counter" and record["rounds"] >= 2:
            action = ("buy", "refuse")[pick % 2]
        offer = record["offers"][pick % len(record["offers"])][1]["offer"]
        decision = {"action": action, "offer": offer, "mandate": 1,
                    "text": "Buy now?", "hold_until": self.now + pick % 3 * 3600,
                    "reason": "because"}
        if action == "counter":
            decision["ask"] = {"slot": record["slot"], "sku": "WF-300", "qty": 4, "offer": offer,
                               "price": [900, "EUR"]}
        self.run(self.orders.decided(record["need"], decision, self.now))

    # -- what must always hold
    def check(self):
        for need, ids in self.order_ids.items():
            assert len(ids) <= 1, "more than one order id for a need"
        assert sorted(self.orders.needs) == sorted(self.stored), "a restart would lose needs"
        for need, record in self.orders.needs.items():
            assert self.rank(need, record), "the state went back"
            assert self.stored[need] == record, "the record in use is not the one persisted"
            if record["state"] == lc.CLOSED and record["oid"] is not None:
                assert record["money"] in ("committed", "released")
                assert self.ledger.get(record["oid"]) != "reserved", "money left reserved"
                assert (self.ledger.get(record["oid"]) == "committed") == (
                    record["money"] == "committed")


STEPS = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 2**16)), min_size=30,
                 max_size=150)


@settings(max_examples=400)
@given(STEPS)
def test_random_histories_keep_every_promise(steps):
    world = World()
    for op, pick in steps:
        world.act(op, pick)
        world.check()


@settings(max_examples=200)
@given(STEPS, st.integers(0, 80))
def test_a_restart_after_any_step_changes_no_outcome_promise(steps, at):
    """Restarting from storage at one step, then going on, keeps the invariants, and the need
    records after the restart are exactly the persisted ones."""
    world = World()
    for i, (op, pick) in enumerate(steps):
        if i == at:
            world.restart()
            assert sorted(world.orders.needs) == sorted(world.stored)
        world.act(op, pick)
        world.check()


def test_a_need_in_ordering_reaches_the_vendor_under_one_order_id_whatever_happens():
    """Persisted in "ordering", then crashes before, during and after publishing, restarts and
    expired messages: the vendor sees one order id, with one body."""
    for crash in range(1, 6):  # effect 0 is the persist of "ordering"
        world = World()
        world.act("need", 0)
        world.act("vendor", 0)
        world.act("deliver", 0)
        world.crash_at = crash
        world.act("decide", 0)  # pick 0: buy
        for _ in range(4):
            world.restart()
            world.now += 3600  # every message sent so far expires
            world.run(world.orders.tick(world.now))
        assert len(world.to_vendor) > 2
        while world.to_vendor:
            world.answer(world.to_vendor.pop(), 0)
        world.check()
        (ids,) = world.order_ids.values()
        assert len(ids) == 1 and set(world.vendor_orders) == ids
        while world.to_device:
            world.act("deliver", 0)
        (record,) = world.orders.needs.values()
        assert record["state"] == lc.PLACED and world.ledger[record["oid"]] == "committed"
