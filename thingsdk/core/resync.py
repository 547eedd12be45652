"""Rejoining the vendor after this device lost its sequence counters (a wiped state folder, a
board reflashed, an old backup restored): the device's side. Portable; the agent imports it only
when a resync message comes, so a board that never needs it spends no heap on it.

The vendor answers a message it refuses as replayed or too old with a signed resync-nonce: a
fresh nonce, valid until `until`, and `floor`, the highest sequence number it has seen from this
device. `challenged` then stores a jump of this device's counter to `floor + GAP` (so nothing it
sends again can collide with what the vendor saw, nor with what an older copy of the device may
still have in flight) and sends a resync quoting the nonce, signed by the device key; its own
sequence number is where the new run starts. Each refused message that a need waits on goes
again as a new message (numbered above the floor). `rejoined` takes the vendor's resync-reply,
which names the device's open orders. Both say what happened on the console (the
agent's `note`) and in the audit log.
"""

from thingsdk.core import messages as m
from thingsdk.core.replay import MAX_SEQ

GAP = 1 << 16  # sequence numbers left unused above the vendor's floor


def _hex(data):
    return "".join("%02x" % b for b in data[:4])


def receive(agent, msg, now):
    """A resync-nonce or a resync-reply the agent opened (one entry: names cost board heap)."""
    (challenged if msg.type == m.RESYNC_NONCE else rejoined)(agent, msg, now)


def challenged(agent, msg, now):
    """A resync-nonce from the vendor: rejoin above its floor, once per nonce."""
    body = msg.body
    if msg.kid != agent.vendor.kid or now >= body["until"]:
        agent.state.audit.append({"at": now, "ignored": "stale-resync-nonce"})
        return
    pending = agent.facts.get("resync")
    floor = body["floor"]
    if floor + GAP >= MAX_SEQ:
        agent.note("RESYNC impossible: the vendor has seen sequence numbers up to %d, too close "
                   "to the last (2**53-1): this device needs a new key" % floor)
        return
    # The vendor repeats its nonce for each message it refuses: one resync answers them all. A
    # counter above the floor already (a resync under way, or an old copy of a message sealed
    # before one) needs none.
    if (pending is None or pending[0] != body["nonce"]) and \
            agent.state.sequence.skip_past(floor, GAP):
        _resync(agent, msg, floor, now)
    effects = agent.orders.resend(msg.re, now)
    if effects:
        agent.note("the vendor refused message %s as a replay: sent again as a new message"
                   % _hex(msg.re))
    agent._run(effects, now)


def _resync(agent, msg, floor, now):
    """Send the resync that quotes the vendor's nonce (the counter has jumped already)."""
    body = msg.body
    resync_id = agent.new_id()
    agent.facts["resync"] = [body["nonce"], resync_id]
    agent.state.save("device", agent.facts)
    agent.note("RESYNC: the vendor %s refused message %s as a replay (it has seen sequence "
               "numbers up to %d): this device's counters were lost or restored from an old "
               "copy; rejoining above %d" % (_hex(msg.kid), _hex(msg.re), floor, floor + GAP))
    agent.state.audit.append({"at": now, "resync": "asked", "floor": floor})
    agent._send({"to": agent.vendor.kid, "id": resync_id, "t": m.RESYNC,
                 "b": {"nonce": body["nonce"]}, "re": None,
                 "exp": min(body["until"], now + agent.orders.config["ttl"])}, now)
    # What the vendor refused outside any need: the mandate held, and the levels (next step).
    if agent.mandate is not None:
        agent._send_new(m.MANDATE, {"cwt": agent.mandate.token}, now)
    agent.facts.pop("status", None)
    agent.state.save("device", agent.facts)


def rejoined(agent, msg, now):
    """The vendor's resync-reply: say so."""
    pending = agent.facts.get("resync")
    if msg.kid != agent.vendor.kid or pending is None or msg.re != pending[1]:
        agent.state.audit.append({"at": now, "ignored": "uncorrelated", "what": "resync-reply"})
        return
    del agent.facts["resync"]
    agent.state.save("device", agent.facts)
    body = msg.body
    orders = body["orders"]
    agent.note("RESYNC: rejoined the vendor %s (resync %d of this device), sequence numbers "
               "from %d; it holds %d open order(s)%s" % (
                   _hex(msg.kid), body["epoch"], body["from"], len(orders),
                   "".join(" %s: %d %s %s," % (o["ref"], o["qty"], o["sku"], o["status"])
                           for o in orders).rstrip(",")))
    agent.state.audit.append({"at": now, "resync": "done", "epoch": body["epoch"],
                              "from": body["from"], "orders": [o["order"] for o in orders]})
