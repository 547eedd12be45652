"""Messages on the wire: sealed as COSE_Sign1 over the catalog payload, opened with every check.

Opening checks, in order: the COSE signature (strict, see cose), the message against the catalog,
that the payload's sender is the key that signed and its recipient is us, then the replay guard.
Every refusal is returned with a reason and counted; bad input never raises.
"""

from thingsdk.core import cose, messages, replay

ACCEPT = replay.ACCEPT
DUPLICATE = replay.DUPLICATE
REJECT = replay.REJECT


def seal(msg_type, body, signer, recipient_kid, seq, now, msg_id, codec, ttl=3600, reply_to=None):
    """The bytes to publish: a signed message of msg_type from signer to recipient_kid."""
    payload = messages.build(msg_type, body, signer.kid, recipient_kid, seq, now, now + ttl,
                             msg_id, reply_to)
    return cose.sign1(codec.dumps(payload), signer, codec)


class Opened:
    """What open() made of some bytes: status ACCEPT, DUPLICATE or REJECT (with a reason)."""

    def __init__(self, status, data, message=None, reason=None, detail=""):
        self.status = status
        self.data = data
        self.message = message
        self.reason = reason
        self.detail = detail

    def __repr__(self):
        if self.status == REJECT:
            return "<refused %s: %s>" % (self.reason, self.detail)
        return "<%s %s>" % (self.status, self.message.name())


class Inbox:
    """A receiver: the keys it trusts (kid -> verifier), its own kid, and its replay guard."""

    def __init__(self, own_kid, keys, codec, guard=None):
        self.own_kid = own_kid
        self.keys = keys
        self.codec = codec
        self.guard = guard if guard is not None else replay.ReplayGuard()
        self.rejections = {}

    def open(self, data, now):
        """Check data completely; never raises for bad input."""
        try:
            verified = cose.verify_sign1(data, self.keys, self.codec)
            message = messages.parse(self.codec.loads(verified.payload, max_depth=8))
        except ValueError as exc:  # CoseError, MessageError and CBORError are all ValueErrors
            return self._refuse(data, getattr(exc, "code", "malformed"), str(exc))
        if message.kid != verified.kid:
            return self._refuse(data, "kid-mismatch", "payload sender is not the signing key")
        if message.to != self.own_kid:
            return self._refuse(data, "not-for-us", "addressed to another recipient")
        outcome, reason = self.guard.check(message.kid, message.seq, message.id, message.ts,
                                           message.exp, data, now)
        if outcome == REJECT:
            return self._refuse(data, reason, "replay guard")
        return Opened(outcome, data, message)

    def commit(self, opened):
        """Record an accepted message once it has been acted on (a crash before this lets a
        redelivery be processed again)."""
        m = opened.message
        self.guard.record(m.kid, m.seq, m.id, opened.data)

    def _refuse(self, data, reason, detail):
        self.rejections[reason] = self.rejections.get(reason, 0) + 1
        return Opened(REJECT, data, reason=reason, detail=detail)
