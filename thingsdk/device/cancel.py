"""The owner cancels an order on the device (`thingsdk owner cancel`): a cancel message signed by
the owner's key, dropped into the state folder's from-owner/ (or published on the device's
from-owner topic, `--broker`). The device takes it at its next step
(runtime: owner drops; lifecycle: an owner's cancel), closes the need, releases the money and
sends the vendor its own cancel, which the vendor confirms or refuses by its cancel rules.

Whether the cancel can still count is asked of the lifecycle itself, on the record as persisted:
the device asks again when the message arrives, so a window that closes in between still holds.
"""

import os

from thingsdk import codec
from thingsdk.core import envelope, lifecycle
from thingsdk.core import messages as m
from thingsdk.core.consumable import DAY
from thingsdk.core.policy import duration
from thingsdk.device.state import FROM_OWNER
from thingsdk.inspect import utc_text
from thingsdk.storage import atomic_write


def find(state, ident):
    """The need record whose need id or order id is `ident` (hex, or a unique prefix of it)."""
    ident = ident.strip().lower()
    hits = [r for r in state.records()
            if any(x is not None and x.hex().startswith(ident) for x in (r["need"], r["oid"]))]
    if not ident or len(hits) != 1:
        raise ValueError("%s need or order matches %r in %s" % (
            "more than one" if hits else "no", ident, state.path))
    return hits[0]


def refusal(rec, now):
    """Why the owner can no longer cancel this need's order, or None if a cancel still counts."""
    if rec["state"] == lifecycle.CLOSED:
        return "need %s is closed already (%s)" % (rec["need"].hex(), rec["reason"])
    if rec["oid"] is None:
        return ("need %s has no order yet (it is %s): nothing to cancel at the vendor"
                % (rec["need"].hex(), rec["state"]))
    _, effects = lifecycle.step(rec, ("cancel", "changed-mind"), now, lifecycle.DEFAULTS,
                                lambda: bytes(m.ID_SIZE))
    if any(e[0] == "send" and e[2]["t"] == m.CANCEL for e in effects):
        return None
    if rec["state"] == lifecycle.DELIVERED:
        return "order %s was delivered" % rec["oid"].hex()
    if not rec["hold"]:
        return ("order %s was accepted by the vendor and the mandate gives no cancel window"
                % rec["oid"].hex())
    return "the cancel window of order %s closed at %s (%s after the vendor accepted it)" % (
        rec["oid"].hex(), utc_text(rec["cancel_until"]), duration(rec["hold"]))


def seal(rec, owner_signer, device_kid, take_seq, now, reason="changed-mind"):
    """The owner's cancel of rec's order, sealed for the device. `take_seq()` gives the owner
    key's next sequence number. Raise ValueError when the cancel can no longer count (no number
    is taken then)."""
    why = refusal(rec, now)
    if why:
        raise ValueError(why)
    if owner_signer.kid != rec["owner"]:
        raise ValueError("the key given (%s) is not the key of the device's owner (%s): the "
                         "device would refuse its cancel" % (owner_signer.kid.hex(),
                                                             rec["owner"].hex()))
    return envelope.seal(m.CANCEL, {"order": rec["oid"], "by": "owner", "reason": reason},
                         owner_signer, device_kid, take_seq(), now, os.urandom(m.ID_SIZE), codec,
                         DAY)


def drop(state, rec, owner_signer, device_kid, take_seq, now, reason="changed-mind"):
    """Seal the owner's cancel (as `seal`) and drop it into from-owner/; returns the file's
    path."""
    data = seal(rec, owner_signer, device_kid, take_seq, now, reason)
    path = state.path / FROM_OWNER / ("cancel-%s.cose" % os.urandom(8).hex())
    atomic_write(path, data, mode=0o644)
    return path
