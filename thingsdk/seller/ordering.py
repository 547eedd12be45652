"""Orders and cancels at the vendor: idempotent by order id, and re-checked against the owner's
mandate with the vendor's own ledger of the device's spending, so a compromised device cannot buy
more than its owner allowed, whatever it claims.

Each function takes the Service, the Device row and the opened message, runs inside the
service's transaction, and returns the (type, body) answers; a changed spend record is left in
the Device's `new_ledger`, kept by the service with the device's replay state.
"""

import hashlib
import logging

from thingsdk.core import envelope, policy, restore
from thingsdk.core import messages as m
from thingsdk.core.approval import offer_digest
from thingsdk.core.decide import mandate_problem, sentence
from thingsdk.core.ledger import Ledger
from thingsdk.core.lifecycle import VISIT_SKU
from thingsdk.core.lifecycle_rare import visit_offer
from thingsdk.crypto import Ed25519Verifier

REF = "ORD-%06d"
SKEW = 300  # seconds an approval may be stamped ahead of the vendor's clock
log = logging.getLogger(__name__)


def error(code, text, ref=None):
    """An error answer; `ref` names the order or other id concerned."""
    body = {"code": code, "text": text}
    if ref is not None:
        body["ref"] = ref
    return m.ERROR, body


def _ledger(device, limits=()):
    return restore.ledger(device.ledger, limits) if device.ledger else Ledger(limits)


def _rejected(reason, text):
    return {"status": "rejected", "reason": reason, "text": text}, ()


def _approval_problem(service, device, data, offer, now):
    """Why the owner's approval an order carries (`data`, the message as the owner sent it) does
    not count, or None when it does: it must verify with the device's registered owner key, be
    addressed to this device, be in its lifetime, and approve this vendor, this offer (its id and
    the digest of its body) and its total."""
    owner = Ed25519Verifier(device.owner_key)
    opened = envelope.Inbox(device.kid, {owner.kid: owner}, service.codec).check(data)
    if opened.status == envelope.REJECT:
        return "it does not verify with the owner's key (%s)" % opened.reason
    approval = opened.message
    if approval.type != m.APPROVAL or approval.body["decision"] != "approve":
        return "it is not an approval"
    if approval.ts > now + SKEW or now >= approval.exp:
        return "it is not valid at this time (it lapsed, or comes from the future)"
    if offer["sku"] == VISIT_SKU:  # the device approves the visit as its support reply quoted it
        offer = visit_offer(offer["offer"], offer)
    approved = {"vendor": service.kid, "offer": offer["offer"], "total": offer["total"],
                "digest": offer_digest(offer)}
    if any(approval.body[k] != v for k, v in approved.items()):
        return "it approves another offer"
    return None


def _verdict(service, device, body, offer, now):
    """(receipt fields, mandate checks) for a new order of `offer` (the stored offer it names, or
    None): status, text, and the reason of a rejection or the covering order's ref of a duplicate
    (an accepted one's ref comes later)."""
    if device.revoked:
        return _rejected("device-deregistered", "The owner deregistered this device.")
    if offer is None:
        return _rejected("unknown-offer", "We made this device no offer with that id.")
    if now >= offer["until"]:
        return _rejected("offer-expired", "The offer has expired; ask for a new one.")
    if any(body[k] != offer[k] for k in ("sku", "qty", "total", "test")):
        return _rejected("offer-mismatch", "The order does not match our offer.")
    item = service.catalog.skus.get(offer["sku"])
    if item is None:
        return _rejected("not-deliverable", "We no longer sell %s." % offer["sku"])
    covering, held = service.store.open_order_and_held(device.kid, offer["sku"], offer["test"])
    if covering:
        text = "Order %s already covers this item." % covering
        return {"status": "duplicate", "ref": covering, "text": text}, ()
    if not offer["test"] and item.stock - held < offer["qty"]:
        return _rejected("out-of-stock", "We do not have %d in stock." % offer["qty"])
    credit = offer.get("credit")
    if credit and service.store.credit(device.kid, credit[1]) < credit[0]:
        return _rejected("credit-spent", "Another order has used the credit this offer takes "
                         "off its total; ask for a new offer.")
    mandate = service.held_mandate(device)
    problem = mandate_problem(mandate, now, [])
    if problem:
        return _rejected(problem.reason, problem.text)
    if body["mandate"] > mandate.version:
        return _rejected("unknown-mandate", "The order was decided under mandate version %d, "
                         "which we have not received." % body["mandate"])
    if "appr" in body:
        problem = _approval_problem(service, device, body["appr"], offer, now)
        if problem:
            return _rejected("approval-invalid", sentence(["the owner's approval does not "
                                                            "count: " + problem]))
    proposal = policy.Proposal(service.kid, offer, item.category, approved="appr" in body)
    ledger = _ledger(device, mandate.limits())
    checks = policy.evaluate(mandate, proposal, ledger, now, service.zones)
    worst = policy.deciding(checks)
    if worst is not None:
        return _rejected(worst.reason, sentence(["the owner's mandate does not allow it: "
                                                 + worst.text]))
    reserved = ledger.reserve(body["order"], offer["total"][0], offer["total"][1], now)
    if reserved != "reserved":
        return _rejected(reserved, "The spend record refused it (%s)." % reserved)
    ledger.commit(body["order"])
    device.new_ledger = ledger.to_state()  # kept with the device's replay state
    if offer["test"]:
        text = "Test order recorded: it is neither charged nor shipped."
    else:
        text = sentence(["accepted: %s, delivery in %s" % (offer["title"],
                                                           policy.duration(offer["lead"]))])
    return {"status": "accepted", "text": text}, checks


