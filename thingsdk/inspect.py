"""`thingsdk inspect`: what a signed message says, and whether it checks out."""

import time
from datetime import datetime, timezone
from pathlib import Path

import cbor_diag

from thingsdk import codec
from thingsdk.core import cose, messages
from thingsdk.crypto import Ed25519Verifier

ALG_NAMES = {-8: "EdDSA", -19: "Ed25519", -7: "ES256", 5: "HMAC 256/256"}


def is_file(text):
    """Whether text names an existing file (a long hex string is not a path)."""
    try:
        return Path(text).is_file()
    except OSError:
        return False


def read_message_arg(arg):
    """Message bytes from a file (binary, or hex text) or from hex given on the command line."""
    from_file = is_file(arg)
    data = Path(arg).read_bytes() if from_file else arg.encode()
    try:
        return bytes.fromhex(data.decode("ascii").strip()) if data.isascii() else data
    except ValueError:
        if from_file:
            return data
        raise ValueError("%.40r is neither a file nor hex" % arg)


def utc_text(ts):
    """A unix time as an ISO 8601 UTC string."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _diag(data):
    """CBOR diagnostic notation, indented; or why there is none."""
    try:
        text = cbor_diag.cbor2diag(data)
    except ValueError as exc:
        text = "(not CBOR: %s)" % exc
    return "\n".join("    " + line for line in text.splitlines())


def _signature_line(data, public_keys):
    """('valid…' | 'INVALID…' | 'not checked…', ok)"""
    if not public_keys:
        return "not checked: pass --key with the signer's public key", True
    keys = {}
    for raw in public_keys:
        verifier = Ed25519Verifier(raw)
        keys[verifier.kid] = verifier
    try:
        verified = cose.verify_sign1(data, keys, codec)
    except cose.CoseError as exc:
        return "INVALID (%s): %s" % (exc.code, exc), False
    return "valid: signed by key %s" % verified.kid.hex(), True


def _message_lines(payload, now):
    """Lines describing the payload as a thingsdk message, and whether it is a valid, live one."""
    try:
        msg = messages.parse(codec.loads(payload))
    except ValueError as exc:
        return ["message      not a valid thingsdk message: %s" % exc], False
    lines = [
        "message      %s (type %d), protocol version %d" % (msg.name(), msg.type, msg.v),
        "  id         %s" % msg.id.hex(),
        "  from       %s" % msg.kid.hex(),
        "  to         %s" % msg.to.hex(),
        "  seq        %d" % msg.seq,
        "  made       %s" % utc_text(msg.ts),
    ]
    live = now < msg.exp
    state = "in %d s" % (msg.exp - now) if live else "EXPIRED %d s ago" % (now - msg.exp)
    lines.append("  expires    %s (%s)" % (utc_text(msg.exp), state))
    if msg.re is not None:
        lines.append("  answers    %s" % msg.re.hex())
    return lines, live


def inspect_message(data, public_keys, now=None):
    """A human-readable report on data, and whether everything checked out."""
    now = int(time.time()) if now is None else now
    try:
        item = codec.loads(data)
    except ValueError as exc:
        raise ValueError("not well-formed CBOR: %s" % exc)
    lines = []
    ok = True
    is_sign1 = isinstance(item, codec.Tag) and item.tag == cose.SIGN1_TAG
    parts = item.value if is_sign1 else None
    if is_sign1 and isinstance(parts, list) and len(parts) == 4 and isinstance(parts[2], bytes):
        protected_bytes, unprotected, payload = parts[0], parts[1], parts[2]
        protected = codec.loads(protected_bytes) if protected_bytes else {}
        alg = protected.get(cose.ALG)
        kid = protected.get(cose.KID, unprotected.get(cose.KID) if isinstance(unprotected, dict) else None)
        lines.append("COSE_Sign1   %d bytes, payload %d bytes" % (len(data), len(payload)))
        lines.append("  alg        %s (%r)" % (ALG_NAMES.get(alg, "unknown"), alg))
        lines.append("  kid        %s" % (kid.hex() if isinstance(kid, bytes) else repr(kid)))
        signature, sig_ok = _signature_line(data, public_keys)
        lines.append("  signature  " + signature)
        message_lines, msg_ok = _message_lines(payload, now)
        lines += message_lines
        ok = sig_ok and msg_ok
        lines += ["diagnostic notation", _diag(data), "payload", _diag(payload)]
    else:
        ok = False
        lines += ["not a COSE_Sign1 (%d bytes of CBOR)" % len(data), "diagnostic notation",
                  _diag(data)]
    return "\n".join(lines), ok
