"""Asking the owner: the approval-request body for an "ask" decision, and the owner's answer, or
its absence, turned into the final decision. No answer by the request's `until` is a decline.
Portable and sans-IO: the caller sends the request and opens the answer (an approval message,
signed by the owner's key) with its Inbox.
"""

import hashlib

from thingsdk.core import messages, policy
from thingsdk.core.cbor import dumps
from thingsdk.core.decide import ASK, REFUSE, WAIT, judge, mandate_problem, say
from thingsdk.core.keys import kid_hex

TTL = 12 * 3600  # how long the owner has to answer, by default


def request_body(req_id, vendor, offer, why, until):
    """The body asking the owner to approve buying an offer (an offer body) from vendor."""
    summary = {"vendor": vendor, "offer": offer["offer"], "sku": offer["sku"],
               "title": offer["title"], "qty": offer["qty"], "total": offer["total"],
               "arrive": offer["arrive"], "test": offer["test"], "digest": offer_digest(offer)}
    if "from" in offer:
        summary["from"] = offer["from"]
    return {"req": req_id, "order": summary, "why": why, "until": until}


def offer_digest(offer):
    """SHA-256 of an offer body's deterministic CBOR: what an owner's approval names, so that the
    vendor can tell it approves this very offer."""
    return hashlib.sha256(dumps(offer)).digest()


def terms(summary):
    """What an owner's approval of an approval request's order summary names (with `req` and
    `decision`: "approve", its body)."""
    return {"vendor": summary["vendor"], "offer": summary["offer"], "total": summary["total"],
            "digest": summary["digest"]}


def request(decision, req_id, now, ttl=TTL):
    """The approval-request body for an "ask" decision; it lapses at now + ttl, or when the
    offer does, whichever comes first."""
    if decision.action != ASK:
        raise ValueError("only an ask decision needs the owner's approval")
    offer = decision.offer
    return request_body(req_id, decision.vendor, offer, decision.text,
                        min(now + ttl, offer["until"]))


def resolve(decision, sent, answer, mandate, ledger, now, names=None, zones=None):
    """The decision after asking: `sent` is the approval-request body, `answer` the opened
    approval message (a messages.Message) or None while none came. An approval is checked
    again against the mandate as it stands now (budget, quiet hours, expiry), with the owner's
    consent standing in for approval-above."""
    proposal, until = decision.proposal, sent["until"]
    if answer is not None:
        if answer.type != messages.APPROVAL or answer.body["req"] != sent["req"]:
            raise ValueError("not an answer to this approval request")
        if mandate is None or kid_hex(answer.kid) != mandate.owner:
            raise ValueError("the approval is not signed by the mandate's owner")
        named = terms(sent["order"])
        if answer.body["decision"] == "approve" and any(
                answer.body[k] != v for k, v in named.items()):
            raise ValueError("the approval names another offer than the one asked about")
    if now >= until:
        return say(REFUSE, "approval-timeout", [],
                   "the owner did not answer in time, so nothing was ordered", now, proposal)
    if answer is None:
        return say(WAIT, "awaiting-approval", [], "waiting for the owner's answer", now,
                   proposal, until=until)
    if answer.body["decision"] != "approve":
        return say(REFUSE, "declined", [], "the owner declined this order", now, proposal)
    lead = ["the owner approved"]
    problem = mandate_problem(mandate, now, lead)
    if problem:
        return problem
    if now >= proposal.offer["until"]:
        return say(REFUSE, "offer-expired", lead, "but the offer has expired", now, proposal)
    approved = policy.Proposal(proposal.vendor, proposal.offer, proposal.category, True)
    checks = policy.evaluate(mandate, approved, ledger, now, zones)
    final = judge(approved, checks, now, lead, names, mandate.version, "approved")
    final.approval = answer.id
    return final