def order(service, device, msg, now):
    """The receipt for an order; the first answer to an order id is kept and repeated, and the
    same id with another body is an idempotency conflict."""
    body = msg.body
    digest = hashlib.sha256(service.codec.dumps(body)).digest()
    known, offer = service.store.order_and_offer(device.kid, body["order"], body["offer"])
    if known is not None:
        if known[0] != digest:
            return [error("idempotency-conflict", "This order id was used for another order.",
                          body["order"])]
        return [(m.RECEIPT, known[2])]
    fields, checks = _verdict(service, device, body, offer, now)
    receipt = dict(fields, order=body["order"])
    row = service.store.next_order_row()
    schedule = (None, None, None)
    if receipt["status"] == "accepted":
        receipt["ref"] = REF % row
        lead = offer["lead"]
        holds = [c.until for c in checks if c.kind == "cancel-window"]
        schedule = (max(holds + [now]), now + lead // 2, now + lead)
        _settle(service, device, offer, 1)
        service.note_kept(log, logging.INFO, "accepted order %s from device %s: %d x %s, total "
                          "%d %s in minor units%s", receipt["ref"], device.kid.hex(),
                          offer["qty"], offer["sku"], offer["total"][0], offer["total"][1],
                          " (test)" if offer["test"] else "")
    service.store.add_order(device.kid, body, digest, row, receipt, now, schedule)
    return [(m.RECEIPT, receipt)]


def _settle(service, device, offer, sign):
    """The device's credit as an order of `offer` is accepted (`sign` 1) or cancelled (-1): the
    credit the offer took off its total is spent (given back), its reward earned (taken back,
    as much of it as is left)."""
    if offer is None or offer["test"]:
        return
    for key, way in (("credit", -sign), ("reward", sign)):
        if key in offer:
            service.store.add_credit(device.kid, way * offer[key][0], offer[key][1])


def cancel(service, device, msg, now):
    """Cancel an order that has not shipped, or shipped within the mandate's cancel window: its
    spend is released and the cancel is confirmed. Otherwise an error says why not."""
    body = msg.body
    known = service.store.cancel_state(device.kid, body["order"])
    if known is None:
        return [error("unknown-order", "We have no order with that id from this device.",
                       body["order"])]
    status, cancel_until, offer_id = known
    confirm = {"order": body["order"], "by": body["by"], "reason": body["reason"],
               "text": "Cancelled: nothing will be charged."}
    if status == "cancelled":
        return [(m.CANCEL, confirm)]
    if not (status == "accepted" or status == "shipped" and now < cancel_until):
        why = {"rejected": "was not placed", "duplicate": "was not placed",
               "shipped": "has shipped and its cancel window has closed",
               "delivered": "was delivered"}[status]
        return [error("not-cancellable", "The order %s." % why, body["order"])]
    service.store.set_status(device.kid, body["order"], "cancelled")
    _settle(service, device, service.store.offer(device.kid, offer_id), -1)
    ledger = _ledger(device)
    ledger.release(body["order"])
    device.new_ledger = ledger.to_state()  # kept with the device's replay state
    return [(m.CANCEL, confirm)]
