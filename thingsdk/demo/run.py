"""`thingsdk demo`, orchestrated: a broker (embedded, or the one given), the reference vendor on
its own thread, an owner, three things and a watcher on the wire, all in one process and one
temporary folder; then the story, step by step, and a summary.

Time. Everyone reads one simulated clock, which the demo moves itself, half an hour at a time:
it steps every thing, then waits until the vendor has answered what the things asked, and only
then moves the clock on. So no message is ever dated after its receiver's now, and none expires
on the way, however fast the demo runs; `speed` (simulated seconds per real second) only paces
the steps, and a busy machine slows the demo down rather than changing what happens.

What happens is shown and counted by a Story (thingsdk.demo.story), which also plays the owner
and an attacker on the broker.
"""

import contextlib
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

from thingsdk.core.consumable import DAY
from thingsdk.core.money import text as money
from thingsdk.core.policy import duration
from thingsdk.crypto import Ed25519Signer
from thingsdk.demo import DEFAULT_SPEED, DemoError
from thingsdk.demo.broker import EmbeddedBroker, Link
from thingsdk.demo.scenario import HOUR, THINGS, Owner, Thing
from thingsdk.demo.story import Story
from thingsdk.demo.timeline import Timeline, amount, name_of, part_of, span, table, when
from thingsdk.demo.wire import Wire
from thingsdk.owner import describe
from thingsdk.seller import catalog
from thingsdk.seller.serve import Server
from thingsdk.seller.service import Service, register
from thingsdk.seller.store import Store

TICK = HOUR // 2  # simulated seconds between the things' steps
LONGEST = 10 * DAY  # the story must have played out by then (simulated)
SETTLE = 5.0  # real seconds to wait for the vendor's answers before time moves on
TIMEOUT = 10.0  # real seconds for a client to connect
CATALOG = Path(catalog.__file__).with_name("catalog.example.toml")
PLACED = ("accepted", "shipped", "delivered")
QUIET_LOGGERS = ("amqtt", "transitions", "thingsdk.mqtt.paho")  # chatter, not news


class Clock:
    """Simulated unix time that moves only when the demo moves it."""

    def __init__(self, start):
        self.start = self.now = start

    def __call__(self):
        return self.now


class Vendor:
    """The reference vendor: a Service with the example catalog and a SQLite file in `folder`,
    served by a Server on its own thread, on the Transport `transport(client id)` makes."""

    def __init__(self, folder, transport, clock):
        self.signer = Ed25519Signer.generate()
        self.store = Store(folder / "vendor.db")
        self.service = Service(self.store, catalog.load(CATALOG), self.signer)
        transport = transport("thingsdk-demo-vendor-" + self.signer.kid.hex())
        # Fulfilment is advanced whenever the clock moved, checked every 20 ms (real).
        self.server = Server(self.service, transport, interval=0.02, clock=clock)
        self._thread = threading.Thread(target=self.server.run, name="thingsdk-demo-vendor")

    def start(self):
        self._thread.start()
        if not self.server.ready.wait(TIMEOUT):
            raise DemoError("the vendor could not subscribe at %s in %d s"
                            % (self.server.transport.host, TIMEOUT))

    def stop(self):
        """Stop serving (once); the store stays readable."""
        if self._thread.is_alive():
            self.server.stop()
            self._thread.join()

    def close(self):
        self.stop()
        self.store.close()

    def orders(self, kid):
        """The orders of a device the vendor placed (accepted, shipped or delivered)."""
        return [o for o in self.store.orders(kid) if o["status"] in PLACED]


@contextlib.contextmanager
def _quiet_logs():
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _intro(timeline, broker, vendor_key, owner, things, speed, seed):
    say = timeline.say
    say("thingsdk demo: a fridge, a printer and a coffee machine buy their own consumables from")
    say("a vendor, within the rules their owner signed. Every message is signed (COSE_Sign1,")
    say("Ed25519); things, vendor and owner talk over MQTT, each thing to its owner on topics of")
    say("its own. Times are simulated, in UTC; [type, size] ends each message.")
    say()
    say("  broker   %s" % broker)
    say("  vendor   the reference vendor, key %s, with its example catalog" % vendor_key.kid.hex())
    say("  owner    key %s: signs each thing's mandate and answers approval requests"
        % owner.signer.kid.hex())
    say("  time     %s simulated seconds a second (a day in %.1f s), usage seed %s"
        % (format(speed, "g"), DAY / speed, seed))
    for thing in things:
        spec, mandate = thing.spec, thing.device.mandate
        say("  %-8s %s (%s): %s left, about %s used a day" % (
            spec.name, name_of(spec.slot), spec.sku, part_of(spec.start, spec.capacity, spec.unit),
            amount(spec.daily_use, spec.unit)))
        say("           its owner-signed mandate (version %d, %d B):" % (mandate.version,
                                                                      len(mandate.token)))
        for kind, params in mandate.constraints:
            say("             " + describe(kind, params))
    say()


