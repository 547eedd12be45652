"""The owner's mandate: a CWT (COSE_Sign1 by the owner's key) naming the device and its policy.

`issue` builds and signs one, `verify` checks one strictly, `accept` decides whether a new one
replaces the one held (a higher version only). What the constraints mean for an order is in
`thingsdk.core.policy`. The Mandate a device holds, MandateError and the claims' keys are in
`thingsdk.core.mandate_held` (named here too), which a board keeps loaded without this module.
Portable and sans-IO: time comes in as `now`, keys and codec as arguments.
"""

from thingsdk.core import cose, messages
from thingsdk.core.keys import key_id, kid_hex
from thingsdk.core.mandate_held import (  # noqa: F401 (the held mandate's part, named here too)
    CNF, CONSTRAINTS, EXP, IAT, ISS, NBF, SUB, VERSION, Mandate, MandateError)

MAX_TOKEN = 2048  # the mandate message's `cwt` bound
_COSE_CODES = {"bad-signature": "bad-signature", "unknown-key": "wrong-owner"}


def bound_kid(claims):
    """The key id of the device key that mandate claims bind (cnf)."""
    return key_id(claims[CNF][1][-2])


def _checked(claims):
    try:
        return messages.check_claims(claims)
    except messages.MessageError as exc:
        raise MandateError("malformed", str(exc))


def make_claims(owner_kid, device_public_key, version, not_before, expires, constraints=(),
                issued_at=None):
    """A checked claims set binding the device's key to the owner's `constraints`
    ([kind, params] pairs); `issued_at` defaults to `not_before`."""
    device_public_key = bytes(device_public_key)
    return _checked({
        ISS: kid_hex(owner_kid), SUB: kid_hex(key_id(device_public_key)),
        EXP: expires, NBF: not_before, IAT: not_before if issued_at is None else issued_at,
        CNF: {1: {1: 1, -1: 6, -2: device_public_key}},
        VERSION: version, CONSTRAINTS: [[kind, params] for kind, params in constraints]})


def issue(claims, owner_signer, codec):
    """The mandate token: claims checked, then signed by the owner (whose kid is `iss`)."""
    _checked(claims)
    if claims[ISS] != kid_hex(owner_signer.kid):
        raise MandateError("wrong-owner", "iss is not the signing key's kid")
    token = cose.sign1(codec.dumps(claims), owner_signer, codec)
    if len(token) > MAX_TOKEN:
        raise MandateError("too-large", "%d bytes, more than %d" % (len(token), MAX_TOKEN))
    return token


def verify(token, owner_verifier, codec, device_kid, now):
    """The Mandate in token, checked strictly: signed by the owner's key (protected {alg EdDSA,
    kid}, nothing unprotected), claims per the catalog, `iss` the owner, `sub` and `cnf` this
    device, nbf <= now < exp. Raise MandateError otherwise."""
    if not isinstance(token, bytes) or not 0 < len(token) <= MAX_TOKEN:
        raise MandateError("malformed", "a mandate token is 1..%d bytes" % MAX_TOKEN)
    try:
        signed = cose.verify_sign1(token, {owner_verifier.kid: owner_verifier}, codec)
        claims = codec.loads(signed.payload)
    except ValueError as exc:
        raise MandateError(_COSE_CODES.get(getattr(exc, "code", None), "malformed"), str(exc))
    if signed.alg != cose.ALG_EDDSA or len(signed.protected) != 2 or signed.unprotected:
        raise MandateError("malformed", "headers must be protected {alg: EdDSA, kid}")
    _checked(claims)
    if claims[ISS] != kid_hex(owner_verifier.kid):
        raise MandateError("wrong-owner", "iss is not the owner")
    if claims[SUB] != kid_hex(device_kid) or bound_kid(claims) != device_kid:
        raise MandateError("wrong-device", "sub or cnf is not this device")
    mandate = Mandate(claims, token)
    status = mandate.status(now)
    if status:
        raise MandateError(status, "valid from %d until %d" % (mandate.not_before, mandate.expires))
    return mandate


def accept(current, token, owner_verifier, codec, device_kid, now):
    """The mandate to hold after receiving token: it when it verifies and its version is higher
    than current's (None: no mandate yet); current again for the very same token (a redelivery);
    MandateError "stale-version" for a lower version, or the same version with other bytes."""
    return held_after(current, verify(token, owner_verifier, codec, device_kid, now))


def held_after(current, new):
    """The mandate to hold once `new`, a Mandate verified, came while `current` was held (None:
    none yet): as `accept` says."""
    if current is None or new.version > current.version:
        return new
    if new.version == current.version and new.token == current.token:
        return current
    raise MandateError("stale-version", "version %d does not replace version %d"
                       % (new.version, current.version))
