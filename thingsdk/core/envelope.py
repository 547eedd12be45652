"""Messages on the wire: sealed as COSE_Sign1 over the catalog payload, opened with every check.

Opening checks, in order: the COSE signature (strict, see cose: the raw structure is vetted and the
signature verified before the payload is decoded), the message against the catalog, an empty
unprotected header (the kid is protected), that the payload's sender is the key that signed and
its recipient is us, then the replay guard. Every refusal is returned with a reason and counted;
bad input never raises. `check` makes every check but the replay guard's and reads no state, so
a receiver can run it before it takes a lock; `admit` then asks the guard.

The replay guard keeps a digest of the message bytes. Those that pass `check` are determined by
the protected header, payload and signature (fixed structure, shortest heads, nothing
unprotected), so no third party can change them and keep the message valid.
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
    """What open() made of some bytes: status ACCEPT, DUPLICATE or REJECT (with a reason). A
    message the replay guard refused keeps its `message`: it is authentic, only not fresh or not
    new, so its signed times tell the receiver how far apart the two clocks are."""

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
    """A receiver: the keys it trusts (kid -> verifier), its own kid, and its replay guard.

    An `observer` (own kid None) reads messages addressed to others, as an owner watches its
    device's traffic with the vendor: it makes every check but that of the recipient. Only an
    inbox made so skips it: a receiver without its kid is refused."""

    def __init__(self, own_kid, keys, codec, guard=None, *, observer=False):
        if (own_kid is None) != observer:
            raise ValueError("an inbox has its own key id, and only an observer has none")
        self.own_kid = own_kid
        self.keys = keys
        self.codec = codec
        self.guard = guard if guard is not None else replay.ReplayGuard()
        self.rejections = {}

    def open(self, data, now):
        """Check data completely; never raises for bad input."""
        opened = self.check(data)
        return opened if opened.status == REJECT else self.admit(opened, now)

    def check(self, data):
        """Every check but the replay guard's: a refusal, or an Opened (status None) for admit."""
        try:
            verified = cose.verify_sign1(data, self.keys, self.codec)
            message = messages.parse(self.codec.loads(verified.payload, max_depth=8))
        except ValueError as exc:  # CoseError, MessageError and CBORError are all ValueErrors
            return self._refuse(data, getattr(exc, "code", "malformed"), str(exc))
        if verified.unprotected:
            return self._refuse(data, "bad-header", "the kid must be protected")
        if message.kid != verified.kid:
            return self._refuse(data, "kid-mismatch", "payload sender is not the signing key")
        if self.own_kid is not None and message.to != self.own_kid:
            return self._refuse(data, "not-for-us", "addressed to another recipient")
        return Opened(None, data, message)

    def admit(self, opened, now):
        """The replay guard's verdict on a message that passed check."""
        m = opened.message
        outcome, reason = self.guard.check(m.kid, m.seq, m.id, m.ts, m.exp, opened.data, now)
        if outcome == REJECT:
            refused = self._refuse(opened.data, reason, "replay guard")
            refused.message = m  # its signature verified: its times are the sender's word
            return refused
        opened.status = outcome
        return opened

    def commit(self, opened):
        """Record an accepted message once it has been acted on (a crash before this lets a
        redelivery be processed again)."""
        m = opened.message
        self.guard.record(m.kid, m.seq, m.id, opened.data)

    def _refuse(self, data, reason, detail):
        self.rejections[reason] = self.rejections.get(reason, 0) + 1
        return Opened(REJECT, data, reason=reason, detail=detail)