def _money_used(thing, now):
    """The thing's spend against its budget now (committed and reserved), and the budget."""
    params = thing.device.mandate.of_kind("budget")[0]
    _, committed, reserved = thing.device.ledger.usage(params, now)
    period = "a month" if params["period"] == "month" else duration(params["window"])
    return "%s of %s (%s)" % (money(committed + reserved, params["cur"]),
                              money(params["max"], params["cur"]), period)


def _refusal_text(refusals):
    return ", ".join("%d %s" % (n, reason) for reason, n in sorted(refusals.items())) or "none"


def _summary(story, vendor, things, clock, real):
    rows = [("", "orders", "spent of budget", "messages sent/got", "bytes sent/got", "refused")]
    sold = {}
    for thing in things:
        orders = vendor.orders(thing.kid)
        for order in orders:
            sold[order["currency"]] = sold.get(order["currency"], 0) + order["total"]
        sent, got, sent_bytes, got_bytes = story.traffic[thing.kid]
        rows.append((thing.spec.name, len(orders), _money_used(thing, clock.now),
                     "%d / %d" % (sent, got), "%d / %d" % (sent_bytes, got_bytes),
                     _refusal_text(thing.device.refusals)))
    rows.append(("vendor", sum(len(vendor.orders(t.kid)) for t in things),
                 ", ".join("%s sold" % money(n, cur) for cur, n in sorted(sold.items())), "", "",
                 _refusal_text(vendor.service.refusals)))
    lines = ["", "Summary: %s of simulated time in %.1f s" % (span(clock.now - clock.start), real)]
    lines += table(rows)
    lines.append("  (the owner's messages are counted; %d repeated messages are not shown above)"
                 % story.repeats)
    for title, items in (("approvals", story.approvals), ("budget refusals", story.budget_refusals),
                         ("tampered messages rejected", story.tampered),
                         ("support requests answered", story.answered)):
        lines.append("  %-27s %d  %s" % (title, len(items), "; ".join(
            "%s: %s" % (thing.spec.name, text) for thing, text in items)))
    return lines


def run(broker=None, tls=(None, None, None), speed=DEFAULT_SPEED, seed=1, quiet=False,
        out=None, err=None):
    """Play the demo on the embedded broker, or on the broker at URL `broker` (with `tls`: the
    CA file, client certificate and key for mqtts://); write the timeline and the summary to
    `out` (default: stdout), progress to `err` (default: stderr) when it is a terminal.
    DemoError when it cannot run, or when the story did not play out in LONGEST simulated
    seconds. Everything it started is stopped and its temporary folder removed when it returns."""
    if speed <= 0:
        raise DemoError("the speed must be above 0")
    timeline = Timeline(out or sys.stdout, err or sys.stderr, quiet)
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_logs())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="thingsdk-demo-")))
        if broker is None:
            link = stack.enter_context(EmbeddedBroker())
            where = "embedded (amqtt, MQTT 3.1.1) at %s" % link.url
        else:
            link, where = Link(broker, ca=tls[0], cert=tls[1], key=tls[2]), broker
        clock = Clock(int(time.time()) // HOUR * HOUR)
        owner, wire = Owner(), Wire(link)
        vendor = Vendor(folder, wire.vendor_transport, clock)
        stack.callback(vendor.close)
        things = [Thing(spec, folder, owner, vendor.signer.public_key, clock,
                        wire.thing_transport, seed) for spec in THINGS]
        for signer in [vendor.signer, owner.signer] + [t.signer for t in things]:
            wire.trust(signer.verifier())
        for thing in things:
            register(vendor.store, thing.signer.public_key, owner.signer.public_key, clock.now)
        owner_link = owner.connect(wire.owner_transport(owner.signer.kid.hex()),
                                   [t.signer.public_key for t in things], clock)
        stack.callback(wire.close)
        wire.start()
        stack.callback(owner_link.close)
        if not owner_link.start().ready(TIMEOUT):
            raise DemoError("the owner could not reach the broker at %s in %d s" % (
                where, TIMEOUT))
        vendor.start()
        for thing in things:
            stack.callback(thing.device.close)
            thing.device.start()
        _intro(timeline, where, vendor.signer, owner, things, speed, seed)
        story = Story(things, owner, wire, timeline, clock)
        paced = time.monotonic()
        while story.missing() and clock.now < clock.start + LONGEST:
            delay = paced + (clock.now - clock.start) / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            seen = wire.settle(SETTLE)
            clock.now += TICK
            story.step(seen)
            timeline.progress("  %s, %s in; to come: %s" % (
                when(clock.now), span(clock.now - clock.start), ", ".join(story.missing())))
        vendor.stop()
        timeline.clear()
        timeline.summary(_summary(story, vendor, things, clock, time.monotonic() - began))
        if story.missing():
            raise DemoError("the story did not play out in %s of simulated time; missing: %s"
                            % (span(LONGEST), ", ".join(story.missing())))
